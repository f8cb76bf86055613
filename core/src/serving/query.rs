//! Read-only SQL over the lake (DataFusion), with a row limit and a time limit.
//!
//! Only queries run: DDL (`CREATE`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`, `COPY`) and statements
//! (`SET`, transactions) are refused before planning, and the session has no file-reading table
//! functions or URL tables, so SQL can reach nothing but the registered tables. Queries of a caller run
//! in the caller's policy session ([`run_as`]): only policy views are registered there.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::logical_expr::LogicalPlan;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};

use super::tables::known_tables;
use crate::security::audit::{AuditLog, AuditRecord};
use crate::security::cache::PolicyCache;
use crate::security::{policy, Identity};
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
    /// True when the query read a view whose small cells (counts 1–10) are shown as NULL.
    pub suppressed: bool,
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

/// Runs one read-only query over every known table as the local administrator (the CLI without a token):
/// [`run_as`] with [`Identity::local_admin`], not audited.
pub async fn run(lake: &Lake, sql: &str, limits: QueryLimits) -> Result<QueryResult> {
    let admin = Identity::local_admin();
    let access = Access {
        identity: &admin,
        pseudonym_key: None,
        audit: None,
        read_path: "cli_query",
        cache: None,
    };
    run_as(lake, &access, sql, limits).await
}

/// Who runs a query, and where its audit record goes.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The caller.
    pub identity: &'a Identity,
    /// The deployment's pseudonym key (needed by the roles that see masked identifiers).
    pub pseudonym_key: Option<&'a [u8]>,
    /// The audit log; `None` only for the local administrator at the command line.
    pub audit: Option<&'a AuditLog>,
    /// Read path named in the audit record (`sql_endpoint`, `cli_query`, `http:/api/...`).
    pub read_path: &'a str,
    /// Policy sessions kept between queries (servers); `None` opens the tables for this query alone.
    /// When given, its pseudonym key is used.
    pub cache: Option<&'a PolicyCache>,
}

/// Runs one read-only query as `access.identity`: in the identity's policy session (every table a policy
/// view, the raw tables unreachable — see [`crate::security::policy`]), audited (allowed or denied) without
/// waiting for the audit write.
pub async fn run_as(
    lake: &Lake,
    access: &Access<'_>,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryResult> {
    let mut record = AuditRecord::new(Some(access.identity), access.read_path, sql);
    let outcome = async {
        let policy = match access.cache {
            Some(cache) => cache.session(lake, access.identity).await?,
            None => Arc::new(
                policy::session(lake, &known_tables(), access.identity, access.pseudonym_key)
                    .await?,
            ),
        };
        let df = plan(&policy.ctx, sql).await?;
        let touched = touched_tables(df.logical_plan());
        record.tables = touched.iter().cloned().collect::<Vec<_>>().join(",");
        let phi = touched
            .iter()
            .any(|t| policy.views.get(t).is_some_and(|v| v.phi_unmasked));
        let suppressed = touched
            .iter()
            .any(|t| policy.views.get(t).is_some_and(|v| v.suppressed));
        let mut result = execute(df, limits).await?;
        result.suppressed = suppressed;
        record.rows_returned = result.num_rows() as i64;
        record.phi_returned = phi && result.num_rows() > 0;
        Ok::<_, Error>(result)
    }
    .await;
    if let Some(audit) = access.audit {
        match &outcome {
            Ok(_) => audit.record(record),
            Err(e) => audit.record(record.denied(e.to_string())),
        }
    }
    outcome
}

/// The tables (views) a plan reads, subqueries included.
fn touched_tables(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.insert(scan.table_name.to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
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
    let df = tokio::time::timeout(limits.timeout, plan(ctx, sql))
        .await
        .map_err(|_| timeout_error(limits))??;
    let mut result = execute(df, limits).await?;
    result.elapsed = started.elapsed();
    Ok(result)
}

fn timeout_error(limits: QueryLimits) -> Error {
    Error::Query(format!(
        "query exceeded the {} s time limit",
        limits.timeout.as_secs_f64()
    ))
}

/// Plans one read-only statement.
async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options)
        .await
        .map_err(|e| read_only_error(e.to_string()))
}

/// Runs a planned query under the limits.
async fn execute(df: DataFrame, limits: QueryLimits) -> Result<QueryResult> {
    let started = Instant::now();
    let work = async {
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
    let (schema, mut batches) = tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| timeout_error(limits))??;
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
        suppressed: false,
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
