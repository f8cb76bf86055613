//! Bronze ingestion of hospital and department metadata (CSV or JSON).

use super::profiles::Profile;
use super::{tabular, IngestReport};
use crate::storage::Lake;
use crate::Result;

/// Ingests hospital and department metadata files (files, folders, globs). Files are recognised by
/// name (`hospitals*`, `departments*`, `capacity*`) and checked for their required columns.
pub async fn ingest_paths(
    lake: &Lake,
    paths: &[String],
    run_id: &str,
    progress: &dyn Fn(&str, usize),
) -> Result<IngestReport> {
    tabular::ingest(
        lake,
        paths,
        &[Profile::builtin_reference()],
        run_id,
        progress,
    )
    .await
}
