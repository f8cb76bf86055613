//! Silver: parsed, typed, cleansed, deduplicated, validated, event-time ordered.
//!
//! A refresh runs these steps, each reading only what its inputs gained since its own checkpoint and
//! committing its output together with the new checkpoint (Delta application-transaction markers
//! `src:<input table>` on the output table):
//!
//! 1. reference — `bronze_hospitals`, `bronze_departments` → `silver_hospitals`, `silver_dim_department` (SCD2);
//! 2. events — `bronze_adt_messages` → `silver_adt_events` (+ quarantine);
//! 3. EHR — `bronze_ehr_patients`, `bronze_ehr_encounters` → `silver_ehr_patients`, `silver_ehr_encounters` (+ quarantine);
//! 4. encounters — `silver_adt_events`, `silver_ehr_encounters` → `silver_encounters`, `silver_location_stays`;
//! 5. patients — `silver_adt_events`, `silver_ehr_patients` → `silver_dim_patient` (SCD2, + quarantine);
//! 6. the run's data-quality figures → `silver_dq_results`.
//!
//! Steps 2 and 3 run at the same time, then steps 4 and 5: each pair reads and writes disjoint tables
//! (only the quarantine is shared; its commits take turns), so the two tasks use both cores.
//!
//! Quarantine rows are written before the output that carries the checkpoint, and are idempotent, so a
//! crash between any two commits leaves the next run to redo exactly the unfinished part.

pub mod adt_events;
pub mod dq;
pub mod ehr;
pub mod encounter_state;
pub mod encounters;
pub mod events;
pub mod identity;
pub mod patients;
pub mod quarantine;
pub mod reference;
pub mod report;
pub mod scd2;
pub mod schema_evolution;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::Mutex;

use crate::bronze;
use crate::ops::metrics::StepClock;
use crate::pipeline::{RefreshOptions, StageReport};
use crate::storage::{Lake, Layer, TableRef};
use crate::Result;

/// Hospitals (latest metadata).
pub const HOSPITALS: TableRef = TableRef::new(Layer::Silver, "hospitals");
/// Department dimension, SCD Type 2.
pub const DIM_DEPARTMENT: TableRef = TableRef::new(Layer::Silver, "dim_department");
/// Applied ADT events.
pub const ADT_EVENTS: TableRef = TableRef::new(Layer::Silver, "adt_events");
/// Typed EHR patient rows.
pub const EHR_PATIENTS: TableRef = TableRef::new(Layer::Silver, "ehr_patients");
/// Typed EHR encounter rows.
pub const EHR_ENCOUNTERS: TableRef = TableRef::new(Layer::Silver, "ehr_encounters");
/// One row per encounter.
pub const ENCOUNTERS: TableRef = TableRef::new(Layer::Silver, "encounters");
/// One row per encounter per department/bed interval.
pub const LOCATION_STAYS: TableRef = TableRef::new(Layer::Silver, "location_stays");
/// Patient dimension, SCD Type 2.
pub const DIM_PATIENT: TableRef = TableRef::new(Layer::Silver, "dim_patient");
/// Rejected records and left-out attributes.
pub const QUARANTINE: TableRef = TableRef::new(Layer::Silver, "quarantine");
/// Data-quality figures per run, source and rule.
pub const DQ_RESULTS: TableRef = TableRef::new(Layer::Silver, "dq_results");

/// Every Silver table.
pub const TABLES: [TableRef; 10] = [
    HOSPITALS,
    DIM_DEPARTMENT,
    ADT_EVENTS,
    EHR_PATIENTS,
    EHR_ENCOUNTERS,
    ENCOUNTERS,
    LOCATION_STAYS,
    DIM_PATIENT,
    QUARANTINE,
    DQ_RESULTS,
];

/// The steps of a refresh, in order; a fault can be injected after any of them in tests.
pub const STEPS: [&str; 6] = [
    "reference",
    "events",
    "ehr",
    "encounters",
    "patients",
    "dq_results",
];

/// Test hook: fails a refresh of one lake after the named step, once. Only compiled with the
/// `fault-injection` feature, which the end-to-end tests enable; it proves that an interruption between
/// any two steps is repaired by the next run.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use std::collections::HashMap;
    use std::sync::Mutex;

    static FAULTS: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

    /// The next refresh of the lake at `lake_root` fails after `step`.
    pub fn inject_after(lake_root: &str, step: &str) {
        if let Ok(mut f) = FAULTS.lock() {
            f.get_or_insert_with(HashMap::new)
                .insert(lake_root.to_string(), step.to_string());
        }
    }

    pub(super) fn take(lake_root: &str, step: &str) -> bool {
        let Ok(mut f) = FAULTS.lock() else {
            return false;
        };
        let map = f.get_or_insert_with(HashMap::new);
        if map.get(lake_root).map(String::as_str) == Some(step) {
            map.remove(lake_root);
            return true;
        }
        false
    }
}

fn fault_after(lake: &Lake, step: &str) -> Result<()> {
    #[cfg(feature = "fault-injection")]
    if fault::take(lake.root().as_str(), step) {
        return Err(crate::Error::Storage(format!(
            "injected fault after step {step}"
        )));
    }
    let _ = (lake, step);
    Ok(())
}

/// Runs a Silver refresh: every step, each on what is new for it.
pub async fn refresh(lake: &Lake, options: &RefreshOptions) -> Result<StageReport> {
    let run_id = bronze::new_run_id("silver");
    let started_at = chrono::Utc::now();
    let mut figures = report::RunFigures::default();
    let mut seconds = StepClock::new();

    let mut reference_out = reference::ReferenceOutput::default();
    reference::refresh(lake, options.full, &mut reference_out).await?;
    figures.add_source(
        "reference",
        reference_out.rows_in,
        reference_out.rows_out,
        &reference_out.quarantine,
    );
    quarantine::write(lake, reference_out.quarantine, &[], &run_id).await?;
    fault_after(lake, "reference")?;

    let refdata = Arc::new(reference::load_reference(lake).await?);
    seconds.lap("reference");
    // Events and the EHR extracts read and write disjoint tables: type them concurrently (one task
    // each, so a multi-threaded runtime puts them on separate cores). Their quarantine commits share
    // one table and take turns (`StepRun::quarantine`).
    let step = StepRun {
        lake: lake.clone(),
        full: options.full,
        run_id: run_id.clone(),
        quarantine_turn: Arc::new(Mutex::new(())),
    };
    let events_task = tokio::spawn(timed(refresh_events(step.clone(), refdata.clone())));
    let ehr_task = tokio::spawn(timed(refresh_ehr(step.clone(), refdata)));
    // Both tasks are awaited before any error is returned: no task outlives a failed refresh.
    let (events_result, ehr_result) = (
        joined(events_task.await, "events", &mut seconds),
        joined(ehr_task.await, "ehr", &mut seconds),
    );
    for (source, rows_in, rows_out, findings) in events_result?.into_iter().chain(ehr_result?) {
        figures.add_findings(source, rows_in, rows_out, &findings);
    }
    fault_after(lake, "events")?;
    fault_after(lake, "ehr")?;

    // Encounters and the patient dimension both read Silver events and write disjoint tables.
    let encounters_task = tokio::spawn(timed(refresh_encounters(step.clone())));
    let patients_task = tokio::spawn(timed(refresh_patients(step)));
    let (enc_result, pat_result) = (
        joined(encounters_task.await, "encounters", &mut seconds),
        joined(patients_task.await, "patients", &mut seconds),
    );
    let (enc, late) = enc_result?;
    if late > 0 {
        figures.add_findings(
            "adt",
            0,
            0,
            &BTreeMap::from([(dq::rules::LATE_EVENT.id, late)]),
        );
    }
    figures.details.insert(
        "encounters".into(),
        json!({"rebuilt": enc.encounters, "stays": enc.stays, "whole": enc.rebuilt_whole}),
    );
    fault_after(lake, "encounters")?;

    let (pat, withdrawn) = pat_result?;
    figures.add_findings(
        "patients",
        pat.versions,
        pat.versions,
        &pat.quarantine.iter().fold(BTreeMap::new(), |mut m, q| {
            *m.entry(q.finding.rule.id).or_insert(0usize) += 1;
            m
        }),
    );
    figures.details.insert(
        "patients".into(),
        json!({"rebuilt": pat.patients, "versions": pat.versions, "identity_findings_withdrawn": withdrawn}),
    );
    fault_after(lake, "patients")?;

    seconds.restart();
    let wrote_dq = report::write_results(lake, &run_id, started_at, &figures).await?;
    seconds.lap("dq_results");
    fault_after(lake, "dq_results")?;

    let finished_at = chrono::Utc::now();
    let status = if figures.rows_in() == 0 && enc.encounters == 0 && pat.versions == 0 && !wrote_dq
    {
        "skipped"
    } else {
        "succeeded"
    };
    Ok(StageReport {
        stage: "silver".into(),
        run_id,
        trigger: options.trigger.clone(),
        started_at,
        finished_at,
        status: status.into(),
        rows_in: figures.rows_in() as u64,
        rows_out: figures.rows_out() as u64,
        rows_quarantined: figures.quarantined() as u64,
        error: None,
        details: with_step_seconds(figures.to_json(), &seconds),
    })
}

/// Figures of one source of a refresh: `(source, rows in, rows out, findings per rule)`.
type SourceFigures = (&'static str, usize, usize, BTreeMap<&'static str, usize>);

/// Runs a step and measures its wall time (steps of a pair overlap, so their times are measured
/// each on its own).
async fn timed<T>(step: impl std::future::Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let out = step.await;
    (out, started.elapsed().as_secs_f64())
}

/// The result of a spawned, timed step, with a panic or cancellation turned into an error; its wall
/// time is added to `seconds` under `name`.
fn joined<T>(
    result: std::result::Result<(Result<T>, f64), tokio::task::JoinError>,
    name: &'static str,
    seconds: &mut StepClock,
) -> Result<T> {
    let (out, secs) =
        result.map_err(|e| crate::Error::Storage(format!("a Silver step stopped: {e}")))?;
    seconds.record(name, secs);
    out
}

/// The run's details with `step_seconds`: every step's wall time, in the order the steps started.
fn with_step_seconds(mut details: serde_json::Value, seconds: &StepClock) -> serde_json::Value {
    if let Some(map) = details.as_object_mut() {
        map.insert("step_seconds".into(), seconds.to_json());
    }
    details
}

/// What the concurrently running steps of one refresh share.
#[derive(Clone)]
struct StepRun {
    lake: Lake,
    full: bool,
    run_id: String,
    /// Held for each quarantine commit: the steps' commits to that one table take turns.
    quarantine_turn: Arc<Mutex<()>>,
}

impl StepRun {
    /// What `output` last consumed of `input`; none on a full refresh (start from the beginning).
    async fn since(&self, output: TableRef, input: TableRef) -> Result<Option<i64>> {
        if self.full {
            return Ok(None);
        }
        self.lake.checkpoint(output, input).await
    }

    /// Writes quarantine rows in turn with the other steps. Returns the rows written.
    async fn quarantine(&self, rows: Vec<quarantine::QuarantineRow>) -> Result<usize> {
        let _turn = self.quarantine_turn.lock().await;
        quarantine::write(&self.lake, rows, &[], &self.run_id).await
    }
}

/// Step 2: `bronze_adt_messages` → `silver_adt_events` (+ quarantine).
async fn refresh_events(
    step: StepRun,
    refdata: Arc<adt_events::ReferenceData>,
) -> Result<Vec<SourceFigures>> {
    let since = step.since(ADT_EVENTS, bronze::ADT_MESSAGES).await?;
    let Some(inc) = step.lake.increment(bronze::ADT_MESSAGES, since).await? else {
        return Ok(Vec::new());
    };
    if inc.is_empty() && !(step.full && inc.since.is_none()) {
        return Ok(Vec::new());
    }
    let typed = events::type_increment(&inc, &refdata).await?;
    let (rows_in, rows_out) = (typed.rows_in, typed.events.len());
    step.quarantine(typed.quarantine).await?;
    events::write_events(&step.lake, &inc, &typed.events, &step.run_id, step.full).await?;
    Ok(vec![("adt", rows_in, rows_out, typed.findings)])
}

/// Step 3: the EHR extracts → `silver_ehr_patients`, `silver_ehr_encounters` (+ quarantine).
async fn refresh_ehr(
    step: StepRun,
    refdata: Arc<adt_events::ReferenceData>,
) -> Result<Vec<SourceFigures>> {
    let mut figures = Vec::new();
    for (input, output) in [
        (bronze::EHR_PATIENTS, EHR_PATIENTS),
        (bronze::EHR_ENCOUNTERS, EHR_ENCOUNTERS),
    ] {
        let since = step.since(output, input).await?;
        let Some(inc) = step.lake.increment(input, since).await? else {
            continue;
        };
        if inc.is_empty() {
            continue;
        }
        let mut out = ehr::EhrOutput::default();
        let (source, rows) = if output == EHR_PATIENTS {
            (
                "ehr_patients",
                ehr::patients(&inc, &refdata, &step.run_id, &mut out).await?,
            )
        } else {
            (
                "ehr_encounters",
                ehr::encounters(&inc, &refdata, &step.run_id, &mut out).await?,
            )
        };
        // Quarantine first, then the typed rows with the checkpoint: see the module comment.
        step.quarantine(std::mem::take(&mut out.quarantine)).await?;
        ehr::commit(&step.lake, output, rows, &inc, step.full).await?;
        figures.push((source, out.rows_in, out.rows_out, out.findings));
    }
    Ok(figures)
}

/// Step 4: encounters and stays, then their late-event findings. Returns the output and how many
/// late-event findings are new (re-evaluated encounters find their earlier ones again).
async fn refresh_encounters(step: StepRun) -> Result<(encounters::EncounterOutput, usize)> {
    let mut enc = encounters::refresh(&step.lake, step.full, &step.run_id).await?;
    let late = step.quarantine(std::mem::take(&mut enc.late)).await?;
    Ok((enc, late))
}

/// Step 5: the patient dimension, then its identity verdicts. Returns the output and how many earlier
/// findings were withdrawn.
async fn refresh_patients(step: StepRun) -> Result<(patients::PatientOutput, usize)> {
    let pat = patients::refresh(&step.lake, step.full, &step.run_id).await?;
    // Both commits in one turn. Write the new verdicts first, then withdraw the ones they replace: a
    // crash in between leaves a stale finding for the next run to withdraw, never a missing one.
    let _turn = step.quarantine_turn.lock().await;
    quarantine::write(&step.lake, pat.quarantine.clone(), &[], &step.run_id).await?;
    let withdrawn = quarantine::withdraw_stale(
        &step.lake,
        &dq::rules::PAT_IDENTITY_CONFLICT,
        &pat.rejudged,
        pat.rejudged_all,
        &pat.quarantine,
    )
    .await?;
    Ok((pat, withdrawn))
}
