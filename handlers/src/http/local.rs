//! The host's part, played locally (`patientflow serve`, and harmlessly present under the real host):
//! `/api/<route>` calls of HTTP-triggered functions are wrapped as `Data.req`, dispatched like a host
//! invocation, and `Outputs.res` becomes the HTTP answer; `POST /api/adt` stands in for Event Hubs and
//! feeds AdtIngest in Event-Hub-shaped batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use patientflow_core::bronze::adt::split_messages;
use patientflow_core::bronze::IngestReport;
use serde_json::{json, Map, Value};

use super::error::AppError;
use super::eventhub::{host_payload, EventMeta};
use super::functions::{self, Function, Invocation, Trigger};
use super::protocol::{reply_from_output, HttpReply, InvokeRequest};
use super::{reply_response, AppState};

/// Events per AdtIngest invocation (`maxEventBatchSize` in host.json).
pub const MAX_BATCH: usize = 1000;
/// Partitions of the stand-in hub (the Azure hub has 4).
pub const PARTITIONS: usize = 4;

/// Sequence numbers and byte offsets per partition of the stand-in hub. They start at 0 in each process:
/// they are lineage only; de-duplication is by message key.
#[derive(Debug, Default)]
pub struct StandInPartitions {
    next_sequence: [i64; PARTITIONS],
    next_offset: [i64; PARTITIONS],
}

/// Matches an `/api/` path against a function route template (`a/{x}/b`, `dashboard/{*path}`). Returns
/// the route parameters.
pub fn match_route(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let path = path.trim_matches('/');
    let mut segments = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect::<Vec<_>>()
    };
    segments.reverse();
    for part in template.trim_matches('/').split('/') {
        if let Some(name) = part.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
            segments.reverse();
            params.insert(name.to_string(), segments.join("/"));
            return Some(params);
        }
        let seg = segments.pop()?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let name = name.split(':').next().unwrap_or(name).trim_end_matches('?');
            params.insert(name.to_string(), seg.to_string());
        } else if !part.eq_ignore_ascii_case(seg) {
            return None;
        }
    }
    segments.is_empty().then_some(params)
}

/// The HTTP function serving an `/api/` path, with its route parameters.
pub fn find_route(path: &str) -> Option<(Function, BTreeMap<String, String>)> {
    Function::ALL.into_iter().find_map(|f| match f.trigger() {
        Trigger::Http { route, .. } => match_route(route, path).map(|p| (f, p)),
        _ => None,
    })
}

/// `/api` (no route).
pub async fn api_route_root(
    state: State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    api_route(
        state,
        Path(String::new()),
        method,
        uri,
        headers,
        query,
        body,
    )
    .await
}

/// `/api/{*path}`: an HTTP-triggered function called the way the host calls it.
pub async fn api_route(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some((function, params)) = find_route(&path) else {
        return AppError::NotFound(format!("no function serves /api/{path}")).into_response();
    };
    let Trigger::Http { methods, .. } = function.trigger() else {
        return AppError::NotFound(format!("no function serves /api/{path}")).into_response();
    };
    let m = method.as_str().to_ascii_lowercase();
    if !methods.contains(&m.as_str()) {
        return AppError::MethodNotAllowed(format!(
            "/api/{path} accepts {}",
            methods.join(", ").to_ascii_uppercase()
        ))
        .into_response();
    }
    let req = http_invocation(function, &method, &uri, &headers, &query, &params, &body);
    let inv = Invocation::local(function);
    let span = functions::invocation_span(function, &inv.id, None);
    let (status, response) =
        tracing::Instrument::instrument(functions::invoke(&state, &inv, req), span).await;
    if !(200..300).contains(&status) {
        // The host answers a failed invocation with a bare 500.
        let reply = HttpReply::json(
            500,
            json!({"error": {"code": "INVOCATION_FAILED", "message": response.logs.join("; ")}}),
        );
        return reply_response(&reply);
    }
    match response.outputs.get("res") {
        Some(res) => {
            let (status, headers, body) = reply_from_output(res);
            let mut reply = HttpReply::text(status, "text/plain", body);
            for (k, v) in headers {
                if k.eq_ignore_ascii_case("content-type") {
                    reply.content_type = v;
                } else {
                    reply.headers.insert(k, v);
                }
            }
            reply_response(&reply)
        }
        None => reply_response(&HttpReply::text(204, "text/plain", String::new())),
    }
}

/// `Data.req` as the host builds it in default mode (reference §1.3): Url, Method, Query, Headers (arrays
/// of values), Params, Body (text, or base64 for a body that is not UTF-8).
pub fn http_invocation(
    function: Function,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
    params: &BTreeMap<String, String>,
    body: &[u8],
) -> InvokeRequest {
    let mut h: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let entry = h
            .entry(name.as_str().to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let body = match std::str::from_utf8(body) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let url = format!("http://{host}{uri}");
    let req = json!({
        "Url": url, "Method": method.as_str(), "Query": query, "Headers": h, "Params": params, "Body": body,
    });
    let mut metadata = Map::new();
    metadata.insert("Query".into(), json!(query));
    metadata.insert("Headers".into(), json!(h));
    for (k, v) in params {
        metadata.insert(k.clone(), json!(v));
    }
    metadata.insert("sys".into(), sys(function));
    let mut data = Map::new();
    data.insert("req".into(), req);
    InvokeRequest { data, metadata }
}

/// `Metadata.sys`.
pub fn sys(function: Function) -> Value {
    json!({"MethodName": function.name(), "UtcNow": Utc::now().to_rfc3339(), "RandGuid": uuid::Uuid::new_v4().to_string()})
}

/// `POST /api/adt`: NDJSON, a JSON array, or HL7 v2 text (one or many messages, batch headers allowed).
/// Every message becomes one event; events go to AdtIngest in batches of at most 1000, per partition
/// (partition key = facility). Answers `{"events", "batches", "report"}`; 500 when a batch could not be
/// written (earlier batches stay written; re-posting is safe because ingestion is idempotent).
pub async fn adt_post(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t.to_string(),
        Err(_) => body.iter().map(|&b| b as char).collect(),
    };
    let messages: Vec<(Option<String>, String)> = split_messages(&text)
        .into_iter()
        .map(|m| (m.header.ok().and_then(|h| h.facility), m.text))
        .collect();
    if messages.is_empty() {
        return AppError::BadRequest(
            "the body holds no message (NDJSON, a JSON array or HL7 v2 text)".into(),
        )
        .into_response();
    }
    match feed_adt(&state, messages).await {
        Ok((batches, report)) => reply_response(&HttpReply::json(
            200,
            json!({"events": report.inputs_seen, "batches": batches, "report": report}),
        )),
        Err(e) => e.into_response(),
    }
}

/// Feeds messages (with their facility, the partition key) to AdtIngest as the Event Hubs trigger would.
/// Returns the number of invocations and the merged report.
pub async fn feed_adt(
    state: &Arc<AppState>,
    messages: Vec<(Option<String>, String)>,
) -> Result<(usize, IngestReport), AppError> {
    let mut by_partition: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS];
    for (facility, text) in messages {
        let key = facility.unwrap_or_else(|| text.chars().take(64).collect());
        by_partition[partition_of(&key)].push(text);
    }
    let mut report = IngestReport::default();
    let mut batches = 0;
    for (partition, texts) in by_partition.into_iter().enumerate() {
        for chunk in texts.chunks(MAX_BATCH) {
            let now = Utc::now();
            let metas: Vec<EventMeta<'_>> = {
                let mut parts = state.stand_in.lock().unwrap_or_else(|p| p.into_inner());
                chunk
                    .iter()
                    .map(|body| {
                        let meta = EventMeta {
                            body,
                            sequence_number: parts.next_sequence[partition],
                            offset: parts.next_offset[partition],
                            enqueued_time: now,
                        };
                        parts.next_sequence[partition] += 1;
                        parts.next_offset[partition] += body.len() as i64;
                        meta
                    })
                    .collect()
            };
            let payload = host_payload(
                &state.settings.event_hub_name,
                &partition.to_string(),
                &metas,
            );
            let req: InvokeRequest = serde_json::from_value(payload)
                .map_err(|e| AppError::Internal(format!("building the Event Hub payload: {e}")))?;
            let inv = Invocation::local(Function::AdtIngest);
            // The stand-in for Event Hubs logs without an invocation span; exported traces get one.
            let span = if crate::telemetry::enabled() {
                functions::invocation_span(inv.function, &inv.id, None)
            } else {
                tracing::Span::none()
            };
            let (status, response) =
                tracing::Instrument::instrument(functions::invoke(state, &inv, req), span).await;
            batches += 1;
            if status != 200 {
                return Err(AppError::stage("bronze.adt", response.logs.join("; ")));
            }
            if let Some(r) = response.return_value {
                if let Ok(r) = serde_json::from_value::<ReportCounts>(r) {
                    r.add_to(&mut report);
                }
            }
        }
    }
    Ok((batches, report))
}

/// Stable partition of a key (FNV-1a; the same key always goes to the same partition).
pub fn partition_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % PARTITIONS as u64) as usize
}

/// The counts of an [`IngestReport`] read back from an invocation's `ReturnValue`.
#[derive(Debug, serde::Deserialize)]
struct ReportCounts {
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    inputs_seen: usize,
    #[serde(default)]
    inputs_ingested: usize,
    #[serde(default)]
    rows_written: BTreeMap<String, usize>,
    #[serde(default)]
    duplicates_skipped: usize,
    #[serde(default)]
    id_conflicts: usize,
    #[serde(default)]
    flagged_rows: usize,
    #[serde(default)]
    versions: BTreeMap<String, i64>,
}

impl ReportCounts {
    fn add_to(self, report: &mut IngestReport) {
        if report.run_id.is_empty() {
            report.run_id = self.run_id.clone();
        }
        report.absorb(IngestReport {
            run_id: self.run_id,
            inputs_seen: self.inputs_seen,
            inputs_ingested: self.inputs_ingested,
            rows_written: self.rows_written,
            duplicates_skipped: self.duplicates_skipped,
            id_conflicts: self.id_conflicts,
            flagged_rows: self.flagged_rows,
            versions: self.versions,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_like_the_host() {
        assert_eq!(find_route("query").map(|r| r.0), Some(Function::Query));
        assert_eq!(
            find_route("gold/refresh").map(|r| r.0),
            Some(Function::GoldRefresh)
        );
        assert_eq!(find_route("Health/").map(|r| r.0), Some(Function::Health));
        let (f, p) = find_route("dashboard").unwrap();
        assert_eq!((f, p["path"].as_str()), (Function::Dashboard, ""));
        let (_, p) = find_route("dashboard/assets/app.js").unwrap();
        assert_eq!(p["path"], "assets/app.js");
        assert!(find_route("nope").is_none());
        assert!(find_route("query/extra").is_none());
        let p = match_route("pipeline/{stage}/run", "pipeline/silver/run").unwrap();
        assert_eq!(p["stage"], "silver");
    }

    #[test]
    fn partitions_are_stable() {
        assert_eq!(partition_of("MHA01"), partition_of("MHA01"));
        assert!(partition_of("MHA02") < PARTITIONS);
    }
}
