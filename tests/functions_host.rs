//! Playing the Azure Functions host against the real `patientflow handler` binary over HTTP.
//!
//! The Functions host itself cannot be installed offline, so these tests do what it does (reference
//! azure-contracts.md §1): start the binary with `FUNCTIONS_CUSTOMHANDLER_PORT`, poll `GET /` until it
//! answers, and POST invocation payloads (`tests/fixtures/*.json`, the host's real shapes) to
//! `/<FunctionName>`. The lake is on Azurite when `AZURITE_BLOB_STORAGE_URL` is set (always under CI),
//! else in a temporary folder.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patientflow_tests::{binary, run_cli, texts, unique_azure_lake};
use serde_json::{json, Value};

/// A lake for one test: Azurite when available, else a temporary folder (kept alive by the guard).
struct TestLake {
    url: String,
    azure: bool,
    _dir: Option<tempfile::TempDir>,
}

fn test_lake(tag: &str) -> TestLake {
    match std::env::var("AZURITE_BLOB_STORAGE_URL") {
        Ok(u) if !u.is_empty() => TestLake {
            url: unique_azure_lake(tag),
            azure: true,
            _dir: None,
        },
        _ => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "CI=true but AZURITE_BLOB_STORAGE_URL is not set; .ci/run must start Azurite"
            );
            eprintln!("{tag}: AZURITE_BLOB_STORAGE_URL not set, using a local lake");
            let dir = tempfile::tempdir().unwrap();
            TestLake {
                url: dir.path().join("lake").display().to_string(),
                azure: false,
                _dir: Some(dir),
            }
        }
    }
}

/// Adds an administrator's bearer token to an HTTP invocation, as the host forwards headers.
fn with_admin_token(payload: &mut Value) {
    payload["Data"]["req"]["Headers"]["Authorization"] = json!([format!(
        "Bearer {}",
        patientflow_tests::security::admin_token()
    )]);
}

/// The handler process; killed when dropped.
struct Handler {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Handler {
    /// Starts `patientflow handler` as the host does and waits until `GET /` answers.
    async fn start(lake: &TestLake, extra_env: &[(&str, &str)]) -> Handler {
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("handler")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "test-worker")
            .env("PATIENTFLOW_LAKE", &lake.url)
            .env("PATIENTFLOW_CALLBACK_BACKOFF_MS", "200")
            .env("EventHubName", "adt-events")
            .env(
                "PATIENTFLOW_SECURITY",
                patientflow_tests::security::settings_json(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if lake.azure {
            cmd.env("AZURE_STORAGE_USE_EMULATOR", "true");
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting patientflow handler");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let mut h = Handler {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client,
        };
        let started = Instant::now();
        loop {
            // Any HTTP answer counts as ready (§1.2).
            if h.client.get(format!("{}/", h.base)).send().await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("the handler exited with {status} before it was ready");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the handler must be ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h
    }

    /// POSTs an invocation like the host: JSON body, invocation id and host headers. Returns the HTTP
    /// status and the JSON answer.
    async fn invoke(&self, function: &str, payload: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", uuid_like())
            .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
            .header("User-Agent", "Azure-Functions-Host/4.1037.0.0")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(payload.to_string())
            .send()
            .await
            .expect("invocation request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{function}: answer is not JSON ({e}): {text}"));
        (status, v)
    }

    /// Runs SQL through the Query function (host shape of an older host: `Query` as JSON-in-string) and
    /// returns the rows.
    async fn query(&self, sql: &str) -> Vec<Value> {
        let mut payload = fixture("http_query_get_old_host.json");
        let q = json!({ "sql": sql }).to_string();
        payload["Data"]["req"]["Query"] = json!(q);
        payload["Metadata"]["Query"] = json!(q);
        with_admin_token(&mut payload);
        let (status, answer) = self.invoke("Query", &payload).await;
        assert_eq!(
            status, 200,
            "the host always gets 200 from an HTTP function: {answer}"
        );
        let res = &answer["Outputs"]["res"];
        assert_eq!(res["statusCode"], "200", "query failed: {res}");
        assert!(res["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        body["rows"].as_array().cloned().unwrap()
    }
}

fn uuid_like() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        (n >> 64) as u32,
        n as u64 & 0xffff_ffff_ffff
    )
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Asserts the host response shape of §1.4.
fn assert_host_shape(v: &Value) {
    assert!(v["Outputs"].is_object(), "Outputs: {v}");
    assert!(
        v["Logs"]
            .as_array()
            .is_some_and(|l| l.iter().all(Value::is_string)),
        "Logs: {v}"
    );
    assert!(v.get("ReturnValue").is_some(), "ReturnValue: {v}");
}

fn count_of(rows: &[Value]) -> i64 {
    rows[0]["n"].as_i64().unwrap()
}

#[tokio::test]
async fn event_hub_batch_lands_in_bronze_once_with_lineage() {
    let lake = test_lake("ehbatch");
    let h = Handler::start(&lake, &[]).await;
    let batch = fixture("eventhub_batch.json");
    let (status, answer) = h.invoke("AdtIngest", &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_host_shape(&answer);
    assert_eq!(
        answer["ReturnValue"]["rows_written"]["bronze_adt_messages"], 5,
        "{answer}"
    );
    assert_eq!(answer["ReturnValue"]["flagged_rows"], 0, "{answer}");
    assert!(
        answer["Logs"][0].as_str().unwrap().contains("partition 3"),
        "{answer}"
    );

    let rows = h
        .query(
            "SELECT message_id, format, parse_status, source_kind, source_name, eh_partition, eh_sequence_number, \
             eh_offset, CAST(eh_enqueued_time AS VARCHAR) AS enqueued FROM bronze_adt_messages ORDER BY eh_sequence_number",
        )
        .await;
    assert_eq!(rows.len(), 5);
    let seqs: Vec<i64> = rows
        .iter()
        .map(|r| r["eh_sequence_number"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![101, 102, 103, 104, 105]);
    for r in &rows {
        assert_eq!(r["parse_status"], "ok", "{r}");
        assert_eq!(r["source_kind"], "eventhub");
        assert_eq!(r["source_name"], "adt-events");
        assert_eq!(r["eh_partition"], "3");
    }
    assert_eq!(rows[0]["eh_offset"], "4294969992");
    assert!(
        rows[0]["enqueued"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-14T14:30:00.123"),
        "{}",
        rows[0]
    );
    assert_eq!(rows[3]["format"], "json");

    // The host re-delivers the same batch (at-least-once): nothing new lands.
    let (status, again) = h.invoke("AdtIngest", &batch).await;
    assert_eq!(status, 200);
    assert_eq!(again["ReturnValue"]["duplicates_skipped"], 5, "{again}");
    assert_eq!(again["ReturnValue"]["rows_written"], json!({}), "{again}");
    assert_eq!(
        count_of(
            &h.query("SELECT COUNT(*) AS n FROM bronze_adt_messages")
                .await
        ),
        5
    );

    // And the CLI reads the same table.
    if lake.azure {
        std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
    }
    let out = run_cli(
        &lake.url,
        &[
            "query",
            "--format",
            "csv",
            "SELECT COUNT(DISTINCT message_key) AS n FROM bronze_adt_messages",
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "n\n5\n");
}

#[tokio::test]
async fn plain_arrays_and_system_properties_are_understood() {
    let lake = test_lake("ehplain");
    let h = Handler::start(&lake, &[]).await;
    let (status, answer) = h
        .invoke("AdtIngest", &fixture("eventhub_batch_plain_arrays.json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["ReturnValue"]["rows_written"]["bronze_adt_messages"],
        2
    );
    let rows = h
        .query("SELECT eh_partition, eh_sequence_number, eh_offset, CAST(eh_enqueued_time AS VARCHAR) AS t FROM bronze_adt_messages ORDER BY 2")
        .await;
    assert_eq!(rows[0]["eh_partition"], "2");
    assert_eq!(rows[0]["eh_sequence_number"], 59);
    assert_eq!(rows[0]["eh_offset"], "616008");
    assert!(
        rows[1]["t"]
            .as_str()
            .unwrap()
            .starts_with("2023-03-13T01:25:03"),
        "{}",
        rows[1]
    );
}

#[tokio::test]
async fn a_poison_message_is_stored_flagged_and_the_rest_land() {
    let lake = test_lake("ehpoison");
    let h = Handler::start(&lake, &[]).await;
    let (status, answer) = h
        .invoke("AdtIngest", &fixture("eventhub_batch_poison.json"))
        .await;
    assert_eq!(
        status, 200,
        "a poison message must not fail its batch: {answer}"
    );
    assert_eq!(
        answer["ReturnValue"]["rows_written"]["bronze_adt_messages"], 5,
        "{answer}"
    );
    assert_eq!(answer["ReturnValue"]["flagged_rows"], 3, "{answer}");
    let rows = h
        .query("SELECT eh_sequence_number AS s, parse_status, parse_error IS NOT NULL AS has_reason, payload FROM bronze_adt_messages ORDER BY s")
        .await;
    let status: Vec<&str> = rows
        .iter()
        .map(|r| r["parse_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        vec!["ok", "unparseable", "unparseable", "unparseable", "ok"]
    );
    assert!(rows
        .iter()
        .filter(|r| r["parse_status"] == "unparseable")
        .all(|r| r["has_reason"] == true));
    // Lossless: the poison payload is kept as it came.
    assert_eq!(rows[1]["payload"], "this is not an ADT message");
}

#[tokio::test]
async fn bad_payloads_never_crash_the_handler() {
    let lake = test_lake("ehbad");
    let h = Handler::start(&lake, &[]).await;
    for body in ["", "{", "[1,2]", "null", "{\"Data\": 5}", "\u{0}\u{1}"] {
        let r = h
            .client
            .post(format!("{}/AdtIngest", h.base))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body:?} → {v}");
        assert!(
            v["error"]["message"].is_string() || v["Logs"].is_array(),
            "{v}"
        );
    }
    let r = h
        .client
        .post(format!("{}/NotAFunction", h.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A query with a write statement is the caller's 400, delivered through Outputs.res.
    let mut payload = fixture("http_query_get_old_host.json");
    payload["Data"]["req"]["Query"] =
        json!(json!({"sql": "DELETE FROM bronze_adt_messages"}).to_string());
    with_admin_token(&mut payload);
    let (status, answer) = h.invoke("Query", &payload).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "400", "{answer}");
    let body: Value =
        serde_json::from_str(answer["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
    // Still alive.
    let (status, answer) = h.invoke("Health", &fixture("http_health.json")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "200", "{answer}");
}

#[tokio::test]
async fn silver_timer_invocation_runs_the_silver_refresh() {
    let lake = test_lake("silvertimer");
    let h = Handler::start(&lake, &[]).await;
    let (status, _) = h.invoke("AdtIngest", &fixture("eventhub_batch.json")).await;
    assert_eq!(status, 200);
    let (status, answer) = h
        .invoke("SilverRefresh", &fixture("timer_silver_refresh.json"))
        .await;
    assert_host_shape(&answer);
    assert_eq!(
        status, 200,
        "the Silver refresh must succeed on a healthy lake: {answer}"
    );
    assert_eq!(answer["ReturnValue"]["stage"], "silver", "{answer}");
    assert_eq!(answer["ReturnValue"]["trigger"], "timer", "{answer}");
    assert_ne!(answer["ReturnValue"]["status"], "failed", "{answer}");
    assert!(
        answer["Outputs"].as_object().unwrap().is_empty(),
        "a timer has no output binding"
    );
}

/// A lake that cannot be opened: a folder under a regular file.
fn broken_lake() -> (tempfile::TempDir, TestLake) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let url = file.join("lake").display().to_string();
    (
        dir,
        TestLake {
            url,
            azure: false,
            _dir: None,
        },
    )
}

#[tokio::test]
async fn a_failed_silver_run_fails_the_invocation_with_the_alert_marker() {
    let (_dir, lake) = broken_lake();
    let h = Handler::start(&lake, &[]).await;
    let (status, answer) = h
        .invoke("SilverRefresh", &fixture("timer_silver_refresh.json"))
        .await;
    assert_eq!(status, 500, "{answer}");
    assert_host_shape(&answer);
    let log = answer["Logs"][0].as_str().unwrap();
    assert!(
        log.starts_with("pipeline_run_failed stage=silver "),
        "{log}"
    );
    assert_eq!(answer["ReturnValue"]["error"]["code"], "STAGE_FAILED");
    // A Bronze write failure fails AdtIngest too, so the host's retry policy holds the checkpoint.
    let (status, answer) = h.invoke("AdtIngest", &fixture("eventhub_batch.json")).await;
    assert_eq!(status, 500, "{answer}");
    assert!(
        answer["Logs"][0]
            .as_str()
            .unwrap()
            .starts_with("pipeline_run_failed stage=bronze.adt "),
        "{answer}"
    );
    // Health says 503 (through Outputs.res).
    let (status, answer) = h.invoke("Health", &fixture("http_health.json")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "503", "{answer}");
}

/// A one-route HTTP server standing in for ADF's callBackUri: every POST body goes to the channel.
async fn callback_receiver() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    use axum::routing::post;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/callback/{run}",
        post(
            move |axum::extract::Path(run): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: String| {
                let tx = tx.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    assert!(
                        ct.starts_with("application/json"),
                        "callback content type {ct}"
                    );
                    let _ = tx.send((
                        run,
                        serde_json::from_str(&body).unwrap_or(Value::String(body)),
                    ));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx)
}

fn gold_payload(callback: &str) -> Value {
    let mut p = fixture("http_gold_refresh.json");
    let body = p["Data"]["req"]["Body"]
        .as_str()
        .unwrap()
        .replace("__CALLBACK_URI__", callback);
    p["Data"]["req"]["Body"] = json!(body);
    p
}

async fn start_gold(h: &Handler, callback: &str) {
    let started = Instant::now();
    let (status, answer) = h.invoke("GoldRefresh", &gold_payload(callback)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ADF needs the 202 within a minute; took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{answer}");
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], "202", "{answer}");
    assert!(
        res["body"].is_string() && res["headers"].is_object(),
        "statusCode, body and headers always sent: {res}"
    );
}

async fn next_callback(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(240), rx.recv())
        .await
        .expect("callback within 240 s")
        .expect("callback")
}

#[tokio::test]
async fn gold_refresh_answers_202_then_calls_back_with_the_stage_report() {
    let lake = test_lake("goldok");
    let h = Handler::start(&lake, &[]).await;
    let (addr, mut rx) = callback_receiver().await;
    let (status, _) = h.invoke("AdtIngest", &fixture("eventhub_batch.json")).await;
    assert_eq!(status, 200);
    let (status, answer) = h
        .invoke("SilverRefresh", &fixture("timer_silver_refresh.json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    start_gold(&h, &format!("http://{addr}/callback/ok?signature=abc")).await;
    let (run, body) = next_callback(&mut rx).await;
    assert_eq!(run, "ok");
    assert_eq!(body["StatusCode"], "200", "{body}");
    assert!(body.get("Error").is_none(), "{body}");
    assert_eq!(body["Output"]["stage"], "gold", "{body}");
    assert_eq!(body["Output"]["trigger"], "adf", "{body}");
    assert_ne!(body["Output"]["status"], "failed", "{body}");
}

#[tokio::test]
async fn gold_refresh_failure_calls_back_with_the_adf_error_shape() {
    let (_dir, lake) = broken_lake();
    let h = Handler::start(&lake, &[]).await;
    let (addr, mut rx) = callback_receiver().await;
    start_gold(&h, &format!("http://{addr}/callback/fail")).await;
    let (run, body) = next_callback(&mut rx).await;
    assert_eq!(run, "fail");
    assert_eq!(body["StatusCode"], "500", "{body}");
    assert_eq!(body["Error"]["ErrorCode"], "GOLD_REFRESH_FAILED", "{body}");
    assert!(
        body["Error"]["Message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["Output"]["status"], "failed", "{body}");
}

#[tokio::test]
async fn gold_refresh_without_callback_is_400_and_callbacks_are_retried() {
    let lake = test_lake("goldretry");
    let h = Handler::start(&lake, &[]).await;
    let mut p = fixture("http_gold_refresh.json");
    p["Data"]["req"]["Body"] = json!("{\"mode\":\"incremental\"}");
    let (status, answer) = h.invoke("GoldRefresh", &p).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "400", "{answer}");
    assert!(answer["Outputs"]["res"]["body"]
        .as_str()
        .unwrap()
        .contains("callBackUri"));

    // A receiver that fails twice, then accepts: the callback is retried until it lands.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let hits = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |body: String| {
            let counter = counter.clone();
            let tx = tx.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy");
                }
                let _ = tx.send(serde_json::from_str(&body).unwrap());
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    start_gold(&h, &format!("http://{addr}/cb")).await;
    let body = tokio::time::timeout(Duration::from_secs(240), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(body["StatusCode"].is_string(), "{body}");
}

#[tokio::test]
async fn blob_trigger_reference_file_lands_in_bronze() {
    let lake = test_lake("blobref");
    let h = Handler::start(&lake, &[]).await;
    let (status, answer) = h
        .invoke("EhrBatchIngest", &fixture("blob_reference_file.json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["ReturnValue"]["rows_written"]["bronze_hospitals"], 1,
        "{answer}"
    );
    let rows = h.query("SELECT COUNT(*) AS n FROM bronze_hospitals").await;
    assert_eq!(count_of(&rows), 1);
    // Re-dropped: the file marker makes it a no-op.
    let (status, answer) = h
        .invoke("EhrBatchIngest", &fixture("blob_reference_file.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["ReturnValue"]["inputs_already_ingested"], 1,
        "{answer}"
    );
}
