//! Expected KPIs computed straight from the simulator's ground truth (`truth/*.csv`), independently of
//! the Gold code, and the same KPIs read back from the Gold tables, in one comparable shape.
//!
//! Every KPI becomes a map `key → values`; [`compare`] lists the cells that differ (counts exactly,
//! ratios and hours within ±0.01).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use patientflow_core::gold;
use patientflow_core::storage::Lake;

#[path = "gold_common.rs"]
mod common;
pub use common::*;

/// One KPI as comparable cells.
pub type Kpi = BTreeMap<String, Vec<f64>>;

/// Every KPI by name.
pub type Kpis = BTreeMap<&'static str, Kpi>;

const NONE: f64 = -1.0;

fn opt(v: Option<f64>) -> f64 {
    v.unwrap_or(NONE)
}

fn hour_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap()
}

fn hour_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = hour_start(t);
    if f == t {
        f
    } else {
        f + Duration::hours(1)
    }
}

fn hkey(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn local_date(t: DateTime<Utc>, zone: Tz) -> NaiveDate {
    zone.from_utc_datetime(&t.naive_utc()).date_naive()
}

fn month(t: DateTime<Utc>, zone: Tz) -> i32 {
    let d = local_date(t, zone);
    d.year() * 100 + d.month() as i32
}

fn local_hour(t: DateTime<Utc>, zone: Tz) -> u32 {
    use chrono::Timelike;
    zone.from_utc_datetime(&t.naive_utc()).hour()
}

fn midnight(d: NaiveDate, zone: Tz) -> DateTime<Utc> {
    zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn hours(us: Duration) -> f64 {
    us.num_seconds() as f64 / 3600.0
}

const SEXES: [&str; 4] = ["female", "male", "other", "unknown"];
const BANDS: [&str; 6] = ["0-17", "18-44", "45-64", "65-84", "85+", "unknown"];

fn sex_index(code: Option<&str>) -> usize {
    SEXES
        .iter()
        .position(|s| *s == sex_group(code.unwrap_or("")))
        .unwrap()
}

fn band_index(b: &str) -> usize {
    BANDS.iter().position(|x| *x == b).unwrap()
}

/// Census cell measures, in the order of [`CENSUS_COLUMNS`].
pub const CENSUS_COLUMNS: [&str; 21] = [
    "staffed_beds",
    "occupied_beds",
    "occupied_female",
    "occupied_male",
    "occupied_other",
    "occupied_unknown_sex",
    "occupied_age_0_17",
    "occupied_age_18_44",
    "occupied_age_45_64",
    "occupied_age_65_84",
    "occupied_age_85_plus",
    "occupied_age_unknown",
    "arrivals",
    "admissions",
    "discharges",
    "transfers_in",
    "transfers_out",
    "ed_boarders",
    "boarders_waiting",
    "occupancy_pct",
    "department_known",
];

struct Cell {
    v: [f64; 21],
}

/// Expected KPIs from the truth at `as_of`.
pub fn expected(t: &Truth, as_of: DateTime<Utc>) -> Kpis {
    let mut kpis = Kpis::new();
    let last_hour = hour_start(as_of);
    // Stays per encounter, in time order; admission stay per encounter.
    let mut by_enc: BTreeMap<&str, Vec<&TStay>> = BTreeMap::new();
    for s in &t.stays {
        by_enc.entry(&s.encounter).or_default().push(s);
    }
    for v in by_enc.values_mut() {
        v.sort_by_key(|s| s.start);
    }
    let encs: HashMap<&str, &TEncounter> =
        t.encounters.iter().map(|e| (e.id.as_str(), e)).collect();
    let admitted = |e: &TEncounter| e.admit.is_some() && !e.cancelled;
    // The admission stay: the first stay in a non-emergency department; without one, the stay holding
    // the admission time (docs/kpis.md §0).
    let admission_stay = |enc: &str| -> Option<usize> {
        let e = encs.get(enc)?;
        if !admitted(e) {
            return None;
        }
        let stays = by_enc.get(enc)?;
        let admit = e.admit?;
        stays
            .iter()
            .position(|s| !t.is_ed(&s.hospital, &s.dept))
            .or_else(|| {
                stays
                    .iter()
                    .position(|s| s.start <= admit && s.end.is_none_or(|x| admit < x))
            })
            .or_else(|| stays.iter().rposition(|s| s.start <= admit))
            .or(Some(0))
    };

    // ---- hourly census ----
    let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for s in &t.stays {
        let f = first.entry(&s.hospital).or_insert(hour_start(s.start));
        *f = (*f).min(hour_start(s.start));
    }
    let mut depts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (h, d) in t.depts.keys() {
        if first.contains_key(h.as_str()) {
            depts.entry(h).or_default().insert(d);
        }
    }
    for s in &t.stays {
        depts.entry(&s.hospital).or_default().insert(&s.dept);
    }
    let mut cells: HashMap<(String, String, DateTime<Utc>), Cell> = HashMap::new();
    for (h, ds) in &depts {
        let mut hr = first[h];
        while hr <= last_hour {
            for d in ds {
                let staffed = t
                    .dept_at(h, d, hr)
                    .map(|v| v.staffed as f64)
                    .unwrap_or(NONE);
                let mut v = [0.0; 21];
                v[0] = staffed;
                v[20] = 1.0;
                cells.insert((h.to_string(), d.to_string(), hr), Cell { v });
            }
            hr += Duration::hours(1);
        }
    }
    let mut bump = |h: &str, d: &str, hr: DateTime<Utc>, i: usize| {
        if let Some(c) = cells.get_mut(&(h.to_string(), d.to_string(), hr)) {
            c.v[i] += 1.0;
        }
    };
    for (enc, stays) in &by_enc {
        let adm = admission_stay(enc);
        for (i, s) in stays.iter().enumerate() {
            let end_hour = s.end.map_or(last_hour + Duration::hours(1), hour_ceil);
            let mut hr = hour_ceil(s.start);
            while hr < end_hour && hr <= last_hour {
                let p = t.patient_at(&s.patient, hr);
                bump(&s.hospital, &s.dept, hr, 1);
                bump(
                    &s.hospital,
                    &s.dept,
                    hr,
                    2 + sex_index(p.map(|p| p.sex.as_str())),
                );
                let b = p
                    .and_then(|p| p.birth)
                    .map_or("unknown", |b| band(age(b, hr)));
                bump(&s.hospital, &s.dept, hr, 6 + band_index(b));
                hr += Duration::hours(1);
            }
            if i == 0 {
                bump(&s.hospital, &s.dept, hour_start(s.start), 12);
            }
            if Some(i) == adm {
                bump(&s.hospital, &s.dept, hour_start(s.start), 13);
            }
            if i > 0 && stays[i - 1].dept != s.dept {
                bump(&s.hospital, &s.dept, hour_start(s.start), 15);
            }
            if let Some(e) = s.end {
                match stays.get(i + 1) {
                    None => bump(&s.hospital, &s.dept, hour_start(e), 14),
                    Some(n) if n.dept != s.dept => bump(&s.hospital, &s.dept, hour_start(e), 16),
                    _ => {}
                }
            }
            // Boarding: an ED stay followed by the admission, beyond 4 h.
            if t.is_ed(&s.hospital, &s.dept) && adm == Some(i + 1) {
                let from = s.start + Duration::hours(4);
                let dest = &stays[i + 1].dept;
                let mut hr = hour_ceil(from);
                let end_hour = s.end.map_or(last_hour + Duration::hours(1), hour_ceil);
                while hr < end_hour && hr <= last_hour {
                    bump(&s.hospital, &s.dept, hr, 17);
                    bump(&s.hospital, dest, hr, 18);
                    hr += Duration::hours(1);
                }
            }
        }
    }
    let mut census = Kpi::new();
    for ((h, d, hr), c) in &cells {
        let mut v = c.v;
        v[19] = if v[0] > 0.0 {
            v[1] * 100.0 / v[0]
        } else {
            NONE
        };
        census.insert(format!("{h}|{d}|{}", hkey(*hr)), v.to_vec());
    }

    // ---- bottlenecks (from the expected census) ----
    let mut bottlenecks = Kpi::new();
    let mut series: BTreeMap<(String, String), Vec<HourCells>> = BTreeMap::new();
    for ((h, d, hr), c) in &cells {
        let mut v = c.v;
        v[19] = if v[0] > 0.0 {
            v[1] * 100.0 / v[0]
        } else {
            NONE
        };
        series
            .entry((h.clone(), d.clone()))
            .or_default()
            .push((*hr, v));
    }
    for ((h, d), mut rows) in series {
        rows.sort_by_key(|r| r.0);
        for (kind, idx, threshold) in [
            ("high_occupancy", 19, 85.0),
            ("ed_boarding", 17, 1.0),
            ("long_wait", 18, 1.0),
        ] {
            let mut run: Vec<(DateTime<Utc>, f64)> = Vec::new();
            for k in 0..=rows.len() {
                let hit = rows
                    .get(k)
                    .map(|r| r.1[idx])
                    .filter(|v| *v >= threshold && *v != NONE);
                match hit {
                    Some(v) => run.push((rows[k].0, v)),
                    None => {
                        if run.len() >= 2 {
                            let peak = run.iter().map(|r| r.1).fold(f64::MIN, f64::max);
                            bottlenecks.insert(
                                format!("{h}|{d}|{kind}|{}", hkey(run[0].0)),
                                vec![run.len() as f64, peak],
                            );
                        }
                        run.clear();
                    }
                }
            }
        }
    }

    // ---- midnight census ----
    let mut midnight_kpi = Kpi::new();
    for (h, ds) in &depts {
        let zone = t.zones[*h];
        for d in ds {
            let mut day = local_date(first[h], zone);
            loop {
                let open = midnight(day, zone);
                let close = midnight(day.succ_opt().unwrap(), zone);
                if close > last_hour {
                    break;
                }
                if open >= first[h] {
                    let occ = cells[&(h.to_string(), d.to_string(), close)].v[1];
                    let avail = t
                        .dept_at(h, d, open)
                        .map(|v| v.staffed as f64)
                        .unwrap_or(NONE);
                    let same = t
                        .stays
                        .iter()
                        .filter(|s| s.hospital == *h && s.dept == *d)
                        .filter(|s| {
                            s.start > open && s.start < close && s.end.is_some_and(|e| e <= close)
                        })
                        .count() as f64;
                    midnight_kpi.insert(
                        format!("{h}|{d}|{}", day.format("%Y%m%d")),
                        vec![occ, avail, same],
                    );
                }
                day = day.succ_opt().unwrap();
            }
        }
    }

    // ---- current occupancy, sex distribution, hospital totals ----
    let mut current = Kpi::new();
    let mut sexes = Kpi::new();
    let mut hospital = Kpi::new();
    for (h, ds) in &depts {
        let mut tot = [0.0; 4];
        for d in ds {
            let occupants: Vec<&TStay> = t
                .stays
                .iter()
                .filter(|s| {
                    s.hospital == *h
                        && s.dept == *d
                        && s.start <= as_of
                        && s.end.is_none_or(|e| e > as_of)
                })
                .collect();
            let mut v = vec![0.0; 12];
            v[0] = occupants.len() as f64;
            v[1] = t
                .dept_at(h, d, as_of)
                .map(|x| x.staffed as f64)
                .unwrap_or(NONE);
            for s in &occupants {
                let p = t.patient_at(&s.patient, as_of);
                v[2 + sex_index(p.map(|p| p.sex.as_str()))] += 1.0;
                v[6 + band_index(
                    p.and_then(|p| p.birth)
                        .map_or("unknown", |b| band(age(b, as_of))),
                )] += 1.0;
            }
            for (i, g) in SEXES.iter().enumerate() {
                let share = if v[0] > 0.0 {
                    v[2 + i] * 100.0 / v[0]
                } else {
                    NONE
                };
                sexes.insert(format!("{h}|{d}|{g}"), vec![v[2 + i], share]);
            }
            let staffed = v[1].max(0.0);
            if t.is_ed(h, d) {
                tot[2] += v[0];
                tot[3] += staffed;
            } else {
                tot[0] += v[0];
                tot[1] += staffed;
            }
            current.insert(format!("{h}|{d}"), v);
        }
        hospital.insert(h.to_string(), tot.to_vec());
    }

    // ---- encounter-level KPIs ----
    let mut alos_dept: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    let mut alos_hosp: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    let mut age_band: BTreeMap<String, [f64; 6]> = BTreeMap::new();
    let mut patients: BTreeMap<String, [f64; 5]> = BTreeMap::new();
    let mut current_los = Kpi::new();
    let mut waits: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for e in &t.encounters {
        if !admitted(e) {
            continue;
        }
        let zone = t.zones[&e.hospital];
        let stays = by_enc.get(e.id.as_str()).cloned().unwrap_or_default();
        let adm = admission_stay(&e.id);
        let admit = e.admit.unwrap();
        let arrival = stays.first().map_or(e.arrival, |s| s.start.min(e.arrival));
        let p = t.patient_at(&e.patient, arrival);
        let b = p
            .and_then(|p| p.birth)
            .map_or("unknown", |b| band(age(b, admit)));
        let adm_dept = adm.map(|i| stays[i].dept.clone()).unwrap_or_default();
        let last = stays
            .last()
            .map_or(e.last_department.clone(), |s| s.dept.clone());
        let mut unused = [0.0; 5];
        let pe = if e.patient.is_empty() {
            &mut unused
        } else {
            patients.entry(key(&e.hospital, &e.patient)).or_default()
        };
        pe[0] += 1.0;
        if adm.is_some() {
            let k = format!("{}|{}|{}|{b}", e.hospital, adm_dept, month(admit, zone));
            age_band.entry(k).or_default()[0] += 1.0;
        }
        if let Some(dis) = e.discharge {
            let los = hours(dis - admit);
            let days = (local_date(dis, zone) - local_date(admit, zone)).num_days() as f64;
            let mut targets = vec![(
                &mut alos_hosp,
                format!("{}|{}", e.hospital, month(dis, zone)),
            )];
            if !last.is_empty() {
                targets.push((
                    &mut alos_dept,
                    format!("{}|{last}|{}", e.hospital, month(dis, zone)),
                ));
                let ab = age_band
                    .entry(format!("{}|{last}|{}|{b}", e.hospital, month(dis, zone)))
                    .or_default();
                ab[1] += 1.0;
                ab[2] += los;
            }
            for (m, k) in targets {
                let a = m.entry(k).or_default();
                a[0] += 1.0;
                a[1] += los;
                a[2] += days;
                a[3] += f64::from(days == 0.0);
            }
            pe[1] += 1.0;
            pe[2] += los;
        } else {
            pe[3] = 1.0;
            let cur = hours(as_of - admit).max(0.0);
            pe[4] = pe[4].max(cur);
            current_los.insert(key(&e.hospital, &e.id), vec![cur]);
        }
        if adm.is_some() && stays.first().is_some_and(|s| t.is_ed(&s.hospital, &s.dept)) {
            let wait = (admit - arrival).num_seconds() as f64 / 60.0;
            let (m, hr) = (
                month(arrival, zone).to_string(),
                local_hour(arrival, zone).to_string(),
            );
            for mm in [m.as_str(), "*"] {
                for hh in [hr.as_str(), "*"] {
                    waits
                        .entry(format!("{}|{adm_dept}|{mm}|{hh}", e.hospital))
                        .or_default()
                        .push(wait);
                }
            }
        }
    }
    // Occupied bed-hours by band from the expected census.
    for ((h, d, hr), c) in &cells {
        let zone = t.zones[h.as_str()];
        for (i, b) in BANDS.iter().enumerate() {
            let ab = age_band
                .entry(format!("{h}|{d}|{}|{b}", month(*hr, zone)))
                .or_default();
            ab[4] += c.v[6 + i];
            ab[5] += 1.0;
        }
    }
    let alos = |m: BTreeMap<String, [f64; 4]>| -> Kpi {
        m.into_iter()
            .map(|(k, a)| (k, vec![a[0], a[1], a[1] / a[0], a[2], a[3]]))
            .collect()
    };
    kpis.insert("alos_department_monthly", alos(alos_dept));
    kpis.insert("alos_hospital_monthly", alos(alos_hosp));
    kpis.insert(
        "age_band_monthly",
        age_band
            .into_iter()
            .map(|(k, a)| {
                (
                    k,
                    vec![
                        a[0],
                        a[1],
                        a[2],
                        if a[1] > 0.0 { a[2] / a[1] } else { NONE },
                        a[4],
                        a[5],
                    ],
                )
            })
            .collect(),
    );
    kpis.insert(
        "los_patient",
        patients
            .into_iter()
            .map(|(k, p)| {
                (
                    k,
                    vec![
                        p[0],
                        p[1],
                        p[2],
                        if p[1] > 0.0 { p[2] / p[1] } else { NONE },
                        p[3],
                        if p[3] > 0.0 { p[4] } else { NONE },
                    ],
                )
            })
            .collect(),
    );
    kpis.insert("current_los", current_los);
    kpis.insert(
        "admission_wait",
        waits
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(f64::total_cmp);
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let over = v.iter().filter(|w| **w > 240.0).count() as f64;
                (
                    k,
                    vec![
                        n,
                        percentile(&v, 0.5),
                        percentile(&v, 0.9),
                        mean,
                        *v.last().unwrap(),
                        over,
                    ],
                )
            })
            .collect(),
    );
    kpis.insert("census_hourly", census);
    kpis.insert("bottlenecks", bottlenecks);
    kpis.insert("midnight_census", midnight_kpi);
    kpis.insert("occupancy_current", current);
    kpis.insert("occupancy_current_hospital", hospital);
    kpis.insert("sex_distribution", sexes);
    kpis
}

fn strip(h: &str, key: &str) -> String {
    // Gold keys carry `<hospital>|<id>`: the same form as [`key`].
    let _ = h;
    key.to_string()
}

/// The same KPIs read from the Gold tables; also returns Gold's "now".
pub async fn actual(lake: &Lake) -> (Kpis, DateTime<Utc>) {
    let mut kpis = Kpis::new();
    let q = |sql: String| async move { rows(lake, &gold::TABLES, &sql).await };
    let hosp = q("SELECT * FROM gold_kpi_occupancy_current_hospital".into()).await;
    let as_of = instant(&hosp[0], "as_of").expect("as_of");

    let mut census = Kpi::new();
    for r in q("SELECT * FROM gold_fact_census_hourly".into()).await {
        let hr = instant(&r, "hour_start").unwrap();
        let mut v: Vec<f64> = CENSUS_COLUMNS[..19]
            .iter()
            .map(|c| {
                if *c == "staffed_beds" {
                    float(&r, c).unwrap_or(NONE)
                } else {
                    int(&r, c) as f64
                }
            })
            .collect();
        v.push(opt(float(&r, "occupancy_pct")));
        v.push(1.0);
        census.insert(
            format!(
                "{}|{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap(),
                hkey(hr)
            ),
            v,
        );
    }
    kpis.insert("census_hourly", census);

    let mut b = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_bottlenecks".into()).await {
        b.insert(
            format!(
                "{}|{}|{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap(),
                text(&r, "kind").unwrap(),
                hkey(instant(&r, "start_hour").unwrap())
            ),
            vec![int(&r, "hours") as f64, float(&r, "peak_value").unwrap()],
        );
    }
    kpis.insert("bottlenecks", b);

    let mut m = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_midnight_census".into()).await {
        m.insert(
            format!(
                "{}|{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap(),
                int(&r, "date_key")
            ),
            vec![
                int(&r, "occupied_bed_days") as f64,
                float(&r, "available_bed_days").unwrap_or(NONE),
                int(&r, "same_day_stays") as f64,
            ],
        );
    }
    kpis.insert("midnight_census", m);

    let mut cur = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_occupancy_current".into()).await {
        let mut v = vec![
            int(&r, "occupied_beds") as f64,
            float(&r, "staffed_beds").unwrap_or(NONE),
        ];
        for c in [
            "occupied_female",
            "occupied_male",
            "occupied_other",
            "occupied_unknown_sex",
        ] {
            v.push(int(&r, c) as f64);
        }
        for c in [
            "occupied_age_0_17",
            "occupied_age_18_44",
            "occupied_age_45_64",
            "occupied_age_65_84",
            "occupied_age_85_plus",
            "occupied_age_unknown",
        ] {
            v.push(int(&r, c) as f64);
        }
        cur.insert(
            format!(
                "{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap()
            ),
            v,
        );
    }
    kpis.insert("occupancy_current", cur);

    let mut hk = Kpi::new();
    for r in &hosp {
        hk.insert(
            text(r, "hospital_id").unwrap(),
            vec![
                int(r, "inpatient_occupied_beds") as f64,
                int(r, "inpatient_staffed_beds") as f64,
                int(r, "ed_occupied") as f64,
                int(r, "ed_staffed_spaces") as f64,
            ],
        );
    }
    kpis.insert("occupancy_current_hospital", hk);

    let mut sx = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_sex_distribution".into()).await {
        sx.insert(
            format!(
                "{}|{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap(),
                text(&r, "sex_group").unwrap()
            ),
            vec![int(&r, "occupied_beds") as f64, opt(float(&r, "share_pct"))],
        );
    }
    kpis.insert("sex_distribution", sx);

    for (name, table, keys) in [
        (
            "alos_department_monthly",
            "gold_kpi_alos_department_monthly",
            vec!["hospital_id", "department_code", "month_key"],
        ),
        (
            "alos_hospital_monthly",
            "gold_kpi_alos_hospital_monthly",
            vec!["hospital_id", "month_key"],
        ),
    ] {
        let mut k = Kpi::new();
        for r in q(format!("SELECT * FROM {table}")).await {
            let key = keys
                .iter()
                .map(|c| text(&r, c).unwrap())
                .collect::<Vec<_>>()
                .join("|");
            k.insert(
                key,
                vec![
                    int(&r, "discharges") as f64,
                    float(&r, "los_hours_total").unwrap(),
                    float(&r, "alos_hours").unwrap(),
                    int(&r, "los_days_total") as f64,
                    int(&r, "same_day_discharges") as f64,
                ],
            );
        }
        kpis.insert(name, k);
    }

    let mut ab = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_age_band_monthly".into()).await {
        ab.insert(
            format!(
                "{}|{}|{}|{}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap(),
                int(&r, "month_key"),
                text(&r, "age_band").unwrap()
            ),
            vec![
                int(&r, "admissions") as f64,
                int(&r, "discharges") as f64,
                float(&r, "los_hours_total").unwrap(),
                opt(float(&r, "alos_hours")),
                int(&r, "occupied_bed_hours") as f64,
                int(&r, "census_hours") as f64,
            ],
        );
    }
    kpis.insert("age_band_monthly", ab);

    let mut lp = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_los_patient".into()).await {
        lp.insert(
            strip("", &text(&r, "patient_key").unwrap()),
            vec![
                int(&r, "admissions") as f64,
                int(&r, "discharges") as f64,
                float(&r, "los_hours_total").unwrap(),
                opt(float(&r, "alos_hours")),
                if text(&r, "in_house").as_deref() == Some("true") {
                    1.0
                } else {
                    0.0
                },
                opt(float(&r, "current_los_hours")),
            ],
        );
    }
    kpis.insert("los_patient", lp);

    let mut cl = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_current_los".into()).await {
        cl.insert(
            text(&r, "encounter_key").unwrap(),
            vec![float(&r, "current_los_hours").unwrap()],
        );
    }
    kpis.insert("current_los", cl);

    let mut w = Kpi::new();
    for r in q("SELECT * FROM gold_kpi_admission_wait".into()).await {
        let m = text(&r, "month_key").unwrap_or_else(|| "*".into());
        let h = text(&r, "hour_of_day").unwrap_or_else(|| "*".into());
        w.insert(
            format!(
                "{}|{}|{m}|{h}",
                text(&r, "hospital_id").unwrap(),
                text(&r, "department_code").unwrap()
            ),
            vec![
                int(&r, "admissions") as f64,
                float(&r, "wait_median_minutes").unwrap(),
                float(&r, "wait_p90_minutes").unwrap(),
                float(&r, "wait_mean_minutes").unwrap(),
                float(&r, "wait_max_minutes").unwrap(),
                int(&r, "waits_over_4h") as f64,
            ],
        );
    }
    kpis.insert("admission_wait", w);
    (kpis, as_of)
}

/// One hour of a department's expected census cells.
type HourCells = (DateTime<Utc>, [f64; 21]);

/// A differing KPI cell: key, expected, actual.
pub type Difference = (String, Option<Vec<f64>>, Option<Vec<f64>>);

/// A KPI's comparison: cells compared and the ones that differ.
#[derive(Debug, Default)]
pub struct Diff {
    pub cells: usize,
    pub differing: Vec<Difference>,
}

/// Compares expected and actual KPIs within ±0.01 (counts, ratios and hours alike). Age-band rows that
/// are all zero may be absent on either side.
pub fn compare(expected: &Kpis, actual: &Kpis) -> BTreeMap<&'static str, Diff> {
    compare_with(expected, actual, |e, a| (e - a).abs() <= 0.01)
}

/// Rounds to the 4 decimals docs/kpis.md § 0 gives every ratio, average and hour in a KPI table.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Compares expected and actual KPIs strictly: every row on both sides (age-band rows that are all zero
/// may be absent on either side), counts exactly equal, and ratios, averages and hours — the truth
/// rounded as docs/kpis.md § 0 says — within 1e-9 relative.
pub fn compare_exact(expected: &Kpis, actual: &Kpis) -> BTreeMap<&'static str, Diff> {
    compare_with(expected, actual, |e, a| {
        if e.fract() == 0.0 && a.fract() == 0.0 {
            e == a
        } else {
            let e = round4(e);
            (e - a).abs() <= 1e-9 * e.abs().max(a.abs()).max(f64::MIN_POSITIVE)
        }
    })
}

/// Every row of every KPI on either side, its values compared with `same_value(expected, actual)`.
fn compare_with(
    expected: &Kpis,
    actual: &Kpis,
    same_value: impl Fn(f64, f64) -> bool,
) -> BTreeMap<&'static str, Diff> {
    let mut out = BTreeMap::new();
    for (name, exp) in expected {
        let empty = Kpi::new();
        let act = actual.get(name).unwrap_or(&empty);
        let mut d = Diff::default();
        let keys: BTreeSet<&String> = exp.keys().chain(act.keys()).collect();
        for k in keys {
            let (e, a) = (exp.get(k), act.get(k));
            d.cells += 1;
            let same = match (e, a) {
                (Some(e), Some(a)) => {
                    e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same_value(*x, *y))
                }
                (Some(v), None) | (None, Some(v)) => {
                    *name == "age_band_monthly"
                        && v.iter().take(3).all(|x| *x == 0.0)
                        && v[4] == 0.0
                }
                (None, None) => true,
            };
            if !same {
                d.differing.push((k.clone(), e.cloned(), a.cloned()));
            }
        }
        out.insert(*name, d);
    }
    out
}

/// Names of each KPI's values, in order.
pub fn value_names(kpi: &str) -> Vec<&'static str> {
    match kpi {
        "census_hourly" => CENSUS_COLUMNS.to_vec(),
        "bottlenecks" => vec!["hours", "peak"],
        "midnight_census" => vec!["occupied_bed_days", "available_bed_days", "same_day_stays"],
        "occupancy_current" => vec![
            "occupied",
            "staffed",
            "female",
            "male",
            "other",
            "unknown_sex",
            "age_0_17",
            "age_18_44",
            "age_45_64",
            "age_65_84",
            "age_85_plus",
            "age_unknown",
        ],
        "occupancy_current_hospital" => vec![
            "inpatient_occupied",
            "inpatient_staffed",
            "ed_occupied",
            "ed_staffed",
        ],
        "sex_distribution" => vec!["occupied", "share_pct"],
        "alos_department_monthly" | "alos_hospital_monthly" => vec![
            "discharges",
            "los_hours_total",
            "alos_hours",
            "los_days_total",
            "same_day",
        ],
        "age_band_monthly" => vec![
            "admissions",
            "discharges",
            "los_hours_total",
            "alos_hours",
            "bed_hours",
            "census_hours",
        ],
        "los_patient" => vec![
            "admissions",
            "discharges",
            "los_hours_total",
            "alos_hours",
            "in_house",
            "current_los_hours",
        ],
        "current_los" => vec!["current_los_hours"],
        "admission_wait" => vec!["n", "median", "p90", "mean", "max", "over_4h"],
        _ => vec![],
    }
}

/// Per KPI and value: cells that differ, and the relative absolute error Σ|gold − truth| / Σ|truth| over
/// the cells present on both sides (rows present on one side only are counted apart).
pub fn detail(expected: &Kpis, actual: &Kpis) -> String {
    let mut s = String::new();
    for (name, exp) in expected {
        let empty = Kpi::new();
        let act = actual.get(name).unwrap_or(&empty);
        let only_truth = exp.keys().filter(|k| !act.contains_key(*k)).count();
        let only_gold = act.keys().filter(|k| !exp.contains_key(*k)).count();
        s.push_str(&format!(
            "  {name}: {} rows; {only_truth} only in truth, {only_gold} only in gold\n",
            exp.len()
        ));
        for (i, col) in value_names(name).iter().enumerate() {
            let (mut n, mut differ, mut err, mut tot) = (0, 0, 0.0, 0.0);
            for (k, e) in exp {
                let Some(a) = act.get(k) else { continue };
                let (x, y) = (e[i], a[i]);
                if x == NONE && y == NONE {
                    continue;
                }
                n += 1;
                if (x - y).abs() > 0.01 {
                    differ += 1;
                }
                err += (x.max(0.0) - y.max(0.0)).abs();
                tot += x.max(0.0).abs();
            }
            if differ > 0 {
                s.push_str(&format!(
                    "      {col:<22} {differ:>6} of {n:>6} cells differ; relative error {:.2} %\n",
                    if tot > 0.0 { err * 100.0 / tot } else { 0.0 }
                ));
            }
        }
    }
    s
}

/// A one-line-per-KPI summary of a comparison.
pub fn summary(diffs: &BTreeMap<&'static str, Diff>) -> String {
    let mut s = String::new();
    for (name, d) in diffs {
        s.push_str(&format!(
            "  {name:<28} {:>7} cells, {:>6} differ ({:.2} %)\n",
            d.cells,
            d.differing.len(),
            if d.cells > 0 {
                d.differing.len() as f64 * 100.0 / d.cells as f64
            } else {
                0.0
            }
        ));
    }
    s
}

/// The first differing cells of every KPI, for a failure message.
pub fn examples(diffs: &BTreeMap<&'static str, Diff>, n: usize) -> String {
    let mut s = String::new();
    for (name, d) in diffs {
        for (k, e, a) in d.differing.iter().take(n) {
            s.push_str(&format!("  {name} {k}: expected {e:?}, gold {a:?}\n"));
        }
    }
    s
}

/// Sanity: the number of admitted truth encounters, for the report.
pub fn truth_counts(t: &Truth) -> (usize, usize, usize) {
    let admitted = t
        .encounters
        .iter()
        .filter(|e| e.admit.is_some() && !e.cancelled)
        .count();
    (t.encounters.len(), admitted, t.stays.len())
}
