//! Reference data (`reference/hospitals.csv`, `reference/departments.csv`) and the department
//! truth (`truth/department_history.csv`).

use crate::defects::{DefectClass, Injector, ManifestEntry, Source};
use crate::io::Outputs;
use crate::network::{HospitalPlan, DEPTS};
use crate::time;
use crate::SimError;

/// Header of `reference/hospitals.csv` (docs/sources.md §3).
pub const HOSPITALS_HEADER: [&str; 5] = ["hospital_id", "name", "city", "state", "time_zone"];
/// Header of `reference/departments.csv` (docs/sources.md §3).
pub const DEPARTMENTS_HEADER: [&str; 9] = [
    "hospital_id",
    "department_code",
    "department_name",
    "department_type",
    "licensed_beds",
    "staffed_beds",
    "nurses",
    "physicians",
    "effective_date",
];
/// Header of `truth/department_history.csv`.
pub const DEPARTMENT_HISTORY_HEADER: [&str; 9] = [
    "hospital_id",
    "department_code",
    "valid_from",
    "valid_to",
    "type",
    "licensed_beds",
    "staffed_beds",
    "nurses",
    "physicians",
];

/// Write the reference files; duplicate departments rows are injected through `inj`.
pub fn write_reference(
    out: &mut Outputs,
    plans: &[&HospitalPlan],
    inj: &mut Injector,
    manifest: &mut Vec<ManifestEntry>,
) -> Result<(), SimError> {
    let mut f = out.create("reference/hospitals.csv")?;
    f.csv_row(&HOSPITALS_HEADER)?;
    for p in plans {
        let s = &p.spec;
        f.csv_row(&[s.id, s.name, s.city, s.state, s.time_zone])?;
    }
    out.close(f)?;

    let mut f = out.create("reference/departments.csv")?;
    f.csv_row(&DEPARTMENTS_HEADER)?;
    let mut row_no = 0u64;
    for p in plans {
        for d in DEPTS {
            let Some(dp) = &p.depts[d.idx()] else {
                continue;
            };
            for r in &dp.rows {
                let row = [
                    p.spec.id.to_string(),
                    d.code().to_string(),
                    d.name().to_string(),
                    d.kind().to_string(),
                    r.licensed.to_string(),
                    r.staffed.to_string(),
                    r.nurses.to_string(),
                    r.physicians.to_string(),
                    time::ymd(r.day),
                ];
                f.csv_row(&row)?;
                row_no += 1;
                if inj.offer(DefectClass::DuplicateDelivery, Source::Departments) {
                    f.csv_row(&row)?;
                    row_no += 1;
                    manifest.push(ManifestEntry {
                        source: Source::Departments.id().into(),
                        record_key: format!("departments.csv:{row_no}"),
                        defect: DefectClass::DuplicateDelivery.id().into(),
                        field: None,
                        clean_value: None,
                        note: Some(format!("exact repeat of departments.csv:{}", row_no - 1)),
                        corrected_by: None,
                    });
                }
            }
        }
    }
    out.close(f)?;
    Ok(())
}

/// Write `truth/department_history.csv`.
pub fn write_department_history(
    out: &mut Outputs,
    plans: &[&HospitalPlan],
) -> Result<(), SimError> {
    let mut f = out.create("truth/department_history.csv")?;
    f.csv_row(&DEPARTMENT_HISTORY_HEADER)?;
    for p in plans {
        for d in DEPTS {
            let Some(dp) = &p.depts[d.idx()] else {
                continue;
            };
            for (i, r) in dp.rows.iter().enumerate() {
                let to = dp
                    .rows
                    .get(i + 1)
                    .map(|n| time::ymd(n.day))
                    .unwrap_or_default();
                f.csv_row(&[
                    p.spec.id.to_string(),
                    d.code().to_string(),
                    time::ymd(r.day),
                    to,
                    d.kind().to_string(),
                    r.licensed.to_string(),
                    r.staffed.to_string(),
                    r.nurses.to_string(),
                    r.physicians.to_string(),
                ])?;
            }
        }
    }
    out.close(f)
}
