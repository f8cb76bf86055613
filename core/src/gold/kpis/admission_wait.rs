//! Admission wait: arrival (ED registration) → inpatient admission, for encounters admitted through an
//! emergency department, in minutes; median and 90th percentile (linear interpolation between closest
//! ranks, as SQL `percentile_cont`), mean, maximum and the count over 4 h. Grouped by hospital, admitting
//! department, arrival month and arrival hour of day (local); rows with `month_key` and/or `hour_of_day`
//! NULL are the roll-ups over all months / all hours (percentiles cannot be re-aggregated).

use std::collections::BTreeMap;

use deltalake::arrow::array::RecordBatch;

use super::KpiInputs;
use crate::gold::time::{percentile_sorted, round4};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Admission wait by department, month and hour of day.
pub const TABLE: TableRef = TableRef::new(Layer::Gold, "kpi_admission_wait");

/// Waits longer than this count as long waits (minutes).
pub const LONG_WAIT_MINUTES: f64 = 240.0;

/// The `kpi_admission_wait` batch.
pub fn build(inputs: &KpiInputs) -> Result<RecordBatch> {
    type Key = (String, String, Option<i32>, Option<i32>);
    let mut groups: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for e in &inputs.encounters {
        let (Some(w), Some(d)) = (e.wait_minutes, &e.admit_department) else {
            continue;
        };
        for month in [e.arrival_month, None] {
            for hour in [e.arrival_hour, None] {
                groups
                    .entry((e.hospital_id.clone(), d.clone(), month, hour))
                    .or_default()
                    .push(w);
            }
        }
    }
    let mut keys = Vec::with_capacity(groups.len());
    let mut stats = Vec::with_capacity(groups.len());
    for (k, mut v) in groups {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let sum: f64 = v.iter().sum();
        stats.push((
            n as i64,
            percentile_sorted(&v, 0.5).map(round4),
            percentile_sorted(&v, 0.9).map(round4),
            round4(sum / n as f64),
            v.last().copied().map(round4),
            v.iter().filter(|w| **w > LONG_WAIT_MINUTES).count() as i64,
        ));
        keys.push(k);
    }
    let mut cols = Columns::new();
    cols.str(
        "hospital_id",
        keys.iter().map(|k| Some(k.0.clone())).collect(),
    )
    .str(
        "department_code",
        keys.iter().map(|k| Some(k.1.clone())).collect(),
    )
    .i32("month_key", keys.iter().map(|k| k.2).collect())
    .i32("hour_of_day", keys.iter().map(|k| k.3).collect())
    .i64("admissions", stats.iter().map(|s| Some(s.0)).collect())
    .f64("wait_median_minutes", stats.iter().map(|s| s.1).collect())
    .f64("wait_p90_minutes", stats.iter().map(|s| s.2).collect())
    .f64(
        "wait_mean_minutes",
        stats.iter().map(|s| Some(s.3)).collect(),
    )
    .f64("wait_max_minutes", stats.iter().map(|s| s.4).collect())
    .i64("waits_over_4h", stats.iter().map(|s| Some(s.5)).collect());
    cols.finish()
}
