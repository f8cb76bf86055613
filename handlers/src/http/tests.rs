//! The app driven in process with `tower::ServiceExt::oneshot`, on a local lake.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

/// The app as `serve` runs it without security settings: anonymous demo mode (PHI masked). The
/// access-control routes are tested over real HTTP in tests/security_http.rs.
fn state(lake: &std::path::Path) -> Arc<AppState> {
    let mut s = Settings::from_env(lake.to_str().unwrap());
    s.landing = lake.join("landing").display().to_string();
    s.callback_attempts = 1;
    let demo = patientflow_core::security::SecuritySettings {
        anonymous_demo: true,
        ..Default::default()
    };
    AppState::with_security(s, auth::Security::new(demo).unwrap())
}

#[tokio::test]
async fn a_closed_app_answers_data_routes_401_and_health_200() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::from_env(dir.path().to_str().unwrap());
    s.landing = dir.path().join("landing").display().to_string();
    let app = app(AppState::new(s));
    let (status, body) = call(
        &app,
        "POST",
        "/api/query",
        "application/json",
        r#"{"sql":"SELECT 1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body)["error"]["code"], "UNAUTHORIZED");
    let (status, _) = call(&app, "GET", "/api/health", "application/json", "").await;
    assert_eq!(status, StatusCode::OK);
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

const HL7: &str = "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A01|M1|P|2.5\rEVN|A01|20260114083000-0600\rPID|||MHA01-P1^^^MHA01^MR||Doe^Jane||19800101|F\rPV1||I|MED^12^B^MHA01||||||||||||||||MHA01-V1";

#[tokio::test]
async fn readiness_unknown_routes_and_bad_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(dir.path()));
    let (s, b) = call(&app, "GET", "/", "text/plain", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_of(&b)["status"], "ready");
    let (s, b) = call(&app, "POST", "/NoSuchFunction", "application/json", "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&b)["error"]["code"], "NOT_FOUND");
    let (s, b) = call(
        &app,
        "POST",
        "/AdtIngest",
        "application/json",
        "{\"Data\": [",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(json_of(&b)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("custom-handler payload"));
    let (s, _) = call(&app, "GET", "/AdtIngest", "application/json", Body::empty()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // A trigger payload without events fails the invocation with 400 and the host's response shape.
    let (s, b) = call(
        &app,
        "POST",
        "/AdtIngest",
        "application/json",
        "{\"Data\":{},\"Metadata\":{}}",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v = json_of(&b);
    assert!(v["Logs"][0].as_str().unwrap().contains("AdtIngest failed"));
    assert!(v["Outputs"].is_object());
}

#[tokio::test]
async fn adt_batches_land_once_and_query_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(&dir.path().join("lake")));
    let events = serde_json::to_string(&vec![HL7.to_string(), "garbage".to_string()]).unwrap();
    let payload = json!({"Data": {"events": events}, "Metadata": {
        "PartitionContext": {"EventHubName": "adt-events", "PartitionId": "1"},
        "SequenceNumberArray": "[7,8]", "OffsetArray": "[\"100\",\"200\"]",
        "EnqueuedTimeUtcArray": "[\"2026-01-14T14:30:00.5\",\"2026-01-14T14:30:01\"]"}});
    let (s, b) = call(
        &app,
        "POST",
        "/AdtIngest",
        "application/json",
        payload.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let v = json_of(&b);
    assert_eq!(v["ReturnValue"]["rows_written"]["bronze_adt_messages"], 2);
    assert_eq!(v["ReturnValue"]["flagged_rows"], 1);
    // Redelivery: nothing new.
    let (_, b) = call(
        &app,
        "POST",
        "/AdtIngest",
        "application/json",
        payload.to_string(),
    )
    .await;
    assert_eq!(json_of(&b)["ReturnValue"]["duplicates_skipped"], 2);
    // Query through the host shape (GET, query string as an older host's JSON-in-string).
    let q = json!({"Data": {"req": {"Method": "GET", "Url": "http://x/api/query",
        "Query": "{\"sql\":\"SELECT eh_partition, eh_sequence_number, parse_status FROM bronze_adt_messages ORDER BY eh_sequence_number\"}",
        "Headers": {}, "Params": {}, "Body": ""}}, "Metadata": {}});
    let (s, b) = call(&app, "POST", "/Query", "application/json", q.to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let res = &json_of(&b)["Outputs"]["res"];
    assert_eq!(res["statusCode"], "200");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["rows"],
        json!([
        {"eh_partition": "1", "eh_sequence_number": 7, "parse_status": "ok"},
        {"eh_partition": "1", "eh_sequence_number": 8, "parse_status": "unparseable"}])
    );
    // The local /api route gives the same through plain HTTP; a write statement is a 400.
    let (s, b) = call(
        &app,
        "POST",
        "/api/query",
        "application/json",
        r#"{"sql":"SELECT COUNT(*) AS n FROM bronze_adt_messages","format":"csv"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&b), "n\n2\n");
    let (s, b) = call(
        &app,
        "POST",
        "/api/query",
        "application/json",
        r#"{"sql":"DROP TABLE bronze_adt_messages"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&b)["error"]["code"], "BAD_REQUEST");
    let (s, _) = call(&app, "POST", "/api/query", "application/json", "{oops").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn local_adt_endpoint_health_dashboard_and_timers() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(&dir.path().join("lake")));
    let ndjson = "{\"message_id\":\"1\",\"event_type\":\"A04\",\"facility\":\"MHA02\",\"recorded_time\":\"2026-01-14T08:00:00Z\"}\n\
                  {\"message_id\":\"2\",\"event_type\":\"A04\",\"facility\":\"MHA03\",\"recorded_time\":\"2026-01-14T08:00:00Z\"}\n";
    let (s, b) = call(&app, "POST", "/api/adt", "application/x-ndjson", ndjson).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        json_of(&b)["report"]["rows_written"]["bronze_adt_messages"],
        2
    );
    let (s, b) = call(&app, "POST", "/api/adt", "text/plain", HL7).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_of(&b)["events"], 1);
    let (s, _) = call(&app, "POST", "/api/adt", "text/plain", "  ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = call(&app, "GET", "/api/health", "text/plain", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let h = json_of(&b);
    assert_eq!(h["status"], "healthy");
    assert!(h["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "bronze_adt_messages" && t["rows"] == 3));
    let (s, b) = call(&app, "GET", "/api/dashboard", "text/plain", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&b).contains("dashboard.js"));
    let (s, _) = call(
        &app,
        "GET",
        "/api/dashboard/nope.js",
        "text/plain",
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, "DELETE", "/api/health", "text/plain", Body::empty()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // A timer invocation of SilverRefresh answers in the host's shape whatever Silver does.
    let timer = timers::timer_payload(functions::Function::SilverRefresh, None, None, false);
    let (s, b) = call(
        &app,
        "POST",
        "/SilverRefresh",
        "application/json",
        serde_json::to_string(&timer).unwrap(),
    )
    .await;
    let v = json_of(&b);
    if s == StatusCode::OK {
        assert_eq!(v["ReturnValue"]["stage"], "silver");
    } else {
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(v["Logs"][0]
            .as_str()
            .unwrap()
            .starts_with("pipeline_run_failed stage=silver"));
    }
}

#[tokio::test]
async fn unreachable_lake_is_503_on_health() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // A lake "folder" that is a file cannot be opened.
    let app = app(state(&file.join("lake")));
    let (s, b) = call(&app, "GET", "/api/health", "text/plain", Body::empty()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&b)["status"], "unhealthy");
    let (s, _) = call(&app, "GET", "/", "text/plain", Body::empty()).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "still ready: the host must be able to start it"
    );
}

#[tokio::test]
async fn ehr_and_reference_files_route_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir.path().join("lake"));
    let landing = std::path::PathBuf::from(&st.settings.landing);
    std::fs::create_dir_all(landing.join("reference")).unwrap();
    std::fs::write(
        landing.join("reference/hospitals.csv"),
        "hospital_id,name,timezone\nMHA01,Alpha General,America/Chicago\n",
    )
    .unwrap();
    let app = app(st);
    let (s, b) = call(
        &app,
        "POST",
        "/api/departments/sync",
        "application/json",
        "",
    )
    .await;
    let v = json_of(&b);
    assert!(s == StatusCode::OK || s.as_u16() == 422, "{v}");
    assert_eq!(v["files"], json!(["reference/hospitals.csv"]));
    // Blob trigger: an ignored name, then a base64 blob.
    let ignored = json!({"Data": {"blob": "eA=="}, "Metadata": {"name": "\"ehr/_SUCCESS\""}});
    let (s, b) = call(
        &app,
        "POST",
        "/EhrBatchIngest",
        "application/json",
        ignored.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(json_of(&b)["Logs"][0].as_str().unwrap().contains("ignored"));
    let (s, b) = call(
        &app,
        "POST",
        "/api/ehr/ingest",
        "application/json",
        r#"{"container":"elsewhere"}"#,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&b)
    );
}

#[tokio::test]
async fn gold_refresh_answers_202_and_needs_a_callback() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(state(&dir.path().join("lake")));
    let (s, b) = call(
        &app,
        "POST",
        "/api/gold/refresh",
        "application/json",
        r#"{"mode":"incremental"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(json_of(&b)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("callBackUri"));
    let (s, b) = call(
        &app,
        "POST",
        "/api/gold/refresh",
        "application/json",
        r#"{"callBackUri":"http://127.0.0.1:9/cb"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(json_of(&b)["status"], "accepted");
}

/// POSTs an invocation the way the host does, with its invocation id and `traceparent` headers.
async fn invoke_as_host(app: &Router, function: &str, payload: &Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/{function}"))
        .header("content-type", "application/json")
        .header("x-azure-functions-invocationid", "inv-0001")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::from(payload.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, json_of(&bytes))
}

#[tokio::test]
async fn every_pipeline_invocation_leaves_one_ledger_row() {
    use patientflow_core::ops::ledger::{self, RunFilter};
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir.path().join("lake"));
    let app = app(st.clone());
    // An Event Hub batch on the host's second retry of it, in the host's trace.
    let events = serde_json::to_string(&vec![HL7.to_string(), "garbage".to_string()]).unwrap();
    let batch = json!({"Data": {"events": events}, "Metadata": {
        "PartitionContext": {"EventHubName": "adt-events", "PartitionId": "0"},
        "SequenceNumberArray": "[1,2]", "OffsetArray": "[\"10\",\"20\"]",
        "EnqueuedTimeUtcArray": "[\"2026-01-14T14:30:00\",\"2026-01-14T14:30:01\"]",
        "RetryContext": {"RetryCount": 2, "MaxRetryCount": 5, "Exception": null}}});
    let (s, v) = invoke_as_host(&app, "AdtIngest", &batch).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A batch without events fails the invocation: a failed run.
    let (s, _) = invoke_as_host(&app, "AdtIngest", &json!({"Data": {}, "Metadata": {}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The Silver timer, then a query (no stage: no row), then an HTTP call refused with 400 (no row).
    let timer = timers::timer_payload(functions::Function::SilverRefresh, None, None, false);
    let (s, v) = invoke_as_host(
        &app,
        "SilverRefresh",
        &serde_json::to_value(&timer).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = call(
        &app,
        "POST",
        "/api/query",
        "application/json",
        r#"{"sql":"SELECT COUNT(*) FROM ops_run_ledger"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app,
        "POST",
        "/api/ehr/ingest",
        "application/json",
        r#"{"container":"x"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // GoldRefresh answers 202; its run is recorded when the background refresh ends (skipped: no
    // reference data was ingested, so Silver has no departments yet).
    let (s, _) = call(
        &app,
        "POST",
        "/api/gold/refresh",
        "application/json",
        r#"{"callBackUri":"http://127.0.0.1:9/cb"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    st.drain_background(std::time::Duration::from_secs(60))
        .await;

    let lake = st.lake().await.unwrap();
    let filter = RunFilter {
        limit: 100,
        ..Default::default()
    };
    let mut rows = ledger::recent(lake, &filter).await.unwrap();
    rows.reverse();
    let seen: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.stage.as_str(), r.trigger.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("bronze.adt", "eventhub", "succeeded"),
            ("bronze.adt", "eventhub", "failed"),
            ("silver", "timer", "succeeded"),
            ("gold", "adf", "skipped"),
        ]
    );
    let adt = &rows[0];
    assert_eq!((adt.rows_in, adt.rows_out, adt.rows_quarantined), (2, 2, 1));
    assert_eq!(adt.retry_count, 2);
    assert_eq!(
        adt.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(adt.details["function"], "AdtIngest");
    assert_eq!(adt.details["invocation_id"], "inv-0001");
    assert_eq!(adt.details["max_retry_count"], 5);
    assert!(adt.run_id.starts_with("eventhub-"), "{}", adt.run_id);
    let failed = &rows[1];
    assert!(failed.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert_eq!(failed.retry_count, 0);
    let silver = &rows[2];
    assert_eq!(silver.rows_in, 2);
    assert_eq!(silver.details["function"], "SilverRefresh");
    assert_eq!(rows[3].details["function"], "GoldRefresh");
}
