//! ADT parsing against every public HL7 v2 sample in `shared/data/hl7v2_adt` (see its SOURCE.txt), plus
//! property tests that splitting and parsing never panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use patientflow_core::sources::adt::hl7::{split_stream, to_adt_event, ChunkKind, Hl7Message};
use patientflow_core::sources::adt::{detect_format, AdtFormat};

/// `shared/data/hl7v2_adt`, or `None` (with a note) when the data folder is not there.
fn data_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/hl7v2_adt");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found; skipping sample-data test",
            dir.display()
        );
        None
    }
}

/// What one folder of samples yields.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    files: usize,
    messages: usize,
    junk: usize,
    parsed: usize,
    /// Parse errors by [`Hl7Error::code`](patientflow_core::sources::adt::hl7::Hl7Error::code).
    errors: BTreeMap<&'static str, usize>,
    /// Parsed messages by `MSH-9.1^trigger`.
    types: BTreeMap<String, usize>,
    /// Parsed messages whose `AdtEvent` has a facility (MSH-4.1, else PV1-3.4).
    with_facility: usize,
}

fn sample_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if path.is_dir() {
                stack.push(path);
            } else if matches!(ext, "hl7" | "out") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn scan(dir: &Path, only: impl Fn(&str) -> bool) -> Stats {
    let mut st = Stats::default();
    for path in sample_files(dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !only(&name) {
            continue;
        }
        st.files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(detect_format(&text), AdtFormat::Hl7, "{name}");
        for chunk in split_stream(&text) {
            match &chunk.kind {
                ChunkKind::Junk { .. } => st.junk += 1,
                ChunkKind::Message { text } => {
                    st.messages += 1;
                    match Hl7Message::parse(text) {
                        Err(e) => *st.errors.entry(e.code()).or_default() += 1,
                        Ok(msg) => {
                            st.parsed += 1;
                            let h = msg.header().unwrap();
                            assert!(!h.control_id.is_empty());
                            let t = format!(
                                "{}^{}",
                                h.message_code,
                                h.trigger_event.unwrap_or_default()
                            );
                            *st.types.entry(t).or_default() += 1;
                            let event = to_adt_event(&msg).unwrap();
                            st.with_facility += usize::from(event.facility.is_some());
                        }
                    }
                }
            }
        }
    }
    st
}

fn types(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

fn errors(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

#[test]
fn simhospital_stream() {
    let Some(dir) = data_dir() else { return };
    let st = scan(&dir.join("simhospital"), |_| true);
    println!("simhospital: {st:?}");
    assert_eq!(
        st,
        Stats {
            files: 1,
            messages: 1013,
            junk: 0,
            parsed: 1013,
            errors: errors(&[]),
            types: types(&[
                ("ORU^R01", 610),
                ("ADT^A01", 400),
                ("MDM^T02", 2),
                ("ADT^A34", 1)
            ]),
            with_facility: 1013,
        }
    );
}

#[test]
fn simhospital_via_bdcat() {
    let Some(dir) = data_dir() else { return };
    let st = scan(&dir.join("simhospital_via_bdcat"), |_| true);
    println!("simhospital_via_bdcat: {st:?}");
    assert_eq!(
        st,
        Stats {
            files: 5,
            messages: 5,
            junk: 0,
            parsed: 5,
            errors: errors(&[]),
            types: types(&[("ADT^A01", 3), ("ORU^R01", 2)]),
            with_facility: 5,
        }
    );
}

#[test]
fn ms_fhir_converter() {
    let Some(dir) = data_dir() else { return };
    let st = scan(&dir.join("ms_fhir_converter"), |_| true);
    println!("ms_fhir_converter: {st:?}");
    // Two of each trigger (v2.8), plus ADT01-23/ADT01-28 (A01) and ADT04-23/-251/-28 (A04).
    let mut want = types(&[("ADT^A01", 4), ("ADT^A04", 5)]);
    for t in [
        "A02", "A03", "A05", "A06", "A07", "A08", "A09", "A10", "A11", "A13", "A14", "A15", "A16",
        "A25", "A26", "A27", "A28", "A29", "A31", "A40", "A41", "A45", "A47", "A60",
    ] {
        want.insert(format!("ADT^{t}"), 2);
    }
    assert_eq!(
        st,
        Stats {
            files: 57,
            messages: 57,
            junk: 0,
            parsed: 57,
            errors: errors(&[]),
            types: want,
            with_facility: 57,
        }
    );
}

#[test]
fn ms_fhir_converter_quirks() {
    let Some(dir) = data_dir() else { return };
    let dir = dir.join("ms_fhir_converter");
    // UTF-8 BOM before the MSH.
    let text = std::fs::read_to_string(dir.join("ADT01-23.hl7")).unwrap();
    assert!(text.starts_with('\u{feff}'));
    let chunks = split_stream(&text);
    assert_eq!((chunks.len(), chunks[0].offset), (1, 3));
    let msg = Hl7Message::parse(chunks[0].message().unwrap()).unwrap();
    assert_eq!(msg.header().unwrap().control_id, "599102");
    // EVN-1 says A01 inside an ADT^A02: MSH-9.2 wins. MSH-4 is an HD with components.
    let text = std::fs::read_to_string(dir.join("ADT-A02-01.hl7")).unwrap();
    let chunks = split_stream(&text);
    let msg = Hl7Message::parse(chunks[0].message().unwrap()).unwrap();
    let e = to_adt_event(&msg).unwrap();
    assert_eq!(e.event_type.as_deref(), Some("A02"));
    assert_eq!(e.facility.as_deref(), Some("GHHSFacility"));
    assert_eq!(e.event_time.as_deref(), Some("20210817151943.4+0200"));
    assert_eq!(e.department.as_deref(), Some("HUH AE OMU"));
    assert_eq!(msg.get("MSH-7").as_deref(), Some("198908181126+0215"));
}

#[test]
fn python_hl7_good_files() {
    let Some(dir) = data_dir() else { return };
    let st = scan(&dir.join("python_hl7"), |n| !n.starts_with("sample_bad"));
    println!("python_hl7 (good): {st:?}");
    assert_eq!(
        st,
        Stats {
            files: 15,
            messages: 20,
            junk: 0,
            parsed: 20,
            errors: errors(&[]),
            types: types(&[("ADT^A01", 1), ("ADT^A04", 17), ("ORU^R01", 2)]),
            with_facility: 20,
        }
    );
}

/// The intentionally malformed batch/file envelopes: every file yields a junk chunk with a reason.
#[test]
fn python_hl7_bad_files() {
    let Some(dir) = data_dir() else { return };
    let dir = dir.join("python_hl7");
    let st = scan(&dir, |n| n.starts_with("sample_bad"));
    println!("python_hl7 (bad): {st:?}");
    assert_eq!(
        st,
        Stats {
            files: 6,
            messages: 3,
            junk: 6,
            parsed: 3,
            errors: errors(&[]),
            types: types(&[("ADT^A04", 3)]),
            with_facility: 3,
        }
    );
    use patientflow_core::sources::adt::hl7::JunkReason::{AfterEnvelope, BeforeFirstMsh};
    // Envelopes with no MSH at all: the whole body is junk. A second BHS/FHS inside a message cuts it:
    // MSH+EVN stay a message, PID..PV1 become junk.
    let expect: [(&str, &[Option<_>]); 6] = [
        ("sample_bad_batch.hl7", &[Some(BeforeFirstMsh)]),
        ("sample_bad_file.hl7", &[Some(BeforeFirstMsh)]),
        ("sample_bad_file3.hl7", &[Some(BeforeFirstMsh)]),
        ("sample_bad_batch1.hl7", &[None, Some(AfterEnvelope)]),
        ("sample_bad_file1.hl7", &[None, Some(AfterEnvelope)]),
        ("sample_bad_file2.hl7", &[None, Some(AfterEnvelope)]),
    ];
    for (file, want) in expect {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let got: Vec<_> = split_stream(&text)
            .into_iter()
            .map(|c| match c.kind {
                ChunkKind::Message { .. } => None,
                ChunkKind::Junk { reason, text } => {
                    assert!(
                        text.starts_with("EVN|") || text.starts_with("PID|"),
                        "{file}"
                    );
                    assert!(text.ends_with("PV1|1|O||||^^^^^1"), "{file}");
                    Some(reason)
                }
            })
            .collect();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn linuxforhealth() {
    let Some(dir) = data_dir() else { return };
    let st = scan(&dir.join("linuxforhealth"), |_| true);
    println!("linuxforhealth: {st:?}");
    // 67 A01 in SOURCE.txt = 40 parsed + the 27 test-minimal A01s that have no MSH-10.
    // 16 parsed messages have neither MSH-4 nor PV1-3.4 (test fixtures), so no facility.
    assert_eq!(
        st,
        Stats {
            files: 76,
            messages: 76,
            junk: 0,
            parsed: 49,
            errors: errors(&[("missing_control_id", 27)]),
            types: types(&[
                ("ADT^A01", 40),
                ("ADT^A02", 1),
                ("ADT^A03", 4),
                ("ADT^A08", 1),
                ("ADT^A18", 1),
                ("ADT^A40", 2),
            ]),
            with_facility: 33,
        }
    );
}

#[test]
fn linuxforhealth_line_endings_and_doubled_escape() {
    let Some(dir) = data_dir() else { return };
    let dir = dir.join("linuxforhealth");
    // Same message with LF and CRLF endings; MSH-2 is `^~\\&` (copied out of a Java string literal).
    let unix = std::fs::read_to_string(dir.join("sample_unix.hl7")).unwrap();
    let win = std::fs::read_to_string(dir.join("sample_win.hl7")).unwrap();
    let (u, w) = (split_stream(&unix), split_stream(&win));
    let (u, w) = (u[0].message().unwrap(), w[0].message().unwrap());
    let (mu, mw) = (Hl7Message::parse(u).unwrap(), Hl7Message::parse(w).unwrap());
    assert_eq!(mu.all_segments().len(), mw.all_segments().len());
    assert_eq!(mu.all_segments().len(), 8);
    let (eu, ew) = (to_adt_event(&mu).unwrap(), to_adt_event(&mw).unwrap());
    assert_eq!(eu.mrn.as_deref(), Some("PID1234"));
    assert_eq!(eu.facility.as_deref(), Some("050"));
    assert_eq!(ew.mrn, eu.mrn);
    assert_eq!(ew.admit_time, eu.admit_time);
}

/// Every cut of a real message splits and parses without panicking, and a cut inside the MSH before
/// MSH-10 is reported as an error.
#[test]
fn truncated_real_message_never_panics() {
    let Some(dir) = data_dir() else { return };
    let text = std::fs::read_to_string(dir.join("ms_fhir_converter/ADT-A02-01.hl7")).unwrap();
    let msh_len = text.find('\n').unwrap();
    let ctrl_end = text.find("MSG00001|").unwrap();
    for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let part = &text[..cut];
        for chunk in split_stream(part) {
            let parsed = Hl7Message::parse(chunk.text());
            if cut <= ctrl_end && cut < msh_len {
                assert!(parsed.is_err(), "cut at {cut} parsed");
            }
            if let Ok(m) = parsed {
                to_adt_event(&m).unwrap();
            }
        }
    }
}

mod never_panics {
    use super::*;
    use patientflow_core::sources::adt::json::parse_json_event_str;
    use patientflow_core::sources::adt::time::{parse_date, parse_source_time};
    use proptest::prelude::*;

    /// Exercises every accessor on whatever the splitter produced.
    fn exercise(text: &str) {
        let _ = detect_format(text);
        for chunk in split_stream(text) {
            let _ = Hl7Message::parse(chunk.text());
            if let Ok(m) = Hl7Message::parse_lenient(chunk.text()) {
                let _ = m.header();
                let _ = to_adt_event(&m);
                for p in [
                    "MSH-1",
                    "MSH-2",
                    "MSH-9.2",
                    "PID-3[2].1",
                    "PV1-3.4.2",
                    "OBX[3]-5",
                    "ZPF-1[9]",
                ] {
                    let _ = m.get(p);
                    let _ = m.get_raw(p);
                }
                for seg in m.all_segments() {
                    for f in 0..seg.field_count() + 2 {
                        for r in seg.repetitions(f) {
                            let _ = r.value();
                            let _ = r.subcomponent(2, 2);
                        }
                        let _ = seg.get(f, 1, 1, 1);
                    }
                }
            }
        }
        let _ = parse_source_time(text);
        let _ = parse_date(text);
        let _ = parse_json_event_str(text);
    }

    /// HL7-flavoured tokens, so random input reaches deep into the parser.
    fn hl7ish() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "MSH",
            "MSH|^~\\&|",
            "FHS|",
            "BHS|",
            "BTS|",
            "FTS|",
            "PID|",
            "PV1|",
            "EVN|",
            "ZPF|",
            "|",
            "^",
            "~",
            "\\",
            "&",
            "#",
            "\r",
            "\n",
            "\r\n",
            "\u{0b}",
            "\u{1c}",
            "\u{feff}",
            " ",
            "é",
            "東",
            "A01",
            "ADT^A01",
            "1",
            "20260114",
            "+0215",
            ".",
            "\\X41\\",
            "\\XZ",
            "\\F\\",
            "\\.br\\",
            "=",
            "MR",
            "\"\"",
        ]);
        prop::collection::vec(token, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn hl7_like_text(s in hl7ish()) {
            exercise(&s);
        }

        #[test]
        fn valid_prefix_with_random_tail(tail in hl7ish()) {
            let s = format!("MSH|^~\\&|A|F|||20260114||ADT^A01|1|P|2.5\r{tail}");
            exercise(&s);
        }

        #[test]
        fn time_like_text(s in "[0-9:/+ .TZAPM-]{0,30}") {
            let _ = parse_source_time(&s);
            let _ = parse_date(&s);
        }
    }
}

mod fhir_samples {
    use patientflow_core::sources::adt::fhir::{events_from_ndjson, FhirPatients};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn read(rel: &str) -> Option<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data")
            .join(rel);
        match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(_) => {
                eprintln!("note: {} not found; skipping", path.display());
                None
            }
        }
    }

    fn kinds(events: &[patientflow_core::sources::adt::AdtEvent]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in events {
            *out.entry(e.event_type.clone().unwrap_or_default())
                .or_default() += 1;
        }
        out
    }

    #[test]
    fn mimic_iv_demo() {
        let (Some(enc), Some(pat)) = (
            read("mimic_iv_fhir_demo/Encounter.ndjson"),
            read("mimic_iv_fhir_demo/Patient.ndjson"),
        ) else {
            return;
        };
        let patients = FhirPatients::from_ndjson(&pat);
        assert_eq!(patients.len(), 100);
        let (events, errors) = events_from_ndjson(&enc, &patients, None);
        assert!(errors.is_empty(), "{errors:?}");
        // 263 admissions; 823 location intervals = 263 first stays + 560 transfers.
        let want: BTreeMap<String, usize> = [
            ("A01".to_string(), 263),
            ("A02".to_string(), 560),
            ("A03".to_string(), 263),
        ]
        .into();
        assert_eq!(kinds(&events), want);
        assert!(events
            .iter()
            .all(|e| e.mrn.is_some() && e.facility.is_some()));
        assert!(events
            .iter()
            .all(|e| e.birth_date.is_some() && e.sex.is_some()));
        assert!(events.iter().all(|e| e.department.is_some()));
    }

    #[test]
    fn synthea_bulk() {
        let (Some(enc), Some(pat)) = (
            read("synthea_fhir_bulk_ndjson_10pt/Encounter.000.ndjson"),
            read("synthea_fhir_bulk_ndjson_10pt/Patient.000.ndjson"),
        ) else {
            return;
        };
        let patients = FhirPatients::from_ndjson(&pat);
        assert_eq!(patients.len(), 13);
        let (events, errors) = events_from_ndjson(&enc, &patients, None);
        assert!(errors.is_empty(), "{errors:?}");
        // Class IMP 49 → A01; AMB/EMER/HH/VR 1166 → A04; no location periods, so no transfers.
        let want: BTreeMap<String, usize> = [
            ("A01".to_string(), 49),
            ("A03".to_string(), 1215),
            ("A04".to_string(), 1166),
        ]
        .into();
        assert_eq!(kinds(&events), want);
        assert!(events
            .iter()
            .all(|e| e.mrn.is_some() && e.facility.is_some()));
    }
}
