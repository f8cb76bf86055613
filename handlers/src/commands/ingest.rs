//! `patientflow ingest adt|ehr|departments PATHS…`: each is one Bronze stage run, recorded in the run
//! ledger (trigger `cli`).

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use patientflow_core::bronze::{self, adt::AdtIngestor, profiles::Profile, IngestReport};
use patientflow_core::ops::ledger::{tracked, RunContext};
use patientflow_core::storage::Lake;

use crate::cli::IngestCommand;
use crate::Outcome;

/// Runs one ingest subcommand.
pub async fn run(lake_url: &str, cmd: IngestCommand) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let bar = progress_bar();
    let progress = |file: &str, rows: usize| {
        bar.inc(1);
        bar.set_message(format!("{rows:>7} rows  {file}"));
    };
    let ctx = |command: &str, run_id: &str| {
        RunContext::new("cli")
            .with_run_id(run_id)
            .with_detail("command", command)
    };
    let (report, json) = match cmd {
        IngestCommand::Adt(args) => {
            let run_id = bronze::new_run_id("ingest-adt");
            let ingestor = AdtIngestor::new(lake.clone());
            let work = ingestor.ingest_paths(&args.paths, &run_id, &progress);
            (
                tracked(&lake, "bronze.adt", &ctx("ingest adt", &run_id), work).await?,
                args.json,
            )
        }
        IngestCommand::Ehr(args) => {
            let run_id = bronze::new_run_id("ingest-ehr");
            let profile = match &args.profile {
                None => None,
                Some(name) if std::path::Path::new(name).is_file() => {
                    let text = std::fs::read_to_string(name)
                        .with_context(|| format!("reading profile {name}"))?;
                    Some(Profile::from_json(&text)?)
                }
                Some(name) => Some(bronze::ehr::builtin_profile(name)?),
            };
            let work =
                bronze::ehr::ingest_paths(&lake, &args.paths, profile.as_ref(), &run_id, &progress);
            (
                tracked(&lake, "bronze.ehr", &ctx("ingest ehr", &run_id), work).await?,
                args.json,
            )
        }
        IngestCommand::Departments(args) => {
            let run_id = bronze::new_run_id("ingest-reference");
            let work = bronze::reference::ingest_paths(&lake, &args.paths, &run_id, &progress);
            (
                tracked(
                    &lake,
                    "bronze.reference",
                    &ctx("ingest departments", &run_id),
                    work,
                )
                .await?,
                args.json,
            )
        }
    };
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.errors.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} files  {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn print_report(r: &IngestReport) {
    println!("run {}", r.run_id);
    println!(
        "  inputs: {} seen, {} ingested, {} already ingested (same content), {} not applicable",
        r.inputs_seen,
        r.inputs_ingested,
        r.inputs_already_ingested,
        r.inputs_not_applicable.len()
    );
    if r.rows_written.is_empty() {
        println!("  rows written: none (nothing new)");
    }
    for (table, rows) in &r.rows_written {
        let version = r
            .versions
            .get(table)
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        println!("  rows written: {rows} to {table}{version}");
    }
    println!(
        "  re-deliveries skipped: {}, id conflicts kept and flagged: {}, rows flagged: {}",
        r.duplicates_skipped, r.id_conflicts, r.flagged_rows
    );
    for e in &r.errors {
        eprintln!("  not ingested: {}: {}", e.input, e.reason);
    }
}
