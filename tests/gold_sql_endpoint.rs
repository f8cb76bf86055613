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

    // Every Gold table has a Synapse view whose columns and types match its Delta schema
    // (dim_patient's view lists the attributes known today; new ones are added as they appear).
    let views = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../synapse/01_gold_views.sql"),
    )
    .unwrap();
    for table in patientflow_core::gold::TABLES {
        let info = patientflow_core::serving::tables::describe(&lake, table)
            .await
            .unwrap();
        let marker = format!("CREATE OR ALTER VIEW gold.{} AS", table.name);
        let at = views
            .find(&marker)
            .unwrap_or_else(|| panic!("no Synapse view for {table}"));
        let body = &views[at..];
        let body = &body[body.find("WITH (").unwrap() + 6..body.find(") AS rows;").unwrap()];
        let view_cols: Vec<(String, String)> = body
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect();
        let delta_cols: std::collections::BTreeMap<String, String> = info
            .columns
            .iter()
            .map(|c| {
                let (n, t) = c.split_once(": ").unwrap();
                (n.to_string(), t.to_string())
            })
            .collect();
        for (name, sql_type) in &view_cols {
            let delta_type = delta_cols.get(name).unwrap_or_else(|| {
                panic!("view gold.{} has {name}, the table has not", table.name)
            });
            let expected = match delta_type.as_str() {
                "string" => "VARCHAR",
                "long" => "BIGINT",
                "integer" => "INT",
                "double" => "FLOAT",
                "boolean" => "BIT",
                "timestamp" => "DATETIME2",
                "date" => "DATE",
                other => panic!("{table}.{name}: unexpected Delta type {other}"),
            };
            assert!(
                sql_type.starts_with(expected),
                "{table}.{name}: Delta {delta_type}, view {sql_type}"
            );
        }
        if table != patientflow_core::gold::DIM_PATIENT {
            assert_eq!(
                view_cols.len(),
                delta_cols.len(),
                "gold.{} view lists {:?}, table has {:?}",
                table.name,
                view_cols.iter().map(|c| &c.0).collect::<Vec<_>>(),
                delta_cols.keys().collect::<Vec<_>>()
            );
        }
    }

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
