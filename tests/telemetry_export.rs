//! OpenTelemetry export from the real `patientflow handler` binary: with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! set, each invocation becomes one span (named after the function, FaaS attributes, outcome) that
//! reaches an OTLP/HTTP collector — here a small axum server in the test recording `POST /v1/traces`
//! and `POST /v1/metrics` (JSON protocol, so the bodies can be read) — and the stage runs and ADT
//! ingests become the pipeline metrics. Without the variable nothing is sent; with an unreachable
//! collector invocations still succeed and the handler warns once.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use axum::Router;
use patientflow_tests::{binary, run_cli, texts};
use serde_json::Value;

/// The trace of the `traceparent` header the test sends, as the Functions host does.
const HOST_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// One export request received by the collector.
#[derive(Clone, Debug)]
struct Export {
    path: String,
    content_type: String,
    body: String,
}

/// A fake OTLP/HTTP collector on a free loopback port.
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Export>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Export>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], &'static str) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    received.lock().unwrap().push(Export {
        path: uri.path().to_string(),
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    ([("content-type", "application/json")], "{}")
}

impl Collector {
    async fn start() -> Collector {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(record))
            .route("/v1/metrics", post(record))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            addr,
            received,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn exports(&self) -> Vec<Export> {
        self.received.lock().unwrap().clone()
    }

    /// All spans of all JSON exports received so far.
    fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for e in self.exports() {
            let Ok(v) = serde_json::from_str::<Value>(&e.body) else {
                continue;
            };
            for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        let mut s = s.clone();
                        s["resource"] = rs["resource"].clone();
                        spans.push(s);
                    }
                }
            }
        }
        spans
    }

    /// All metric data points of all JSON metric exports received so far, by metric name: each point
    /// with its metric's `unit`, its kind (`histogram`, `sum`, `gauge`) and the resource.
    fn metric_points(&self) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in self
            .exports()
            .into_iter()
            .filter(|e| e.path == "/v1/metrics")
        {
            let Ok(v) = serde_json::from_str::<Value>(&e.body) else {
                continue;
            };
            for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        let name = m["name"].as_str().unwrap_or_default().to_string();
                        for kind in ["histogram", "sum", "gauge"] {
                            for p in m[kind]["dataPoints"].as_array().into_iter().flatten() {
                                let mut p = p.clone();
                                p["kind"] = Value::from(kind);
                                p["unit"] = m["unit"].clone();
                                p["resource"] = rm["resource"].clone();
                                out.entry(name.clone()).or_default().push(p);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Waits (at most `limit`) until `done` holds for the metric points received.
    async fn wait_for_metrics(
        &self,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, Vec<Value>>) -> bool,
    ) -> BTreeMap<String, Vec<Value>> {
        let started = Instant::now();
        loop {
            let points = self.metric_points();
            if done(&points) || started.elapsed() > limit {
                return points;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `limit`) for a span whose `faas.invocation_id` is `id`.
    async fn wait_for_span(&self, id: &str, limit: Duration) -> Option<Value> {
        let started = Instant::now();
        loop {
            if let Some(s) = self
                .spans()
                .into_iter()
                .find(|s| attr(s, "faas.invocation_id").as_deref() == Some(id))
            {
                return Some(s);
            }
            if started.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An attribute of a span (or resource) in OTLP JSON, as text: `{"key": k, "value": {"stringValue": …}}`.
fn attr(obj: &Value, key: &str) -> Option<String> {
    let kv = obj["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?;
    let value = kv["value"].as_object()?.values().next()?;
    Some(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The span's status code in OTLP JSON (0 unset, 1 ok, 2 error).
fn status_code(span: &Value) -> i64 {
    match &span["status"]["code"] {
        Value::Number(n) => n.as_i64().unwrap_or_default(),
        Value::String(s) if s.ends_with("ERROR") => 2,
        Value::String(s) if s.ends_with("OK") => 1,
        _ => 0,
    }
}

/// The handler process (stdout and stderr to files in `dir`); killed when dropped.
struct Handler {
    child: Child,
    base: String,
    client: reqwest::Client,
    _lake: tempfile::TempDir,
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
    /// Starts `patientflow handler` as the Functions host does, with `env` on top of an environment
    /// cleared of `OTEL_*`, and waits until `GET /` answers.
    async fn start(env: &[(&str, String)], logs: &Path) -> Handler {
        let lake = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("handler")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "test-worker")
            .env("PATIENTFLOW_LAKE", lake.path().join("lake"))
            .env("EventHubName", "adt-events")
            .stdout(Stdio::from(File::create(logs.join("stdout")).unwrap()))
            .stderr(Stdio::from(File::create(logs.join("stderr")).unwrap()));
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting patientflow handler");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let mut h = Handler {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client,
            _lake: lake,
        };
        let started = Instant::now();
        loop {
            if h.client.get(format!("{}/", h.base)).send().await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!(
                    "the handler exited with {status} before it was ready: {}",
                    read_logs(logs)
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the handler must be ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h
    }

    /// POSTs a raw invocation body with the host's headers (invocation id, traceparent); returns the
    /// status the host gets.
    async fn invoke_raw(&self, function: &str, id: &str, body: String) -> u16 {
        self.client
            .post(format!("{}/{function}", self.base))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", id)
            .header(
                "traceparent",
                format!("00-{HOST_TRACE_ID}-b7ad6b7169203331-01"),
            )
            .body(body)
            .send()
            .await
            .expect("invocation request")
            .status()
            .as_u16()
    }

    /// The handler's lake.
    fn lake(&self) -> String {
        self._lake.path().join("lake").display().to_string()
    }

    /// Invokes `Health` with the host's payload; asserts the host gets 200.
    async fn health(&self, id: &str) {
        let status = self
            .invoke_raw("Health", id, health_payload().to_string())
            .await;
        assert_eq!(status, 200, "Health invocation {id}");
    }

    /// Stops the handler as the host does (SIGTERM) and waits for it to exit.
    async fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the handler exited with {status}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the handler must stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn health_payload() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http_health.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn read_logs(dir: &Path) -> String {
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    format!("stdout:\n{}\nstderr:\n{}", read("stdout"), read("stderr"))
}

/// A unique invocation id per call.
fn invocation_id(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{:012x}", n as u64 & 0xffff_ffff_ffff)
}

#[tokio::test]
async fn invocations_are_exported_as_otlp_spans() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    let ok = [invocation_id("ok1"), invocation_id("ok2")];
    for id in &ok {
        handler.health(id).await;
    }
    // A body the handler cannot read: the invocation fails (400) and its span says so.
    let bad = invocation_id("bad");
    let status = handler
        .invoke_raw("Health", &bad, "{not json".to_string())
        .await;
    assert_eq!(status, 400, "an unreadable invocation body is a 400");

    for id in &ok {
        let span = collector
            .wait_for_span(id, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no span for invocation {id}; received {:?}\n{}",
                    collector.exports(),
                    read_logs(logs.path())
                )
            });
        assert_eq!(
            span["name"], "Health",
            "span named after the function: {span}"
        );
        assert_eq!(
            attr(&span, "faas.name").as_deref(),
            Some("Health"),
            "{span}"
        );
        assert_eq!(
            attr(&span, "faas.trigger").as_deref(),
            Some("http"),
            "{span}"
        );
        assert_eq!(
            attr(&span, "http.response.status_code").as_deref(),
            Some("200"),
            "{span}"
        );
        assert_ne!(
            status_code(&span),
            2,
            "a healthy invocation is no error: {span}"
        );
        assert_eq!(
            span["traceId"], HOST_TRACE_ID,
            "the span continues the host's trace: {span}"
        );
        assert_eq!(
            attr(&span["resource"], "service.name").as_deref(),
            Some("patientflow"),
            "default service name: {span}"
        );
    }
    let failed = collector
        .wait_for_span(&bad, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no span for the failed invocation {bad}"));
    assert_eq!(
        status_code(&failed),
        2,
        "a failed invocation is an error: {failed}"
    );
    assert!(
        attr(&failed, "error.type").is_some_and(|t| !t.is_empty()),
        "error.type on the failed span: {failed}"
    );

    let exports = collector.exports();
    assert!(
        exports
            .iter()
            .all(|e| e.content_type.starts_with("application/json")),
        "JSON protocol: {:?}",
        exports.iter().map(|e| &e.content_type).collect::<Vec<_>>()
    );
    assert!(
        exports
            .iter()
            .any(|e| e.body.contains("Health") && e.body.contains(&ok[0])),
        "an export body names the function and the invocation id"
    );
    // Exactly one invocation span per invocation.
    let spans = collector.spans();
    for id in ok.iter().chain([&bad]) {
        let n = spans
            .iter()
            .filter(|s| attr(s, "faas.invocation_id").as_deref() == Some(id.as_str()))
            .count();
        assert_eq!(n, 1, "one span for invocation {id}");
    }
    handler.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_spans_not_yet_exported() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    // A batch delay far beyond the test: only the flush at shutdown can deliver the span.
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_string()),
        ("OTEL_SERVICE_NAME", "patientflow-flush-test".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    let id = invocation_id("flush");
    handler.health(&id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.exports().is_empty(),
        "nothing is exported before the batch delay or shutdown"
    );
    handler.stop().await;
    let span = collector
        .wait_for_span(&id, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the span was not flushed at shutdown\n{}",
                read_logs(logs.path())
            )
        });
    assert_eq!(
        attr(&span["resource"], "service.name").as_deref(),
        Some("patientflow-flush-test"),
        "OTEL_SERVICE_NAME names the service: {span}"
    );
}

#[tokio::test]
async fn nothing_is_exported_without_an_endpoint() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    // Everything but the endpoint: the batch settings alone must not turn export on.
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    for _ in 0..2 {
        handler.health(&invocation_id("off")).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    handler.stop().await;
    assert!(
        collector.exports().is_empty(),
        "no export without OTEL_EXPORTER_OTLP_ENDPOINT"
    );
    let text = read_logs(logs.path());
    assert!(
        !text.contains("OpenTelemetry"),
        "no OpenTelemetry message without an endpoint: {text}"
    );
}

#[tokio::test]
async fn an_unreachable_collector_costs_one_warning() {
    // A port nobody listens on.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    for round in 0..3 {
        handler
            .health(&invocation_id(&format!("down{round}")))
            .await;
        // Let a batch go out (and fail) between invocations.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    handler.stop().await;
    let text = read_logs(logs.path());
    let warnings = text
        .lines()
        .filter(|l| l.contains("OpenTelemetry export"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "one warning, got: {text}");
    assert!(
        warnings[0].contains("WARN"),
        "the warning is at warn level: {}",
        warnings[0]
    );
    assert!(!text.contains("panicked"), "no panic: {text}");
}

/// With export on, the run ledger's `trace_id` of a stage run is the trace its invocation span is
/// exported in (the host's trace, continued).
#[tokio::test]
async fn ledger_rows_carry_the_exported_trace_id() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    let id = invocation_id("silver");
    let timer = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/timer_silver_refresh.json");
    let status = handler
        .invoke_raw(
            "SilverRefresh",
            &id,
            std::fs::read_to_string(timer).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{}", read_logs(logs.path()));
    let span = collector
        .wait_for_span(&id, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no span for invocation {id}"));
    let out = run_cli(&handler.lake(), &["runs", "--json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let runs: Value = serde_json::from_str(&stdout).unwrap();
    let row = &runs["runs"][0];
    assert_eq!(row["stage"], "silver", "{runs}");
    assert_eq!(row["details"]["invocation_id"], id.as_str(), "{row}");
    assert_eq!(row["trace_id"], span["traceId"], "{row}");
    assert_eq!(row["trace_id"], HOST_TRACE_ID, "{row}");
    handler.stop().await;
}

/// The names the Azure alert rules query.
const RUN_DURATION: &str = "patientflow.run.duration";
const RUN_ROWS: &str = "patientflow.run.rows";
const QUARANTINE_RATE: &str = "patientflow.quarantine.rate";
const INGEST_LAG: &str = "patientflow.ingest.lag";

/// A number of an OTLP JSON data point (`asInt` and `count` are strings in OTLP JSON).
fn number(point: &Value, key: &str) -> f64 {
    match &point[key] {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// A sum or gauge point's value.
fn value(point: &Value) -> f64 {
    if point.get("asInt").is_some() {
        number(point, "asInt")
    } else {
        number(point, "asDouble")
    }
}

/// The points of `name` whose attributes include every `(key, value)` of `with`.
fn points_of<'a>(
    points: &'a BTreeMap<String, Vec<Value>>,
    name: &str,
    with: &[(&str, &str)],
) -> Vec<&'a Value> {
    points
        .get(name)
        .into_iter()
        .flatten()
        .filter(|p| with.iter().all(|(k, v)| attr(p, k).as_deref() == Some(*v)))
        .collect()
}

/// The ledger rows of `patientflow runs --json`, by stage (the latest run of each).
fn ledger_runs(lake: &str) -> BTreeMap<String, Value> {
    let out = run_cli(lake, &["runs", "--json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let runs: Value = serde_json::from_str(&stdout).unwrap();
    let mut by_stage = BTreeMap::new();
    for r in runs["runs"].as_array().unwrap().iter().rev() {
        by_stage.insert(r["stage"].as_str().unwrap().to_string(), r.clone());
    }
    by_stage
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

/// A real Event Hub batch and Silver refresh through the handler: the four pipeline metrics reach the
/// collector's `/v1/metrics` with their attributes, and their figures are the run ledger's.
#[tokio::test]
async fn stage_runs_and_adt_ingests_are_exported_as_otlp_metrics() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    // Messages from MHA04 and MHA05 (all enqueued 2026-01-14T15:00:00Z), and three that cannot be
    // parsed: stored flagged, so the Bronze run has quarantined rows.
    let status = handler
        .invoke_raw(
            "AdtIngest",
            &invocation_id("adt"),
            fixture_text("eventhub_batch_poison.json"),
        )
        .await;
    assert_eq!(status, 200, "{}", read_logs(logs.path()));
    let status = handler
        .invoke_raw(
            "SilverRefresh",
            &invocation_id("silver"),
            fixture_text("timer_silver_refresh.json"),
        )
        .await;
    assert_eq!(status, 200, "{}", read_logs(logs.path()));
    let runs = ledger_runs(&handler.lake());
    let (adt, silver) = (&runs["bronze.adt"], &runs["silver"]);
    assert!(
        adt["rows_quarantined"].as_i64().unwrap() >= 1,
        "the batch's unparseable messages are flagged: {adt}"
    );

    let points = collector
        .wait_for_metrics(Duration::from_secs(20), |p| {
            let has = |name: &str, with: &[(&str, &str)]| !points_of(p, name, with).is_empty();
            has(RUN_DURATION, &[("stage", "bronze.adt")])
                && has(RUN_DURATION, &[("stage", "silver")])
                && has(RUN_ROWS, &[("stage", "silver"), ("kind", "quarantined")])
                && has(
                    RUN_ROWS,
                    &[("stage", "bronze.adt"), ("kind", "quarantined")],
                )
                && has(QUARANTINE_RATE, &[("source", "adt")])
                && has(INGEST_LAG, &[("hospital_id", "MHA04")])
                && has(INGEST_LAG, &[("hospital_id", "MHA05")])
        })
        .await;
    let seen = || {
        format!(
            "metrics received: {:?}\n{}",
            points.keys().collect::<Vec<_>>(),
            read_logs(logs.path())
        )
    };
    for name in [RUN_DURATION, RUN_ROWS, QUARANTINE_RATE, INGEST_LAG] {
        assert!(points.contains_key(name), "no {name}; {}", seen());
    }

    // patientflow.run.duration: a histogram in seconds, one run per stage, the ledger's duration.
    for (stage, row) in [("bronze.adt", adt), ("silver", silver)] {
        let status = row["status"].as_str().unwrap();
        let ps = points_of(
            &points,
            RUN_DURATION,
            &[("stage", stage), ("status", status)],
        );
        assert!(!ps.is_empty(), "no duration of the {stage} run; {}", seen());
        assert!(
            ps.iter()
                .all(|p| p["kind"] == "histogram" && p["unit"] == "s"),
            "{ps:?}"
        );
        let count: f64 = ps.iter().map(|p| number(p, "count")).sum();
        assert_eq!(count, 1.0, "one {stage} run: {ps:?}");
        let seconds: f64 = ps.iter().map(|p| number(p, "sum")).sum();
        let ledger = row["duration_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (seconds - ledger).abs() < 0.002,
            "{stage}: {seconds} s exported, {ledger} s in the ledger"
        );
    }

    // patientflow.run.rows: a counter per stage and kind, summing to the ledger's rows.
    for (stage, row) in [("bronze.adt", adt), ("silver", silver)] {
        for (kind, column) in [
            ("in", "rows_in"),
            ("out", "rows_out"),
            ("quarantined", "rows_quarantined"),
        ] {
            let ps = points_of(&points, RUN_ROWS, &[("stage", stage), ("kind", kind)]);
            assert!(ps.iter().all(|p| p["kind"] == "sum"), "{ps:?}");
            let total: f64 = ps.iter().map(|p| value(p)).sum();
            assert_eq!(
                total,
                row[column].as_f64().unwrap(),
                "{stage} rows {kind}: {ps:?}; ledger {row}"
            );
        }
    }

    // patientflow.quarantine.rate: the Silver run's share of rejected ADT records, 0..1.
    let adt_figures = &silver["details"]["sources"]["adt"];
    let records_in = adt_figures["records_in"].as_f64().unwrap();
    let expected = (records_in - adt_figures["records_valid"].as_f64().unwrap()) / records_in;
    let rates = points_of(&points, QUARANTINE_RATE, &[("source", "adt")]);
    assert!(
        rates
            .iter()
            .all(|p| p["kind"] == "gauge" && p["unit"] == "1"),
        "{rates:?}"
    );
    let rate = value(rates.last().unwrap());
    assert!((0.0..=1.0).contains(&rate), "{rate}");
    assert!(
        (rate - expected).abs() < 1e-9,
        "rate {rate}, from the ledger {expected}"
    );

    // patientflow.ingest.lag: per hospital, seconds since its newest message's enqueued time.
    let enqueued: chrono::DateTime<chrono::Utc> = "2026-01-14T15:00:00Z".parse().unwrap();
    for hospital in ["MHA04", "MHA05"] {
        let ps = points_of(&points, INGEST_LAG, &[("hospital_id", hospital)]);
        let p = ps.last().unwrap();
        assert!(p["kind"] == "gauge" && p["unit"] == "s", "{p}");
        let expected = (chrono::Utc::now() - enqueued).num_seconds() as f64;
        let lag = value(p);
        assert!(
            lag <= expected + 1.0 && lag >= expected - 60.0,
            "{hospital}: lag {lag} s, expected about {expected} s"
        );
    }
    let hospitals: Vec<String> = points[INGEST_LAG]
        .iter()
        .filter_map(|p| attr(p, "hospital_id"))
        .collect();
    assert!(
        hospitals.iter().all(|h| h == "MHA04" || h == "MHA05"),
        "only the hospitals of the batch: {hospitals:?}"
    );
    assert_eq!(
        attr(&points[RUN_ROWS][0]["resource"], "service.name").as_deref(),
        Some("patientflow"),
        "the metrics carry the service's resource"
    );
    assert!(
        collector
            .exports()
            .iter()
            .filter(|e| e.path == "/v1/metrics")
            .all(|e| e.content_type.starts_with("application/json")),
        "JSON protocol for metrics"
    );
    handler.stop().await;
}

/// Metrics not yet exported when the handler stops are flushed at shutdown.
#[tokio::test]
async fn shutdown_flushes_metrics_not_yet_exported() {
    let collector = Collector::start().await;
    let logs = tempfile::tempdir().unwrap();
    // An export interval far beyond the test: only the flush at shutdown can deliver the metrics.
    let env = [
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/v1/metrics", collector.endpoint()),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000".to_string()),
    ];
    let mut handler = Handler::start(&env, logs.path()).await;
    let status = handler
        .invoke_raw(
            "AdtIngest",
            &invocation_id("adt"),
            fixture_text("eventhub_batch.json"),
        )
        .await;
    assert_eq!(status, 200, "{}", read_logs(logs.path()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.exports().is_empty(),
        "nothing is exported before the interval or shutdown (and no spans without a traces endpoint)"
    );
    handler.stop().await;
    let points = collector
        .wait_for_metrics(Duration::from_secs(5), |p| p.contains_key(INGEST_LAG))
        .await;
    let runs = ledger_runs(&handler.lake());
    let written: f64 = points_of(
        &points,
        RUN_ROWS,
        &[("stage", "bronze.adt"), ("kind", "out")],
    )
    .iter()
    .map(|p| value(p))
    .sum();
    assert_eq!(
        written,
        runs["bronze.adt"]["rows_out"].as_f64().unwrap(),
        "flushed at shutdown: {points:?}\n{}",
        read_logs(logs.path())
    );
    for hospital in ["MHA01", "MHA02", "MHA03"] {
        assert!(
            !points_of(&points, INGEST_LAG, &[("hospital_id", hospital)]).is_empty(),
            "ingest lag of {hospital}: {points:?}"
        );
    }
    assert!(
        collector.exports().iter().all(|e| e.path == "/v1/metrics"),
        "only metrics were configured"
    );
}
