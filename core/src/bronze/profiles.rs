//! Source profiles: how one source system's files are recognised and how its column names map onto
//! patientflow's. Profiles are declared data (JSON), not code: the shipped ones live in `core/profiles/`
//! and a site can load its own with [`Profile::from_json`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::storage::TableRef;
use crate::{Error, Result};

/// A source system's file layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (`patientflow`, `synthea`, `reference`, …).
    pub name: String,
    /// What the profile is for.
    #[serde(default)]
    pub description: String,
    /// Entity name (`patients`, `encounters`, `hospitals`, `departments`) → its file layout.
    pub entities: BTreeMap<String, EntityLayout>,
}

/// How one entity's files look in a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityLayout {
    /// Glob patterns on the file name (not the folder) that identify the entity's files.
    pub file_patterns: Vec<String>,
    /// Source column name → patientflow column name. Unmapped columns keep their own name, normalised
    /// to snake_case.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// patientflow column names every file must have (after mapping).
    #[serde(default)]
    pub required: Vec<String>,
}

impl Profile {
    /// Parses a profile from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("invalid source profile: {e}")))
    }

    /// The profiles shipped with patientflow for EHR extracts.
    pub fn builtin_ehr() -> Vec<Profile> {
        vec![
            Self::builtin(include_str!("../../profiles/patientflow.json")),
            Self::builtin(include_str!("../../profiles/synthea.json")),
        ]
    }

    /// The shipped profile for hospital and department metadata.
    pub fn builtin_reference() -> Profile {
        Self::builtin(include_str!("../../profiles/reference.json"))
    }

    fn builtin(text: &str) -> Profile {
        // The shipped profiles are checked by the tests below; a failure here is a build defect.
        Self::from_json(text).unwrap_or_else(|e| panic!("shipped profile is invalid: {e}"))
    }

    /// The entity whose file patterns match `file_name`, if any.
    pub fn entity_for(&self, file_name: &str) -> Option<(&str, &EntityLayout)> {
        self.entities.iter().find_map(|(name, layout)| {
            layout
                .file_patterns
                .iter()
                .any(|p| {
                    glob::Pattern::new(p).is_ok_and(|p| p.matches(&file_name.to_ascii_lowercase()))
                })
                .then_some((name.as_str(), layout))
        })
    }
}

impl EntityLayout {
    /// The patientflow name of a source column: mapped when the profile maps it (case-insensitively),
    /// otherwise normalised.
    pub fn target_name(&self, source: &str) -> String {
        let trimmed = source.trim().trim_start_matches('\u{feff}');
        self.columns
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(trimmed))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| normalise_column(trimmed))
    }
}

/// The Bronze table an entity lands in.
pub fn table_for_entity(entity: &str) -> Option<TableRef> {
    match entity {
        "patients" => Some(super::EHR_PATIENTS),
        "encounters" => Some(super::EHR_ENCOUNTERS),
        "hospitals" => Some(super::HOSPITALS),
        "departments" => Some(super::DEPARTMENTS),
        _ => None,
    }
}

/// snake_case with only `[a-z0-9_]`, never starting with `_` (reserved for lineage columns) or a digit.
pub fn normalise_column(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "column".to_string()
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("c_{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse_and_match_their_files() {
        let ehr = Profile::builtin_ehr();
        assert_eq!(
            ehr[0].entity_for("patients_2026-01-02.csv").unwrap().0,
            "patients"
        );
        assert_eq!(ehr[1].entity_for("encounters.csv").unwrap().0, "encounters");
        assert!(ehr[1].entity_for("providers.csv").is_none());
        let r = Profile::builtin_reference();
        assert_eq!(r.entity_for("departments.json").unwrap().0, "departments");
    }

    #[test]
    fn columns_map_or_normalise() {
        let ehr = Profile::builtin_ehr();
        let (_, layout) = ehr[1].entity_for("patients.csv").unwrap();
        assert_eq!(layout.target_name("BIRTHDATE"), "birth_date");
        assert_eq!(
            layout.target_name("HEALTHCARE_EXPENSES"),
            "healthcare_expenses"
        );
        assert_eq!(normalise_column("Preferred Language"), "preferred_language");
        assert_eq!(normalise_column("insuranceType"), "insurance_type");
        assert_eq!(normalise_column("_x"), "x");
        assert_eq!(normalise_column("2nd"), "c_2nd");
        assert_eq!(normalise_column("!!"), "column");
    }
}
