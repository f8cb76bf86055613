//! `patientflow bench gold` (also `bench-gold`): times the Gold refresh (full and incremental) on a
//! simulated network and the dashboard's queries over Gold (p50/p95), with the peak memory of each
//! phase. The figures in docs/performance.md § Gold come from here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::pipeline::{refresh_gold, refresh_silver, RefreshOptions};
use patientflow_core::serving::query::{gold_session, run_gold, run_in, QueryLimits};
use patientflow_core::storage::Lake;
use patientflow_simulator::SimConfig;

use crate::Outcome;

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Working folder: the lake goes to <work>/lake (must not exist), generated data to <work>/data.
    #[arg(long)]
    pub work: PathBuf,
    /// A simulated data set (`patientflow generate`); generated into <work>/data when absent.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Days to simulate when generating (7 hospitals, default defect rates).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Runs per dashboard query (warm session).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
}

/// The queries the dashboard makes, over Gold only.
pub const DASHBOARD_QUERIES: [(&str, &str); 8] = [
    ("hospital occupancy now", "SELECT hospital_id, inpatient_occupancy_pct, ed_occupied FROM gold_kpi_occupancy_current_hospital ORDER BY hospital_id"),
    ("department occupancy now", "SELECT hospital_id, department_code, occupied_beds, staffed_beds, occupancy_pct FROM gold_kpi_occupancy_current ORDER BY 1, 2"),
    ("last 48 h census, one hospital", "SELECT hour_start, department_code, occupied_beds, occupancy_pct FROM gold_fact_census_hourly WHERE hospital_id = 'MHA01' AND hour_start >= (SELECT MAX(hour_start) FROM gold_fact_census_hourly WHERE hospital_id = 'MHA01') - INTERVAL '48 hours' ORDER BY 1, 2"),
    ("sex mix now, one hospital", "SELECT department_code, sex_group, occupied_beds, share_pct FROM gold_kpi_sex_distribution WHERE hospital_id = 'MHA01'"),
    ("admission wait by hour", "SELECT department_code, hour_of_day, wait_median_minutes, wait_p90_minutes FROM gold_kpi_admission_wait WHERE hospital_id = 'MHA01' AND month_key IS NULL ORDER BY 1, 2"),
    ("ALOS by month", "SELECT hospital_id, month_key, alos_hours, alos_days FROM gold_kpi_alos_hospital_monthly ORDER BY 1, 2"),
    ("open bottlenecks", "SELECT hospital_id, department_code, kind, start_hour, hours FROM gold_kpi_bottlenecks WHERE ongoing OR end_hour >= (SELECT MAX(end_hour) FROM gold_kpi_bottlenecks) - INTERVAL '24 hours'"),
    ("KH03 occupancy by month", "SELECT hospital_id, month_key, 100.0 * SUM(occupied_bed_days) / SUM(available_bed_days) AS pct FROM gold_kpi_midnight_census GROUP BY 1, 2 ORDER BY 1, 2"),
];

fn no_progress(_: &str, _: usize) {}

/// Resets the process's peak-RSS counter (Linux `clear_refs` 5); harmless elsewhere.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MiB (Linux `VmHWM`).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn day_folders(data: &Path, kind: &str) -> Vec<(chrono::NaiveDate, String)> {
    let mut out: Vec<(chrono::NaiveDate, String)> = std::fs::read_dir(data.join(kind))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let d = chrono::NaiveDate::parse_from_str(
                        &e.file_name().to_string_lossy(),
                        "%Y-%m-%d",
                    )
                    .ok()?;
                    Some((d, e.path().display().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn ingest(
    lake: &Lake,
    data: &Path,
    keep: impl Fn(chrono::NaiveDate) -> bool,
) -> anyhow::Result<u64> {
    let mut rows = 0;
    let r = bronze::reference::ingest_paths(
        lake,
        &[data.join("reference").display().to_string()],
        "bench",
        &no_progress,
    )
    .await?;
    rows += r.total_rows();
    let adt: Vec<String> = day_folders(data, "adt")
        .into_iter()
        .filter(|(d, _)| keep(*d))
        .map(|(_, p)| p)
        .collect();
    rows += AdtIngestor::new(lake.clone())
        .ingest_paths(&adt, "bench", &no_progress)
        .await?
        .total_rows();
    let ehr: Vec<String> = day_folders(data, "ehr")
        .into_iter()
        .filter(|(d, _)| keep(*d))
        .map(|(_, p)| p)
        .collect();
    rows += bronze::ehr::ingest_paths(lake, &ehr, None, "bench", &no_progress)
        .await?
        .total_rows();
    Ok(rows as u64)
}

struct Phase {
    name: String,
    secs: f64,
    peak: Option<f64>,
    note: String,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints a Markdown report.
pub async fn run(args: BenchArgs) -> anyhow::Result<Outcome> {
    let lake_dir = args.work.join("lake");
    anyhow::ensure!(
        !lake_dir.exists(),
        "{} exists: give a new --work folder",
        lake_dir.display()
    );
    let mut phases: Vec<Phase> = Vec::new();
    let data = match args.data {
        Some(d) => d,
        None => {
            let out = args.work.join("data");
            let cfg = SimConfig {
                days: args.days,
                ..SimConfig::default()
            };
            let t = Instant::now();
            let s = patientflow_simulator::generate(&cfg, &out).context("generating")?;
            phases.push(Phase {
                name: "generate (not part of the pipeline)".into(),
                secs: t.elapsed().as_secs_f64(),
                peak: None,
                note: format!(
                    "{} encounters, {} ADT messages",
                    s.encounters, s.adt_messages
                ),
            });
            out
        }
    };
    let lake = Lake::open(lake_dir.to_str().context("lake path")?).await?;
    let days = day_folders(&data, "adt");
    let last = days
        .last()
        .map(|d| d.0)
        .context("no adt/<day> folders in the data set")?;
    let options = |full: bool| RefreshOptions {
        full,
        trigger: "bench".into(),
    };

    let mut timed = |name: &str, t: Instant, note: String| {
        phases.push(Phase {
            name: name.into(),
            secs: t.elapsed().as_secs_f64(),
            peak: peak_mib(),
            note,
        });
        reset_peak();
    };
    reset_peak();
    let t = Instant::now();
    let rows = ingest(&lake, &data, |d| d < last).await?;
    timed(
        "bronze ingest (all days but the last)",
        t,
        format!("{rows} rows"),
    );
    let t = Instant::now();
    let s = refresh_silver(&lake, &options(false)).await?;
    timed("silver refresh", t, format!("{} rows in", s.rows_in));
    let t = Instant::now();
    let g = refresh_gold(&lake, &options(false)).await?;
    timed(
        "**gold refresh, first (full)**",
        t,
        format!("mode {}, {} rows written", g.details["mode"], g.rows_out),
    );

    let t = Instant::now();
    let rows = ingest(&lake, &data, |d| d == last).await?;
    timed("bronze ingest (last day)", t, format!("{rows} rows"));
    let t = Instant::now();
    let s = refresh_silver(&lake, &options(false)).await?;
    timed(
        "silver refresh (last day)",
        t,
        format!("{} rows in", s.rows_in),
    );
    let t = Instant::now();
    let g = refresh_gold(&lake, &options(false)).await?;
    timed(
        "**gold refresh, incremental (last day)**",
        t,
        format!(
            "mode {}, {} encounters touched, {} rows written",
            g.details["mode"], g.details["touched_encounters"], g.rows_out
        ),
    );
    let t = Instant::now();
    let g = refresh_gold(&lake, &options(true)).await?;
    timed(
        "**gold refresh --full (whole data set)**",
        t,
        format!("{} rows written", g.rows_out),
    );
    let t = Instant::now();
    let g = refresh_gold(&lake, &options(false)).await?;
    timed(
        "gold refresh, nothing new",
        t,
        format!("status {}", g.status),
    );

    let limits = QueryLimits {
        max_rows: 100_000,
        timeout: Duration::from_secs(60),
    };
    let t = Instant::now();
    let ctx = gold_session(&lake).await?;
    let session_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut results = Vec::new();
    for (name, sql) in DASHBOARD_QUERIES {
        let mut warm = Vec::with_capacity(args.runs);
        let mut rows = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let r = run_in(&ctx, sql, limits)
                .await
                .with_context(|| name.to_string())?;
            warm.push(t.elapsed());
            rows = r.num_rows();
        }
        let mut cold = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            run_gold(&lake, sql, limits).await?;
            cold.push(t.elapsed());
        }
        warm.sort();
        cold.sort();
        results.push((
            name,
            rows,
            pct(&warm, 0.5),
            pct(&warm, 0.95),
            pct(&cold, 0.5),
        ));
    }
    let query_peak = peak_mib();

    println!("| phase | seconds | peak RSS (MiB) | notes |\n|---|---:|---:|---|");
    for p in &phases {
        println!(
            "| {} | {:.2} | {} | {} |",
            p.name,
            p.secs,
            p.peak.map_or("–".into(), |m| format!("{m:.0}")),
            p.note
        );
    }
    println!("\nGold session set-up (registering the 19 Gold tables): {session_ms:.1} ms; peak RSS during the queries {} MiB\n", query_peak.map_or("–".into(), |m| format!("{m:.0}")));
    println!("| dashboard query | rows | p50 ms (warm) | p95 ms (warm) | p50 ms (new session) |\n|---|---:|---:|---:|---:|");
    for (name, rows, p50, p95, cold) in results {
        println!("| {name} | {rows} | {p50:.1} | {p95:.1} | {cold:.1} |");
    }
    Ok(Outcome::Success)
}
