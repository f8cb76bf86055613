//! Bronze ingestion end to end on a local lake: the real HL7 samples, Synthea extracts, idempotency,
//! schema evolution, and bad input through the real binary.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Int64Type;
use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::storage::columns::strings;
use patientflow_core::storage::Lake;
use patientflow_tests::{run_cli, scenarios, shared_data_or_skip, texts};

fn no_progress(_: &str, _: usize) {}

/// The MSH-10 control ids of the `.hl7` files of `dir` whose name passes `keep`, read straight from
/// the files.
fn msh10_ids(
    dir: &std::path::Path,
    keep: impl Fn(&str) -> bool,
) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".hl7") || !keep(&name) {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for segment in text.split(['\r', '\n']).filter(|s| s.starts_with("MSH")) {
            if let Some(id) = segment.split('|').nth(9).filter(|id| !id.trim().is_empty()) {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

/// Counts the MSH segments in a folder's `.hl7` files, split by whether MSH-10 (the control id) is
/// filled: an independent reading of the sample data, not through the parser under test.
fn count_msh10(dir: &std::path::Path) -> (i64, i64) {
    let (mut with_id, mut without_id) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                for segment in text.split(['\r', '\n']).filter(|s| s.starts_with("MSH")) {
                    match segment.split('|').nth(9) {
                        Some(id) if !id.trim().is_empty() => with_id += 1,
                        _ => without_id += 1,
                    }
                }
            }
        }
    }
    (with_id, without_id)
}

async fn grouped(lake: &Lake, sql: &str) -> BTreeMap<String, i64> {
    let batches = lake.sql(&bronze::TABLES, sql).await.expect("query");
    let mut out = BTreeMap::new();
    for b in batches {
        let keys = deltalake::arrow::compute::cast(
            b.column(0),
            &deltalake::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let keys = keys.as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let k = if keys.is_null(i) {
                "<null>".to_string()
            } else {
                keys.value(i).to_string()
            };
            out.insert(k, n.value(i));
        }
    }
    out
}

/// Every HL7 sample folder: messages parsed to id, type and facility, or kept as unparseable with a
/// reason. Counts come from the data set's own inventory (shared/data/hl7v2_adt/SOURCE.txt).
#[tokio::test]
async fn every_hl7_sample_is_parsed_or_kept_flagged_with_a_reason() {
    let Some(data) = shared_data_or_skip("hl7 samples") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
    let ingestor = AdtIngestor::new(lake.clone());
    let root = data.join("hl7v2_adt");
    let report = ingestor
        .ingest_paths(&[root.display().to_string()], "samples", &no_progress)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let folder_sql = |status: &str| {
        format!(
            "SELECT split_part(split_part(source_name, '/hl7v2_adt/', 2), '/', 1) AS folder, COUNT(*) AS n \
             FROM bronze_adt_messages WHERE parse_status = '{status}' GROUP BY 1"
        )
    };
    let ok = grouped(&lake, &folder_sql("ok")).await;
    let bad = grouped(&lake, &folder_sql("unparseable")).await;

    // SOURCE.txt: simhospital holds 1013 messages in one stream, all valid; the few stretches of the
    // stream outside any message are kept flagged (checked below to carry a reason), not dropped.
    assert_eq!(ok.get("simhospital"), Some(&1013));
    // 57 files of one message each, all valid.
    assert_eq!(ok.get("ms_fhir_converter"), Some(&57));
    // One file also holds a stretch outside any message: kept flagged with its reason (checked below).
    assert!(
        bad.get("ms_fhir_converter").copied().unwrap_or(0) <= 1,
        "{bad:?}"
    );
    // 5 messages (3 ADT^A01 + 2 ORU^R01).
    assert_eq!(ok.get("simhospital_via_bdcat"), Some(&5));
    // 76 messages extracted from the converter's tests; counted here straight from the files, those
    // whose MSH-10 is empty must be kept flagged for it, the rest parsed.
    let (with_id, without_id) = count_msh10(&root.join("linuxforhealth"));
    assert_eq!(with_id + without_id, 76);
    assert_eq!(ok.get("linuxforhealth"), Some(&with_id));
    let missing_id = grouped(
        &lake,
        "SELECT parse_error, COUNT(*) FROM bronze_adt_messages \
         WHERE source_name LIKE '%/linuxforhealth/%.hl7' AND parse_status = 'unparseable' GROUP BY 1",
    )
    .await;
    assert_eq!(
        missing_id,
        BTreeMap::from([(
            "missing message control id: MSH-10 is empty".to_string(),
            without_id
        )])
    );
    // python-hl7: 23 messages in 18 files, many of them the same message again (same id, same
    // content: re-deliveries, stored once), plus the intentionally malformed sample_bad_* envelopes.
    // Every control id of the well-formed files, read straight from the files, is in Bronze parsed.
    let expected_ids = msh10_ids(&root.join("python_hl7"), |name| {
        !name.starts_with("sample_bad_")
    });
    assert!(!expected_ids.is_empty());
    let stored_ids: std::collections::BTreeSet<String> = lake
        .sql(
            &bronze::TABLES,
            "SELECT DISTINCT message_id FROM bronze_adt_messages WHERE parse_status = 'ok'",
        )
        .await
        .unwrap()
        .iter()
        .flat_map(|b| strings(b, "message_id").unwrap())
        .flatten()
        .collect();
    let missing: Vec<_> = expected_ids.difference(&stored_ids).collect();
    assert!(
        missing.is_empty(),
        "python-hl7 messages not stored: {missing:?}"
    );
    assert!(
        bad.get("python_hl7").copied().unwrap_or(0) >= 1,
        "the sample_bad_* files must be flagged: {bad:?}"
    );
    let bad_sources = grouped(
        &lake,
        "SELECT split_part(source_name, '/python_hl7/', 2) AS f, COUNT(*) AS n FROM bronze_adt_messages \
         WHERE parse_status = 'unparseable' AND parse_error IS NOT NULL GROUP BY 1",
    )
    .await;
    assert!(
        bad_sources
            .keys()
            .filter(|f| f.ends_with(".hl7"))
            .all(|f| f.starts_with("sample_bad_")),
        "of the .hl7 files only the bad samples are flagged (the LICENSE file is too): {bad_sources:?}"
    );

    // Message types in simhospital, as SOURCE.txt counts them.
    let types = grouped(
        &lake,
        "SELECT message_type, COUNT(*) FROM bronze_adt_messages WHERE source_name LIKE '%/simhospital/%' GROUP BY 1",
    )
    .await;
    assert_eq!(types.get("ORU^R01"), Some(&610));
    assert_eq!(types.get("ADT^A01"), Some(&400));
    assert_eq!(types.get("MDM^T02"), Some(&2));
    assert_eq!(types.get("ADT^A34"), Some(&1));

    // Every parsed row has id and type, and its facility unless MSH-4 is empty (some converter test
    // messages leave it out); every unparseable row has a reason.
    let incomplete = scenarios::count(
        &lake,
        "bronze_adt_messages",
        "parse_status = 'ok' AND (message_id IS NULL OR message_type IS NULL \
         OR (facility IS NULL AND format = 'hl7v2' AND split_part(payload, '|', 4) <> ''))",
    )
    .await;
    assert_eq!(incomplete, 0);
    let unexplained = scenarios::count(
        &lake,
        "bronze_adt_messages",
        "parse_status <> 'ok' AND parse_error IS NULL",
    )
    .await;
    assert_eq!(unexplained, 0);
}

#[tokio::test]
async fn reingesting_the_same_inputs_changes_nothing() {
    let Some(data) = shared_data_or_skip("reingest") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("ref");
    std::fs::create_dir(&refs).unwrap();
    std::fs::write(
        refs.join("departments.csv"),
        "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n\
         MHA01,ED,Emergency,Emergency,40,36,30,12,2026-01-01\nMHA01,ICU,Intensive Care,ICU,20,18,25,8,2026-01-01\n",
    )
    .unwrap();
    std::fs::write(refs.join("hospitals.json"), r#"[{"hospital_id":"MHA01","name":"Lakeside","city":"Chicago","state":"IL","time_zone":"America/Chicago"}]"#).unwrap();
    let lake = dir.path().join("lake");
    scenarios::reingest_changes_nothing(
        lake.to_str().unwrap(),
        &[data.join("hl7v2_adt").display().to_string()],
        &[data.join("synthea_csv_ma100/csv").display().to_string()],
        &[refs.display().to_string()],
    )
    .await;
}

#[tokio::test]
async fn event_hub_batches_are_idempotent_and_conflicts_flagged() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::event_batches_are_idempotent(dir.path().to_str().unwrap()).await;
}

#[tokio::test]
async fn a_second_extract_with_new_columns_evolves_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    scenarios::new_extract_columns_evolve_the_schema(
        dir.path().join("lake").to_str().unwrap(),
        dir.path(),
    )
    .await;
}

/// The Synthea CSV export through its shipped profile: patients and encounters land with mapped
/// column names; the other files are not patient-flow extracts and are left alone.
#[tokio::test]
async fn synthea_extracts_land_through_their_profile() {
    let Some(data) = shared_data_or_skip("synthea") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
    let report = bronze::ehr::ingest_paths(
        &lake,
        &[data.join("synthea_csv_ma100/csv").display().to_string()],
        None,
        "synthea",
        &no_progress,
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // SOURCE.txt: patients 107, encounters 1274.
    assert_eq!(report.rows_written.get("bronze_ehr_patients"), Some(&107));
    assert_eq!(
        report.rows_written.get("bronze_ehr_encounters"),
        Some(&1274)
    );
    assert!(report
        .inputs_not_applicable
        .iter()
        .any(|f| f.ends_with("providers.csv")));
    let inpatient = scenarios::count(
        &lake,
        "bronze_ehr_encounters",
        "patient_class = 'inpatient'",
    )
    .await;
    assert_eq!(inpatient, 79);
    let unmapped_kept = scenarios::count(
        &lake,
        "bronze_ehr_patients",
        "healthcare_expenses IS NOT NULL",
    )
    .await;
    assert_eq!(unmapped_kept, 107);
}

/// Bad input through the real binary: each bad file gets a clear error or a flagged row, nothing
/// panics, and the good file of the same call lands.
#[test]
fn bad_inputs_are_reported_and_do_not_stop_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let good = "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000||ADT^A04|G1|P|2.5\rEVN|A04|20260114083000\rPID|||P1^^^MHA01^MR\rPV1||E|ED^1^A^MHA01";
    std::fs::write(inputs.join("a_good.hl7"), good).unwrap();
    std::fs::write(
        inputs.join("b_binary.hl7"),
        [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2, 0xff, 0xfe],
    )
    .unwrap();
    std::fs::write(inputs.join("c_empty.hl7"), "").unwrap();
    std::fs::write(inputs.join("d_truncated.hl7"), "MSH|^~\\&|REG|MHA01|LAKE").unwrap();
    std::fs::write(inputs.join("e_long_line.hl7"), "x".repeat(10 * 1024 * 1024)).unwrap();
    let mut latin1 =
        b"MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000||ADT^A08|L1|P|2.5\rPID|||P2^^^MHA01^MR||M"
            .to_vec();
    latin1.extend_from_slice(&[0xFC, b'l', b'l', b'e', b'r']);
    std::fs::write(inputs.join("f_latin1.hl7"), latin1).unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let missing = dir.path().join("does-not-exist.hl7");

    let out = run_cli(
        lake,
        &[
            "ingest",
            "adt",
            inputs.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "partial success exits 1\n{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("c_empty.hl7: empty file"), "{stderr}");
    assert!(
        stderr.contains("does-not-exist.hl7: no such file or directory"),
        "{stderr}"
    );

    let q = run_cli(
        lake,
        &[
            "query",
            "SELECT split_part(source_name, '/in/', 2) AS file, parse_status, payload_encoding, parse_error IS NOT NULL AS has_reason \
             FROM bronze_adt_messages ORDER BY file",
            "--format",
            "csv",
        ],
    );
    let (csv, err) = texts(&q);
    assert!(q.status.success(), "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        vec![
            "file,parse_status,payload_encoding,has_reason",
            "a_good.hl7,ok,utf8,false",
            "b_binary.hl7,unparseable,latin1,true",
            "d_truncated.hl7,unparseable,utf8,true",
            "e_long_line.hl7,unparseable,utf8,true",
            "f_latin1.hl7,ok,latin1,false",
        ],
        "{csv}"
    );
}

#[test]
fn bad_csv_files_get_clear_errors_and_ragged_rows_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("ehr");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(
        inputs.join("patients_2026-01-01.csv"),
        "patient_id,facility,first_name\nP1,MHA01,Ann\nP2,MHA01,Bo,EXTRA\n",
    )
    .unwrap();
    std::fs::write(
        inputs.join("patients_2026-01-02.csv"),
        "patient_id#facility\nP3#MHA01\n",
    )
    .unwrap();
    std::fs::write(inputs.join("encounters_2026-01-01.csv"), "").unwrap();
    let lake = dir.path().join("lake");
    let out = run_cli(
        lake.to_str().unwrap(),
        &["ingest", "ehr", inputs.to_str().unwrap()],
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(
        stderr.contains("patients_2026-01-02.csv: required column(s) patient_id, facility missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("encounters_2026-01-01.csv: empty file"),
        "{stderr}"
    );
    assert!(
        stdout.contains("rows written: 2 to bronze_ehr_patients"),
        "{stdout}"
    );
    assert!(stdout.contains("rows flagged: 1"), "{stdout}");
}

#[test]
fn query_is_read_only_and_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let out = run_cli(lake, &["query", "CREATE TABLE x AS SELECT 1"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("only SELECT queries are allowed"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");

    let out = run_cli(lake, &["query", "SELECT 1 + 1 AS two", "--format", "json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows, serde_json::json!([{"two": 2}]));

    let out = run_cli(lake, &["query", "SELECT * FROM no_such_table"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(texts(&out).1.contains("no_such_table"));
}

#[test]
fn tables_lists_versions_rows_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let file = dir.path().join("m.ndjson");
    std::fs::write(&file, "{\"message_id\":\"J1\",\"event_type\":\"A01\",\"facility\":\"MHA01\"}\n{\"message_id\":\"J2\",\"event_type\":\"A03\",\"facility\":\"MHA01\"}\n").unwrap();
    assert!(run_cli(lake, &["ingest", "adt", file.to_str().unwrap()])
        .status
        .success());
    let out = run_cli(lake, &["tables", "--json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let tables: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let adt = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bronze_adt_messages")
        .unwrap();
    assert_eq!(adt["version"], 1);
    assert_eq!(adt["rows"], 2);
    assert!(
        adt["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "payload: string"),
        "{adt}"
    );
    let missing = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bronze_hospitals")
        .unwrap();
    assert!(missing["version"].is_null());
}

/// Two ADT messages as one file, segments ended by `end`.
fn two_messages(end: &str) -> String {
    [
        "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A04|RD1|P|2.5",
        "EVN|A04|20260114083000-0600",
        "PID|||P1^^^MHA01^MR||Doe^Jane",
        "PV1||E|ED^1^A^MHA01||||||||||||||||V1",
        "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114090000-0600||ADT^A03|RD2|P|2.5",
        "EVN|A03|20260114090000-0600",
        "PID|||P1^^^MHA01^MR||Doe^Jane",
        "PV1||E|ED^1^A^MHA01||||||||||||||||V1",
    ]
    .iter()
    .map(|s| format!("{s}{end}"))
    .collect()
}

/// A file whose messages are all in Bronze already, delivered again with other bytes (LF instead of
/// CR): its messages count as re-deliveries, only the file-seen marker is committed, the run exits 0,
/// and the next run sees the file as already ingested.
#[test]
fn a_file_of_re_deliveries_with_other_bytes_is_marked_seen_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.hl7");
    let again = dir.path().join("again_lf.hl7");
    std::fs::write(&first, two_messages("\r")).unwrap();
    std::fs::write(&again, two_messages("\n")).unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let json = |out: &std::process::Output| -> serde_json::Value {
        let (stdout, stderr) = texts(out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };

    let r = json(&run_cli(
        lake,
        &["ingest", "adt", "--json", first.to_str().unwrap()],
    ));
    assert_eq!(r["rows_written"]["bronze_adt_messages"], 2, "{r}");

    let out = run_cli(lake, &["ingest", "adt", "--json", again.to_str().unwrap()]);
    let (_, stderr) = texts(&out);
    assert!(!stderr.contains("internal"), "{stderr}");
    let r = json(&out);
    assert_eq!(r["duplicates_skipped"], 2, "{r}");
    assert_eq!(r["inputs_ingested"], 1, "{r}");
    assert_eq!(r["inputs_already_ingested"], 0, "{r}");
    assert_eq!(r["rows_written"], serde_json::json!({}), "{r}");

    let r = json(&run_cli(
        lake,
        &["ingest", "adt", "--json", again.to_str().unwrap()],
    ));
    assert_eq!(r["inputs_already_ingested"], 1, "{r}");
    assert_eq!(r["duplicates_skipped"], 0, "{r}");

    let q = run_cli(
        lake,
        &[
            "query",
            "SELECT COUNT(*) AS n FROM bronze_adt_messages",
            "--format",
            "csv",
        ],
    );
    assert_eq!(texts(&q).0, "n\n2\n");
}

/// The same through the library, with a fresh ingestor each time (so the index comes from the table):
/// the re-delivery-only file commits one version holding only its marker.
#[tokio::test]
async fn a_re_delivery_only_file_commits_only_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.hl7");
    let again = dir.path().join("again_lf.hl7");
    std::fs::write(&first, two_messages("\r")).unwrap();
    std::fs::write(&again, two_messages("\n")).unwrap();
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    let ingest = |path: &std::path::Path| {
        let lake = lake.clone();
        let path = path.display().to_string();
        async move {
            AdtIngestor::new(lake)
                .ingest_paths(&[path], "t", &no_progress)
                .await
                .unwrap()
        }
    };
    let r = ingest(&first).await;
    assert_eq!(r.total_rows(), 2);
    let before = r.versions["bronze_adt_messages"];

    let r = ingest(&again).await;
    assert_eq!(
        (r.duplicates_skipped, r.inputs_ingested, r.total_rows()),
        (2, 1, 0)
    );
    assert_eq!(r.versions["bronze_adt_messages"], before + 1, "{r:?}");
    let table = lake
        .open_table(bronze::ADT_MESSAGES)
        .await
        .unwrap()
        .unwrap();
    let marker = format!(
        "file:{}",
        bronze::sha256_hex(&std::fs::read(&again).unwrap())
    );
    assert!(lake
        .marker_version(&table, &marker)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        scenarios::count(&lake, "bronze_adt_messages", "true").await,
        2
    );

    let r = ingest(&again).await;
    assert_eq!((r.inputs_already_ingested, r.duplicates_skipped), (1, 0));
    assert!(r.versions.is_empty(), "nothing committed: {r:?}");
}

#[tokio::test]
async fn a_long_running_writer_checkpoints_the_bronze_log() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap()).await.unwrap();
    let ingestor = AdtIngestor::new(lake.clone());
    let event = |i: usize| {
        bronze::adt::AdtInput {
        payload: format!(
            "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A01|CK{i}|P|2.5\rPID|||P{i}^^^MHA01^MR"
        )
        .into_bytes(),
        lineage: bronze::Lineage::default(),
    }
    };
    let mut version = 0;
    for i in 0..12 {
        let r = ingestor.ingest_events(vec![event(i)], "ck").await.unwrap();
        assert_eq!(r.total_rows(), 1, "batch {i}: {r:?}");
        version = r.versions["bronze_adt_messages"];
    }
    assert!(version >= 10, "{version}");
    // The checkpoint is written in the background; settle waits for it.
    ingestor.settle().await;
    let log = lake_dir.join("bronze/adt_messages/_delta_log");
    assert!(
        log.join("_last_checkpoint").exists(),
        "no checkpoint after {version} commits"
    );
    // A new process reads the checkpoint plus the commits after it and knows every message.
    let r = AdtIngestor::new(lake.clone())
        .ingest_events((0..12).map(event).collect(), "ck2")
        .await
        .unwrap();
    assert_eq!((r.total_rows(), r.duplicates_skipped), (0, 12));
}
