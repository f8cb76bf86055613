//! `patientflow generate`: write simulated hospital data (all three sources) and its ground truth.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use patientflow_simulator::{generate, Hospitals, SimConfig};

use crate::Outcome;

/// Options of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed: the same seed and options give byte-identical output.
    #[arg(long, default_value_t = 20_260_101)]
    pub seed: u64,
    /// First simulated day (YYYY-MM-DD).
    #[arg(long, default_value = "2026-01-01")]
    pub start: chrono::NaiveDate,
    /// Number of days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Output folder (must be empty or absent).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of hospitals (1-7), or a comma-separated list of ids (MHA01,MHA03).
    #[arg(long, default_value = "7")]
    pub hospitals: String,
    /// Multiplies arrival rates.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Rate of every dirty-data class (0 = clean).
    #[arg(long, default_value_t = 0.05)]
    pub dirty_rate: f64,
    /// Fraction of ADT messages written as JSON instead of HL7.
    #[arg(long, default_value_t = 0.3)]
    pub json_fraction: f64,
    /// A JSON file with a full simulator configuration (overrides the options above).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Builds the configuration from the options.
pub fn config(args: &GenerateArgs) -> anyhow::Result<SimConfig> {
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("invalid simulator configuration in {}", path.display()));
    }
    let hospitals = match args.hospitals.trim().parse::<usize>() {
        Ok(n) => Hospitals::Count(n),
        Err(_) => Hospitals::Ids(
            args.hospitals
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        ),
    };
    Ok(SimConfig {
        seed: args.seed,
        start_date: args.start,
        days: args.days,
        hospitals,
        scale: args.scale,
        json_fraction: args.json_fraction,
        dirty_rate: args.dirty_rate,
        ..SimConfig::default()
    })
}

/// Generates the data set and prints its summary.
pub async fn run(args: GenerateArgs) -> anyhow::Result<Outcome> {
    let cfg = config(&args)?;
    let out = args.out.clone();
    let started = std::time::Instant::now();
    let summary = tokio::task::spawn_blocking(move || generate(&cfg, &out)).await??;
    println!(
        "wrote {} in {:.1} s: {} encounters, {} ADT messages",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        summary.encounters,
        summary.adt_messages
    );
    Ok(Outcome::Success)
}
