//! Data-quality detection measured against the simulator's ground-truth manifest, through the real
//! binary: `patientflow report dq-score` must find every injected defect under the rule that answers
//! its class (or handle it by structure: deduplication, event-time replay) and flag no clean record.

use std::collections::HashMap;

use patientflow_core::storage::Lake;
use patientflow_simulator::{generate, Hospitals, SimConfig};
use patientflow_tests::scenarios::count;
use patientflow_tests::{run_cli, texts};

fn ok(lake: &str, args: &[&str]) -> String {
    let out = run_cli(lake, args);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
    stdout
}

#[tokio::test]
async fn dq_score_finds_every_defect_and_flags_no_clean_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim");
    let cfg = SimConfig {
        seed: 7,
        days: 21,
        hospitals: Hospitals::Count(2),
        dirty_rate: 0.05,
        corrected_resend_rate: 1.0,
        demographic_changes: true,
        a08_overtaken_rate: 0.5,
        preferred_language_from_day: Some(7),
        insurance_type_from_day: Some(14),
        ..SimConfig::default()
    };
    generate(&cfg, &data).unwrap();
    let lake = dir.path().join("lake").display().to_string();
    let path = |p: &str| data.join(p).display().to_string();
    ok(&lake, &["ingest", "departments", &path("reference")]);
    ok(&lake, &["ingest", "adt", &path("adt")]);
    ok(&lake, &["ingest", "ehr", &path("ehr")]);
    ok(&lake, &["refresh", "silver"]);

    let manifest = path("truth/manifest.jsonl");
    let table = ok(&lake, &["report", "dq-score", "--manifest", &manifest]);
    println!("{table}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        &lake,
        &[
            "report",
            "dq-score",
            "--manifest",
            &manifest,
            "--json",
            "--strict",
        ],
    ))
    .unwrap();
    let classes = json["classes"].as_array().unwrap();
    let injected: HashMap<String, u64> = classes
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["class"].as_str().unwrap(),
                    c["source"].as_str().unwrap()
                ),
                c["injected"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every class the simulator injects is exercised at both ADT and, where it applies, EHR.
    for key in [
        "conflicting_identity/adt",
        "conflicting_identity/ehr_patients",
        "invalid_sex_code/adt",
        "invalid_sex_code/ehr_patients",
        "missing_admit_time/adt",
        "local_time_without_offset/ehr_encounters",
        "malformed_hl7/adt",
        "unknown_department/adt",
        "duplicate_delivery/adt",
        "out_of_order/adt",
    ] {
        assert!(
            injected.get(key).is_some_and(|n| *n > 0),
            "{key} not exercised: {injected:?}"
        );
    }
    for c in classes {
        assert_eq!(c["detected"], c["injected"], "missed: {c}");
    }
    assert_eq!(
        json["clean_flagged"], 0,
        "{}",
        json["clean_flagged_samples"]
    );
    assert!(json["records"].as_u64().unwrap() > 10_000);

    // An independent check of one class by count: every malformed message is quarantined as such.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let malformed = text
        .lines()
        .filter(|l| l.contains("\"malformed_hl7\""))
        .count() as i64;
    let lake_handle = Lake::open(&lake).await.unwrap();
    assert_eq!(
        count(
            &lake_handle,
            "silver_quarantine",
            "rule_id = 'DQ-ADT-MALFORMED'"
        )
        .await,
        malformed
    );

    // The command fails (exit 1) when a defect was not found: a manifest naming a clean message.
    let clean_id = {
        let b = lake_handle
            .sql(
                &patientflow_core::silver::TABLES,
                "SELECT message_id FROM silver_adt_events WHERE event_type = 'A03' LIMIT 1",
            )
            .await
            .unwrap();
        patientflow_core::storage::columns::strings(&b[0], "message_id").unwrap()[0]
            .clone()
            .unwrap()
    };
    let fake = dir.path().join("fake.jsonl");
    std::fs::write(
        &fake,
        format!("{{\"source\":\"adt\",\"record_key\":\"{clean_id}\",\"defect\":\"invalid_sex_code\"}}\n"),
    )
    .unwrap();
    let out = run_cli(
        &lake,
        &[
            "report",
            "dq-score",
            "--manifest",
            &fake.display().to_string(),
            "--strict",
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("recall 0/1"), "{stderr}");
}
