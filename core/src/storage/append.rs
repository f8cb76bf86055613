//! Appending record batches to a Delta table: schema merge and idempotency markers in one commit.

use std::collections::HashMap;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::protocol::SaveMode;
use deltalake::operations::write::SchemaMode;
use deltalake::DeltaTable;

use super::{Lake, TableRef};
use crate::{Error, Result};

/// An application-transaction marker committed together with data: readers of the table's log see
/// `app_id` at `version` exactly when the data of the same commit is visible. This is what makes file
/// ingestion and incremental refreshes exactly-once in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMarker {
    /// Identifier of what was committed (e.g. `file:<sha256>` or `silver-refresh`).
    pub app_id: String,
    /// A monotonically increasing number for that identifier.
    pub version: i64,
}

impl Lake {
    /// Appends `batches` to `table` in one commit, adding new columns as they appear (schema merge) and
    /// recording `markers`. Returns the new table version, or the current one when there was nothing to
    /// write and no marker to record.
    pub async fn append(
        &self,
        table: TableRef,
        batches: Vec<RecordBatch>,
        markers: &[CommitMarker],
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<i64> {
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None if markers.is_empty() => {
                return Ok(self
                    .open_table(table)
                    .await?
                    .and_then(|t| t.version())
                    .unwrap_or(-1));
            }
            None => {
                return Err(Error::Storage(format!(
                    "internal: a commit to {table} with markers but no data"
                )))
            }
        };
        let delta: DeltaTable = self.open_or_create(table, &schema).await?;
        let txns: Vec<Transaction> =
            markers.iter().map(|m| Transaction::new(&m.app_id, m.version)).collect();
        let props = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata(metadata);
        let written = delta
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_commit_properties(props)
            .await
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        Ok(written.version().unwrap_or_default())
    }

    /// The version recorded for an application-transaction id on a table, if any.
    pub async fn marker_version(&self, table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
        let snapshot = table
            .snapshot()
            .map_err(|e| Error::delta(table.table_url().to_string(), e))?;
        snapshot
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| Error::delta(table.table_url().to_string(), e))
    }
}
