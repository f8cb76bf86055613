//! Bronze ingestion of daily EHR extracts (patients and encounters), through source profiles.

use super::profiles::Profile;
use super::{tabular, IngestReport};
use crate::storage::Lake;
use crate::{Error, Result};

/// Ingests EHR extract files (files, folders, globs) with the named profile, or with the first shipped
/// profile that recognises each file when `profile` is `None`. Files no profile claims (a Synthea
/// `providers.csv`, say) are listed as not applicable and left alone.
pub async fn ingest_paths(
    lake: &Lake,
    paths: &[String],
    profile: Option<&Profile>,
    run_id: &str,
    progress: &dyn Fn(&str, usize),
) -> Result<IngestReport> {
    let profiles = match profile {
        Some(p) => vec![p.clone()],
        None => Profile::builtin_ehr(),
    };
    tabular::ingest(lake, paths, &profiles, run_id, progress).await
}

/// Looks a shipped EHR profile up by name.
pub fn builtin_profile(name: &str) -> Result<Profile> {
    let all = Profile::builtin_ehr();
    let names: Vec<String> = all.iter().map(|p| p.name.clone()).collect();
    all.into_iter().find(|p| p.name == name).ok_or_else(|| {
        Error::Config(format!(
            "unknown EHR profile '{name}'; shipped profiles: {}",
            names.join(", ")
        ))
    })
}
