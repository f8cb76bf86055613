//! Appending record batches to a Delta table: schema merge and idempotency markers in one commit.

use std::collections::HashMap;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

use super::blind_append::{Appended, BlindAppender};
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

/// Target size of the data files a rewrite writes. Rows are written in key order, so with files this
/// small a later rewrite of a few keys finds them by the files' min/max statistics and rewrites a few
/// small files instead of the whole table (Silver encounters, stays and patients; Gold facts).
pub const TARGET_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// [`TARGET_FILE_BYTES`] as the writer takes it.
pub fn target_file_size() -> Option<std::num::NonZeroU64> {
    std::num::NonZeroU64::new(TARGET_FILE_BYTES)
}

/// A table left open by [`Lake::append`]: an appender for the next batches of the same columns, and
/// the table as delta-rs last wrote it, for a batch that brings new columns (schema merge).
#[derive(Debug, Default)]
pub(super) struct OpenForAppend {
    appender: Option<BlindAppender>,
    delta: Option<DeltaTable>,
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
                    .and_then(|t| super::version_of(&t))
                    .unwrap_or(-1));
            }
            None => {
                return Err(Error::Storage(format!(
                    "internal: a commit to {table} with markers but no data"
                )))
            }
        };
        let mut open = self.take_appended(table);
        if let Some(appender) = open.appender.as_mut().filter(|a| a.accepts(&schema)) {
            match appender
                .append(batches.clone(), markers, metadata.clone())
                .await?
            {
                Appended::Committed(version) => {
                    self.keep_appended(table, open);
                    return Ok(version);
                }
                // Another writer came first: delta-rs' write below catches up and retries.
                Appended::Behind => open.appender = None,
            }
        }
        // Another writer may have committed since: read only the commits after ours.
        let delta = match self.refreshed(table, open.delta.take()).await? {
            Some(delta) => delta,
            None => self.open_or_create(table, &schema).await?,
        };
        let written = self
            .append_to(delta, table, batches, markers, metadata)
            .await?;
        let version = super::version_of(&written).unwrap_or_default();
        let open = OpenForAppend {
            appender: BlindAppender::for_table(self, table, &written)?,
            delta: Some(written),
        };
        self.keep_appended(table, open);
        Ok(version)
    }

    /// Appends `batches` to the already open `delta` (see [`Lake::append`]) and returns the table as
    /// of the new commit, so a writer that appends again and again does not replay the log each time.
    pub async fn append_to(
        &self,
        delta: DeltaTable,
        table: TableRef,
        batches: Vec<RecordBatch>,
        markers: &[CommitMarker],
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<DeltaTable> {
        let txns: Vec<Transaction> = markers
            .iter()
            .map(|m| Transaction::new(&m.app_id, m.version))
            .collect();
        let props = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata(metadata);
        delta
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_commit_properties(props)
            .await
            .map_err(|e| Error::delta(table.sql_name(), e))
    }

    /// What an earlier [`Lake::append`] of this lake left open for `table`, taken out of the cache
    /// so concurrent appenders never share it (empty when nothing was left).
    fn take_appended(&self, table: TableRef) -> OpenForAppend {
        self.appended
            .lock()
            .ok()
            .and_then(|mut open| open.remove(&table.path()))
            .unwrap_or_default()
    }

    /// Keeps a table open for the next [`Lake::append`] to it.
    fn keep_appended(&self, table: TableRef, open: OpenForAppend) {
        if let Ok(mut cache) = self.appended.lock() {
            cache.insert(table.path(), open);
        }
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

impl Lake {
    /// Commits only idempotency markers (no data) to `table`, creating it empty with `schema` when
    /// missing: a step that processed an increment but had nothing to write still moves its checkpoint.
    pub async fn commit_markers(
        &self,
        table: TableRef,
        schema: deltalake::arrow::datatypes::Schema,
        markers: &[CommitMarker],
    ) -> Result<i64> {
        use deltalake::kernel::transaction::CommitBuilder;
        use deltalake::kernel::Action;
        use deltalake::protocol::DeltaOperation;
        let delta = self.open_or_create(table, &schema).await?;
        let snapshot = delta
            .snapshot()
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        let actions: Vec<Action> = markers
            .iter()
            .map(|m| Action::Txn(Transaction::new(&m.app_id, m.version)))
            .collect();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let committed = CommitBuilder::default()
            .with_actions(actions)
            .build(
                Some(snapshot as &dyn deltalake::kernel::transaction::TableReference),
                delta.log_store(),
                operation,
            )
            .await
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        Ok(committed.version() as i64)
    }
}

impl Lake {
    /// Replaces the whole content of `table` with `batch` (schema included), recording `markers`, in one
    /// commit. For small tables rebuilt whole (reference data, dimensions on a full refresh).
    pub async fn overwrite(
        &self,
        table: TableRef,
        batch: RecordBatch,
        markers: &[CommitMarker],
    ) -> Result<i64> {
        self.rewrite(table, vec![batch], None, markers).await
    }

    /// Replaces the rows of `table` that match `predicate` (SQL over the table's columns) with `batches`,
    /// whose rows must all match it, in one commit; `predicate: None` replaces everything.
    pub async fn rewrite(
        &self,
        table: TableRef,
        batches: Vec<RecordBatch>,
        predicate: Option<String>,
        markers: &[CommitMarker],
    ) -> Result<i64> {
        let Some(first) = batches.first() else {
            return Err(Error::Storage(format!(
                "internal: rewrite of {table} without a batch"
            )));
        };
        let delta = self.open_or_create(table, &first.schema()).await?;
        let txns: Vec<Transaction> = markers
            .iter()
            .map(|m| Transaction::new(&m.app_id, m.version))
            .collect();
        let props = CommitProperties::default().with_application_transactions(txns);
        let mut write = delta
            .write(batches)
            .with_save_mode(SaveMode::Overwrite)
            .with_target_file_size(target_file_size())
            .with_commit_properties(props);
        write = match predicate {
            Some(p) => write
                .with_replace_where(p)
                .with_schema_mode(SchemaMode::Merge),
            None => write.with_schema_mode(SchemaMode::Overwrite),
        };
        let written = write.await.map_err(|e| Error::delta(table.sql_name(), e))?;
        Ok(super::version_of(&written).unwrap_or_default())
    }
}

impl Lake {
    /// Deletes the rows of `table` matching `predicate`, recording `markers`, in one commit.
    pub async fn delete_where(
        &self,
        table: TableRef,
        delta: DeltaTable,
        predicate: &str,
        markers: &[CommitMarker],
    ) -> Result<i64> {
        let txns: Vec<Transaction> = markers
            .iter()
            .map(|m| Transaction::new(&m.app_id, m.version))
            .collect();
        let (t, _) = delta
            .delete()
            .with_predicate(predicate.to_string())
            .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
            .await
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        Ok(super::version_of(&t).unwrap_or_default())
    }

    /// Deletes every row of `table`, recording `markers`.
    pub async fn truncate(&self, table: TableRef, markers: &[CommitMarker]) -> Result<i64> {
        let Some(delta) = self.open_table(table).await? else {
            return Ok(-1);
        };
        let txns: Vec<Transaction> = markers
            .iter()
            .map(|m| Transaction::new(&m.app_id, m.version))
            .collect();
        let (t, _) = delta
            .delete()
            .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
            .await
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        Ok(super::version_of(&t).unwrap_or_default())
    }
}
