//! `patientflow bench pipeline`: raw files → Bronze → Silver → Gold on a fresh lake, stage by stage, with
//! the wall time, CPU time, memory, rows and throughput of each stage; optionally an incremental run (the
//! next few minutes of the ADT feed through Bronze, Silver and Gold) on lakes of several sizes, to show
//! whether the incremental cost follows the new data or the size of the tables.
//!
//! Every stage is the library call the CLI makes (`ingest adt|ehr|departments`, `refresh silver`,
//! `refresh gold`), recorded in the run ledger like the CLI's runs (trigger `bench`). The incremental
//! ADT goes in as Event-Hub-shaped events of at most 1,000 (the custom handler's AdtIngest path).
//!
//! Memory: the peak RSS of a stage is `VmHWM` after the stage, with the counter reset at the stage's
//! start (`/proc/self/clear_refs` = 5, Linux); when the reset is refused the figure is the running peak
//! of the process. The RSS at the start and at the end of each stage (`VmRSS`) and their difference are
//! reported as well. CPU time is user + system time of the whole process (`/proc/self/stat`, 10 ms
//! resolution) during the stage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use patientflow_core::bronze::{self, adt::AdtIngestor, adt::AdtInput, IngestReport};
use patientflow_core::bronze::{Lineage, LineageKind};
use patientflow_core::ops::ledger::{tracked, RunContext};
use patientflow_core::pipeline::{refresh_silver, RefreshOptions, StageReport};
use patientflow_core::storage::Lake;
use patientflow_simulator::{Hospitals, SimConfig, TimedMessage};
use serde::Serialize;

use crate::Outcome;

/// Options of `bench pipeline`.
#[derive(Debug, Clone, Args)]
pub struct BenchPipelineArgs {
    /// Days to simulate (from 2026-01-01).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Number of hospitals (1-7), or a comma-separated list of ids (MHA01,MHA03).
    #[arg(long, default_value = "7")]
    pub hospitals: String,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 20_260_101)]
    pub seed: u64,
    /// Use this simulated data set (`patientflow generate --out DIR`) instead of generating one;
    /// --days, --hospitals and --seed then come from DIR/truth/config.json.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Working folder for the generated data and the lakes (kept afterwards; must not hold a lake yet).
    /// Default: a temporary folder, deleted at the end.
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// After the full build, feed the next M minutes of the simulated ADT feed (twice: two consecutive
    /// windows) and time Bronze, Silver and Gold incrementally.
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    pub increment_minutes: Option<u32>,
    /// Lake sizes in days for the incremental run (e.g. 7,30); a size equal to --days reuses the full
    /// build's lake. Default: --days only.
    #[arg(long, value_delimiter = ',', requires = "increment_minutes", value_parser = clap::value_parser!(u32).range(1..))]
    pub sizes: Vec<u32>,
}

/// Events per AdtIngest invocation (the app's `maxEventBatchSize`).
const EVENT_BATCH: usize = 1000;
/// Linux `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

// ---------------------------------------------------------------------------------------------------
// Measuring

/// CPU times of the process in clock ticks (user, system), from the text of `/proc/<pid>/stat`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// A `kB` figure of `/proc/<pid>/status` or `/proc/meminfo` (`VmHWM`, `VmRSS`, `MemTotal`), in KiB.
fn parse_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn cpu_ticks() -> Option<(u64, u64)> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// (VmHWM, VmRSS) of this process in KiB.
fn memory_kib() -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => (parse_kib(&s, "VmHWM"), parse_kib(&s, "VmRSS")),
        Err(_) => (None, None),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Rows per second, when there is a duration to divide by.
fn per_second(rows: u64, secs: f64) -> Option<f64> {
    (secs > 0.0).then(|| rows as f64 / secs)
}

/// The figures of one stage run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StageFigures {
    /// `bronze.adt`, `bronze.ehr`, `bronze.reference`, `silver`, `gold` or `raw → gold` (the sum).
    pub stage: String,
    /// The run's status (`succeeded`, `skipped`, …).
    pub status: String,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// User CPU seconds of the process during the stage.
    pub cpu_user_s: Option<f64>,
    /// System CPU seconds of the process during the stage.
    pub cpu_sys_s: Option<f64>,
    /// User + system.
    pub cpu_s: Option<f64>,
    /// Peak RSS (`VmHWM`) in MiB: since the stage's start when `peak_is_per_stage`, else of the process.
    pub peak_rss_mib: Option<f64>,
    /// Whether the peak counter was reset at the stage's start.
    pub peak_is_per_stage: bool,
    /// Highest peak RSS of the process so far (over the measured stages), MiB.
    pub running_peak_rss_mib: Option<f64>,
    /// RSS at the stage's start, MiB.
    pub rss_start_mib: Option<f64>,
    /// RSS at the stage's end, MiB.
    pub rss_end_mib: Option<f64>,
    /// RSS at the end minus RSS at the start, MiB.
    pub rss_delta_mib: Option<f64>,
    /// Rows (messages, CSV rows, records) read by the stage.
    pub rows_in: u64,
    /// Rows written by the stage.
    pub rows_out: u64,
    /// `rows_in` per wall-clock second.
    pub throughput: Option<f64>,
    /// Unit of `throughput`: `messages/s` (Bronze ADT) or `rows/s`.
    pub throughput_unit: String,
    /// What else the stage reported (files, duplicates, Gold mode).
    pub note: String,
}

/// Measures stages one after the other.
struct Meter {
    running_peak_kib: Option<u64>,
}

/// A stage being measured.
struct Started {
    at: Instant,
    ticks: Option<(u64, u64)>,
    rss_kib: Option<u64>,
    reset: bool,
}

impl Meter {
    fn new() -> Self {
        Meter {
            running_peak_kib: None,
        }
    }

    fn start(&mut self) -> Started {
        // Keep the peak so far before resetting the counter.
        self.absorb_peak(memory_kib().0);
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let (_, rss_kib) = memory_kib();
        Started {
            at: Instant::now(),
            ticks: cpu_ticks(),
            rss_kib,
            reset,
        }
    }

    fn absorb_peak(&mut self, peak: Option<u64>) {
        if let Some(p) = peak {
            self.running_peak_kib = Some(self.running_peak_kib.map_or(p, |r| r.max(p)));
        }
    }

    fn finish(&mut self, s: Started, stage: &str, rows_in: u64, rows_out: u64) -> StageFigures {
        let wall_s = s.at.elapsed().as_secs_f64();
        let ticks = cpu_ticks();
        let (peak, rss_end) = memory_kib();
        self.absorb_peak(peak);
        let cpu = match (s.ticks, ticks) {
            (Some((u0, s0)), Some((u1, s1))) => Some((
                u1.saturating_sub(u0) as f64 / TICKS_PER_SECOND,
                s1.saturating_sub(s0) as f64 / TICKS_PER_SECOND,
            )),
            _ => None,
        };
        let unit = if stage == "bronze.adt" {
            "messages/s"
        } else {
            "rows/s"
        };
        StageFigures {
            stage: stage.to_string(),
            status: "succeeded".into(),
            wall_s,
            cpu_user_s: cpu.map(|c| c.0),
            cpu_sys_s: cpu.map(|c| c.1),
            cpu_s: cpu.map(|c| c.0 + c.1),
            peak_rss_mib: peak.map(mib),
            peak_is_per_stage: s.reset,
            running_peak_rss_mib: self.running_peak_kib.map(mib),
            rss_start_mib: s.rss_kib.map(mib),
            rss_end_mib: rss_end.map(mib),
            rss_delta_mib: match (s.rss_kib, rss_end) {
                (Some(a), Some(b)) => Some(mib(b) - mib(a)),
                _ => None,
            },
            rows_in,
            rows_out,
            throughput: per_second(rows_in, wall_s),
            throughput_unit: unit.into(),
            note: String::new(),
        }
    }
}

/// The sum of consecutive stages: wall and CPU add up, the peak is the highest, the RSS delta runs
/// from the first stage's start to the last one's end.
fn total(name: &str, stages: &[StageFigures], rows_in: u64, rows_out: u64) -> StageFigures {
    let wall_s: f64 = stages.iter().map(|s| s.wall_s).sum();
    let sum = |f: fn(&StageFigures) -> Option<f64>| -> Option<f64> {
        stages.iter().map(f).sum::<Option<f64>>()
    };
    let max = |f: fn(&StageFigures) -> Option<f64>| -> Option<f64> {
        stages.iter().filter_map(f).reduce(f64::max)
    };
    let rss_start_mib = stages.first().and_then(|s| s.rss_start_mib);
    let rss_end_mib = stages.last().and_then(|s| s.rss_end_mib);
    StageFigures {
        stage: name.into(),
        status: if stages.iter().all(|s| s.status == "succeeded") {
            "succeeded".into()
        } else {
            "see stages".into()
        },
        wall_s,
        cpu_user_s: sum(|s| s.cpu_user_s),
        cpu_sys_s: sum(|s| s.cpu_sys_s),
        cpu_s: sum(|s| s.cpu_s),
        peak_rss_mib: max(|s| s.peak_rss_mib),
        peak_is_per_stage: stages.iter().all(|s| s.peak_is_per_stage),
        running_peak_rss_mib: stages.last().and_then(|s| s.running_peak_rss_mib),
        rss_start_mib,
        rss_end_mib,
        rss_delta_mib: match (rss_start_mib, rss_end_mib) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
        rows_in,
        rows_out,
        throughput: per_second(rows_in, wall_s),
        throughput_unit: "rows/s".into(),
        note: String::new(),
    }
}

// ---------------------------------------------------------------------------------------------------
// The machine

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// Cores available to the process.
    pub cores: usize,
    /// `MemTotal` of /proc/meminfo, GiB.
    pub memory_gib: Option<f64>,
    /// OS and architecture.
    pub os: String,
    /// Kernel release.
    pub kernel: Option<String>,
    /// Load average (1, 5, 15 min) at the start.
    pub load_average: Option<String>,
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    Machine {
        cpu_model: read("/proc/cpuinfo").as_deref().and_then(cpu_model),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: read("/proc/meminfo")
            .as_deref()
            .and_then(|m| parse_kib(m, "MemTotal"))
            .map(|k| k as f64 / (1024.0 * 1024.0)),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
        load_average: read("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    }
}

fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The commit of the source tree this binary was built from, when that tree is still a git checkout.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

// ---------------------------------------------------------------------------------------------------
// The report

/// The data set the lake was built from.
#[derive(Debug, Clone, Serialize)]
pub struct DataSet {
    /// Folder of the data set.
    pub path: String,
    /// Days simulated (from the configuration or the ADT day folders).
    pub days: u32,
    /// Hospitals, as configured.
    pub hospitals: Option<serde_json::Value>,
    /// Seed, when known.
    pub seed: Option<u64>,
    /// ADT messages delivered (from truth/summary.json), when known.
    pub adt_messages: Option<u64>,
    /// Encounters (from truth/summary.json), when known.
    pub encounters: Option<u64>,
    /// Seconds spent generating it (not part of the pipeline); `None` when reused.
    pub generate_s: Option<f64>,
    /// Days of it that the lake holds, when its last day was held back for the incremental windows.
    pub lake_days: Option<u32>,
}

/// One incremental run: a window of the ADT feed through Bronze, Silver and Gold.
#[derive(Debug, Clone, Serialize)]
pub struct IncrementFigures {
    /// Days in the lake before the first window.
    pub lake_days: u32,
    /// 1 or 2 (the second runs with the ingestor's de-duplication index already loaded).
    pub window: u32,
    /// Start of the window (delivery time, inclusive).
    pub from: DateTime<Utc>,
    /// End of the window (exclusive).
    pub to: DateTime<Utc>,
    /// ADT messages delivered in the window.
    pub messages: u64,
    /// Bronze ADT rows of the lake before the window.
    pub lake_bronze_adt_rows: u64,
    /// `bronze.adt`, `silver`, `gold`.
    pub stages: Vec<StageFigures>,
    /// Silver + Gold.
    pub silver_gold: StageFigures,
    /// Bronze + Silver + Gold.
    pub end_to_end: StageFigures,
}

/// The lake an incremental run starts from.
#[derive(Debug, Clone, Serialize)]
pub struct IncrementLake {
    /// Days of data in it.
    pub days: u32,
    /// Whether it is the full build's lake.
    pub reused_full_build: bool,
    /// The data set (generated for this size unless reused).
    pub data: DataSet,
    /// Its build, stage by stage (empty when reused).
    pub build: Vec<StageFigures>,
    /// The two windows.
    pub windows: Vec<IncrementFigures>,
}

/// Everything `bench pipeline` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run started.
    pub date: DateTime<Utc>,
    /// The machine.
    pub machine: Machine,
    /// `debug` or `release`.
    pub build_profile: String,
    /// The source commit, when known.
    pub git_commit: Option<String>,
    /// The data set of the full build.
    pub data: DataSet,
    /// The full build, stage by stage.
    pub stages: Vec<StageFigures>,
    /// Raw files → Gold: the sum of the stages.
    pub total: StageFigures,
    /// Minutes per incremental window, when asked for.
    pub increment_minutes: Option<u32>,
    /// The incremental runs, per lake size.
    pub increments: Vec<IncrementLake>,
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    // The leading group has 1 to 3 digits, every further group 3.
    let head = (digits.len() + 2) % 3 + 1;
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

/// Throughput with a thousands separator: `52,341 messages/s`.
fn rate(s: &StageFigures) -> String {
    s.throughput.map_or_else(
        || "–".into(),
        |t| format!("{} {}", thousands(t.round() as u64), s.throughput_unit),
    )
}

/// CPU seconds per wall second (2.0 = both cores busy).
fn utilisation(s: &StageFigures) -> Option<f64> {
    s.cpu_s
        .zip((s.wall_s > 0.0).then_some(s.wall_s))
        .map(|(c, w)| c / w)
}

/// A whole signed number of MiB; a change under half a MiB is `0`.
fn signed(v: Option<f64>) -> String {
    v.map_or_else(
        || "–".into(),
        |v| {
            if v.abs() < 0.5 {
                "0".into()
            } else {
                format!("{v:+.0}")
            }
        },
    )
}

const STAGE_HEADER: &str = "| stage | wall s | CPU s (user+sys) | CPU/wall | peak RSS MiB | RSS Δ MiB | rows in | rows out | throughput | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|";

fn stage_row(s: &StageFigures, bold: bool) -> String {
    let b = if bold { "**" } else { "" };
    format!(
        "| {b}{}{b} | {b}{:.2}{b} | {} | {} | {} | {} | {} | {} | {} | {} |",
        s.stage,
        s.wall_s,
        opt(s.cpu_s, 2),
        opt(utilisation(s), 2),
        opt(s.peak_rss_mib, 0),
        signed(s.rss_delta_mib),
        thousands(s.rows_in),
        thousands(s.rows_out),
        rate(s),
        s.note
    )
}

/// The report as Markdown (what the command prints).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let m = &r.machine;
    out.push_str(&format!(
        "patientflow bench pipeline, {}\nmachine: {}, {} cores, {} GiB, {}{}; load average {}\nbuild: {}; commit {}\n",
        r.date.format("%Y-%m-%d %H:%M UTC"),
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.cores,
        opt(m.memory_gib, 1),
        m.os,
        m.kernel.as_deref().map(|k| format!(" {k}")).unwrap_or_default(),
        m.load_average.as_deref().unwrap_or("–"),
        r.build_profile,
        r.git_commit.as_deref().unwrap_or("unknown"),
    ));
    out.push_str(&data_line(&r.data));
    out.push('\n');
    out.push_str(STAGE_HEADER);
    out.push('\n');
    for s in &r.stages {
        out.push_str(&stage_row(s, false));
        out.push('\n');
    }
    out.push_str(&stage_row(&r.total, true));
    out.push('\n');
    out.push_str(&format!(
        "\npeak RSS of the process over the pipeline: {} MiB; peak RSS per stage is {}.\n",
        opt(r.total.running_peak_rss_mib, 0),
        if r.total.peak_is_per_stage {
            "since the stage's start (VmHWM reset)"
        } else {
            "the running peak of the process (VmHWM could not be reset)"
        }
    ));
    if let Some(minutes) = r.increment_minutes {
        out.push_str(&format!(
            "\nincremental: {minutes} min of ADT per window (Event Hub batches of ≤ {EVENT_BATCH}), two consecutive windows per lake\n\n"
        ));
        out.push_str("| lake days | Bronze ADT rows before | window | messages | Bronze s | Silver s | Gold s | **Silver+Gold s** | end to end s | CPU s | peak RSS MiB | Gold |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for lake in &r.increments {
            for w in &lake.windows {
                let wall = |stage: &str| {
                    opt(
                        w.stages.iter().find(|s| s.stage == stage).map(|s| s.wall_s),
                        2,
                    )
                };
                let gold_note = w
                    .stages
                    .iter()
                    .find(|s| s.stage == "gold")
                    .map(|s| s.note.clone())
                    .unwrap_or_default();
                out.push_str(&format!(
                    "| {} | {} | {} {}–{} | {} | {} | {} | {} | **{:.2}** | {:.2} | {} | {} | {} |\n",
                    lake.days,
                    thousands(w.lake_bronze_adt_rows),
                    w.window,
                    w.from.format("%Y-%m-%d %H:%M"),
                    w.to.format("%H:%M"),
                    thousands(w.messages),
                    wall("bronze.adt"),
                    wall("silver"),
                    wall("gold"),
                    w.silver_gold.wall_s,
                    w.end_to_end.wall_s,
                    opt(w.end_to_end.cpu_s, 2),
                    opt(w.end_to_end.peak_rss_mib, 0),
                    gold_note
                ));
            }
        }
        for lake in r.increments.iter().filter(|l| !l.build.is_empty()) {
            let t = total("build", &lake.build, 0, 0);
            out.push_str(&format!(
                "\nlake of {} days: {}built raw → Gold in {:.2} s (peak {} MiB)",
                lake.days,
                lake.data
                    .generate_s
                    .map(|g| format!("generated in {g:.2} s, "))
                    .unwrap_or_default(),
                t.wall_s,
                opt(t.peak_rss_mib, 0)
            ));
        }
        if r.increments.iter().any(|l| !l.build.is_empty()) {
            out.push('\n');
        }
    }
    out
}

fn data_line(d: &DataSet) -> String {
    let count = |v: Option<u64>| v.map_or_else(|| "?".into(), thousands);
    format!(
        "data: {} ({} days, hospitals {}, seed {}): {} ADT messages, {} encounters{}{}\n",
        d.path,
        d.days,
        d.hospitals
            .as_ref()
            .map_or_else(|| "?".into(), |h| h.to_string()),
        d.seed.map_or_else(|| "?".into(), |s| s.to_string()),
        count(d.adt_messages),
        count(d.encounters),
        d.generate_s
            .map(|g| format!("; generated in {g:.2} s (not part of the pipeline)"))
            .unwrap_or_else(|| "; reused".into()),
        d.lake_days
            .map(|n| format!(
                "\nthe lake holds days 1–{n}; day {} is held back for the incremental windows",
                n + 1
            ))
            .unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------------------
// Running

fn parse_hospitals(s: &str) -> Hospitals {
    match s.trim().parse::<usize>() {
        Ok(n) => Hospitals::Count(n),
        Err(_) => Hospitals::Ids(s.split(',').map(|h| h.trim().to_string()).collect()),
    }
}

fn no_progress(_: &str, _: usize) {}

fn context(run_id: &str) -> RunContext {
    RunContext::new("bench")
        .with_run_id(run_id)
        .with_detail("command", "bench pipeline")
}

fn ingest_note(r: &IngestReport) -> String {
    let mut parts = vec![format!("{} inputs", thousands(r.inputs_seen as u64))];
    if r.duplicates_skipped > 0 {
        parts.push(format!(
            "{} re-deliveries skipped",
            thousands(r.duplicates_skipped as u64)
        ));
    }
    if r.id_conflicts > 0 {
        parts.push(format!("{} id conflicts", thousands(r.id_conflicts as u64)));
    }
    if r.flagged_rows > 0 {
        parts.push(format!("{} flagged", thousands(r.flagged_rows as u64)));
    }
    if !r.errors.is_empty() {
        parts.push(format!("{} inputs not ingested", r.errors.len()));
    }
    parts.join(", ")
}

fn ingest_figures(meter: &mut Meter, s: Started, stage: &str, r: &IngestReport) -> StageFigures {
    let written = r.total_rows() as u64;
    let mut f = meter.finish(s, stage, written + r.duplicates_skipped as u64, written);
    f.note = ingest_note(r);
    f
}

fn refresh_figures(meter: &mut Meter, s: Started, r: &StageReport) -> StageFigures {
    let mut f = meter.finish(s, &r.stage, r.rows_in, r.rows_out);
    f.status = r.status.clone();
    let mut notes = Vec::new();
    if r.rows_quarantined > 0 {
        notes.push(format!("{} quarantined", thousands(r.rows_quarantined)));
    }
    let mode = r.details.get("mode").and_then(|v| v.as_str());
    if let Some(mode) = mode {
        notes.push(format!("mode {mode}"));
    }
    if let Some(t) = r.details.get("touched_encounters").and_then(|v| v.as_u64()) {
        if mode != Some("full") {
            let noun = if t == 1 { "encounter" } else { "encounters" };
            notes.push(format!("{} {noun} touched", thousands(t)));
        }
    }
    if r.status != "succeeded" {
        notes.push(r.status.clone());
    }
    f.note = notes.join(", ");
    f
}

fn refresh_options() -> RefreshOptions {
    RefreshOptions {
        full: false,
        trigger: "bench".into(),
    }
}

async fn silver(lake: &Lake, meter: &mut Meter) -> anyhow::Result<StageFigures> {
    let s = meter.start();
    let r = tracked(
        lake,
        "silver",
        &context("bench-silver"),
        refresh_silver(lake, &refresh_options()),
    )
    .await
    .context("Silver refresh")?;
    Ok(refresh_figures(meter, s, &r))
}

async fn gold(lake: &Lake, meter: &mut Meter) -> anyhow::Result<StageFigures> {
    let s = meter.start();
    let options = refresh_options();
    let work = patientflow_core::gold::refresh_as_of(lake, &options, None);
    let r = tracked(lake, "gold", &context("bench-gold"), work)
        .await
        .context("Gold refresh")?;
    Ok(refresh_figures(meter, s, &r))
}

/// The folders to ingest of `data/<kind>`: the whole folder, or with a cutoff only its `YYYY-MM-DD`
/// day folders before the cutoff.
fn source_paths(data: &Path, kind: &str, cutoff: Option<NaiveDate>) -> Vec<String> {
    let dir = data.join(kind);
    let Some(cutoff) = cutoff else {
        return vec![dir.display().to_string()];
    };
    let mut days: Vec<(NaiveDate, String)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let day =
                        NaiveDate::parse_from_str(&name.to_string_lossy(), "%Y-%m-%d").ok()?;
                    (day < cutoff).then(|| (day, e.path().display().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    days.sort();
    days.into_iter().map(|(_, p)| p).collect()
}

/// Raw files → Bronze (ADT, EHR, reference) → Silver → Gold, the way the CLI runs them. With a cutoff,
/// only the ADT and EHR day folders before it are ingested (the ADT files are grouped by delivery day).
async fn build(
    lake: &Lake,
    data: &Path,
    cutoff: Option<NaiveDate>,
    meter: &mut Meter,
) -> anyhow::Result<Vec<StageFigures>> {
    let adt_paths = source_paths(data, "adt", cutoff);
    let ehr_paths = source_paths(data, "ehr", cutoff);
    let reference_paths = source_paths(data, "reference", None);
    let mut stages = Vec::new();

    let run_id = bronze::new_run_id("ingest-adt");
    let s = meter.start();
    let ingestor = AdtIngestor::new(lake.clone());
    let work = ingestor.ingest_paths(&adt_paths, &run_id, &no_progress);
    let r = tracked(lake, "bronze.adt", &context(&run_id), work)
        .await
        .context("ADT ingest")?;
    stages.push(ingest_figures(meter, s, "bronze.adt", &r));

    let run_id = bronze::new_run_id("ingest-ehr");
    let s = meter.start();
    let work = bronze::ehr::ingest_paths(lake, &ehr_paths, None, &run_id, &no_progress);
    let r = tracked(lake, "bronze.ehr", &context(&run_id), work)
        .await
        .context("EHR ingest")?;
    stages.push(ingest_figures(meter, s, "bronze.ehr", &r));

    let run_id = bronze::new_run_id("ingest-reference");
    let s = meter.start();
    let work = bronze::reference::ingest_paths(lake, &reference_paths, &run_id, &no_progress);
    let r = tracked(lake, "bronze.reference", &context(&run_id), work)
        .await
        .context("reference ingest")?;
    stages.push(ingest_figures(meter, s, "bronze.reference", &r));

    stages.push(silver(lake, meter).await?);
    stages.push(gold(lake, meter).await?);
    Ok(stages)
}

fn raw_total(stages: &[StageFigures]) -> StageFigures {
    let rows_in = stages
        .iter()
        .filter(|s| s.stage.starts_with("bronze."))
        .map(|s| s.rows_in)
        .sum();
    let rows_out = stages
        .iter()
        .filter(|s| s.stage == "gold")
        .map(|s| s.rows_out)
        .sum();
    total("raw → Gold", stages, rows_in, rows_out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn data_set(path: &Path, cfg: Option<&SimConfig>, generate_s: Option<f64>) -> DataSet {
    let summary: Option<patientflow_simulator::Summary> =
        read_json(&path.join("truth").join("summary.json"));
    let days = cfg.map(|c| c.days).unwrap_or_else(|| {
        std::fs::read_dir(path.join("adt"))
            .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count() as u32)
            .unwrap_or(0)
    });
    DataSet {
        path: path.display().to_string(),
        days,
        hospitals: cfg.and_then(|c| serde_json::to_value(&c.hospitals).ok()),
        seed: cfg.map(|c| c.seed),
        adt_messages: summary.as_ref().map(|s| s.adt_messages),
        encounters: summary.as_ref().map(|s| s.encounters),
        generate_s,
        lake_days: None,
    }
}

async fn generate(cfg: &SimConfig, out: &Path) -> anyhow::Result<f64> {
    let (cfg, dir) = (cfg.clone(), out.to_path_buf());
    let t = Instant::now();
    tokio::task::spawn_blocking(move || patientflow_simulator::generate(&cfg, &dir))
        .await?
        .with_context(|| format!("generating simulated data into {}", out.display()))?;
    Ok(t.elapsed().as_secs_f64())
}

/// The configuration that continues `cfg` by `extra` days: the same hospitals, seed and rates, and the
/// same days on which new fields start to appear, so its first `cfg.days` days are `cfg`'s.
fn continued(cfg: &SimConfig, extra: u32) -> SimConfig {
    SimConfig {
        days: cfg.days + extra,
        preferred_language_from_day: Some(cfg.language_day()),
        insurance_type_from_day: Some(cfg.insurance_day()),
        ..cfg.clone()
    }
}

/// The ADT messages of `cfg`'s feed delivered in `[from, to)`: the same messages, byte for byte, as
/// `generate` writes for `cfg`.
async fn feed_window(
    cfg: &SimConfig,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<TimedMessage>> {
    let next = cfg.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<TimedMessage>> {
        Ok(patientflow_simulator::stream(&next)?
            .skip_while(|m| m.deliver_at < from)
            .take_while(|m| m.deliver_at < to)
            .collect())
    })
    .await?
}

/// The messages as Event Hub events (one message per event), in batches of at most [`EVENT_BATCH`].
fn event_batches(messages: &[TimedMessage], first_sequence: i64) -> Vec<Vec<AdtInput>> {
    messages
        .chunks(EVENT_BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, m)| AdtInput {
                    payload: m.payload.clone().into_bytes(),
                    lineage: Lineage {
                        kind: LineageKind::EventHub,
                        source_name: "bench-pipeline".into(),
                        partition: Some("0".into()),
                        sequence_number: Some(first_sequence + (b * EVENT_BATCH + i) as i64),
                        offset: None,
                        enqueued_time: Some(m.deliver_at),
                    },
                })
                .collect()
        })
        .collect()
}

/// Midnight UTC `days` days after the start of `cfg`'s period.
fn day_start(cfg: &SimConfig, days: u32) -> DateTime<Utc> {
    (cfg.start_date + chrono::Days::new(u64::from(days)))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// A lake of `lake_days` days built from `cfg`'s data (which has at least one day more), then two
/// consecutive windows of `minutes` of `cfg`'s feed after the lake's last day, each through Bronze
/// (Event Hub batches), Silver and Gold.
async fn increments(
    lake: &Lake,
    cfg: &SimConfig,
    lake_days: u32,
    minutes: u32,
    mut lake_bronze_adt_rows: u64,
    meter: &mut Meter,
) -> anyhow::Result<Vec<IncrementFigures>> {
    let from = day_start(cfg, lake_days);
    let step = chrono::Duration::minutes(i64::from(minutes));
    let messages = feed_window(cfg, from, from + step * 2).await?;
    let ingestor = AdtIngestor::new(lake.clone());
    let mut out = Vec::new();
    let mut sequence = 0;
    for window in 1..=2u32 {
        let (w_from, w_to) = (
            from + step * (window as i32 - 1),
            from + step * window as i32,
        );
        let slice: Vec<TimedMessage> = messages
            .iter()
            .filter(|m| m.deliver_at >= w_from && m.deliver_at < w_to)
            .cloned()
            .collect();
        let batches = event_batches(&slice, sequence);
        sequence += slice.len() as i64;
        let mut stages = Vec::new();
        let run_id = bronze::new_run_id("bench-adt");
        let s = meter.start();
        let mut report = IngestReport {
            run_id: run_id.clone(),
            ..Default::default()
        };
        for batch in batches {
            let work = ingestor.ingest_events(batch, &run_id);
            let r = tracked(lake, "bronze.adt", &context(&run_id), work)
                .await
                .context("ADT ingest of the window")?;
            report.absorb(r);
        }
        stages.push(ingest_figures(meter, s, "bronze.adt", &report));
        stages.push(silver(lake, meter).await?);
        stages.push(gold(lake, meter).await?);
        let silver_gold = total(
            "silver+gold",
            &stages[1..],
            stages[1].rows_in,
            stages[2].rows_out,
        );
        let end_to_end = total("end to end", &stages, stages[0].rows_in, stages[2].rows_out);
        out.push(IncrementFigures {
            lake_days,
            window,
            from: w_from,
            to: w_to,
            messages: slice.len() as u64,
            lake_bronze_adt_rows,
            stages,
            silver_gold,
            end_to_end,
        });
        lake_bronze_adt_rows += report.total_rows() as u64;
    }
    Ok(out)
}

fn bronze_adt_rows(stages: &[StageFigures]) -> u64 {
    stages
        .iter()
        .filter(|s| s.stage == "bronze.adt")
        .map(|s| s.rows_out)
        .sum()
}

async fn open_fresh_lake(dir: &Path) -> anyhow::Result<Lake> {
    if dir.exists() {
        bail!(
            "{} exists: give a new --work folder (the benchmark needs a fresh lake)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Lake::open(dir.to_str().context("the lake path is not UTF-8")?)
        .await
        .context("opening the lake")
}

/// Runs the benchmark, prints the report and writes it as JSON when asked.
pub async fn run(args: BenchPipelineArgs) -> anyhow::Result<Outcome> {
    let report = measure(&args).await?;
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nfigures written to {}", path.display());
    }
    Ok(Outcome::Success)
}

/// Runs the benchmark and returns its figures.
pub async fn measure(args: &BenchPipelineArgs) -> anyhow::Result<Report> {
    let date = Utc::now();
    let machine = machine();
    let temp;
    let work = match &args.work {
        Some(w) => w.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("patientflow-bench-")
                .tempdir()
                .context("creating a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    // The data set and the configuration behind it. When the incremental run is on a lake of --days,
    // one more day is generated and held back, so that the windows continue the lake's own feed.
    let sizes = match (args.increment_minutes, args.sizes.is_empty()) {
        (None, _) => Vec::new(),
        (Some(_), false) => args.sizes.clone(),
        (Some(_), true) => vec![args.days],
    };
    let (data_dir, cfg, mut data, cutoff) = match &args.data {
        Some(d) => {
            if !d.join("adt").is_dir() {
                bail!(
                    "{} has no adt/ folder: not a simulated data set",
                    d.display()
                );
            }
            let cfg: Option<SimConfig> = read_json(&d.join("truth").join("config.json"));
            let data = data_set(d, cfg.as_ref(), None);
            (d.clone(), cfg, data, None)
        }
        None => {
            let cfg = SimConfig {
                seed: args.seed,
                days: args.days,
                hospitals: parse_hospitals(&args.hospitals),
                ..SimConfig::default()
            };
            let hold_back = sizes.contains(&args.days);
            let generated = if hold_back {
                continued(&cfg, 1)
            } else {
                cfg.clone()
            };
            let dir = work.join("data");
            let secs = generate(&generated, &dir).await?;
            let mut data = data_set(&dir, Some(&generated), Some(secs));
            let cutoff = hold_back.then(|| day_start(&cfg, cfg.days).date_naive());
            if hold_back {
                data.lake_days = Some(cfg.days);
            }
            (dir, Some(cfg), data, cutoff)
        }
    };
    if !sizes.is_empty() && cfg.is_none() {
        bail!(
            "the incremental run needs the data set's configuration ({}/truth/config.json) to continue its feed",
            data_dir.display()
        );
    }
    if data.days == 0 {
        data.days = cfg.as_ref().map_or(0, |c| c.days);
    }

    let mut meter = Meter::new();
    let lake = open_fresh_lake(&work.join("lake")).await?;
    let stages = build(&lake, &data_dir, cutoff, &mut meter).await?;
    let full_total = raw_total(&stages);

    let mut lakes = Vec::new();
    if let (Some(minutes), Some(cfg)) = (args.increment_minutes, &cfg) {
        for size in sizes {
            if cutoff.is_some() && size == cfg.days {
                // The full build's lake, continued by the held-back day of its own data set.
                let windows = increments(
                    &lake,
                    &continued(cfg, 1),
                    size,
                    minutes,
                    bronze_adt_rows(&stages),
                    &mut meter,
                )
                .await?;
                lakes.push(IncrementLake {
                    days: size,
                    reused_full_build: true,
                    data: data.clone(),
                    build: Vec::new(),
                    windows,
                });
                continue;
            }
            // A data set of size + 1 days; the lake gets the first `size`.
            let sized = continued(
                &SimConfig {
                    days: size,
                    ..cfg.clone()
                },
                1,
            );
            let dir = work.join(format!("size-{size}"));
            let data_dir = dir.join("data");
            let secs = generate(&sized, &data_dir).await?;
            let sized_lake = open_fresh_lake(&dir.join("lake")).await?;
            let cutoff = day_start(&sized, size).date_naive();
            let build_stages = build(&sized_lake, &data_dir, Some(cutoff), &mut meter).await?;
            let windows = increments(
                &sized_lake,
                &sized,
                size,
                minutes,
                bronze_adt_rows(&build_stages),
                &mut meter,
            )
            .await?;
            let mut sized_data = data_set(&data_dir, Some(&sized), Some(secs));
            sized_data.lake_days = Some(size);
            lakes.push(IncrementLake {
                days: size,
                reused_full_build: false,
                data: sized_data,
                build: build_stages,
                windows,
            });
        }
    }

    Ok(Report {
        date,
        machine,
        build_profile: build_profile().into(),
        git_commit: git_commit(),
        data,
        stages,
        total: full_total,
        increment_minutes: args.increment_minutes,
        increments: lakes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::http::bench::BenchCommand;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let mut all = vec!["patientflow"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.command)
    }

    fn pipeline(args: &[&str]) -> BenchPipelineArgs {
        let mut all = vec!["bench", "pipeline"];
        all.extend_from_slice(args);
        match parse(&all).expect("parses") {
            Command::Bench(BenchCommand::Pipeline(a)) => a,
            other => panic!("not bench pipeline: {other:?}"),
        }
    }

    #[test]
    fn arguments() {
        let a = pipeline(&[]);
        assert_eq!(
            (a.days, a.hospitals.as_str(), a.seed),
            (365, "7", 20_260_101)
        );
        assert!(a.data.is_none() && a.json.is_none() && a.work.is_none());
        assert!(a.increment_minutes.is_none() && a.sizes.is_empty());

        let a = pipeline(&[
            "--days",
            "30",
            "--hospitals",
            "MHA01,MHA03",
            "--seed",
            "7",
            "--json",
            "out.json",
            "--increment-minutes",
            "1",
            "--sizes",
            "7,30",
        ]);
        assert_eq!(a.days, 30);
        assert_eq!(
            parse_hospitals(&a.hospitals),
            Hospitals::Ids(vec!["MHA01".into(), "MHA03".into()])
        );
        assert_eq!(parse_hospitals(" 3 "), Hospitals::Count(3));
        assert_eq!(a.seed, 7);
        assert_eq!(a.json, Some(PathBuf::from("out.json")));
        assert_eq!(a.increment_minutes, Some(1));
        assert_eq!(a.sizes, vec![7, 30]);

        // Sizes only make sense with an increment; zero minutes or days are refused.
        assert!(parse(&["bench", "pipeline", "--sizes", "7,30"]).is_err());
        assert!(parse(&["bench", "pipeline", "--increment-minutes", "0"]).is_err());
        assert!(parse(&[
            "bench",
            "pipeline",
            "--increment-minutes",
            "1",
            "--sizes",
            "0"
        ])
        .is_err());
    }

    #[test]
    fn the_other_benchmarks_still_parse() {
        assert!(matches!(
            parse(&["bench", "gold", "--work", "w"]),
            Ok(Command::Bench(BenchCommand::Gold(_)))
        ));
        assert!(matches!(
            parse(&["bench-gold", "--work", "w"]),
            Ok(Command::BenchGold(_))
        ));
        assert!(matches!(
            parse(&["bench", "ingest", "--messages", "10"]),
            Ok(Command::Bench(BenchCommand::Ingest(_)))
        ));
    }

    #[test]
    fn proc_parsing() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 9135 0 0 0 1234 56 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some((1234, 56)));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let status =
            "Name:\tpatientflow\nVmPeak:\t  900 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_kib(status, "VmHWM"), Some(524_288));
        assert_eq!(parse_kib(status, "VmRSS"), Some(1024));
        assert_eq!(parse_kib(status, "VmSwap"), None);
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7763\nflags\t: fpu\n"),
            Some("AMD EPYC 7763".into())
        );
        // The live process can be read (Linux).
        if Path::new("/proc/self/stat").exists() {
            assert!(cpu_ticks().is_some());
            assert!(memory_kib().0.is_some());
        }
    }

    fn stage(name: &str, wall: f64, cpu: f64, peak: f64, rss: (f64, f64)) -> StageFigures {
        StageFigures {
            stage: name.into(),
            status: "succeeded".into(),
            wall_s: wall,
            cpu_user_s: Some(cpu * 0.75),
            cpu_sys_s: Some(cpu * 0.25),
            cpu_s: Some(cpu),
            peak_rss_mib: Some(peak),
            peak_is_per_stage: true,
            running_peak_rss_mib: Some(peak),
            rss_start_mib: Some(rss.0),
            rss_end_mib: Some(rss.1),
            rss_delta_mib: Some(rss.1 - rss.0),
            rows_in: 1000,
            rows_out: 900,
            throughput: per_second(1000, wall),
            throughput_unit: "rows/s".into(),
            note: String::new(),
        }
    }

    #[test]
    fn figures_and_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(thousands(1_233_741), "1,233,741");
        assert_eq!(per_second(500, 0.0), None);
        assert_eq!(per_second(500, 2.0), Some(250.0));
        assert_eq!(opt(None, 2), "–");
        assert_eq!(opt(Some(1.234), 1), "1.2");
        assert_eq!(signed(Some(12.4)), "+12");
        assert_eq!(signed(Some(-3.6)), "-4");
        assert_eq!(signed(Some(-0.2)), "0");
        assert_eq!(mib(2048), 2.0);

        let a = stage("bronze.adt", 2.0, 3.0, 400.0, (30.0, 120.0));
        let b = stage("gold", 1.0, 1.0, 900.0, (120.0, 100.0));
        assert_eq!(utilisation(&a), Some(1.5));
        assert_eq!(rate(&a), "500 rows/s");
        let t = total("raw → Gold", &[a.clone(), b.clone()], 1000, 900);
        assert_eq!(t.wall_s, 3.0);
        assert_eq!(t.cpu_s, Some(4.0));
        assert_eq!(t.cpu_user_s, Some(3.0));
        assert_eq!(t.peak_rss_mib, Some(900.0));
        assert_eq!((t.rss_start_mib, t.rss_end_mib), (Some(30.0), Some(100.0)));
        assert_eq!(t.rss_delta_mib, Some(70.0));
        assert_eq!(t.throughput.map(|x| x.round()), Some(333.0));
        // A stage without CPU figures makes the sum unknown, not smaller.
        let mut c = b.clone();
        c.cpu_s = None;
        assert_eq!(total("x", &[a.clone(), c], 0, 0).cpu_s, None);

        let row = stage_row(&a, false);
        assert!(
            row.starts_with(
                "| bronze.adt | 2.00 | 3.00 | 1.50 | 400 | +90 | 1,000 | 900 | 500 rows/s |"
            ),
            "{row}"
        );
        assert!(stage_row(&t, true).starts_with("| **raw → Gold** | **3.00** |"));
    }

    #[test]
    fn meter_measures_a_stage() {
        let mut m = Meter::new();
        let s = m.start();
        let block = vec![1u8; 8 << 20];
        std::hint::black_box(&block);
        let f = m.finish(s, "bronze.adt", 10, 10);
        assert_eq!(f.throughput_unit, "messages/s");
        assert!(f.wall_s >= 0.0);
        if Path::new("/proc/self/status").exists() {
            assert!(f.peak_rss_mib.is_some() && f.rss_delta_mib.is_some());
            assert!(f.running_peak_rss_mib >= f.peak_rss_mib);
        }
    }

    #[test]
    fn continuation_keeps_the_first_days() {
        let cfg = SimConfig {
            days: 30,
            ..SimConfig::default()
        };
        let next = continued(&cfg, 1);
        assert_eq!(next.days, 31);
        assert_eq!(next.language_day(), cfg.language_day());
        assert_eq!(next.insurance_day(), cfg.insurance_day());
        assert_eq!((next.seed, &next.hospitals), (cfg.seed, &cfg.hospitals));
    }

    /// A whole run on one day of one hospital, with the incremental windows on lakes of 1 and 2 days.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tiny_run_end_to_end() {
        let work = tempfile::tempdir().unwrap();
        let json = work.path().join("figures.json");
        let args = pipeline(&[
            "--days",
            "1",
            "--hospitals",
            "1",
            "--increment-minutes",
            "60",
            "--sizes",
            "1,2",
            "--work",
            work.path().join("w").to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        run(args.clone()).await.expect("bench pipeline runs");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let stages: Vec<&str> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert_eq!(
            stages,
            [
                "bronze.adt",
                "bronze.ehr",
                "bronze.reference",
                "silver",
                "gold"
            ]
        );
        let adt = &r["stages"][0];
        // One more day was generated and held back for the windows.
        assert_eq!(
            (r["data"]["days"].as_u64(), r["data"]["lake_days"].as_u64()),
            (Some(2), Some(1))
        );
        let (read, generated) = (
            adt["rows_in"].as_u64().unwrap(),
            r["data"]["adt_messages"].as_u64().unwrap(),
        );
        assert!(read > 0 && read < generated, "{read} of {generated}");
        assert!(adt["throughput"].as_f64().unwrap() > 0.0);
        assert!(r["stages"][4]["rows_out"].as_u64().unwrap() > 0);
        assert!(r["total"]["wall_s"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["build_profile"],
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        let lakes = r["increments"].as_array().unwrap();
        assert_eq!(lakes.len(), 2);
        assert_eq!(lakes[0]["reused_full_build"], true);
        assert_eq!(lakes[1]["days"], 2);
        assert_eq!(lakes[1]["build"].as_array().unwrap().len(), 5);
        let windows = lakes[0]["windows"].as_array().unwrap();
        assert_eq!(windows.len(), 2);
        for w in windows {
            assert_eq!(w["stages"].as_array().unwrap().len(), 3);
            assert_eq!(w["stages"][0]["rows_in"], w["messages"]);
        }
        assert!(lakes
            .iter()
            .any(|l| l["windows"][0]["messages"].as_u64().unwrap() > 0));
        // The work folder holds a lake now: a second run into it is refused.
        assert!(measure(&args).await.is_err());
    }
}
