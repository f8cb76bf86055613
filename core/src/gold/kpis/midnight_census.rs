//! Midnight census, KH03-style: for each hospital, department and local date D, the beds occupied at the
//! census time closing D (local midnight starting D+1) — the occupied bed-day of D — and the beds
//! available on D (staffed beds of the department version valid at the midnight starting D). Same-day
//! stays (starting after the midnight opening D and ending by the midnight closing it, so never present
//! at a census) are counted beside, so `inpatient_days` = occupied + same-day follows the daily inpatient
//! census rule (10 NYCRR 441.81). Occupancy % of a period = Σ occupied bed-days / Σ available bed-days.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use deltalake::arrow::array::RecordBatch;

use super::KpiInputs;
use crate::gold::time::{date_key, hour_floor, local, local_midnight, month_key, round4};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Midnight census per hospital, department and day.
pub const TABLE: TableRef = TableRef::new(Layer::Gold, "kpi_midnight_census");

/// The `kpi_midnight_census` batch.
pub fn build(inputs: &KpiInputs) -> Result<RecordBatch> {
    // (hospital, department, hour) → (occupied, staffed)
    let mut at: HashMap<(&str, &str, i64), (i64, Option<i64>)> =
        HashMap::with_capacity(inputs.census.len());
    let mut span: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
    for r in &inputs.census {
        at.insert(
            (&r.hospital_id, &r.department, r.hour),
            (r.occupied, r.staffed),
        );
        let e = span
            .entry((&r.hospital_id, &r.department))
            .or_insert((r.hour, r.hour));
        e.0 = e.0.min(r.hour);
        e.1 = e.1.max(r.hour);
    }
    let mut same_day: HashMap<(&str, &str, NaiveDate), i64> = HashMap::new();
    for s in &inputs.short_stays {
        let Some(end) = s.end else { continue };
        let zone = inputs.hospitals.zone(&s.hospital_id);
        let (d, _) = local(s.start, zone);
        let opens = local_midnight(d, zone);
        let closes = local_midnight(d.succ_opt().unwrap_or(d), zone);
        if s.start > opens && end <= closes {
            *same_day
                .entry((&s.hospital_id, &s.department, d))
                .or_default() += 1;
        }
    }
    let mut cols_h = Vec::new();
    let mut cols_d = Vec::new();
    let mut cols_date = Vec::new();
    let mut cols_month = Vec::new();
    let mut occupied = Vec::new();
    let mut available = Vec::new();
    let mut same = Vec::new();
    let mut pct = Vec::new();
    for ((h, d), (first, last)) in span {
        let zone = inputs.hospitals.zone(h);
        let (mut day, _) = local(first * crate::gold::time::HOUR_US, zone);
        while let Some(next) = day.succ_opt() {
            let open_h = hour_floor(local_midnight(day, zone));
            let close_h = hour_floor(local_midnight(next, zone));
            if close_h > last {
                break;
            }
            if open_h >= first {
                let occ = at.get(&(h, d, close_h)).map_or(0, |x| x.0);
                let staffed = at.get(&(h, d, open_h)).and_then(|x| x.1);
                cols_h.push(Some(h.to_string()));
                cols_d.push(Some(d.to_string()));
                cols_date.push(Some(date_key(day)));
                cols_month.push(Some(month_key(day)));
                occupied.push(Some(occ));
                available.push(staffed);
                same.push(Some(same_day.get(&(h, d, day)).copied().unwrap_or(0)));
                pct.push(
                    staffed
                        .filter(|s| *s > 0)
                        .map(|s| round4(occ as f64 * 100.0 / s as f64)),
                );
            }
            day = next;
        }
    }
    let inpatient: Vec<Option<i64>> = occupied
        .iter()
        .zip(&same)
        .map(|(o, s)| Some(o.unwrap_or(0) + s.unwrap_or(0)))
        .collect();
    let mut cols = Columns::new();
    cols.str("hospital_id", cols_h)
        .str("department_code", cols_d)
        .i32("date_key", cols_date)
        .i32("month_key", cols_month)
        .i64("occupied_bed_days", occupied)
        .i64("available_bed_days", available)
        .f64("occupancy_pct", pct)
        .i64("same_day_stays", same)
        .i64("inpatient_days", inpatient);
    cols.finish()
}
