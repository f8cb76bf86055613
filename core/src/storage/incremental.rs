//! Incremental reads: what an append-only table gained since a version, and checkpoints kept as
//! application-transaction markers on the tables that consumed it.

use std::collections::HashSet;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use super::{Lake, TableRef};
use crate::{Error, Result};

/// The part of an input table a refresh step has not processed yet.
#[derive(Debug)]
pub struct Increment {
    /// The input table.
    pub table: TableRef,
    /// The input's version the step has processed up to (none yet: `None`).
    pub since: Option<i64>,
    /// The input's current version (what the step will have processed when it commits).
    pub until: i64,
    /// Data files added after `since` (all files when `since` is `None`).
    pub files: Vec<String>,
    delta: DeltaTable,
}

impl Increment {
    /// True when there is nothing new.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The marker that records this increment as processed.
    pub fn marker(&self) -> super::CommitMarker {
        super::CommitMarker {
            app_id: checkpoint_id(self.table),
            version: self.until,
        }
    }

    /// Runs `sql` over the increment's new rows, registered as table `input`.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        self.register(&ctx, "input").await?;
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| Error::Query(format!("{}: {e}", self.table)))?;
        df.collect()
            .await
            .map_err(|e| Error::Query(format!("{}: {e}", self.table)))
    }

    /// Registers the increment's rows in `ctx` under `name`.
    pub async fn register(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        self.delta
            .update_datafusion_session(&ctx.state())
            .map_err(|e| Error::delta(self.table.sql_name(), e))?;
        let provider = self
            .delta
            .table_provider()
            .with_file_paths(self.files.clone())
            .await
            .map_err(|e| Error::Query(format!("cannot read {}: {e}", self.table)))?;
        ctx.register_table(name, provider)
            .map_err(|e| Error::Query(format!("cannot register {}: {e}", self.table)))?;
        Ok(())
    }
}

/// The marker id under which a consumer records how far it has read `input`.
pub fn checkpoint_id(input: TableRef) -> String {
    format!("src:{}", input.sql_name())
}

impl Lake {
    /// How far `consumer` has processed `input` (its checkpoint marker), if at all.
    pub async fn checkpoint(&self, consumer: TableRef, input: TableRef) -> Result<Option<i64>> {
        match self.open_table(consumer).await? {
            Some(t) => self.marker_version(&t, &checkpoint_id(input)).await,
            None => Ok(None),
        }
    }

    /// What an append-only `input` table gained after version `since`. `Ok(None)` when the input does
    /// not exist yet.
    pub async fn increment(
        &self,
        input: TableRef,
        since: Option<i64>,
    ) -> Result<Option<Increment>> {
        let Some(current) = self.open_table(input).await? else {
            return Ok(None);
        };
        let until = super::version_of(&current).unwrap_or(-1);
        let now_files = file_paths(&current)?;
        let files = match since {
            Some(v) if v >= until => Vec::new(),
            Some(v) if v >= 0 => {
                let mut old = current.clone();
                old.load_version(v as u64)
                    .await
                    .map_err(|e| Error::delta(input.sql_name(), e))?;
                let before: HashSet<String> = file_paths(&old)?.into_iter().collect();
                now_files
                    .into_iter()
                    .filter(|f| !before.contains(f))
                    .collect()
            }
            _ => now_files,
        };
        Ok(Some(Increment {
            table: input,
            since,
            until,
            files,
            delta: current,
        }))
    }
}

fn file_paths(table: &DeltaTable) -> Result<Vec<String>> {
    let snapshot = table
        .snapshot()
        .map_err(|e| Error::delta(table.table_url().to_string(), e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect())
}
