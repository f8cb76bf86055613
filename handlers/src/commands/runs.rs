//! `patientflow runs [--limit N] [--failed] [--stage S] [--json]`: recent stage runs from the run
//! ledger, newest first, and one summary line per stage.

use anyhow::Context;
use chrono::{DateTime, Utc};
use patientflow_core::ops::ledger::{self, RunFilter, RunRecord, StageSummary};
use patientflow_core::storage::Lake;

use crate::cli::RunsArgs;
use crate::Outcome;

/// Errors longer than this are cut in the table (`--json` has them whole).
const ERROR_WIDTH: usize = 60;

/// Prints the recent runs and the per-stage summary.
pub async fn run(lake_url: &str, args: RunsArgs) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let filter = RunFilter {
        limit: args.limit,
        failed_only: args.failed,
        stage: args.stage.clone(),
    };
    let runs = ledger::recent(&lake, &filter)
        .await
        .context("reading the run ledger")?;
    let stages = ledger::summarize(&lake, &runs)
        .await
        .context("summarising the run ledger")?;
    if args.json {
        let out = serde_json::json!({"runs": runs, "stages": stages});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Success);
    }
    if runs.is_empty() {
        println!(
            "no runs{} in {}",
            match (&args.stage, args.failed) {
                (Some(s), true) => format!(" (failed, stage {s})"),
                (Some(s), false) => format!(" (stage {s})"),
                (None, true) => " (failed)".into(),
                (None, false) => String::new(),
            },
            ledger::RUN_LEDGER.sql_name()
        );
        return Ok(Outcome::Success);
    }
    print!("{}", table(&runs));
    println!();
    for s in &stages {
        println!("{}", summary_line(s));
    }
    Ok(Outcome::Success)
}

/// The runs as an aligned text table.
fn table(runs: &[RunRecord]) -> String {
    let header = [
        "started (UTC)",
        "stage",
        "trigger",
        "duration",
        "status",
        "rows in",
        "rows out",
        "quarantined",
        "error",
    ];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|r| {
            [
                time(r.started_at),
                r.stage.clone(),
                r.trigger.clone(),
                duration(r.duration_ms),
                if r.retry_count > 0 {
                    format!("{} (retry {})", r.status, r.retry_count)
                } else {
                    r.status.clone()
                },
                r.rows_in.to_string(),
                r.rows_out.to_string(),
                r.rows_quarantined.to_string(),
                r.error.as_deref().map(shorten).unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Counts are right-aligned, text left-aligned; the last column is not padded.
    let numeric = [false, false, false, true, false, true, true, true, false];
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (k, cell) in cells.iter().enumerate() {
            let last = k + 1 == cells.len();
            let pad = widths[k].saturating_sub(cell.chars().count());
            if numeric[k] {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// One stage's summary line.
fn summary_line(s: &StageSummary) -> String {
    let when = |t: Option<DateTime<Utc>>| t.map(time).unwrap_or_else(|| "never".into());
    let ms = |v: Option<i64>| v.map(duration).unwrap_or_else(|| "-".into());
    format!(
        "{}: {} run{} shown ({} failed); last success {}; last failure {}; duration p50 {}, p95 {}",
        s.stage,
        s.runs,
        if s.runs == 1 { "" } else { "s" },
        s.failed,
        when(s.last_success),
        when(s.last_failure),
        ms(s.p50_ms),
        ms(s.p95_ms)
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let secs = ms / 1000;
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

/// An error on one line, cut to [`ERROR_WIDTH`] characters.
fn shorten(error: &str) -> String {
    let one_line = error.replace(['\r', '\n'], " ");
    if one_line.chars().count() <= ERROR_WIDTH {
        return one_line;
    }
    let cut: String = one_line.chars().take(ERROR_WIDTH - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_errors_read_at_a_glance() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 min 05 s");
        assert_eq!(shorten("short"), "short");
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), ERROR_WIDTH);
        assert!(shorten(&long).ends_with('…'));
    }

    #[test]
    fn summary_lines_say_never_for_missing_outcomes() {
        let s = StageSummary {
            stage: "gold".into(),
            runs: 1,
            failed: 1,
            last_success: None,
            last_failure: DateTime::from_timestamp(0, 0),
            p50_ms: Some(5),
            p95_ms: Some(5),
        };
        assert_eq!(
            summary_line(&s),
            "gold: 1 run shown (1 failed); last success never; last failure 1970-01-01 00:00:00; duration p50 5 ms, p95 5 ms"
        );
    }
}
