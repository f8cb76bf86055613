//! The run ledger, `ops_run_ledger`: one row per stage run (Bronze ingests, Silver, Gold), whatever
//! started it (the CLI, a timer, an HTTP call, an Event Hub batch, Data Factory, the local runtime).
//!
//! Rows are only ever appended, one commit per run (or per group of runs queued to a [`LedgerWriter`]).
//! Every entry point records its runs through [`tracked`] (a stage future), [`record`] (a finished run)
//! or a [`LedgerWriter`] (a finished run, written in the background): a ledger write that fails is logged as
//! an error and never turns the stage's own outcome into a failure, and a stage that fails is recorded
//! as `failed` with its error before the error goes back to the caller.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::TimestampMicrosecondArray;
use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bronze::IngestReport;
use crate::pipeline::StageReport;
use crate::storage::queued::{flush, spawn_appender, Queued};
use crate::storage::{columns, Lake, Layer, TableRef};
use crate::{Error, Result};

/// The run ledger table (`ops_run_ledger`).
pub const RUN_LEDGER: TableRef = TableRef::new(Layer::Ops, "run_ledger");

/// Status of a run that did its work.
pub const SUCCEEDED: &str = "succeeded";
/// Status of a run that ended in an error.
pub const FAILED: &str = "failed";
/// Status of a run that found nothing to do.
pub const SKIPPED: &str = "skipped";

/// Error texts longer than this are cut (the full text is in the logs).
const MAX_ERROR_CHARS: usize = 4000;
/// Time a ledger write may take before it is given up (and logged).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the caller of a stage knows about the run that the stage itself does not.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// What started the run: `cli`, `timer`, `http`, `eventhub`, `blob`, `adf`, `serve`.
    pub trigger: String,
    /// Attempts before this one: the Functions host's retry count of the invocation, 0 otherwise.
    pub retry_count: u32,
    /// The trace the run belongs to (W3C trace id, 32 hex digits), when there is one.
    pub trace_id: Option<String>,
    /// The run id to record if the stage fails before it reports one (ingests choose theirs up front;
    /// a failed refresh gets a new one).
    pub run_id: Option<String>,
    /// Added to the row's `details` (function name, invocation id, command …).
    pub details: Map<String, Value>,
}

impl RunContext {
    /// A context for runs started by `trigger`.
    pub fn new(trigger: impl Into<String>) -> Self {
        RunContext {
            trigger: trigger.into(),
            ..Default::default()
        }
    }

    /// Sets the retry count.
    pub fn with_retry_count(mut self, retry_count: u32) -> Self {
        self.retry_count = retry_count;
        self
    }

    /// Sets the trace id; anything but 32 hex digits (not all zero) is ignored.
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| is_trace_id(t));
        self
    }

    /// Sets the run id recorded when the stage fails before reporting its own.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Adds one entry to the row's `details`.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// True for a valid W3C trace id: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(t: &str) -> bool {
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && t.bytes().any(|b| b != b'0')
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// The stage's run id (the one stored on the rows the run wrote).
    pub run_id: String,
    /// `bronze.adt`, `bronze.ehr`, `bronze.reference`, `silver`, `gold`.
    pub stage: String,
    /// What started the run.
    pub trigger: String,
    /// Start (UTC).
    pub started_at: DateTime<Utc>,
    /// End (UTC).
    pub finished_at: DateTime<Utc>,
    /// `finished_at - started_at` in milliseconds.
    pub duration_ms: i64,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Rows read from the stage's inputs.
    pub rows_in: i64,
    /// Rows written.
    pub rows_out: i64,
    /// Rows quarantined (Silver) or stored flagged (Bronze).
    pub rows_quarantined: i64,
    /// The error, for a failed run.
    pub error: Option<String>,
    /// Attempts before this one.
    pub retry_count: i64,
    /// Trace id, when the run ran inside a trace.
    pub trace_id: Option<String>,
    /// Machine or app that ran it.
    pub host: String,
    /// Instance of the app (Functions instance id, or the local process).
    pub instance: String,
    /// Stage-specific figures (the stage or ingest report) and the context's details.
    pub details: Value,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn cut_error(text: &str) -> String {
    let one_line = text.replace(['\r', '\n'], " ");
    if one_line.chars().count() <= MAX_ERROR_CHARS {
        return one_line;
    }
    let mut out: String = one_line.chars().take(MAX_ERROR_CHARS).collect();
    out.push('…');
    out
}

fn merged_details(details: &Value, ctx: &RunContext) -> Value {
    let mut out = match details {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("report".into(), other.clone());
            m
        }
    };
    for (k, v) in &ctx.details {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(out)
}

impl RunRecord {
    /// The row of a run that produced a report.
    pub fn from_report(report: &StageReport, ctx: &RunContext) -> Self {
        let (host, instance) = identity();
        let trigger = if report.trigger.is_empty() {
            ctx.trigger.clone()
        } else {
            report.trigger.clone()
        };
        let run_id = if report.run_id.is_empty() {
            ctx.run_id
                .clone()
                .unwrap_or_else(|| crate::bronze::new_run_id(&report.stage))
        } else {
            report.run_id.clone()
        };
        RunRecord {
            run_id,
            stage: report.stage.clone(),
            trigger,
            started_at: report.started_at,
            finished_at: report.finished_at,
            duration_ms: (report.finished_at - report.started_at)
                .num_milliseconds()
                .max(0),
            status: report.status.clone(),
            rows_in: count(report.rows_in),
            rows_out: count(report.rows_out),
            rows_quarantined: count(report.rows_quarantined),
            error: report.error.as_deref().map(cut_error),
            retry_count: i64::from(ctx.retry_count),
            trace_id: ctx.trace_id.clone(),
            host: host.clone(),
            instance: instance.clone(),
            details: merged_details(&report.details, ctx),
        }
    }

    /// The row of a run that ended in `error` before it could report.
    pub fn failed(
        stage: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        error: &str,
        ctx: &RunContext,
    ) -> Self {
        let report = StageReport {
            stage: stage.to_string(),
            run_id: ctx
                .run_id
                .clone()
                .unwrap_or_else(|| crate::bronze::new_run_id(stage)),
            trigger: ctx.trigger.clone(),
            started_at,
            finished_at,
            status: FAILED.into(),
            rows_in: 0,
            rows_out: 0,
            rows_quarantined: 0,
            error: Some(error.to_string()),
            details: Value::Object(Map::new()),
        };
        RunRecord::from_report(&report, ctx)
    }
}

/// What a stage returns, seen as a [`StageReport`]: Silver and Gold report one themselves; a Bronze
/// [`IngestReport`] becomes one.
pub trait StageOutput {
    /// The stage report of this output, for a run of `stage` started by `trigger`.
    fn stage_report(
        &self,
        stage: &str,
        trigger: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    ) -> StageReport;
}

impl StageOutput for StageReport {
    fn stage_report(
        &self,
        _stage: &str,
        trigger: &str,
        _started_at: DateTime<Utc>,
        _finished_at: DateTime<Utc>,
    ) -> StageReport {
        let mut report = self.clone();
        if report.trigger.is_empty() {
            report.trigger = trigger.to_string();
        }
        report
    }
}

impl StageOutput for IngestReport {
    /// Rows in are the rows and messages read (written plus re-deliveries skipped), rows out those
    /// written, rows quarantined those stored flagged. Inputs that could not be read at all make the run
    /// `failed` (with what was written still counted); a run that wrote nothing is `skipped`.
    fn stage_report(
        &self,
        stage: &str,
        trigger: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    ) -> StageReport {
        let written = self.total_rows() as u64;
        let (status, error) = if !self.errors.is_empty() {
            let reasons: Vec<String> = self
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.input, e.reason))
                .collect();
            (
                FAILED,
                Some(format!(
                    "{} of {} inputs not ingested: {}",
                    self.errors.len(),
                    self.inputs_seen.max(self.errors.len()),
                    reasons.join("; ")
                )),
            )
        } else if written == 0 {
            (SKIPPED, None)
        } else {
            (SUCCEEDED, None)
        };
        StageReport {
            stage: stage.to_string(),
            run_id: self.run_id.clone(),
            trigger: trigger.to_string(),
            started_at,
            finished_at,
            status: status.into(),
            rows_in: written + self.duplicates_skipped as u64,
            rows_out: written,
            rows_quarantined: self.flagged_rows as u64,
            error,
            details: serde_json::to_value(self).unwrap_or(Value::Null),
        }
    }
}

/// Runs `work` (one stage run) and records it in the ledger: its report when it returns one, `failed`
/// with the error text when it fails. The stage's own result is returned unchanged, whatever happened
/// to the ledger write.
pub async fn tracked<T, E, Fut>(
    lake: &Lake,
    stage: &str,
    ctx: &RunContext,
    work: Fut,
) -> std::result::Result<T, E>
where
    Fut: Future<Output = std::result::Result<T, E>>,
    T: StageOutput,
    E: std::fmt::Display,
{
    let started_at = Utc::now();
    let result = work.await;
    let finished_at = Utc::now();
    let row = match &result {
        Ok(out) => RunRecord::from_report(
            &out.stage_report(stage, &ctx.trigger, started_at, finished_at),
            ctx,
        ),
        Err(e) => RunRecord::failed(stage, started_at, finished_at, &e.to_string(), ctx),
    };
    record(lake, &row).await;
    result
}

/// Appends one run to the ledger, then runs the pipeline alert rules when alerts are enabled
/// ([`crate::ops::alerts::after_run`]). The run's measurements go to the metrics observer first
/// ([`crate::ops::metrics::run_finished`]), whether or not the write succeeds. Never fails: a write
/// that fails (or takes longer than a minute) is logged as an error and `false` is returned.
pub async fn record(lake: &Lake, row: &RunRecord) -> bool {
    crate::ops::metrics::run_finished(row);
    let written =
        tokio::time::timeout(WRITE_TIMEOUT, append(lake, std::slice::from_ref(row))).await;
    let error = match written {
        Ok(Ok(_)) => {
            tracing::debug!(
                stage = %row.stage,
                run_id = %row.run_id,
                status = %row.status,
                "run recorded in {RUN_LEDGER}"
            );
            crate::ops::alerts::after_run(lake).await;
            return true;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
    };
    log_lost(row, &error);
    false
}

/// Rows a [`LedgerWriter`] holds at most before new ones are refused (and logged as lost).
pub const WRITER_QUEUE: usize = 10_000;

/// Records runs in the background: [`LedgerWriter::record`] returns at once and a task appends what
/// has queued up since its last commit in one commit (then runs the pipeline alert rules, as
/// [`record`] does). For the runs of a hot path, such as one Event Hub batch after another, whose answer
/// should not wait for a second Delta commit. Rows still queued when the process is killed are lost;
/// [`LedgerWriter::flush`] waits for them (on shutdown).
#[derive(Debug, Clone)]
pub struct LedgerWriter {
    tx: tokio::sync::mpsc::Sender<Queued<RunRecord>>,
}

impl LedgerWriter {
    /// Starts the writer for a lake (on the current tokio runtime).
    pub fn start(lake: Lake) -> LedgerWriter {
        let tx = spawn_appender(WRITER_QUEUE, 1_000, move |rows: Vec<RunRecord>| {
            let lake = lake.clone();
            async move { write_rows(&lake, &rows).await }
        });
        LedgerWriter { tx }
    }

    /// Queues a finished run; its measurements go to the metrics observer now. A row that cannot be
    /// queued (queue full, writer stopped) is logged as an error.
    pub fn record(&self, row: RunRecord) {
        use tokio::sync::mpsc::error::TrySendError;
        crate::ops::metrics::run_finished(&row);
        let (why, row) = match self.tx.try_send(Queued::Row(Box::new(row))) {
            Ok(()) => return,
            Err(TrySendError::Full(Queued::Row(r))) => ("the ledger queue is full", r),
            Err(TrySendError::Closed(Queued::Row(r))) => ("the ledger writer has stopped", r),
            Err(_) => return,
        };
        log_lost(&row, why);
    }

    /// Waits until every row queued before this call has been written (or failed).
    pub async fn flush(&self) {
        flush(&self.tx).await;
    }
}

/// Appends rows in one commit and runs the alert rules after it; a failure is logged per row.
async fn write_rows(lake: &Lake, rows: &[RunRecord]) {
    match tokio::time::timeout(WRITE_TIMEOUT, append(lake, rows)).await {
        Ok(Ok(_)) => crate::ops::alerts::after_run(lake).await,
        Ok(Err(e)) => {
            let why = e.to_string();
            rows.iter().for_each(|r| log_lost(r, &why));
        }
        Err(_) => {
            let why = format!("no answer within {} s", WRITE_TIMEOUT.as_secs());
            rows.iter().for_each(|r| log_lost(r, &why));
        }
    }
}

fn log_lost(row: &RunRecord, error: &str) {
    tracing::error!(
        stage = %row.stage,
        run_id = %row.run_id,
        status = %row.status,
        "run_ledger_write_failed: the {} run {} ({}) is not in {RUN_LEDGER}: {error}",
        row.stage,
        row.run_id,
        row.status
    );
}

/// The ledger's columns.
pub fn schema() -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    Schema::new(vec![
        text("run_id", false),
        text("stage", false),
        text("trigger", false),
        Field::new("started_at", ts.clone(), false),
        Field::new("finished_at", ts, false),
        int("duration_ms"),
        text("status", false),
        int("rows_in"),
        int("rows_out"),
        int("rows_quarantined"),
        text("error", true),
        int("retry_count"),
        text("trace_id", true),
        text("host", false),
        text("instance", false),
        text("details", true),
    ])
}

fn batch_of(rows: &[RunRecord]) -> Result<RecordBatch> {
    let texts = |f: &dyn Fn(&RunRecord) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let ints = |f: &dyn Fn(&RunRecord) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let times = |f: &dyn Fn(&RunRecord) -> DateTime<Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| f(r).timestamp_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        texts(&|r| Some(r.run_id.clone())),
        texts(&|r| Some(r.stage.clone())),
        texts(&|r| Some(r.trigger.clone())),
        times(&|r| r.started_at),
        times(&|r| r.finished_at),
        ints(&|r| r.duration_ms),
        texts(&|r| Some(r.status.clone())),
        ints(&|r| r.rows_in),
        ints(&|r| r.rows_out),
        ints(&|r| r.rows_quarantined),
        texts(&|r| r.error.clone()),
        ints(&|r| r.retry_count),
        texts(&|r| r.trace_id.clone()),
        texts(&|r| Some(r.host.clone())),
        texts(&|r| Some(r.instance.clone())),
        texts(&|r| Some(r.details.to_string())),
    ];
    RecordBatch::try_new(Arc::new(schema()), columns)
        .map_err(|e| Error::Storage(format!("internal: a {RUN_LEDGER} row: {e}")))
}

/// Appends rows to the ledger in one commit (the table is created on first use). Fails like any write;
/// callers that must not fail use [`record`].
pub async fn append(lake: &Lake, rows: &[RunRecord]) -> Result<i64> {
    if rows.is_empty() {
        return Ok(-1);
    }
    lake.append(RUN_LEDGER, vec![batch_of(rows)?], &[], HashMap::new())
        .await
}

/// Which runs to read.
#[derive(Debug, Clone)]
pub struct RunFilter {
    /// Runs returned at most (newest first).
    pub limit: usize,
    /// Only `failed` runs.
    pub failed_only: bool,
    /// Only this stage.
    pub stage: Option<String>,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            limit: 20,
            failed_only: false,
            stage: None,
        }
    }
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The most recent runs matching `filter`, newest first; none when the ledger does not exist yet.
pub async fn recent(lake: &Lake, filter: &RunFilter) -> Result<Vec<RunRecord>> {
    if lake.open_table(RUN_LEDGER).await?.is_none() || filter.limit == 0 {
        return Ok(Vec::new());
    }
    let mut conditions = Vec::new();
    if filter.failed_only {
        conditions.push(format!("status = {}", sql_text(FAILED)));
    }
    if let Some(stage) = &filter.stage {
        conditions.push(format!("stage = {}", sql_text(stage)));
    }
    let predicate = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT * FROM {} {predicate} ORDER BY started_at DESC, run_id DESC LIMIT {}",
        RUN_LEDGER.sql_name(),
        filter.limit
    );
    let batches = lake.sql(&[RUN_LEDGER], &sql).await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(rows_of(b)?);
    }
    Ok(out)
}

fn rows_of(b: &RecordBatch) -> Result<Vec<RunRecord>> {
    let s = |name: &str| columns::strings(b, name);
    let (run_id, stage, trigger, status) = (s("run_id")?, s("stage")?, s("trigger")?, s("status")?);
    let (error, trace_id, host, instance, details) = (
        s("error")?,
        s("trace_id")?,
        s("host")?,
        s("instance")?,
        s("details")?,
    );
    let started = columns::timestamps(b, "started_at")?;
    let finished = columns::timestamps(b, "finished_at")?;
    let i = |name: &str| columns::ints(b, name);
    let (duration, rows_in, rows_out, quarantined, retries) = (
        i("duration_ms")?,
        i("rows_in")?,
        i("rows_out")?,
        i("rows_quarantined")?,
        i("retry_count")?,
    );
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    Ok((0..b.num_rows())
        .map(|k| RunRecord {
            run_id: run_id[k].clone().unwrap_or_default(),
            stage: stage[k].clone().unwrap_or_default(),
            trigger: trigger[k].clone().unwrap_or_default(),
            started_at: started[k].unwrap_or(epoch),
            finished_at: finished[k].unwrap_or(epoch),
            duration_ms: duration[k].unwrap_or_default(),
            status: status[k].clone().unwrap_or_default(),
            rows_in: rows_in[k].unwrap_or_default(),
            rows_out: rows_out[k].unwrap_or_default(),
            rows_quarantined: quarantined[k].unwrap_or_default(),
            error: error[k].clone(),
            retry_count: retries[k].unwrap_or_default(),
            trace_id: trace_id[k].clone(),
            host: host[k].clone().unwrap_or_default(),
            instance: instance[k].clone().unwrap_or_default(),
            details: details[k]
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null),
        })
        .collect())
}

/// One stage's line under `patientflow runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    /// Stage name.
    pub stage: String,
    /// Runs of the stage among those shown.
    pub runs: usize,
    /// Failed runs among those shown.
    pub failed: usize,
    /// End of the stage's latest `succeeded` run in the whole ledger.
    pub last_success: Option<DateTime<Utc>>,
    /// End of the stage's latest `failed` run in the whole ledger.
    pub last_failure: Option<DateTime<Utc>>,
    /// Median duration of the runs shown (nearest rank).
    pub p50_ms: Option<i64>,
    /// 95th-percentile duration of the runs shown (nearest rank).
    pub p95_ms: Option<i64>,
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Data-flow order of stages: Bronze, Silver, Gold, then anything else.
fn stage_rank(stage: &str) -> u8 {
    match stage {
        s if s.starts_with("bronze") => 0,
        "silver" => 1,
        "gold" => 2,
        _ => 3,
    }
}

type When = DateTime<Utc>;

/// A summary per stage of `runs`: counts and p50/p95 duration over `runs`, last success and last
/// failure over the whole ledger.
pub async fn summarize(lake: &Lake, runs: &[RunRecord]) -> Result<Vec<StageSummary>> {
    let mut durations: BTreeMap<&str, (Vec<i64>, usize)> = BTreeMap::new();
    for r in runs {
        let e = durations.entry(r.stage.as_str()).or_default();
        e.0.push(r.duration_ms);
        if r.status == FAILED {
            e.1 += 1;
        }
    }
    if durations.is_empty() {
        return Ok(Vec::new());
    }
    let stages: Vec<String> = durations.keys().map(|s| sql_text(s)).collect();
    let sql = format!(
        "SELECT stage, \
         MAX(CASE WHEN status = {ok} THEN finished_at END) AS last_success, \
         MAX(CASE WHEN status = {failed} THEN finished_at END) AS last_failure \
         FROM {table} WHERE stage IN ({list}) GROUP BY stage",
        ok = sql_text(SUCCEEDED),
        failed = sql_text(FAILED),
        table = RUN_LEDGER.sql_name(),
        list = stages.join(", ")
    );
    // Per stage: end of the last success, end of the last failure.
    let mut last: HashMap<String, (Option<When>, Option<When>)> = HashMap::new();
    for b in lake.sql(&[RUN_LEDGER], &sql).await? {
        let names = columns::strings(&b, "stage")?;
        let ok = columns::timestamps(&b, "last_success")?;
        let failed = columns::timestamps(&b, "last_failure")?;
        for k in 0..b.num_rows() {
            if let Some(name) = &names[k] {
                last.insert(name.clone(), (ok[k], failed[k]));
            }
        }
    }
    let mut out: Vec<StageSummary> = durations
        .into_iter()
        .map(|(stage, (mut d, failed))| {
            d.sort_unstable();
            let (last_success, last_failure) = last.get(stage).copied().unwrap_or_default();
            StageSummary {
                stage: stage.to_string(),
                runs: d.len(),
                failed,
                last_success,
                last_failure,
                p50_ms: percentile(&d, 50.0),
                p95_ms: percentile(&d, 95.0),
            }
        })
        .collect();
    out.sort_by(|a, b| (stage_rank(&a.stage), &a.stage).cmp(&(stage_rank(&b.stage), &b.stage)));
    Ok(out)
}

/// Host and instance recorded on every row: in Azure Functions the app's host name
/// (`WEBSITE_HOSTNAME`) and instance (`WEBSITE_INSTANCE_ID`); elsewhere the machine's name and the
/// process id.
pub fn identity() -> &'static (String, String) {
    static IDENTITY: OnceLock<(String, String)> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let env = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let host = env("WEBSITE_HOSTNAME")
            .or_else(|| env("HOSTNAME"))
            .or_else(|| env("COMPUTERNAME"))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "localhost".into());
        let instance =
            env("WEBSITE_INSTANCE_ID").unwrap_or_else(|| format!("pid-{}", std::process::id()));
        (host, instance)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bronze::InputError;

    async fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
            .await
            .unwrap();
        (dir, lake)
    }

    fn report(stage: &str, status: &str, ms: i64) -> StageReport {
        let started_at = Utc::now() - chrono::Duration::milliseconds(ms);
        StageReport {
            stage: stage.into(),
            run_id: crate::bronze::new_run_id(stage),
            trigger: String::new(),
            started_at,
            finished_at: started_at + chrono::Duration::milliseconds(ms),
            status: status.into(),
            rows_in: 10,
            rows_out: 8,
            rows_quarantined: 2,
            error: None,
            details: serde_json::json!({"sources": {}}),
        }
    }

    #[tokio::test]
    async fn successes_and_failures_are_recorded_and_read_back() {
        let (_dir, lake) = lake().await;
        let ctx = RunContext::new("cli")
            .with_retry_count(2)
            .with_trace_id(Some("4BF92F3577B34DA6A3CE929D0E0E4736".into()))
            .with_detail("command", "refresh silver");
        let ok: std::result::Result<StageReport, Error> = tracked(&lake, "silver", &ctx, async {
            Ok(report("silver", SUCCEEDED, 5))
        })
        .await;
        assert!(ok.is_ok());
        let failed: std::result::Result<StageReport, Error> =
            tracked(&lake, "gold", &RunContext::new("adf"), async {
                Err(Error::Storage("disk\nfull".into()))
            })
            .await;
        assert!(failed.is_err(), "the stage's error comes back unchanged");

        let runs = recent(&lake, &RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 2);
        let gold = runs.iter().find(|r| r.stage == "gold").unwrap();
        assert_eq!(gold.status, FAILED);
        assert_eq!(gold.trigger, "adf");
        assert_eq!(gold.error.as_deref(), Some("storage: disk full"));
        assert!(gold.run_id.starts_with("gold-"));
        assert_eq!(gold.trace_id, None);
        let silver = runs.iter().find(|r| r.stage == "silver").unwrap();
        assert_eq!(silver.trigger, "cli", "the context fills an empty trigger");
        assert_eq!(
            (silver.rows_in, silver.rows_out, silver.rows_quarantined),
            (10, 8, 2)
        );
        assert_eq!(silver.retry_count, 2);
        assert_eq!(
            silver.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(silver.duration_ms, 5);
        assert_eq!(silver.details["command"], "refresh silver");
        assert!(silver.details["sources"].is_object());
        assert!(!silver.host.is_empty() && !silver.instance.is_empty());

        let failed_only = RunFilter {
            failed_only: true,
            ..Default::default()
        };
        let runs = recent(&lake, &failed_only).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].stage, "gold");
        let silver_only = RunFilter {
            stage: Some("silver".into()),
            ..Default::default()
        };
        assert_eq!(recent(&lake, &silver_only).await.unwrap().len(), 1);
        let quoted = RunFilter {
            stage: Some("x' OR '1'='1".into()),
            ..Default::default()
        };
        assert!(recent(&lake, &quoted).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_ledger_that_cannot_be_written_never_fails_the_stage() {
        let (dir, lake) = lake().await;
        // A regular file where the ledger's folder should be.
        std::fs::create_dir_all(dir.path().join("lake/ops")).unwrap();
        std::fs::write(dir.path().join("lake/ops/run_ledger"), "not a table").unwrap();
        let out: std::result::Result<StageReport, Error> =
            tracked(&lake, "silver", &RunContext::new("cli"), async {
                Ok(report("silver", SUCCEEDED, 1))
            })
            .await;
        assert_eq!(out.unwrap().status, SUCCEEDED);
        assert!(
            !record(
                &lake,
                &RunRecord::failed("gold", Utc::now(), Utc::now(), "x", &RunContext::new("cli"))
            )
            .await
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_background_writer_lands_every_queued_row_in_few_commits() {
        let (_dir, lake) = lake().await;
        let writer = LedgerWriter::start(lake.clone());
        let ctx = RunContext::new("eventhub");
        let rows: Vec<RunRecord> = (0..20)
            .map(|i| RunRecord::from_report(&report("bronze.adt", SUCCEEDED, i), &ctx))
            .collect();
        for r in &rows {
            writer.record(r.clone());
        }
        writer.flush().await;
        let back = recent(
            &lake,
            &RunFilter {
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
        let mut got: Vec<&str> = back.iter().map(|r| r.run_id.as_str()).collect();
        let mut want: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "every queued run is in the ledger after flush");
        let version = lake
            .open_table(RUN_LEDGER)
            .await
            .unwrap()
            .and_then(|t| crate::storage::version_of(&t))
            .unwrap();
        // Version 0 creates the table; rows queued while a commit runs share the next one.
        assert!(version <= 10, "{version} commits for 20 rows");
    }

    #[tokio::test]
    async fn an_empty_ledger_reads_as_no_runs() {
        let (_dir, lake) = lake().await;
        assert!(recent(&lake, &RunFilter::default())
            .await
            .unwrap()
            .is_empty());
        assert!(summarize(&lake, &[]).await.unwrap().is_empty());
    }

    #[test]
    fn ingest_reports_become_stage_reports() {
        let now = Utc::now();
        let mut r = IngestReport {
            run_id: "ingest-adt-1".into(),
            inputs_seen: 3,
            duplicates_skipped: 4,
            flagged_rows: 1,
            ..Default::default()
        };
        let s = r.stage_report("bronze.adt", "cli", now, now);
        assert_eq!(s.status, SKIPPED);
        r.rows_written.insert("bronze_adt_messages".into(), 6);
        let s = r.stage_report("bronze.adt", "cli", now, now);
        assert_eq!(
            (s.status.as_str(), s.rows_in, s.rows_out, s.rows_quarantined),
            (SUCCEEDED, 10, 6, 1)
        );
        r.errors.push(InputError {
            input: "a.hl7".into(),
            reason: "no such file".into(),
        });
        let s = r.stage_report("bronze.adt", "cli", now, now);
        assert_eq!(s.status, FAILED);
        assert_eq!(
            s.error.as_deref(),
            Some("1 of 3 inputs not ingested: a.hl7: no such file")
        );
        assert_eq!(s.details["rows_written"]["bronze_adt_messages"], 6);
    }

    #[tokio::test]
    async fn summaries_give_percentiles_of_the_shown_runs_and_the_last_outcomes() {
        let (_dir, lake) = lake().await;
        let ctx = RunContext::new("timer");
        let mut rows: Vec<RunRecord> = (1..=20)
            .map(|ms| RunRecord::from_report(&report("silver", SUCCEEDED, ms * 10), &ctx))
            .collect();
        rows.push(RunRecord::failed(
            "gold",
            Utc::now(),
            Utc::now(),
            "boom",
            &ctx,
        ));
        rows.push(RunRecord::from_report(
            &report("bronze.adt", SKIPPED, 3),
            &ctx,
        ));
        append(&lake, &rows).await.unwrap();
        let shown = recent(
            &lake,
            &RunFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let s = summarize(&lake, &shown).await.unwrap();
        let names: Vec<&str> = s.iter().map(|x| x.stage.as_str()).collect();
        assert_eq!(names, vec!["bronze.adt", "silver", "gold"]);
        assert_eq!(
            (s[1].runs, s[1].p50_ms, s[1].p95_ms),
            (20, Some(100), Some(190))
        );
        assert!(s[1].last_success.is_some() && s[1].last_failure.is_none());
        assert_eq!(s[2].failed, 1);
        assert!(s[2].last_success.is_none() && s[2].last_failure.is_some());
        assert!(
            s[0].last_success.is_none(),
            "a skipped run is not a success"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 95.0), Some(4));
    }

    #[test]
    fn trace_ids_are_checked() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("00000000000000000000000000000000"));
        assert!(!is_trace_id("4bf92f3577b34da6"));
        assert_eq!(
            RunContext::new("x")
                .with_trace_id(Some("zz".into()))
                .trace_id,
            None
        );
    }
}
