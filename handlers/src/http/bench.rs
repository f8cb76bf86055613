//! `patientflow bench ingest`: AdtIngest throughput over HTTP, the way the Functions host drives it.
//!
//! Starts `patientflow handler` as a child process (a fresh local lake), measures cold start (process
//! start → first answer on `GET /`), then POSTs host-shaped Event Hub batches (`cardinality: many`,
//! double-encoded, 1000 events each) of HL7 v2 and of JSON messages to `/AdtIngest`, and reports
//! messages/s, batch latency p50/p99 and the handler's peak RSS (`VmHWM`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Subcommand};

use super::eventhub::{host_payload, EventMeta};

/// What to benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Raw files → Bronze → Silver → Gold on a fresh lake from simulated data: wall time, CPU time,
    /// peak RSS, rows and throughput per stage; optionally incremental windows on lakes of several sizes.
    /// Uses its own lakes under --work (or a temporary folder), never --lake.
    Pipeline(crate::commands::bench_pipeline::BenchPipelineArgs),
    /// The Gold refresh (full, incremental) and the dashboard's queries on simulated data (also
    /// available as `bench-gold`).
    Gold(crate::commands::bench_gold::BenchArgs),
    /// AdtIngest throughput, latency, cold start and peak RSS of `patientflow handler`.
    Ingest(BenchIngestArgs),
}

/// Options of `bench ingest`.
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Messages per format (HL7 and JSON).
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Events per AdtIngest invocation.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Cold starts measured (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub cold_starts: usize,
    /// The patientflow executable to measure (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<crate::Outcome> {
    match cmd {
        BenchCommand::Pipeline(args) => crate::commands::bench_pipeline::run(args).await,
        BenchCommand::Gold(args) => crate::commands::bench_gold::run(args).await,
        BenchCommand::Ingest(args) => ingest(args).await,
    }
}

/// A handler child process, killed on drop.
struct Handler {
    child: Child,
    port: u16,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn start_handler(
    binary: &std::path::Path,
    lake: &std::path::Path,
    client: &reqwest::Client,
) -> anyhow::Result<(Handler, Duration)> {
    let port = free_port()?;
    // Work-around: on a fresh local lake the core reports a missing table folder as a kernel error
    // instead of "no table yet"; an empty folder makes the first ingest create the table.
    std::fs::create_dir_all(lake.join("bronze").join("adt_messages"))?;
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("handler")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("PATIENTFLOW_LAKE", lake)
        .env("PATIENTFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut h = Handler { child, port };
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        if client.get(&url).send().await.is_ok() {
            return Ok((h, started.elapsed()));
        }
        if let Some(status) = h.child.try_wait()? {
            bail!("the handler exited with {status} before it was ready");
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the handler was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Peak resident set size (`VmHWM`) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A synthetic HL7 v2 A01 with a unique control id (about 400 bytes, like the simulator's).
pub fn hl7_message(i: usize) -> String {
    let facility = format!("MHA0{}", i % 7 + 1);
    format!(
        "MSH|^~\\&|REG|{facility}|PATIENTFLOW|MHA|20260114083000-0600||ADT^A01^ADT_A01|B{i:09}|P|2.5.1\r\
         EVN|A01|20260114083000-0600|||||{facility}\r\
         PID|1||{facility}-P{i:07}^^^{facility}^MR||Lindqvist^Maja^A||19570302|F|||12 Elm St^^Dayton^OH^45402\r\
         PV1|1|I|MED^12^B^{facility}||||1234^Admit^Ann|||MED||||1|||1234^Admit^Ann|IN|{facility}-V{i:07}|||||||||||||||||||||||||20260114083000-0600\r"
    )
}

/// A synthetic JSON `patientflow.adt.v1` event with a unique id.
pub fn json_message(i: usize) -> String {
    let facility = format!("MHA0{}", i % 7 + 1);
    serde_json::json!({
        "schema": "patientflow.adt.v1", "message_id": format!("J{i:09}"), "event_type": "A01",
        "facility": facility, "recorded_time": "2026-01-14T08:31:05-06:00", "event_time": "2026-01-14T08:30:00-06:00",
        "patient": {"mrn": format!("{facility}-P{i:07}"), "family_name": "Lindqvist", "given_name": "Maja",
                    "birth_date": "1957-03-02", "sex": "F"},
        "visit": {"visit_number": format!("{facility}-V{i:07}"), "patient_class": "I", "department": "MED",
                  "room": "MED-12", "bed": "MED-12-B", "admit_time": "2026-01-14T08:30:00-06:00"}
    })
    .to_string()
}

/// Figures of one format.
#[derive(Debug, serde::Serialize)]
struct FormatFigures {
    format: &'static str,
    messages: usize,
    batches: usize,
    seconds: f64,
    messages_per_second: f64,
    batch_p50_ms: f64,
    batch_p99_ms: f64,
    batch_max_ms: f64,
    /// The first batch of the run; on the first format it creates the Bronze table.
    first_batch_ms: f64,
    /// p99 of the batches after the first (the table exists, as in production).
    steady_p99_ms: f64,
    /// CPU time (user + system) the handler process spent on this format's batches.
    handler_cpu_s: Option<f64>,
    /// Messages per second of handler CPU time: throughput per core.
    messages_per_cpu_second: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Every batch's latency, in order.
    latencies_ms: Vec<f64>,
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    use crate::commands::bench_pipeline::{parse_cpu_ticks, TICKS_PER_SECOND};
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_cpu_ticks(&stat)?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn ingest(args: BenchIngestArgs) -> anyhow::Result<crate::Outcome> {
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe().context("locating this executable")?,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let scratch = tempfile::tempdir()?;
    // Cold starts, each on a fresh lake.
    let mut cold = Vec::new();
    for i in 0..args.cold_starts.max(1) {
        let lake = scratch.path().join(format!("cold{i}"));
        let (_h, t) = start_handler(&binary, &lake, &client).await?;
        cold.push(t.as_secs_f64() * 1000.0);
    }
    cold.sort_by(f64::total_cmp);
    let cold_median = percentile(&cold, 50.0);

    let lake = scratch.path().join("lake");
    let (handler, _) = start_handler(&binary, &lake, &client).await?;
    let idle_rss = peak_rss_kib(handler.child.id());
    let url = format!("http://127.0.0.1:{}/AdtIngest", handler.port);
    let mut figures = Vec::new();
    let mut sequence = 0i64;
    for (format, make) in [
        ("hl7", hl7_message as fn(usize) -> String),
        ("json", json_message as fn(usize) -> String),
    ] {
        let messages: Vec<String> = (0..args.messages).map(make).collect();
        let mut latencies = Vec::new();
        let cpu_before = cpu_seconds(handler.child.id());
        let started = Instant::now();
        for chunk in messages.chunks(args.batch.max(1)) {
            let now = Utc::now();
            let metas: Vec<EventMeta<'_>> = chunk
                .iter()
                .map(|body| {
                    sequence += 1;
                    EventMeta {
                        body,
                        sequence_number: sequence,
                        offset: sequence * 512,
                        enqueued_time: now,
                    }
                })
                .collect();
            let payload = host_payload("adt-events", "0", &metas).to_string();
            let t = Instant::now();
            let response = client
                .post(&url)
                .header("Content-Type", "application/json; charset=utf-8")
                .header(
                    "X-Azure-Functions-InvocationId",
                    uuid::Uuid::new_v4().to_string(),
                )
                .body(payload)
                .send()
                .await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("AdtIngest answered {status}: {body}");
            }
            let rows = body["ReturnValue"]["rows_written"]["bronze_adt_messages"]
                .as_u64()
                .unwrap_or(0);
            if rows != chunk.len() as u64 {
                bail!(
                    "AdtIngest wrote {rows} rows for {} events: {body}",
                    chunk.len()
                );
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let handler_cpu_s = cpu_before
            .zip(cpu_seconds(handler.child.id()))
            .map(|(a, b)| b - a);
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let mut steady = latencies.get(1..).unwrap_or_default().to_vec();
        steady.sort_by(f64::total_cmp);
        figures.push(FormatFigures {
            format,
            messages: messages.len(),
            batches: latencies.len(),
            seconds,
            messages_per_second: messages.len() as f64 / seconds,
            batch_p50_ms: percentile(&sorted, 50.0),
            batch_p99_ms: percentile(&sorted, 99.0),
            batch_max_ms: sorted.last().copied().unwrap_or(0.0),
            first_batch_ms: latencies.first().copied().unwrap_or(0.0),
            steady_p99_ms: percentile(&steady, 99.0),
            handler_cpu_s,
            messages_per_cpu_second: handler_cpu_s
                .filter(|&c| c > 0.0)
                .map(|c| messages.len() as f64 / c),
            latencies_ms: latencies
                .iter()
                .map(|l| (l * 10.0).round() / 10.0)
                .collect(),
            peak_rss_mib: peak_rss_kib(handler.child.id()).map(|k| k as f64 / 1024.0),
        });
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let binary_build = if binary.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        build
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let summary = serde_json::json!({
        "date": Utc::now().format("%Y-%m-%d").to_string(),
        "binary": binary.display().to_string(),
        "build": binary_build,
        "cpu": cpu,
        "cores": cores,
        "batch": args.batch,
        "cold_start_ms": {"median": cold_median, "all": cold},
        "idle_rss_mib": idle_rss.map(|k| k as f64 / 1024.0),
        "formats": figures,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("AdtIngest over HTTP ({binary_build} build, {cores} cores, {cpu}), batches of {} events", args.batch);
        println!(
            "cold start (process start → ready on GET /): median {cold_median:.0} ms of {}",
            cold.len()
        );
        if let Some(k) = idle_rss {
            println!("RSS after start: {:.1} MiB", k as f64 / 1024.0);
        }
        println!("| format | messages | msg/s (wall) | msg per handler CPU-s | batch p50 ms | batch p99 ms | first batch ms | p99 after first ms | peak RSS MiB |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let or_dash = |v: Option<f64>, digits: usize| {
            v.map(|m| format!("{m:.digits$}"))
                .unwrap_or_else(|| "-".into())
        };
        for f in &figures {
            println!(
                "| {} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                f.format,
                f.messages,
                f.messages_per_second,
                or_dash(f.messages_per_cpu_second, 0),
                f.batch_p50_ms,
                f.batch_p99_ms,
                f.first_batch_ms,
                f.steady_p99_ms,
                or_dash(f.peak_rss_mib, 1),
            );
        }
    }
    drop(handler);
    Ok(crate::Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_messages_are_valid_and_unique() {
        let a = patientflow_core::bronze::adt::split_messages(&hl7_message(1));
        assert_eq!(a.len(), 1);
        let h = a[0].header.as_ref().expect("HL7 header parses");
        assert_eq!(h.message_id, "B000000001");
        let j = patientflow_core::bronze::adt::split_messages(&json_message(2));
        assert_eq!(j[0].header.as_ref().unwrap().message_id, "J000000002");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
    }
}
