//! `patientflow tables`

use anyhow::Context;
use patientflow_core::serving::tables::describe_all;
use patientflow_core::storage::Lake;

use crate::cli::TablesArgs;
use crate::Outcome;

/// Lists every known table with its version, rows and files (and columns with `--schema`).
pub async fn run(lake_url: &str, args: TablesArgs) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let tables = describe_all(&lake).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tables)?);
        return Ok(Outcome::Success);
    }
    println!("lake {}", lake.root());
    println!(
        "{:<28} {:>8} {:>12} {:>6}",
        "table", "version", "rows", "files"
    );
    for t in &tables {
        let version = t
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        let rows = t.rows.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>8} {:>12} {:>6}", t.name, version, rows, t.files);
        if args.schema {
            for c in &t.columns {
                println!("    {c}");
            }
        }
    }
    Ok(Outcome::Success)
}
