//! `patientflow serve`: the local runtime. The same app the Functions host calls, plus the host's part
//! played in process: timer triggers on the function.json schedules, `/api/<route>` for the HTTP
//! functions, `POST /api/adt` standing in for Event Hubs, and optionally the simulator streaming live.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use patientflow_simulator::{pacing_delay, stream, SimConfig};

use crate::http::{self, local, timers, AppState, Settings};
use crate::Outcome;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 7071)]
    pub port: u16,
    /// Folder holding `<Function>/function.json` (timer schedules); default ./functions when present,
    /// else the copies built into the binary.
    #[arg(long)]
    pub functions: Option<PathBuf>,
    /// Do not run the timer triggers.
    #[arg(long)]
    pub no_timers: bool,
    /// Stream the simulator's ADT feed into the lake, paced by --speed.
    #[arg(long)]
    pub simulate: bool,
    /// Simulated seconds per wall-clock second for --simulate (60 = one simulated hour per minute; 0 = as
    /// fast as possible).
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Days the simulation covers.
    #[arg(long, default_value_t = 30)]
    pub sim_days: u32,
    /// Simulator seed.
    #[arg(long)]
    pub sim_seed: Option<u64>,
    /// Security settings file (JSON, docs/security.md); default `PATIENTFLOW_SECURITY_FILE`, then
    /// `PATIENTFLOW_SECURITY`. Without any, `serve` runs in anonymous demo mode (PHI masked).
    #[arg(long)]
    pub security: Option<PathBuf>,
}

/// Runs the local runtime until Ctrl-C / SIGTERM.
pub async fn run(lake: &str, args: ServeArgs) -> anyhow::Result<Outcome> {
    let security = http::auth::startup(args.security.as_deref(), true).await?;
    let state = AppState::with_security(Settings::from_env(lake), security);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local_addr = listener.local_addr().context("listener address")?;
    // Open the lake up front so a wrong URL shows at once (the app would report it per request).
    if let Err(e) = state.lake().await {
        tracing::warn!("{e}");
        eprintln!("warning: {e}");
    }
    println!(
        "patientflow serve on http://{local_addr}  (lake {})",
        state.settings.lake_url
    );
    println!("  dashboard: http://{local_addr}/api/dashboard/");
    println!("  GET  http://{local_addr}/api/health        POST http://{local_addr}/api/adt (NDJSON, JSON array or HL7)");
    println!(
        "  GET  http://{local_addr}/api/query?sql=…    GET  http://{local_addr}/api/dashboard"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    if !args.no_timers {
        let dir = args.functions.clone().or_else(|| {
            let d = PathBuf::from("functions");
            d.is_dir().then_some(d)
        });
        let specs = timers::load_timers(dir.as_deref()).map_err(anyhow::Error::msg)?;
        for t in &specs {
            println!(
                "  timer {} on \"{}\" (UTC)",
                t.function.name(),
                t.expression
            );
        }
        background.spawn(timers::run_timers(state.clone(), specs, stop_rx.clone()));
        let alert_settings = patientflow_core::ops::alerts::process_settings().clone();
        if alert_settings.enabled {
            println!(
                "  alerts every {} s (webhook {})",
                alert_settings.interval.as_secs(),
                alert_settings
                    .webhook_url
                    .as_deref()
                    .unwrap_or("none: outbox only")
            );
            background.spawn(alert_schedule(
                state.clone(),
                alert_settings,
                stop_rx.clone(),
            ));
        }
    }
    if args.simulate {
        let cfg = SimConfig {
            days: args.sim_days,
            seed: args.sim_seed.unwrap_or(SimConfig::default().seed),
            ..SimConfig::default()
        };
        println!(
            "  simulating {} days of ADT traffic at {}× real time",
            cfg.days, args.speed
        );
        background.spawn(simulate(state.clone(), cfg, args.speed, stop_rx.clone()));
    }

    axum::serve(listener, http::app(state.clone()))
        .with_graceful_shutdown(http::shutdown_signal())
        .await
        .context("serving")?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while background.join_next().await.is_some() {}
    })
    .await;
    state.drain_background(Duration::from_secs(30)).await;
    state.security.flush_audit().await;
    println!("stopped");
    Ok(Outcome::Success)
}

/// Every alert rule on the settings' interval, with delivery, until the stop signal.
async fn alert_schedule(
    state: Arc<AppState>,
    settings: patientflow_core::ops::alerts::AlertSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use patientflow_core::ops::alerts::{run_cycle, Rule};
    let mut tick = tokio::time::interval(settings.interval.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let lake = match state.lake().await {
            Ok(lake) => lake,
            Err(e) => {
                tracing::warn!("alert cycle skipped: {e}");
                continue;
            }
        };
        match run_cycle(lake, &settings, &Rule::ALL, chrono::Utc::now()).await {
            Ok(r) if !r.fired.is_empty() || !r.resolved.is_empty() || r.failed_attempts > 0 => {
                tracing::info!(fired = ?r.fired, resolved = ?r.resolved, pending = r.pending, "alert cycle")
            }
            Ok(_) => {}
            Err(e) => tracing::error!("alert cycle failed: {e}"),
        }
    }
}

/// Streams the simulator's feed into AdtIngest: a blocking thread walks the feed and paces it; batches of
/// what arrived in the last half second go in as Event Hub invocations.
async fn simulate(
    state: Arc<AppState>,
    cfg: SimConfig,
    speed: f64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // The simulated hospitals and departments go to Bronze first: without them every event would be
    // quarantined as coming from an unknown facility.
    match ingest_reference(&state, &cfg).await {
        Ok(rows) => tracing::info!(rows, "simulated hospitals and departments ingested"),
        Err(e) => tracing::error!("simulated reference data not ingested: {e:#}"),
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, String)>(20_000);
    let stopped = Arc::new(AtomicBool::new(false));
    let producer_stop = stopped.clone();
    let producer = tokio::task::spawn_blocking(move || -> Result<u64, String> {
        let feed = stream(&cfg).map_err(|e| e.to_string())?;
        let mut prev = None;
        let mut sent = 0u64;
        for msg in feed {
            if producer_stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(p) = prev {
                let mut wait = pacing_delay(p, msg.deliver_at, speed);
                // Sleep in slices so a shutdown is noticed.
                while wait > Duration::ZERO && !producer_stop.load(Ordering::Relaxed) {
                    let slice = wait.min(Duration::from_millis(200));
                    std::thread::sleep(slice);
                    wait -= slice;
                }
            }
            prev = Some(msg.deliver_at);
            if tx.blocking_send((msg.facility, msg.payload)).is_err() {
                break;
            }
            sent += 1;
        }
        Ok(sent)
    });
    let mut total = 0usize;
    loop {
        let mut batch: Vec<(Option<String>, String)> = Vec::new();
        let window = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(window);
        let mut closed = false;
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some((facility, payload)) => {
                        batch.push((Some(facility), payload));
                        if batch.len() >= local::MAX_BATCH * local::PARTITIONS { break; }
                    }
                    None => { closed = true; break; }
                },
                _ = &mut window => break,
                _ = stop.changed() => { closed = true; break; }
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            match local::feed_adt(&state, batch).await {
                Ok((_, report)) => {
                    total += n;
                    tracing::info!(
                        events = n,
                        total,
                        rows = report.total_rows(),
                        "simulated ADT batch ingested"
                    );
                }
                Err(e) => tracing::warn!("simulated ADT batch not ingested: {e}"),
            }
        }
        if closed {
            break;
        }
    }
    stopped.store(true, Ordering::Relaxed);
    rx.close();
    match producer.await {
        Ok(Ok(sent)) => tracing::info!(sent, ingested = total, "simulation stream ended"),
        Ok(Err(e)) => tracing::error!("simulator: {e}"),
        Err(e) => tracing::error!("simulator thread: {e}"),
    }
}

/// Writes the simulator's reference data for `cfg` and ingests it into Bronze; returns the rows written.
async fn ingest_reference(state: &Arc<AppState>, cfg: &SimConfig) -> anyhow::Result<usize> {
    let lake = state
        .lake()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .clone();
    let cfg = cfg.clone();
    let handle = tokio::runtime::Handle::current();
    // The ingest's progress callback is not `Send`: run it to completion on a blocking thread.
    tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let dir = tempfile::tempdir().context("temporary folder")?;
        patientflow_simulator::write_reference_data(&cfg, dir.path())
            .context("writing the simulated reference data")?;
        let paths = [dir.path().join("reference").display().to_string()];
        let quiet = |_: &str, _: usize| {};
        let run_id = patientflow_core::bronze::new_run_id("simulate-reference");
        let ctx = patientflow_core::ops::ledger::RunContext::new("serve")
            .with_run_id(&run_id)
            .with_detail("command", "serve --simulate");
        let work =
            patientflow_core::bronze::reference::ingest_paths(&lake, &paths, &run_id, &quiet);
        let report = handle.block_on(patientflow_core::ops::ledger::tracked(
            &lake,
            "bronze.reference",
            &ctx,
            work,
        ))?;
        Ok(report.total_rows())
    })
    .await
    .context("reference ingest thread")?
}
