//! Every defect class at its configured rate, a manifest consistent with the files, and a
//! parse-back check of every file against docs/sources.md.

use chrono::DateTime;
use patientflow_simulator::headers::*;
use patientflow_simulator::{generate, Hospitals, ManifestEntry, SimConfig, Summary, ALL_CLASSES};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Run {
    dir: PathBuf,
    summary: Summary,
    cfg: SimConfig,
    manifest: Vec<ManifestEntry>,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        // One fixed scratch folder under the target dir (replaced on every run, never leaked).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("defects-and-formats");
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = SimConfig {
            seed: 99,
            hospitals: Hospitals::Count(3),
            days: 21,
            ..SimConfig::default()
        };
        let summary = generate(&cfg, &dir).unwrap();
        let manifest = std::fs::read_to_string(dir.join("truth/manifest.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        Run {
            dir,
            summary,
            cfg,
            manifest,
        }
    })
}

/// One delivered ADT message as found on disk.
#[derive(Debug, Clone)]
struct Delivered {
    file: String,
    /// Position in the hospital's feed (files in day order, then message order).
    pos: usize,
    text: String,
    json: bool,
}

fn files_under(root: &Path, sub: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let dir = root.join(sub);
    if !dir.exists() {
        return v;
    }
    for day in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            v.push(f.unwrap().path());
        }
    }
    v.sort();
    v
}

/// Split an HL7 file into messages: a message starts at each segment beginning with `MSH`.
fn split_hl7(text: &str) -> Vec<String> {
    let mut msgs: Vec<String> = Vec::new();
    let mut cur = String::new();
    for seg in text.split(['\r', '\n']) {
        if seg.is_empty() {
            continue;
        }
        if seg.starts_with("MSH") && !cur.is_empty() {
            msgs.push(std::mem::take(&mut cur));
        }
        cur.push_str(seg);
        cur.push('\r');
    }
    if !cur.is_empty() {
        msgs.push(cur);
    }
    msgs
}

fn delivered() -> &'static Vec<Delivered> {
    static D: OnceLock<Vec<Delivered>> = OnceLock::new();
    D.get_or_init(|| {
        let mut out = Vec::new();
        let mut pos: BTreeMap<String, usize> = BTreeMap::new();
        // Interleave formats by delivery time is not possible from files alone; positions are
        // per (hospital, format) feed, which is enough for ordering checks within a format.
        for p in files_under(&run().dir, "adt") {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let json = name.ends_with(".ndjson");
            let text = std::fs::read_to_string(&p).unwrap();
            let msgs: Vec<String> = if json {
                text.lines().map(|l| l.to_string()).collect()
            } else {
                split_hl7(&text)
            };
            for m in msgs {
                let n = pos.entry(name.clone()).or_default();
                *n += 1;
                out.push(Delivered {
                    file: p
                        .strip_prefix(&run().dir)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                    pos: *n,
                    text: m,
                    json,
                });
            }
        }
        out
    })
}

fn hl7_field(msg: &str, seg: &str, n: usize) -> Option<String> {
    let s = msg.split('\r').find(|s| s.starts_with(seg))?;
    let idx = if seg == "MSH" { n - 1 } else { n };
    s.split('|').nth(idx).map(|x| x.to_string())
}

fn message_id(d: &Delivered) -> Option<String> {
    if d.json {
        let v: Value = serde_json::from_str(&d.text).ok()?;
        v["message_id"].as_str().map(|s| s.to_string())
    } else {
        hl7_field(&d.text, "MSH", 10).filter(|s| !s.is_empty())
    }
}

fn defective_ids(classes: &[&str]) -> BTreeSet<String> {
    run()
        .manifest
        .iter()
        .filter(|m| m.source == "adt" && classes.contains(&m.defect.as_str()))
        .map(|m| m.record_key.clone())
        .collect()
}

#[test]
fn every_class_is_injected_at_its_rate() {
    let s = &run().summary;
    let rate = run().cfg.dirty_rate;
    for c in ALL_CLASSES {
        let lines = s.defects.get(c.id()).copied().unwrap_or(0);
        assert!(lines > 0, "class {} missing from the manifest", c.id());
        let tally = &s.defect_tally[c.id()];
        let offered: u64 = tally.values().map(|t| t.offered).sum();
        let injected: u64 = tally.values().map(|t| t.injected).sum();
        let r = injected as f64 / offered as f64;
        assert!(offered >= 100, "{}: only {offered} offers", c.id());
        assert!(
            (r - rate).abs() <= 0.2 * rate,
            "{}: rate {r:.4} (configured {rate})",
            c.id()
        );
        for (src, t) in tally {
            if t.offered >= 500 {
                let r = t.injected as f64 / t.offered as f64;
                assert!(
                    (r - rate).abs() <= 0.2 * rate,
                    "{}/{src}: rate {r:.4}",
                    c.id()
                );
            }
        }
    }
    // Manifest lines agree with the tallies (a re-delivered EHR file lists each of its rows).
    let mut lines: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in &run().manifest {
        *lines
            .entry((m.defect.clone(), m.source.clone()))
            .or_default() += 1;
    }
    for (class, per_src) in &s.defect_tally {
        for (src, t) in per_src {
            let n = lines
                .get(&(class.clone(), src.clone()))
                .copied()
                .unwrap_or(0);
            if class == "duplicate_delivery" && src.starts_with("ehr") {
                assert!(n >= t.injected, "{class}/{src}");
            } else {
                assert_eq!(n, t.injected, "{class}/{src}: manifest lines vs tally");
            }
        }
    }
    let ids: BTreeSet<_> = run().manifest.iter().map(|m| m.defect.clone()).collect();
    assert_eq!(ids.len(), ALL_CLASSES.len());
    let notes: BTreeSet<_> = run()
        .manifest
        .iter()
        .filter(|m| m.defect == "malformed_hl7")
        .map(|m| m.note.clone().unwrap())
        .collect();
    assert_eq!(
        notes,
        ["missing_msh10", "truncated", "wrong_separators"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn volumes_are_plausible() {
    let s = &run().summary;
    assert!(s.encounters > 8_000, "{}", s.encounters);
    let msgs = s.adt_messages as f64 / s.encounters as f64;
    assert!(
        (1.8..3.5).contains(&msgs),
        "{msgs:.2} messages per encounter"
    );
    let json = s.adt_messages_by_format["json"] as f64 / s.adt_messages as f64;
    assert!(
        (json - run().cfg.json_fraction).abs() < 0.03,
        "json share {json:.3}"
    );
    assert_eq!(s.adt_messages as usize, delivered().len());
}

#[test]
fn hl7_messages_follow_the_contract() {
    let malformed = defective_ids(&["malformed_hl7"]);
    // Field checks apply to messages without any content defect.
    let content = defective_ids(&[
        "malformed_hl7",
        "missing_admit_time",
        "discharge_before_admit",
        "conflicting_identity",
        "future_timestamp",
        "placeholder_date",
        "unknown_department",
        "invalid_sex_code",
        "impossible_age",
    ]);
    let missing: BTreeSet<String> = run()
        .manifest
        .iter()
        .filter(|m| {
            m.note.as_deref() == Some("missing_msh10")
                || m.note.as_deref() == Some("wrong_separators")
        })
        .map(|m| m.record_key.clone())
        .collect();
    let dup_count: BTreeMap<String, usize> = run()
        .manifest
        .iter()
        .filter(|m| m.defect == "duplicate_delivery" && m.source == "adt")
        .fold(BTreeMap::new(), |mut acc, m| {
            *acc.entry(m.record_key.clone()).or_default() += 1;
            acc
        });
    let mut without_id = 0usize;
    let mut checked = 0usize;
    for d in delivered().iter().filter(|d| !d.json) {
        assert!(
            d.text.starts_with("MSH|"),
            "{}: message not starting with MSH",
            d.file
        );
        let Some(id) = message_id(d) else {
            without_id += 1;
            continue;
        };
        if malformed.contains(&id) {
            continue;
        }
        // Every readable message names its facility and type.
        let typ = hl7_field(&d.text, "MSH", 9).unwrap();
        assert!(typ.starts_with("ADT^A"), "{typ}");
        assert_eq!(hl7_field(&d.text, "MSH", 4).as_deref(), Some(&id[..5]));
        if content.contains(&id) {
            continue;
        }
        checked += 1;
        let evn6 = hl7_field(&d.text, "EVN", 6).unwrap();
        assert!(
            evn6.len() >= 19,
            "EVN-6 {evn6} should carry seconds and an offset"
        );
        assert!(hl7_field(&d.text, "PID", 3).unwrap().ends_with("^MR"));
        assert!(hl7_field(&d.text, "PV1", 19).unwrap().contains("-V"));
    }
    assert!(checked > 10_000, "{checked}");
    let expected: usize = missing
        .iter()
        .map(|id| 1 + dup_count.get(id).copied().unwrap_or(0))
        .sum();
    assert_eq!(without_id, expected, "messages without a readable MSH-10");
}

#[test]
fn json_events_follow_the_contract() {
    let bad_time = defective_ids(&[
        "future_timestamp",
        "placeholder_date",
        "mixed_timestamp_format",
        "local_time_without_offset",
    ]);
    let mut n = 0;
    for d in delivered().iter().filter(|d| d.json) {
        let v: Value = serde_json::from_str(&d.text).expect("every JSON line parses");
        n += 1;
        assert_eq!(v["schema"], "patientflow.adt.v1");
        for k in ["message_id", "event_type", "facility", "recorded_time"] {
            assert!(v[k].is_string(), "{k} missing in {}", d.text);
        }
        assert!(v["patient"]["mrn"].is_string());
        let ev = v["event_type"].as_str().unwrap();
        assert!(v["visit"]["visit_number"].is_string(), "{ev}");
        if ["A01", "A02", "A04"].contains(&ev) {
            assert!(v["visit"]["department"].is_string(), "{}", d.text);
        }
        let id = v["message_id"].as_str().unwrap();
        if !bad_time.contains(id) {
            for t in [
                &v["recorded_time"],
                &v["event_time"],
                &v["visit"]["admit_time"],
            ] {
                if let Some(s) = t.as_str() {
                    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
                }
            }
        }
    }
    assert!(n > 5_000);
}

#[test]
fn adt_manifest_keys_exist_and_delivery_defects_hold() {
    let mut by_id: BTreeMap<String, Vec<&Delivered>> = BTreeMap::new();
    for d in delivered() {
        if let Some(id) = message_id(d) {
            by_id.entry(id).or_default().push(d);
        }
    }
    // Messages whose id cannot be read back (and their duplicates) are checked by the HL7 test.
    let unreadable: BTreeSet<&str> = run()
        .manifest
        .iter()
        .filter(|m| {
            matches!(
                m.note.as_deref(),
                Some("missing_msh10") | Some("wrong_separators")
            )
        })
        .map(|m| m.record_key.as_str())
        .collect();
    for m in run().manifest.iter().filter(|m| m.source == "adt") {
        if unreadable.contains(m.record_key.as_str()) {
            continue;
        }
        let found = by_id
            .get(&m.record_key)
            .unwrap_or_else(|| panic!("{} not delivered", m.record_key));
        match m.defect.as_str() {
            "duplicate_delivery" => {
                assert!(found.len() >= 2, "{}", m.record_key);
                assert!(
                    found.iter().all(|d| d.text == found[0].text),
                    "duplicates differ"
                );
            }
            "late_event" => {
                // delivered on a later UTC day than the event
                let note = m.note.as_deref().unwrap();
                let ev_day = &note["event_time=".len().."event_time=".len() + 10];
                assert!(
                    found.iter().all(|d| d.file[4..14] > *ev_day),
                    "{note} in {}",
                    found[0].file
                );
            }
            "out_of_order" => {
                let other = m
                    .note
                    .as_deref()
                    .unwrap()
                    .strip_prefix("overtook:")
                    .unwrap();
                let Some(held) = by_id.get(other) else {
                    continue;
                };
                // Same format ⇒ same feed: the held message comes later in that feed.
                if held[0].json == found[0].json {
                    let key = |d: &Delivered| (d.file[4..14].to_string(), d.pos);
                    assert!(
                        key(held[0]) > key(found[0]),
                        "{} should follow {}",
                        other,
                        m.record_key
                    );
                }
            }
            _ => {}
        }
    }
}

#[test]
fn csv_files_have_the_contract_headers() {
    let header = |p: &Path| {
        let mut r = csv::Reader::from_path(p).unwrap();
        r.headers()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let dir = &run().dir;
    assert_eq!(
        header(&dir.join("reference/hospitals.csv")),
        HOSPITALS_HEADER
    );
    assert_eq!(
        header(&dir.join("reference/departments.csv")),
        DEPARTMENTS_HEADER
    );
    assert_eq!(
        header(&dir.join("truth/department_history.csv")),
        DEPARTMENT_HISTORY_HEADER
    );
    assert_eq!(header(&dir.join("truth/location_stays.csv")), STAYS_HEADER);
    assert_eq!(header(&dir.join("truth/encounters.csv")), ENCOUNTERS_HEADER);
    assert_eq!(
        header(&dir.join("truth/patient_history.csv")),
        PATIENT_HISTORY_HEADER
    );
    let mut redelivered = 0;
    for p in files_under(dir, "ehr") {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let day = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(name.contains(&day), "{name} in folder {day}");
        if name.contains(REDELIVERY_SUFFIX) {
            redelivered += 1;
        }
        let h = header(&p);
        if name.starts_with("patients_") {
            assert_eq!(h[..PATIENT_COLUMNS.len()], PATIENT_COLUMNS);
        } else {
            assert!(name.starts_with("encounters_"), "{name}");
            assert_eq!(h, ENCOUNTER_COLUMNS);
        }
        // every data row has as many fields as the header
        let mut r = csv::Reader::from_path(&p).unwrap();
        for rec in r.records() {
            assert_eq!(rec.unwrap().len(), h.len(), "{name}");
        }
    }
    assert!(redelivered > 0);
}

#[test]
fn csv_manifest_keys_point_at_defective_rows() {
    let dir = &run().dir;
    let mut cache: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
    for p in files_under(dir, "ehr") {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let mut r = csv::Reader::from_path(&p).unwrap();
        cache.insert(name, r.records().map(|x| x.unwrap()).collect());
    }
    let mut checked = 0;
    for m in run()
        .manifest
        .iter()
        .filter(|m| m.source.starts_with("ehr"))
    {
        let (file, row) = m.record_key.rsplit_once(':').unwrap();
        let row: usize = row.parse().unwrap();
        let recs = &cache[file];
        assert!(row >= 1 && row <= recs.len(), "{}", m.record_key);
        if let (Some(field), Some(clean)) = (&m.field, &m.clean_value) {
            let cols = if file.starts_with("patients") {
                PATIENT_COLUMNS.to_vec()
            } else {
                ENCOUNTER_COLUMNS.to_vec()
            };
            let i = cols.iter().position(|c| c == field).unwrap();
            let got = &recs[row - 1][i];
            // the written value differs from the clean one (times: the clean value is UTC)
            if m.defect == "mixed_timestamp_format" {
                // value still correct, only the format differs
            } else if field.ends_with("_time") || field == "updated_at" {
                if let Ok(t) = DateTime::parse_from_rfc3339(got) {
                    assert_ne!(
                        t.to_utc().to_rfc3339(),
                        DateTime::parse_from_rfc3339(clean)
                            .unwrap()
                            .to_utc()
                            .to_rfc3339(),
                        "{}",
                        m.record_key
                    );
                }
            } else {
                assert_ne!(got, clean, "{}", m.record_key);
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}
