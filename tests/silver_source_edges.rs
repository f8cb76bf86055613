//! Source edges through Bronze and Silver: local times at the DST edges, the MRN chosen by assigning
//! authority, and messages whose bytes do not match their declared character set. Each outcome is read
//! back where a user sees it: `silver_adt_events`, `silver_ehr_encounters` and `silver_quarantine`
//! (rule, action, reason and the lineage `source_name` + `source_position`).

use patientflow_core::bronze::{self, adt::AdtIngestor, adt::AdtInput, Lineage, LineageKind};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions};
use patientflow_core::storage::columns::{ints, strings, timestamps};
use patientflow_core::storage::Lake;

const HOSPITALS: &str =
    "hospital_id,name,city,state,time_zone\nMHA01,Lakeside General,Chicago,IL,America/Chicago\n";
const DEPARTMENTS: &str = "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n\
MHA01,ED,Emergency,Emergency,30,24,20,8,2026-01-01\n\
MHA01,MED,Medical,Medical,40,32,28,10,2026-01-01\n";

fn quiet(_: &str, _: usize) {}

/// A lake holding the reference data (`hospitals` as given).
async fn lake_with(dir: &std::path::Path, hospitals: &str) -> Lake {
    let reference = dir.join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::write(reference.join("hospitals.csv"), hospitals).unwrap();
    std::fs::write(reference.join("departments.csv"), DEPARTMENTS).unwrap();
    let lake = Lake::open(dir.join("lake").to_str().unwrap())
        .await
        .unwrap();
    let r =
        bronze::reference::ingest_paths(&lake, &[reference.display().to_string()], "ref", &quiet)
            .await
            .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    lake
}

async fn ingest_adt(lake: &Lake, path: &std::path::Path) -> bronze::IngestReport {
    let r = AdtIngestor::new(lake.clone())
        .ingest_paths(&[path.display().to_string()], "adt", &quiet)
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r
}

async fn refresh(lake: &Lake) {
    let report = refresh_silver(
        lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(report.status, "succeeded", "{report:?}");
}

/// One `silver_quarantine` row.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    rule: String,
    action: String,
    field: Option<String>,
    reason: String,
    raw_value: Option<String>,
    source_table: String,
    source_key: String,
    source_name: String,
    source_position: Option<i64>,
}

async fn quarantine(lake: &Lake) -> Vec<Found> {
    let mut out = Vec::new();
    if lake
        .open_table(patientflow_core::silver::QUARANTINE)
        .await
        .unwrap()
        .is_none()
    {
        return out;
    }
    for b in lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT * FROM silver_quarantine ORDER BY source_name, source_position, rule_id, field",
        )
        .await
        .unwrap()
    {
        let col = |n: &str| strings(&b, n).unwrap();
        let (rule, action, field, reason, raw) = (
            col("rule_id"),
            col("action"),
            col("field"),
            col("reason"),
            col("raw_value"),
        );
        let (table, key, name) = (col("source_table"), col("source_key"), col("source_name"));
        let position = ints(&b, "source_position").unwrap();
        for i in 0..b.num_rows() {
            out.push(Found {
                rule: rule[i].clone().unwrap_or_default(),
                action: action[i].clone().unwrap_or_default(),
                field: field[i].clone(),
                reason: reason[i].clone().unwrap_or_default(),
                raw_value: raw[i].clone(),
                source_table: table[i].clone().unwrap_or_default(),
                source_key: key[i].clone().unwrap_or_default(),
                source_name: name[i].clone().unwrap_or_default(),
                source_position: position[i],
            });
        }
    }
    out
}

/// The findings of `rule`.
fn of<'a>(found: &'a [Found], rule: &str) -> Vec<&'a Found> {
    found.iter().filter(|f| f.rule == rule).collect()
}

/// `silver_adt_events` rows: message id → (event time RFC 3339, mrn, patient key).
async fn events(lake: &Lake) -> std::collections::BTreeMap<String, (String, String, String)> {
    let mut out = std::collections::BTreeMap::new();
    for b in lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT message_id, event_time, mrn, patient_key FROM silver_adt_events",
        )
        .await
        .unwrap()
    {
        let id = strings(&b, "message_id").unwrap();
        let t = timestamps(&b, "event_time").unwrap();
        let mrn = strings(&b, "mrn").unwrap();
        let key = strings(&b, "patient_key").unwrap();
        for i in 0..b.num_rows() {
            out.insert(
                id[i].clone().unwrap(),
                (
                    t[i].unwrap()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    mrn[i].clone().unwrap(),
                    key[i].clone().unwrap(),
                ),
            );
        }
    }
    out
}

/// An HL7 message; `time` goes to MSH-7, EVN-2 and EVN-6.
fn hl7(id: &str, trigger: &str, time: &str, pid3: &str) -> String {
    format!(
        "MSH|^~\\&|REG|MHA01|LAKE|MHA|{time}||ADT^{trigger}|{id}|P|2.5\rEVN|{trigger}|{time}||||{time}\r\
         PID|||{pid3}||Doe^Jane||19800101|F\rPV1||E|ED^1^A^MHA01||||||||||||||||V-{id}\r"
    )
}

/// America/Chicago, 2026: 02:30 on March 8 is in the spring-forward gap, 01:30 on November 1 in the
/// fall-back overlap. Each source (HL7, JSON, EHR extract) gets the DST rule's own finding instead of
/// the generic one, with the documented instant and the record's lineage.
#[tokio::test]
async fn local_times_at_the_dst_edges_get_their_own_rule_in_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), HOSPITALS).await;
    let adt = dir.path().join("adt");
    std::fs::create_dir_all(&adt).unwrap();
    let hl7_file = adt.join("dst.hl7");
    std::fs::write(
        &hl7_file,
        hl7("H-GAP", "A04", "20260308023000", "P1^^^MHA01^MR")
            + &hl7("H-OVERLAP", "A04", "20261101013000", "P1^^^MHA01^MR"),
    )
    .unwrap();
    let json_file = adt.join("dst.ndjson");
    let json = |id: &str, time: &str| {
        format!(
            "{{\"message_id\":\"{id}\",\"event_type\":\"A04\",\"facility\":\"MHA01\",\"recorded_time\":\"{time}\",\
             \"patient\":{{\"mrn\":\"P2\"}},\"visit\":{{\"visit_number\":\"V-{id}\",\"department\":\"ED\"}}}}\n"
        )
    };
    std::fs::write(
        &json_file,
        json("J-GAP", "2026-03-08T02:30:00") + &json("J-OVERLAP", "2026-11-01T01:30:00"),
    )
    .unwrap();
    ingest_adt(&lake, &adt).await;
    let ehr = dir.path().join("ehr");
    std::fs::create_dir_all(&ehr).unwrap();
    std::fs::write(
        ehr.join("encounters_2026-11-02.csv"),
        "encounter_id,patient_id,facility,department,patient_class,arrival_time,admit_time,discharge_time,updated_at\n\
         E1,P3,MHA01,MED,I,2026-03-08T02:30:00,2026-03-08T03:00:00-05:00,2026-11-01T01:30:00,2026-11-01T12:00:00-06:00\n",
    )
    .unwrap();
    let r = bronze::ehr::ingest_paths(&lake, &[ehr.display().to_string()], None, "ehr", &quiet)
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    refresh(&lake).await;

    let ev = events(&lake).await;
    assert_eq!(
        ev["H-GAP"].0, "2026-03-08T08:30:00Z",
        "02:30 read as 03:30 CDT"
    );
    assert_eq!(
        ev["H-OVERLAP"].0, "2026-11-01T06:30:00Z",
        "the earlier 01:30"
    );
    assert_eq!(ev["J-GAP"].0, "2026-03-08T08:30:00Z");
    assert_eq!(ev["J-OVERLAP"].0, "2026-11-01T06:30:00Z");

    let found = quarantine(&lake).await;
    let at = |rule: &str, file: &str, position: i64, field: &str| -> Found {
        let hits: Vec<_> = of(&found, rule)
            .into_iter()
            .filter(|f| {
                f.source_name.ends_with(file)
                    && f.source_position == Some(position)
                    && f.field.as_deref() == Some(field)
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{rule} {file}#{position} {field}: {found:#?}"
        );
        hits[0].clone()
    };
    for (rule, position, instant) in [
        ("DQ-TIME-LOCAL-NONEXISTENT", 0, "2026-03-08T08:30:00Z"),
        ("DQ-TIME-LOCAL-AMBIGUOUS", 1, "2026-11-01T06:30:00Z"),
    ] {
        let h = at(rule, "dst.hl7", position, "event_time");
        let raw = ["20260308023000", "20261101013000"][position as usize];
        assert_eq!(h.raw_value.as_deref(), Some(raw));
        assert_eq!(h.action, "repair");
        assert_eq!(h.source_table, "bronze_adt_messages");
        let id = ["H-GAP", "H-OVERLAP"][position as usize];
        assert_eq!(h.source_key, format!("MHA01|{id}"));
        assert!(h.reason.starts_with("guessed repair:"), "{}", h.reason);
        assert!(h.reason.contains(instant), "{}", h.reason);
        let j = at(rule, "dst.ndjson", position, "recorded_time");
        assert!(j.reason.contains(instant), "{}", j.reason);
    }
    assert!(at("DQ-TIME-LOCAL-NONEXISTENT", "dst.hl7", 0, "event_time")
        .reason
        .contains("03:30 CDT"));
    assert!(at("DQ-TIME-LOCAL-AMBIGUOUS", "dst.hl7", 1, "event_time")
        .reason
        .contains("earlier instant"));
    // The EHR row: both edges, lineage = file and row number.
    let gap = at(
        "DQ-TIME-LOCAL-NONEXISTENT",
        "encounters_2026-11-02.csv",
        1,
        "arrival_time",
    );
    assert_eq!(gap.source_table, "bronze_ehr_encounters");
    assert!(
        gap.reason.contains("2026-03-08T08:30:00Z"),
        "{}",
        gap.reason
    );
    let overlap = at(
        "DQ-TIME-LOCAL-AMBIGUOUS",
        "encounters_2026-11-02.csv",
        1,
        "discharge_time",
    );
    assert!(overlap.reason.contains("2026-11-01T06:30:00Z"));
    // Instead of, not beside, the generic finding: no DQ-TIME-NO-OFFSET on these times at all.
    assert!(
        of(&found, "DQ-TIME-NO-OFFSET").is_empty(),
        "{:#?}",
        of(&found, "DQ-TIME-NO-OFFSET")
    );
    let b = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT arrival_time, discharge_time FROM silver_ehr_encounters",
        )
        .await
        .unwrap();
    let arrival = timestamps(&b[0], "arrival_time").unwrap()[0].unwrap();
    let discharge = timestamps(&b[0], "discharge_time").unwrap()[0].unwrap();
    assert_eq!(arrival.to_rfc3339(), "2026-03-08T08:30:00+00:00");
    assert_eq!(discharge.to_rfc3339(), "2026-11-01T06:30:00+00:00");
}

/// PID-3 with two MR-typed identifiers from different assigning authorities: the hospital's configured
/// authority picks the MRN; without a configuration the first MR-typed one stays the MRN; a configured
/// authority that is not there falls back to it with an info finding.
#[tokio::test]
async fn the_mrn_is_chosen_by_the_facility_s_assigning_authority() {
    let pid3 = "LEG123^^^LEGACY^MR~N456^^^MHA01^MR";
    let run = |hospitals: &'static str| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake_with(dir.path(), hospitals).await;
        let file = dir.path().join("ids.hl7");
        std::fs::write(&file, hl7("M1", "A04", "20260114083000-0600", pid3)).unwrap();
        ingest_adt(&lake, &file).await;
        refresh(&lake).await;
        (events(&lake).await, quarantine(&lake).await, dir)
    };

    let (ev, found, _dir) = run(
        "hospital_id,name,city,state,time_zone,mrn_assigning_authority\n\
         MHA01,Lakeside General,Chicago,IL,America/Chicago,MHA01\n",
    )
    .await;
    assert_eq!(
        (ev["M1"].1.as_str(), ev["M1"].2.as_str()),
        ("N456", "MHA01|N456")
    );
    assert!(of(&found, "DQ-ADT-MRN-AUTHORITY").is_empty());

    // The simulator's hospitals.csv has no such column: the documented fallback, no finding.
    let (ev, found, _dir) = run(HOSPITALS).await;
    assert_eq!(
        (ev["M1"].1.as_str(), ev["M1"].2.as_str()),
        ("LEG123", "MHA01|LEG123")
    );
    assert!(of(&found, "DQ-ADT-MRN-AUTHORITY").is_empty());

    let (ev, found, _dir) = run(
        "hospital_id,name,city,state,time_zone,mrn_assigning_authority\n\
         MHA01,Lakeside General,Chicago,IL,America/Chicago,MHA09\n",
    )
    .await;
    assert_eq!(ev["M1"].1, "LEG123");
    let f = of(&found, "DQ-ADT-MRN-AUTHORITY");
    assert_eq!(f.len(), 1, "{found:#?}");
    assert_eq!(f[0].action, "repair");
    assert_eq!(f[0].field.as_deref(), Some("mrn"));
    assert_eq!(f[0].raw_value.as_deref(), Some("LEG123"));
    assert!(
        f[0].reason.contains("MHA09") && f[0].reason.contains("LEGACY, MHA01"),
        "{}",
        f[0].reason
    );
    assert_eq!(f[0].source_key, "MHA01|M1");
    assert!(f[0].source_name.ends_with("ids.hl7"));
    assert_eq!(f[0].source_position, Some(0));
}

/// An HL7 A04 whose MSH-18 is `charset` and whose PID-3 and PID-5 are the given bytes.
fn hl7_bytes(id: &str, charset: &str, pid3: &[u8], family: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A04|{id}|P|2.5||||||{charset}\r\
         EVN|A04|20260114083000-0600||||20260114083000-0600\rPID|||"
    )
    .into_bytes();
    m.extend_from_slice(pid3);
    m.extend_from_slice(b"||");
    m.extend_from_slice(family);
    m.extend_from_slice(
        format!("^Ann||19800101|F\rPV1||E|ED^1^A^MHA01||||||||||||||||V-{id}\r").as_bytes(),
    );
    m
}

/// The four messages of the charset test, in order: valid UTF-8; declared UTF-8 with a Latin-1 byte in
/// the family name; declared UTF-8 with a Latin-1 byte in the MRN; no declaration, Latin-1 name.
fn charset_messages() -> Vec<Vec<u8>> {
    vec![
        hl7_bytes("C1", "UNICODE UTF-8", b"P1^^^MHA01^MR", "Müller".as_bytes()),
        hl7_bytes("C2", "UNICODE UTF-8", b"P2^^^MHA01^MR", b"M\xFCller"),
        hl7_bytes("C3", "UNICODE UTF-8", b"P\xD83^^^MHA01^MR", b"Smith"),
        hl7_bytes("C4", "", b"P4^^^MHA01^MR", b"M\xFCller"),
    ]
}

/// Bronze rows by message id: (payload encoding, declared charset, charset issue, payload).
async fn bronze_charsets(
    lake: &Lake,
) -> std::collections::BTreeMap<String, (String, Option<String>, Option<String>, String)> {
    let mut out = std::collections::BTreeMap::new();
    for b in lake
        .sql(
            &bronze::TABLES,
            "SELECT message_id, payload_encoding, declared_charset, charset_issue, payload FROM bronze_adt_messages",
        )
        .await
        .unwrap()
    {
        let col = |n: &str| strings(&b, n).unwrap();
        let (id, enc, declared, issue, payload) = (
            col("message_id"),
            col("payload_encoding"),
            col("declared_charset"),
            col("charset_issue"),
            col("payload"),
        );
        for i in 0..b.num_rows() {
            out.insert(
                id[i].clone().unwrap_or_default(),
                (
                    enc[i].clone().unwrap_or_default(),
                    declared[i].clone(),
                    issue[i].clone(),
                    payload[i].clone().unwrap_or_default(),
                ),
            );
        }
    }
    out
}

/// Checks what Silver made of [`charset_messages`] delivered from `source` (a file or an Event Hub):
/// `position` gives each message's `source_position`.
async fn assert_charset_outcome(lake: &Lake, source: &str, position: impl Fn(usize) -> i64) {
    let ev = events(lake).await;
    assert!(
        ev.contains_key("C1") && ev.contains_key("C2") && ev.contains_key("C4"),
        "{ev:?}"
    );
    assert!(
        !ev.contains_key("C3"),
        "a guessed MRN must not be applied: {ev:?}"
    );
    let names = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT message_id, demographics FROM silver_adt_events ORDER BY message_id",
        )
        .await
        .unwrap();
    let demo: std::collections::BTreeMap<String, String> = names
        .iter()
        .flat_map(|b| {
            let id = strings(b, "message_id").unwrap();
            let d = strings(b, "demographics").unwrap();
            id.into_iter().zip(d).map(|(i, d)| (i.unwrap(), d.unwrap()))
        })
        .collect();
    // The valid UTF-8 message reads as sent; the Latin-1 byte reads as Latin-1 (ü).
    for id in ["C1", "C2", "C4"] {
        assert!(
            demo[id].contains("\"family_name\":\"Müller\""),
            "{id}: {}",
            demo[id]
        );
    }
    let found = quarantine(lake).await;
    let of_msg = |id: &str, rule: &str| -> Vec<Found> {
        found
            .iter()
            .filter(|f| f.source_key == format!("MHA01|{id}") && f.rule == rule)
            .cloned()
            .collect()
    };
    assert!(of_msg("C1", "DQ-ADT-CHARSET-INVALID").is_empty());
    assert!(of_msg("C1", "DQ-ADT-CHARSET-FALLBACK").is_empty());

    let repair = of_msg("C2", "DQ-ADT-CHARSET-INVALID");
    assert_eq!(repair.len(), 1, "{found:#?}");
    assert_eq!(repair[0].action, "repair");
    assert_eq!(repair[0].field.as_deref(), Some("PID-5"));
    assert!(
        repair[0].reason.starts_with("guessed repair:"),
        "{}",
        repair[0].reason
    );
    assert!(
        repair[0].reason.contains("ISO 8859-1"),
        "{}",
        repair[0].reason
    );
    assert_eq!(repair[0].source_name, source);
    assert_eq!(repair[0].source_position, Some(position(1)));

    let rejected = of_msg("C3", "DQ-ADT-CHARSET-INVALID");
    assert_eq!(rejected.len(), 1, "{found:#?}");
    assert_eq!(rejected[0].action, "quarantine");
    assert_eq!(rejected[0].field.as_deref(), Some("PID-3"));
    assert!(
        rejected[0].reason.contains("cannot be trusted"),
        "{}",
        rejected[0].reason
    );
    assert_eq!(rejected[0].source_name, source);
    assert_eq!(rejected[0].source_position, Some(position(2)));

    let fallback = of_msg("C4", "DQ-ADT-CHARSET-FALLBACK");
    assert_eq!(fallback.len(), 1, "{found:#?}");
    assert_eq!(fallback[0].action, "repair");
    assert_eq!(fallback[0].field.as_deref(), Some("PID-5"));
    assert!(
        fallback[0].reason.contains("no MSH-18"),
        "{}",
        fallback[0].reason
    );
    assert_eq!(fallback[0].source_position, Some(position(3)));
    let severity = lake
        .sql(
            &patientflow_core::silver::TABLES,
            "SELECT severity FROM silver_quarantine WHERE rule_id = 'DQ-ADT-CHARSET-FALLBACK'",
        )
        .await
        .unwrap();
    assert_eq!(
        strings(&severity[0], "severity").unwrap()[0].as_deref(),
        Some("info")
    );
}

/// One file mixing a valid UTF-8 message with messages whose bytes are not: each message is decoded on
/// its own (the valid one is not garbled), Bronze records the declared charset and the guessed fields,
/// and Silver applies, repairs or quarantines by where the bad bytes are. The Bronze table was written
/// before the new columns existed and still takes the appends.
#[tokio::test]
async fn messages_are_decoded_one_by_one_and_checked_against_their_declared_charset() {
    use patientflow_core::storage::rows::{Cell, RowsBuilder};
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), HOSPITALS).await;
    // A row as Bronze wrote them before `declared_charset` and `charset_issue`.
    let old = hl7("OLD1", "A04", "20260113083000-0600", "P0^^^MHA01^MR").replace('\n', "");
    let old = old.trim_end_matches('\r').to_string();
    let mut rows = RowsBuilder::new();
    rows.push_row([
        ("message_key", Cell::str(Some("MHA01|OLD1"))),
        ("message_id", Cell::str(Some("OLD1"))),
        ("message_type", Cell::str(Some("ADT^A04"))),
        ("trigger_event", Cell::str(Some("A04"))),
        ("facility", Cell::str(Some("MHA01"))),
        ("format", Cell::str(Some("hl7v2"))),
        ("parse_status", Cell::str(Some("ok"))),
        ("parse_error", Cell::Str(None)),
        ("id_conflict", Cell::Bool(Some(false))),
        (
            "payload_sha256",
            Cell::str(Some(bronze::sha256_hex(old.as_bytes()))),
        ),
        ("payload", Cell::str(Some(old))),
        ("payload_encoding", Cell::str(Some("utf8"))),
        ("source_kind", Cell::str(Some("file"))),
        ("source_name", Cell::str(Some("old.hl7"))),
        ("source_position", Cell::Int(Some(0))),
        ("ingested_at", Cell::ts(Some(chrono::Utc::now()))),
    ]);
    lake.append(
        bronze::ADT_MESSAGES,
        vec![rows.finish().unwrap()],
        &[],
        Default::default(),
    )
    .await
    .unwrap();

    let file = dir.path().join("charsets.hl7");
    std::fs::write(&file, charset_messages().concat()).unwrap();
    let r = ingest_adt(&lake, &file).await;
    assert_eq!(r.total_rows(), 4, "{r:?}");

    let b = bronze_charsets(&lake).await;
    assert_eq!(b["OLD1"].0, "utf8");
    assert_eq!(
        (b["OLD1"].1.as_deref(), b["OLD1"].2.as_deref()),
        (None, None)
    );
    assert_eq!(b["C1"].0, "utf8");
    assert!(b["C1"].3.contains("Müller"), "not garbled: {}", b["C1"].3);
    assert_eq!(b["C1"].1.as_deref(), Some("UNICODE UTF-8"));
    assert_eq!(b["C1"].2, None);
    assert_eq!(
        (b["C2"].0.as_str(), b["C2"].2.as_deref()),
        ("latin1", Some("PID-5"))
    );
    assert_eq!(
        (b["C3"].0.as_str(), b["C3"].2.as_deref()),
        ("latin1", Some("PID-3"))
    );
    assert_eq!(
        (
            b["C4"].0.as_str(),
            b["C4"].1.as_deref(),
            b["C4"].2.as_deref()
        ),
        ("latin1", None, Some("PID-5"))
    );

    refresh(&lake).await;
    assert!(events(&lake).await.contains_key("OLD1"));
    let source = file.display().to_string();
    assert_charset_outcome(&lake, &source, |i| i as i64).await;
}

/// Event Hub bodies, one message per event, get the same per-message treatment.
#[tokio::test]
async fn event_hub_bodies_are_checked_against_their_declared_charset_too() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_with(dir.path(), HOSPITALS).await;
    let inputs = charset_messages()
        .into_iter()
        .enumerate()
        .map(|(i, payload)| AdtInput {
            payload,
            lineage: Lineage {
                kind: LineageKind::EventHub,
                source_name: "adt-events".into(),
                partition: Some("0".into()),
                sequence_number: Some(i as i64),
                offset: Some((4_096 + i * 100).to_string()),
                ..Default::default()
            },
        })
        .collect();
    let r = AdtIngestor::new(lake.clone())
        .ingest_events(inputs, "eh")
        .await
        .unwrap();
    assert_eq!(r.total_rows(), 4, "{r:?}");
    refresh(&lake).await;
    // A finding on an event names its hub and partition, and its offset in that partition.
    assert_charset_outcome(&lake, "adt-events/partition/0", |i| 4_096 + i as i64 * 100).await;
}
