//! `patientflow demo`: the main job on the embedded default — ingest the public sample data into a
//! local lake and show what landed.

use std::path::PathBuf;

use anyhow::{bail, Context};
use patientflow_core::bronze::{self, adt::AdtIngestor};
use patientflow_core::ops::ledger::{tracked, RunContext};
use patientflow_core::serving::tables::describe_all;
use patientflow_core::storage::Lake;

use crate::cli::DemoArgs;
use crate::Outcome;

/// Ingests the HL7 v2 samples, the Synthea EHR extracts and any reference data found under the data
/// folder, then prints the table inventory.
pub async fn run(lake_url: &str, args: DemoArgs) -> anyhow::Result<Outcome> {
    let data = match args.data {
        Some(d) => d,
        None => ["../shared/data", "shared/data"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .context("no sample data found at ../shared/data; pass --data DIR")?,
    };
    if !data.is_dir() {
        bail!("{} is not a folder", data.display());
    }
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    println!("lake {}", lake.root());
    let quiet = |_: &str, _: usize| {};
    let ctx = |run_id: &str| {
        RunContext::new("cli")
            .with_run_id(run_id)
            .with_detail("command", "demo")
    };
    let hl7 = data.join("hl7v2_adt");
    if hl7.is_dir() {
        let run_id = bronze::new_run_id("demo-adt");
        let ingestor = AdtIngestor::new(lake.clone());
        let paths = [hl7.display().to_string()];
        let work = ingestor.ingest_paths(&paths, &run_id, &quiet);
        let r = tracked(&lake, "bronze.adt", &ctx(&run_id), work).await?;
        println!(
            "ADT samples: {} files, {} messages written, {} flagged unparseable, {} already ingested",
            r.inputs_seen,
            r.total_rows(),
            r.flagged_rows,
            r.inputs_already_ingested
        );
    }
    let synthea = data.join("synthea_csv_ma100/csv");
    if synthea.is_dir() {
        let run_id = bronze::new_run_id("demo-ehr");
        let paths = [synthea.display().to_string()];
        let work = bronze::ehr::ingest_paths(&lake, &paths, None, &run_id, &quiet);
        let r = tracked(&lake, "bronze.ehr", &ctx(&run_id), work).await?;
        println!(
            "EHR extracts (Synthea profile): {} rows written, {} files not patient-flow extracts",
            r.total_rows(),
            r.inputs_not_applicable.len()
        );
    }
    println!();
    println!("{:<28} {:>8} {:>12}", "table", "version", "rows");
    for t in describe_all(&lake).await? {
        let version = t
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        let rows = t.rows.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>8} {:>12}", t.name, version, rows);
    }
    println!("\nTry: patientflow query \"SELECT message_type, COUNT(*) FROM bronze_adt_messages GROUP BY 1 ORDER BY 2 DESC\"");
    Ok(Outcome::Success)
}
