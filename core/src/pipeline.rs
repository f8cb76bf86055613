//! Running stages: the one entry point the CLI, the local runtime and the Functions handlers share.
//! Each stage run returns a [`StageReport`]; callers record every run, failed ones included, in the run
//! ledger through [`crate::ops::ledger::tracked`] (or [`crate::ops::ledger::record`] for a run that
//! already finished) and turn failures into alerts.

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

/// Options of a refresh run.
#[derive(Debug, Clone, Default)]
pub struct RefreshOptions {
    /// Rebuild from Bronze (Silver) or Silver (Gold) instead of processing only what is new.
    pub full: bool,
    /// What started the run (`cli`, `timer`, `adf`, `serve`…), recorded in the report.
    pub trigger: String,
}

/// Refreshes Silver from what Bronze gained since Silver's checkpoint.
pub async fn refresh_silver(
    lake: &crate::storage::Lake,
    options: &RefreshOptions,
) -> crate::Result<StageReport> {
    crate::silver::refresh(lake, options).await
}

/// Refreshes Gold from what Silver gained since Gold's checkpoint.
pub async fn refresh_gold(
    lake: &crate::storage::Lake,
    options: &RefreshOptions,
) -> crate::Result<StageReport> {
    crate::gold::refresh(lake, options).await
}
