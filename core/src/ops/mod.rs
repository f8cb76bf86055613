//! Ops: the pipeline's own bookkeeping, kept in the lake beside the data it describes.
//!
//! [`ledger`] is the run ledger (`ops_run_ledger`): one row per stage run, whatever started it.
//! [`alerts`] evaluates the alert rules and delivers their notices through the outbox
//! (`ops_alert_outbox`). [`metrics`] is what the runs and the ADT ingest measure for export.

pub mod alerts;
pub mod ledger;
pub mod metrics;

use crate::storage::TableRef;

pub use alerts::ALERT_OUTBOX;
pub use ledger::RUN_LEDGER;

/// Every Ops table.
pub const TABLES: [TableRef; 2] = [RUN_LEDGER, ALERT_OUTBOX];
