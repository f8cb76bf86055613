//! Sex distribution of occupied beds per department, at "now": one row per hospital, department and sex
//! group (`female`, `male`, `other` = HL7 O/A/N, `unknown` = U or missing), with its share of the
//! department's occupied beds. Sex is that of the patient version valid at "now". The same split is in
//! `fact_census_hourly` for every hour.

use deltalake::arrow::array::RecordBatch;

use super::occupancy::occupants;
use super::KpiInputs;
use crate::gold::time::{round4, SEX_GROUPS};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Sex distribution of occupied beds per department, now.
pub const TABLE: TableRef = TableRef::new(Layer::Gold, "kpi_sex_distribution");

/// The `kpi_sex_distribution` batch.
pub fn build(inputs: &KpiInputs) -> Result<RecordBatch> {
    let mut h = Vec::new();
    let mut d = Vec::new();
    let mut g = Vec::new();
    let mut n = Vec::new();
    let mut share = Vec::new();
    for ((hospital, dept), c) in occupants(inputs) {
        for (i, label) in SEX_GROUPS.iter().enumerate() {
            h.push(Some(hospital.clone()));
            d.push(Some(dept.clone()));
            g.push(Some(label.to_string()));
            n.push(Some(c.sex[i]));
            share.push((c.total > 0).then(|| round4(c.sex[i] as f64 * 100.0 / c.total as f64)));
        }
    }
    let mut cols = Columns::new();
    cols.ts("as_of", vec![Some(inputs.as_of); h.len()])
        .str("hospital_id", h)
        .str("department_code", d)
        .str("sex_group", g)
        .i64("occupied_beds", n)
        .f64("share_pct", share);
    cols.finish()
}
