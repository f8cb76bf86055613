//! The App Service Authentication (Easy Auth) principal: `X-MS-CLIENT-PRINCIPAL`, base64 of
//! `{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}`. Only used when the settings say the app
//! runs behind Easy Auth (`trust_easy_auth`); App Service strips the header from client requests then.

use base64::Engine;
use serde::Deserialize;

use super::{Claims, SecurityError};

#[derive(Deserialize)]
struct Principal {
    #[serde(default)]
    claims: Vec<Claim>,
    #[serde(default)]
    role_typ: Option<String>,
}

#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

const OID: [&str; 2] = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
];
const ROLE: [&str; 2] = [
    "roles",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
];
const NAMES: [&str; 5] = [
    "preferred_username",
    "name",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];

/// Longest principal header accepted (App Service's are a few KB even with many group claims).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Parses the header into claims (subject = object id, else the first name claim).
pub fn parse(header: &str) -> Result<Claims, SecurityError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SecurityError::Invalid(format!(
            "X-MS-CLIENT-PRINCIPAL is longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| SecurityError::Invalid("X-MS-CLIENT-PRINCIPAL is not base64".into()))?;
    let p: Principal = serde_json::from_slice(&bytes)
        .map_err(|_| SecurityError::Invalid("X-MS-CLIENT-PRINCIPAL is not a principal".into()))?;
    let of = |typs: &[&str]| -> Vec<String> {
        p.claims
            .iter()
            .filter(|c| typs.contains(&c.typ.as_str()))
            .map(|c| c.val.clone())
            .collect()
    };
    let mut role_typs: Vec<&str> = ROLE.to_vec();
    if let Some(r) = p.role_typ.as_deref() {
        role_typs.push(r);
    }
    let names = of(&NAMES);
    let subject = of(&OID)
        .into_iter()
        .next()
        .or_else(|| names.first().cloned())
        .ok_or_else(|| SecurityError::Invalid("the principal has no subject".into()))?;
    Ok(Claims {
        subject,
        names,
        roles: of(&role_typs),
        groups: of(&["groups"]),
        scopes: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse() {
        let p = r#"{"auth_typ":"aad","claims":[{"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"oid-1"},
            {"typ":"preferred_username","val":"ann@example.org"},{"typ":"roles","val":"PatientFlow.Analyst"},
            {"typ":"groups","val":"g-1"}],"name_typ":"name","role_typ":"roles"}"#;
        let h = base64::engine::general_purpose::STANDARD.encode(p);
        let c = parse(&h).unwrap();
        assert_eq!(c.subject, "oid-1");
        assert_eq!(c.names, vec!["ann@example.org"]);
        assert_eq!(c.roles, vec!["PatientFlow.Analyst"]);
        assert_eq!(c.groups, vec!["g-1"]);
        assert!(parse("%%%").is_err());
        let not_json = base64::engine::general_purpose::STANDARD.encode("{not json");
        assert!(
            matches!(parse(&not_json), Err(SecurityError::Invalid(m)) if m.contains("not a principal"))
        );
        assert!(parse(&"A".repeat(MAX_HEADER_BYTES + 4)).is_err());
    }
}
