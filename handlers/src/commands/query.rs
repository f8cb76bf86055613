//! `patientflow query "SQL"`

use std::time::Duration;

use anyhow::Context;
use patientflow_core::security::audit::AuditLog;
use patientflow_core::security::Credentials;
use patientflow_core::serving::query::{self, Access, QueryLimits};
use patientflow_core::storage::Lake;

use crate::cli::{OutputFormat, QueryArgs};
use crate::http::auth::{load_settings, Security};
use crate::Outcome;

/// Runs one read-only query and prints the result.
pub async fn run(lake_url: &str, args: QueryArgs) -> anyhow::Result<Outcome> {
    let lake = Lake::open(lake_url).await.context("opening the lake")?;
    let limits = QueryLimits {
        max_rows: args.max_rows,
        timeout: Duration::from_secs(args.timeout),
    };
    let result = match &args.token {
        None => query::run(&lake, &args.sql, limits).await?,
        Some(token) => {
            let (settings, _) = load_settings(args.security.as_deref())?.context(
                "--token needs security settings: --security FILE, PATIENTFLOW_SECURITY_FILE or PATIENTFLOW_SECURITY",
            )?;
            let security = Security::with_jwks(settings).await?;
            let identity = security
                .authenticate(Credentials {
                    bearer: Some(token),
                    client_principal: None,
                })
                .outcome?;
            let audit = AuditLog::start(lake.clone());
            let access = Access {
                identity: &identity,
                pseudonym_key: security.pseudonym_key(),
                audit: Some(&audit),
                read_path: "cli_query",
                cache: None,
            };
            let result = query::run_as(&lake, &access, &args.sql, limits).await;
            audit.flush().await;
            anyhow::ensure!(
                audit.failures() == 0,
                "the audit record of this read could not be written"
            );
            eprintln!("as {} ({})", identity.subject, identity.role);
            result?
        }
    };
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
