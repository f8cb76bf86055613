//! `patientflow refresh silver [--full]`, `patientflow refresh gold [--full] [--as-of T]`: each is one
//! stage run, recorded in the run ledger (trigger `cli`), failed runs included.

use anyhow::Context;
use patientflow_core::ops::ledger::{tracked, RunContext};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions, StageReport};
use patientflow_core::storage::Lake;

use crate::cli::RefreshCommand;
use crate::Outcome;

/// Runs one refresh and prints its report.
pub async fn run(lake_url: &str, cmd: RefreshCommand) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let (report, json) = match cmd {
        RefreshCommand::Silver(args) => {
            let options = RefreshOptions {
                full: args.full,
                trigger: "cli".into(),
            };
            let ctx = RunContext::new("cli")
                .with_detail("command", "refresh silver")
                .with_detail("full", args.full);
            (
                tracked(&lake, "silver", &ctx, refresh_silver(&lake, &options))
                    .await
                    .context("Silver refresh")?,
                args.json,
            )
        }
        RefreshCommand::Gold(args) => {
            let options = RefreshOptions {
                full: args.common.full,
                trigger: "cli".into(),
            };
            let ctx = RunContext::new("cli")
                .with_detail("command", "refresh gold")
                .with_detail("full", args.common.full);
            let work = patientflow_core::gold::refresh_as_of(&lake, &options, args.as_of);
            let report = tracked(&lake, "gold", &ctx, work)
                .await
                .context("Gold refresh")?;
            (report, args.common.json)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(Outcome::Success)
}

fn print_report(r: &StageReport) {
    let secs = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
    println!(
        "{} refresh {}: {} in {secs:.2} s",
        r.stage, r.run_id, r.status
    );
    println!(
        "  rows in {}, valid {}, quarantined {}",
        r.rows_in, r.rows_out, r.rows_quarantined
    );
    if let Some(sources) = r.details.get("sources").and_then(|s| s.as_object()) {
        for (name, s) in sources {
            let findings = s.get("findings").and_then(|f| f.as_object()).map(|f| {
                f.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            println!(
                "  {name}: in {} valid {}  {}",
                s.get("records_in").unwrap_or(&serde_json::Value::Null),
                s.get("records_valid").unwrap_or(&serde_json::Value::Null),
                findings.unwrap_or_default()
            );
        }
    }
    if let Some(reason) = r.details.get("reason").and_then(|v| v.as_str()) {
        println!("  {reason}");
    }
    if let Some(mode) = r.details.get("mode").and_then(|v| v.as_str()) {
        let as_of = r
            .details
            .get("as_of")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let touched = r
            .details
            .get("touched_encounters")
            .unwrap_or(&serde_json::Value::Null);
        println!("  mode {mode}, as of {as_of}, touched encounters {touched}");
    }
    if let Some(tables) = r.details.get("rows_written").and_then(|v| v.as_object()) {
        for (name, n) in tables {
            println!("  {name}: {n} rows written");
        }
    }
}
