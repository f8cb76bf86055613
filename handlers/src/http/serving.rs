//! Query (read-only SQL) and Health. The dashboard is in `dashboard.rs`.

use std::sync::Arc;
use std::time::Duration;

use patientflow_core::serving::query::{self, QueryLimits};
use patientflow_core::serving::tables::{describe_all, TableInfo};
use serde_json::{json, Value};

use super::auth;
use super::error::AppError;
use super::functions::{Invocation, Outcome};
use super::protocol::{get_ci, HttpReply, HttpTriggerRequest, InvokeRequest};
use super::AppState;

/// Rows a query may return at most, whatever the caller asks.
pub const MAX_ROWS_CAP: usize = 100_000;
/// Rows returned when the caller does not say.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// The read path the SQL endpoint's audit records name.
pub const SQL_ENDPOINT: &str = "sql_endpoint";
/// What a result with suppressed small cells says about them.
pub const SUPPRESSION_NOTE: &str =
    "counts from 1 to 10 in aggregate tables are shown as null (small-cell suppression)";
/// Time a query may take (an HTTP function must answer within 230 s).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A query request: `POST {"sql", "format": "json"|"csv", "max_rows"}`, `GET ?sql=&format=&max_rows=`, or
/// a `text/plain` / `application/sql` body holding the SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The SQL.
    pub sql: String,
    /// `true` for CSV.
    pub csv: bool,
    /// Row limit.
    pub max_rows: usize,
}

/// Reads a query request from the HTTP trigger.
pub fn parse_query(http: &HttpTriggerRequest) -> Result<QueryRequest, AppError> {
    let content_type = http
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut sql = http.query.get("sql").cloned();
    let mut format = http.query.get("format").cloned();
    let mut max_rows: Option<usize> = match http.query.get("max_rows") {
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| AppError::BadRequest(format!("max_rows '{v}' is not a number")))?,
        ),
        None => None,
    };
    // A GET's body (some clients send one) is ignored, as the host's GET semantics say.
    if http.method != "GET" && !http.body.trim().is_empty() {
        let looks_json = http.body.trim_start().starts_with('{');
        if content_type.contains("text/plain") || content_type.contains("sql") || !looks_json {
            if content_type.contains("json") {
                // Declared JSON but not an object: let json_body explain.
                http.json_body()?;
            }
            sql = Some(http.body.clone());
        } else {
            let body = http.json_body()?;
            if let Some(v) = get_ci(&body, "sql") {
                sql = Some(
                    v.as_str()
                        .ok_or_else(|| AppError::BadRequest("'sql' must be a string".into()))?
                        .to_string(),
                );
            }
            if let Some(v) = get_ci(&body, "format") {
                format = Some(
                    v.as_str()
                        .ok_or_else(|| {
                            AppError::BadRequest("'format' must be \"json\" or \"csv\"".into())
                        })?
                        .to_string(),
                );
            }
            if let Some(v) = get_ci(&body, "max_rows") {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| {
                        AppError::BadRequest("'max_rows' must be a positive number".into())
                    })?;
                max_rows = Some(usize::try_from(n).unwrap_or(MAX_ROWS_CAP));
            }
        }
    }
    let sql = sql
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::BadRequest(
                "no SQL given: POST {\"sql\": \"SELECT …\"} or GET ?sql=SELECT…".into(),
            )
        })?;
    let csv = match format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") | Some("") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "format '{other}' is not json or csv"
            )))
        }
    };
    let max_rows = max_rows.unwrap_or(DEFAULT_MAX_ROWS).clamp(1, MAX_ROWS_CAP);
    Ok(QueryRequest { sql, csv, max_rows })
}

/// Query: read-only SQL over the lake's tables. Refused statements and bad SQL are 400 with the message.
pub async fn query(
    state: &Arc<AppState>,
    _inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let http = HttpTriggerRequest::from_invocation(req)?;
    let identity = auth::identify(state, &http, SQL_ENDPOINT).await?;
    let q = parse_query(&http)?;
    let limits = QueryLimits {
        max_rows: q.max_rows,
        timeout: QUERY_TIMEOUT,
    };
    let result = auth::query_as(state, &identity, SQL_ENDPOINT, &q.sql, limits).await?;
    let rows = result.num_rows();
    let line = format!(
        "Query: {rows} rows in {} ms (truncated: {}) as {} ({})",
        result.elapsed.as_millis(),
        result.truncated,
        identity.subject,
        identity.role
    );
    let reply = if q.csv {
        let mut r = HttpReply::text(
            200,
            "text/csv; charset=utf-8",
            query::to_csv(&result).map_err(AppError::from_core)?,
        );
        r.headers
            .insert("X-Truncated".into(), result.truncated.to_string());
        if result.suppressed {
            r.headers
                .insert("X-Small-Cells-Suppressed".into(), SUPPRESSION_NOTE.into());
        }
        r
    } else {
        let columns = columns_json(&result);
        let data = query::to_json_rows(&result).map_err(AppError::from_core)?;
        HttpReply::json(
            200,
            json!({"columns": columns, "rows": data, "row_count": rows, "truncated": result.truncated,
                   "elapsed_ms": result.elapsed.as_millis() as u64,
                   "role": identity.role.as_str(),
                   "suppressed": result.suppressed.then_some(SUPPRESSION_NOTE)}),
        )
    };
    Ok(Outcome::http(reply, line))
}

/// The result's columns as the JSON answers list them: `[{"name", "type"}]`.
pub fn columns_json(result: &query::QueryResult) -> Value {
    result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect()
}

/// The table inventory, or why the lake cannot be read.
async fn tables(state: &Arc<AppState>) -> Result<Vec<TableInfo>, AppError> {
    let lake = state.lake().await?;
    match tokio::time::timeout(Duration::from_secs(20), describe_all(lake)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(AppError::Unavailable(format!(
            "the lake cannot be read: {e}"
        ))),
        Err(_) => Err(AppError::Unavailable(
            "the lake did not answer within 20 s".into(),
        )),
    }
}

/// Health: 200 with the lake URL and every table's version and rows; 503 when the lake is unreachable.
/// No patient data.
pub async fn health(
    state: &Arc<AppState>,
    _inv: &Invocation,
    _req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let checked_at = chrono::Utc::now().to_rfc3339();
    let lake_url = match state.lake().await {
        Ok(l) => l.root().to_string(),
        Err(_) => state.settings.lake_url.clone(),
    };
    let reply = match tables(state).await {
        Ok(tables) => {
            let tables: Vec<Value> =
                tables.iter().map(|t| json!({"name": t.name, "version": t.version, "rows": t.rows, "files": t.files})).collect();
            HttpReply::json(
                200,
                json!({"status": "healthy", "lake": lake_url, "tables": tables, "checked_at": checked_at,
                       "version": env!("CARGO_PKG_VERSION")}),
            )
        }
        Err(e) => HttpReply::json(
            503,
            json!({"status": "unhealthy", "lake": lake_url, "error": e.body()["error"], "checked_at": checked_at,
                   "version": env!("CARGO_PKG_VERSION")}),
        ),
    };
    let line = format!("Health: {}", reply.status);
    Ok(Outcome::http(reply, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(
        method: &str,
        query: &[(&str, &str)],
        content_type: &str,
        body: &str,
    ) -> HttpTriggerRequest {
        let mut r = HttpTriggerRequest {
            method: method.into(),
            body: body.into(),
            ..Default::default()
        };
        for (k, v) in query {
            r.query.insert(k.to_string(), v.to_string());
        }
        if !content_type.is_empty() {
            r.headers.insert("content-type".into(), content_type.into());
        }
        r
    }

    #[test]
    fn query_requests_come_in_three_shapes() {
        let q = parse_query(&http(
            "GET",
            &[("sql", "SELECT 1"), ("format", "csv")],
            "",
            "",
        ))
        .unwrap();
        assert_eq!(
            q,
            QueryRequest {
                sql: "SELECT 1".into(),
                csv: true,
                max_rows: DEFAULT_MAX_ROWS
            }
        );
        let q = parse_query(&http(
            "POST",
            &[],
            "application/json",
            r#"{"sql":"SELECT 2","max_rows":5}"#,
        ))
        .unwrap();
        assert_eq!((q.sql.as_str(), q.csv, q.max_rows), ("SELECT 2", false, 5));
        let q = parse_query(&http("POST", &[], "text/plain", "SELECT 3")).unwrap();
        assert_eq!(q.sql, "SELECT 3");
        let q = parse_query(&http(
            "POST",
            &[],
            "application/json",
            r#"{"sql":"SELECT 4","max_rows":10000000}"#,
        ))
        .unwrap();
        assert_eq!(q.max_rows, MAX_ROWS_CAP);
        for (ct, body) in [
            ("application/json", "{\"sql\": 1}"),
            ("application/json", "{bad"),
            ("", ""),
            ("application/json", "{\"sql\":\"x\",\"format\":\"xml\"}"),
        ] {
            assert!(
                matches!(
                    parse_query(&http("POST", &[], ct, body)),
                    Err(AppError::BadRequest(_))
                ),
                "{body}"
            );
        }
    }
}
