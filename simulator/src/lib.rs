//! # patientflow-simulator
//!
//! A deterministic generator of realistic hospital data for the seven hospitals of the Midwest
//! Health Alliance, in the three source formats patientflow ingests (docs/sources.md): the
//! real-time ADT feed (HL7 v2 ER7 and JSON `patientflow.adt.v1`), daily EHR CSV extracts, and
//! department reference data with capacity history — plus the clean ground truth behind them and
//! a manifest of every injected defect.
//!
//! The crate is deliberately independent of the rest of patientflow, so its ground truth is an
//! independent check of the pipeline.
//!
//! ```no_run
//! use patientflow_simulator::{generate, SimConfig};
//! let cfg = SimConfig { days: 14, ..SimConfig::default() };
//! let summary = generate(&cfg, std::path::Path::new("/tmp/pf-sim")).unwrap();
//! println!("{} encounters, {} ADT messages", summary.encounters, summary.adt_messages);
//! ```
//!
//! Real-time replay:
//!
//! ```no_run
//! use patientflow_simulator::{pacing_delay, stream, SimConfig};
//! let cfg = SimConfig { days: 1, ..SimConfig::default() };
//! let mut prev = None;
//! for msg in stream(&cfg).unwrap() {
//!     if let Some(p) = prev {
//!         std::thread::sleep(pacing_delay(p, msg.deliver_at, 60.0)); // 60× real time
//!     }
//!     prev = Some(msg.deliver_at);
//!     // hand msg.payload to the ingest endpoint …
//! }
//! ```
//!
//! Model, parameters and defect catalogue: `docs/simulator.md`.

#![forbid(unsafe_code)]

mod config;
mod defects;
mod ehr;
mod encode;
mod engine;
mod io;
mod model;
mod names;
mod network;
mod params;
mod reference;
mod rng;
mod stream;
mod time;
mod truth;

pub use config::{Hospitals, SimConfig};
pub use defects::{DefectClass, DefectTally, ManifestEntry, ALL_CLASSES};
pub use model::MessageFormat;
pub use stream::{pacing_delay, stream, AdtStream, TimedMessage};

/// Column headers of every CSV file the simulator writes (for parse-back checks by consumers).
pub mod headers {
    pub use crate::ehr::{ENCOUNTER_COLUMNS, PATIENT_COLUMNS, REDELIVERY_SUFFIX};
    pub use crate::reference::{DEPARTMENTS_HEADER, DEPARTMENT_HISTORY_HEADER, HOSPITALS_HEADER};
    pub use crate::truth::{ENCOUNTERS_HEADER, PATIENT_HISTORY_HEADER, STAYS_HEADER};
}

use defects::{Injector, Source};
use engine::Engine;
use io::Outputs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::DAY;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is out of range; the message names the value and the allowed range.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// The output folder exists and is not empty.
    #[error("output folder {0} is not empty: choose a new folder or delete it first")]
    OutputNotEmpty(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// JSON serialisation failed (a bug).
    #[error("cannot serialise {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl SimError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a run produced (also written to `truth/summary.json`). Contains no timing, so it is as
/// deterministic as the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Seed used.
    pub seed: u64,
    /// First day.
    pub start_date: String,
    /// Days simulated.
    pub days: u32,
    /// Hospital ids simulated.
    pub hospitals: Vec<String>,
    /// Distinct patients (MRNs) named by at least one message.
    pub patients: u64,
    /// Patient versions in `truth/patient_history.csv`.
    pub patient_versions: u64,
    /// Encounters in `truth/encounters.csv` (ED visits, direct admissions, cancelled ones).
    pub encounters: u64,
    /// Encounters that started in the ED.
    pub ed_visits: u64,
    /// Encounters admitted to a bed (not cancelled).
    pub inpatient_admissions: u64,
    /// Encounters cancelled by A11.
    pub cancelled_encounters: u64,
    /// Rows of `truth/location_stays.csv`.
    pub location_stays: u64,
    /// Clean ADT events by trigger (one per real event; before duplication).
    pub adt_events_by_type: BTreeMap<String, u64>,
    /// ADT messages delivered (files / stream), duplicates included.
    pub adt_messages: u64,
    /// Delivered ADT messages by trigger.
    pub adt_messages_by_type: BTreeMap<String, u64>,
    /// Delivered ADT messages by format (`hl7`, `json`).
    pub adt_messages_by_format: BTreeMap<String, u64>,
    /// Corrected re-sends delivered (clean copies, under a new message id, of messages with a
    /// content defect; included in `adt_messages`).
    #[serde(default)]
    pub corrected_resends: u64,
    /// Identity-changing A08s delivered after their encounter's next message (not defects).
    #[serde(default)]
    pub a08_overtaken: u64,
    /// Data rows in all `patients_*.csv` (re-deliveries excluded).
    pub ehr_patient_rows: u64,
    /// Data rows in all `encounters_*.csv` (re-deliveries excluded).
    pub ehr_encounter_rows: u64,
    /// Lines of `truth/manifest.jsonl` per defect class.
    pub defects: BTreeMap<String, u64>,
    /// Offered/injected counts per defect class and source, in each source's sampling unit
    /// (ADT message, CSV row, EHR file for `duplicate_delivery`, departments row).
    pub defect_tally: BTreeMap<String, BTreeMap<String, DefectTally>>,
    /// Files written (excluding `truth/summary.json` itself).
    pub files_written: u64,
    /// Bytes written (excluding `truth/summary.json` itself).
    pub bytes_written: u64,
}

/// Stream id of the departments-file defect injector.
const DEPARTMENTS_STREAM: u64 = 400;
/// Stream id of the EHR-extract defect injector.
const EHR_STREAM: u64 = 500;

fn write_adt(
    out: &mut Outputs,
    engine: &Engine,
    batch: &[model::Outgoing],
) -> Result<(), SimError> {
    // Group by (hospital, delivery day, format); the batch is in delivery order, so each group
    // keeps delivery order.
    let mut groups: BTreeMap<(usize, i64, MessageFormat), Vec<&model::Outgoing>> = BTreeMap::new();
    for m in batch {
        let day = (m.deliver_ms / 1000).div_euclid(DAY);
        groups.entry((m.hosp, day, m.format)).or_default().push(m);
    }
    for ((h, day, fmt), msgs) in groups {
        let sim = engine
            .sims
            .iter()
            .find(|s| s.plan.index == h)
            .expect("message of a simulated hospital");
        let ext = match fmt {
            MessageFormat::Hl7 => "hl7",
            MessageFormat::Json => "ndjson",
        };
        let rel = format!("adt/{}/{}.{ext}", time::ymd(day), sim.id());
        let mut f = out.create(&rel)?;
        let end = match fmt {
            MessageFormat::Hl7 => sim.plan.spec.framing.message_end(),
            MessageFormat::Json => "\n",
        };
        for m in msgs {
            f.text(&m.payload)?;
            f.text(end)?;
        }
        out.close(f)?;
    }
    Ok(())
}

fn write_manifest(
    sink: &mut io::Sink,
    entries: &mut Vec<ManifestEntry>,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), SimError> {
    for e in entries.drain(..) {
        let line = serde_json::to_string(&e).map_err(|source| SimError::Json {
            what: "manifest entry",
            source,
        })?;
        sink.text(&line)?;
        sink.text("\n")?;
        *counts.entry(e.defect).or_default() += 1;
    }
    Ok(())
}

/// Writes only the reference data [`generate`] writes for `cfg` (hospitals, and departments with
/// their planned capacity changes) into `out/reference/`, byte for byte: what a live feed from
/// [`stream`] needs beside it.
pub fn write_reference_data(cfg: &SimConfig, out: &Path) -> Result<(), SimError> {
    cfg.validate()?;
    let engine = Engine::new(cfg)?;
    let mut outputs = Outputs::new(out)?;
    let rates: BTreeMap<DefectClass, f64> =
        ALL_CLASSES.iter().map(|c| (*c, cfg.rate(*c))).collect();
    let mut dep_inj = Injector::new(rates, rng::SimRng::new(cfg.seed, DEPARTMENTS_STREAM));
    let mut dep_manifest = Vec::new();
    let plans = engine.plans();
    reference::write_reference(&mut outputs, &plans, &mut dep_inj, &mut dep_manifest)
}

/// Generate a complete data set into `out` (which must be missing or empty):
///
/// - `reference/hospitals.csv`, `reference/departments.csv`
/// - `adt/YYYY-MM-DD/<hospital_id>.hl7` and `.ndjson` (grouped by delivery day, UTC)
/// - `ehr/YYYY-MM-DD/patients_YYYY-MM-DD.csv`, `encounters_YYYY-MM-DD.csv`
/// - `truth/` — `manifest.jsonl`, `location_stays.csv`, `encounters.csv`, `patient_history.csv`,
///   `department_history.csv`, `config.json`, `summary.json`
///
/// The same configuration always produces byte-identical files.
pub fn generate(cfg: &SimConfig, out: &Path) -> Result<Summary, SimError> {
    cfg.validate()?;
    if out.exists() {
        let mut rd = std::fs::read_dir(out).map_err(|e| SimError::io(out, e))?;
        if rd.next().is_some() {
            return Err(SimError::OutputNotEmpty(out.to_path_buf()));
        }
    }
    let mut engine = Engine::new(cfg)?;
    let mut outputs = Outputs::new(out)?;
    let mut defect_lines: BTreeMap<String, u64> = BTreeMap::new();
    let mut manifest = outputs.create("truth/manifest.jsonl")?;

    let rates: BTreeMap<DefectClass, f64> =
        ALL_CLASSES.iter().map(|c| (*c, cfg.rate(*c))).collect();
    let mut dep_inj = Injector::new(
        rates.clone(),
        rng::SimRng::new(cfg.seed, DEPARTMENTS_STREAM),
    );
    let mut dep_manifest = Vec::new();
    {
        let plans = engine.plans();
        reference::write_reference(&mut outputs, &plans, &mut dep_inj, &mut dep_manifest)?;
    }
    write_manifest(&mut manifest, &mut dep_manifest, &mut defect_lines)?;

    let mut ehr = ehr::EhrWriter::new(Injector::new(rates, rng::SimRng::new(cfg.seed, EHR_STREAM)));
    let lang_day = cfg.language_day() as i64;
    let ins_day = cfg.insurance_day() as i64;
    for d in 0..cfg.days as i64 {
        let day_end = engine.start + (d + 1) * DAY;
        engine.run_until(day_end);
        let batch = engine.drain(day_end * 1000);
        write_adt(&mut outputs, &engine, &batch)?;
        drop(batch);
        for sim in &mut engine.sims {
            write_manifest(&mut manifest, &mut sim.manifest, &mut defect_lines)?;
        }
        ehr.write_day(
            &mut outputs,
            engine.start_day + d,
            &mut engine.sims,
            d >= lang_day,
            d >= ins_day,
        )?;
        write_manifest(&mut manifest, &mut ehr.manifest, &mut defect_lines)?;
    }
    engine.finish();
    let rest = engine.drain(i64::MAX);
    write_adt(&mut outputs, &engine, &rest)?;
    for sim in &mut engine.sims {
        write_manifest(&mut manifest, &mut sim.manifest, &mut defect_lines)?;
    }
    outputs.close(manifest)?;

    let tc = truth::write_truth(&mut outputs, &engine.sims)?;
    {
        let plans = engine.plans();
        reference::write_department_history(&mut outputs, &plans)?;
    }
    let cfg_json = serde_json::to_string_pretty(cfg).map_err(|source| SimError::Json {
        what: "config",
        source,
    })?;
    let mut f = outputs.create("truth/config.json")?;
    f.text(&cfg_json)?;
    f.text("\n")?;
    outputs.close(f)?;

    // Summary.
    let mut summary = Summary {
        seed: cfg.seed,
        start_date: cfg.start_date.to_string(),
        days: cfg.days,
        hospitals: engine.sims.iter().map(|s| s.id().to_string()).collect(),
        patients: tc.patients,
        patient_versions: tc.patient_versions,
        encounters: tc.encounters,
        ed_visits: tc.ed_visits,
        inpatient_admissions: tc.inpatient_admissions,
        cancelled_encounters: tc.cancelled,
        location_stays: tc.stays,
        adt_events_by_type: BTreeMap::new(),
        adt_messages: 0,
        adt_messages_by_type: BTreeMap::new(),
        adt_messages_by_format: BTreeMap::new(),
        corrected_resends: 0,
        a08_overtaken: 0,
        ehr_patient_rows: ehr.patient_rows,
        ehr_encounter_rows: ehr.encounter_rows,
        defects: defect_lines,
        defect_tally: BTreeMap::new(),
        files_written: 0,
        bytes_written: 0,
    };
    let mut tallies: Vec<BTreeMap<(DefectClass, Source), DefectTally>> =
        vec![dep_inj.tally(), ehr.inj.tally()];
    for sim in &engine.sims {
        for (k, v) in &sim.counts.events {
            *summary.adt_events_by_type.entry(k.to_string()).or_default() += v;
        }
        for (k, v) in &sim.counts.delivered_by_type {
            *summary
                .adt_messages_by_type
                .entry(k.to_string())
                .or_default() += v;
            summary.adt_messages += v;
        }
        for (k, v) in &sim.counts.delivered_by_format {
            *summary
                .adt_messages_by_format
                .entry(k.to_string())
                .or_default() += v;
        }
        summary.corrected_resends += sim.counts.corrected_resends;
        summary.a08_overtaken += sim.counts.a08_overtaken;
        tallies.push(sim.inj.tally());
    }
    for t in &tallies {
        for ((class, source), v) in t {
            let e = summary
                .defect_tally
                .entry(class.id().to_string())
                .or_default()
                .entry(source.id().to_string())
                .or_default();
            e.offered += v.offered;
            e.injected += v.injected;
        }
    }
    summary.files_written = outputs.files;
    summary.bytes_written = outputs.bytes;
    let sjson = serde_json::to_string_pretty(&summary).map_err(|source| SimError::Json {
        what: "summary",
        source,
    })?;
    let mut f = outputs.create("truth/summary.json")?;
    f.text(&sjson)?;
    f.text("\n")?;
    outputs.close(f)?;
    Ok(summary)
}
