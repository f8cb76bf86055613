//! Access control at the edge: every data route identifies its caller here ([`identify`]) and reads
//! through the caller's policy session ([`query_as`]). The rules themselves live in
//! `patientflow_core::security` (docs/security.md); this module only turns HTTP credentials into an
//! identity, maps refusals to 401/403 and keeps the audit writer and the policy-session cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use patientflow_core::security::audit::{AuditLog, AuditRecord};
use patientflow_core::security::cache::PolicyCache;
use patientflow_core::security::{
    Authenticator, Credentials, Identity, SecurityError, SecuritySettings,
};
use patientflow_core::serving::query::{self, Access, QueryLimits, QueryResult};
use patientflow_core::serving::tables::known_tables;

use super::error::AppError;
use super::protocol::HttpTriggerRequest;
use super::AppState;

/// The principal header App Service Authentication adds.
pub const CLIENT_PRINCIPAL_HEADER: &str = "x-ms-client-principal";

/// Default age after which the policy sessions' table snapshot is renewed (writes by other processes
/// become visible within it; the process's own writes at once). `PATIENTFLOW_POLICY_CACHE_SECONDS`.
pub const DEFAULT_SNAPSHOT_AGE: Duration = Duration::from_secs(5);

/// Where the security settings came from, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsSource {
    /// A file (`--security` or `PATIENTFLOW_SECURITY_FILE`).
    File(String),
    /// The `PATIENTFLOW_SECURITY` variable (in Azure, a Key Vault reference).
    Environment,
}

/// Reads the security settings: `file` (a `--security` flag), else `PATIENTFLOW_SECURITY_FILE`, else
/// `PATIENTFLOW_SECURITY` (the JSON itself). `None` when none is given.
pub fn load_settings(
    file: Option<&Path>,
) -> Result<Option<(SecuritySettings, SettingsSource)>, SecurityError> {
    let env = |k: &str| {
        std::env::var(k)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(path) = file
        .map(Path::to_path_buf)
        .or_else(|| env("PATIENTFLOW_SECURITY_FILE").map(Into::into))
    {
        let s = SecuritySettings::load(&path)?;
        return Ok(Some((s, SettingsSource::File(path.display().to_string()))));
    }
    if let Some(json) = env("PATIENTFLOW_SECURITY") {
        let s = SecuritySettings::parse(&json, "PATIENTFLOW_SECURITY")?;
        return Ok(Some((s, SettingsSource::Environment)));
    }
    Ok(None)
}

/// The access control a runtime starts with: the settings found by [`load_settings`]; without any,
/// anonymous demo mode when `demo_default` (`serve`, the local runtime), else closed (`handler`: every
/// data route answers 401). Prints what is in force; demo mode is announced loudly.
pub async fn startup(file: Option<&Path>, demo_default: bool) -> Result<Security, SecurityError> {
    let security = match load_settings(file)? {
        Some((settings, _)) if settings.anonymous_demo && !demo_default => {
            return Err(SecurityError::Settings(
                "anonymous_demo is for the local runtime (`patientflow serve`) only; the Functions \
                 handler refuses to start with it"
                    .into(),
            ))
        }
        Some((settings, source)) => {
            let from = match &source {
                SettingsSource::File(f) => f.clone(),
                SettingsSource::Environment => "PATIENTFLOW_SECURITY".into(),
            };
            let s = Security::with_jwks(settings).await?;
            println!(
                "  access control from {from}: {} user, {} group and {} app-role entitlements; Easy Auth {}",
                s.settings().users.len(),
                s.settings().groups.len(),
                s.settings().app_roles.len(),
                if s.settings().trust_easy_auth { "trusted" } else { "not trusted" }
            );
            s
        }
        None if demo_default => {
            println!(
                "  no security settings (--security / PATIENTFLOW_SECURITY_FILE): local demo mode"
            );
            Security::new(SecuritySettings {
                anonymous_demo: true,
                ..SecuritySettings::default()
            })?
        }
        None => {
            tracing::warn!(
                "no security settings (PATIENTFLOW_SECURITY / PATIENTFLOW_SECURITY_FILE): every data \
                 route answers 401"
            );
            Security::closed()
        }
    };
    Ok(security)
}

/// The access-control state of the app.
pub struct Security {
    authenticator: Authenticator,
    cache: PolicyCache,
    audit: tokio::sync::OnceCell<AuditLog>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field(
                "anonymous_demo",
                &self.authenticator.settings().anonymous_demo,
            )
            .field(
                "trust_easy_auth",
                &self.authenticator.settings().trust_easy_auth,
            )
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Access control under `settings`, fetching the identity provider's keys from `tokens.jwks_url`
    /// when it is set and no `jwks_file` is (a failed fetch is an error: the app would refuse every
    /// Entra token).
    pub async fn with_jwks(settings: SecuritySettings) -> Result<Security, SecurityError> {
        let url = settings
            .tokens
            .jwks_url
            .clone()
            .filter(|_| settings.tokens.jwks_file.is_none());
        let mut security = Security::new(settings)?;
        if let Some(url) = url {
            let fetch = async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .map_err(|e| e.to_string())?;
                let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!("HTTP {}", r.status()));
                }
                let bytes = r.bytes().await.map_err(|e| e.to_string())?;
                if bytes.len() > 1 << 20 {
                    return Err("the JWKS document is larger than 1 MB".into());
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            };
            let text = fetch.await.map_err(|e| {
                SecurityError::Settings(format!("cannot fetch the JWKS from {url}: {e}"))
            })?;
            security.authenticator = security.authenticator.with_jwks_json(&text, &url)?;
        }
        Ok(security)
    }

    /// Access control under `settings`. A deployment without a pseudonym key refuses masked reads; demo
    /// mode without one uses a key drawn for this process (pseudonyms then change on restart).
    pub fn new(settings: SecuritySettings) -> Result<Security, SecurityError> {
        let configured = settings.pseudonym_key.is_some() || settings.pseudonym_key_file.is_some();
        let key = match settings.pseudonym_key() {
            Ok(k) => Some(k),
            Err(e) if configured => return Err(e),
            Err(_) if settings.anonymous_demo => {
                Some(format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).into_bytes())
            }
            Err(_) => None,
        };
        let age = std::env::var("PATIENTFLOW_POLICY_CACHE_SECONDS")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_SNAPSHOT_AGE);
        Ok(Security {
            authenticator: Authenticator::new(settings)?,
            cache: PolicyCache::new(known_tables(), key, age),
            audit: tokio::sync::OnceCell::new(),
        })
    }

    /// Closed: no credentials are accepted (no keys configured). Every data route answers 401.
    pub fn closed() -> Security {
        Security::new(SecuritySettings::default()).expect("default settings are valid")
    }

    /// The settings in force.
    pub fn settings(&self) -> &SecuritySettings {
        self.authenticator.settings()
    }

    /// Authenticates one request's credentials (no audit: [`identify`] audits).
    pub fn authenticate(&self, creds: Credentials<'_>) -> patientflow_core::security::AuthResult {
        self.authenticator.authenticate(creds)
    }

    /// The pseudonym key of masked reads.
    pub fn pseudonym_key(&self) -> Option<&[u8]> {
        self.cache.pseudonym_key()
    }

    /// Marks the policy sessions stale (after the process wrote to the lake).
    pub fn invalidate(&self) {
        self.cache.invalidate();
    }

    async fn audit(&self, state: &AppState) -> Option<&AuditLog> {
        let lake = state.opened_lake().or(state.lake().await.ok())?.clone();
        Some(
            self.audit
                .get_or_init(|| async move { AuditLog::start(lake) })
                .await,
        )
    }

    /// Waits for queued audit records to be written (shutdown).
    pub async fn flush_audit(&self) {
        if let Some(a) = self.audit.get() {
            a.flush().await;
        }
    }
}

/// The bearer token of an `Authorization` header.
fn bearer(http: &HttpTriggerRequest) -> Option<&str> {
    let v = http.header("authorization")?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Who calls: a bearer token, the Easy Auth principal (only when trusted) or the demo identity. Refusals
/// are 401 (no or bad credentials) or 403 (no entitlement), audited; a principal header that arrives
/// while Easy Auth is not trusted is ignored and audited as a forgery attempt.
pub async fn identify(
    state: &Arc<AppState>,
    http: &HttpTriggerRequest,
    read_path: &str,
) -> Result<Identity, AppError> {
    let security = &state.security;
    let creds = Credentials {
        bearer: bearer(http),
        client_principal: http.header(CLIENT_PRINCIPAL_HEADER),
    };
    let found = security.authenticator.authenticate(creds);
    let request = format!("{} {}", http.method, read_path);
    let audit = security.audit(state).await;
    if found.forged_principal {
        if let Some(a) = audit {
            a.record(
                AuditRecord::new(found.outcome.as_ref().ok(), read_path, &request).denied(
                    "X-MS-CLIENT-PRINCIPAL header ignored: Easy Auth is not trusted (possible forgery)",
                ),
            );
        }
    }
    match found.outcome {
        Ok(identity) => Ok(identity),
        Err(e) => {
            if let Some(a) = audit {
                let mut record = AuditRecord::new(None, read_path, &request).denied(e.to_string());
                if let SecurityError::NoEntitlement(subject) = &e {
                    // Authenticated: the subject is known, only the entitlement is missing.
                    record.subject = subject.clone();
                }
                a.record(record);
            }
            tracing::warn!(read_path, "security: request refused: {e}");
            Err(match e {
                SecurityError::NoEntitlement(_) => AppError::Forbidden(e.to_string()),
                SecurityError::Settings(_) => AppError::Internal(e.to_string()),
                SecurityError::Missing | SecurityError::Invalid(_) => {
                    AppError::Unauthorized(e.to_string())
                }
            })
        }
    }
}

/// Runs read-only SQL as `identity` through its policy session (audited).
pub async fn query_as(
    state: &Arc<AppState>,
    identity: &Identity,
    read_path: &str,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryResult, AppError> {
    let lake = state.lake().await?;
    let security = &state.security;
    let audit = security.audit(state).await;
    let access = Access {
        identity,
        pseudonym_key: security.cache.pseudonym_key(),
        audit,
        read_path,
        cache: Some(&security.cache),
    };
    query::run_as(lake, &access, sql, limits)
        .await
        .map_err(|e| match e {
            patientflow_core::Error::Config(m) => AppError::Forbidden(format!(
                "this read needs masked identifiers and the deployment has no pseudonym key: {m}"
            )),
            other => AppError::from_core(other),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> HttpTriggerRequest {
        let mut r = HttpTriggerRequest {
            method: "GET".into(),
            ..Default::default()
        };
        for (k, v) in headers {
            r.headers.insert(k.to_ascii_lowercase(), v.to_string());
        }
        r
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(
            bearer(&req(&[("Authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer(&req(&[("Authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(bearer(&req(&[("Authorization", "Basic abc")])), None);
        assert_eq!(bearer(&req(&[("Authorization", "Bearer ")])), None);
        assert_eq!(bearer(&req(&[])), None);
    }
}
