//! The security settings file (JSON): token keys, Easy Auth trust, demo mode, the pseudonym key and the
//! entitlements (users, groups and app roles → role + scopes). See docs/security.md § Settings.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AuthMethod, Claims, Identity, Role, Scope, SecurityError};

/// A role with its scopes, as the settings grant it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    /// The role.
    pub role: Role,
    /// `HOSPITAL` or `HOSPITAL/DEPARTMENT` entries (required for the scoped roles).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// HS256 key (text) for locally issued tokens. Prefer `hs256_key_file`.
    #[serde(default)]
    pub hs256_key: Option<String>,
    /// File holding the HS256 key (its bytes, trailing newline trimmed).
    #[serde(default)]
    pub hs256_key_file: Option<String>,
    /// JWKS file with the RS256 keys of an identity provider (Entra ID).
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// JWKS URL of the identity provider (Entra ID:
    /// `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`), fetched when the app starts;
    /// `jwks_file` wins when both are set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Required `iss` (both kinds of token).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Required `aud` (both kinds of token).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew allowed on `exp` / `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_issuer() -> String {
    "patientflow-local".into()
}

fn default_audience() -> String {
    "patientflow".into()
}

fn default_leeway() -> u64 {
    30
}

/// The whole settings file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Token verification.
    #[serde(default)]
    pub tokens: TokenSettings,
    /// Trust the `X-MS-CLIENT-PRINCIPAL` header: only when App Service Authentication fronts the app.
    #[serde(default)]
    pub trust_easy_auth: bool,
    /// Anonymous demo mode: requests without credentials get an analyst-like, PHI-masked identity.
    #[serde(default)]
    pub anonymous_demo: bool,
    /// Key of the pseudonyms (HMAC-SHA256), text. Prefer `pseudonym_key_file`. Stable per deployment.
    #[serde(default)]
    pub pseudonym_key: Option<String>,
    /// File holding the pseudonym key.
    #[serde(default)]
    pub pseudonym_key_file: Option<String>,
    /// Subjects (`sub`, `oid`, `preferred_username`, `upn`, `email`) → entitlement.
    #[serde(default)]
    pub users: BTreeMap<String, Entitlement>,
    /// Group object ids (`groups` claim) → entitlement.
    #[serde(default)]
    pub groups: BTreeMap<String, Entitlement>,
    /// App role values (`roles` claim, e.g. `PatientFlow.Analyst`) → entitlement.
    #[serde(default)]
    pub app_roles: BTreeMap<String, Entitlement>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            tokens: TokenSettings {
                issuer: default_issuer(),
                audience: default_audience(),
                leeway_seconds: default_leeway(),
                ..Default::default()
            },
            trust_easy_auth: false,
            anonymous_demo: false,
            pseudonym_key: None,
            pseudonym_key_file: None,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            app_roles: BTreeMap::new(),
        }
    }
}

/// Reads a key: the text, or the file's content with the trailing newline trimmed.
pub fn read_key(
    inline: &Option<String>,
    file: &Option<String>,
) -> Result<Option<Vec<u8>>, SecurityError> {
    if let Some(path) = file {
        let bytes = std::fs::read(path)
            .map_err(|e| SecurityError::Settings(format!("cannot read key file {path}: {e}")))?;
        let text = String::from_utf8_lossy(&bytes);
        return Ok(Some(
            text.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
        ));
    }
    Ok(inline.as_ref().map(|k| k.as_bytes().to_vec()))
}

impl SecuritySettings {
    /// Reads and checks a settings file (JSON).
    pub fn load(path: &Path) -> Result<Self, SecurityError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecurityError::Settings(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks settings JSON; `origin` names where it came from in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SecurityError> {
        let s: SecuritySettings = serde_json::from_str(text)
            .map_err(|e| SecurityError::Settings(format!("{origin}: {e}")))?;
        s.check()?;
        Ok(s)
    }

    /// Checks every entitlement's scopes.
    pub fn check(&self) -> Result<(), SecurityError> {
        for (name, e) in self
            .users
            .iter()
            .chain(self.groups.iter())
            .chain(self.app_roles.iter())
        {
            let scopes = e
                .scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            if e.role.is_scoped() && scopes.is_empty() {
                return Err(SecurityError::Settings(format!(
                    "entitlement '{name}': role {} needs at least one scope",
                    e.role
                )));
            }
        }
        Ok(())
    }

    /// The pseudonym key; a deployment without one refuses masked reads rather than use a guessable key.
    pub fn pseudonym_key(&self) -> Result<Vec<u8>, SecurityError> {
        match read_key(&self.pseudonym_key, &self.pseudonym_key_file)? {
            Some(k) if k.len() >= 16 => Ok(k),
            Some(_) => Err(SecurityError::Settings(
                "the pseudonym key must be at least 16 bytes".into(),
            )),
            None => Err(SecurityError::Settings(
                "no pseudonym_key / pseudonym_key_file: masked reads need a per-deployment key"
                    .into(),
            )),
        }
    }

    /// The identity of verified claims: the first matching user, then app role, then group entitlement;
    /// for a locally issued token (`local`), its own role and `pf_scopes` claims.
    pub fn resolve(
        &self,
        claims: &Claims,
        method: AuthMethod,
        local: bool,
    ) -> Result<Identity, SecurityError> {
        let names = std::iter::once(&claims.subject).chain(claims.names.iter());
        let found = names
            .filter_map(|n| self.users.get(n))
            .chain(claims.roles.iter().filter_map(|r| self.app_roles.get(r)))
            .chain(claims.groups.iter().filter_map(|g| self.groups.get(g)))
            .next();
        let (role, scopes) = match found {
            Some(e) => (e.role, e.scopes.clone()),
            None if local => {
                let role = claims
                    .roles
                    .iter()
                    .find_map(|r| Role::parse(r))
                    .ok_or_else(|| SecurityError::NoEntitlement(claims.subject.clone()))?;
                (role, claims.scopes.clone())
            }
            None => return Err(SecurityError::NoEntitlement(claims.subject.clone())),
        };
        let scopes = scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SecurityError::Invalid(e.to_string()))?;
        if role.is_scoped() && scopes.is_empty() {
            return Err(SecurityError::NoEntitlement(format!(
                "{} (role {role} without a scope)",
                claims.subject
            )));
        }
        Ok(Identity {
            subject: claims.subject.clone(),
            role,
            scopes,
            method,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlements_resolve_users_before_app_roles_before_groups() {
        let s: SecuritySettings = serde_json::from_str(
            r#"{"users": {"ann@example.org": {"role": "department_staff", "scopes": ["MHA01/ED"]}},
                "app_roles": {"PatientFlow.Analyst": {"role": "analyst"}},
                "groups": {"g-ops": {"role": "operator"}}}"#,
        )
        .unwrap();
        s.check().unwrap();
        let c = |sub: &str, roles: &[&str], groups: &[&str]| Claims {
            subject: sub.into(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let id = s
            .resolve(
                &c("ann@example.org", &["PatientFlow.Analyst"], &[]),
                AuthMethod::Token,
                false,
            )
            .unwrap();
        assert_eq!(id.role, Role::DepartmentStaff);
        assert_eq!(id.scopes_text(), "MHA01/ED");
        let id = s
            .resolve(
                &c("x", &["PatientFlow.Analyst"], &["g-ops"]),
                AuthMethod::Token,
                false,
            )
            .unwrap();
        assert_eq!(id.role, Role::Analyst);
        let id = s
            .resolve(&c("x", &[], &["g-ops"]), AuthMethod::Token, false)
            .unwrap();
        assert_eq!(id.role, Role::Operator);
        // A token's own role claim only counts for locally issued tokens.
        assert!(s
            .resolve(&c("x", &["admin"], &[]), AuthMethod::Token, false)
            .is_err());
        assert_eq!(
            s.resolve(&c("x", &["admin"], &[]), AuthMethod::Token, true)
                .unwrap()
                .role,
            Role::Admin
        );
        // A scoped role needs a scope.
        assert!(s
            .resolve(&c("x", &["department_staff"], &[]), AuthMethod::Token, true)
            .is_err());
        let bad: SecuritySettings =
            serde_json::from_str(r#"{"groups": {"g": {"role": "hospital_manager"}}}"#).unwrap();
        assert!(bad.check().is_err());
    }
}
