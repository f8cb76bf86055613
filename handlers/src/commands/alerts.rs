//! `patientflow alerts [--json]`: the open incidents and the outbox (`ops_alert_outbox`), newest
//! notices first. `patientflow alerts evaluate [--json]`: every alert rule once, then delivery of what
//! is due, with the settings of the environment (`PATIENTFLOW_ALERT_*`, docs/operations.md).

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};
use patientflow_core::ops::alerts::{self, AlertSettings, Rule};
use patientflow_core::storage::Lake;

use crate::Outcome;

/// Options of `alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// What to do; without one, list the open incidents and the outbox.
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
    /// Notices listed at most, newest first.
    #[arg(long, default_value_t = 20, global = true)]
    pub limit: usize,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `alerts`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Run every alert rule once and deliver the notices that are due.
    Evaluate,
}

/// Runs `alerts`.
pub async fn run(lake_url: &str, args: AlertsArgs) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    if let Some(AlertsCommand::Evaluate) = args.command {
        let mut settings = AlertSettings::from_env().context("alert settings")?;
        // Asked for explicitly: evaluate even when alerts are not switched on for stage runs.
        settings.enabled = true;
        let report = alerts::run_cycle(&lake, &settings, &Rule::ALL, Utc::now())
            .await
            .context("evaluating the alert rules")?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "evaluated {} rules; fired {:?}; resolved {:?}; delivered {}, failed attempts {}, pending {}; open incidents {}",
                report.evaluated.len(),
                report.fired,
                report.resolved,
                report.delivered,
                report.failed_attempts,
                report.pending,
                report.open
            );
            for (rule, e) in &report.rule_errors {
                println!("  rule {rule} not evaluated: {e}");
            }
            if settings.webhook_url.is_none() {
                println!("  no PATIENTFLOW_ALERT_WEBHOOK_URL: notices wait in the outbox");
            }
        }
        return Ok(
            if report.rule_errors.is_empty() && report.failed_attempts == 0 {
                Outcome::Success
            } else {
                Outcome::Partial
            },
        );
    }
    let (open, mut outbox) = alerts::status(&lake)
        .await
        .context("reading the alert outbox")?;
    outbox.reverse();
    outbox.truncate(args.limit);
    if args.json {
        let out = serde_json::json!({"open": open, "outbox": outbox});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Success);
    }
    println!("open incidents: {}", open.len());
    for i in &open {
        println!(
            "  {:<5} {:<40} since {}  {}{}",
            i.severity,
            i.incident_key,
            i.opened_at.format("%Y-%m-%d %H:%M:%S"),
            i.description,
            if i.notified {
                ""
            } else {
                "  (not yet delivered)"
            }
        );
    }
    println!("outbox (newest first):");
    for r in &outbox {
        let state = match (&r.delivered_at, &r.last_error) {
            (Some(t), _) => format!("delivered {}", t.format("%Y-%m-%d %H:%M:%S")),
            (None, Some(e)) => format!(
                "pending, {} attempts, next {}: {e}",
                r.attempts,
                r.next_attempt_at.format("%H:%M:%S")
            ),
            (None, None) => "pending".into(),
        };
        println!(
            "  {} {:<8} {:<40} {state}",
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.kind,
            r.incident_key
        );
    }
    Ok(Outcome::Success)
}
