//! Running stages: the one entry point the CLI, the local runtime and the Functions handlers share.
//! Each stage run returns a [`StageReport`]; callers record it in the run ledger and turn failures into
//! alerts.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What one stage run did.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Stage name: `bronze.adt`, `silver`, `gold`, …
    pub stage: String,
    /// Run id.
    pub run_id: String,
    /// What started it: `cli`, `timer`, `http`, `adf`, `eventhub`, `serve`.
    pub trigger: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: DateTime<Utc>,
    /// `succeeded`, `failed` or `skipped` (nothing new to do).
    pub status: String,
    /// Rows read from the stage's inputs.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// The error, when failed.
    pub error: Option<String>,
    /// Stage-specific details (per-table counts, versions, DQ figures).
    pub details: serde_json::Value,
}
