//! Access control: who a caller is ([`Identity`]), what they may see ([`policy`]) and the record of what
//! they read ([`audit`]). Nothing here knows HTTP: the runtimes hand the credentials they received
//! (a bearer token, an Easy Auth principal header) to [`Authenticator::authenticate`].
//!
//! The model is described in `docs/security.md`.

pub mod audit;
pub mod cache;
pub mod easyauth;
pub mod policy;
pub mod settings;
pub mod token;

use serde::{Deserialize, Serialize};

pub use settings::{Entitlement, SecuritySettings};

/// Errors of authentication and entitlement. Messages never contain a token or patient data.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecurityError {
    /// No credentials were presented (and anonymous demo mode is off).
    #[error("authentication required: no bearer token")]
    Missing,
    /// Credentials were presented but are not valid (bad signature, expired, wrong audience…).
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// The caller is authenticated but has no entitlement.
    #[error("no entitlement for '{0}'")]
    NoEntitlement(String),
    /// The security settings are wrong.
    #[error("security settings: {0}")]
    Settings(String),
}

/// The five roles of the model (docs/security.md § Roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Clinical staff of one or more hospital departments: identifiable rows of their departments.
    DepartmentStaff,
    /// Manager of one or more hospitals: their hospitals' rows, PHI masked.
    HospitalManager,
    /// Analyst: every hospital's rows, PHI masked (pseudonymous identifiers).
    Analyst,
    /// Pipeline operator: run health, the run ledger, DQ figures; no patient rows.
    Operator,
    /// Administrator: everything, unmasked, including raw payloads.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::DepartmentStaff,
        Role::HospitalManager,
        Role::Analyst,
        Role::Operator,
        Role::Admin,
    ];

    /// The role's name in settings, tokens and the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::DepartmentStaff => "department_staff",
            Role::HospitalManager => "hospital_manager",
            Role::Analyst => "analyst",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name (`department_staff`, `hospital-manager`, `Analyst`, …).
    pub fn parse(s: &str) -> Option<Role> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Role::ALL.into_iter().find(|r| r.as_str() == norm)
    }

    /// True when the role's rows are limited to its scopes.
    pub fn is_scoped(self) -> bool {
        matches!(self, Role::DepartmentStaff | Role::HospitalManager)
    }

    /// True when names, birth dates and identifiers are masked for the role.
    pub fn masks_phi(self) -> bool {
        matches!(self, Role::HospitalManager | Role::Analyst | Role::Operator)
    }

    /// True when the role may read raw payloads (Bronze HL7/JSON, quarantined raw records).
    pub fn reads_raw(self) -> bool {
        matches!(self, Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hospital, or one department of a hospital.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Scope {
    /// Hospital id (`MHA01`).
    pub hospital: String,
    /// Department code (`ED`); `None` for the whole hospital.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

impl Scope {
    /// Parses `HOSPITAL` or `HOSPITAL/DEPARTMENT`. Ids are letters, digits, `_` and `-` only.
    pub fn parse(s: &str) -> Result<Scope, SecurityError> {
        let (h, d) = match s.split_once('/') {
            Some((h, d)) => (h.trim(), Some(d.trim())),
            None => (s.trim(), None),
        };
        let scope = Scope {
            hospital: h.to_string(),
            department: d.filter(|d| !d.is_empty()).map(str::to_string),
        };
        scope.validate()?;
        Ok(scope)
    }

    /// Checks that the ids are plain identifiers (they are placed in SQL filters).
    pub fn validate(&self) -> Result<(), SecurityError> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !ok(&self.hospital) || !self.department.as_deref().is_none_or(ok) {
            return Err(SecurityError::Settings(format!(
                "scope '{}' is not HOSPITAL or HOSPITAL/DEPARTMENT of letters, digits, '_' and '-'",
                self
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.department {
            Some(d) => write!(f, "{}/{}", self.hospital, d),
            None => f.write_str(&self.hospital),
        }
    }
}

/// How the caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A signed bearer token (HS256 or RS256).
    Token,
    /// The App Service Authentication principal header (only when trusted).
    EasyAuth,
    /// Anonymous demo mode.
    Demo,
    /// The local operator at the command line (the CLI without `--token`).
    Local,
}

impl AuthMethod {
    /// Name in the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::EasyAuth => "easy_auth",
            AuthMethod::Demo => "demo",
            AuthMethod::Local => "local",
        }
    }
}

/// Who is asking, and what they are entitled to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Stable subject id (token `sub`/`oid`, Easy Auth object id, `local-cli`, `anonymous-demo`).
    pub subject: String,
    /// The role (one per identity: the entitlement that matched first).
    pub role: Role,
    /// Hospital / department scopes (used by the scoped roles).
    pub scopes: Vec<Scope>,
    /// How the identity was established.
    pub method: AuthMethod,
}

impl Identity {
    /// The local operator at the command line: admin.
    pub fn local_admin() -> Identity {
        Identity {
            subject: "local-cli".into(),
            role: Role::Admin,
            scopes: vec![],
            method: AuthMethod::Local,
        }
    }

    /// The anonymous demo identity: analyst-like, PHI masked.
    pub fn demo() -> Identity {
        Identity {
            subject: "anonymous-demo".into(),
            role: Role::Analyst,
            scopes: vec![],
            method: AuthMethod::Demo,
        }
    }

    /// The scopes as text, `;`-separated (audit table).
    pub fn scopes_text(&self) -> String {
        self.scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The credentials a runtime received with a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The token of an `Authorization: Bearer …` header.
    pub bearer: Option<&'a str>,
    /// The `X-MS-CLIENT-PRINCIPAL` header.
    pub client_principal: Option<&'a str>,
}

/// What authentication found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    /// The identity, or why there is none.
    pub outcome: Result<Identity, SecurityError>,
    /// True when an `X-MS-CLIENT-PRINCIPAL` header came in while Easy Auth is not trusted: it was
    /// ignored, logged as a forgery attempt, and the caller should audit it.
    pub forged_principal: bool,
}

/// Turns credentials into an [`Identity`] under the settings.
#[derive(Debug, Clone)]
pub struct Authenticator {
    settings: SecuritySettings,
    verifier: token::Verifier,
}

impl Authenticator {
    /// An authenticator for the settings (loads the JWKS file, if any).
    pub fn new(settings: SecuritySettings) -> Result<Self, SecurityError> {
        let verifier = token::Verifier::from_settings(&settings.tokens)?;
        if settings.anonymous_demo {
            let msg = "ANONYMOUS DEMO MODE IS ON: requests without credentials are answered as an \
                       analyst-like demo identity (PHI masked). Never enable this in a deployment.";
            tracing::warn!("{msg}");
            eprintln!("WARNING: {msg}");
        }
        Ok(Authenticator { settings, verifier })
    }

    /// An authenticator whose RS256 keys come from a JWKS document (the settings' `jwks_url`, fetched
    /// by the runtime).
    pub fn with_jwks_json(mut self, text: &str, origin: &str) -> Result<Self, SecurityError> {
        self.verifier = self.verifier.with_jwks_json(text, origin)?;
        Ok(self)
    }

    /// The settings in force.
    pub fn settings(&self) -> &SecuritySettings {
        &self.settings
    }

    /// Authenticates one request's credentials.
    pub fn authenticate(&self, creds: Credentials<'_>) -> AuthResult {
        let mut forged_principal = false;
        if let Some(header) = creds.client_principal {
            if self.settings.trust_easy_auth {
                let outcome = easyauth::parse(header)
                    .and_then(|claims| self.settings.resolve(&claims, AuthMethod::EasyAuth, false));
                return AuthResult {
                    outcome,
                    forged_principal: false,
                };
            }
            forged_principal = true;
            tracing::warn!(
                "security: an X-MS-CLIENT-PRINCIPAL header arrived but trust_easy_auth is off; \
                 the header is ignored (possible forgery attempt)"
            );
        }
        let outcome = match creds.bearer {
            Some(t) => self.verifier.verify(t).and_then(|verified| {
                self.settings
                    .resolve(&verified.claims, AuthMethod::Token, verified.local)
            }),
            None if self.settings.anonymous_demo => Ok(Identity::demo()),
            None => Err(SecurityError::Missing),
        };
        AuthResult {
            outcome,
            forged_principal,
        }
    }
}

/// Claims of a verified caller, in the shape both token and Easy Auth paths produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Subject id.
    pub subject: String,
    /// Other names the subject goes by (`preferred_username`, `upn`, `email`).
    pub names: Vec<String>,
    /// App roles (`roles` claim).
    pub roles: Vec<String>,
    /// Group object ids (`groups` claim).
    pub groups: Vec<String>,
    /// Scopes carried by a locally issued token (`pf_scopes`), honoured only for local tokens.
    pub scopes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_scopes_parse() {
        assert_eq!(Role::parse("Hospital-Manager"), Some(Role::HospitalManager));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(
            Scope::parse("MHA01/ED").unwrap(),
            Scope {
                hospital: "MHA01".into(),
                department: Some("ED".into())
            }
        );
        assert!(Scope::parse("MHA01' OR '1'='1").is_err());
        assert!(Scope::parse("").is_err());
    }
}
