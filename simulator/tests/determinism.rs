//! Same seed and config ⇒ byte-identical output; another seed ⇒ different output; the clean truth
//! does not depend on the dirty-data rates or the JSON share; `stream` yields exactly the files'
//! messages.

use patientflow_simulator::{generate, stream, Hospitals, MessageFormat, SimConfig};
use std::collections::BTreeMap;
use std::path::Path;

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        days: 8,
        hospitals: Hospitals::Ids(vec!["MHA06".into(), "MHA07".into()]),
        preferred_language_from_day: Some(3),
        insurance_type_from_day: Some(5),
        ..SimConfig::default()
    }
}

fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let sa = generate(&small(7), a.path()).unwrap();
    let sb = generate(&small(7), b.path()).unwrap();
    generate(&small(8), c.path()).unwrap();
    assert_eq!(sa, sb);
    let ta = read_tree(a.path());
    let tb = read_tree(b.path());
    let tc = read_tree(c.path());
    assert!(
        ta.len() > 30,
        "expected a full tree, got {} files",
        ta.len()
    );
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(
            v == &tb[k],
            "{k} differs between two runs with the same seed"
        );
    }
    let differing = ta.iter().filter(|(k, v)| tc.get(*k) != Some(*v)).count();
    assert!(
        differing > ta.len() / 2,
        "another seed should change most files ({differing} differ)"
    );
    // The summary counts what is on disk (summary.json itself excluded).
    assert_eq!(sa.files_written as usize, ta.len() - 1);
    let bytes: usize = ta
        .iter()
        .filter(|(k, _)| *k != "truth/summary.json")
        .map(|(_, v)| v.len())
        .sum();
    assert_eq!(sa.bytes_written as usize, bytes);
}

#[test]
fn output_folder_must_be_empty() {
    let a = tempfile::tempdir().unwrap();
    std::fs::write(a.path().join("x"), "x").unwrap();
    let err = generate(&small(1), a.path()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn clean_truth_is_independent_of_defect_rates_and_format_mix() {
    let clean = tempfile::tempdir().unwrap();
    let dirty = tempfile::tempdir().unwrap();
    let mut c = small(11);
    c.dirty_rate = 0.0;
    c.json_fraction = 0.0;
    let mut d = small(11);
    d.dirty_rate = 0.2;
    d.json_fraction = 0.7;
    let sc = generate(&c, clean.path()).unwrap();
    let sd = generate(&d, dirty.path()).unwrap();
    assert_eq!(sc.defects.len(), 0, "dirty_rate 0 must inject nothing");
    let manifest = std::fs::read_to_string(clean.path().join("truth/manifest.jsonl")).unwrap();
    assert!(manifest.is_empty());
    for f in [
        "truth/location_stays.csv",
        "truth/encounters.csv",
        "truth/patient_history.csv",
        "truth/department_history.csv",
    ] {
        let x = std::fs::read(clean.path().join(f)).unwrap();
        let y = std::fs::read(dirty.path().join(f)).unwrap();
        assert!(x == y, "{f} changed with the defect rates");
    }
    assert_eq!(sc.adt_events_by_type, sd.adt_events_by_type);
    assert!(
        sd.adt_messages > sc.adt_messages,
        "duplicates add deliveries"
    );
}

#[test]
fn stream_yields_the_files_messages_in_order() {
    let cfg = small(5);
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&cfg, dir.path()).unwrap();
    let msgs: Vec<_> = stream(&cfg).unwrap().collect();
    assert_eq!(msgs.len() as u64, summary.adt_messages);
    assert!(msgs.windows(2).all(|w| w[0].deliver_at <= w[1].deliver_at));
    // Rebuild every file from the stream and compare bytes.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for m in &msgs {
        let day = m.deliver_at.format("%Y-%m-%d").to_string();
        let (ext, end) = match m.format {
            MessageFormat::Json => ("ndjson", "\n"),
            // MHA06 frames with CRLF segment terminators, MHA07 with CR + LF after each message.
            MessageFormat::Hl7 => ("hl7", if m.facility == "MHA07" { "\n" } else { "" }),
        };
        let f = files
            .entry(format!("adt/{day}/{}.{ext}", m.facility))
            .or_default();
        f.push_str(&m.payload);
        f.push_str(end);
    }
    let tree = read_tree(dir.path());
    let on_disk: BTreeMap<&String, &Vec<u8>> =
        tree.iter().filter(|(k, _)| k.starts_with("adt/")).collect();
    assert_eq!(on_disk.len(), files.len());
    for (k, v) in files {
        assert!(
            on_disk[&k] == &v.into_bytes(),
            "{k} differs from the stream"
        );
    }
}

#[test]
fn reference_data_alone_equals_the_generated_reference() {
    let cfg = small(11);
    let full = tempfile::tempdir().unwrap();
    generate(&cfg, full.path()).unwrap();
    let only = tempfile::tempdir().unwrap();
    patientflow_simulator::write_reference_data(&cfg, only.path()).unwrap();
    let expected: BTreeMap<String, Vec<u8>> = read_tree(full.path())
        .into_iter()
        .filter(|(k, _)| k.starts_with("reference/"))
        .collect();
    assert!(expected.contains_key("reference/departments.csv"));
    assert_eq!(read_tree(only.path()), expected);
}
