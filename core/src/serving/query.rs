//! Read-only SQL over the lake (DataFusion), with a row limit and a time limit.
//!
//! Only queries run: DDL (`CREATE`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`, `COPY`) and statements
//! (`SET`, transactions) are refused before planning, and the session has no file-reading table
//! functions or URL tables, so SQL can reach nothing but the registered tables.

use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::prelude::SessionContext;

use super::tables::known_tables;
use crate::storage::{Lake, TableRef};
use crate::{Error, Result};

/// Limits applied to one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Rows returned at most; more are cut and the result says so.
    pub max_rows: usize,
    /// Wall-clock time allowed.
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_rows: 10_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A query's result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Result schema.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
    /// True when rows beyond `max_rows` were cut.
    pub truncated: bool,
    /// Time taken.
    pub elapsed: Duration,
}

impl QueryResult {
    /// Number of rows returned.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// A DataFusion session with the given tables registered under their SQL names (absent tables are
/// skipped).
pub async fn session(lake: &Lake, tables: &[TableRef]) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    for table in tables {
        lake.register(&ctx, *table).await?;
    }
    Ok(ctx)
}

/// Runs one read-only query over every known table.
pub async fn run(lake: &Lake, sql: &str, limits: QueryLimits) -> Result<QueryResult> {
    let ctx = session(lake, &known_tables()).await?;
    run_in(&ctx, sql, limits).await
}

/// Runs one read-only query over the Gold tables only: the SQL endpoint's surface (the local counterpart
/// of the Synapse serverless views over Gold). Bronze and Silver are not reachable from it.
pub async fn run_gold(lake: &Lake, sql: &str, limits: QueryLimits) -> Result<QueryResult> {
    let ctx = gold_session(lake).await?;
    run_in(&ctx, sql, limits).await
}

/// A session with only the Gold tables registered (reusable across queries, e.g. by a dashboard).
pub async fn gold_session(lake: &Lake) -> Result<SessionContext> {
    session(lake, &crate::gold::TABLES).await
}

/// Runs one read-only query in a prepared session.
pub async fn run_in(ctx: &SessionContext, sql: &str, limits: QueryLimits) -> Result<QueryResult> {
    let started = Instant::now();
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let work = async {
        let df = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| read_only_error(e.to_string()))?;
        let df = df
            .limit(0, Some(limits.max_rows.saturating_add(1)))
            .map_err(|e| Error::Query(e.to_string()))?;
        let schema = df.schema().inner().clone();
        let batches = df
            .collect()
            .await
            .map_err(|e| Error::Query(e.to_string()))?;
        Ok::<_, Error>((schema, batches))
    };
    let (schema, mut batches) =
        tokio::time::timeout(limits.timeout, work)
            .await
            .map_err(|_| {
                Error::Query(format!(
                    "query exceeded the {} s time limit",
                    limits.timeout.as_secs_f64()
                ))
            })??;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = total > limits.max_rows;
    if truncated {
        batches = cut(batches, limits.max_rows);
    }
    Ok(QueryResult {
        schema,
        batches,
        truncated,
        elapsed: started.elapsed(),
    })
}

fn cut(batches: Vec<RecordBatch>, max: usize) -> Vec<RecordBatch> {
    let mut left = max;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        out.push(b.slice(0, take));
        left -= take;
    }
    out
}

/// Makes DataFusion's refusal of non-queries readable.
fn read_only_error(message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    if lower.contains("not supported")
        && (lower.contains("ddl") || lower.contains("dml") || lower.contains("statement"))
    {
        Error::Query(format!(
            "read-only endpoint: only SELECT queries are allowed ({message})"
        ))
    } else if lower.contains("table function") && lower.contains("not found") {
        Error::Query(format!("read-only endpoint: only the lake's tables can be queried; there are no file- or URL-reading table functions ({message})"))
    } else {
        Error::Query(message)
    }
}

/// Formats a result as an aligned text table.
pub fn to_text_table(result: &QueryResult) -> Result<String> {
    let text = deltalake::arrow::util::pretty::pretty_format_batches(&result.batches)
        .map_err(|e| Error::Query(e.to_string()))?
        .to_string();
    Ok(text)
}

/// Formats a result as CSV with a header row.
pub fn to_csv(result: &QueryResult) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut writer = deltalake::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in &result.batches {
            writer.write(b).map_err(|e| Error::Query(e.to_string()))?;
        }
    }
    String::from_utf8(buf).map_err(|e| Error::Query(e.to_string()))
}

/// Formats a result as a JSON array of row objects.
pub fn to_json_rows(result: &QueryResult) -> Result<serde_json::Value> {
    let mut buf = Vec::new();
    {
        let mut writer = deltalake::arrow::json::ArrayWriter::new(&mut buf);
        let refs: Vec<&RecordBatch> = result.batches.iter().collect();
        writer
            .write_batches(&refs)
            .map_err(|e| Error::Query(e.to_string()))?;
        writer.finish().map_err(|e| Error::Query(e.to_string()))?;
    }
    if buf.is_empty() {
        return Ok(serde_json::Value::Array(vec![]));
    }
    serde_json::from_slice(&buf).map_err(|e| Error::Query(e.to_string()))
}
