//! Command-line definitions (clap only; the work is in `commands/`).

use clap::{Args, Parser, Subcommand, ValueEnum};

/// patientflow: a patient-flow lakehouse for hospital networks. HL7 ADT feeds, daily EHR extracts and
/// department capacity flow through Bronze → Silver → Gold Delta Lake tables.
#[derive(Debug, Parser)]
#[command(name = "patientflow", version, about, long_about = None)]
pub struct Cli {
    /// Lake location: a local folder, file:// URL, or az://container/prefix (Azure Blob / ADLS Gen2 / Azurite).
    #[arg(
        long,
        global = true,
        env = "PATIENTFLOW_LAKE",
        default_value = "./lake"
    )]
    pub lake: String,

    /// Log level filter (error, warn, info, debug, trace) or a tracing directive.
    #[arg(long, global = true, env = "PATIENTFLOW_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest source files into Bronze (lossless, idempotent).
    #[command(subcommand)]
    Ingest(IngestCommand),
    /// List the lake's tables: version, rows, files and schema.
    Tables(TablesArgs),
    /// Run a read-only SQL query over the lake.
    Query(QueryArgs),
    /// The main job on the local default: ingest the public sample data and show the tables.
    Demo(DemoArgs),
    /// Generate simulated data for the hospitals: ADT messages, EHR extracts, department metadata and the
    /// ground truth.
    Generate(crate::commands::generate::GenerateArgs),
    /// Refresh a layer from what its inputs gained since its checkpoint.
    #[command(subcommand)]
    Refresh(RefreshCommand),
    /// Write a report.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Recent stage runs from the run ledger (ops_run_ledger): status, duration, rows, errors, and a
    /// summary per stage.
    Runs(RunsArgs),
    /// Alerts: the open incidents and the outbox (ops_alert_outbox); `alerts evaluate` runs every rule
    /// once and delivers what is due.
    Alerts(crate::commands::alerts::AlertsArgs),
    /// Issue a signed test token (HS256, the settings' key) for a role and scopes: local testing of
    /// access control.
    Token(crate::commands::token::TokenArgs),
    /// Run as the Azure Functions custom handler (started by the Functions host; listens on
    /// FUNCTIONS_CUSTOMHANDLER_PORT).
    Handler(crate::commands::handler::HandlerArgs),
    /// The local runtime: the Functions app on localhost with timers, an ADT ingest endpoint, SQL,
    /// dashboard and an optional live simulator.
    Serve(crate::commands::serve::ServeArgs),
    /// Assemble the deployable Function App folder (host.json, function folders, this binary).
    Package(crate::commands::package::PackageArgs),
    /// Benchmarks: `bench pipeline` (raw files → Gold, per stage), `bench gold` (Gold refresh and
    /// dashboard queries), `bench ingest` (the custom handler's AdtIngest).
    #[command(subcommand)]
    Bench(crate::http::bench::BenchCommand),
    /// Benchmark the Gold refresh (full, incremental) and the dashboard's queries on simulated data
    /// (the same as `bench gold`).
    BenchGold(crate::commands::bench_gold::BenchArgs),
}

/// What to refresh.
#[derive(Debug, Subcommand)]
pub enum RefreshCommand {
    /// Silver: parse, cleanse, quarantine, encounters, stays, SCD2 dimensions.
    Silver(RefreshArgs),
    /// Gold: star schema (dimensions, encounter/stay/hourly-census facts) and KPI marts.
    Gold(GoldRefreshArgs),
}

/// Options of `refresh gold`.
#[derive(Debug, Args)]
pub struct GoldRefreshArgs {
    #[command(flatten)]
    pub common: RefreshArgs,
    /// "Now" for the current-state KPIs (RFC 3339); default: the latest event time in Silver.
    #[arg(long)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// Options of a refresh.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Rebuild from the layer's inputs instead of processing only what is new.
    #[arg(long)]
    pub full: bool,
    /// Print the stage report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which report.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The data-quality report of a Silver run (the latest by default): JSON and HTML.
    Dq(DqReportArgs),
    /// Precision and recall of the data-quality rules against a manifest of injected defects (the
    /// simulator's truth/manifest.jsonl): per defect class, per rule, and the clean records flagged.
    DqScore(DqScoreArgs),
}

/// Options of `report dq-score`.
#[derive(Debug, Args)]
pub struct DqScoreArgs {
    /// The manifest (JSON Lines: source, record_key, defect, ...).
    #[arg(long)]
    pub manifest: std::path::PathBuf,
    /// Print the score as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 unless every class has 100 % recall and no clean record was flagged.
    #[arg(long)]
    pub strict: bool,
}

/// Options of `report dq`.
#[derive(Debug, Args)]
pub struct DqReportArgs {
    /// Run id (default: the latest run).
    #[arg(long)]
    pub run: Option<String>,
    /// Folder to write dq-report.json and dq-report.html to.
    #[arg(long, default_value = "reports")]
    pub out: std::path::PathBuf,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder with the sample data sets (default: ../shared/data).
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
}

/// What to ingest.
#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// HL7 v2 ER7 and JSON ADT messages (files, folders or globs).
    Adt(IngestArgs),
    /// Daily EHR extracts: patients and encounters CSV (files, folders or globs).
    Ehr(EhrArgs),
    /// Hospital and department metadata, CSV or JSON (files, folders or globs).
    Departments(IngestArgs),
}

/// Paths to ingest.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files, folders (read recursively) or glob patterns.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Print the ingest report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// EHR extract paths and the source profile.
#[derive(Debug, Args)]
pub struct EhrArgs {
    /// Files, folders (read recursively) or glob patterns.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Source profile: a shipped one (patientflow, synthea) or a JSON profile file. Default: the first
    /// shipped profile that recognises each file.
    #[arg(long)]
    pub profile: Option<String>,
    /// Print the ingest report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Runs shown at most, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only failed runs.
    #[arg(long)]
    pub failed: bool,
    /// Only runs of this stage (bronze.adt, bronze.ehr, bronze.reference, silver, gold).
    #[arg(long)]
    pub stage: Option<String>,
    /// Print the runs and the per-stage summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `tables`.
#[derive(Debug, Args)]
pub struct TablesArgs {
    /// Also print each table's columns.
    #[arg(long)]
    pub schema: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL query (SELECT only). Tables are named <layer>_<table>, e.g. bronze_adt_messages.
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Rows returned at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: usize,
    /// Seconds allowed.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Run as the identity of this bearer token (verified under the security settings; the read is
    /// audited). Without it the query runs as the local administrator, unaudited.
    #[arg(long, env = "PATIENTFLOW_TOKEN")]
    pub token: Option<String>,
    /// Security settings file for --token (default `PATIENTFLOW_SECURITY_FILE`, then
    /// `PATIENTFLOW_SECURITY`).
    #[arg(long)]
    pub security: Option<std::path::PathBuf>,
}

/// Output formats of `query`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON array of row objects.
    Json,
}
