//! The landing area where EHR extracts and reference files are dropped: a container in the lake's storage
//! account when the lake is on Azure (`PATIENTFLOW_LANDING_CONTAINER`), a local folder otherwise (the same
//! setting read as a path, relative to the working directory).
//!
//! The core ingests files from paths, so blobs are downloaded into a temporary folder first, keeping their
//! names (the profiles recognise extracts by file name).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::{ObjectStore, ObjectStoreExt};
use patientflow_core::storage::Lake;
use tokio::io::AsyncWriteExt;

use super::error::AppError;
use super::Settings;

/// Where landed files are.
#[derive(Debug, Clone)]
pub enum Landing {
    /// A local folder.
    Local(PathBuf),
    /// A blob container.
    Azure {
        /// The store, rooted at the container.
        store: Arc<dyn ObjectStore>,
        /// The container name (for messages).
        container: String,
    },
}

impl Landing {
    /// The landing area for the settings and lake.
    pub fn open(settings: &Settings, lake: &Lake) -> Result<Landing, AppError> {
        let name = settings.landing.trim();
        if !lake.is_azure() {
            let path = name.strip_prefix("file://").unwrap_or(name);
            return Ok(Landing::Local(PathBuf::from(path)));
        }
        let container = name.trim_matches('/');
        if container.is_empty() || container.contains('/') {
            return Err(AppError::Internal(format!(
                "PATIENTFLOW_LANDING_CONTAINER must be a container name when the lake is on Azure, not '{name}'"
            )));
        }
        let mut url = lake.root().clone();
        if !url.username().is_empty() {
            // abfss://<container>@<account>.dfs.core.windows.net/…
            url.set_username(container).map_err(|_| {
                AppError::Internal(format!("cannot form the landing URL from {}", lake.root()))
            })?;
        } else {
            url.set_host(Some(container)).map_err(|e| {
                AppError::Internal(format!(
                    "cannot form the landing URL from {}: {e}",
                    lake.root()
                ))
            })?;
        }
        url.set_path("");
        let store = MicrosoftAzureBuilder::from_env()
            .with_url(url.as_str())
            .build()
            .map_err(|e| AppError::Internal(format!("landing container {container}: {e}")))?;
        Ok(Landing::Azure {
            store: Arc::new(store),
            container: container.to_string(),
        })
    }

    /// Where the landing area is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Landing::Local(p) => p.display().to_string(),
            Landing::Azure { container, .. } => format!("container {container}"),
        }
    }

    /// Files below `folder` (relative paths, `/`-separated, sorted). A missing folder or container lists
    /// nothing.
    pub async fn list(&self, folder: &str) -> Result<Vec<String>, AppError> {
        let folder = clean_relative(folder)?;
        match self {
            Landing::Local(root) => {
                let base = if folder.is_empty() {
                    root.clone()
                } else {
                    root.join(&folder)
                };
                let mut out = Vec::new();
                if base.is_dir() {
                    walk(&base, root, &mut out);
                }
                out.sort();
                Ok(out)
            }
            Landing::Azure { store, container } => {
                let prefix =
                    (!folder.is_empty()).then(|| object_store::path::Path::from(folder.as_str()));
                let mut stream = store.list(prefix.as_ref());
                let mut out = Vec::new();
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(meta) => out.push(meta.location.to_string()),
                        Err(object_store::Error::NotFound { .. }) => break,
                        Err(e) => {
                            return Err(AppError::Unavailable(format!(
                                "listing landing container {container}: {e}"
                            )))
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
        }
    }

    /// Makes a landed file available as a local path: the file itself for a local landing folder, else a
    /// download into `scratch` under the blob's own file name. `Ok(None)` when it does not exist.
    pub async fn fetch(&self, relative: &str, scratch: &Path) -> Result<Option<PathBuf>, AppError> {
        let relative = clean_relative(relative)?;
        match self {
            Landing::Local(root) => {
                let p = root.join(&relative);
                Ok(p.is_file().then_some(p))
            }
            Landing::Azure { store, container } => {
                let location = object_store::path::Path::from(relative.as_str());
                let got = match store.get(&location).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => {
                        return Err(AppError::Unavailable(format!(
                            "reading {relative} from {container}: {e}"
                        )))
                    }
                };
                let target = scratch_path(scratch, &relative)?;
                let mut file = tokio::fs::File::create(&target)
                    .await
                    .map_err(|e| AppError::Internal(format!("{}: {e}", target.display())))?;
                let mut stream = got.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| {
                        AppError::Unavailable(format!("reading {relative} from {container}: {e}"))
                    })?;
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| AppError::Internal(format!("{}: {e}", target.display())))?;
                }
                file.flush()
                    .await
                    .map_err(|e| AppError::Internal(format!("{}: {e}", target.display())))?;
                Ok(Some(target))
            }
        }
    }
}

/// A path inside `scratch` for a landed file: its relative folders are kept (so two days' files of the
/// same name do not collide) and the file name is the blob's own.
pub fn scratch_path(scratch: &Path, relative: &str) -> Result<PathBuf, AppError> {
    let relative = clean_relative(relative)?;
    if relative.is_empty() {
        return Err(AppError::BadRequest("an empty file name".into()));
    }
    let target = scratch.join(&relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| AppError::Internal(format!("{}: {e}", parent.display())))?;
    }
    Ok(target)
}

/// A relative landing path without `.`/`..` components, leading slashes or backslashes.
pub fn clean_relative(path: &str) -> Result<String, AppError> {
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                return Err(AppError::BadRequest(format!(
                    "'{path}' leaves the landing area"
                )))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, root, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
}

/// What a landed file is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Hospital or department metadata (`hospitals*`, `departments*`, `capacity*`).
    Reference,
    /// An EHR extract candidate (CSV, TSV, NDJSON, JSON).
    Ehr,
    /// Anything else: ignored.
    Other,
}

/// Classifies a landed file by its name.
pub fn classify(path: &str) -> FileKind {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    if name.starts_with('.') || name.is_empty() {
        return FileKind::Other;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let tabular = matches!(ext, "csv" | "tsv" | "txt" | "ndjson" | "jsonl" | "json");
    if !tabular {
        return FileKind::Other;
    }
    if ["hospitals", "departments", "capacity"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        FileKind::Reference
    } else {
        FileKind::Ehr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_classified_by_name() {
        assert_eq!(classify("reference/hospitals.csv"), FileKind::Reference);
        assert_eq!(classify("departments_2026-01-14.json"), FileKind::Reference);
        assert_eq!(classify("ehr/patients_2026-01-14.csv"), FileKind::Ehr);
        assert_eq!(classify("ehr/_SUCCESS"), FileKind::Other);
        assert_eq!(classify("ehr/readme.md"), FileKind::Other);
        assert_eq!(classify("ehr/.hidden.csv"), FileKind::Other);
    }

    #[test]
    fn relative_paths_cannot_escape() {
        assert_eq!(clean_relative("/ehr//a.csv").unwrap(), "ehr/a.csv");
        assert!(clean_relative("../etc/passwd").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = scratch_path(dir.path(), "landing/ehr/a.csv").unwrap();
        assert!(p.starts_with(dir.path()) && p.ends_with("landing/ehr/a.csv"));
    }

    #[tokio::test]
    async fn local_landing_lists_and_fetches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ehr")).unwrap();
        std::fs::write(dir.path().join("ehr/patients_2026-01-14.csv"), "a\n").unwrap();
        std::fs::write(dir.path().join("hospitals.csv"), "a\n").unwrap();
        let l = Landing::Local(dir.path().to_path_buf());
        assert_eq!(
            l.list("").await.unwrap(),
            vec!["ehr/patients_2026-01-14.csv", "hospitals.csv"]
        );
        assert_eq!(
            l.list("ehr").await.unwrap(),
            vec!["ehr/patients_2026-01-14.csv"]
        );
        assert!(l.list("nope").await.unwrap().is_empty());
        let got = l.fetch("hospitals.csv", dir.path()).await.unwrap().unwrap();
        assert!(got.is_file());
        assert!(l.fetch("missing.csv", dir.path()).await.unwrap().is_none());
    }
}
