//! The run ledger (`ops_run_ledger`) end to end: the real binary ingests the hand-written hospital day
//! (tests/common/fixtures.rs), refreshes Silver and Gold, and every stage run leaves exactly one row
//! with the counts its own report gave; a stage that fails leaves a `failed` row with its error while
//! the command still exits non-zero; `patientflow runs` and `patientflow query` read the ledger.

use std::path::Path;
use std::process::Output;

use patientflow_core::ops::ledger::{self, RunContext, RunFilter};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions};
use patientflow_core::storage::Lake;
use patientflow_tests::{fixtures, run_cli, texts};
use serde_json::Value;

/// Runs the binary and parses its stdout as JSON, asserting the exit status.
fn cli_json(lake: &str, args: &[&str], expect_success: bool) -> Value {
    let out = run_cli(lake, args);
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.success(),
        expect_success,
        "{args:?}: status {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stdout}\n{stderr}"))
}

fn runs(lake: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["runs", "--json", "--limit", "100"];
    args.extend_from_slice(extra);
    let v = cli_json(lake, &args, true);
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn the_run<'a>(runs: &'a [Value], run_id: &Value) -> &'a Value {
    let matching: Vec<&Value> = runs.iter().filter(|r| &r["run_id"] == run_id).collect();
    assert_eq!(
        matching.len(),
        1,
        "one ledger row for run {run_id}: {runs:#?}"
    );
    matching[0]
}

fn total_written(report: &Value) -> i64 {
    report["rows_written"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0)
}

fn query_rows(lake: &str, sql: &str) -> Vec<Value> {
    let v = cli_json(lake, &["query", sql, "--format", "json"], true);
    v.as_array().cloned().unwrap_or_default()
}

fn ingest(lake: &str, what: &str, path: &Path) -> Value {
    cli_json(
        lake,
        &["ingest", what, path.to_str().unwrap(), "--json"],
        true,
    )
}

fn assert_failed_exit(out: &Output, what: &str) -> String {
    let (_, stderr) = texts(out);
    assert!(!out.status.success(), "{what} must exit non-zero: {stderr}");
    stderr
}

#[test]
fn every_cli_stage_run_leaves_one_row_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures::write(&dir.path().join("in"));
    let lake_dir = dir.path().join("lake");
    let lake = lake_dir.to_str().unwrap();

    let reference = ingest(lake, "departments", &f.reference);
    let adt = ingest(lake, "adt", &f.adt);
    let ehr = ingest(lake, "ehr", &f.ehr);
    let silver = cli_json(lake, &["refresh", "silver", "--json"], true);
    let gold = cli_json(lake, &["refresh", "gold", "--json"], true);

    let all = runs(lake, &[]);
    assert_eq!(all.len(), 5, "one row per stage run: {all:#?}");
    for (stage, report) in [
        ("bronze.reference", &reference),
        ("bronze.adt", &adt),
        ("bronze.ehr", &ehr),
    ] {
        let row = the_run(&all, &report["run_id"]);
        assert_eq!(row["stage"], stage, "{row}");
        assert_eq!(row["trigger"], "cli");
        assert_eq!(row["status"], "succeeded", "{row}");
        assert_eq!(row["rows_out"], total_written(report), "{stage}: {row}");
        assert!(row["rows_out"].as_i64().unwrap() > 0, "{row}");
        assert_eq!(
            row["rows_in"].as_i64().unwrap(),
            total_written(report) + report["duplicates_skipped"].as_i64().unwrap(),
            "{stage}: {row}"
        );
        assert_eq!(row["rows_quarantined"], report["flagged_rows"], "{row}");
        assert_eq!(row["retry_count"], 0);
        assert!(row["error"].is_null(), "{row}");
        assert!(row["trace_id"].is_null(), "the CLI runs outside any trace");
        assert!(row["duration_ms"].as_i64().unwrap() >= 0);
        assert!(!row["host"].as_str().unwrap().is_empty());
    }
    // The Bronze counts agree with the tables themselves.
    let messages = query_rows(lake, "SELECT COUNT(*) AS n FROM bronze_adt_messages");
    assert_eq!(the_run(&all, &adt["run_id"])["rows_out"], messages[0]["n"]);
    for (stage, report) in [("silver", &silver), ("gold", &gold)] {
        let row = the_run(&all, &report["run_id"]);
        assert_eq!(row["stage"], stage);
        assert_eq!(row["trigger"], "cli");
        assert_eq!(row["status"], report["status"], "{row}");
        for k in ["rows_in", "rows_out", "rows_quarantined"] {
            assert_eq!(row[k], report[k], "{stage} {k}: {row}");
        }
        assert_eq!(row["details"]["command"], format!("refresh {stage}"));
    }
    assert_eq!(silver["status"], "succeeded");
    assert!(silver["rows_quarantined"].as_i64().unwrap() > 0, "{silver}");
    assert_eq!(gold["status"], "succeeded");
    assert!(gold["rows_out"].as_i64().unwrap() > 0, "{gold}");

    // Nothing new: the next Silver run is recorded too, as skipped.
    cli_json(lake, &["refresh", "silver", "--json"], true);
    let silver_runs = runs(lake, &["--stage", "silver"]);
    assert_eq!(silver_runs.len(), 2, "{silver_runs:#?}");
    assert_eq!(silver_runs[0]["status"], "skipped", "newest first");

    // The per-stage summary: last success, and p50/p95 over the runs shown.
    let v = cli_json(lake, &["runs", "--json"], true);
    let stages = v["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "bronze.adt",
            "bronze.ehr",
            "bronze.reference",
            "silver",
            "gold"
        ]
    );
    let s = stages.iter().find(|s| s["stage"] == "silver").unwrap();
    assert_eq!(s["runs"], 2);
    assert!(
        s["last_success"].is_string() && s["last_failure"].is_null(),
        "{s}"
    );
    assert!(s["p50_ms"].as_i64().unwrap() <= s["p95_ms"].as_i64().unwrap());

    // The text table: a header, one line per run, one summary line per stage.
    let out = run_cli(lake, &["runs", "--limit", "3"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("started (UTC)") && lines[0].contains("quarantined"),
        "{stdout}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("  cli  ")).count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.contains("silver: 2 runs shown (0 failed); last success 20"),
        "{stdout}"
    );
    assert!(stdout.contains("gold: 1 run shown"), "{stdout}");
}

#[test]
fn a_failing_stage_leaves_a_failed_row_and_still_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures::write(&dir.path().join("in"));
    let lake_dir = dir.path().join("lake");
    let lake = lake_dir.to_str().unwrap();
    ingest(lake, "departments", &f.reference);
    ingest(lake, "adt", &f.adt);
    cli_json(lake, &["refresh", "silver", "--json"], true);

    // Silver's data files disappear under Gold (a corrupt lake): the Gold refresh fails.
    let mut removed = 0;
    for entry in walk(&lake_dir.join("silver")) {
        if entry.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&entry).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0);
    let out = run_cli(lake, &["refresh", "gold", "--full"]);
    let stderr = assert_failed_exit(&out, "a failed Gold refresh");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Gold refresh"), "{stderr}");

    // An input that cannot be read fails its ingest run (exit 1: the run finished, an input failed).
    let missing = dir.path().join("no-such-file.hl7");
    let out = run_cli(lake, &["ingest", "adt", missing.to_str().unwrap()]);
    assert_failed_exit(&out, "an ingest of a missing file");
    assert_eq!(out.status.code(), Some(1));

    let failed = runs(lake, &["--failed"]);
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_eq!(failed[0]["stage"], "bronze.adt", "newest first");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("no-such-file.hl7"),
        "{}",
        failed[0]
    );
    let gold = &failed[1];
    assert_eq!(gold["stage"], "gold");
    assert_eq!(gold["status"], "failed");
    assert_eq!(gold["trigger"], "cli");
    let error = gold["error"].as_str().unwrap();
    assert!(!error.is_empty());
    // The ledger's error is the one the command printed.
    assert!(stderr.contains(error), "ledger: {error}\nstderr: {stderr}");
    assert!(gold["run_id"].as_str().unwrap().starts_with("gold-"));
    // The successful runs are still there, and `--failed` left them out.
    assert_eq!(runs(lake, &[]).len(), 5);
    let v = cli_json(
        lake,
        &["runs", "--failed", "--json", "--stage", "gold"],
        true,
    );
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["stages"][0]["stage"], "gold");
    assert!(v["stages"][0]["last_failure"].is_string(), "{v}");
    assert!(v["stages"][0]["last_success"].is_null(), "{v}");

    // SQL over the ledger, through the same endpoint as every other table.
    let rows = query_rows(
        lake,
        "SELECT stage, trigger, status, error, retry_count FROM ops_run_ledger \
         WHERE status = 'failed' ORDER BY started_at",
    );
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0]["stage"], "gold");
    assert_eq!(rows[0]["error"], gold["error"]);
    assert_eq!(rows[0]["retry_count"], 0);
    let by_stage = query_rows(
        lake,
        "SELECT stage, COUNT(*) AS runs, SUM(rows_out) AS rows_out FROM ops_run_ledger GROUP BY stage ORDER BY stage",
    );
    assert_eq!(by_stage.len(), 4, "{by_stage:#?}");

    // `tables` lists the ledger beside the data tables.
    let tables = cli_json(lake, &["tables", "--json"], true);
    let ledger_table = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ops_run_ledger")
        .expect("ops_run_ledger in `tables`");
    assert_eq!(ledger_table["rows"], 5);
}

/// A Silver refresh interrupted by the fault-injection hook is recorded as failed, with the error the
/// refresh returned; the next run repairs Silver and is recorded as succeeded.
#[tokio::test]
async fn an_interrupted_silver_refresh_is_recorded_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures::write(&dir.path().join("in"));
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
        .await
        .unwrap();
    fixtures::ingest(&lake, &f).await;
    let options = RefreshOptions {
        full: false,
        trigger: "timer".into(),
    };
    let ctx = RunContext::new("timer").with_retry_count(1);
    patientflow_core::silver::fault::inject_after(lake.root().as_str(), "events");
    let err = ledger::tracked(&lake, "silver", &ctx, refresh_silver(&lake, &options))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    let ok = ledger::tracked(&lake, "silver", &ctx, refresh_silver(&lake, &options))
        .await
        .unwrap();

    let rows = ledger::recent(&lake, &RunFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (newest, oldest) = (&rows[0], &rows[1]);
    assert_eq!(oldest.status, ledger::FAILED);
    assert_eq!(oldest.error.as_deref(), Some(err.to_string().as_str()));
    assert_eq!((oldest.trigger.as_str(), oldest.retry_count), ("timer", 1));
    assert_eq!(newest.status, ledger::SUCCEEDED);
    assert_eq!(newest.run_id, ok.run_id);
    assert_eq!(newest.rows_quarantined, ok.rows_quarantined as i64);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
