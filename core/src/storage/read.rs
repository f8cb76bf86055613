//! Reading Delta tables through DataFusion.

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;

use super::{Lake, TableRef};
use crate::{Error, Result};

impl Lake {
    /// Registers `table` in `ctx` under its SQL name. Returns false (and registers nothing) when the
    /// table does not exist yet.
    pub async fn register(&self, ctx: &SessionContext, table: TableRef) -> Result<bool> {
        let Some(delta) = self.open_table(table).await? else {
            return Ok(false);
        };
        delta
            .update_datafusion_session(&ctx.state())
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        let provider = delta
            .table_provider()
            .await
            .map_err(|e| Error::Query(format!("cannot read table {table}: {e}")))?;
        ctx.register_table(table.sql_name(), provider)
            .map_err(|e| Error::Query(format!("cannot register table {table}: {e}")))?;
        Ok(true)
    }

    /// Runs `sql` over the given tables (registered under their SQL names). Tables that do not exist
    /// yet are simply absent, so callers check with [`Lake::open_table`] first when that matters.
    pub async fn sql(&self, tables: &[TableRef], sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        for table in tables {
            self.register(&ctx, *table).await?;
        }
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| Error::Query(e.to_string()))?;
        df.collect().await.map_err(|e| Error::Query(e.to_string()))
    }
}
