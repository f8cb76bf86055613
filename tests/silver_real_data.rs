//! The public HL7 v2 samples through Silver: no crash, and every message accounted for — applied, not
//! applicable, or quarantined under a rule whose count is derived independently from Bronze.

use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions};
use patientflow_core::storage::Lake;
use patientflow_tests::{scenarios::count, shared_data_or_skip};

#[tokio::test]
async fn hl7_samples_flow_through_silver_with_every_message_explained() {
    let Some(data) = shared_data_or_skip("silver real data") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    let quiet = |_: &str, _: usize| {};
    AdtIngestor::new(lake.clone())
        .ingest_paths(
            &[data.join("hl7v2_adt").display().to_string()],
            "samples",
            &quiet,
        )
        .await
        .unwrap();

    // The samples' senders are not hospitals of our network. Register every facility they name (in
    // one zone) so their messages are typed for real; their departments stay unknown on purpose.
    let facilities = lake
        .sql(&[bronze::ADT_MESSAGES], "SELECT DISTINCT facility FROM bronze_adt_messages WHERE facility IS NOT NULL ORDER BY 1")
        .await
        .unwrap();
    let mut csv = String::from("hospital_id,name,city,state,time_zone\n");
    for b in &facilities {
        for f in patientflow_core::storage::columns::strings(b, "facility")
            .unwrap()
            .into_iter()
            .flatten()
        {
            if !f.contains(',') && !f.contains('"') {
                csv.push_str(&format!("{f},{f},Somewhere,XX,America/New_York\n"));
            }
        }
    }
    let refs = dir.path().join("ref");
    std::fs::create_dir(&refs).unwrap();
    std::fs::write(refs.join("hospitals.csv"), csv).unwrap();
    std::fs::write(
        refs.join("departments.csv"),
        "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n",
    )
    .unwrap();
    bronze::reference::ingest_paths(&lake, &[refs.display().to_string()], "ref", &quiet)
        .await
        .unwrap();

    let report = refresh_silver(
        &lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(report.status, "succeeded");

    let total = count(&lake, "bronze_adt_messages", "true").await;
    let applied = count(&lake, "silver_adt_events", "true").await;
    let quarantined = count(
        &lake,
        "silver_quarantine",
        "action = 'quarantine' AND source_table = 'bronze_adt_messages'",
    )
    .await;
    let adt = report.details["sources"]["adt"].clone();
    let not_applied = adt["findings"]["DQ-ADT-NOT-APPLIED"].as_i64().unwrap_or(0);
    // Every Bronze message is exactly one of: applied, not applicable, quarantined.
    assert_eq!(applied + not_applied + quarantined, total, "{adt}");

    // Malformed = unparseable in Bronze, plus ADT messages without their EVN/PID/PV1 segments (the
    // test-minimal messages extracted from converter unit tests).
    let unparseable = count(&lake, "bronze_adt_messages", "parse_status = 'unparseable'").await;
    let incomplete = count(
        &lake,
        "bronze_adt_messages",
        "parse_status = 'ok' AND id_conflict = false AND message_type LIKE 'ADT%' \
         AND trigger_event IN ('A01','A02','A03','A04','A08','A11','A12','A13') \
         AND (strpos(payload, concat(chr(13), 'EVN|')) = 0 OR strpos(payload, concat(chr(13), 'PID|')) = 0 \
              OR strpos(payload, concat(chr(13), 'PV1|')) = 0)",
    )
    .await;
    assert_eq!(
        count(&lake, "silver_quarantine", "rule_id = 'DQ-ADT-MALFORMED'").await,
        unparseable + incomplete
    );
    // Not applicable: parsed messages whose trigger is not one we apply (ORU, MDM, A05, A40, …).
    let other_triggers = count(
        &lake,
        "bronze_adt_messages",
        "parse_status = 'ok' AND id_conflict = false AND (trigger_event IS NULL OR trigger_event NOT IN ('A01','A02','A03','A04','A08','A11','A12','A13') OR message_type NOT LIKE 'ADT%')",
    )
    .await;
    assert_eq!(not_applied, other_triggers, "{adt}");
    // The department metadata is empty: every applicable message that names a location is quarantined
    // as an unknown department, and the messages that were applied name none.
    assert!(count(&lake, "silver_quarantine", "rule_id = 'DQ-DEPT-UNKNOWN'").await > 0);
    assert_eq!(
        count(&lake, "silver_adt_events", "department IS NOT NULL").await,
        0
    );
    // A second refresh finds nothing new.
    let again = refresh_silver(
        &lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(again.status, "skipped");
}
