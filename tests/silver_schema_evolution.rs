//! Schema evolution of patient attributes (PRODUCT §5) end to end: a new integer column in the EHR
//! patient extracts gets a type, is widened to double when decimals arrive, and a value that fits
//! neither goes to `_rescued_data` and the DQ report — in `silver_ehr_patients` and the patient
//! dimension, with the types read back from the Delta schemas.

use patientflow_core::bronze;
use patientflow_core::pipeline::{refresh_gold, refresh_silver, RefreshOptions};
use patientflow_core::silver;
use patientflow_core::storage::Lake;
use patientflow_tests::{fixtures, scenarios::count, table_csv};

const HEADER: &str =
    "patient_id,facility,first_name,last_name,birth_date,sex,street,city,state,zip,updated_at,household_size\n";

fn opts(full: bool) -> RefreshOptions {
    RefreshOptions {
        full,
        trigger: "test".into(),
    }
}

/// Writes one day's patient extract and ingests it into Bronze.
async fn ingest_day(lake: &Lake, dir: &std::path::Path, date: &str, rows: &str) {
    let path = dir.join(format!("patients_{date}.csv"));
    std::fs::write(&path, format!("{HEADER}{rows}")).unwrap();
    let r = bronze::ehr::ingest_paths(
        lake,
        &[path.display().to_string()],
        None,
        &format!("ehr-{date}"),
        &|_, _| {},
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// The column's type as the table's Delta schema has it (`long`, `double`, …), or `None`.
async fn delta_type(
    lake: &Lake,
    table: patientflow_core::storage::TableRef,
    column: &str,
) -> Option<String> {
    let info = patientflow_core::serving::tables::describe(lake, table)
        .await
        .unwrap();
    info.columns.iter().find_map(|c| {
        let (name, ty) = c.split_once(": ")?;
        (name == column).then(|| ty.to_string())
    })
}

/// The Arrow type DataFusion reads the column as.
async fn arrow_type(lake: &Lake, table: &str, column: &str) -> String {
    let csv = table_csv(
        lake,
        &format!("(SELECT DISTINCT arrow_typeof(\"{column}\") AS t FROM {table}) AS x"),
        &[],
    )
    .await;
    csv.lines().skip(1).collect::<Vec<_>>().join(";")
}

async fn dim(lake: &Lake) -> String {
    table_csv(
        lake,
        "(SELECT patient_key, CAST(household_size AS VARCHAR) AS household_size, valid_from, status FROM silver_dim_patient) AS t",
        &[],
    )
    .await
}

async fn versions(lake: &Lake) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for t in silver::TABLES {
        out.push(
            lake.open_table(t)
                .await
                .unwrap()
                .and_then(|t| patientflow_core::storage::version_of(&t)),
        );
    }
    out
}

#[tokio::test]
async fn schema_evolution_types_widens_and_rescues_patient_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures::write(&dir.path().join("in"));
    let extracts = dir.path().join("extracts");
    std::fs::create_dir_all(&extracts).unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    let r = bronze::reference::ingest_paths(
        &lake,
        &[f.reference.display().to_string()],
        "ref",
        &|_, _| {},
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // Day 1: a new column with integers only → long.
    ingest_day(
        &lake,
        &extracts,
        "2026-01-12",
        "P1,MHA01,Jane,Doe,1980-01-01,F,1 Elm St,Chicago,IL,60601,2026-01-12T08:00:00-06:00,3\n\
         P2,MHA01,Rick,Roe,1950-05-05,M,9 Oak Ave,Chicago,IL,60602,2026-01-12T13:00:00-06:00,4\n",
    )
    .await;
    let report = refresh_silver(&lake, &opts(false)).await.unwrap();
    assert_eq!(report.status, "succeeded");
    for table in [silver::DIM_PATIENT, silver::EHR_PATIENTS] {
        assert_eq!(
            delta_type(&lake, table, "household_size").await.as_deref(),
            Some("long"),
            "{table} after day 1"
        );
        assert_eq!(
            delta_type(&lake, table, "_rescued_data").await,
            None,
            "{table}"
        );
    }
    assert_eq!(
        arrow_type(&lake, "silver_dim_patient", "household_size").await,
        "Int64"
    );
    assert_eq!(
        dim(&lake).await,
        "patient_key,household_size,valid_from,status\n\
         MHA01|P1,3,2026-01-12T14:00:00Z,active\n\
         MHA01|P2,4,2026-01-12T19:00:00Z,active\n"
    );
    assert_eq!(
        count(&lake, "silver_quarantine", "rule_id LIKE 'DQ-SCHEMA-%'").await,
        0
    );
    let gold = refresh_gold(&lake, &opts(false)).await.unwrap();
    assert_ne!(gold.status, "failed", "{gold:?}");

    // Day 2: a decimal → both tables widened to double; the earlier values read as 3.0 and 4.0.
    ingest_day(
        &lake,
        &extracts,
        "2026-01-13",
        "P2,MHA01,Rick,Roe,1950-05-05,M,9 Oak Ave,Chicago,IL,60602,2026-01-13T13:00:00-06:00,2.5\n",
    )
    .await;
    refresh_silver(&lake, &opts(false)).await.unwrap();
    for table in [silver::DIM_PATIENT, silver::EHR_PATIENTS] {
        assert_eq!(
            delta_type(&lake, table, "household_size").await.as_deref(),
            Some("double"),
            "{table} after day 2"
        );
    }
    // Gold follows the widening (a narrower Gold column cannot take the new values in place).
    let gold = refresh_gold(&lake, &opts(false)).await.unwrap();
    assert_ne!(gold.status, "failed", "{gold:?}");
    if gold.status == "succeeded" {
        assert_eq!(
            arrow_type(&lake, "gold_dim_patient", "household_size").await,
            "Float64"
        );
    }
    assert_eq!(
        arrow_type(&lake, "silver_dim_patient", "household_size").await,
        "Float64"
    );
    assert_eq!(
        arrow_type(&lake, "silver_ehr_patients", "household_size").await,
        "Float64"
    );
    assert_eq!(
        dim(&lake).await,
        "patient_key,household_size,valid_from,status\n\
         MHA01|P1,3.0,2026-01-12T14:00:00Z,active\n\
         MHA01|P2,2.5,2026-01-13T19:00:00Z,active\n\
         MHA01|P2,4.0,2026-01-12T19:00:00Z,inactive\n"
    );
    assert_eq!(
        table_csv(
            &lake,
            "(SELECT source_key, household_size FROM silver_ehr_patients) AS t",
            &[],
        )
        .await
        .lines()
        .map(|l| l.rsplit(',').next().unwrap_or_default().to_string())
        .collect::<Vec<_>>(),
        vec!["household_size", "3.0", "4.0", "2.5"]
    );
    // Each widening is recorded once per table, with the value that needed it.
    assert_eq!(
        table_csv(
            &lake,
            "(SELECT source_table, field, action, reason, raw_value FROM silver_quarantine WHERE rule_id = 'DQ-SCHEMA-WIDENED') AS t",
            &[],
        )
        .await,
        "source_table,field,action,reason,raw_value\n\
         silver_dim_patient,household_size,widen,column household_size widened from long to double,2.5\n\
         silver_ehr_patients,household_size,widen,column household_size widened from long to double,2.5\n"
    );
    let dq = silver::report::build(&lake, None).await.unwrap();
    let widened: Vec<(String, String, String)> = dq
        .schema_changes
        .iter()
        .filter(|c| c.change != "added")
        .map(|c| (c.table.clone(), c.column.clone(), c.change.clone()))
        .collect();
    assert_eq!(
        widened,
        vec![
            (
                "silver_dim_patient".to_string(),
                "household_size".to_string(),
                "widened from long to double".to_string()
            ),
            (
                "silver_ehr_patients".to_string(),
                "household_size".to_string(),
                "widened from long to double".to_string()
            ),
        ]
    );
    assert!(dq
        .schema_changes
        .iter()
        .any(|c| c.column == "household_size" && c.change == "added"));

    // Day 3: "abc" fits neither double nor a wider type → null, kept in _rescued_data, one finding.
    ingest_day(
        &lake,
        &extracts,
        "2026-01-14",
        "P1,MHA01,Jane,Doe,1980-01-01,F,1 Elm St,Chicago,IL,60601,2026-01-14T08:00:00-06:00,abc\n",
    )
    .await;
    refresh_silver(&lake, &opts(false)).await.unwrap();
    assert_eq!(
        delta_type(&lake, silver::DIM_PATIENT, "household_size")
            .await
            .as_deref(),
        Some("double")
    );
    let with_rescued = table_csv(
        &lake,
        "(SELECT patient_key, CAST(household_size AS VARCHAR) AS household_size, _rescued_data, status FROM silver_dim_patient) AS t",
        &[],
    )
    .await;
    assert_eq!(
        with_rescued,
        "patient_key,household_size,_rescued_data,status\n\
         MHA01|P1,3.0,,inactive\n\
         MHA01|P1,,\"{\"\"household_size\"\":\"\"abc\"\"}\",active\n\
         MHA01|P2,2.5,,active\n\
         MHA01|P2,4.0,,inactive\n"
    );
    assert_eq!(
        count(
            &lake,
            "silver_ehr_patients",
            "household_size IS NULL AND _rescued_data = '{\"household_size\":\"abc\"}'"
        )
        .await,
        1
    );
    assert_eq!(
        table_csv(
            &lake,
            "(SELECT rule_id, severity, action, field, raw_value, source_table FROM silver_quarantine WHERE rule_id = 'DQ-SCHEMA-RESCUED') AS t",
            &[],
        )
        .await,
        "rule_id,severity,action,field,raw_value,source_table\n\
         DQ-SCHEMA-RESCUED,warn,rescue,household_size,abc,silver_ehr_patients\n"
    );
    let dq = silver::report::build(&lake, None).await.unwrap();
    let rescued: i64 = dq
        .sources
        .iter()
        .flat_map(|s| s.findings.iter())
        .filter(|f| f.rule_id == "DQ-SCHEMA-RESCUED")
        .map(|f| f.findings)
        .sum();
    assert_eq!(rescued, 1, "the DQ report counts the rescued value");
    assert!(dq
        .samples
        .iter()
        .any(|s| s.rule_id == "DQ-SCHEMA-RESCUED" && s.raw_value_masked.as_deref() == Some("axx")));

    // Nothing new: nothing changes.
    let before = versions(&lake).await;
    let again = refresh_silver(&lake, &opts(false)).await.unwrap();
    assert_eq!(again.status, "skipped");
    assert_eq!(versions(&lake).await, before);

    // A full refresh keeps the types the lake has and gives the same tables.
    let snapshot = |lake: Lake| async move {
        let mut out = Vec::new();
        for t in [
            "silver_dim_patient",
            "silver_ehr_patients",
            "silver_quarantine",
        ] {
            out.push(
                table_csv(
                    &lake,
                    t,
                    &["silver_run_id", "run_id", "quarantined_at", "ingested_at"],
                )
                .await,
            );
        }
        out
    };
    let incremental = snapshot(lake.clone()).await;
    refresh_silver(&lake, &opts(true)).await.unwrap();
    assert_eq!(snapshot(lake.clone()).await, incremental);
    assert_eq!(
        delta_type(&lake, silver::EHR_PATIENTS, "household_size")
            .await
            .as_deref(),
        Some("double")
    );
}
