//! `patientflow report dq`

use anyhow::Context;
use patientflow_core::silver::dq::score;
use patientflow_core::silver::report;
use patientflow_core::storage::Lake;

use crate::cli::ReportCommand;
use crate::Outcome;

/// Writes a report and says where.
pub async fn run(lake_url: &str, cmd: ReportCommand) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    match cmd {
        ReportCommand::Dq(args) => {
            let r = report::build(&lake, args.run.as_deref()).await?;
            if r.run_id.is_none() {
                anyhow::bail!("no Silver run found: run `patientflow refresh silver` first");
            }
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            let json_path = args.out.join("dq-report.json");
            let html_path = args.out.join("dq-report.html");
            std::fs::write(&json_path, serde_json::to_string_pretty(&r)?)
                .with_context(|| format!("writing {}", json_path.display()))?;
            std::fs::write(&html_path, report::to_html(&r))
                .with_context(|| format!("writing {}", html_path.display()))?;
            for s in &r.sources {
                println!(
                    "{:<16} in {:>8}  valid {:>8}  pass {}",
                    s.source,
                    s.records_in,
                    s.records_valid,
                    s.pass_rate
                        .map(|p| format!("{:.2} %", p * 100.0))
                        .unwrap_or_else(|| "-".into())
                );
            }
            println!("wrote {} and {}", json_path.display(), html_path.display());
        }
        ReportCommand::DqScore(args) => {
            let text = std::fs::read_to_string(&args.manifest)
                .with_context(|| format!("reading {}", args.manifest.display()))?;
            let manifest = score::read_manifest(&text)
                .with_context(|| format!("parsing {}", args.manifest.display()))?;
            if manifest.is_empty() {
                // Nothing to score: a perfect score of nothing would mislead.
                anyhow::bail!("{} lists no defects", args.manifest.display());
            }
            let s = score::score(&lake, &manifest).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", s.to_text());
            }
            let perfect = s.detected() == s.injected() && s.clean_flagged == 0;
            if args.strict && !perfect {
                eprintln!(
                    "error: recall {}/{}, {} clean records flagged",
                    s.detected(),
                    s.injected(),
                    s.clean_flagged
                );
                return Ok(Outcome::Partial);
            }
        }
    }
    Ok(Outcome::Success)
}
