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

use serde_json::json;

use crate::bronze;
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

    let refdata = reference::load_reference(lake).await?;
    let since = if options.full {
        None
    } else {
        lake.checkpoint(ADT_EVENTS, bronze::ADT_MESSAGES).await?
    };
    if let Some(inc) = lake.increment(bronze::ADT_MESSAGES, since).await? {
        if !inc.is_empty() || (options.full && inc.since.is_none()) {
            let typed = events::type_increment(&inc, &refdata).await?;
            figures.add_findings("adt", typed.rows_in, typed.events.len(), &typed.findings);
            quarantine::write(lake, typed.quarantine, &[], &run_id).await?;
            events::write_events(lake, &inc, &typed.events, &run_id, options.full).await?;
        }
    }
    fault_after(lake, "events")?;

    for (input, output) in [
        (bronze::EHR_PATIENTS, EHR_PATIENTS),
        (bronze::EHR_ENCOUNTERS, EHR_ENCOUNTERS),
    ] {
        let since = if options.full {
            None
        } else {
            lake.checkpoint(output, input).await?
        };
        let Some(inc) = lake.increment(input, since).await? else {
            continue;
        };
        if inc.is_empty() {
            continue;
        }
        let mut out = ehr::EhrOutput::default();
        let (source, rows) = if output == EHR_PATIENTS {
            (
                "ehr_patients",
                ehr::patients(&inc, &refdata, &run_id, &mut out).await?,
            )
        } else {
            (
                "ehr_encounters",
                ehr::encounters(&inc, &refdata, &run_id, &mut out).await?,
            )
        };
        // Quarantine first, then the typed rows with the checkpoint: see the module comment.
        quarantine::write(lake, std::mem::take(&mut out.quarantine), &[], &run_id).await?;
        ehr::commit(lake, output, rows, &inc, options.full).await?;
        figures.add_findings(source, out.rows_in, out.rows_out, &out.findings);
    }
    fault_after(lake, "ehr")?;

    let mut enc = encounters::refresh(lake, options.full, &run_id).await?;
    // Re-evaluated encounters find their earlier late events again: count only the new findings.
    let late = quarantine::write(lake, std::mem::take(&mut enc.late), &[], &run_id).await?;
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

    let pat = patients::refresh(lake, options.full).await?;
    figures.add_findings(
        "patients",
        pat.versions,
        pat.versions,
        &pat.quarantine.iter().fold(BTreeMap::new(), |mut m, q| {
            *m.entry(q.finding.rule.id).or_insert(0usize) += 1;
            m
        }),
    );
    // Write the new verdicts first, then withdraw the ones they replace: a crash in between leaves
    // a stale finding for the next run to withdraw, never a missing one.
    quarantine::write(lake, pat.quarantine.clone(), &[], &run_id).await?;
    let withdrawn = quarantine::withdraw_stale(
        lake,
        &dq::rules::PAT_IDENTITY_CONFLICT,
        &pat.rejudged,
        pat.rejudged_all,
        &pat.quarantine,
    )
    .await?;
    figures.details.insert(
        "patients".into(),
        json!({"rebuilt": pat.patients, "versions": pat.versions, "identity_findings_withdrawn": withdrawn}),
    );
    fault_after(lake, "patients")?;

    let wrote_dq = report::write_results(lake, &run_id, started_at, &figures).await?;
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
        details: figures.to_json(),
    })
}
