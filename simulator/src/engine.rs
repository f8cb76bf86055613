//! The run: all simulated hospitals advanced together, shared by `generate` and `stream`.

use crate::config::SimConfig;
use crate::defects::{DefectClass, ALL_CLASSES};
use crate::model::{HospSim, Outgoing, RunParams};
use crate::network::{self, HospitalPlan};
use crate::rng::SimRng;
use crate::time::{self, DAY};
use crate::SimError;
use std::collections::BTreeMap;

/// Stream id of a hospital's capacity plan.
const CAPACITY_STREAM: u64 = 1_000;

/// All hospitals of a run.
pub struct Engine {
    pub sims: Vec<HospSim>,
    /// First day (days since epoch).
    pub start_day: i64,
    /// Run start / end instants (seconds).
    pub start: i64,
    pub end: i64,
    /// Run hospitals on parallel threads in `run_until` (worth it for day-sized steps, not for
    /// the stream's hour-sized ones).
    pub parallel: bool,
}

impl Engine {
    /// Build the network and the empty hospitals of a validated configuration.
    pub fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let idx = cfg.hospital_indices()?;
        let start_day = time::days_of(cfg.start_date);
        let start = start_day * DAY;
        let end = start + cfg.days as i64 * DAY;
        let rates: BTreeMap<DefectClass, f64> =
            ALL_CLASSES.iter().map(|c| (*c, cfg.rate(*c))).collect();
        let run = RunParams {
            seed: cfg.seed,
            start,
            end,
            lang_from: start + cfg.language_day() as i64 * DAY,
            ins_from: start + cfg.insurance_day() as i64 * DAY,
            scale: cfg.scale,
            json_fraction: cfg.json_fraction,
            rates,
            resend_rate: cfg.corrected_resend_rate,
            demographic_changes: cfg.demographic_changes,
            a08_overtaken_rate: cfg.a08_overtaken_rate,
        };
        let specs = network::mha_hospitals();
        let sims = idx
            .into_iter()
            .map(|i| {
                let mut rng = SimRng::new(cfg.seed, CAPACITY_STREAM + i as u64);
                let plan = network::plan_hospital(
                    i,
                    specs[i].clone(),
                    start_day,
                    cfg.days as i64,
                    &mut rng,
                );
                HospSim::new(plan, run.clone())
            })
            .collect();
        Ok(Engine {
            sims,
            start_day,
            start,
            end,
            parallel: true,
        })
    }

    /// The hospital plans of the run.
    pub fn plans(&self) -> Vec<&HospitalPlan> {
        self.sims.iter().map(|s| &s.plan).collect()
    }

    /// Advance every hospital to `t` (exclusive). Hospitals are independent (own state, own
    /// random streams), so they run on parallel threads without affecting the output.
    pub fn run_until(&mut self, t: i64) {
        if self.sims.len() == 1 || !self.parallel {
            for s in &mut self.sims {
                s.run_until(t);
            }
            return;
        }
        std::thread::scope(|scope| {
            for s in &mut self.sims {
                scope.spawn(move || s.run_until(t));
            }
        });
    }

    /// Messages delivered before `limit_ms`, merged over hospitals in delivery order
    /// (ties: hospital order, then emission order).
    pub fn drain(&mut self, limit_ms: i64) -> Vec<Outgoing> {
        let mut all = Vec::new();
        for s in &mut self.sims {
            s.drain_outbox(limit_ms, &mut all);
        }
        all.sort();
        all
    }

    /// Release anything still held at the end of the run.
    pub fn finish(&mut self) {
        for s in &mut self.sims {
            s.finish();
        }
    }
}
