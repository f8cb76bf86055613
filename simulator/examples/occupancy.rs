//! Calibration report: generate (clean) and print, per hospital and department, the mean and peak
//! occupancy vs staffed beds per month, plus ED boarding statistics.
//!
//! `cargo run --release -p patientflow-simulator --example occupancy -- [days] [hospitals]`

use chrono::{DateTime, Datelike, NaiveDate, TimeZone};
use patientflow_simulator::{generate, Hospitals, SimConfig};
use std::collections::BTreeMap;

fn rows(dir: &std::path::Path, f: &str) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join(f)).unwrap();
    r.records()
        .map(|x| x.unwrap().iter().map(|s| s.to_string()).collect())
        .collect()
}

fn ts(s: &str) -> Option<i64> {
    (!s.is_empty()).then(|| DateTime::parse_from_rfc3339(s).unwrap().timestamp())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let days: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(365);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let cfg = SimConfig {
        days,
        hospitals: Hospitals::Count(n),
        dirty_rate: 0.0,
        ..SimConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let s = generate(&cfg, dir.path()).unwrap();
    eprintln!(
        "generated in {:.1}s: {} encounters, {} messages",
        t0.elapsed().as_secs_f64(),
        s.encounters,
        s.adt_messages
    );
    let d = dir.path();
    let tz: BTreeMap<String, chrono_tz::Tz> = rows(d, "reference/hospitals.csv")
        .into_iter()
        .map(|h| (h[0].clone(), h[4].parse().unwrap()))
        .collect();
    let mut cap: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for h in rows(d, "truth/department_history.csv") {
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
    let start = cfg
        .start_date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let end = start + days as i64 * 86_400;
    // hourly census
    let mut census: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let hours = ((end - start) / 3600) as usize;
    for s in rows(d, "truth/location_stays.csv") {
        let a = ((ts(&s[6]).unwrap() - start) / 3600).max(0) as usize;
        let b = ((ts(&s[7]).unwrap_or(end) - start) / 3600) as usize;
        let v = census
            .entry((s[2].clone(), s[3].clone()))
            .or_insert_with(|| vec![0.0; hours + 1]);
        for x in v.iter_mut().take(b.min(hours)).skip(a) {
            *x += 1.0;
        }
    }
    println!("hospital dept  staffed  | monthly mean occupancy % (peak %)");
    for ((h, dep), v) in &census {
        let c = cap.get(&(h.clone(), dep.clone()));
        let mut line = format!("{h} {dep:5}");
        let mut month: BTreeMap<u32, (f64, f64, f64)> = BTreeMap::new();
        for (i, occ) in v.iter().enumerate().take(hours) {
            let t = start + i as i64 * 3600;
            let staffed = c
                .map(|c| {
                    let mut s = c[0].1;
                    for (f, st) in c {
                        if *f <= t {
                            s = *st;
                        }
                    }
                    s
                })
                .unwrap_or(1.0);
            let m = chrono::Utc.timestamp_opt(t, 0).unwrap().month();
            let e = month.entry(m).or_insert((0.0, 0.0, 0.0));
            e.0 += occ / staffed;
            e.1 += 1.0;
            e.2 = f64::max(e.2, occ / staffed);
        }
        if let Some(c) = c {
            line.push_str(&format!(" {:4}", c[0].1));
        }
        for (_, (sum, n, peak)) in month {
            line.push_str(&format!(" {:3.0}({:3.0})", 100.0 * sum / n, 100.0 * peak));
        }
        println!("{line}");
    }
    // boarding: decision -> admit
    let mut waits: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for e in rows(d, "truth/encounters.csv") {
        if let (Some(dec), Some(adm)) = (ts(&e[5]), ts(&e[6])) {
            waits
                .entry(e[2].clone())
                .or_default()
                .push((adm - dec) as f64 / 3600.0);
        }
    }
    for (h, mut w) in waits {
        w.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| w[((w.len() - 1) as f64 * p) as usize];
        println!(
            "{h} boarding h: n={} median {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            w.len(),
            q(0.5),
            q(0.9),
            q(0.99),
            w[w.len() - 1]
        );
    }
    println!("{}", serde_json::to_string_pretty(&s).unwrap());
}
