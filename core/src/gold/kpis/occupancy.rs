//! Current occupancy by department and by hospital: beds occupied at "now" (the latest event time in
//! Silver, or `--as-of`) over the staffed beds of the department version valid at that instant
//! (operational "staffed beds occupied %"; docs/kpis.md §1).

use std::collections::{BTreeMap, BTreeSet};

use deltalake::arrow::array::RecordBatch;

use super::KpiInputs;
use crate::gold::time::{age_at, band_index, round4, sex_group};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Current occupancy per hospital and department.
pub const CURRENT: TableRef = TableRef::new(Layer::Gold, "kpi_occupancy_current");
/// Current occupancy per hospital (inpatient departments; emergency departments separately).
pub const CURRENT_HOSPITAL: TableRef = TableRef::new(Layer::Gold, "kpi_occupancy_current_hospital");

/// Occupants of one department at `as_of`: total, by sex group, by age band (+ unknown).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: i64,
    pub sex: [i64; 4],
    pub bands: [i64; 6],
}

/// Occupants per (hospital, department) at `as_of`, with every known department present.
pub fn occupants(inputs: &KpiInputs) -> BTreeMap<(String, String), Counts> {
    let mut out: BTreeMap<(String, String), Counts> = BTreeMap::new();
    for (h, c) in inputs.departments.0.keys() {
        if inputs.hospitals.0.contains_key(h) {
            out.entry((h.clone(), c.clone())).or_default();
        }
    }
    for s in &inputs.open_stays {
        let c = out
            .entry((s.hospital_id.clone(), s.department.clone()))
            .or_default();
        c.total += 1;
        let version = s
            .patient_key
            .as_deref()
            .and_then(|k| inputs.patients.at(k, inputs.as_of));
        c.sex[sex_group(version.and_then(|v| v.sex.as_deref()))] += 1;
        let band = version
            .and_then(|v| v.birth)
            .and_then(|b| band_index(age_at(b, inputs.as_of)))
            .unwrap_or(5);
        c.bands[band] += 1;
    }
    out
}

fn pct(occupied: i64, staffed: Option<i64>) -> Option<f64> {
    staffed
        .filter(|s| *s > 0)
        .map(|s| round4(occupied as f64 * 100.0 / s as f64))
}

/// The `kpi_occupancy_current` batch.
pub fn current(inputs: &KpiInputs) -> Result<RecordBatch> {
    let rows: Vec<((String, String), Counts)> = occupants(inputs).into_iter().collect();
    let version = |h: &str, c: &str| inputs.departments.at(h, c, inputs.as_of);
    let staffed: Vec<Option<i64>> = rows
        .iter()
        .map(|((h, c), _)| version(h, c).and_then(|v| v.staffed))
        .collect();
    let mut cols = Columns::new();
    cols.ts("as_of", vec![Some(inputs.as_of); rows.len()])
        .str(
            "hospital_id",
            rows.iter().map(|((h, _), _)| Some(h.clone())).collect(),
        )
        .str(
            "department_code",
            rows.iter().map(|((_, c), _)| Some(c.clone())).collect(),
        )
        .i64(
            "department_sk",
            rows.iter()
                .map(|((h, c), _)| version(h, c).map(|v| v.sk))
                .collect(),
        )
        .str(
            "department_type",
            rows.iter()
                .map(|((h, c), _)| version(h, c).and_then(|v| v.dtype.clone()))
                .collect(),
        )
        .i64("staffed_beds", staffed.clone())
        .i64(
            "occupied_beds",
            rows.iter().map(|(_, n)| Some(n.total)).collect(),
        )
        .f64(
            "occupancy_pct",
            rows.iter()
                .zip(&staffed)
                .map(|((_, n), s)| pct(n.total, *s))
                .collect(),
        )
        .i64(
            "available_beds",
            rows.iter()
                .zip(&staffed)
                .map(|((_, n), s)| s.map(|s| s - n.total))
                .collect(),
        );
    for (i, name) in [
        "occupied_female",
        "occupied_male",
        "occupied_other",
        "occupied_unknown_sex",
    ]
    .iter()
    .enumerate()
    {
        cols.i64(name, rows.iter().map(|(_, n)| Some(n.sex[i])).collect());
    }
    for (i, name) in [
        "occupied_age_0_17",
        "occupied_age_18_44",
        "occupied_age_45_64",
        "occupied_age_65_84",
        "occupied_age_85_plus",
        "occupied_age_unknown",
    ]
    .iter()
    .enumerate()
    {
        cols.i64(name, rows.iter().map(|(_, n)| Some(n.bands[i])).collect());
    }
    cols.finish()
}

/// The `kpi_occupancy_current_hospital` batch: inpatient (non-emergency) departments summed, and the
/// emergency department(s) beside them.
pub fn current_hospital(inputs: &KpiInputs) -> Result<RecordBatch> {
    #[derive(Default)]
    struct H {
        occ: i64,
        staffed: i64,
        ed_occ: i64,
        ed_staffed: i64,
        departments: BTreeSet<String>,
        over_85: i64,
    }
    let mut by: BTreeMap<String, H> = BTreeMap::new();
    for h in inputs.hospitals.0.keys() {
        by.entry(h.clone()).or_default();
    }
    for ((h, c), n) in occupants(inputs) {
        let e = by.entry(h.clone()).or_default();
        let version = inputs.departments.at(&h, &c, inputs.as_of);
        let emergency = inputs
            .departments
            .at_or_first(&h, &c, inputs.as_of)
            .is_some_and(|v| v.is_emergency());
        let staffed = version.and_then(|v| v.staffed).unwrap_or(0);
        if emergency {
            e.ed_occ += n.total;
            e.ed_staffed += staffed;
        } else {
            e.occ += n.total;
            e.staffed += staffed;
            if pct(n.total, Some(staffed)).is_some_and(|p| p >= 85.0) {
                e.over_85 += 1;
            }
        }
        e.departments.insert(c);
    }
    let rows: Vec<(String, H)> = by.into_iter().collect();
    let mut cols = Columns::new();
    cols.ts("as_of", vec![Some(inputs.as_of); rows.len()])
        .str(
            "hospital_id",
            rows.iter().map(|(h, _)| Some(h.clone())).collect(),
        )
        .i64(
            "inpatient_staffed_beds",
            rows.iter().map(|(_, x)| Some(x.staffed)).collect(),
        )
        .i64(
            "inpatient_occupied_beds",
            rows.iter().map(|(_, x)| Some(x.occ)).collect(),
        )
        .f64(
            "inpatient_occupancy_pct",
            rows.iter()
                .map(|(_, x)| pct(x.occ, Some(x.staffed)))
                .collect(),
        )
        .i64(
            "ed_staffed_spaces",
            rows.iter().map(|(_, x)| Some(x.ed_staffed)).collect(),
        )
        .i64(
            "ed_occupied",
            rows.iter().map(|(_, x)| Some(x.ed_occ)).collect(),
        )
        .f64(
            "ed_occupancy_pct",
            rows.iter()
                .map(|(_, x)| pct(x.ed_occ, Some(x.ed_staffed)))
                .collect(),
        )
        .i64(
            "departments_at_or_over_85_pct",
            rows.iter().map(|(_, x)| Some(x.over_85)).collect(),
        )
        .i64(
            "departments",
            rows.iter()
                .map(|(_, x)| Some(x.departments.len() as i64))
                .collect(),
        );
    cols.finish()
}
