//! `patientflow token`: a signed HS256 token for local testing of access control. The role and scopes
//! travel in the token (`roles`, `pf_scopes`); they are honoured only because the token is signed with
//! the deployment's local key — tokens of Entra ID get their scopes from the entitlements instead.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use patientflow_core::security::settings::read_key;
use patientflow_core::security::{token, Role, Scope};

use crate::http::auth::load_settings;
use crate::Outcome;

/// Options of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Subject (`sub`): who the token stands for.
    #[arg(long)]
    pub subject: String,
    /// Role: department_staff, hospital_manager, analyst, operator or admin.
    #[arg(long)]
    pub role: String,
    /// `HOSPITAL` or `HOSPITAL/DEPARTMENT`; repeat for more (required for the scoped roles).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Security settings file holding the HS256 key (default `PATIENTFLOW_SECURITY_FILE`, then
    /// `PATIENTFLOW_SECURITY`).
    #[arg(long)]
    pub security: Option<PathBuf>,
}

/// Prints the token on stdout.
pub fn run(args: TokenArgs) -> anyhow::Result<Outcome> {
    let (settings, _) = load_settings(args.security.as_deref())?
        .context("no security settings: pass --security FILE (or set PATIENTFLOW_SECURITY_FILE)")?;
    let key = read_key(&settings.tokens.hs256_key, &settings.tokens.hs256_key_file)?
        .context("the security settings have no tokens.hs256_key / hs256_key_file to sign with")?;
    let role = Role::parse(&args.role).with_context(|| {
        format!(
            "unknown role '{}': one of {}",
            args.role,
            Role::ALL.map(Role::as_str).join(", ")
        )
    })?;
    let scopes = args
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(
        !role.is_scoped() || !scopes.is_empty(),
        "role {role} needs at least one --scope HOSPITAL[/DEPARTMENT]"
    );
    anyhow::ensure!(args.ttl > 0, "--ttl must be positive");
    let token = token::issue_hs256(
        &key,
        &settings.tokens,
        &args.subject,
        role,
        &scopes,
        Duration::from_secs(args.ttl),
    )?;
    println!("{token}");
    Ok(Outcome::Success)
}
