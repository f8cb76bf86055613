//! Invariants of the clean ground truth of a one-year run of two small hospitals (MHA05 has a
//! Pediatrics unit, MHA06 a Cardiology unit, so every department type is covered).

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use patientflow_simulator::{generate, Hospitals, SimConfig, Summary};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Run {
    dir: PathBuf,
    summary: Summary,
    cfg: SimConfig,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        // One fixed scratch folder under the target dir (replaced on every run, never leaked).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("truth-invariants");
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = SimConfig {
            hospitals: Hospitals::Ids(vec!["MHA05".into(), "MHA06".into()]),
            days: 365,
            dirty_rate: 0.0,
            ..SimConfig::default()
        };
        let summary = generate(&cfg, &dir).unwrap();
        Run { dir, summary, cfg }
    })
}

fn rows(file: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(run().dir.join(file)).unwrap();
    let header = r.headers().unwrap().iter().map(|s| s.to_string()).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(|s| s.to_string()).collect())
        .collect();
    (header, rows)
}

fn ts(s: &str) -> Option<i64> {
    if s.is_empty() {
        None
    } else {
        Some(DateTime::parse_from_rfc3339(s).unwrap().timestamp())
    }
}

fn zones() -> BTreeMap<String, Tz> {
    let (_, hs) = rows("reference/hospitals.csv");
    hs.into_iter()
        .map(|h| (h[0].clone(), h[4].parse().unwrap()))
        .collect()
}

fn run_end() -> i64 {
    let c = &run().cfg;
    c.start_date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
        + c.days as i64 * 86_400
}

#[test]
fn no_bed_holds_two_patients() {
    let (_, stays) = rows("truth/location_stays.csv");
    assert!(stays.len() > 50_000, "{} stays", stays.len());
    let mut by_bed: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for s in &stays {
        let start = ts(&s[6]).unwrap();
        let end = ts(&s[7]).unwrap_or(i64::MAX);
        assert!(end >= start, "stay ends before it starts: {s:?}");
        by_bed
            .entry((s[2].clone(), s[5].clone()))
            .or_default()
            .push((start, end));
    }
    for (bed, mut iv) in by_bed {
        iv.sort();
        for w in iv.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "bed {bed:?} double-booked: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn occupancy_never_exceeds_staffed_beds_outside_the_ed() {
    let tz = zones();
    let (_, hist) = rows("truth/department_history.csv");
    // (hospital, dept) -> [(from instant, staffed)]
    let mut cap: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for h in &hist {
        let day = NaiveDate::parse_from_str(&h[2], "%Y-%m-%d").unwrap();
        let from = tz[&h[0]]
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp();
        cap.entry((h[0].clone(), h[1].clone()))
            .or_default()
            .push((from, h[6].parse().unwrap()));
    }
    // Sanity: the history has surge rows and a reduction.
    let med = &cap[&("MHA05".to_string(), "MED".to_string())];
    assert!(
        med.len() >= 3,
        "MED of MHA05 should open surge beds and close them: {med:?}"
    );
    let (_, stays) = rows("truth/location_stays.csv");
    let mut events: BTreeMap<(String, String), Vec<(i64, i32)>> = BTreeMap::new();
    for s in stays.iter().filter(|s| s[3] != "ED") {
        let e = events.entry((s[2].clone(), s[3].clone())).or_default();
        e.push((ts(&s[6]).unwrap(), 1));
        if let Some(end) = ts(&s[7]) {
            e.push((end, -1));
        }
    }
    let mut peak_ratio: f64 = 0.0;
    for (key, mut ev) in events {
        ev.sort(); // at equal times departures (-1) come first
        let rows = &cap[&key];
        let staffed_at = |t: i64| {
            let mut s = rows[0].1;
            for (from, st) in rows {
                if *from <= t {
                    s = *st;
                }
            }
            s
        };
        let mut occ = 0i64;
        for (t, d) in ev {
            occ += d as i64;
            let staffed = staffed_at(t);
            assert!(
                occ <= staffed,
                "{key:?} has {occ} patients at {t} but {staffed} staffed beds"
            );
            peak_ratio = peak_ratio.max(occ as f64 / staffed as f64);
        }
    }
    assert!(
        peak_ratio >= 0.95,
        "wards should fill up at times (peak {peak_ratio:.2})"
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
fn length_of_stay_matches_configured_medians() {
    let (_, encs) = rows("truth/encounters.csv");
    let class: BTreeMap<String, String> =
        encs.iter().map(|e| (e[0].clone(), e[3].clone())).collect();
    let (_, stays) = rows("truth/location_stays.csv");
    let mut per_enc: BTreeMap<String, Vec<&Vec<String>>> = BTreeMap::new();
    for s in &stays {
        per_enc.entry(s[0].clone()).or_default().push(s);
    }
    let cutoff = run_end() - 30 * 86_400; // avoid right-censoring of long stays
    let mut los: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (enc, ss) in &per_enc {
        let ward: Vec<_> = ss.iter().filter(|s| s[3] != "ED").collect();
        let pick = if class[enc] == "E" && ward.is_empty() && ss.len() == 1 {
            Some(ss[0])
        } else if ward.len() == 1 && ward[0][3] != "ICU" {
            Some(*ward[0])
        } else {
            None
        };
        // An ICU stay is never split (no deterioration or erroneous transfer out of the ICU), so
        // every ICU stay is one whole ICU LOS, also before a step-down or after a deterioration.
        let icu = ss.iter().copied().filter(|s| s[3] == "ICU");
        for s in pick.into_iter().chain(icu) {
            let (start, end) = (ts(&s[6]).unwrap(), ts(&s[7]));
            if let (Some(end), true) = (end, start < cutoff) {
                los.entry(s[3].clone())
                    .or_default()
                    .push((end - start) as f64 / 3600.0);
            }
        }
    }
    // Configured medians in hours (docs/simulator.md).
    let expected = [
        ("ED", 4.0),
        ("ICU", 72.0),
        ("SURG", 72.0),
        ("MED", 108.0),
        ("CARD", 84.0),
        ("PEDS", 60.0),
        ("MAT", 60.0),
    ];
    for (d, want) in expected {
        let v = los.remove(d).unwrap_or_default();
        assert!(v.len() >= 300, "{d}: only {} stays", v.len());
        let m = median(v);
        assert!(
            (m - want).abs() <= 0.10 * want,
            "{d}: median LOS {m:.1} h, configured {want} h"
        );
    }
}

fn ed_arrivals() -> Vec<(String, i64)> {
    let (_, encs) = rows("truth/encounters.csv");
    encs.into_iter()
        .filter(|e| e[9] == "ED")
        .map(|e| (e[2].clone(), ts(&e[4]).unwrap()))
        .collect()
}

#[test]
fn flu_season_surge_is_visible() {
    use chrono::Datelike;
    let mut per_month = [0u64; 13];
    for (_, t) in ed_arrivals() {
        per_month[Utc.timestamp_opt(t, 0).unwrap().month() as usize] += 1;
    }
    let jan = per_month[1] as f64 / 31.0;
    let jul = per_month[7] as f64 / 31.0;
    assert!(
        jan > 1.10 * jul,
        "January {jan:.1}/day vs July {jul:.1}/day"
    );
}

#[test]
fn arrivals_follow_the_hour_of_day_curve() {
    let tz = zones();
    let mut by_hour = [0u64; 24];
    for (h, t) in ed_arrivals() {
        let local = tz[&h].timestamp_opt(t, 0).unwrap();
        by_hour[local.hour() as usize] += 1;
    }
    let night = (by_hour[3] + by_hour[4]) as f64;
    let midday = (by_hour[11] + by_hour[12]) as f64;
    assert!(midday > 2.5 * night, "11-13h {midday} vs 3-5h {night}");
}

#[test]
fn cancellations_and_encounter_facts_are_consistent() {
    let (_, encs) = rows("truth/encounters.csv");
    let (_, stays) = rows("truth/location_stays.csv");
    let mut n_stays: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &stays {
        *n_stays.entry(s[0].as_str()).or_default() += 1;
    }
    let mut cancelled = 0;
    let mut boarded = 0;
    for e in &encs {
        let stays = n_stays.get(e[0].as_str()).copied().unwrap_or(0);
        if e[8] == "true" {
            cancelled += 1;
            assert_eq!(stays, 0, "cancelled encounter with stays: {e:?}");
            assert!(e[9].is_empty() && e[7].is_empty());
            continue;
        }
        assert!(stays >= 1, "encounter without a stay: {e:?}");
        let arrival = ts(&e[4]).unwrap();
        if let Some(dec) = ts(&e[5]) {
            assert!(dec >= arrival);
            if let Some(adm) = ts(&e[6]) {
                assert!(adm >= dec, "admitted before the decision: {e:?}");
                if adm - dec > 4 * 3600 {
                    boarded += 1;
                }
            }
        }
        if let (Some(adm), Some(dis)) = (ts(&e[6]), ts(&e[7])) {
            assert!(dis > adm, "{e:?}");
        }
        if e[3] == "E" {
            assert!(e[6].is_empty() && e[9] == "ED" && e[10] == "ED", "{e:?}");
        }
    }
    assert!(cancelled > 10, "A11 cancellations expected ({cancelled})");
    assert!(
        boarded > 100,
        "some ED patients should board > 4 h ({boarded})"
    );
    let s = &run().summary;
    for t in ["A01", "A02", "A03", "A04", "A08", "A11", "A12", "A13"] {
        assert!(
            s.adt_events_by_type.get(t).copied().unwrap_or(0) > 0,
            "no {t} events"
        );
    }
}

#[test]
fn patient_history_is_gapless_and_new_columns_appear_late() {
    let (h, rows_) = rows("truth/patient_history.csv");
    assert_eq!(h[11], "preferred_language");
    let lang_from = run()
        .cfg
        .start_date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
        + run().cfg.language_day() as i64 * 86_400;
    let mut prev: Option<&Vec<String>> = None;
    let mut changed = 0;
    for r in &rows_ {
        if let Some(p) = prev {
            if p[0] == r[0] {
                assert_eq!(p[2], r[1], "gap or overlap in {}", r[0]);
                changed += 1;
            }
        }
        if !r[11].is_empty() {
            assert!(
                ts(&r[1]).unwrap() >= lang_from,
                "language known before collection: {r:?}"
            );
        }
        prev = Some(r);
    }
    assert!(
        changed > 1000,
        "expected A08 / attribute versions ({changed})"
    );
}

#[test]
fn daily_extracts_gain_columns_on_their_days() {
    let c = &run().cfg;
    let day = |d: u32| c.start_date + chrono::Days::new(d as u64);
    for (d, lang, ins) in [
        (c.language_day() - 1, false, false),
        (c.language_day(), true, false),
        (c.insurance_day(), true, true),
    ] {
        let date = day(d).format("%Y-%m-%d").to_string();
        let mut r =
            csv::Reader::from_path(run().dir.join(format!("ehr/{date}/patients_{date}.csv")))
                .unwrap();
        let h: Vec<String> = r.headers().unwrap().iter().map(|s| s.to_string()).collect();
        assert_eq!(
            h.contains(&"preferred_language".to_string()),
            lang,
            "{date}: {h:?}"
        );
        assert_eq!(
            h.contains(&"insurance_type".to_string()),
            ins,
            "{date}: {h:?}"
        );
    }
}
