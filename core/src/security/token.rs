//! Bearer tokens (JWT): HS256 with a key from the settings (locally issued by `patientflow token`), and
//! RS256 verified against a JWKS file (Entra ID style). `exp`, `nbf`, `iss` and `aud` are checked.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use super::settings::{read_key, TokenSettings};
use super::{Claims, Role, Scope, SecurityError};

/// Verifies bearer tokens under the token settings.
#[derive(Clone)]
pub struct Verifier {
    hs256: Option<Vec<u8>>,
    jwks: Option<JwkSet>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.as_ref().map(|_| "<key>"))
            .field("jwks_keys", &self.jwks.as_ref().map(|j| j.keys.len()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its claims.
    pub claims: Claims,
    /// True when signed with the local HS256 key (its own role / scope claims then count).
    pub local: bool,
}

impl Verifier {
    /// A verifier for the settings (reads the key and JWKS files).
    pub fn from_settings(t: &TokenSettings) -> Result<Self, SecurityError> {
        let hs256 = read_key(&t.hs256_key, &t.hs256_key_file)?;
        if hs256.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(SecurityError::Settings(
                "the HS256 key must be at least 32 bytes".into(),
            ));
        }
        let jwks = match &t.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SecurityError::Settings(format!("cannot read JWKS file {path}: {e}"))
                })?;
                Some(
                    serde_json::from_str::<JwkSet>(&text)
                        .map_err(|e| SecurityError::Settings(format!("JWKS file {path}: {e}")))?,
                )
            }
            None => None,
        };
        Ok(Verifier {
            hs256,
            jwks,
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            leeway: t.leeway_seconds,
        })
    }

    /// Uses the RS256 keys of a JWKS document (as fetched from `jwks_url`) instead of any file's.
    pub fn with_jwks_json(mut self, text: &str, origin: &str) -> Result<Self, SecurityError> {
        let set = serde_json::from_str::<JwkSet>(text)
            .map_err(|e| SecurityError::Settings(format!("JWKS from {origin}: {e}")))?;
        if set.keys.is_empty() {
            return Err(SecurityError::Settings(format!(
                "JWKS from {origin} has no keys"
            )));
        }
        self.jwks = Some(set);
        Ok(self)
    }

    /// Verifies a token: signature, `exp` (required), `nbf`, `iss`, `aud`.
    pub fn verify(&self, token: &str) -> Result<Verified, SecurityError> {
        let invalid = |m: String| SecurityError::Invalid(m);
        let header = jsonwebtoken::decode_header(token.trim())
            .map_err(|e| invalid(format!("not a JWT: {e}")))?;
        let (key, local) = match header.alg {
            Algorithm::HS256 => {
                let k = self
                    .hs256
                    .as_ref()
                    .ok_or_else(|| invalid("HS256 tokens are not accepted here".into()))?;
                (DecodingKey::from_secret(k), true)
            }
            Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    invalid("RS256 tokens are not accepted here (no JWKS)".into())
                })?;
                let jwk = match &header.kid {
                    Some(kid) => jwks.find(kid),
                    None if jwks.keys.len() == 1 => jwks.keys.first(),
                    None => None,
                }
                .ok_or_else(|| invalid("the token's key id is not in the JWKS".into()))?;
                (
                    DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("JWKS key: {e}")))?,
                    false,
                )
            }
            other => return Err(invalid(format!("algorithm {other:?} is not accepted"))),
        };
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Value>(token.trim(), &key, &v)
            .map_err(|e| invalid(format!("{e}")))?;
        Ok(Verified {
            claims: claims_of(&data.claims),
            local,
        })
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn claims_of(c: &Value) -> Claims {
    let subject = c
        .get("oid")
        .or_else(|| c.get("sub"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut names = vec![];
    for k in ["sub", "preferred_username", "upn", "email"] {
        if let Some(s) = c.get(k).and_then(Value::as_str) {
            if s != subject {
                names.push(s.to_string());
            }
        }
    }
    Claims {
        subject,
        names,
        roles: strings(c.get("roles")),
        groups: strings(c.get("groups")),
        scopes: strings(c.get("pf_scopes")),
    }
}

/// Issues an HS256 test token (`patientflow token`).
pub fn issue_hs256(
    key: &[u8],
    settings: &TokenSettings,
    subject: &str,
    role: Role,
    scopes: &[Scope],
    ttl: std::time::Duration,
) -> Result<String, SecurityError> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": subject,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs() as i64,
        "roles": [role.as_str()],
        "pf_scopes": scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .map_err(|e| SecurityError::Settings(format!("cannot sign a token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn settings() -> TokenSettings {
        TokenSettings {
            hs256_key: Some(KEY.into()),
            issuer: "patientflow-local".into(),
            audience: "patientflow".into(),
            leeway_seconds: 0,
            ..Default::default()
        }
    }

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let s = settings();
        let v = Verifier::from_settings(&s).unwrap();
        let scope = Scope::parse("MHA01/ED").unwrap();
        let t = issue_hs256(
            KEY.as_bytes(),
            &s,
            "ann",
            Role::DepartmentStaff,
            std::slice::from_ref(&scope),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let ok = v.verify(&t).unwrap();
        assert!(ok.local);
        assert_eq!(ok.claims.subject, "ann");
        assert_eq!(ok.claims.roles, vec!["department_staff"]);
        assert_eq!(ok.claims.scopes, vec!["MHA01/ED"]);

        // Tampered payload: the signature no longer matches.
        let parts: Vec<&str> = t.split('.').collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        payload["roles"] = json!(["admin"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(serde_json::to_vec(&payload).unwrap()),
            parts[2]
        );
        assert!(matches!(v.verify(&forged), Err(SecurityError::Invalid(_))));

        // Another key, another audience, expired, alg=none.
        let other = issue_hs256(
            b"ffffffffffffffffffffffffffffffff",
            &s,
            "ann",
            Role::Admin,
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(v.verify(&other).is_err());
        let mut aud = s.clone();
        aud.audience = "someone-else".into();
        let wrong_aud = issue_hs256(
            KEY.as_bytes(),
            &aud,
            "ann",
            Role::Admin,
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(v
            .verify(&wrong_aud)
            .unwrap_err()
            .to_string()
            .contains("Audience"));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "ann", "iss": s.issuer, "aud": s.audience, "exp": chrono::Utc::now().timestamp() - 120, "roles": ["admin"]}),
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(v
            .verify(&expired)
            .unwrap_err()
            .to_string()
            .contains("xpired"));
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(v.verify(&none).is_err());
    }
}
