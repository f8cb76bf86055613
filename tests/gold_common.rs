//! Shared by the Gold tests: simulated data sets, ingestion by day, refreshes, reading Gold tables, and
//! the simulator's ground truth (`truth/*.csv`) read independently of the pipeline.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use deltalake::arrow::array::RecordBatch;
use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::pipeline::{RefreshOptions, StageReport};
use patientflow_core::storage::columns::strings;
use patientflow_core::storage::{Lake, TableRef};
use patientflow_simulator::SimConfig;

fn no_progress(_: &str, _: usize) {}

/// Generates a simulated data set into `dir/data`.
pub fn generate(cfg: &SimConfig, dir: &Path) -> PathBuf {
    let out = dir.join("data");
    patientflow_simulator::generate(cfg, &out).expect("simulator");
    out
}

/// Day folders (`YYYY-MM-DD`) under `data/<kind>/`, sorted.
pub fn day_folders(data: &Path, kind: &str) -> Vec<(NaiveDate, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(data.join(kind)) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Ok(d) = NaiveDate::parse_from_str(&name, "%Y-%m-%d") {
            out.push((d, e.path()));
        }
    }
    out.sort();
    out
}

/// Ingests reference data and the ADT and EHR day folders whose date satisfies `days`.
pub async fn ingest(lake: &Lake, data: &Path, days: impl Fn(NaiveDate) -> bool) {
    let reference = vec![data.join("reference").display().to_string()];
    let r = bronze::reference::ingest_paths(lake, &reference, "test-ref", &no_progress)
        .await
        .expect("reference");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let adt: Vec<String> = day_folders(data, "adt")
        .into_iter()
        .filter(|(d, _)| days(*d))
        .map(|(_, p)| p.display().to_string())
        .collect();
    if !adt.is_empty() {
        let r = AdtIngestor::new(lake.clone())
            .ingest_paths(&adt, "test-adt", &no_progress)
            .await
            .expect("adt");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }
    let ehr: Vec<String> = day_folders(data, "ehr")
        .into_iter()
        .filter(|(d, _)| days(*d))
        .map(|(_, p)| p.display().to_string())
        .collect();
    if !ehr.is_empty() {
        let r = bronze::ehr::ingest_paths(lake, &ehr, None, "test-ehr", &no_progress)
            .await
            .expect("ehr");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }
}

/// Refreshes Silver, then Gold.
pub async fn refresh(lake: &Lake, full_gold: bool) -> (StageReport, StageReport) {
    let silver = patientflow_core::pipeline::refresh_silver(
        lake,
        &RefreshOptions {
            full: false,
            trigger: "test".into(),
        },
    )
    .await
    .expect("silver refresh");
    let gold = patientflow_core::pipeline::refresh_gold(
        lake,
        &RefreshOptions {
            full: full_gold,
            trigger: "test".into(),
        },
    )
    .await
    .expect("gold refresh");
    assert_eq!(gold.status, "succeeded", "{}", gold.details);
    (silver, gold)
}

/// Rows of a query as maps column → text (null = None).
pub async fn rows(
    lake: &Lake,
    tables: &[TableRef],
    sql: &str,
) -> Vec<HashMap<String, Option<String>>> {
    let batches: Vec<RecordBatch> = lake.sql(tables, sql).await.expect("query");
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<(String, Vec<Option<String>>)> = b
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), strings(b, f.name()).expect("column")))
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|(n, v)| (n.clone(), v[i].clone()))
                    .collect(),
            );
        }
    }
    out
}

/// A text cell as i64 (null → 0).
pub fn int(row: &HashMap<String, Option<String>>, col: &str) -> i64 {
    row.get(col)
        .cloned()
        .flatten()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{col}={v} is not an integer"))
        })
        .unwrap_or(0)
}

/// A text cell as f64.
pub fn float(row: &HashMap<String, Option<String>>, col: &str) -> Option<f64> {
    row.get(col).cloned().flatten().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{col}={v} is not a number"))
    })
}

/// A text cell.
pub fn text(row: &HashMap<String, Option<String>>, col: &str) -> Option<String> {
    row.get(col).cloned().flatten()
}

/// A timestamp cell (Arrow's text form, UTC).
pub fn instant(row: &HashMap<String, Option<String>>, col: &str) -> Option<DateTime<Utc>> {
    text(row, col).map(|v| parse_ts(&v))
}

/// Parses Arrow's or RFC 3339's text of a UTC timestamp.
pub fn parse_ts(v: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            DateTime::parse_from_rfc3339(&format!("{}Z", v.trim_end_matches('Z')))
                .map(|d| d.with_timezone(&Utc))
        })
        .unwrap_or_else(|e| panic!("timestamp {v}: {e}"))
}

// ---------------------------------------------------------------------------------------------------
// Ground truth, read straight from the simulator's truth/*.csv (no pipeline code).

/// A truth stay.
#[derive(Debug, Clone)]
pub struct TStay {
    pub encounter: String,
    pub patient: String,
    pub hospital: String,
    pub dept: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

/// A truth encounter.
#[derive(Debug, Clone)]
pub struct TEncounter {
    pub id: String,
    pub patient: String,
    pub hospital: String,
    pub arrival: DateTime<Utc>,
    pub decision: Option<DateTime<Utc>>,
    pub admit: Option<DateTime<Utc>>,
    pub discharge: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub first_department: String,
    pub last_department: String,
}

/// A truth patient version.
#[derive(Debug, Clone)]
pub struct TPatient {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub sex: String,
    pub birth: Option<NaiveDate>,
}

/// A truth department version.
#[derive(Debug, Clone)]
pub struct TDept {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub kind: String,
    pub staffed: i64,
}

/// The simulator's ground truth.
#[derive(Debug, Default)]
pub struct Truth {
    pub zones: BTreeMap<String, Tz>,
    pub stays: Vec<TStay>,
    pub encounters: Vec<TEncounter>,
    pub patients: HashMap<String, Vec<TPatient>>,
    pub depts: BTreeMap<(String, String), Vec<TDept>>,
}

fn opt_time(s: &str) -> Option<DateTime<Utc>> {
    (!s.is_empty()).then(|| parse_ts(s))
}

fn records(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    zone.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

impl Truth {
    /// Reads `data/truth/*.csv` and `data/reference/hospitals.csv`.
    pub fn read(data: &Path) -> Truth {
        let mut t = Truth::default();
        for r in records(&data.join("reference/hospitals.csv")) {
            t.zones.insert(
                r["hospital_id"].clone(),
                r["time_zone"].parse().expect("zone"),
            );
        }
        for r in records(&data.join("truth/location_stays.csv")) {
            t.stays.push(TStay {
                encounter: r["encounter_id"].clone(),
                patient: r["patient_id"].clone(),
                hospital: r["hospital_id"].clone(),
                dept: r["department_code"].clone(),
                start: parse_ts(&r["start_utc"]),
                end: opt_time(&r["end_utc"]),
            });
        }
        for r in records(&data.join("truth/encounters.csv")) {
            t.encounters.push(TEncounter {
                id: r["encounter_id"].clone(),
                patient: r["patient_id"].clone(),
                hospital: r["hospital_id"].clone(),
                arrival: parse_ts(&r["arrival_utc"]),
                decision: opt_time(&r["admit_decision_utc"]),
                admit: opt_time(&r["admit_utc"]),
                discharge: opt_time(&r["discharge_utc"]),
                cancelled: r["cancelled"] == "true",
                first_department: r["first_department"].clone(),
                last_department: r["last_department"].clone(),
            });
        }
        for r in records(&data.join("truth/patient_history.csv")) {
            t.patients
                .entry(r["patient_id"].clone())
                .or_default()
                .push(TPatient {
                    from: parse_ts(&r["valid_from_utc"]),
                    to: opt_time(&r["valid_to_utc"]),
                    sex: r["sex"].clone(),
                    birth: Some(
                        NaiveDate::parse_from_str(&r["birth_date"], "%Y-%m-%d")
                            .expect("birth date"),
                    ),
                });
        }
        for r in records(&data.join("truth/department_history.csv")) {
            let h = r["hospital_id"].clone();
            let zone = t.zones[&h];
            let day = |s: &str| {
                (!s.is_empty()).then(|| {
                    midnight(
                        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date"),
                        zone,
                    )
                })
            };
            t.depts
                .entry((h, r["department_code"].clone()))
                .or_default()
                .push(TDept {
                    from: day(&r["valid_from"]).expect("valid_from"),
                    to: day(&r["valid_to"]),
                    kind: r["type"].clone(),
                    staffed: r["staffed_beds"].parse().expect("staffed"),
                });
        }
        t.stays
            .sort_by(|a, b| (&a.encounter, a.start).cmp(&(&b.encounter, b.start)));
        for v in t.patients.values_mut() {
            v.sort_by_key(|p| p.from);
        }
        t
    }

    /// Silver's view of the same facts (its stays, encounters and SCD2 dimensions), in the truth's shape:
    /// KPIs computed from it by the independent test code must equal Gold's exactly, whatever defects
    /// the sources had — Gold adds no error of its own.
    pub async fn from_silver(lake: &Lake) -> Truth {
        use patientflow_core::silver;
        let mut t = Truth::default();
        let all = [
            silver::HOSPITALS,
            silver::DIM_DEPARTMENT,
            silver::DIM_PATIENT,
            silver::ENCOUNTERS,
            silver::LOCATION_STAYS,
        ];
        let split = |k: &str| {
            k.split_once('|')
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        for r in rows(
            lake,
            &all,
            "SELECT hospital_id, time_zone FROM silver_hospitals",
        )
        .await
        {
            t.zones.insert(
                text(&r, "hospital_id").unwrap(),
                text(&r, "time_zone").unwrap().parse().expect("zone"),
            );
        }
        for r in rows(lake, &all, "SELECT * FROM silver_location_stays").await {
            t.stays.push(TStay {
                encounter: split(&text(&r, "encounter_key").unwrap()),
                patient: split(&text(&r, "patient_key").unwrap_or_default()),
                hospital: text(&r, "hospital_id").unwrap(),
                dept: text(&r, "department").unwrap_or_default(),
                start: instant(&r, "start_time").unwrap(),
                end: instant(&r, "end_time"),
            });
        }
        for r in rows(lake, &all, "SELECT * FROM silver_encounters").await {
            let status = text(&r, "status").unwrap_or_default();
            let admitted = matches!(status.as_str(), "admitted" | "discharged");
            let arrival = instant(&r, "arrival_time").or(instant(&r, "admit_time"));
            let Some(arrival) = arrival else { continue };
            t.encounters.push(TEncounter {
                id: split(&text(&r, "encounter_key").unwrap()),
                patient: split(&text(&r, "patient_key").unwrap_or_default()),
                hospital: text(&r, "hospital_id").unwrap(),
                arrival,
                decision: None,
                admit: instant(&r, "admit_time").filter(|_| admitted),
                discharge: instant(&r, "discharge_time").filter(|_| status == "discharged"),
                cancelled: !admitted,
                first_department: text(&r, "first_department").unwrap_or_default(),
                last_department: text(&r, "last_department").unwrap_or_default(),
            });
        }
        for r in rows(
            lake,
            &all,
            "SELECT patient_key, valid_from, valid_to, sex, birth_date FROM silver_dim_patient",
        )
        .await
        {
            t.patients
                .entry(split(&text(&r, "patient_key").unwrap()))
                .or_default()
                .push(TPatient {
                    from: instant(&r, "valid_from").unwrap(),
                    to: instant(&r, "valid_to"),
                    sex: text(&r, "sex").unwrap_or_default(),
                    birth: text(&r, "birth_date")
                        .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").expect("birth date")),
                });
        }
        for r in rows(lake, &all, "SELECT * FROM silver_dim_department").await {
            t.depts
                .entry((
                    text(&r, "hospital_id").unwrap(),
                    text(&r, "department_code").unwrap(),
                ))
                .or_default()
                .push(TDept {
                    from: instant(&r, "valid_from").unwrap(),
                    to: instant(&r, "valid_to"),
                    kind: text(&r, "department_type").unwrap_or_default(),
                    staffed: int(&r, "staffed_beds"),
                });
        }
        // A stay without a patient belongs to its encounter's patient (as Gold reads it).
        let owners: HashMap<(String, String), String> = t
            .encounters
            .iter()
            .map(|e| ((e.hospital.clone(), e.id.clone()), e.patient.clone()))
            .collect();
        for st in &mut t.stays {
            if st.patient.is_empty() {
                st.patient = owners
                    .get(&(st.hospital.clone(), st.encounter.clone()))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        t.stays
            .sort_by(|a, b| (&a.encounter, a.start).cmp(&(&b.encounter, b.start)));
        for v in t.patients.values_mut() {
            v.sort_by_key(|p| p.from);
        }
        for v in t.depts.values_mut() {
            v.sort_by_key(|d| d.from);
        }
        t
    }

    /// The patient version valid at `t` (the first one before it starts).
    pub fn patient_at(&self, patient: &str, t: DateTime<Utc>) -> Option<&TPatient> {
        let v = self.patients.get(patient)?;
        v.iter()
            .find(|p| p.from <= t && p.to.is_none_or(|to| t < to))
            .or_else(|| v.first().filter(|f| t < f.from))
    }

    /// The department version valid at `t`.
    pub fn dept_at(&self, hospital: &str, dept: &str, t: DateTime<Utc>) -> Option<&TDept> {
        self.depts
            .get(&(hospital.to_string(), dept.to_string()))?
            .iter()
            .find(|d| d.from <= t && d.to.is_none_or(|to| t < to))
    }

    /// True for an emergency department.
    pub fn is_ed(&self, hospital: &str, dept: &str) -> bool {
        self.depts
            .get(&(hospital.to_string(), dept.to_string()))
            .and_then(|v| v.first())
            .is_some_and(|d| d.kind == "Emergency")
    }
}

/// Completed years at the UTC date of `t`.
pub fn age(birth: NaiveDate, t: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    let d = t.date_naive();
    let mut a = d.year() - birth.year();
    if (d.month(), d.day()) < (birth.month(), birth.day()) {
        a -= 1;
    }
    a
}

/// Age band label (0–17, 18–44, 45–64, 65–84, 85+).
pub fn band(age: i32) -> &'static str {
    match age {
        a if a < 0 => "unknown",
        a if a < 18 => "0-17",
        a if a < 45 => "18-44",
        a if a < 65 => "45-64",
        a if a < 85 => "65-84",
        _ => "85+",
    }
}

/// Sex group of a code.
pub fn sex_group(code: &str) -> &'static str {
    match code {
        "F" => "female",
        "M" => "male",
        "O" | "A" | "N" => "other",
        _ => "unknown",
    }
}

/// Linear-interpolation percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The silver key of a truth id (`MHA01-V0000001` → `MHA01|MHA01-V0000001`).
pub fn key(hospital: &str, id: &str) -> String {
    format!("{hospital}|{id}")
}
