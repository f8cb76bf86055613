//! The alert outbox, `ops_alert_outbox`: every notification (an incident fired, an incident resolved)
//! is a row here before anything is sent, and the row records its delivery.
//!
//! The outbox is also the incident state: an incident is open while the newest row of its key is a
//! `fired` one. Opening or resolving an incident and queueing its notice are therefore one commit, so a
//! process that stops at any point neither loses a notice nor queues one twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use serde::Serialize;

use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{columns, Lake, Layer, TableRef};
use crate::Result;

/// The outbox table (`ops_alert_outbox`).
pub const ALERT_OUTBOX: TableRef = TableRef::new(Layer::Ops, "alert_outbox");

/// Kind of a notification that opens an incident.
pub const FIRED: &str = "fired";
/// Kind of a notification that closes one.
pub const RESOLVED: &str = "resolved";

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    /// `<alert_id>:<kind>`: the idempotency key of this notification.
    pub notification_id: String,
    /// The incident's alert id (`essentials.alertId`), shared by its fired and resolved notices.
    pub alert_id: String,
    /// `<rule>:<subject>`.
    pub incident_key: String,
    /// Rule name.
    pub rule: String,
    /// `fired` or `resolved`.
    pub kind: String,
    /// `Sev0` … `Sev4`.
    pub severity: String,
    /// One line for a person.
    pub description: String,
    /// The Azure Monitor common-alert-schema payload (JSON).
    pub payload: String,
    /// When the notification was queued; for `fired`, when the incident opened.
    pub created_at: DateTime<Utc>,
    /// Delivery attempts made.
    pub attempts: i64,
    /// Earliest time of the next attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// When the receiver acknowledged it (2xx); null while pending.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

impl OutboxRow {
    /// True once the receiver acknowledged it.
    pub fn delivered(&self) -> bool {
        self.delivered_at.is_some()
    }
}

fn batch_of(rows: &[OutboxRow]) -> Result<RecordBatch> {
    let mut b = RowsBuilder::new();
    for r in rows {
        b.push_row([
            (
                "notification_id",
                Cell::str(Some(r.notification_id.clone())),
            ),
            ("alert_id", Cell::str(Some(r.alert_id.clone()))),
            ("incident_key", Cell::str(Some(r.incident_key.clone()))),
            ("rule", Cell::str(Some(r.rule.clone()))),
            ("kind", Cell::str(Some(r.kind.clone()))),
            ("severity", Cell::str(Some(r.severity.clone()))),
            ("description", Cell::str(Some(r.description.clone()))),
            ("payload", Cell::str(Some(r.payload.clone()))),
            ("created_at", Cell::ts(Some(r.created_at))),
            ("attempts", Cell::Int(Some(r.attempts))),
            ("next_attempt_at", Cell::ts(Some(r.next_attempt_at))),
            ("delivered_at", Cell::ts(r.delivered_at)),
            ("last_error", Cell::str(r.last_error.clone())),
        ]);
    }
    b.finish()
}

/// Every row of the outbox, oldest first; none when the table does not exist yet.
pub async fn read_all(lake: &Lake) -> Result<Vec<OutboxRow>> {
    if lake.open_table(ALERT_OUTBOX).await?.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT * FROM {} ORDER BY created_at, notification_id",
        ALERT_OUTBOX.sql_name()
    );
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut out = Vec::new();
    for b in lake.sql(&[ALERT_OUTBOX], &sql).await? {
        let s = |name: &str| columns::strings(&b, name);
        let (nid, aid, key, rule, kind, sev, desc, payload, err) = (
            s("notification_id")?,
            s("alert_id")?,
            s("incident_key")?,
            s("rule")?,
            s("kind")?,
            s("severity")?,
            s("description")?,
            s("payload")?,
            s("last_error")?,
        );
        let created = columns::timestamps(&b, "created_at")?;
        let next = columns::timestamps(&b, "next_attempt_at")?;
        let delivered = columns::timestamps(&b, "delivered_at")?;
        let attempts = columns::ints(&b, "attempts")?;
        for k in 0..b.num_rows() {
            out.push(OutboxRow {
                notification_id: nid[k].clone().unwrap_or_default(),
                alert_id: aid[k].clone().unwrap_or_default(),
                incident_key: key[k].clone().unwrap_or_default(),
                rule: rule[k].clone().unwrap_or_default(),
                kind: kind[k].clone().unwrap_or_default(),
                severity: sev[k].clone().unwrap_or_default(),
                description: desc[k].clone().unwrap_or_default(),
                payload: payload[k].clone().unwrap_or_default(),
                created_at: created[k].unwrap_or(epoch),
                attempts: attempts[k].unwrap_or_default(),
                next_attempt_at: next[k].unwrap_or(epoch),
                delivered_at: delivered[k],
                last_error: err[k].clone(),
            });
        }
    }
    Ok(out)
}

/// Queues new notifications in one commit.
pub async fn append(lake: &Lake, rows: &[OutboxRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    lake.append(ALERT_OUTBOX, vec![batch_of(rows)?], &[], HashMap::new())
        .await?;
    Ok(())
}

/// Replaces the given rows (same `notification_id`) with their new delivery state, in one commit.
pub async fn update(lake: &Lake, rows: &[OutboxRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| format!("'{}'", r.notification_id.replace('\'', "''")))
        .collect();
    let predicate = format!("notification_id IN ({})", ids.join(", "));
    lake.rewrite(ALERT_OUTBOX, vec![batch_of(rows)?], Some(predicate), &[])
        .await?;
    Ok(())
}

/// An open incident: the newest outbox row of its key is `fired`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// `<rule>:<subject>`.
    pub incident_key: String,
    /// The alert id of its notices.
    pub alert_id: String,
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// What it is about.
    pub description: String,
    /// Whether its `fired` notice has been delivered.
    pub notified: bool,
}

/// The open incidents in `rows` (the whole outbox), by key.
pub fn open_incidents(rows: &[OutboxRow]) -> BTreeMap<String, Incident> {
    let mut latest: BTreeMap<&str, &OutboxRow> = BTreeMap::new();
    for r in rows {
        match latest.get(r.incident_key.as_str()) {
            Some(prev)
                if (prev.created_at, prev.kind == FIRED) > (r.created_at, r.kind == FIRED) => {}
            _ => {
                latest.insert(&r.incident_key, r);
            }
        }
    }
    latest
        .into_iter()
        .filter(|(_, r)| r.kind == FIRED)
        .map(|(k, r)| {
            (
                k.to_string(),
                Incident {
                    incident_key: k.to_string(),
                    alert_id: r.alert_id.clone(),
                    rule: r.rule.clone(),
                    severity: r.severity.clone(),
                    opened_at: r.created_at,
                    description: r.description.clone(),
                    notified: r.delivered(),
                },
            )
        })
        .collect()
}
