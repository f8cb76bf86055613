//! Command-line definitions (clap only; the work is in `commands/`).

use clap::{Args, Parser, Subcommand, ValueEnum};

/// patientflow: a patient-flow lakehouse for hospital networks. HL7 ADT feeds, daily EHR extracts and
/// department capacity flow through Bronze → Silver → Gold Delta Lake tables.
#[derive(Debug, Parser)]
#[command(name = "patientflow", version, about, long_about = None)]
pub struct Cli {
    /// Lake location: a local folder, file:// URL, or az://container/prefix (Azure Blob / ADLS Gen2 / Azurite).
    #[arg(long, global = true, env = "PATIENTFLOW_LAKE", default_value = "./lake")]
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
