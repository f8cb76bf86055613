//! The audit trail: an append-only Delta table `security_audit` with one row per read (and per denial).
//!
//! Writes never block the read path: records go through a bounded queue to a background task that appends
//! them in batches. A record that cannot be queued (queue full or writer gone) or written is a failure:
//! logged at error level and counted ([`AuditLog::failures`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Identity;
use crate::storage::queued::{flush, spawn_appender, Queued};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{Lake, Layer, TableRef};
use crate::Result;

/// The audit table.
pub const SECURITY_AUDIT: TableRef = TableRef::new(Layer::Security, "audit");

/// Records queued at most; beyond that a record is lost (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;

/// One audited read or denial.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Subject (or `unauthenticated`).
    pub subject: String,
    /// Role (empty when unauthenticated).
    pub role: String,
    /// Scopes, `;`-separated.
    pub scopes: String,
    /// How the identity was established.
    pub auth_method: String,
    /// Read path: `sql_endpoint`, `cli_query`, `http:<route>`.
    pub read_path: String,
    /// Query text or route.
    pub request: String,
    /// Tables (views) the query touched, `,`-separated.
    pub tables: String,
    /// Rows returned.
    pub rows_returned: i64,
    /// True when identifiable PHI was returned (a touched view is unmasked patient data and rows > 0).
    pub phi_returned: bool,
    /// `allowed` or `denied`.
    pub decision: String,
    /// Why denied, or a note.
    pub reason: Option<String>,
}

impl AuditRecord {
    /// A record for an identity (or none) on a read path.
    pub fn new(identity: Option<&Identity>, read_path: &str, request: &str) -> Self {
        AuditRecord {
            at: Utc::now(),
            subject: identity
                .map(|i| i.subject.clone())
                .unwrap_or_else(|| "unauthenticated".into()),
            role: identity.map(|i| i.role.to_string()).unwrap_or_default(),
            scopes: identity.map(Identity::scopes_text).unwrap_or_default(),
            auth_method: identity
                .map(|i| i.method.as_str().to_string())
                .unwrap_or_default(),
            read_path: read_path.into(),
            request: request.chars().take(8_000).collect(),
            tables: String::new(),
            rows_returned: 0,
            phi_returned: false,
            decision: "allowed".into(),
            reason: None,
        }
    }

    /// Marks the record as a denial.
    pub fn denied(mut self, reason: impl Into<String>) -> Self {
        self.decision = "denied".into();
        self.reason = Some(reason.into());
        self
    }
}

/// Appends records to the audit table in one commit.
pub async fn append(lake: &Lake, records: &[AuditRecord]) -> Result<i64> {
    if records.is_empty() {
        return Ok(-1);
    }
    let mut b = RowsBuilder::new();
    for r in records {
        b.push_row([
            ("at", Cell::ts(Some(r.at))),
            ("subject", Cell::str(Some(r.subject.as_str()))),
            ("role", Cell::str(Some(r.role.as_str()))),
            ("scopes", Cell::str(Some(r.scopes.as_str()))),
            ("auth_method", Cell::str(Some(r.auth_method.as_str()))),
            ("read_path", Cell::str(Some(r.read_path.as_str()))),
            ("request", Cell::str(Some(r.request.as_str()))),
            ("tables", Cell::str(Some(r.tables.as_str()))),
            ("rows_returned", Cell::Int(Some(r.rows_returned))),
            ("phi_returned", Cell::Bool(Some(r.phi_returned))),
            ("decision", Cell::str(Some(r.decision.as_str()))),
            ("reason", Cell::Str(r.reason.clone())),
        ]);
    }
    lake.append(
        SECURITY_AUDIT,
        vec![b.finish()?],
        &[],
        std::collections::HashMap::new(),
    )
    .await
}

/// The handle to the background audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Queued<AuditRecord>>,
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("failures", &self.failures())
            .finish()
    }
}

impl AuditLog {
    /// Starts the writer for a lake (on the current tokio runtime).
    pub fn start(lake: Lake) -> AuditLog {
        let failures = Arc::new(AtomicU64::new(0));
        let lost = failures.clone();
        let tx = spawn_appender(QUEUE_CAPACITY, 1_000, move |batch: Vec<AuditRecord>| {
            let (lake, lost) = (lake.clone(), lost.clone());
            async move {
                if let Err(e) = append(&lake, &batch).await {
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::error!(
                        records = batch.len(),
                        "security_audit_write_failed: {} audit records are lost: {e}",
                        batch.len()
                    );
                }
            }
        });
        AuditLog { tx, failures }
    }

    /// Queues a record without waiting. A record that cannot be queued is lost: logged and counted.
    pub fn record(&self, record: AuditRecord) {
        if let Err(e) = self.tx.try_send(Queued::Row(Box::new(record))) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the audit queue is full",
                mpsc::error::TrySendError::Closed(_) => "the audit writer has stopped",
            };
            tracing::error!("security_audit_record_lost: {why}");
        }
    }

    /// Waits until every record queued before this call has been written (or failed).
    pub async fn flush(&self) {
        flush(&self.tx).await;
    }

    /// Audit records lost so far (could not be queued or written).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}
