//! Alerts end to end against a real local HTTP receiver (an axum server on 127.0.0.1 that records
//! what it gets and can be told to fail): one notice per incident, a resolved notice on recovery, the
//! outbox retrying while the receiver is down (also across a restart, i.e. a new evaluator on the same
//! lake), and every clinical rule on a crafted lake state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use patientflow_core::ops::alerts::{self, AlertSettings, Rule};
use patientflow_core::ops::ledger::{self, RunContext, RunRecord};
use patientflow_core::pipeline::StageReport;
use patientflow_core::storage::rows::{Cell, RowsBuilder};
use patientflow_core::storage::Lake;
use serde_json::Value;

#[derive(Default)]
struct Received {
    bodies: Mutex<Vec<(String, Value)>>,
    fail: AtomicBool,
}

impl Received {
    fn all(&self) -> Vec<(String, Value)> {
        self.bodies.lock().unwrap().clone()
    }
}

async fn hook(
    State(r): State<Arc<Received>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    if r.fail.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let id = headers
        .get("x-patientflow-notification-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    r.bodies.lock().unwrap().push((id, body));
    StatusCode::OK
}

/// A receiver on 127.0.0.1:0; returns its hook URL and what it recorded.
async fn receiver() -> (String, Arc<Received>) {
    let state = Arc::new(Received::default());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), state)
}

/// A URL nothing listens on.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

fn settings(url: &str) -> AlertSettings {
    AlertSettings {
        enabled: true,
        webhook_url: Some(url.to_string()),
        webhook_timeout: Duration::from_secs(5),
        ..AlertSettings::default()
    }
}

async fn lake(dir: &tempfile::TempDir) -> Lake {
    Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap()
}

async fn run(lake: &Lake, stage: &str, status: &str, retry_count: u32) {
    let now = Utc::now();
    let ctx = RunContext::new("timer").with_retry_count(retry_count);
    let row = if status == ledger::FAILED {
        RunRecord::failed(stage, now, now, "disk full", &ctx)
    } else {
        RunRecord::from_report(
            &StageReport {
                stage: stage.into(),
                run_id: format!("{stage}-{}", now.timestamp_micros()),
                trigger: "timer".into(),
                started_at: now,
                finished_at: now,
                status: status.into(),
                rows_in: 1,
                rows_out: 1,
                rows_quarantined: 0,
                error: None,
                details: Value::Null,
            },
            &ctx,
        )
    };
    assert!(ledger::record(lake, &row).await);
}

fn essentials(body: &Value) -> &Value {
    &body["data"]["essentials"]
}

#[tokio::test]
async fn a_failing_stage_fires_once_and_resolves_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(&dir).await;
    let (url, got) = receiver().await;
    let s = settings(&url);

    run(&lake, "silver", ledger::FAILED, 0).await;
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.fired, vec!["stage_failed:silver"]);
    assert_eq!(r.delivered, 1);
    let bodies = got.all();
    assert_eq!(bodies.len(), 1, "exactly one alert");
    let (id, body) = &bodies[0];
    assert_eq!(body["schemaId"], "azureMonitorCommonAlertSchema");
    let e = essentials(body);
    assert_eq!(e["alertRule"], "patientflow-stage_failed");
    assert_eq!(e["monitorCondition"], "Fired");
    assert_eq!(e["severity"], "Sev2");
    assert_eq!(e["signalType"], "Log");
    assert!(e["firedDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(e["resolvedDateTime"].is_null());
    assert!(e["description"].as_str().unwrap().contains("disk full"));
    assert_eq!(
        body["data"]["alertContext"]["incidentKey"],
        "stage_failed:silver"
    );
    assert_eq!(body["data"]["alertContext"]["condition"]["stage"], "silver");
    assert_eq!(id, &format!("{}:fired", e["alertId"].as_str().unwrap()));

    // The same failure again, and more evaluations while it holds: nothing more.
    run(&lake, "silver", ledger::FAILED, 0).await;
    for _ in 0..2 {
        let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
            .await
            .unwrap();
        assert!(r.fired.is_empty() && r.resolved.is_empty());
        assert_eq!(r.open, 1);
    }
    assert_eq!(got.all().len(), 1, "still one alert");

    // Recovery: one resolved notice with the same alert id.
    run(&lake, "silver", ledger::SUCCEEDED, 0).await;
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.resolved, vec!["stage_failed:silver"]);
    alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
        .await
        .unwrap();
    let bodies = got.all();
    assert_eq!(bodies.len(), 2, "one resolved notice");
    let resolved = essentials(&bodies[1].1);
    assert_eq!(resolved["monitorCondition"], "Resolved");
    assert_eq!(resolved["alertId"], e["alertId"]);
    assert!(resolved["resolvedDateTime"].is_string());
    assert_eq!(resolved["firedDateTime"], e["firedDateTime"]);

    // A new failure is a new incident with a new alert id.
    run(&lake, "silver", ledger::FAILED, 0).await;
    alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
        .await
        .unwrap();
    let bodies = got.all();
    assert_eq!(bodies.len(), 3);
    assert_ne!(essentials(&bodies[2].1)["alertId"], e["alertId"]);
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_each_notice_once_later_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver().await;
    let t0 = Utc::now().duration_trunc(Span::microseconds(1)).unwrap();
    {
        let lake = lake(&dir).await;
        run(&lake, "silver", ledger::FAILED, 0).await;
        // The receiver answers 500.
        got.fail.store(true, Ordering::SeqCst);
        let r = alerts::run_cycle(&lake, &settings(&url), &Rule::PIPELINE, t0)
            .await
            .unwrap();
        assert_eq!(
            (r.fired.len(), r.delivered, r.failed_attempts, r.pending),
            (1, 0, 1, 1)
        );
        // Not due yet: no attempt, nothing queued again.
        let r = alerts::run_cycle(
            &lake,
            &settings(&url),
            &Rule::PIPELINE,
            t0 + Span::seconds(5),
        )
        .await
        .unwrap();
        assert_eq!((r.fired.len(), r.failed_attempts, r.pending), (0, 0, 1));
        // Nothing listens at all.
        let dead = dead_url().await;
        let r = alerts::run_cycle(
            &lake,
            &settings(&dead),
            &Rule::PIPELINE,
            t0 + Span::minutes(1),
        )
        .await
        .unwrap();
        assert_eq!((r.failed_attempts, r.pending), (1, 1));
        let (open, outbox) = alerts::status(&lake).await.unwrap();
        assert_eq!(open.len(), 1);
        assert!(!open[0].notified);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].attempts, 2);
        assert!(outbox[0].last_error.as_deref().unwrap().contains("webhook"));
        assert_eq!(
            outbox[0].next_attempt_at,
            t0 + Span::minutes(1) + Span::seconds(60)
        );
    }
    assert!(got.all().is_empty());

    // A new process on the same lake, the receiver back up: the alert arrives once.
    got.fail.store(false, Ordering::SeqCst);
    let lake = lake(&dir).await;
    let s = settings(&url);
    let later = t0 + Span::minutes(10);
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, later)
        .await
        .unwrap();
    assert_eq!((r.fired.len(), r.delivered, r.pending), (0, 1, 0));
    alerts::run_cycle(&lake, &s, &Rule::PIPELINE, later + Span::minutes(1))
        .await
        .unwrap();
    let bodies = got.all();
    assert_eq!(bodies.len(), 1, "delivered once: {bodies:?}");
    assert_eq!(essentials(&bodies[0].1)["monitorCondition"], "Fired");
    let (_, outbox) = alerts::status(&lake).await.unwrap();
    assert_eq!(outbox[0].attempts, 3);
    assert!(outbox[0].delivered_at.is_some() && outbox[0].last_error.is_none());

    // Recovery while the receiver is down again, then up: the resolved notice follows, once.
    run(&lake, "silver", ledger::SUCCEEDED, 0).await;
    got.fail.store(true, Ordering::SeqCst);
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, later + Span::minutes(2))
        .await
        .unwrap();
    assert_eq!((r.resolved.len(), r.failed_attempts), (1, 1));
    got.fail.store(false, Ordering::SeqCst);
    drop(lake);
    let lake = lake_again(&dir).await;
    alerts::run_cycle(&lake, &s, &Rule::PIPELINE, later + Span::hours(1))
        .await
        .unwrap();
    alerts::run_cycle(&lake, &s, &Rule::PIPELINE, later + Span::hours(2))
        .await
        .unwrap();
    let bodies = got.all();
    assert_eq!(bodies.len(), 2);
    assert_eq!(essentials(&bodies[1].1)["monitorCondition"], "Resolved");
    let ids: Vec<&String> = bodies.iter().map(|(id, _)| id).collect();
    assert_ne!(ids[0], ids[1]);
}

async fn lake_again(dir: &tempfile::TempDir) -> Lake {
    lake(dir).await
}

#[tokio::test]
async fn retries_exhausted_gold_late_and_dq_breach() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(&dir).await;
    let (url, got) = receiver().await;
    let s = settings(&url);
    run(&lake, "bronze.ehr", ledger::FAILED, 3).await;
    run(&lake, "bronze.adt", ledger::FAILED, 3).await; // budget 5: not exhausted
    run(&lake, "gold", ledger::SUCCEEDED, 0).await;
    let now = Utc::now();
    let mut dq = RowsBuilder::new();
    for (source, n, bad) in [
        ("adt", 100i64, 20i64),
        ("ehr_patients", 100, 1),
        ("ehr_encounters", 5, 5),
    ] {
        dq.push_row([
            ("run_id", Cell::str(Some("silver-1"))),
            ("run_at", Cell::ts(Some(now))),
            ("source", Cell::str(Some(source))),
            ("rule_id", Cell::str(Some("*"))),
            ("records_in", Cell::Int(Some(n))),
            ("findings", Cell::Int(Some(bad))),
            ("rate", Cell::F64(Some(bad as f64 / n as f64))),
        ]);
    }
    lake.append(
        patientflow_core::silver::DQ_RESULTS,
        vec![dq.finish().unwrap()],
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, now)
        .await
        .unwrap();
    let mut fired = r.fired.clone();
    fired.sort();
    assert_eq!(
        fired,
        vec![
            "dq_breach:adt",
            "retries_exhausted:bronze.ehr",
            "stage_failed:bronze.adt",
            "stage_failed:bronze.ehr"
        ]
    );
    // Two hours later Gold has not succeeded again.
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, now + Span::hours(2))
        .await
        .unwrap();
    assert_eq!(r.fired, vec!["gold_late:gold"]);
    run(&lake, "gold", ledger::SUCCEEDED, 0).await;
    let r = alerts::run_cycle(&lake, &s, &Rule::PIPELINE, Utc::now())
        .await
        .unwrap();
    assert_eq!(r.resolved, vec!["gold_late:gold"]);
    assert_eq!(got.all().len(), 6);
}

fn hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Span::hours(1)).unwrap()
}

/// Writes `gold_fact_census_hourly` (only the columns the rules read): (department, hours back,
/// occupancy %, ED boarders).
async fn census(lake: &Lake, latest: DateTime<Utc>, rows: &[(&str, i64, f64, i64)]) {
    let mut b = RowsBuilder::new();
    for (dept, back, pct, boarders) in rows {
        b.push_row([
            ("hospital_id", Cell::str(Some("MHA01"))),
            ("department_code", Cell::str(Some(*dept))),
            ("hour_start", Cell::ts(Some(latest - Span::hours(*back)))),
            ("occupancy_pct", Cell::F64(Some(*pct))),
            ("ed_boarders", Cell::Int(Some(*boarders))),
        ]);
    }
    lake.overwrite(
        patientflow_core::gold::FACT_CENSUS_HOURLY,
        b.finish().unwrap(),
        &[],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_ward_at_90_percent_for_3_hours_and_ed_boarding_fire_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(&dir).await;
    let (url, got) = receiver().await;
    let s = settings(&url);
    let clinical = [Rule::Occupancy, Rule::EdBoarding];
    let h = hour(Utc::now());
    census(
        &lake,
        h,
        &[
            ("ICU", 3, 70.0, 0),
            ("ICU", 2, 90.0, 0),
            ("ICU", 1, 90.0, 0),
            ("ICU", 0, 90.0, 0),
            // One hour only: not yet.
            ("MED", 1, 60.0, 0),
            ("MED", 0, 95.0, 0),
            ("ED", 1, 50.0, 1),
            ("ED", 0, 55.0, 2),
        ],
    )
    .await;
    let r = alerts::run_cycle(&lake, &s, &clinical, Utc::now())
        .await
        .unwrap();
    let mut fired = r.fired.clone();
    fired.sort();
    assert_eq!(fired, vec!["ed_boarding:MHA01:ED", "occupancy:MHA01:ICU"]);
    let bodies = got.all();
    let icu = bodies
        .iter()
        .find(|(_, b)| b["data"]["alertContext"]["incidentKey"] == "occupancy:MHA01:ICU")
        .unwrap();
    assert_eq!(
        icu.1["data"]["alertContext"]["condition"]["hours_at_or_above"],
        3
    );
    assert_eq!(icu.1["data"]["alertContext"]["category"], "clinical");
    // The next hour, still high: nothing new.
    census(
        &lake,
        h + Span::hours(1),
        &[("ICU", 1, 90.0, 0), ("ICU", 0, 91.0, 0), ("ED", 0, 40.0, 1)],
    )
    .await;
    let r = alerts::run_cycle(&lake, &s, &clinical, Utc::now())
        .await
        .unwrap();
    assert!(r.fired.is_empty() && r.resolved.is_empty(), "{r:?}");
    // The ward drops to 70 %, the ED empties: both resolve.
    census(
        &lake,
        h + Span::hours(2),
        &[("ICU", 1, 91.0, 0), ("ICU", 0, 70.0, 0), ("ED", 0, 40.0, 0)],
    )
    .await;
    let r = alerts::run_cycle(&lake, &s, &clinical, Utc::now())
        .await
        .unwrap();
    let mut resolved = r.resolved.clone();
    resolved.sort();
    assert_eq!(
        resolved,
        vec!["ed_boarding:MHA01:ED", "occupancy:MHA01:ICU"]
    );
    let bodies = got.all();
    assert_eq!(bodies.len(), 4);
    assert!(bodies[2..]
        .iter()
        .all(|(_, b)| essentials(b)["monitorCondition"] == "Resolved"));
}

async fn messages(lake: &Lake, rows: &[(&str, DateTime<Utc>)]) {
    let mut b = RowsBuilder::new();
    for (i, (facility, at)) in rows.iter().enumerate() {
        b.push_row([
            (
                "message_key",
                Cell::str(Some(format!("{facility}|{i}|{}", at.timestamp_micros()))),
            ),
            ("facility", Cell::str(Some(*facility))),
            ("parse_status", Cell::str(Some("ok"))),
            ("ingested_at", Cell::ts(Some(*at))),
        ]);
    }
    lake.append(
        patientflow_core::bronze::ADT_MESSAGES,
        vec![b.finish().unwrap()],
        &[],
        Default::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_hospital_whose_feed_stopped_fires_and_resolves_when_it_sends_again() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(&dir).await;
    let (url, got) = receiver().await;
    let mut s = settings(&url);
    s.silent_feed_by_hospital.insert("MHC03".into(), 240);
    let now = Utc::now();
    messages(
        &lake,
        &[
            ("MHA01", now - Span::hours(5)),
            ("MHA01", now - Span::hours(3)),
            ("MHB02", now - Span::minutes(5)),
            // Its own threshold is 4 h.
            ("MHC03", now - Span::hours(3)),
        ],
    )
    .await;
    let r = alerts::run_cycle(&lake, &s, &[Rule::SilentFeed], now)
        .await
        .unwrap();
    assert_eq!(r.fired, vec!["silent_feed:MHA01"]);
    let r = alerts::run_cycle(&lake, &s, &[Rule::SilentFeed], now)
        .await
        .unwrap();
    assert!(r.fired.is_empty());
    messages(&lake, &[("MHA01", now)]).await;
    let r = alerts::run_cycle(&lake, &s, &[Rule::SilentFeed], now + Span::minutes(1))
        .await
        .unwrap();
    assert_eq!(r.resolved, vec!["silent_feed:MHA01"]);
    let bodies = got.all();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0].1["data"]["alertContext"]["condition"]["threshold_minutes"],
        60
    );
}

/// The real binary with the alert settings of `url` in its environment.
fn cli(lake: &str, url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(patientflow_tests::binary())
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("PATIENTFLOW_LAKE")
        .env("PATIENTFLOW_ALERT_WEBHOOK_URL", url)
        .output()
        .expect("running patientflow")
}

#[tokio::test]
async fn the_binary_alerts_after_a_failed_run_once_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = lake_dir.to_str().unwrap().to_string();
    let (url, got) = receiver().await;
    let missing = dir.path().join("no-such-file.hl7");
    let missing = missing.to_str().unwrap().to_string();
    // Two processes, each with a failing ingest: the alert goes out from the run's own process, once.
    for _ in 0..2 {
        let (lake, url, missing) = (lake.clone(), url.clone(), missing.clone());
        let out =
            tokio::task::spawn_blocking(move || cli(&lake, &url, &["ingest", "adt", &missing]))
                .await
                .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bodies = got.all();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        bodies[0].1["data"]["alertContext"]["incidentKey"],
        "stage_failed:bronze.adt"
    );
    // `alerts evaluate` in a third process: still one; `alerts --json` lists the open incident.
    let (l, u) = (lake.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || cli(&l, &u, &["alerts", "evaluate", "--json"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["open"], 1, "{report}");
    assert_eq!(report["fired"].as_array().unwrap().len(), 0);
    let (l, u) = (lake.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || cli(&l, &u, &["alerts", "--json"]))
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["open"][0]["incident_key"], "stage_failed:bronze.adt");
    assert_eq!(listed["outbox"].as_array().unwrap().len(), 1);
    assert!(listed["outbox"][0]["delivered_at"].is_string());
    assert_eq!(got.all().len(), 1);
}
