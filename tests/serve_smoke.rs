//! `patientflow serve` smoke test: the local runtime starts, takes ADT events on `/api/adt`, answers SQL
//! on `/api/query`, fires the Silver timer from its NCRONTAB schedule, and runs the ADF-style Gold refresh
//! on `/api/gold/refresh` — on a local lake, as a user would run it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patientflow_tests::binary;
use serde_json::{json, Value};

/// The serve process; killed when dropped.
struct Serve {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Serve {
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

impl Serve {
    async fn start(lake: &std::path::Path, landing: &std::path::Path) -> Serve {
        Self::start_with(lake, landing, &[]).await
    }

    async fn start_with(
        lake: &std::path::Path,
        landing: &std::path::Path,
        extra: &[&str],
    ) -> Serve {
        let port = free_port();
        let security = lake.with_extension("security.json");
        std::fs::write(&security, patientflow_tests::security::settings_json()).unwrap();
        let child = Command::new(binary())
            .args(["serve", "--port", &port.to_string(), "--lake"])
            .arg(lake)
            .arg("--security")
            .arg(&security)
            .args(extra)
            // Silver every 3 s, so the timer runner is exercised within the test.
            .env("SILVER_SCHEDULE", "*/3 * * * * *")
            .env("PATIENTFLOW_LANDING_CONTAINER", landing)
            .env("PATIENTFLOW_CALLBACK_BACKOFF_MS", "200")
            .env_remove("PATIENTFLOW_LAKE")
            .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting patientflow serve");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let s = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client,
        };
        let started = Instant::now();
        while s.client.get(format!("{}/", s.base)).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not start within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    async fn sql(&self, sql: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/query", self.base))
            .bearer_auth(patientflow_tests::security::admin_token())
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn count(&self, table: &str) -> Option<i64> {
        let (status, v) = self
            .sql(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .await;
        (status == 200).then(|| v["rows"][0]["n"].as_i64().unwrap())
    }
}

const HL7_BATCH: &str =
    "MSH|^~\\&|EPIC|MHA01|PATIENTFLOW|MHA|20260114080000-0600||ADT^A04^ADT_A04|S-1|P|2.5.1\r\
EVN|A04|20260114080000-0600\r\
PID|1||MHA01-P1^^^MHA01^MR||Doe^Jane||19800101|F\r\
PV1|1|E|ED^03^A^MHA01||||||||||||||||MHA01-V1\r\
\r\
MSH|^~\\&|EPIC|MHA01|PATIENTFLOW|MHA|20260114093000-0600||ADT^A01^ADT_A01|S-2|P|2.5.1\r\
EVN|A01|20260114093000-0600\r\
PID|1||MHA01-P1^^^MHA01^MR||Doe^Jane||19800101|F\r\
PV1|1|I|MED^12^B^MHA01||||||||||||||||MHA01-V1|||||||||||||||||||||||||20260114093000-0600\r";

#[tokio::test]
async fn serve_ingests_posted_adt_and_answers_sql() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    std::fs::create_dir_all(landing.join("reference")).unwrap();
    std::fs::write(
        landing.join("reference/hospitals.csv"),
        "hospital_id,name,timezone\nMHA01,Alpha General,America/Chicago\n",
    )
    .unwrap();
    std::fs::write(
        landing.join("reference/departments.csv"),
        "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n\
         MHA01,ED,Emergency,Emergency,30,24,20,8,2025-01-01\nMHA01,MED,Medicine,Medical,40,36,25,9,2025-01-01\n",
    )
    .unwrap();
    let s = Serve::start(&dir.path().join("lake"), &landing).await;

    let (status, health) = {
        let r = s
            .client
            .get(format!("{}/api/health", s.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{health}");

    // Department metadata from the landing folder, first: events typed before their hospital is known
    // are quarantined (docs/operations.md says how to replay them).
    let r = s
        .client
        .post(format!("{}/api/departments/sync", s.base))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");

    // HL7 text (two messages), NDJSON and a JSON array.
    let r = s
        .client
        .post(format!("{}/api/adt", s.base))
        .header("Content-Type", "text/plain")
        .body(HL7_BATCH)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["events"], 2, "{v}");
    let ndjson = "{\"message_id\":\"J-1\",\"event_type\":\"A04\",\"facility\":\"MHA01\",\"recorded_time\":\"2026-01-14T10:00:00-06:00\",\"patient\":{\"mrn\":\"MHA01-P2\"},\"visit\":{\"visit_number\":\"MHA01-V2\",\"department\":\"ED\"}}\n\
                  {\"message_id\":\"J-2\",\"event_type\":\"A04\",\"facility\":\"MHA01\",\"recorded_time\":\"2026-01-14T10:05:00-06:00\",\"patient\":{\"mrn\":\"MHA01-P3\"},\"visit\":{\"visit_number\":\"MHA01-V3\",\"department\":\"ED\"}}\n";
    let r = s
        .client
        .post(format!("{}/api/adt", s.base))
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let array = json!([{"message_id": "J-3", "event_type": "A04", "facility": "MHA01", "recorded_time": "2026-01-14T10:10:00-06:00",
                         "patient": {"mrn": "MHA01-P4"}, "visit": {"visit_number": "MHA01-V4", "department": "ED"}}]);
    let r = s
        .client
        .post(format!("{}/api/adt", s.base))
        .json(&array)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Posting the same again changes nothing.
    let r = s
        .client
        .post(format!("{}/api/adt", s.base))
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["report"]["duplicates_skipped"], 2, "{v}");

    // The SQL endpoint answers the Bronze count, in JSON and in CSV.
    assert_eq!(s.count("bronze_adt_messages").await, Some(5));
    let r = s
        .client
        .get(format!("{}/api/query", s.base))
        .bearer_auth(patientflow_tests::security::admin_token())
        .query(&[
            (
                "sql",
                "SELECT facility, COUNT(*) AS n FROM bronze_adt_messages GROUP BY facility",
            ),
            ("format", "csv"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(r.text().await.unwrap(), "facility,n\nMHA01,5\n");
    let (status, v) = s.sql("INSERT INTO bronze_adt_messages VALUES (1)").await;
    assert_eq!(status, 400, "{v}");

    // The Silver timer (every 3 s here) picks the events up: all five, since a timer run between the
    // posts may have taken only Jane's two, and a Gold run then would see "now" at 09:30, her ED hour.
    let started = Instant::now();
    loop {
        if s.count("silver_adt_events").await.unwrap_or(0) >= 5 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the Silver timer did not run"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Gold through the ADF WebHook route: 202, then the callback; then current occupancy is served.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // A Gold run that meets a Silver run in progress reports "skipped": ask again, as the next ADF run would.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let r = s
            .client
            .post(format!("{}/api/gold/refresh", s.base))
            .json(&json!({"mode": "full", "callBackUri": format!("http://{addr}/cb")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let callback = tokio::time::timeout(Duration::from_secs(240), rx.recv())
            .await
            .expect("Gold callback")
            .unwrap();
        assert_eq!(callback["StatusCode"], "200", "{callback}");
        assert_eq!(callback["Output"]["stage"], "gold");
        if callback["Output"]["status"] != "skipped" || attempts >= 10 {
            assert_eq!(callback["Output"]["status"], "succeeded", "{callback}");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Jane (V1) was admitted from the ED to MED and is still there.
    let (status, occupancy) = s
        .sql("SELECT occupied_beds FROM gold_kpi_occupancy_current WHERE hospital_id = 'MHA01' AND department_code = 'MED'")
        .await;
    assert_eq!(status, 200, "{occupancy}");
    assert_eq!(occupancy["rows"][0]["occupied_beds"], 1, "{occupancy}");

    let r = s
        .client
        .get(format!("{}/api/dashboard", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("dashboard.js"));
    // The dashboard's occupancy tile gives the same answer as the SQL endpoint.
    let r = s
        .client
        .get(format!("{}/api/dashboard/data/occupancy", s.base))
        .query(&[("hospital", "MHA01")])
        .bearer_auth(patientflow_tests::security::admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tile: Value = r.json().await.unwrap();
    let med = tile["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["department_code"] == "MED")
        .cloned()
        .unwrap_or_else(|| panic!("no MED row: {tile}"));
    assert_eq!(med["occupied_beds"], 1, "{tile}");
}

/// The README's main job: `serve --simulate` alone gives a live pipeline — the simulated hospitals'
/// reference data and ADT feed go in, the Silver timer and the Gold run after it follow, and the SQL
/// endpoint answers occupancy.
#[tokio::test]
async fn serve_simulate_runs_the_whole_pipeline_live() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let s = Serve::start_with(
        &dir.path().join("lake"),
        &landing,
        &["--simulate", "--speed", "0", "--sim-days", "2"],
    )
    .await;
    let started = Instant::now();
    loop {
        let (status, v) = s
            .sql("SELECT SUM(occupied_beds) AS n FROM gold_kpi_occupancy_current")
            .await;
        if status == 200 && v["rows"][0]["n"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no occupancy served within 240 s: {v}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The seven simulated hospitals are known, so no event was rejected for an unknown facility.
    assert_eq!(s.count("silver_hospitals").await, Some(7));
    let (status, v) = s
        .sql(
            "SELECT COUNT(*) AS n FROM silver_quarantine WHERE rule_id = 'DQ-ADT-FACILITY-UNKNOWN'",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rows"][0]["n"], 0, "{v}");
    // Every stage run of the live pipeline is in the run ledger, with what started it (Gold's row is
    // written just after its tables, so give it a moment).
    let expected = [
        ("bronze.reference", "serve"),
        ("bronze.adt", "eventhub"),
        ("silver", "timer"),
        ("gold", "serve"),
    ];
    let started = Instant::now();
    loop {
        let (status, v) = s
            .sql("SELECT stage, trigger, COUNT(*) AS n FROM ops_run_ledger WHERE status <> 'failed' GROUP BY stage, trigger")
            .await;
        assert_eq!(status, 200, "{v}");
        let rows = v["rows"].as_array().cloned().unwrap_or_default();
        let has = |stage: &str, trigger: &str| {
            rows.iter().any(|r| {
                r["stage"] == stage && r["trigger"] == trigger && r["n"].as_i64() > Some(0)
            })
        };
        if expected.iter().all(|(st, tr)| has(st, tr)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run ledger lacks some of {expected:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
