//! Security settings and tokens for the tests that call the app over HTTP.

use std::time::Duration;

use patientflow_core::security::settings::TokenSettings;
use patientflow_core::security::{token, Role, Scope};
use serde_json::json;

/// HS256 key of the test deployment.
pub const HS256_KEY: &str = "test-deployment-hs256-key-0123456789abcdef";
/// Pseudonym key of the test deployment.
pub const PSEUDONYM_KEY: &str = "test-deployment-pseudonym-key-0123";

/// The settings JSON (for `PATIENTFLOW_SECURITY` or a `--security` file): local tokens only.
pub fn settings_json() -> String {
    json!({
        "tokens": {"hs256_key": HS256_KEY, "leeway_seconds": 0},
        "pseudonym_key": PSEUDONYM_KEY,
    })
    .to_string()
}

/// A token of the test deployment for `role` and `scopes` (`HOSPITAL[/DEPARTMENT]`).
pub fn token(subject: &str, role: Role, scopes: &[&str], ttl: Duration) -> String {
    let settings = TokenSettings {
        hs256_key: Some(HS256_KEY.into()),
        issuer: "patientflow-local".into(),
        audience: "patientflow".into(),
        ..Default::default()
    };
    let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
    token::issue_hs256(HS256_KEY.as_bytes(), &settings, subject, role, &scopes, ttl).unwrap()
}

/// An administrator's token, valid for an hour.
pub fn admin_token() -> String {
    token("test-admin", Role::Admin, &[], Duration::from_secs(3600))
}

/// True when `text` holds one of `values` as a whole token (split at characters other than letters,
/// digits and `-`): finds an MRN inside an HL7 payload (`PID|1||MHA01-P7^^^MHA01^MR`) in time linear
/// in the text, where a substring search per MRN would be quadratic over a whole table.
pub fn contains_token(text: &str, values: &std::collections::BTreeSet<String>) -> bool {
    values.contains(text)
        || text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|t| !t.is_empty() && values.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_inside_payloads() {
        let mrns: std::collections::BTreeSet<String> = ["MHA01-P7".to_string()].into();
        assert!(contains_token("PID|1||MHA01-P7^^^MHA01^MR", &mrns));
        assert!(contains_token("MHA01-P7", &mrns));
        assert!(!contains_token("MHA01-P77", &mrns));
        assert!(!contains_token("3f2a9c0d1e4b5a6c", &mrns));
    }
}
