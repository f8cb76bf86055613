//! Age-band KPIs per hospital, department and month (local calendar): admissions (age at admission, to
//! the admitting department), discharges and length of stay (age at admission, discharging department),
//! and occupancy (bed-hours and average occupied beds from the hourly census, age at each hour).
//! Bands: 0–17, 18–44, 45–64, 65–84, 85+, and `unknown` (no usable birth date).

use std::collections::BTreeMap;

use deltalake::arrow::array::RecordBatch;

use super::KpiInputs;
use crate::gold::time::{band_index, round4, AGE_BANDS, AGE_UNKNOWN, HOUR_US};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Age-band KPIs per hospital, department and month.
pub const TABLE: TableRef = TableRef::new(Layer::Gold, "kpi_age_band_monthly");

#[derive(Default, Clone, Copy)]
struct Cell {
    admissions: i64,
    discharges: i64,
    los_us: i64,
    bed_hours: i64,
    hours: i64,
}

fn band(age: Option<i32>) -> usize {
    age.and_then(band_index).unwrap_or(5)
}

/// The `kpi_age_band_monthly` batch.
pub fn build(inputs: &KpiInputs) -> Result<RecordBatch> {
    let mut cells: BTreeMap<(String, String, i32, usize), Cell> = BTreeMap::new();
    for e in &inputs.encounters {
        if e.is_admitted {
            if let (Some(d), Some(m)) = (&e.admit_department, e.admit_month) {
                cells
                    .entry((e.hospital_id.clone(), d.clone(), m, band(e.age_at_admit)))
                    .or_default()
                    .admissions += 1;
            }
        }
        if let (Some(los), Some(d), Some(m)) = (e.los_us(), &e.last_department, e.discharge_month) {
            let c = cells
                .entry((e.hospital_id.clone(), d.clone(), m, band(e.age_at_admit)))
                .or_default();
            c.discharges += 1;
            c.los_us += los;
        }
    }
    for r in &inputs.census {
        for (b, n) in r.bands.iter().enumerate() {
            let c = cells
                .entry((r.hospital_id.clone(), r.department.clone(), r.month_key, b))
                .or_default();
            c.bed_hours += n;
            c.hours += 1;
        }
    }
    let rows: Vec<_> = cells.into_iter().collect();
    let mut cols = Columns::new();
    cols.str(
        "hospital_id",
        rows.iter().map(|((h, ..), _)| Some(h.clone())).collect(),
    )
    .str(
        "department_code",
        rows.iter().map(|((_, d, ..), _)| Some(d.clone())).collect(),
    )
    .i32(
        "month_key",
        rows.iter().map(|((_, _, m, _), _)| Some(*m)).collect(),
    )
    .str(
        "age_band",
        rows.iter()
            .map(|((.., b), _)| {
                Some(
                    AGE_BANDS
                        .get(*b)
                        .copied()
                        .unwrap_or(AGE_UNKNOWN)
                        .to_string(),
                )
            })
            .collect(),
    )
    .i64(
        "admissions",
        rows.iter().map(|(_, c)| Some(c.admissions)).collect(),
    )
    .i64(
        "discharges",
        rows.iter().map(|(_, c)| Some(c.discharges)).collect(),
    )
    .f64(
        "los_hours_total",
        rows.iter()
            .map(|(_, c)| Some(round4(c.los_us as f64 / HOUR_US as f64)))
            .collect(),
    )
    .f64(
        "alos_hours",
        rows.iter()
            .map(|(_, c)| {
                (c.discharges > 0)
                    .then(|| round4(c.los_us as f64 / HOUR_US as f64 / c.discharges as f64))
            })
            .collect(),
    )
    .i64(
        "occupied_bed_hours",
        rows.iter().map(|(_, c)| Some(c.bed_hours)).collect(),
    )
    .i64(
        "census_hours",
        rows.iter().map(|(_, c)| Some(c.hours)).collect(),
    )
    .f64(
        "avg_occupied_beds",
        rows.iter()
            .map(|(_, c)| (c.hours > 0).then(|| round4(c.bed_hours as f64 / c.hours as f64)))
            .collect(),
    );
    cols.finish()
}
