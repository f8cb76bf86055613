//! Department bottlenecks: episodes of at least [`MIN_HOURS`] consecutive census hours in which a
//! department is under pressure. Kinds:
//! - `high_occupancy` — occupancy ≥ 85 % of staffed beds (the threshold above which boarding becomes
//!   likely, PMC9526134);
//! - `ed_boarding` — an emergency department holds at least one boarder (an admitted patient in the ED
//!   for more than 4 h);
//! - `long_wait` — at least one patient bound for this (inpatient) department is boarding in the ED
//!   (boarding attributed to the destination unit).
//!
//! One row per episode: first hour, end (exclusive), hours, peak and mean of the signal, and whether it
//! is still going on at the last census hour.

use deltalake::arrow::array::RecordBatch;

use super::{CensusRow, KpiInputs};
use crate::gold::time::{hour_floor, round4, HOUR_US};
use crate::gold::write::Columns;
use crate::storage::{Layer, TableRef};
use crate::Result;

/// Bottleneck episodes.
pub const TABLE: TableRef = TableRef::new(Layer::Gold, "kpi_bottlenecks");

/// Occupancy threshold, percent.
pub const OCCUPANCY_THRESHOLD: f64 = 85.0;
/// Minimum consecutive hours of an episode.
pub const MIN_HOURS: i64 = 2;

struct Episode {
    hospital: String,
    department: String,
    kind: &'static str,
    threshold: f64,
    first: i64,
    hours: i64,
    peak: f64,
    sum: f64,
    ongoing: bool,
}

/// The `kpi_bottlenecks` batch.
pub fn build(inputs: &KpiInputs) -> Result<RecordBatch> {
    let now_hour = hour_floor(inputs.as_of);
    let mut episodes = Vec::new();
    type Signal = fn(&CensusRow) -> Option<f64>;
    let kinds: [(&str, f64, Signal); 3] = [
        ("high_occupancy", OCCUPANCY_THRESHOLD, |r: &CensusRow| r.pct),
        ("ed_boarding", 1.0, |r: &CensusRow| {
            Some(r.ed_boarders as f64)
        }),
        ("long_wait", 1.0, |r: &CensusRow| Some(r.waiting as f64)),
    ];
    // Census rows are sorted by hospital, department, hour.
    let mut i = 0;
    while i < inputs.census.len() {
        let mut j = i;
        while j < inputs.census.len()
            && inputs.census[j].hospital_id == inputs.census[i].hospital_id
            && inputs.census[j].department == inputs.census[i].department
        {
            j += 1;
        }
        let rows = &inputs.census[i..j];
        for (kind, threshold, signal) in kinds {
            let mut run: Option<(usize, f64, f64)> = None; // (start index, peak, sum)
            for k in 0..=rows.len() {
                let hit = rows.get(k).and_then(signal).filter(|v| *v >= threshold);
                let contiguous = k > 0 && k < rows.len() && rows[k].hour == rows[k - 1].hour + 1;
                if let (Some(v), true, Some((_, peak, sum))) = (hit, contiguous, run.as_mut()) {
                    *peak = peak.max(v);
                    *sum += v;
                    continue;
                }
                if let Some((s, peak, sum)) = run.take() {
                    let hours = (k - s) as i64;
                    if hours >= MIN_HOURS {
                        episodes.push(Episode {
                            hospital: rows[s].hospital_id.clone(),
                            department: rows[s].department.clone(),
                            kind,
                            threshold,
                            first: rows[s].hour,
                            hours,
                            peak,
                            sum,
                            ongoing: rows[k - 1].hour == now_hour,
                        });
                    }
                }
                if let Some(v) = hit {
                    run = Some((k, v, v));
                }
            }
        }
        i = j;
    }
    episodes.sort_by(|a, b| {
        (&a.hospital, &a.department, a.kind, a.first).cmp(&(
            &b.hospital,
            &b.department,
            b.kind,
            b.first,
        ))
    });
    let mut cols = Columns::new();
    cols.str(
        "hospital_id",
        episodes.iter().map(|e| Some(e.hospital.clone())).collect(),
    )
    .str(
        "department_code",
        episodes
            .iter()
            .map(|e| Some(e.department.clone()))
            .collect(),
    )
    .str(
        "kind",
        episodes.iter().map(|e| Some(e.kind.to_string())).collect(),
    )
    .f64(
        "threshold",
        episodes.iter().map(|e| Some(e.threshold)).collect(),
    )
    .ts(
        "start_hour",
        episodes.iter().map(|e| Some(e.first * HOUR_US)).collect(),
    )
    .ts(
        "end_hour",
        episodes
            .iter()
            .map(|e| Some((e.first + e.hours) * HOUR_US))
            .collect(),
    )
    .i64("hours", episodes.iter().map(|e| Some(e.hours)).collect())
    .f64(
        "peak_value",
        episodes.iter().map(|e| Some(round4(e.peak))).collect(),
    )
    .f64(
        "mean_value",
        episodes
            .iter()
            .map(|e| Some(round4(e.sum / e.hours as f64)))
            .collect(),
    )
    .bool(
        "ongoing",
        episodes.iter().map(|e| Some(e.ongoing)).collect(),
    );
    cols.finish()
}
