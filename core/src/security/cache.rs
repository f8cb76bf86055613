//! Policy sessions kept between queries. Opening every Delta table for each query costs far more than the
//! query itself, so a server keeps one [`PolicyBase`] (the tables at one snapshot) and one
//! [`PolicySession`] per distinct entitlement (role + scopes) built on it. The snapshot is renewed when
//! the process itself changed the lake ([`PolicyCache::invalidate`], after an ingest or refresh) or when
//! it is older than the cache's maximum age (writes by other processes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::policy::{PolicyBase, PolicySession};
use super::{Identity, Role, Scope};
use crate::storage::{Lake, TableRef};
use crate::Result;

/// What a policy session depends on: the role and the scopes, not the subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntitlementKey {
    role: Role,
    scopes: Vec<Scope>,
}

impl EntitlementKey {
    fn of(identity: &Identity) -> Self {
        let mut scopes = identity.scopes.clone();
        scopes.sort();
        scopes.dedup();
        EntitlementKey {
            role: identity.role,
            scopes,
        }
    }
}

struct Snapshot {
    generation: u64,
    opened: Instant,
    base: Arc<PolicyBase>,
    sessions: HashMap<EntitlementKey, Arc<PolicySession>>,
}

/// Policy sessions per entitlement over a shared table snapshot.
pub struct PolicyCache {
    tables: Vec<TableRef>,
    pseudonym_key: Option<Vec<u8>>,
    max_age: Duration,
    generation: AtomicU64,
    current: tokio::sync::Mutex<Option<Snapshot>>,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache")
            .field("tables", &self.tables.len())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// A cache over `tables`; snapshots older than `max_age` are renewed (zero: every query opens the
    /// tables afresh).
    pub fn new(tables: Vec<TableRef>, pseudonym_key: Option<Vec<u8>>, max_age: Duration) -> Self {
        PolicyCache {
            tables,
            pseudonym_key,
            max_age,
            generation: AtomicU64::new(0),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The pseudonym key the sessions mask identifiers with.
    pub fn pseudonym_key(&self) -> Option<&[u8]> {
        self.pseudonym_key.as_deref()
    }

    /// Marks the snapshot stale: the next query opens the tables again. Call after writing to the lake.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The session for `identity`, from the current snapshot (renewed first when stale).
    pub async fn session(&self, lake: &Lake, identity: &Identity) -> Result<Arc<PolicySession>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut guard = self.current.lock().await;
        let fresh = guard
            .as_ref()
            .is_some_and(|s| s.generation == generation && s.opened.elapsed() < self.max_age);
        if !fresh {
            let base = PolicyBase::open(lake, &self.tables, self.pseudonym_key.as_deref()).await?;
            *guard = Some(Snapshot {
                generation,
                opened: Instant::now(),
                base: Arc::new(base),
                sessions: HashMap::new(),
            });
        }
        let snapshot = guard.as_mut().expect("a snapshot was just set");
        let key = EntitlementKey::of(identity);
        if let Some(s) = snapshot.sessions.get(&key) {
            return Ok(s.clone());
        }
        let session = Arc::new(snapshot.base.session_for(identity).await?);
        snapshot.sessions.insert(key, session.clone());
        Ok(session)
    }
}
