//! KPI marts, one module per KPI (definitions and sources in docs/kpis.md). Each is rebuilt whole from
//! the Gold facts after they are refreshed: the marts are small aggregates, so a full and an incremental
//! refresh give the same tables by construction. Facts are read with DataFusion SQL (filters and
//! projections pushed down to the Delta files); aggregation is done in Rust on integer microseconds,
//! so results do not depend on file or row order.

pub mod admission_wait;
pub mod age_band;
pub mod bottlenecks;
pub mod los;
pub mod midnight_census;
pub mod occupancy;
pub mod sex_distribution;

use std::collections::BTreeSet;

use deltalake::arrow::array::RecordBatch;

use super::model::{load_patients, Departments, Hospitals, Patients};
use super::time::{hour_floor, micros};
use super::{write, FACT_CENSUS_HOURLY, FACT_ENCOUNTER, FACT_LOCATION_STAY};
use crate::storage::columns::{bools, floats, ints, strings, timestamps};
use crate::storage::{CommitMarker, Lake, TableRef};
use crate::Result;

/// An encounter as the KPIs need it (from `fact_encounter`).
#[derive(Debug, Clone)]
pub struct EncRow {
    pub key: String,
    pub hospital_id: String,
    pub patient_key: Option<String>,
    pub admit: Option<i64>,
    pub discharge: Option<i64>,
    pub arrival_month: Option<i32>,
    pub arrival_hour: Option<i32>,
    pub admit_month: Option<i32>,
    pub discharge_month: Option<i32>,
    pub admit_department: Option<String>,
    pub last_department: Option<String>,
    pub age_at_admit: Option<i32>,
    pub is_admitted: bool,
    pub is_open: bool,
    pub wait_minutes: Option<f64>,
    pub los_days: Option<i32>,
}

impl EncRow {
    /// Length of stay in µs for a discharged inpatient.
    pub fn los_us(&self) -> Option<i64> {
        match (self.los_days, self.admit, self.discharge) {
            (Some(_), Some(a), Some(d)) => Some(d - a),
            _ => None,
        }
    }
}

/// A census row as the KPIs need it.
#[derive(Debug, Clone)]
pub struct CensusRow {
    pub hospital_id: String,
    pub department: String,
    pub hour: i64,
    pub date_key: i32,
    pub hour_of_day: i32,
    pub month_key: i32,
    pub staffed: Option<i64>,
    pub occupied: i64,
    pub pct: Option<f64>,
    pub bands: [i64; 6],
    pub ed_boarders: i64,
    pub waiting: i64,
}

/// A stay as the current-occupancy and midnight-census KPIs need it.
#[derive(Debug, Clone)]
pub struct StayRow {
    pub hospital_id: String,
    pub department: String,
    pub patient_key: Option<String>,
    pub start: i64,
    pub end: Option<i64>,
}

/// Everything the KPI builders read.
#[derive(Debug, Default)]
pub struct KpiInputs {
    /// "Now": the instant current KPIs are taken at.
    pub as_of: i64,
    pub hospitals: Hospitals,
    pub departments: Departments,
    pub encounters: Vec<EncRow>,
    pub census: Vec<CensusRow>,
    /// Stays open at `as_of`.
    pub open_stays: Vec<StayRow>,
    /// Closed stays shorter than 25 h (candidates for same-day stays).
    pub short_stays: Vec<StayRow>,
    /// Versions of the patients of `open_stays`.
    pub patients: Patients,
}

/// KPI tables, in the order they are written.
pub const TABLES: [TableRef; 11] = [
    occupancy::CURRENT,
    occupancy::CURRENT_HOSPITAL,
    sex_distribution::TABLE,
    age_band::TABLE,
    los::DEPARTMENT_MONTHLY,
    los::HOSPITAL_MONTHLY,
    los::PATIENT,
    los::CURRENT,
    admission_wait::TABLE,
    bottlenecks::TABLE,
    midnight_census::TABLE,
];

fn us(v: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    v.map(micros)
}

/// Reads the facts the KPIs need. The four reads run as tasks of their own, so on a multi-core
/// machine the conversion of one overlaps the others.
pub async fn load(
    lake: &Lake,
    as_of: i64,
    hospitals: Hospitals,
    departments: Departments,
) -> Result<KpiInputs> {
    let at = format!("arrow_cast({as_of}, 'Timestamp(Microsecond, Some(\"UTC\"))')");
    let open_sql = format!(
        "SELECT hospital_id, department_code, patient_key, start_time, end_time FROM gold_fact_location_stay \
         WHERE department_code IS NOT NULL AND start_time <= {at} AND (end_time IS NULL OR end_time > {at})"
    );
    let short_sql = "SELECT hospital_id, department_code, patient_key, start_time, end_time FROM gold_fact_location_stay \
                     WHERE department_code IS NOT NULL AND end_time IS NOT NULL AND end_time < start_time + INTERVAL '25 hours'";
    let encounters = tokio::spawn(load_encounters(lake.clone()));
    let census = tokio::spawn(load_census(lake.clone()));
    let open_stays = tokio::spawn(stay_rows(lake.clone(), open_sql));
    let short_stays = tokio::spawn(stay_rows(lake.clone(), short_sql.to_string()));
    // Every task is awaited before an error is returned, so none outlives the refresh.
    let (encounters, census, open_stays, short_stays) = (
        encounters.await,
        census.await,
        open_stays.await,
        short_stays.await,
    );
    let mut inputs = KpiInputs {
        as_of,
        hospitals,
        departments,
        encounters: joined(encounters)??,
        census: joined(census)??,
        open_stays: joined(open_stays)??,
        short_stays: joined(short_stays)??,
        ..KpiInputs::default()
    };
    let keys: BTreeSet<String> = inputs
        .open_stays
        .iter()
        .filter_map(|s| s.patient_key.clone())
        .collect();
    inputs.patients = load_patients(lake, Some(&keys)).await?;
    Ok(inputs)
}

/// A finished task's result, or the task's panic as an error.
fn joined<T>(task: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    task.map_err(|e| crate::Error::Storage(format!("internal: a KPI input read failed: {e}")))
}

/// The encounters of `fact_encounter`, by key.
async fn load_encounters(lake: Lake) -> Result<Vec<EncRow>> {
    let mut encounters = Vec::new();
    let sql = "SELECT encounter_key, hospital_id, patient_key, admit_time, discharge_time, arrival_month_key, arrival_hour, \
               admit_month_key, discharge_month_key, admit_department, last_department, age_at_admit, is_admitted, is_open, \
               admission_wait_minutes, los_days FROM gold_fact_encounter";
    for b in lake.sql(&[FACT_ENCOUNTER], sql).await? {
        let key = strings(&b, "encounter_key")?;
        let h = strings(&b, "hospital_id")?;
        let p = strings(&b, "patient_key")?;
        let admit = timestamps(&b, "admit_time")?;
        let dis = timestamps(&b, "discharge_time")?;
        let am = ints(&b, "arrival_month_key")?;
        let ah = ints(&b, "arrival_hour")?;
        let adm = ints(&b, "admit_month_key")?;
        let dm = ints(&b, "discharge_month_key")?;
        let ad = strings(&b, "admit_department")?;
        let ld = strings(&b, "last_department")?;
        let age = ints(&b, "age_at_admit")?;
        let is_adm = bools(&b, "is_admitted")?;
        let open = bools(&b, "is_open")?;
        let wait = floats(&b, "admission_wait_minutes")?;
        let los = ints(&b, "los_days")?;
        for i in 0..b.num_rows() {
            let (Some(k), Some(hid)) = (key[i].clone(), h[i].clone()) else {
                continue;
            };
            encounters.push(EncRow {
                key: k,
                hospital_id: hid,
                patient_key: p[i].clone(),
                admit: us(admit[i]),
                discharge: us(dis[i]),
                arrival_month: am[i].map(|x| x as i32),
                arrival_hour: ah[i].map(|x| x as i32),
                admit_month: adm[i].map(|x| x as i32),
                discharge_month: dm[i].map(|x| x as i32),
                admit_department: ad[i].clone(),
                last_department: ld[i].clone(),
                age_at_admit: age[i].map(|x| x as i32),
                is_admitted: is_adm[i].unwrap_or(false),
                is_open: open[i].unwrap_or(false),
                wait_minutes: wait[i],
                los_days: los[i].map(|x| x as i32),
            });
        }
    }
    encounters.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(encounters)
}

/// The hours of `fact_census_hourly`, by hospital, department and hour.
async fn load_census(lake: Lake) -> Result<Vec<CensusRow>> {
    let mut census = Vec::new();
    let sql = "SELECT hospital_id, department_code, hour_start, date_key, hour_of_day, month_key, staffed_beds, occupied_beds, \
               occupancy_pct, occupied_age_0_17, occupied_age_18_44, occupied_age_45_64, occupied_age_65_84, \
               occupied_age_85_plus, occupied_age_unknown, ed_boarders, boarders_waiting FROM gold_fact_census_hourly";
    for b in lake.sql(&[FACT_CENSUS_HOURLY], sql).await? {
        let h = strings(&b, "hospital_id")?;
        let d = strings(&b, "department_code")?;
        let hour = timestamps(&b, "hour_start")?;
        let dk = ints(&b, "date_key")?;
        let hod = ints(&b, "hour_of_day")?;
        let mk = ints(&b, "month_key")?;
        let st = ints(&b, "staffed_beds")?;
        let occ = ints(&b, "occupied_beds")?;
        let pct = floats(&b, "occupancy_pct")?;
        let bands: Vec<Vec<Option<i64>>> = [
            "occupied_age_0_17",
            "occupied_age_18_44",
            "occupied_age_45_64",
            "occupied_age_65_84",
            "occupied_age_85_plus",
            "occupied_age_unknown",
        ]
        .iter()
        .map(|c| ints(&b, c))
        .collect::<Result<_>>()?;
        let edb = ints(&b, "ed_boarders")?;
        let wait = ints(&b, "boarders_waiting")?;
        for i in 0..b.num_rows() {
            let (Some(hid), Some(dept), Some(t)) = (h[i].clone(), d[i].clone(), us(hour[i])) else {
                continue;
            };
            let mut bb = [0i64; 6];
            for (j, col) in bands.iter().enumerate() {
                bb[j] = col[i].unwrap_or(0);
            }
            census.push(CensusRow {
                hospital_id: hid,
                department: dept,
                hour: hour_floor(t),
                date_key: dk[i].unwrap_or_default() as i32,
                hour_of_day: hod[i].unwrap_or_default() as i32,
                month_key: mk[i].unwrap_or_default() as i32,
                staffed: st[i],
                occupied: occ[i].unwrap_or(0),
                pct: pct[i],
                bands: bb,
                ed_boarders: edb[i].unwrap_or(0),
                waiting: wait[i].unwrap_or(0),
            });
        }
    }
    census.sort_by(|a, b| {
        (&a.hospital_id, &a.department, a.hour).cmp(&(&b.hospital_id, &b.department, b.hour))
    });
    Ok(census)
}

async fn stay_rows(lake: Lake, sql: String) -> Result<Vec<StayRow>> {
    let mut out = Vec::new();
    for b in lake.sql(&[FACT_LOCATION_STAY], &sql).await? {
        let h = strings(&b, "hospital_id")?;
        let d = strings(&b, "department_code")?;
        let p = strings(&b, "patient_key")?;
        let s = timestamps(&b, "start_time")?;
        let e = timestamps(&b, "end_time")?;
        for i in 0..b.num_rows() {
            let (Some(hid), Some(dept), Some(start)) = (h[i].clone(), d[i].clone(), us(s[i]))
            else {
                continue;
            };
            out.push(StayRow {
                hospital_id: hid,
                department: dept,
                patient_key: p[i].clone(),
                start,
                end: us(e[i]),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.hospital_id, &a.department, a.start, &a.patient_key).cmp(&(
            &b.hospital_id,
            &b.department,
            b.start,
            &b.patient_key,
        ))
    });
    Ok(out)
}

/// Builds and writes every KPI table; returns the rows written per table.
pub async fn refresh(
    lake: &Lake,
    inputs: &KpiInputs,
    markers: &[CommitMarker],
) -> Result<Vec<(TableRef, usize)>> {
    let built: Vec<(TableRef, RecordBatch)> = vec![
        (occupancy::CURRENT, occupancy::current(inputs)?),
        (
            occupancy::CURRENT_HOSPITAL,
            occupancy::current_hospital(inputs)?,
        ),
        (sex_distribution::TABLE, sex_distribution::build(inputs)?),
        (age_band::TABLE, age_band::build(inputs)?),
        (los::DEPARTMENT_MONTHLY, los::department_monthly(inputs)?),
        (los::HOSPITAL_MONTHLY, los::hospital_monthly(inputs)?),
        (los::PATIENT, los::per_patient(inputs)?),
        (los::CURRENT, los::current(inputs)?),
        (admission_wait::TABLE, admission_wait::build(inputs)?),
        (bottlenecks::TABLE, bottlenecks::build(inputs)?),
        (midnight_census::TABLE, midnight_census::build(inputs)?),
    ];
    // Eleven independent tables: their writes overlap.
    let writes = built.into_iter().map(|(table, batch)| async move {
        let rows = batch.num_rows();
        write::overwrite(lake, table, vec![batch], &[], markers)
            .await
            .map(|()| (table, rows))
    });
    futures::future::try_join_all(writes).await
}
