//! Silver end to end on a hand-written hospital day (tests/common/fixtures.rs): typed events, the
//! encounter state machine with late, out-of-order and cancelled messages, SCD2 dimensions with schema
//! evolution, quarantine, idempotent refreshes and crash safety.

use patientflow_core::pipeline::{refresh_silver, RefreshOptions};
use patientflow_core::silver;
use patientflow_core::storage::Lake;
use patientflow_tests::{fixtures, scenarios::count, table_csv};

fn opts() -> RefreshOptions {
    RefreshOptions {
        full: false,
        trigger: "test".into(),
    }
}

async fn fixture_lake(dir: &std::path::Path) -> Lake {
    let f = fixtures::write(&dir.join("in"));
    let lake = Lake::open(dir.join("lake").to_str().unwrap())
        .await
        .unwrap();
    fixtures::ingest(&lake, &f).await;
    lake
}

#[tokio::test]
async fn encounters_stays_and_dimensions_follow_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path()).await;
    let report = refresh_silver(&lake, &opts()).await.unwrap();
    assert_eq!(report.status, "succeeded");

    // 11 Bronze messages (the re-delivered M1 never reached Bronze): 9 applied, M8 and M9 quarantined.
    assert_eq!(count(&lake, "silver_adt_events", "true").await, 9);
    assert_eq!(
        count(
            &lake,
            "silver_quarantine",
            "action = 'quarantine' AND source_table = 'bronze_adt_messages'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &lake,
            "silver_quarantine",
            "rule_id = 'DQ-DEPT-UNKNOWN' AND raw_value = 'XRAY9'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &lake,
            "silver_quarantine",
            "rule_id = 'DQ-TIME-FUTURE' AND field = 'event_time'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &lake,
            "silver_quarantine",
            "rule_id = 'DQ-ADMIT-TIME-MISSING' AND action = 'repair'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&lake, "silver_quarantine", "rule_id = 'DQ-TIME-NO-OFFSET'").await,
        2
    );
    assert_eq!(
        count(&lake, "silver_quarantine", "rule_id = 'DQ-REF-ROW-INVALID'").await,
        1
    );

    // Encounters: V1 discharged after ED → MED → ICU (the late A02 placed by event time), V2 cancelled,
    // V3 in house with the admit time repaired, W1 registered (New York local time), V9 from the EHR alone.
    let encounters = table_csv(
        &lake,
        "silver_encounters",
        &[
            "silver_run_id",
            "last_event_time",
            "events_applied",
            "events_cancelled",
            "mrn",
            "visit_number",
            "patient_class",
        ],
    )
    .await;
    let expected = "\
encounter_key,hospital_id,patient_key,status,arrival_time,admit_time,discharge_time,first_department,last_department,los_hours,source
MHA01|V1,MHA01,MHA01|P1,discharged,2026-01-12T14:00:00Z,2026-01-12T17:00:00Z,2026-01-14T15:00:00Z,ED,ICU,46.0,adt
MHA01|V2,MHA01,MHA01|P2,cancelled,,,,,,,adt
MHA01|V3,MHA01,MHA01|P2,admitted,2026-01-13T08:00:00Z,2026-01-13T08:00:00Z,,MED,MED,,adt
MHA01|V9,MHA01,MHA01|P2,discharged,2026-01-10T14:00:00Z,2026-01-10T15:00:00Z,2026-01-11T16:00:00Z,MED,MED,25.0,ehr
MHA02|W1,MHA02,MHA02|Q1,registered,2026-01-12T14:00:00Z,,,ED,ED,,adt
";
    assert_eq!(encounters, expected);

    let stays = table_csv(
        &lake,
        "silver_location_stays",
        &["room", "bed", "patient_key", "hospital_id"],
    )
    .await;
    let expected = "\
encounter_key,stay_seq,department,start_time,end_time,start_event,end_event,source
MHA01|V1,1,ED,2026-01-12T14:00:00Z,2026-01-12T17:00:00Z,A04,A01,adt
MHA01|V1,2,MED,2026-01-12T17:00:00Z,2026-01-13T16:00:00Z,A01,A02,adt
MHA01|V1,3,ICU,2026-01-13T16:00:00Z,2026-01-14T15:00:00Z,A02,A03,adt
MHA01|V3,1,MED,2026-01-13T08:00:00Z,,A01,,adt
MHA01|V9,1,MED,2026-01-10T14:00:00Z,2026-01-11T16:00:00Z,EHR,EHR,ehr
MHA02|W1,1,ED,2026-01-12T14:00:00Z,,A04,,adt
";
    assert_eq!(stays, expected);

    // Department SCD2: MED's staffed beds change on 2026-01-10 (midnight Chicago = 06:00 UTC).
    let med = table_csv(
        &lake,
        "(SELECT department_key, staffed_beds, valid_from, valid_to, is_current, status FROM silver_dim_department WHERE department_code = 'MED') AS t",
        &[],
    )
    .await;
    assert_eq!(
        med,
        "department_key,staffed_beds,valid_from,valid_to,is_current,status\n\
         MHA01|MED,32,2026-01-01T06:00:00Z,2026-01-10T06:00:00Z,false,inactive\n\
         MHA01|MED,38,2026-01-10T06:00:00Z,,true,active\n"
    );
    // ED, MED ×2, ICU at MHA01 and ED at MHA02; MHA02's BAD row is quarantined (licensed_beds "x").
    assert_eq!(count(&lake, "silver_dim_department", "true").await, 5);

    // Patient SCD2: Jane's A08 address change makes a second version; Rick's second extract brings two new
    // columns, which start a version and are null before; exactly one current row per patient.
    let patients = table_csv(
        &lake,
        "(SELECT patient_key, street, preferred_language, insurance_type, valid_from, valid_to, status FROM silver_dim_patient) AS t",
        &[],
    )
    .await;
    assert_eq!(
        patients,
        "patient_key,street,preferred_language,insurance_type,valid_from,valid_to,status\n\
         MHA01|P1,1 Elm St,,,2026-01-12T14:00:00Z,2026-01-13T18:00:00Z,inactive\n\
         MHA01|P1,5 Lake Dr,,,2026-01-13T18:00:00Z,,active\n\
         MHA01|P2,9 Oak Ave,es,Medicare,2026-01-14T00:00:00Z,,active\n\
         MHA01|P2,9 Oak Ave,,,2026-01-12T19:00:00Z,2026-01-14T00:00:00Z,inactive\n\
         MHA02|Q1,,en,,2026-01-12T14:00:00Z,,active\n"
    );
    assert_eq!(count(&lake, "silver_dim_patient", "is_current").await, 3);
}

#[tokio::test]
async fn a_refresh_with_nothing_new_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path()).await;
    refresh_silver(&lake, &opts()).await.unwrap();
    let before = versions(&lake).await;
    let again = refresh_silver(&lake, &opts()).await.unwrap();
    assert_eq!(again.status, "skipped");
    assert_eq!(versions(&lake).await, before);
}

async fn versions(lake: &Lake) -> Vec<(String, Option<i64>)> {
    let mut out = Vec::new();
    for t in silver::TABLES {
        out.push((
            t.sql_name(),
            lake.open_table(t)
                .await
                .unwrap()
                .and_then(|t| patientflow_core::storage::version_of(&t)),
        ));
    }
    out
}

/// The Silver tables' content, minus run ids and times that differ between runs.
async fn silver_snapshot(lake: &Lake) -> Vec<String> {
    let mut out = Vec::new();
    for t in silver::TABLES {
        if t == silver::DQ_RESULTS {
            continue; // per-run figures: an interrupted run splits them across two runs by design
        }
        out.push(
            table_csv(
                lake,
                &t.sql_name(),
                &["silver_run_id", "run_id", "quarantined_at"],
            )
            .await,
        );
    }
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A fault injected after each step: the failed run is followed by a normal one, and the result equals
/// an uninterrupted run on the same Bronze.
#[tokio::test]
async fn an_interrupted_refresh_is_repaired_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let clean = fixture_lake(dir.path()).await;
    let bronze_dir = dir.path().join("bronze-only");
    copy_dir(&dir.path().join("lake"), &bronze_dir);
    refresh_silver(&clean, &opts()).await.unwrap();
    let expected = silver_snapshot(&clean).await;

    for step in silver::STEPS {
        let lake_dir = dir.path().join(format!("crash-{step}"));
        copy_dir(&bronze_dir, &lake_dir);
        let lake = Lake::open(lake_dir.to_str().unwrap()).await.unwrap();
        silver::fault::inject_after(lake.root().as_str(), step);
        let err = refresh_silver(&lake, &opts()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("injected fault after step {step}")),
            "{err}"
        );
        refresh_silver(&lake, &opts()).await.unwrap();
        assert_eq!(
            silver_snapshot(&lake).await,
            expected,
            "after a crash following step {step}"
        );
    }
}

/// A late change arriving in a later refresh splits the patient's history; incremental equals full.
#[tokio::test]
async fn late_changes_split_history_and_incremental_equals_full() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path()).await;
    refresh_silver(&lake, &opts()).await.unwrap();
    // An A08 dated between Jane's two versions arrives late: a name change on 2026-01-13 06:00 Chicago.
    let late = dir.path().join("late.hl7");
    std::fs::write(
        &late,
        "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260115000000-0600||ADT^A08|M11|P|2.5\rEVN|A08|20260115000000-0600||||20260113060000-0600\r\
         PID|||P1^^^MHA01^MR||Doe-Smith^Jane||19800101|F|||1 Elm St^^Chicago^IL^60601\rPV1||I|MED^12^B^MHA01||||||||||||||||V1\n",
    )
    .unwrap();
    patientflow_core::bronze::adt::AdtIngestor::new(lake.clone())
        .ingest_paths(&[late.display().to_string()], "late", &|_, _| {})
        .await
        .unwrap();
    let report = refresh_silver(&lake, &opts()).await.unwrap();
    assert_eq!(report.status, "succeeded");
    let jane = table_csv(
        &lake,
        "(SELECT family_name, street, valid_from, valid_to FROM silver_dim_patient WHERE patient_key = 'MHA01|P1') AS t",
        &[],
    )
    .await;
    assert_eq!(
        jane,
        "family_name,street,valid_from,valid_to\n\
         Doe,1 Elm St,2026-01-12T14:00:00Z,2026-01-13T12:00:00Z\n\
         Doe,5 Lake Dr,2026-01-13T18:00:00Z,\n\
         Doe-Smith,1 Elm St,2026-01-13T12:00:00Z,2026-01-13T18:00:00Z\n"
    );
    // The A02 of 2026-01-13 16:00 UTC still says "Doe" after the (late) name change: an identity conflict.
    assert_eq!(
        count(
            &lake,
            "silver_quarantine",
            "rule_id = 'DQ-PAT-IDENTITY-CONFLICT' AND source_key = 'MHA01|M3'"
        )
        .await,
        1
    );
    let incremental = silver_snapshot(&lake).await;
    refresh_silver(
        &lake,
        &RefreshOptions {
            full: true,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(silver_snapshot(&lake).await, incremental);
}
