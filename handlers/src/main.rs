//! The `patientflow` binary: CLI, local runtime and Azure Functions custom handler, all thin layers over
//! `patientflow_core`.

mod cli;
mod commands;
mod http;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// The pipeline allocates and frees many small strings and Arrow buffers from two threads at once;
/// mimalloc's per-thread free lists keep that cheap (glibc malloc spent a third of Silver's time in
/// its own bookkeeping).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status: 0 success, 1 the run finished but some inputs failed, 2 the command failed.
pub enum Outcome {
    /// Everything worked.
    Success,
    /// Done, with some inputs reported as failed.
    Partial,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Handler(_) | Command::Serve(_));
    // Under the Functions host, JSON lines on stdout (forwarded to Application Insights `traces`).
    let json_stdout = server && std::env::var_os("FUNCTIONS_CUSTOMHANDLER_PORT").is_some();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            init_logging(&cli.log, server, json_stdout, None);
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // The servers export their invocation spans over OTLP when an endpoint is configured.
    let (otel, otel_error) = if server {
        match telemetry::Telemetry::from_env(runtime.handle()) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    init_logging(
        &cli.log,
        server,
        json_stdout,
        otel.as_ref().map(telemetry::Telemetry::tracer),
    );
    if let Some(e) = otel_error {
        tracing::warn!("OpenTelemetry export is off: {e}");
    }
    let result = runtime.block_on(run(cli));
    // Flush the last spans while the runtime that sends them still runs.
    if let Some(otel) = otel {
        otel.shutdown();
    }
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Ingest(cmd) => commands::ingest::run(&cli.lake, cmd).await,
        Command::Tables(args) => commands::tables::run(&cli.lake, args).await,
        Command::Query(args) => commands::query::run(&cli.lake, args).await,
        Command::Demo(args) => commands::demo::run(&cli.lake, args).await,
        Command::Generate(args) => commands::generate::run(args).await,
        Command::Refresh(cmd) => commands::refresh::run(&cli.lake, cmd).await,
        Command::Report(cmd) => commands::report::run(&cli.lake, cmd).await,
        Command::Runs(args) => commands::runs::run(&cli.lake, args).await,
        Command::Alerts(args) => commands::alerts::run(&cli.lake, args).await,
        Command::Token(args) => commands::token::run(args),
        Command::Handler(args) => commands::handler::run(&cli.lake, args).await,
        Command::Serve(args) => commands::serve::run(&cli.lake, args).await,
        Command::Package(args) => commands::package::run(args).await,
        Command::Bench(cmd) => http::bench::run(cmd).await,
        Command::BenchGold(args) => commands::bench_gold::run(args).await,
    }
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn init_logging(
    filter: &str,
    server: bool,
    json_stdout: bool,
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    // Servers log their invocations at info unless a filter other than the default was given.
    let filter = if server && filter == "warn" {
        "warn,patientflow=info,patientflow_core=info"
    } else {
        filter
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    match (json_stdout, tracer) {
        (true, None) => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_env_filter(filter)
                .with_writer(std::io::stdout)
                .try_init();
        }
        (false, None) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        // The same logs, and the spans (with their events) to OpenTelemetry.
        (true, Some(tracer)) => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_current_span(true)
                        .with_span_list(false)
                        .with_writer(std::io::stdout),
                )
                .try_init();
        }
        (false, Some(tracer)) => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .try_init();
        }
    }
}
