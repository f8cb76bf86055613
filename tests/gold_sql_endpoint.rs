//! The SQL endpoint over Gold: read-only, Gold tables only, no way to read files or URLs; the dashboard's
//! queries answer; and `patientflow refresh gold` works from the command line.

use std::time::Duration;

use patientflow_core::serving::query::{run_gold, QueryLimits};
use patientflow_core::storage::Lake;
use patientflow_simulator::{Hospitals, SimConfig};
use patientflow_tests::{run_cli, texts};

#[path = "gold_common.rs"]
mod common;
use common::*;

/// The queries the dashboard makes (docs/performance.md § Gold measures their latency).
pub const DASHBOARD_QUERIES: [&str; 6] = [
    "SELECT hospital_id, inpatient_occupancy_pct, ed_occupied FROM gold_kpi_occupancy_current_hospital ORDER BY hospital_id",
    "SELECT hospital_id, department_code, occupied_beds, staffed_beds, occupancy_pct FROM gold_kpi_occupancy_current ORDER BY 1, 2",
    "SELECT hour_start, department_code, occupied_beds, occupancy_pct FROM gold_fact_census_hourly \
     WHERE hospital_id = 'MHA07' AND hour_start >= (SELECT MAX(hour_start) FROM gold_fact_census_hourly) - INTERVAL '48 hours' ORDER BY 1, 2",
    "SELECT department_code, sex_group, occupied_beds, share_pct FROM gold_kpi_sex_distribution WHERE hospital_id = 'MHA07'",
    "SELECT department_code, hour_of_day, wait_median_minutes, wait_p90_minutes FROM gold_kpi_admission_wait \
     WHERE hospital_id = 'MHA07' AND month_key IS NULL ORDER BY 1, 2",
    "SELECT hospital_id, month_key, alos_hours FROM gold_kpi_alos_hospital_monthly ORDER BY 1, 2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_sql_endpoint_is_read_only_and_gold_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        days: 4,
        hospitals: Hospitals::Ids(vec!["MHA07".into()]),
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    let data = generate(&cfg, dir.path());
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap()).await.unwrap();
    ingest(&lake, &data, |_| true).await;
    patientflow_core::pipeline::refresh_silver(&lake, &Default::default())
        .await
        .unwrap();

    // The CLI runs the Gold refresh and reports it.
    let out = run_cli(lake_dir.to_str().unwrap(), &["refresh", "gold", "--json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["stage"], "gold");
    assert_eq!(report["status"], "succeeded");
    let out = run_cli(lake_dir.to_str().unwrap(), &["refresh", "gold"]);
    assert!(texts(&out).0.contains("skipped"), "{:?}", texts(&out));

    let limits = QueryLimits {
        max_rows: 10_000,
        timeout: Duration::from_secs(30),
    };
    for sql in DASHBOARD_QUERIES {
        let r = run_gold(&lake, sql, limits)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(r.num_rows() > 0, "{sql}: no rows");
    }

    // No file-reading table functions, no DDL, no DML, no Bronze/Silver.
    let err = run_gold(&lake, "SELECT * FROM read_csv('/etc/passwd')", limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("read-only endpoint") && err.contains("read_csv"),
        "{err}"
    );
    let err = run_gold(
        &lake,
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        limits,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("read-only endpoint: only SELECT queries are allowed"),
        "{err}"
    );
    let err = run_gold(&lake, "SELECT * FROM '/etc/passwd'", limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found") || err.contains("table"), "{err}");
    let err = run_gold(&lake, "COPY (SELECT 1) TO '/tmp/x.csv'", limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only endpoint"), "{err}");
    let err = run_gold(&lake, "SELECT * FROM silver_encounters", limits)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("silver_encounters"), "{err}");

    // The row limit still applies.
    let r = run_gold(
        &lake,
        "SELECT * FROM gold_fact_census_hourly",
        QueryLimits {
            max_rows: 10,
            ..limits
        },
    )
    .await
    .unwrap();
    assert!(r.truncated && r.num_rows() == 10);
}
