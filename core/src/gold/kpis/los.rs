//! Length of stay (HCUP-style, docs/kpis.md §4). LOS of an inpatient encounter = discharge − admission,
//! reported in hours (exact) and in calendar days (local discharge date − local admission date, so a
//! same-day stay is 0, as HCUP codes it). ALOS = Σ LOS / discharges, over encounters *discharged* in the
//! period; open stays are excluded from ALOS and reported as current LOS at "now".

use std::collections::BTreeMap;

use deltalake::arrow::array::RecordBatch;

use super::{EncRow, KpiInputs};
use crate::gold::time::{round4, HOUR_US};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// ALOS per hospital, discharging department and discharge month.
pub const DEPARTMENT_MONTHLY: TableRef = TableRef::new(Layer::Gold, "kpi_alos_department_monthly");
/// ALOS per hospital and discharge month.
pub const HOSPITAL_MONTHLY: TableRef = TableRef::new(Layer::Gold, "kpi_alos_hospital_monthly");
/// LOS per patient.
pub const PATIENT: TableRef = TableRef::new(Layer::Gold, "kpi_los_patient");
/// Current LOS of every inpatient in house at "now".
pub const CURRENT: TableRef = TableRef::new(Layer::Gold, "kpi_current_los");

#[derive(Default, Clone, Copy)]
struct Acc {
    discharges: i64,
    los_us: i64,
    los_days: i64,
    same_day: i64,
}

impl Acc {
    fn add(&mut self, e: &EncRow, los: i64) {
        self.discharges += 1;
        self.los_us += los;
        self.los_days += i64::from(e.los_days.unwrap_or(0));
        self.same_day += i64::from(e.los_days == Some(0));
    }
}

fn acc_columns(cols: &mut Columns, accs: &[Acc]) {
    cols.i64(
        "discharges",
        accs.iter().map(|a| Some(a.discharges)).collect(),
    )
    .f64(
        "los_hours_total",
        accs.iter()
            .map(|a| Some(round4(a.los_us as f64 / HOUR_US as f64)))
            .collect(),
    )
    .f64(
        "alos_hours",
        accs.iter()
            .map(|a| {
                Some(round4(
                    a.los_us as f64 / HOUR_US as f64 / a.discharges as f64,
                ))
            })
            .collect(),
    )
    .i64(
        "los_days_total",
        accs.iter().map(|a| Some(a.los_days)).collect(),
    )
    .f64(
        "alos_days",
        accs.iter()
            .map(|a| Some(round4(a.los_days as f64 / a.discharges as f64)))
            .collect(),
    )
    .i64(
        "same_day_discharges",
        accs.iter().map(|a| Some(a.same_day)).collect(),
    );
}

/// The `kpi_alos_department_monthly` batch (department = where the patient was discharged from).
pub fn department_monthly(inputs: &KpiInputs) -> Result<RecordBatch> {
    let mut by: BTreeMap<(String, String, i32), Acc> = BTreeMap::new();
    for e in &inputs.encounters {
        if let (Some(los), Some(d), Some(m)) = (e.los_us(), &e.last_department, e.discharge_month) {
            by.entry((e.hospital_id.clone(), d.clone(), m))
                .or_default()
                .add(e, los);
        }
    }
    let keys: Vec<_> = by.keys().cloned().collect();
    let accs: Vec<Acc> = by.into_values().collect();
    let mut cols = Columns::new();
    cols.str(
        "hospital_id",
        keys.iter().map(|k| Some(k.0.clone())).collect(),
    )
    .str(
        "department_code",
        keys.iter().map(|k| Some(k.1.clone())).collect(),
    )
    .i32("month_key", keys.iter().map(|k| Some(k.2)).collect());
    acc_columns(&mut cols, &accs);
    cols.finish()
}

/// The `kpi_alos_hospital_monthly` batch.
pub fn hospital_monthly(inputs: &KpiInputs) -> Result<RecordBatch> {
    let mut by: BTreeMap<(String, i32), Acc> = BTreeMap::new();
    for e in &inputs.encounters {
        if let (Some(los), Some(m)) = (e.los_us(), e.discharge_month) {
            by.entry((e.hospital_id.clone(), m))
                .or_default()
                .add(e, los);
        }
    }
    let keys: Vec<_> = by.keys().cloned().collect();
    let accs: Vec<Acc> = by.into_values().collect();
    let mut cols = Columns::new();
    cols.str(
        "hospital_id",
        keys.iter().map(|k| Some(k.0.clone())).collect(),
    )
    .i32("month_key", keys.iter().map(|k| Some(k.1)).collect());
    acc_columns(&mut cols, &accs);
    cols.finish()
}

/// The `kpi_los_patient` batch: per patient with at least one admission, the discharged stays' ALOS and
/// the current LOS of an admission still open at "now".
pub fn per_patient(inputs: &KpiInputs) -> Result<RecordBatch> {
    #[derive(Default)]
    struct P {
        hospital: String,
        admissions: i64,
        acc: Acc,
        open: i64,
        current_us: Option<i64>,
    }
    let mut by: BTreeMap<String, P> = BTreeMap::new();
    for e in inputs.encounters.iter().filter(|e| e.is_admitted) {
        let Some(k) = &e.patient_key else { continue };
        let p = by.entry(k.clone()).or_insert_with(|| P {
            hospital: e.hospital_id.clone(),
            ..P::default()
        });
        p.admissions += 1;
        if let Some(los) = e.los_us() {
            p.acc.add(e, los);
        }
        if e.is_open {
            p.open += 1;
            if let Some(a) = e.admit {
                let cur = (inputs.as_of - a).max(0);
                p.current_us = Some(p.current_us.map_or(cur, |c| c.max(cur)));
            }
        }
    }
    let rows: Vec<_> = by.into_iter().collect();
    let mut cols = Columns::new();
    cols.ts("as_of", vec![Some(inputs.as_of); rows.len()])
        .str(
            "patient_key",
            rows.iter().map(|(k, _)| Some(k.clone())).collect(),
        )
        .str(
            "hospital_id",
            rows.iter().map(|(_, p)| Some(p.hospital.clone())).collect(),
        )
        .i64(
            "admissions",
            rows.iter().map(|(_, p)| Some(p.admissions)).collect(),
        )
        .i64(
            "discharges",
            rows.iter().map(|(_, p)| Some(p.acc.discharges)).collect(),
        )
        .f64(
            "los_hours_total",
            rows.iter()
                .map(|(_, p)| Some(round4(p.acc.los_us as f64 / HOUR_US as f64)))
                .collect(),
        )
        .f64(
            "alos_hours",
            rows.iter()
                .map(|(_, p)| {
                    (p.acc.discharges > 0).then(|| {
                        round4(p.acc.los_us as f64 / HOUR_US as f64 / p.acc.discharges as f64)
                    })
                })
                .collect(),
        )
        .bool(
            "in_house",
            rows.iter().map(|(_, p)| Some(p.open > 0)).collect(),
        )
        .f64(
            "current_los_hours",
            rows.iter()
                .map(|(_, p)| p.current_us.map(|c| round4(c as f64 / HOUR_US as f64)))
                .collect(),
        );
    cols.finish()
}

/// The `kpi_current_los` batch: one row per admitted encounter still in house at "now".
pub fn current(inputs: &KpiInputs) -> Result<RecordBatch> {
    let open: Vec<&EncRow> = inputs
        .encounters
        .iter()
        .filter(|e| e.is_open && e.admit.is_some())
        .collect();
    let hours: Vec<f64> = open
        .iter()
        .map(|e| (inputs.as_of - e.admit.unwrap_or(inputs.as_of)).max(0) as f64 / HOUR_US as f64)
        .collect();
    let mut cols = Columns::new();
    cols.ts("as_of", vec![Some(inputs.as_of); open.len()])
        .str(
            "hospital_id",
            open.iter().map(|e| Some(e.hospital_id.clone())).collect(),
        )
        .str(
            "department_code",
            open.iter().map(|e| e.last_department.clone()).collect(),
        )
        .str(
            "encounter_key",
            open.iter().map(|e| Some(e.key.clone())).collect(),
        )
        .str(
            "patient_key",
            open.iter().map(|e| e.patient_key.clone()).collect(),
        )
        .ts("admit_time", open.iter().map(|e| e.admit).collect())
        .f64(
            "current_los_hours",
            hours.iter().map(|h| Some(round4(*h))).collect(),
        )
        .i64(
            "current_los_days",
            hours
                .iter()
                .map(|h| Some((h / 24.0).floor() as i64))
                .collect(),
        )
        .bool(
            "los_7_plus_days",
            hours.iter().map(|h| Some(*h >= 7.0 * 24.0)).collect(),
        )
        .bool(
            "los_14_plus_days",
            hours.iter().map(|h| Some(*h >= 14.0 * 24.0)).collect(),
        )
        .bool(
            "los_21_plus_days",
            hours.iter().map(|h| Some(*h >= 21.0 * 24.0)).collect(),
        );
    cols.finish()
}
