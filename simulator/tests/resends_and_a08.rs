//! Corrected re-sends of defective ADT messages, identity-changing A08s (birth date, sex, names)
//! and A08s overtaken by the encounter's next message.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use patientflow_simulator::{
    generate, stream, Hospitals, ManifestEntry, MessageFormat, SimConfig, Summary, TimedMessage,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every class `content_defects` injects into ADT messages.
const CONTENT: [&str; 11] = [
    "malformed_hl7",
    "missing_admit_time",
    "discharge_before_admit",
    "conflicting_identity",
    "future_timestamp",
    "placeholder_date",
    "mixed_timestamp_format",
    "local_time_without_offset",
    "unknown_department",
    "invalid_sex_code",
    "impossible_age",
];

const TRUTH: [&str; 4] = [
    "truth/location_stays.csv",
    "truth/encounters.csv",
    "truth/patient_history.csv",
    "truth/department_history.csv",
];

/// A fresh scratch folder under the target dir (replaced on every run, never leaked).
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn manifest(dir: &Path) -> Vec<ManifestEntry> {
    std::fs::read_to_string(dir.join("truth/manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(|s| s.to_string()).collect();
    r.records()
        .map(|x| {
            let rec = x.unwrap();
            h.iter()
                .cloned()
                .zip(rec.iter().map(|s| s.to_string()))
                .collect()
        })
        .collect()
}

/// The fields of an ADT message that the checks need; `None` when absent or unreadable.
#[derive(Debug, Default, Clone, PartialEq)]
struct Parsed {
    id: Option<String>,
    event: Option<String>,
    visit: Option<String>,
    mrn: Option<String>,
    recorded: Option<i64>,
    event_time: Option<i64>,
    admit: Option<i64>,
    discharge: Option<i64>,
    department: Option<String>,
    family: Option<String>,
    given: Option<String>,
    /// `YYYY-MM-DD`.
    birth: Option<String>,
    sex: Option<String>,
}

impl Parsed {
    fn identity(
        &self,
    ) -> (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        (
            self.family.clone(),
            self.given.clone(),
            self.birth.clone(),
            self.sex.clone(),
        )
    }
}

fn hl7_unescape(s: &str) -> String {
    s.replace("\\T\\", "&")
        .replace("\\F\\", "|")
        .replace("\\S\\", "^")
        .replace("\\R\\", "~")
        .replace("\\E\\", "\\")
}

fn hl7_time(s: &str) -> Option<i64> {
    DateTime::parse_from_str(s, "%Y%m%d%H%M%S%z")
        .ok()
        .map(|t| t.timestamp())
}

fn rfc3339(v: &Value) -> Option<i64> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp())
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|x| !x.is_empty()).map(|x| x.to_string())
}

fn parse(m: &TimedMessage) -> Parsed {
    match m.format {
        MessageFormat::Json => {
            let Ok(v) = serde_json::from_str::<Value>(&m.payload) else {
                return Parsed::default();
            };
            let s = |v: &Value| v.as_str().map(|x| x.to_string());
            Parsed {
                id: s(&v["message_id"]),
                event: s(&v["event_type"]),
                visit: s(&v["visit"]["visit_number"]),
                mrn: s(&v["patient"]["mrn"]),
                recorded: rfc3339(&v["recorded_time"]),
                event_time: rfc3339(&v["event_time"]),
                admit: rfc3339(&v["visit"]["admit_time"]),
                discharge: rfc3339(&v["visit"]["discharge_time"]),
                department: s(&v["visit"]["department"]),
                family: s(&v["patient"]["family_name"]),
                given: s(&v["patient"]["given_name"]),
                birth: s(&v["patient"]["birth_date"]),
                sex: s(&v["patient"]["sex"]),
            }
        }
        MessageFormat::Hl7 => {
            let segs: Vec<Vec<&str>> = m
                .payload
                .split(['\r', '\n'])
                .filter(|s| !s.is_empty())
                .map(|s| s.split('|').collect())
                .collect();
            let seg = |name: &str| segs.iter().find(|s| s[0] == name);
            // MSH-n is split index n - 1 (MSH-1 is the separator itself).
            let f = |name: &str, n: usize| -> Option<&str> {
                let s = seg(name)?;
                s.get(if name == "MSH" { n - 1 } else { n }).copied()
            };
            let comp = |name: &str, n: usize, c: usize| {
                f(name, n)
                    .and_then(|x| x.split('^').nth(c))
                    .map(hl7_unescape)
            };
            let birth = f("PID", 7).and_then(|d| {
                NaiveDate::parse_from_str(d, "%Y%m%d")
                    .ok()
                    .map(|d| d.to_string())
            });
            Parsed {
                id: non_empty(f("MSH", 10)),
                event: f("MSH", 9)
                    .and_then(|t| t.split('^').nth(1))
                    .map(|x| x.to_string()),
                visit: non_empty(f("PV1", 19)),
                mrn: comp("PID", 3, 0),
                recorded: f("MSH", 7).and_then(hl7_time),
                event_time: f("EVN", 6).and_then(hl7_time),
                admit: f("PV1", 44).and_then(hl7_time),
                discharge: f("PV1", 45).and_then(hl7_time),
                department: comp("PV1", 3, 0).filter(|x| !x.is_empty()),
                family: comp("PID", 5, 0),
                given: comp("PID", 5, 1),
                birth,
                sex: f("PID", 8).map(hl7_unescape),
            }
        }
    }
}

fn utc(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn resend_config(rate: f64) -> SimConfig {
    SimConfig {
        seed: 4242,
        days: 10,
        hospitals: Hospitals::Ids(vec!["MHA02".into(), "MHA05".into()]),
        corrected_resend_rate: rate,
        ..SimConfig::default()
    }
}

#[test]
fn corrected_resends_are_clean_copies_and_leave_the_truth_alone() {
    let dir1 = scratch("resends-rate-1");
    let dir0 = scratch("resends-rate-0");
    let cfg1 = resend_config(1.0);
    let cfg0 = resend_config(0.0);
    let s1: Summary = generate(&cfg1, &dir1).unwrap();
    let s0: Summary = generate(&cfg0, &dir0).unwrap();
    let m1 = manifest(&dir1);
    let m0 = manifest(&dir0);

    // Rate 0: no re-sends at all.
    assert_eq!(s0.corrected_resends, 0);
    assert!(m0.iter().all(|m| m.corrected_by.is_none()));
    let raw0 = std::fs::read_to_string(dir0.join("truth/manifest.jsonl")).unwrap();
    assert!(!raw0.contains("corrected_by"));

    // Rate 1: every message with a content defect names its re-send, on all of its lines;
    // messages without a content defect name none.
    let content: Vec<&ManifestEntry> = m1
        .iter()
        .filter(|m| m.source == "adt" && CONTENT.contains(&m.defect.as_str()))
        .collect();
    let classes: BTreeSet<&str> = content.iter().map(|m| m.defect.as_str()).collect();
    assert_eq!(classes.len(), CONTENT.len(), "classes seen: {classes:?}");
    assert!(content.len() > 1_000, "{} content defects", content.len());
    let mut resend_of: BTreeMap<String, String> = BTreeMap::new();
    for m in &content {
        let by = m
            .corrected_by
            .clone()
            .unwrap_or_else(|| panic!("{} ({}) has no corrected_by", m.record_key, m.defect));
        assert!(
            by.starts_with(&m.record_key[..6]),
            "{by} for {}",
            m.record_key
        );
        let prev = resend_of.insert(m.record_key.clone(), by.clone());
        assert!(prev.is_none(), "two content defects on {}", m.record_key);
    }
    for m in m1.iter().filter(|m| m.source == "adt") {
        assert_eq!(
            m.corrected_by.as_ref(),
            resend_of.get(&m.record_key),
            "{} ({})",
            m.record_key,
            m.defect
        );
    }
    for m in m1.iter().filter(|m| m.source != "adt") {
        assert!(m.corrected_by.is_none());
    }
    let resend_ids: BTreeSet<&String> = resend_of.values().collect();
    assert_eq!(resend_ids.len(), resend_of.len(), "re-send ids are unique");
    assert_eq!(s1.corrected_resends as usize, resend_of.len());
    let keyed: BTreeSet<&String> = m1.iter().map(|m| &m.record_key).collect();
    assert!(
        resend_ids.iter().all(|r| !keyed.contains(r)),
        "re-sends are clean"
    );

    // The re-sends are the only difference in the ADT feed: same defects, same deliveries.
    assert_eq!(s1.adt_messages, s0.adt_messages + s1.corrected_resends);
    assert_eq!(s1.defects, s0.defects);
    assert_eq!(s1.defect_tally, s0.defect_tally);
    let shape = |m: &[ManifestEntry]| -> Vec<(String, String, Option<String>, Option<String>)> {
        m.iter()
            .map(|e| {
                (
                    e.source.clone(),
                    e.defect.clone(),
                    e.field.clone(),
                    e.clean_value.clone(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&m1), shape(&m0));
    // The truth (and the EHR extracts and reference data) do not depend on the rate.
    for f in TRUTH {
        let a = std::fs::read(dir1.join(f)).unwrap();
        let b = std::fs::read(dir0.join(f)).unwrap();
        assert!(a == b, "{f} changed with corrected_resend_rate");
    }
    assert_eq!(s1.adt_events_by_type, s0.adt_events_by_type);
    assert_eq!(s1.ehr_patient_rows, s0.ehr_patient_rows);

    // Each re-send: delivered once, after the original, same event, clean.
    let msgs: Vec<TimedMessage> = stream(&cfg1).unwrap().collect();
    assert_eq!(msgs.len() as u64, s1.adt_messages);
    let mut first: BTreeMap<&str, &TimedMessage> = BTreeMap::new();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &msgs {
        first.entry(m.message_id.as_str()).or_insert(m);
        *copies.entry(m.message_id.as_str()).or_default() += 1;
    }
    let departments: BTreeSet<String> = csv_rows(&dir1.join("reference/departments.csv"))
        .into_iter()
        .map(|r| r["department_code"].clone())
        .collect();
    let held: BTreeSet<&str> = m1
        .iter()
        .filter(|m| m.defect == "out_of_order")
        .filter_map(|m| m.note.as_deref()?.strip_prefix("overtook:"))
        .collect();
    let mut lines_of: BTreeMap<&str, Vec<&ManifestEntry>> = BTreeMap::new();
    for m in &content {
        lines_of.entry(m.record_key.as_str()).or_default().push(m);
    }
    let (mut visits, mut times, mut values, mut formats) = (0, 0, 0, BTreeSet::new());
    for (orig_id, resend_id) in &resend_of {
        let o = first[orig_id.as_str()];
        let r = *first
            .get(resend_id.as_str())
            .unwrap_or_else(|| panic!("re-send {resend_id} of {orig_id} not delivered"));
        assert_eq!(copies[resend_id.as_str()], 1, "{resend_id} delivered twice");
        assert_eq!(r.event_type, o.event_type, "{resend_id}");
        assert_eq!(r.format, o.format, "{resend_id}");
        assert_eq!(r.facility, o.facility);
        formats.insert(r.format.id());
        let dt = (r.deliver_at - o.deliver_at).num_milliseconds();
        if held.contains(orig_id.as_str()) {
            assert!(dt > 0, "{resend_id} delivered before its held original");
        } else {
            assert!(
                (60_000..=3_600_000).contains(&dt),
                "{resend_id}: {dt} ms after {orig_id}"
            );
        }

        // Clean: every field readable and valid.
        let p = parse(r);
        assert_eq!(p.id.as_deref(), Some(resend_id.as_str()), "{}", r.payload);
        assert_eq!(p.event.as_deref(), Some(r.event_type.as_str()));
        let event_time = p.event_time.unwrap_or_else(|| panic!("{}", r.payload));
        let recorded = p.recorded.unwrap_or_else(|| panic!("{}", r.payload));
        assert!(recorded >= event_time && recorded - event_time <= 40 * 60);
        assert!(r.deliver_at.timestamp() >= recorded, "{resend_id}");
        assert!(p.visit.as_deref().is_some_and(|v| v.contains("-V")));
        assert!(["F", "M", "O", "U"].contains(&p.sex.as_deref().unwrap_or("")));
        let birth = p.birth.clone().unwrap_or_else(|| panic!("{}", r.payload));
        assert!(birth != "1900-01-01" && birth != "1970-01-01", "{birth}");
        let birth_t = utc(&format!("{birth}T00:00:00Z"));
        assert!(birth_t <= event_time && event_time - birth_t < 120 * 366 * 86_400);
        if let Some(d) = &p.department {
            assert!(departments.contains(d), "{resend_id}: department {d}");
        }
        if let (Some(a), Some(d)) = (p.admit, p.discharge) {
            assert!(d >= a, "{resend_id}: discharge before admit");
        }
        if r.event_type == "A01" {
            assert!(p.admit.is_some(), "{resend_id}: A01 without admit time");
        }
        for t in [p.admit, p.discharge].into_iter().flatten() {
            assert!(t <= event_time + 86_400, "{resend_id}: time in the future");
        }

        // Same event as the original, where the original can be read.
        let q = parse(o);
        let lines = &lines_of[orig_id.as_str()];
        let defective = |f: &str| lines.iter().any(|l| l.field.as_deref() == Some(f));
        if let Some(v) = &q.visit {
            assert_eq!(p.visit.as_ref(), Some(v), "{resend_id}");
            visits += 1;
        }
        if let (Some(t), false) = (q.event_time, defective("event_time")) {
            assert_eq!(event_time, t, "{resend_id}");
            times += 1;
        }
        if let (Some(t), false) = (q.recorded, defective("recorded_time")) {
            assert!(
                (60..=1_800).contains(&(recorded - t)),
                "{resend_id}: recorded {} s after the original",
                recorded - t
            );
        }
        // The re-send carries the clean value of the original's defective field.
        for l in lines {
            let (Some(field), Some(clean)) = (l.field.as_deref(), l.clean_value.as_deref()) else {
                continue;
            };
            values += 1;
            match field {
                "event_time" => assert_eq!(event_time, utc(clean), "{resend_id}"),
                "recorded_time" => assert!((60..=1_800).contains(&(recorded - utc(clean)))),
                "visit.admit_time" => assert_eq!(p.admit, Some(utc(clean)), "{resend_id}"),
                "visit.discharge_time" => {
                    assert_eq!(p.discharge, Some(utc(clean)), "{resend_id}")
                }
                "visit.department" => assert_eq!(p.department.as_deref(), Some(clean)),
                "patient.birth_date" => assert_eq!(p.birth.as_deref(), Some(clean)),
                "patient.sex" => assert_eq!(p.sex.as_deref(), Some(clean)),
                "patient.given_name" => assert_eq!(p.given.as_deref(), Some(clean)),
                "patient.family_name" => assert_eq!(p.family.as_deref(), Some(clean)),
                other => panic!("unexpected field {other}"),
            }
        }
    }
    assert!(
        visits * 10 > resend_of.len() * 8,
        "{visits} visits compared"
    );
    assert!(times * 2 > resend_of.len(), "{times} event times compared");
    assert!(
        values * 2 > resend_of.len(),
        "{values} clean values compared"
    );
    assert_eq!(formats.len(), 2, "both formats re-sent");
}

/// One delivered message of the feed, parsed, with its delivery position.
struct Msg {
    pos: usize,
    p: Parsed,
}

/// The feed of `cfg` grouped by visit, each visit's messages in delivery order.
fn feed_by_visit(cfg: &SimConfig) -> BTreeMap<String, Vec<Msg>> {
    let mut by_visit: BTreeMap<String, Vec<Msg>> = BTreeMap::new();
    for (pos, m) in stream(cfg).unwrap().enumerate() {
        let p = parse(&m);
        let visit = p
            .visit
            .clone()
            .expect("clean data: every message has a visit");
        by_visit.entry(visit).or_default().push(Msg { pos, p });
    }
    by_visit
}

/// Identity-changing A08s (identity differs from the visit's previous message by event time)
/// and how many of them were delivered after a later-event message of the visit that already
/// carried the new identity.
fn identity_a08s(by_visit: &BTreeMap<String, Vec<Msg>>) -> (Vec<(String, i64)>, usize) {
    let mut changed = Vec::new();
    let mut overtaken = 0;
    for msgs in by_visit.values() {
        let mut by_time: Vec<&Msg> = msgs.iter().collect();
        by_time.sort_by_key(|m| (m.p.event_time, m.pos));
        for w in by_time.windows(2) {
            let (prev, a) = (w[0], w[1]);
            if a.p.event.as_deref() != Some("A08") || a.p.identity() == prev.p.identity() {
                continue;
            }
            changed.push((a.p.mrn.clone().unwrap(), a.p.event_time.unwrap()));
            let t = a.p.event_time.unwrap();
            if msgs.iter().any(|m| {
                m.pos < a.pos && m.p.event_time.unwrap() > t && m.p.identity() == a.p.identity()
            }) {
                overtaken += 1;
            }
        }
    }
    (changed, overtaken)
}

fn a08_config(overtaken: f64, demographic_changes: bool) -> SimConfig {
    SimConfig {
        seed: 31,
        days: 14,
        hospitals: Hospitals::Ids(vec!["MHA01".into(), "MHA02".into()]),
        dirty_rate: 0.0,
        a08_overtaken_rate: overtaken,
        demographic_changes,
        ..SimConfig::default()
    }
}

/// Consecutive versions of one patient: (patient, valid_from of the later, earlier, later).
type Change<'a> = (
    &'a str,
    &'a str,
    &'a BTreeMap<String, String>,
    &'a BTreeMap<String, String>,
);

fn version_changes(rows: &[BTreeMap<String, String>]) -> Vec<Change<'_>> {
    rows.windows(2)
        .filter(|w| w[0]["patient_id"] == w[1]["patient_id"])
        .map(|w| {
            (
                w[1]["patient_id"].as_str(),
                w[1]["valid_from_utc"].as_str(),
                &w[0],
                &w[1],
            )
        })
        .collect()
}

const IDENTITY: [&str; 4] = ["family_name", "given_name", "birth_date", "sex"];

#[test]
fn identity_a08s_are_versioned_and_can_arrive_after_the_next_message() {
    let dir = scratch("a08-overtaken");
    let cfg = a08_config(1.0, true);
    let s = generate(&cfg, &dir).unwrap();
    let by_visit = feed_by_visit(&cfg);
    let (changed, overtaken) = identity_a08s(&by_visit);

    // Overtaken A08s: the next message, with a later event time and the new values, comes first.
    assert!(s.a08_overtaken >= 10, "{} overtaken A08s", s.a08_overtaken);
    assert!(overtaken as u64 <= s.a08_overtaken);
    assert!(
        overtaken as u64 * 10 >= s.a08_overtaken * 9,
        "{overtaken} seen in the feed, {} counted",
        s.a08_overtaken
    );
    // Not a defect: clean data, empty manifest.
    assert!(s.defects.is_empty());
    assert!(std::fs::read_to_string(dir.join("truth/manifest.jsonl"))
        .unwrap()
        .is_empty());

    // Every identity change in the truth starts at the event time of an identity-changing A08
    // of the patient, and every such A08 starts a version.
    let rows = csv_rows(&dir.join("truth/patient_history.csv"));
    let changes = version_changes(&rows);
    let a08_at: BTreeSet<(String, i64)> = changed.iter().cloned().collect();
    let mut truth_at: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut per_attr: BTreeMap<&str, usize> = BTreeMap::new();
    for (pid, from, old, new) in &changes {
        let diff: Vec<&str> = IDENTITY
            .into_iter()
            .filter(|k| old[*k] != new[*k])
            .collect();
        if diff.is_empty() {
            continue;
        }
        truth_at.insert((pid.to_string(), utc(from)));
        for k in &diff {
            *per_attr.entry(k).or_default() += 1;
        }
        if diff.contains(&"sex") {
            let pair = (old["sex"].as_str(), new["sex"].as_str());
            assert!(pair == ("F", "M") || pair == ("M", "F"), "{pid}: {pair:?}");
        }
        if diff.contains(&"birth_date") {
            let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
            let (b0, b1) = (d(&old["birth_date"]), d(&new["birth_date"]));
            let shift = (b1 - b0).num_days().abs();
            assert!((1..=3 * 366).contains(&shift), "{pid}: {b0} → {b1}");
            let at = NaiveDateTime::parse_from_str(from, "%Y-%m-%dT%H:%M:%SZ")
                .unwrap()
                .date();
            let age = (at - b1).num_days() as f64 / 365.2425;
            assert!((0.0..=110.0).contains(&age), "{pid}: age {age:.1}");
            assert_ne!(new["birth_date"], "1970-01-01");
            assert_ne!(new["birth_date"], "1900-01-01");
        }
    }
    assert_eq!(
        truth_at, a08_at,
        "identity versions vs identity-changing A08s"
    );
    for k in IDENTITY {
        assert!(
            per_attr.get(k).copied().unwrap_or(0) > 0,
            "no {k} change: {per_attr:?}"
        );
    }

    // Rate 0: no A08 comes after a later message.
    let (changed0, overtaken0) = identity_a08s(&feed_by_visit(&a08_config(0.0, true)));
    assert!(!changed0.is_empty());
    assert_eq!(overtaken0, 0);
}

#[test]
fn without_demographic_changes_no_identity_attribute_changes() {
    let dir = scratch("a08-no-demographics");
    let cfg = a08_config(1.0, false);
    let s = generate(&cfg, &dir).unwrap();
    assert_eq!(s.a08_overtaken, 0, "no identity change, nothing overtaken");
    assert!(
        s.adt_events_by_type["A08"] > 100,
        "{:?}",
        s.adt_events_by_type
    );
    let rows = csv_rows(&dir.join("truth/patient_history.csv"));
    let changes = version_changes(&rows);
    assert!(changes.len() > 100, "A08s still change other attributes");
    let streets = changes
        .iter()
        .filter(|c| c.2["street"] != c.3["street"])
        .count();
    assert!(streets > 50, "{streets} moves");
    for (pid, from, old, new) in &changes {
        for k in IDENTITY {
            assert_eq!(old[k], new[k], "{pid} {k} changed at {from}");
        }
    }
    let (changed, _) = identity_a08s(&feed_by_visit(&cfg));
    assert!(changed.is_empty(), "identity-changing A08s: {changed:?}");
}
