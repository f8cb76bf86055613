//! `patientflow handler`: the Azure Functions custom handler. The Functions host starts it (host.json
//! `customHandler`), sets `FUNCTIONS_CUSTOMHANDLER_PORT`, polls `GET /` until it answers, then POSTs every
//! invocation to `/<FunctionName>`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::http::{self, AppState, Settings};
use crate::Outcome;

/// Options of `handler`.
#[derive(Debug, Args)]
pub struct HandlerArgs {
    /// Port to listen on (127.0.0.1). Default: `FUNCTIONS_CUSTOMHANDLER_PORT`, else the legacy
    /// `FUNCTIONS_HTTPWORKER_PORT`.
    #[arg(long)]
    pub port: Option<u16>,
    /// Security settings file (JSON, docs/security.md); default `PATIENTFLOW_SECURITY_FILE`, then
    /// `PATIENTFLOW_SECURITY` (in Azure a Key Vault reference). Without any, data routes answer 401.
    #[arg(long)]
    pub security: Option<std::path::PathBuf>,
}

/// The port the host gave us.
pub fn host_port(args_port: Option<u16>) -> anyhow::Result<u16> {
    if let Some(p) = args_port {
        return Ok(p);
    }
    for key in ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"] {
        if let Ok(v) = std::env::var(key) {
            let v = v.trim();
            if !v.is_empty() {
                return v
                    .parse()
                    .with_context(|| format!("{key}='{v}' is not a port number"));
            }
        }
    }
    anyhow::bail!("no port: the Functions host sets FUNCTIONS_CUSTOMHANDLER_PORT; locally pass --port or use `patientflow serve`")
}

/// Serves the app until the host stops the process (SIGTERM) or Ctrl-C; waits up to 60 s for a Gold
/// refresh in the background to finish and call back.
pub async fn run(lake: &str, args: HandlerArgs) -> anyhow::Result<Outcome> {
    let port = host_port(args.port)?;
    let security = http::auth::startup(args.security.as_deref(), false).await?;
    let state = AppState::with_security(Settings::from_env(lake), security);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, lake = %state.settings.lake_url, "patientflow custom handler listening");
    axum::serve(listener, http::app(state.clone()))
        .with_graceful_shutdown(http::shutdown_signal())
        .await
        .context("serving")?;
    let left = state.drain_background(Duration::from_secs(60)).await;
    state.security.flush_audit().await;
    if left > 0 {
        tracing::warn!(left, "background work still running at exit");
    }
    Ok(Outcome::Success)
}
