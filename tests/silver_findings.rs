//! Every rule leaves a finding that names the rule and traces back to the source record, in every
//! source path; corrected re-sends win; identity findings that later records clear are withdrawn.

use std::collections::HashMap;

use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions};
use patientflow_core::storage::columns::{ints, strings};
use patientflow_core::storage::Lake;

const HOSPITALS: &str =
    "hospital_id,name,city,state,time_zone\nMHA01,Lakeside General,Chicago,IL,America/Chicago\n";
const DEPARTMENTS: &str = "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n\
MHA01,ED,Emergency,Emergency,30,24,20,8,2026-01-01\n\
MHA01,MED,Medical,Medical,40,32,28,10,2026-01-01\n";

fn hl7(id: &str, trigger: &str, evn: &str, pid: &str, pv1: &str) -> String {
    format!("MSH|^~\\&|REG|MHA01|LAKE|MHA|{evn}||ADT^{trigger}|{id}|P|2.5\rEVN|{trigger}|{evn}||||{evn}\r{pid}\r{pv1}\n")
}

fn pid(mrn: &str, family: &str, sex: &str) -> String {
    format!("PID|||{mrn}^^^MHA01^MR||{family}^Ann||19800101|{sex}")
}

/// One finding as read back from `silver_quarantine`.
#[derive(Debug, Clone)]
struct Row {
    rule: String,
    action: String,
    reason: String,
    source_name: Option<String>,
    position: Option<i64>,
}

async fn findings(lake: &Lake) -> HashMap<String, Vec<Row>> {
    let mut out: HashMap<String, Vec<Row>> = HashMap::new();
    for b in lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT source_key, rule_id, action, reason, source_name, source_position FROM silver_quarantine",
        )
        .await
        .unwrap()
    {
        let key = strings(&b, "source_key").unwrap();
        let rule = strings(&b, "rule_id").unwrap();
        let action = strings(&b, "action").unwrap();
        let reason = strings(&b, "reason").unwrap();
        let name = strings(&b, "source_name").unwrap();
        let pos = ints(&b, "source_position").unwrap();
        for i in 0..b.num_rows() {
            out.entry(key[i].clone().unwrap()).or_default().push(Row {
                rule: rule[i].clone().unwrap(),
                action: action[i].clone().unwrap(),
                reason: reason[i].clone().unwrap_or_default(),
                source_name: name[i].clone(),
                position: pos[i],
            });
        }
    }
    out
}

async fn lake_with_reference(dir: &std::path::Path) -> Lake {
    let reference = dir.join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::write(reference.join("hospitals.csv"), HOSPITALS).unwrap();
    std::fs::write(reference.join("departments.csv"), DEPARTMENTS).unwrap();
    let lake = Lake::open(dir.join("lake").to_str().unwrap())
        .await
        .unwrap();
    bronze::reference::ingest_paths(&lake, &[reference.display().to_string()], "r", &|_, _| {})
        .await
        .unwrap();
    lake
}

async fn ingest_adt(lake: &Lake, path: &std::path::Path) {
    let r = AdtIngestor::new(lake.clone())
        .ingest_paths(&[path.display().to_string()], "a", &|_, _| {})
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

async fn silver(lake: &Lake) -> serde_json::Value {
    refresh_silver(
        lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap()
    .details
}

#[tokio::test]
async fn invalid_sex_codes_and_a_missing_admit_time_leave_findings_with_lineage_in_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_reference(dir.path()).await;
    let adt = dir.path().join("adt");
    std::fs::create_dir_all(&adt).unwrap();
    // HL7: one A01 per invalid code, each with PV1-44 empty.
    let codes = ["Q", "1", "Z", "?", "UNK", "MALE"];
    let mut file = String::new();
    for (i, code) in codes.iter().enumerate() {
        file += &hl7(
            &format!("S{i}"),
            "A01",
            &format!("2026011{}080000-0600", i + 1),
            &pid(&format!("P{i}"), "Doe", code),
            &format!("PV1||I|MED^1^A^MHA01||||||||||||||||V{i}"),
        );
    }
    std::fs::write(adt.join("codes.hl7"), &file).unwrap();
    // JSON: the same codes through the JSON path.
    let mut json = String::new();
    for (i, code) in codes.iter().enumerate() {
        json += &format!(
            "{{\"schema\":\"patientflow.adt.v1\",\"message_id\":\"J{i}\",\"event_type\":\"A01\",\"facility\":\"MHA01\",\
             \"recorded_time\":\"2026-01-1{}T08:00:00-06:00\",\"event_time\":\"2026-01-1{}T08:00:00-06:00\",\"patient\":{{\"mrn\":\"JP{i}\",\"family_name\":\"Ng\",\"sex\":\"{code}\"}},\
             \"visit\":{{\"visit_number\":\"JV{i}\",\"patient_class\":\"I\",\"department\":\"MED\"}}}}\n",
            i + 1,
            i + 1
        );
    }
    std::fs::write(adt.join("codes.ndjson"), &json).unwrap();
    ingest_adt(&lake, &adt).await;
    // EHR extract: the same codes in the sex column.
    let ehr = dir.path().join("ehr");
    std::fs::create_dir_all(&ehr).unwrap();
    let mut csv = String::from(
        "patient_id,facility,first_name,last_name,birth_date,sex,street,city,state,zip,updated_at\n",
    );
    for (i, code) in codes.iter().enumerate() {
        csv += &format!("E{i},MHA01,Ann,Roe,1980-01-01,{code},1 Elm St,Chicago,IL,60601,2026-01-12T08:00:00-06:00\n");
    }
    std::fs::write(ehr.join("patients_2026-01-12.csv"), &csv).unwrap();
    bronze::ehr::ingest_paths(&lake, &[ehr.display().to_string()], None, "e", &|_, _| {})
        .await
        .unwrap();
    silver(&lake).await;

    let f = findings(&lake).await;
    let mut seen = 0;
    for (i, code) in codes.iter().enumerate() {
        for (key, source, position) in [
            (format!("MHA01|S{i}"), "codes.hl7", i as i64),
            (format!("MHA01|J{i}"), "codes.ndjson", i as i64),
        ] {
            let rows = f
                .get(&key)
                .unwrap_or_else(|| panic!("{code}: no finding on {key}"));
            let sex = rows
                .iter()
                .find(|r| r.rule == "DQ-PAT-SEX-INVALID")
                .unwrap_or_else(|| panic!("{code}: no sex finding on {key}: {rows:?}"));
            let expected_action = if *code == "MALE" {
                "repair"
            } else {
                "drop_attribute"
            };
            assert_eq!(sex.action, expected_action, "{code} on {key}");
            assert!(
                sex.source_name
                    .as_deref()
                    .is_some_and(|n| n.ends_with(source)),
                "{sex:?}"
            );
            // Positions are the message's index within its file (0-based, as Bronze counts).
            assert_eq!(
                sex.position.map(|p| p - position),
                Some(0),
                "{key}: {sex:?}"
            );
            let admit = rows
                .iter()
                .find(|r| r.rule == "DQ-ADMIT-TIME-MISSING")
                .unwrap_or_else(|| panic!("no admit-time finding on {key}: {rows:?}"));
            assert!(admit.reason.starts_with("guessed repair"), "{admit:?}");
            seen += 1;
        }
        let ehr_key = f
            .iter()
            .find(|(k, rows)| {
                k.ends_with(&format!("patients_2026-01-12.csv:{}", i + 1))
                    && rows.iter().any(|r| r.rule == "DQ-PAT-SEX-INVALID")
            })
            .unwrap_or_else(|| panic!("{code}: no finding on the EHR row"));
        let row = &ehr_key.1[0];
        assert!(row
            .source_name
            .as_deref()
            .is_some_and(|n| n.ends_with("patients_2026-01-12.csv")));
        assert_eq!(row.position, Some(i as i64 + 1));
        seen += 1;
    }
    assert_eq!(seen, codes.len() * 3);
    // MALE was applied as M; the others left the sex out.
    let sexes = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT mrn, sex FROM silver_dim_patient WHERE mrn IN ('P0', 'P5') ORDER BY mrn",
        )
        .await
        .unwrap();
    let sex = strings(&sexes[0], "sex").unwrap();
    assert_eq!(sex, vec![None, Some("M".to_string())]);
}

#[tokio::test]
async fn a_corrected_re_send_wins_and_an_early_new_name_is_cleared_when_its_a08_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_reference(dir.path()).await;
    let adt = dir.path().join("adt1");
    std::fs::create_dir_all(&adt).unwrap();
    // V1: ED arrival, then an A01 naming an unknown department (quarantined), then its re-send with
    // the right department (a new message id, same event) — the re-send's admission stands.
    let p = pid("P1", "Doe", "F");
    let mut day1 = hl7(
        "M1",
        "A04",
        "20260112080000-0600",
        &p,
        "PV1||E|ED^1^A^MHA01||||||||||||||||V1",
    );
    day1 += &hl7(
        "M2",
        "A01",
        "20260112100000-0600",
        &p,
        "PV1||I|XRAY^1^A^MHA01||||||||||||||||V1|||||||||||||||||||||||||20260112100000-0600",
    );
    day1 += &hl7(
        "M2R",
        "A01",
        "20260112100000-0600",
        &p,
        "PV1||I|MED^4^A^MHA01||||||||||||||||V1|||||||||||||||||||||||||20260112100000-0600",
    );
    // A02 with the patient's new family name, delivered before the A08 (sent at 11:00) that changes it.
    let married = pid("P1", "Smith", "F");
    day1 += &hl7(
        "M4",
        "A02",
        "20260112120000-0600",
        &married,
        "PV1||I|MED^5^A^MHA01||||||||||||||||V1",
    );
    std::fs::write(adt.join("day1.hl7"), &day1).unwrap();
    ingest_adt(&lake, &adt).await;
    silver(&lake).await;
    let before = findings(&lake).await;
    assert!(
        before["MHA01|M2"]
            .iter()
            .any(|r| r.rule == "DQ-DEPT-UNKNOWN" && r.action == "quarantine"),
        "{before:?}"
    );
    assert!(
        !before.contains_key("MHA01|M2R"),
        "the re-send is clean: {before:?}"
    );
    // Until its A08 arrives the new name is in doubt.
    assert!(before
        .get("MHA01|M4")
        .is_some_and(|rows| rows.iter().any(|r| r.rule == "DQ-PAT-IDENTITY-CONFLICT")));

    let adt2 = dir.path().join("adt2");
    std::fs::create_dir_all(&adt2).unwrap();
    std::fs::write(
        adt2.join("day2.hl7"),
        hl7(
            "M3",
            "A08",
            "20260112110000-0600",
            &married,
            "PV1||I|MED^4^A^MHA01||||||||||||||||V1",
        ),
    )
    .unwrap();
    ingest_adt(&lake, &adt2).await;
    let details = silver(&lake).await;
    assert_eq!(
        details["patients"]["identity_findings_withdrawn"], 1,
        "{details}"
    );
    let after = findings(&lake).await;
    assert!(
        !after.contains_key("MHA01|M4"),
        "the A08 clears the early new name: {after:?}"
    );
    // The A08 happened before the A02 but was received after it: a late event, counted with lineage.
    let late = after["MHA01|M3"]
        .iter()
        .find(|r| r.rule == "DQ-LATE-EVENT")
        .expect("the late A08 is counted");
    assert_eq!(late.action, "count");
    assert!(late
        .source_name
        .as_deref()
        .is_some_and(|n| n.ends_with("day2.hl7")));
    assert_eq!(late.position, Some(0));
    assert!(!after.contains_key("MHA01|M2R"), "{after:?}");

    // The stays: ED, then MED bed 4 from the re-sent admission, then bed 5.
    let stays = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT department, room FROM silver_location_stays ORDER BY start_time",
        )
        .await
        .unwrap();
    let depts = strings(&stays[0], "department").unwrap();
    let rooms = strings(&stays[0], "room").unwrap();
    assert_eq!(
        depts.into_iter().zip(rooms).collect::<Vec<_>>(),
        vec![
            (Some("ED".into()), Some("1".into())),
            (Some("MED".into()), Some("4".into())),
            (Some("MED".into()), Some("5".into())),
        ]
    );
    let names = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT family_name FROM silver_dim_patient ORDER BY valid_from",
        )
        .await
        .unwrap();
    assert_eq!(
        strings(&names[0], "family_name").unwrap(),
        vec![Some("Doe".to_string()), Some("Smith".to_string())]
    );
}

#[tokio::test]
async fn an_event_hub_message_s_finding_names_its_partition_and_offset() {
    use patientflow_core::bronze::adt::AdtInput;
    use patientflow_core::bronze::Lineage;
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with_reference(dir.path()).await;
    let message = hl7(
        "E1",
        "A01",
        "20260112080000-0600",
        &pid("P1", "Doe", "Q"),
        "PV1||I|MED^1^A^MHA01||||||||||||||||V1|||||||||||||||||||||||||20260112080000-0600",
    );
    let r = AdtIngestor::new(lake.clone())
        .ingest_events(
            vec![AdtInput {
                payload: message.into_bytes(),
                lineage: Lineage {
                    source_name: "adt-events".into(),
                    partition: Some("3".into()),
                    sequence_number: Some(101),
                    offset: Some("4294969992".into()),
                    enqueued_time: Some(chrono::Utc::now()),
                    ..Default::default()
                },
            }],
            "eh",
        )
        .await
        .unwrap();
    assert_eq!(r.total_rows(), 1);
    silver(&lake).await;
    let f = findings(&lake).await;
    let sex = f["MHA01|E1"]
        .iter()
        .find(|r| r.rule == "DQ-PAT-SEX-INVALID")
        .expect("a finding on the event");
    assert_eq!(sex.source_name.as_deref(), Some("adt-events/partition/3"));
    assert_eq!(sex.position, Some(4_294_969_992));
}
