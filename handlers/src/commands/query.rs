//! `patientflow query "SQL"`

use std::time::Duration;

use anyhow::Context;
use patientflow_core::serving::query::{self, QueryLimits};
use patientflow_core::storage::Lake;

use crate::cli::{OutputFormat, QueryArgs};
use crate::Outcome;

/// Runs one read-only query and prints the result.
pub async fn run(lake_url: &str, args: QueryArgs) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let limits = QueryLimits {
        max_rows: args.max_rows,
        timeout: Duration::from_secs(args.timeout),
    };
    let result = query::run(&lake, &args.sql, limits).await?;
    match args.format {
        OutputFormat::Table => println!("{}", query::to_text_table(&result)?),
        OutputFormat::Csv => print!("{}", query::to_csv(&result)?),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&query::to_json_rows(&result)?)?
        ),
    }
    if result.truncated {
        eprintln!("note: result cut at {} rows (--max-rows)", args.max_rows);
    }
    Ok(Outcome::Success)
}
