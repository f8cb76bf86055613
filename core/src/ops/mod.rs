//! Ops: the pipeline's own bookkeeping, kept in the lake beside the data it describes.
//!
//! [`ledger`] is the run ledger (`ops_run_ledger`): one row per stage run, whatever started it.

pub mod ledger;

use crate::storage::TableRef;

pub use ledger::RUN_LEDGER;

/// Every Ops table.
pub const TABLES: [TableRef; 1] = [RUN_LEDGER];
