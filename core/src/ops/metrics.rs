//! What the pipeline measures for export as metrics (docs/operations.md, "Metrics"): per stage run its
//! duration and rows, per Silver source its quarantine rate, and per hospital the time of the newest
//! ADT message ingested.
//!
//! The library exports nothing itself. Every run recorded through [`crate::ops::ledger::record`] is
//! turned into [`RunMeasurements`] and handed to the observer installed with [`set_run_observer`] (the
//! binary's OpenTelemetry meter); with none installed nothing happens. The newest ADT message time per
//! hospital is kept in this process and read with [`newest_adt_messages`] whenever the exporter
//! collects.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};

use super::ledger::RunRecord;

/// The stage whose report carries per-source DQ figures.
const SILVER_STAGE: &str = "silver";

/// What one finished stage run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeasurements {
    /// The stage (`bronze.adt`, `silver`, `gold`, …).
    pub stage: String,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Wall time of the run, in seconds.
    pub duration_seconds: f64,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows quarantined (Silver) or stored flagged (Bronze).
    pub rows_quarantined: u64,
    /// Silver runs: per source, the share of its records that did not pass (0..1), as the DQ alert
    /// rule computes it from `silver_dq_results`. Sources that read nothing have no rate.
    pub quarantine_rates: BTreeMap<String, f64>,
}

impl RunMeasurements {
    /// The measurements of a ledger row.
    pub fn of(row: &RunRecord) -> Self {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        RunMeasurements {
            stage: row.stage.clone(),
            status: row.status.clone(),
            duration_seconds: (row.finished_at - row.started_at)
                .num_microseconds()
                .map_or(row.duration_ms as f64 / 1000.0, |us| us as f64 / 1e6)
                .max(0.0),
            rows_in: count(row.rows_in),
            rows_out: count(row.rows_out),
            rows_quarantined: count(row.rows_quarantined),
            quarantine_rates: if row.stage == SILVER_STAGE {
                quarantine_rates(&row.details)
            } else {
                BTreeMap::new()
            },
        }
    }
}

/// Per source of a Silver report's `details.sources` (`records_in`, `records_valid`): the share of
/// records that did not pass.
fn quarantine_rates(details: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(sources) = details.get("sources").and_then(|s| s.as_object()) else {
        return out;
    };
    for (source, figures) in sources {
        let field = |k: &str| figures.get(k).and_then(serde_json::Value::as_u64);
        let (Some(records_in), Some(valid)) = (field("records_in"), field("records_valid")) else {
            continue;
        };
        if records_in == 0 {
            continue;
        }
        let rejected = records_in - valid.min(records_in);
        out.insert(source.clone(), rejected as f64 / records_in as f64);
    }
    out
}

/// Receives the measurements of every recorded run.
pub type RunObserver = fn(&RunMeasurements);

static RUN_OBSERVER: OnceLock<RunObserver> = OnceLock::new();

/// Installs the observer of finished runs (once per process; a second call is ignored and returns
/// false).
pub fn set_run_observer(observer: RunObserver) -> bool {
    RUN_OBSERVER.set(observer).is_ok()
}

/// Hands a finished run to the observer, if one is installed.
pub fn run_finished(row: &RunRecord) {
    if let Some(observe) = RUN_OBSERVER.get() {
        observe(&RunMeasurements::of(row));
    }
}

fn newest() -> &'static Mutex<BTreeMap<String, DateTime<Utc>>> {
    static NEWEST: OnceLock<Mutex<BTreeMap<String, DateTime<Utc>>>> = OnceLock::new();
    NEWEST.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Notes the message times of ADT messages just committed to Bronze, per hospital (sending
/// facility): the newest time per hospital is kept, an older one never replaces it.
pub fn adt_messages_ingested(times: &BTreeMap<String, DateTime<Utc>>) {
    if times.is_empty() {
        return;
    }
    let mut newest = newest().lock().unwrap_or_else(|e| e.into_inner());
    for (hospital, at) in times {
        let entry = newest.entry(hospital.clone()).or_insert(*at);
        if *at > *entry {
            *entry = *at;
        }
    }
}

/// Per hospital, the time of the newest ADT message this process has ingested.
pub fn newest_adt_messages() -> Vec<(String, DateTime<Utc>)> {
    let newest = newest().lock().unwrap_or_else(|e| e.into_inner());
    newest.iter().map(|(h, t)| (h.clone(), *t)).collect()
}

/// Seconds from `newest` to `now`, never negative (a sender's clock ahead of ours reads as no lag).
pub fn lag_seconds(newest: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - newest)
        .num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1e6)
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ledger::{RunContext, FAILED};
    use crate::pipeline::StageReport;

    fn silver_row(details: serde_json::Value) -> RunRecord {
        let started_at = Utc::now();
        let report = StageReport {
            stage: SILVER_STAGE.into(),
            run_id: "silver-1".into(),
            trigger: "timer".into(),
            started_at,
            finished_at: started_at + chrono::Duration::milliseconds(1500),
            status: "succeeded".into(),
            rows_in: 10,
            rows_out: 7,
            rows_quarantined: 3,
            error: None,
            details,
        };
        RunRecord::from_report(&report, &RunContext::new("timer"))
    }

    #[test]
    fn runs_are_measured_from_their_ledger_rows() {
        let row = silver_row(serde_json::json!({"sources": {
            "adt": {"records_in": 8, "records_valid": 6, "findings": {}},
            "ehr_patients": {"records_in": 2, "records_valid": 2, "findings": {}},
            "ehr_encounters": {"records_in": 0, "records_valid": 0, "findings": {}},
        }}));
        let m = RunMeasurements::of(&row);
        assert_eq!(
            (m.stage.as_str(), m.status.as_str()),
            ("silver", "succeeded")
        );
        assert!(
            (m.duration_seconds - 1.5).abs() < 1e-9,
            "{}",
            m.duration_seconds
        );
        assert_eq!((m.rows_in, m.rows_out, m.rows_quarantined), (10, 7, 3));
        assert_eq!(
            m.quarantine_rates,
            BTreeMap::from([("adt".to_string(), 0.25), ("ehr_patients".to_string(), 0.0)]),
            "a source that read nothing has no rate"
        );

        let failed = RunRecord::failed(
            "gold",
            Utc::now(),
            Utc::now(),
            "boom",
            &RunContext::new("adf"),
        );
        let m = RunMeasurements::of(&failed);
        assert_eq!((m.stage.as_str(), m.status.as_str()), ("gold", FAILED));
        assert!(m.quarantine_rates.is_empty());
        assert_eq!(
            RunMeasurements::of(&silver_row(serde_json::Value::Null))
                .quarantine_rates
                .len(),
            0
        );
    }

    #[test]
    fn the_newest_message_per_hospital_is_kept() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        adt_messages_ingested(&BTreeMap::from([
            ("TEST-H1".to_string(), t("2026-01-14T15:00:00Z")),
            ("TEST-H2".to_string(), t("2026-01-14T14:00:00Z")),
        ]));
        adt_messages_ingested(&BTreeMap::from([(
            "TEST-H1".to_string(),
            t("2026-01-14T09:00:00Z"),
        )]));
        adt_messages_ingested(&BTreeMap::from([(
            "TEST-H2".to_string(),
            t("2026-01-14T14:30:00Z"),
        )]));
        let newest: BTreeMap<_, _> = newest_adt_messages()
            .into_iter()
            .filter(|(h, _)| h.starts_with("TEST-"))
            .collect();
        assert_eq!(
            newest["TEST-H1"],
            t("2026-01-14T15:00:00Z"),
            "an older replay does not win"
        );
        assert_eq!(newest["TEST-H2"], t("2026-01-14T14:30:00Z"));
        assert_eq!(
            lag_seconds(t("2026-01-14T15:00:00Z"), t("2026-01-14T15:01:30Z")),
            90.0
        );
        assert_eq!(
            lag_seconds(t("2026-01-14T15:05:00Z"), t("2026-01-14T15:00:00Z")),
            0.0
        );
    }
}

/// Wall time of the named steps of one run, in the order they ran, for the run's details (the
/// operations runbook reads them to see where a slow refresh spent its time).
#[derive(Debug)]
pub struct StepClock {
    last: std::time::Instant,
    steps: Vec<(&'static str, f64)>,
}

impl Default for StepClock {
    fn default() -> Self {
        Self::new()
    }
}

impl StepClock {
    /// Starts timing the first step.
    pub fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Ends the running step under `name` and starts the next one.
    pub fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((name, (now - self.last).as_secs_f64()));
        self.last = now;
    }

    /// Records a step timed elsewhere (a task that ran alongside others), without touching the lap.
    pub fn record(&mut self, name: &'static str, seconds: f64) {
        self.steps.push((name, seconds));
    }

    /// Starts the next lap now, recording nothing for the time since the last one.
    pub fn restart(&mut self) {
        self.last = std::time::Instant::now();
    }

    /// The steps in order, as `[{"step": …, "seconds": …}]` (seconds rounded to the millisecond).
    pub fn to_json(&self) -> serde_json::Value {
        self.steps
            .iter()
            .map(|(n, s)| serde_json::json!({"step": n, "seconds": (s * 1000.0).round() / 1000.0}))
            .collect()
    }
}
