//! Gold: the star schema and KPI marts over Silver (docs/data-model.md § Gold, docs/kpis.md).
//!
//! A refresh runs, in this order (each write one Delta commit carrying the Silver versions it reflects
//! as `src:<silver table>` application-transaction markers):
//!
//! 1. **what changed** — full rebuild (`--full`, first run, a changed department or hospital, census
//!    coverage that cannot be extended) or incremental: the encounters Silver rebuilt since Gold saw them
//!    (their `silver_run_id` differs from the one in `fact_encounter`, see [`changes`]) plus every
//!    encounter of a patient whose SCD2 history changed;
//! 2. **facts** of those encounters, joined to the dimension versions valid at the event time;
//! 3. **census windows** — per hospital, the hours covered by the old and new stays of the touched
//!    encounters, plus the hours "now" advanced by — recomputed from every stay overlapping them;
//! 4. writes: `fact_census_hourly`, `fact_location_stay`, `fact_encounter` (the commit that marks the
//!    encounters done), `dim_patient`, then the small dimensions and every KPI table (rebuilt whole from
//!    the facts).
//!
//! Because step 1 compares contents, a run that stops between two commits leaves differences the next
//! run finds again: it redoes exactly the unfinished work. A full and an incremental refresh produce the
//! same tables (tested in tests/gold_incremental.rs).
//!
//! "Now" (for current occupancy and current length of stay) is the latest event time in Silver, or the
//! `as_of` given — never the wall clock.

pub mod census;
pub mod changes;
pub mod dims;
pub mod facts;
pub mod fhir;
pub mod kpis;
pub mod model;
pub mod time;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::bronze;
use crate::ops::metrics::StepClock;
use crate::pipeline::{RefreshOptions, StageReport};
use crate::silver;
use crate::storage::columns::{strings, timestamps};
use crate::storage::{checkpoint_id, CommitMarker, Lake, Layer, TableRef};
use crate::Result;
use census::{CensusRows, CensusStay, Window};
use model::{Departments, Hospitals};
use time::{hour_ceil, hour_floor, HOUR_US};

/// Hospitals.
pub const DIM_HOSPITAL: TableRef = TableRef::new(Layer::Gold, "dim_hospital");
/// Department versions (SCD2).
pub const DIM_DEPARTMENT: TableRef = TableRef::new(Layer::Gold, "dim_department");
/// Patient versions (SCD2).
pub const DIM_PATIENT: TableRef = TableRef::new(Layer::Gold, "dim_patient");
/// Calendar.
pub const DIM_DATE: TableRef = TableRef::new(Layer::Gold, "dim_date");
/// Hours of the day.
pub const DIM_TIME: TableRef = TableRef::new(Layer::Gold, "dim_time");
/// One row per encounter.
pub const FACT_ENCOUNTER: TableRef = TableRef::new(Layer::Gold, "fact_encounter");
/// One row per location stay.
pub const FACT_LOCATION_STAY: TableRef = TableRef::new(Layer::Gold, "fact_location_stay");
/// One row per hospital, department and hour.
pub const FACT_CENSUS_HOURLY: TableRef = TableRef::new(Layer::Gold, "fact_census_hourly");

/// Every Gold table: dimensions, facts, KPI marts.
pub const TABLES: [TableRef; 19] = [
    DIM_HOSPITAL,
    DIM_DEPARTMENT,
    DIM_PATIENT,
    DIM_DATE,
    DIM_TIME,
    FACT_ENCOUNTER,
    FACT_LOCATION_STAY,
    FACT_CENSUS_HOURLY,
    kpis::TABLES[0],
    kpis::TABLES[1],
    kpis::TABLES[2],
    kpis::TABLES[3],
    kpis::TABLES[4],
    kpis::TABLES[5],
    kpis::TABLES[6],
    kpis::TABLES[7],
    kpis::TABLES[8],
    kpis::TABLES[9],
    kpis::TABLES[10],
];

/// The Silver tables Gold reads.
pub const INPUTS: [TableRef; 5] = [
    silver::HOSPITALS,
    silver::DIM_DEPARTMENT,
    silver::DIM_PATIENT,
    silver::ENCOUNTERS,
    silver::LOCATION_STAYS,
];

/// Partition column of the large tables (facts and the patient dimension): one folder per hospital, which
/// keeps incremental rewrites and hospital-scoped queries to one hospital's files.
const PARTITION: &[&str] = &["hospital_id"];

/// Above this many touched encounters an incremental refresh rebuilds everything.
const MAX_TOUCHED: usize = 50_000;

/// Runs a Gold refresh with "now" = the latest event time in Silver.
pub async fn refresh(lake: &Lake, options: &RefreshOptions) -> Result<StageReport> {
    refresh_as_of(lake, options, None).await
}

/// Runs a Gold refresh; `as_of` overrides "now" for the current-state KPIs.
pub async fn refresh_as_of(
    lake: &Lake,
    options: &RefreshOptions,
    as_of: Option<DateTime<Utc>>,
) -> Result<StageReport> {
    let run_id = bronze::new_run_id("gold");
    let started_at = Utc::now();
    let mut clock = StepClock::new();
    let report =
        |status: &str, details: serde_json::Value, rows_in: u64, rows_out: u64| StageReport {
            stage: "gold".into(),
            run_id: run_id.clone(),
            trigger: options.trigger.clone(),
            started_at,
            finished_at: Utc::now(),
            status: status.into(),
            rows_in,
            rows_out,
            rows_quarantined: 0,
            error: None,
            details,
        };

    let mut versions = BTreeMap::new();
    for t in INPUTS {
        versions.insert(t, lake.open_table(t).await?.and_then(|d| d.version()));
    }
    if let Some((t, _)) = versions.iter().find(|(_, v)| v.is_none()) {
        return Ok(report(
            "skipped",
            json!({"reason": format!("{t} does not exist yet: run the Silver refresh first")}),
            0,
            0,
        ));
    }
    if let Some(reason) = silver_in_progress(lake).await? {
        return Ok(report("skipped", json!({ "reason": reason }), 0, 0));
    }
    let markers: Vec<CommitMarker> = versions
        .iter()
        .map(|(t, v)| CommitMarker {
            app_id: checkpoint_id(*t),
            version: v.map(|x| x as i64).unwrap_or(-1),
        })
        .collect();

    let bounds = silver_bounds(lake).await?;
    let Some(data_as_of) = bounds.as_of else {
        return Ok(report(
            "skipped",
            json!({"reason": "Silver has no encounters yet"}),
            0,
            0,
        ));
    };
    let as_of = as_of.map(time::micros).unwrap_or(data_as_of);
    let now_hour = hour_floor(as_of);

    // Nothing new: the last KPI table already reflects these Silver versions and this "now".
    if !options.full && up_to_date(lake, &markers, as_of).await? {
        return Ok(report(
            "skipped",
            json!({"reason": "nothing new in Silver", "as_of": time::instant(as_of)}),
            0,
            0,
        ));
    }

    clock.lap("plan_inputs");
    let hospitals = model::load_hospitals(lake).await?;
    let departments = model::load_departments(lake).await?;
    let (codes, first_hour) = census_layout(lake, &departments).await?;
    clock.lap("plan_layout");

    let mut plan = Plan::default();
    let mut full = options.full
        || lake.open_table(FACT_ENCOUNTER).await?.is_none()
        || lake.open_table(DIM_PATIENT).await?.is_none();
    if !full {
        // A patient attribute widened in Silver (long → double, date → timestamp) cannot be merged
        // into Gold's narrower column: rebuild whole.
        let silver_types = silver::schema_evolution::table_types(lake, silver::DIM_PATIENT).await?;
        let gold_types = silver::schema_evolution::table_types(lake, DIM_PATIENT).await?;
        if let Some(column) = gold_types
            .iter()
            .find(|(c, t)| silver_types.get(*c).is_some_and(|s| s != *t))
            .map(|(c, _)| c)
        {
            plan.reason = format!("{column} widened in {}", silver::DIM_PATIENT.sql_name());
            full = true;
        }
    }
    if !full {
        for (s, g, k) in [
            (silver::DIM_DEPARTMENT, DIM_DEPARTMENT, "department_key"),
            (silver::HOSPITALS, DIM_HOSPITAL, "hospital_id"),
        ] {
            if lake.open_table(g).await?.is_none()
                || !changes::changed_keys(lake, s, g, k).await?.is_empty()
            {
                plan.reason = format!("{s} changed");
                full = true;
            }
        }
    }
    clock.lap("plan_reference_changes");
    let coverage = if full {
        BTreeMap::new()
    } else {
        changes::census_coverage(lake, FACT_CENSUS_HOURLY).await?
    };
    if !full {
        if let Some(reason) = coverage_breaks(&coverage, &codes, &first_hour, now_hour) {
            plan.reason = reason;
            full = true;
        }
    }
    clock.lap("plan_coverage");
    if !full {
        let changed = changes::changed_patients(lake, silver::DIM_PATIENT, DIM_PATIENT).await?;
        clock.lap("plan_changed_patients");
        let mut touched =
            changes::touched_encounters(lake, silver::ENCOUNTERS, FACT_ENCOUNTER).await?;
        touched.extend(
            changes::encounters_of(lake, &changed, silver::ENCOUNTERS, FACT_ENCOUNTER).await?,
        );
        if touched.len() > MAX_TOUCHED {
            plan.reason = format!("{} encounters touched", touched.len());
            full = true;
        } else {
            plan.touched = touched;
            plan.changed_patients = changed;
        }
    }
    plan.full = full;
    clock.lap("plan_touched_encounters");

    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    let (windows, rows_in) = if full {
        build_full(
            lake,
            &hospitals,
            &departments,
            &codes,
            &first_hour,
            now_hour,
            &markers,
            &mut written,
        )
        .await?
    } else {
        build_incremental(
            lake,
            &plan,
            &hospitals,
            &departments,
            &codes,
            &first_hour,
            &coverage,
            now_hour,
            &markers,
            &mut written,
            &mut clock,
        )
        .await?
    };

    if full {
        clock.lap("facts_and_census");
    }

    // Small dimensions: rewritten whole every run.
    let batch = dims::hospital_batch(&hospitals)?;
    written.insert(DIM_HOSPITAL.sql_name(), batch.num_rows());
    write::overwrite(lake, DIM_HOSPITAL, vec![batch], &[], &markers).await?;
    let batches = dims::department_batches(lake).await?;
    if !batches.is_empty() {
        written.insert(
            DIM_DEPARTMENT.sql_name(),
            batches.iter().map(|b| b.num_rows()).sum(),
        );
        write::overwrite(lake, DIM_DEPARTMENT, batches, &[], &markers).await?;
    }
    let day = |t: i64| time::instant(t).date_naive();
    let first_day = day(bounds.first.unwrap_or(as_of))
        .pred_opt()
        .unwrap_or_else(|| day(as_of));
    let last_day = day(as_of.max(data_as_of))
        .succ_opt()
        .unwrap_or_else(|| day(as_of));
    let batch = dims::date_batch(first_day, last_day)?;
    written.insert(DIM_DATE.sql_name(), batch.num_rows());
    write::overwrite(lake, DIM_DATE, vec![batch], &[], &markers).await?;
    write::overwrite(lake, DIM_TIME, vec![dims::time_batch()?], &[], &markers).await?;

    clock.lap("dimensions");
    let inputs = kpis::load(lake, as_of, hospitals, departments).await?;
    clock.lap("kpi_inputs");
    for (t, n) in kpis::refresh(lake, &inputs, &markers).await? {
        written.insert(t.sql_name(), n);
    }
    clock.lap("kpi_tables");

    let rows_out = written.values().map(|n| *n as u64).sum();
    let details = json!({
        "mode": if full { "full" } else { "incremental" },
        "full_reason": (!plan.reason.is_empty()).then_some(plan.reason.clone()),
        "as_of": time::instant(as_of),
        "touched_encounters": plan.touched.len(),
        "changed_patients": plan.changed_patients.len(),
        "census_windows": windows,
        "rows_written": written,
        "step_seconds": clock.to_json(),
        "silver_versions": versions.iter().map(|(t, v)| (t.sql_name(), *v)).collect::<BTreeMap<_, _>>(),
    });
    Ok(report("succeeded", details, rows_in, rows_out))
}

#[derive(Debug, Default)]
struct Plan {
    full: bool,
    reason: String,
    touched: BTreeSet<String>,
    changed_patients: BTreeSet<String>,
}

/// Silver writes encounters and stays in two commits (and the patient dimension after them): when
/// their checkpoints disagree, a Silver refresh is under way or was interrupted.
async fn silver_in_progress(lake: &Lake) -> Result<Option<String>> {
    for input in [silver::ADT_EVENTS, silver::EHR_ENCOUNTERS] {
        let e = lake.checkpoint(silver::ENCOUNTERS, input).await?;
        let s = lake.checkpoint(silver::LOCATION_STAYS, input).await?;
        if e != s {
            return Ok(Some(format!(
                "Silver is mid-refresh ({} and {} reflect different versions of {input}); run the Silver refresh, then retry",
                silver::ENCOUNTERS,
                silver::LOCATION_STAYS
            )));
        }
    }
    Ok(None)
}

#[derive(Debug, Default)]
struct Bounds {
    as_of: Option<i64>,
    first: Option<i64>,
}

/// The latest event time in Silver ("now") and the earliest time Gold must cover.
async fn silver_bounds(lake: &Lake) -> Result<Bounds> {
    let mut b = Bounds::default();
    let mut take = |v: Option<DateTime<Utc>>, latest: bool| {
        if let Some(t) = v.map(time::micros) {
            if latest {
                b.as_of = Some(b.as_of.map_or(t, |x| x.max(t)));
            } else {
                b.first = Some(b.first.map_or(t, |x| x.min(t)));
            }
        }
    };
    let sql = "SELECT MAX(last_event_time) AS a, MAX(arrival_time) AS b, MAX(admit_time) AS c, MAX(discharge_time) AS d, \
               MIN(arrival_time) AS e FROM silver_encounters";
    for batch in lake.sql(&[silver::ENCOUNTERS], sql).await? {
        for c in ["a", "b", "c", "d"] {
            take(timestamps(&batch, c)?.first().copied().flatten(), true);
        }
        take(timestamps(&batch, "e")?.first().copied().flatten(), false);
    }
    let sql = "SELECT MAX(start_time) AS a, MAX(end_time) AS b, MIN(start_time) AS e FROM silver_location_stays";
    for batch in lake.sql(&[silver::LOCATION_STAYS], sql).await? {
        for c in ["a", "b"] {
            take(timestamps(&batch, c)?.first().copied().flatten(), true);
        }
        take(timestamps(&batch, "e")?.first().copied().flatten(), false);
    }
    Ok(b)
}

/// True when the last KPI table reflects `markers` and was taken at `as_of`.
async fn up_to_date(lake: &Lake, markers: &[CommitMarker], as_of: i64) -> Result<bool> {
    let last = kpis::TABLES[kpis::TABLES.len() - 1];
    let Some(table) = lake.open_table(last).await? else {
        return Ok(false);
    };
    for m in markers {
        if lake.marker_version(&table, &m.app_id).await? != Some(m.version) {
            return Ok(false);
        }
    }
    if lake
        .open_table(kpis::occupancy::CURRENT_HOSPITAL)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let sql = format!(
        "SELECT MAX(as_of) AS a FROM {}",
        kpis::occupancy::CURRENT_HOSPITAL.sql_name()
    );
    for b in lake.sql(&[kpis::occupancy::CURRENT_HOSPITAL], &sql).await? {
        if let Some(Some(t)) = timestamps(&b, "a")?.first() {
            return Ok(time::micros(*t) == as_of);
        }
    }
    Ok(false)
}

/// Departments per hospital (every department of the dimension and every department a stay names) and
/// each hospital's first census hour (the hour of its earliest stay).
async fn census_layout(
    lake: &Lake,
    departments: &Departments,
) -> Result<(BTreeMap<String, BTreeSet<String>>, BTreeMap<String, i64>)> {
    let mut codes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (h, c) in departments.0.keys() {
        codes.entry(h.clone()).or_default().insert(c.clone());
    }
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    let sql = "SELECT hospital_id, department, MIN(start_time) AS first FROM silver_location_stays GROUP BY 1, 2";
    for b in lake.sql(&[silver::LOCATION_STAYS], sql).await? {
        let h = strings(&b, "hospital_id")?;
        let d = strings(&b, "department")?;
        let f = timestamps(&b, "first")?;
        for i in 0..b.num_rows() {
            let (Some(h), Some(f)) = (h[i].clone(), f[i]) else {
                continue;
            };
            let hour = hour_floor(time::micros(f));
            let e = first.entry(h.clone()).or_insert(hour);
            *e = (*e).min(hour);
            if let Some(d) = d[i].clone() {
                codes.entry(h).or_default().insert(d);
            }
        }
    }
    codes.retain(|h, _| first.contains_key(h));
    Ok((codes, first))
}

/// Why the census already written cannot simply be extended (then Gold rebuilds it whole).
fn coverage_breaks(
    coverage: &BTreeMap<(String, String), (i64, i64)>,
    codes: &BTreeMap<String, BTreeSet<String>>,
    first_hour: &BTreeMap<String, i64>,
    now_hour: i64,
) -> Option<String> {
    let mut old: BTreeMap<&str, (BTreeSet<&str>, i64, i64)> = BTreeMap::new();
    for ((h, d), (lo, hi)) in coverage {
        let e = old.entry(h.as_str()).or_insert((BTreeSet::new(), *lo, *hi));
        e.0.insert(d.as_str());
        e.1 = e.1.min(*lo);
        e.2 = e.2.max(*hi);
    }
    for (h, (depts, lo, hi)) in &old {
        let Some(new_codes) = codes.get(*h) else {
            return Some(format!("hospital {h} has no stays any more"));
        };
        if new_codes
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            != *depts
        {
            return Some(format!("the departments of {h} changed"));
        }
        if first_hour.get(*h).is_some_and(|f| f > lo) {
            return Some(format!("the first stay of {h} moved later"));
        }
        if *hi > now_hour {
            return Some("\"now\" moved back".into());
        }
    }
    None
}

fn windows_json(windows: &BTreeMap<String, Vec<Window>>) -> serde_json::Value {
    windows
        .iter()
        .map(|(h, ws)| {
            let list: Vec<serde_json::Value> = ws
                .iter()
                .map(|w| json!({"from": time::instant(w.first * HOUR_US), "to": time::instant(w.last * HOUR_US), "hours": w.last - w.first + 1}))
                .collect();
            (h.clone(), serde_json::Value::Array(list))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Rebuilds every fact and the patient dimension.
#[allow(clippy::too_many_arguments)]
async fn build_full(
    lake: &Lake,
    hospitals: &Hospitals,
    departments: &Departments,
    codes: &BTreeMap<String, BTreeSet<String>>,
    first_hour: &BTreeMap<String, i64>,
    now_hour: i64,
    markers: &[CommitMarker],
    written: &mut BTreeMap<String, usize>,
) -> Result<(serde_json::Value, u64)> {
    let encounters = model::load_encounters(lake, None).await?;
    let stays = model::load_stays(lake, None).await?;
    let patients = model::load_patients(lake, None).await?;
    let mut enc_facts = Vec::with_capacity(encounters.len());
    let mut stay_facts = Vec::with_capacity(encounters.len() * 2);
    for e in &encounters {
        let s = stays.get(&e.key).map(Vec::as_slice).unwrap_or(&[]);
        let (ef, sf) = facts::build(e, s, hospitals, departments, &patients);
        enc_facts.push(ef);
        stay_facts.extend(sf);
    }
    let census_stays: Vec<CensusStay> = stay_facts.iter().map(CensusStay::from).collect();
    let by_hospital = census::by_hospital(&census_stays);
    let mut rows = CensusRows::default();
    let mut windows: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    for (h, first) in first_hour {
        let w = Window {
            first: *first,
            last: now_hour,
        };
        let empty = Vec::new();
        let hs = by_hospital.get(h.as_str()).unwrap_or(&empty);
        census::compute(
            h,
            hospitals.zone(h),
            w,
            codes.get(h).unwrap_or(&BTreeSet::new()),
            hs,
            &patients,
            departments,
            &mut rows,
        );
        windows.entry(h.clone()).or_default().push(w);
    }
    written.insert(FACT_CENSUS_HOURLY.sql_name(), rows.len());
    write::overwrite(
        lake,
        FACT_CENSUS_HOURLY,
        vec![rows.batch()?],
        PARTITION,
        markers,
    )
    .await?;
    written.insert(FACT_LOCATION_STAY.sql_name(), stay_facts.len());
    write::overwrite(
        lake,
        FACT_LOCATION_STAY,
        vec![facts::stay_batch(&stay_facts)?],
        PARTITION,
        markers,
    )
    .await?;
    written.insert(FACT_ENCOUNTER.sql_name(), enc_facts.len());
    write::overwrite(
        lake,
        FACT_ENCOUNTER,
        vec![facts::encounter_batch(&enc_facts)?],
        PARTITION,
        markers,
    )
    .await?;
    let batches = dims::patient_batches(lake, None).await?;
    let batches = if batches.is_empty() {
        dims::patient_schema(lake).await?.into_iter().collect()
    } else {
        batches
    };
    if !batches.is_empty() {
        written.insert(
            DIM_PATIENT.sql_name(),
            batches.iter().map(|b| b.num_rows()).sum(),
        );
        write::overwrite(lake, DIM_PATIENT, batches, PARTITION, markers).await?;
    }
    Ok((
        windows_json(&windows),
        (encounters.len() + stay_facts.len()) as u64,
    ))
}

/// Merges overlapping or adjacent windows.
fn merge(mut ws: Vec<Window>) -> Vec<Window> {
    ws.sort_by_key(|w| w.first);
    let mut out: Vec<Window> = Vec::new();
    for w in ws {
        match out.last_mut() {
            Some(last) if w.first <= last.last + 1 => last.last = last.last.max(w.last),
            _ => out.push(w),
        }
    }
    out
}

fn ts_literal(us: i64) -> String {
    format!("arrow_cast({us}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// Recomputes the touched encounters, the census hours they and "now" affect, and the changed patients.
#[allow(clippy::too_many_arguments)]
async fn build_incremental(
    lake: &Lake,
    plan: &Plan,
    hospitals: &Hospitals,
    departments: &Departments,
    codes: &BTreeMap<String, BTreeSet<String>>,
    first_hour: &BTreeMap<String, i64>,
    coverage: &BTreeMap<(String, String), (i64, i64)>,
    now_hour: i64,
    markers: &[CommitMarker],
    written: &mut BTreeMap<String, usize>,
    clock: &mut StepClock,
) -> Result<(serde_json::Value, u64)> {
    let touched = &plan.touched;
    let encounters = model::load_encounters(lake, Some(touched)).await?;
    let stays = model::load_stays(lake, Some(touched)).await?;
    let mut patient_keys: BTreeSet<String> = encounters
        .iter()
        .filter_map(|e| e.patient_key.clone())
        .collect();
    patient_keys.extend(
        stays
            .values()
            .flatten()
            .filter_map(|s| s.patient_key.clone()),
    );
    let patients = model::load_patients(lake, Some(&patient_keys)).await?;
    let mut enc_facts = Vec::with_capacity(encounters.len());
    let mut stay_facts = Vec::new();
    for e in &encounters {
        let s = stays.get(&e.key).map(Vec::as_slice).unwrap_or(&[]);
        let (ef, sf) = facts::build(e, s, hospitals, departments, &patients);
        enc_facts.push(ef);
        stay_facts.extend(sf);
    }
    clock.lap("touched_facts");

    // Hours to recompute, per hospital.
    let mut windows: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    let mut add = |h: &str, from: i64, to: i64| {
        let lo = from.max(first_hour.get(h).copied().unwrap_or(i64::MAX));
        let hi = to.min(now_hour);
        if lo <= hi {
            windows.entry(h.to_string()).or_default().push(Window {
                first: lo,
                last: hi,
            });
        }
    };
    // Per touched encounter, the hours from the first instant at which its stays (old, in Gold, and
    // new) differ — a discharge added to an open stay changes the census from the discharge on, not
    // from the admission — and, for a patient whose sex or birth date history changed, the hours of its
    // stays from that change on.
    let new_stays: Vec<CensusStay> = stay_facts.iter().map(CensusStay::from).collect();
    let old_stays = if touched.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT encounter_key, hospital_id, department_code, patient_key, start_time, end_time, stay_seq, \
             is_admission_stay, end_reason, prev_department, next_department, boarding_start FROM {} WHERE {}",
            FACT_LOCATION_STAY.sql_name(),
            write::in_list("encounter_key", touched)
        );
        census_stays(lake, &sql).await?
    };
    let changed_from = patient_change_points(lake, &plan.changed_patients, &patients).await?;
    let mut pairs: BTreeMap<&str, (Vec<&CensusStay>, Vec<&CensusStay>)> = BTreeMap::new();
    for s in &old_stays {
        pairs.entry(&s.encounter_key).or_default().0.push(s);
    }
    for s in &new_stays {
        pairs.entry(&s.encounter_key).or_default().1.push(s);
    }
    for (old, new) in pairs.values() {
        let Some(h) = old.first().or(new.first()).map(|s| s.hospital_id.as_str()) else {
            continue;
        };
        if let Some((from, to)) = stays_difference(old, new) {
            add(h, hour_floor(from), to.map_or(i64::MAX, hour_ceil));
        }
        for s in old.iter().chain(new.iter()) {
            if let Some(tp) = s.patient_key.as_ref().and_then(|p| changed_from.get(p)) {
                if s.end.is_none_or(|e| e > *tp) {
                    add(
                        h,
                        hour_floor(s.start.max(*tp)),
                        s.end.map_or(i64::MAX, hour_ceil),
                    );
                }
            }
        }
    }
    let mut old: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for ((h, _), (lo, hi)) in coverage {
        let e = old.entry(h.as_str()).or_insert((*lo, *hi));
        e.0 = e.0.min(*lo);
        e.1 = e.1.max(*hi);
    }
    for (h, first) in first_hour {
        match old.get(h.as_str()) {
            // "Now" advanced: new hours for every department; the first stay moved earlier: new hours before.
            Some((lo, hi)) => {
                add(h, hi + 1, now_hour);
                add(h, *first, lo - 1);
            }
            None => add(h, *first, now_hour),
        }
    }
    let windows: BTreeMap<String, Vec<Window>> =
        windows.into_iter().map(|(h, ws)| (h, merge(ws))).collect();
    clock.lap("census_windows");

    // Census of those windows, from every stay overlapping them: Gold's stays of untouched encounters
    // and the new stays of the touched ones.
    let mut rows = CensusRows::default();
    let mut predicates = Vec::new();
    for (h, ws) in &windows {
        let overlap: Vec<String> = ws
            .iter()
            .map(|w| {
                format!(
                    "(start_time < {} AND (end_time IS NULL OR end_time >= {}))",
                    ts_literal((w.last + 1) * HOUR_US),
                    ts_literal(w.first * HOUR_US)
                )
            })
            .collect();
        let sql = format!(
            "SELECT encounter_key, hospital_id, department_code, patient_key, start_time, end_time, stay_seq, is_admission_stay, \
             end_reason, prev_department, next_department, boarding_start FROM {} WHERE hospital_id = {} AND ({})",
            FACT_LOCATION_STAY.sql_name(),
            write::quote(h),
            overlap.join(" OR ")
        );
        let mut hospital_stays: Vec<CensusStay> = census_stays(lake, &sql)
            .await?
            .into_iter()
            .filter(|s| !touched.contains(&s.encounter_key))
            .collect();
        hospital_stays.extend(new_stays.iter().filter(|s| &s.hospital_id == h).cloned());
        let keys: BTreeSet<String> = hospital_stays
            .iter()
            .filter_map(|s| s.patient_key.clone())
            .collect();
        let window_patients = model::load_patients(lake, Some(&keys)).await?;
        let refs: Vec<&CensusStay> = hospital_stays.iter().collect();
        let empty = BTreeSet::new();
        for w in ws {
            census::compute(
                h,
                hospitals.zone(h),
                *w,
                codes.get(h).unwrap_or(&empty),
                &refs,
                &window_patients,
                departments,
                &mut rows,
            );
            predicates.push(format!(
                "(hospital_id = {} AND hour_start >= {} AND hour_start <= {})",
                write::quote(h),
                ts_literal(w.first * HOUR_US),
                ts_literal(w.last * HOUR_US)
            ));
        }
    }
    clock.lap("census_rows");
    if !predicates.is_empty() {
        written.insert(FACT_CENSUS_HOURLY.sql_name(), rows.len());
        write::replace(
            lake,
            FACT_CENSUS_HOURLY,
            rows.batch()?,
            &predicates.join(" OR "),
            markers,
        )
        .await?;
    }

    clock.lap("write_census");
    if !touched.is_empty() {
        let hospitals_touched: BTreeSet<String> = touched
            .iter()
            .map(|k| k.split_once('|').map_or(k.as_str(), |(h, _)| h).to_string())
            .collect();
        let predicate = format!(
            "{} AND {}",
            write::in_list("hospital_id", &hospitals_touched),
            write::in_list("encounter_key", touched)
        );
        written.insert(FACT_LOCATION_STAY.sql_name(), stay_facts.len());
        write::replace(
            lake,
            FACT_LOCATION_STAY,
            facts::stay_batch(&stay_facts)?,
            &predicate,
            markers,
        )
        .await?;
        written.insert(FACT_ENCOUNTER.sql_name(), enc_facts.len());
        write::replace(
            lake,
            FACT_ENCOUNTER,
            facts::encounter_batch(&enc_facts)?,
            &predicate,
            markers,
        )
        .await?;
    }
    clock.lap("write_facts");
    if !plan.changed_patients.is_empty() {
        let batches = dims::patient_batches(lake, Some(&plan.changed_patients)).await?;
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        written.insert(DIM_PATIENT.sql_name(), n);
        let predicate = write::in_list("patient_key", &plan.changed_patients);
        let batch = match batches.len() {
            0 => dims::patient_schema(lake).await?,
            1 => batches.into_iter().next(),
            _ => Some(
                deltalake::arrow::compute::concat_batches(&batches[0].schema(), &batches).map_err(
                    |e| crate::Error::Storage(format!("internal: dim_patient batches: {e}")),
                )?,
            ),
        };
        if let Some(batch) = batch {
            write::replace(lake, DIM_PATIENT, batch, &predicate, markers).await?;
        }
    }
    clock.lap("write_dim_patient");
    Ok((
        windows_json(&windows),
        (encounters.len() + stay_facts.len()) as u64,
    ))
}

/// The first instant at which two versions of an encounter's stays differ for the census, and the end
/// of what may differ after it (`None`: open); `None` when they do not differ.
fn stays_difference(old: &[&CensusStay], new: &[&CensusStay]) -> Option<(i64, Option<i64>)> {
    let i = old
        .iter()
        .zip(new.iter())
        .take_while(|(o, n)| o == n)
        .count();
    if i == old.len() && i == new.len() {
        return None;
    }
    let from = match (old.get(i), new.get(i)) {
        // Same stay start, department and neighbours before it: it differs from its end (or boarding) on.
        (Some(o), Some(n))
            if o.department == n.department
                && o.start == n.start
                && o.stay_seq == n.stay_seq
                && o.is_admission_stay == n.is_admission_stay
                && o.prev_department == n.prev_department
                && o.patient_key == n.patient_key =>
        {
            [o.end, n.end, o.boarding_start, n.boarding_start]
                .into_iter()
                .flatten()
                .min()
        }
        (o, n) => [o.map(|s| s.start), n.map(|s| s.start)]
            .into_iter()
            .flatten()
            .min(),
    };
    let to = old[i..]
        .iter()
        .chain(new[i..].iter())
        .try_fold(i64::MIN, |acc, s| s.end.map(|e| acc.max(e)));
    Some((from.unwrap_or(i64::MAX), to))
}

/// A patient version as the census sees it: valid from, valid to, sex, birth date.
type SexBirthVersion = (i64, Option<i64>, Option<String>, Option<String>);

/// For each patient whose versions changed, the first instant from which the sex or birth date Gold
/// had (`gold_dim_patient`) and Silver now has may differ.
async fn patient_change_points(
    lake: &Lake,
    changed: &BTreeSet<String>,
    new: &model::Patients,
) -> Result<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    if changed.is_empty() || lake.open_table(DIM_PATIENT).await?.is_none() {
        return Ok(out);
    }
    let mut old: std::collections::HashMap<String, Vec<SexBirthVersion>> =
        std::collections::HashMap::new();
    let sql = format!(
        "SELECT patient_key, valid_from, valid_to, sex, CAST(birth_date AS VARCHAR) AS birth FROM {} WHERE {}",
        DIM_PATIENT.sql_name(),
        write::in_list("patient_key", changed)
    );
    for b in lake.sql(&[DIM_PATIENT], &sql).await? {
        let k = strings(&b, "patient_key")?;
        let from = timestamps(&b, "valid_from")?;
        let to = timestamps(&b, "valid_to")?;
        let sex = strings(&b, "sex")?;
        let birth = strings(&b, "birth")?;
        for i in 0..b.num_rows() {
            if let (Some(k), Some(f)) = (k[i].clone(), from[i]) {
                old.entry(k).or_default().push((
                    time::micros(f),
                    to[i].map(time::micros),
                    sex[i].clone(),
                    birth[i].clone(),
                ));
            }
        }
    }
    for key in changed {
        let mut before = old.remove(key).unwrap_or_default();
        before.sort_by_key(|v| v.0);
        let after: Vec<SexBirthVersion> = new
            .0
            .get(key)
            .map(|vs| {
                vs.iter()
                    .map(|v| {
                        (
                            v.from,
                            v.to,
                            v.sex.clone(),
                            v.birth.map(|d| d.format("%Y-%m-%d").to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let i = before
            .iter()
            .zip(after.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let first = [before.get(i).map(|v| v.0), after.get(i).map(|v| v.0)]
            .into_iter()
            .flatten()
            .min();
        // The versions before index i are equal, ends included: the histories agree until then.
        if let Some(t) = first {
            out.insert(key.clone(), t);
        }
    }
    Ok(out)
}

/// Census inputs read back from `fact_location_stay`.
async fn census_stays(lake: &Lake, sql: &str) -> Result<Vec<CensusStay>> {
    use crate::storage::columns::{bools, ints};
    let mut out = Vec::new();
    for b in lake.sql(&[FACT_LOCATION_STAY], sql).await? {
        let key = strings(&b, "encounter_key")?;
        let h = strings(&b, "hospital_id")?;
        let d = strings(&b, "department_code")?;
        let p = strings(&b, "patient_key")?;
        let s = timestamps(&b, "start_time")?;
        let e = timestamps(&b, "end_time")?;
        let seq = ints(&b, "stay_seq")?;
        let adm = bools(&b, "is_admission_stay")?;
        let er = strings(&b, "end_reason")?;
        let pd = strings(&b, "prev_department")?;
        let nd = strings(&b, "next_department")?;
        let bs = timestamps(&b, "boarding_start")?;
        for i in 0..b.num_rows() {
            let (Some(k), Some(h), Some(s)) = (key[i].clone(), h[i].clone(), s[i]) else {
                continue;
            };
            out.push(CensusStay {
                encounter_key: k,
                hospital_id: h,
                department: d[i].clone(),
                patient_key: p[i].clone(),
                start: time::micros(s),
                end: e[i].map(time::micros),
                stay_seq: seq[i].unwrap_or(1),
                is_admission_stay: adm[i].unwrap_or(false),
                end_reason: er[i].clone(),
                prev_department: pd[i].clone(),
                next_department: nd[i].clone(),
                boarding_start: bs[i].map(time::micros),
            });
        }
    }
    // Deterministic order (the sweep is order-independent, but keep runs reproducible).
    out.sort_by(|a, b| (&a.encounter_key, a.stay_seq).cmp(&(&b.encounter_key, b.stay_seq)));
    Ok(out)
}

/// The rows of every Gold table, sorted, as text — for comparing two lakes (full vs incremental).
pub async fn snapshot(lake: &Lake) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        if lake.open_table(t).await?.is_none() {
            continue;
        }
        let batches = lake
            .sql(&[t], &format!("SELECT * FROM {}", t.sql_name()))
            .await?;
        let mut rows: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for b in &batches {
            let mut cols: Vec<(String, Vec<Option<String>>)> = Vec::new();
            for f in b.schema().fields() {
                // Run ids differ between lakes by construction.
                if f.name() == "silver_run_id" {
                    continue;
                }
                cols.push((f.name().clone(), strings(b, f.name())?));
            }
            cols.sort_by(|a, b| a.0.cmp(&b.0));
            names = cols.iter().map(|c| c.0.clone()).collect();
            for i in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|(_, v)| v[i].clone().unwrap_or_else(|| "∅".into()))
                        .collect::<Vec<_>>()
                        .join("|"),
                );
            }
        }
        rows.sort();
        rows.insert(0, names.join("|"));
        out.insert(t.sql_name(), rows);
    }
    Ok(out)
}
