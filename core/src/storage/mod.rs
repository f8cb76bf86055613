//! The lake: one URL under which every Delta table lives.
//!
//! A lake URL is a local path, a `file://` URL, or an Azure URL (`az://container/prefix`,
//! `abfss://container@account.dfs.core.windows.net/prefix`). Tables are addressed by [`TableRef`]
//! (layer + name) and live at `<lake>/<layer>/<name>`. Nothing else changes between local and Azure.

mod append;
mod azure;
pub mod blind_append;
pub mod columns;
mod incremental;
pub mod queued;
mod read;
pub mod rows;

use std::collections::HashMap;
use std::path::Path;

use deltalake::arrow::datatypes::Schema as ArrowSchema;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::StructType;
use deltalake::{DeltaTable, DeltaTableBuilder};
use url::Url;

use crate::{Error, Result};

pub use append::{target_file_size, CommitMarker, TARGET_FILE_BYTES};
pub use azure::AzureTarget;
pub use incremental::{checkpoint_id, Increment};

/// A Delta table's current version as a signed number (-1 never stored; `None` before the first commit).
pub fn version_of(table: &DeltaTable) -> Option<i64> {
    table.version().map(|v| v as i64)
}

/// The medallion layer a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Raw, append-only, lossless.
    Bronze,
    /// Parsed, cleansed, deduplicated, history-tracked.
    Silver,
    /// Star schema and KPI marts.
    Gold,
    /// Pipeline bookkeeping: run ledger, checkpoints.
    Ops,
    /// Access control: the audit trail (`security_audit`), readable by administrators only.
    Security,
}

impl Layer {
    /// Folder name and SQL prefix of the layer.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
            Layer::Ops => "ops",
            Layer::Security => "security",
        }
    }
}

/// A table of the lake: its layer and its name within the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    /// Layer (folder) of the table.
    pub layer: Layer,
    /// Name of the table within its layer.
    pub name: &'static str,
}

impl TableRef {
    /// A table in a layer.
    pub const fn new(layer: Layer, name: &'static str) -> Self {
        TableRef { layer, name }
    }

    /// The name the table has in SQL: `<layer>_<name>`, e.g. `bronze_adt_messages`.
    pub fn sql_name(&self) -> String {
        format!("{}_{}", self.layer.as_str(), self.name)
    }

    /// Path of the table below the lake root.
    pub fn path(&self) -> String {
        format!("{}/{}", self.layer.as_str(), self.name)
    }

    /// Delta table properties the table is created with. Tables appended to many times a day keep
    /// file statistics only for the columns their readers prune on (so every commit costs less to
    /// replay) and are checkpointed every ten commits (so opening one replays about ten JSON commits;
    /// a long-running writer checkpoints in the background, see [`blind_append`]).
    pub fn created_properties(&self) -> Vec<(&'static str, &'static str)> {
        let stats_columns = match (self.layer, self.name) {
            (Layer::Bronze, "adt_messages") => "facility,ingested_at,ingest_date,eh_enqueued_time",
            (Layer::Ops, "run_ledger") => "stage,status,started_at",
            _ => return Vec::new(),
        };
        vec![
            ("delta.dataSkippingStatsColumns", stats_columns),
            ("delta.checkpointInterval", "10"),
        ]
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql_name())
    }
}

/// A lake location plus the storage options needed to reach it.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    options: HashMap<String, String>,
    azure: Option<AzureTarget>,
    appended: AppendedTables,
}

/// Tables left open by appends (by path below the lake root), shared by the clones of a [`Lake`]: the
/// next append to one commits straight to its log, or brings the table up to date with the commits
/// since, instead of replaying the whole log.
type AppendedTables = std::sync::Arc<std::sync::Mutex<HashMap<String, append::OpenForAppend>>>;

impl Lake {
    /// Opens a lake at `location`: a local path (created if missing), a `file://` URL, or an Azure URL.
    ///
    /// For Azure URLs the storage options come from `AZURE_*` environment variables (the object_store
    /// convention), e.g. `AZURE_STORAGE_USE_EMULATOR=true` for Azurite, or a managed identity in Azure.
    /// With the emulator, a missing container is created.
    pub async fn open(location: &str) -> Result<Self> {
        let location = location.trim();
        if location.is_empty() {
            return Err(Error::Config(
                "the lake location is empty; give a path or a URL".into(),
            ));
        }
        let root = parse_location(location)?;
        let mut options = HashMap::new();
        let azure = match root.scheme() {
            "file" => None,
            "az" | "abfs" | "abfss" | "azure" | "adl" => {
                for (key, value) in std::env::vars() {
                    if key.starts_with("AZURE_") {
                        options.insert(key.to_ascii_lowercase(), value);
                    }
                }
                // App Service / Functions expose their managed-identity endpoint as IDENTITY_ENDPOINT
                // (object_store reads IDENTITY_HEADER itself but looks for the VM metadata address).
                if let Ok(endpoint) = std::env::var("IDENTITY_ENDPOINT") {
                    options.entry("azure_msi_endpoint".to_string()).or_insert(endpoint);
                }
                let mut target_options = options.clone();
                if let Ok(url) = std::env::var("AZURITE_BLOB_STORAGE_URL") {
                    target_options.insert("azurite_blob_storage_url".into(), url);
                }
                let target = AzureTarget::from_url(&root, &target_options)?;
                target.ensure_container().await?;
                Some(target)
            }
            other => {
                return Err(Error::Config(format!(
                    "unsupported lake URL scheme '{other}://'; use a local path, file://, az:// or abfss://"
                )))
            }
        };
        Ok(Lake {
            root,
            options,
            azure,
            appended: AppendedTables::default(),
        })
    }

    /// The root URL of the lake.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// True when the lake is on Azure Blob / ADLS (or Azurite).
    pub fn is_azure(&self) -> bool {
        self.azure.is_some()
    }

    /// The URL of a table's folder.
    pub fn table_url(&self, table: TableRef) -> Result<Url> {
        let mut base = self.root.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.join(&format!("{}/", table.path()))
            .map_err(|e| Error::Config(format!("cannot form the URL of table {table}: {e}")))
    }

    /// Opens a table; `Ok(None)` when it does not exist yet.
    pub async fn open_table(&self, table: TableRef) -> Result<Option<DeltaTable>> {
        let url = self.table_url(table)?;
        if url.scheme() == "file"
            && url
                .to_file_path()
                .is_ok_and(|p| !p.join("_delta_log").exists())
        {
            return Ok(None);
        }
        let mut delta = DeltaTableBuilder::from_url(url)
            .map_err(|e| Error::delta(table.sql_name(), e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        match delta.load().await {
            Ok(()) => Ok(Some(delta)),
            Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(table.sql_name(), e)),
        }
    }

    /// `cached` brought up to date with the commits made since it was read (only those are read), or
    /// the table opened afresh when there is none or it cannot be updated; `Ok(None)` when the table
    /// does not exist.
    pub async fn refreshed(
        &self,
        table: TableRef,
        cached: Option<DeltaTable>,
    ) -> Result<Option<DeltaTable>> {
        if let Some(mut delta) = cached {
            if delta.update_incremental(None).await.is_ok() {
                return Ok(Some(delta));
            }
        }
        self.open_table(table).await
    }

    /// Opens a table, creating it empty with `schema` when it does not exist.
    ///
    /// Tables are created at the plain Delta protocol (reader 1, writer 2: no deletion vectors, no column
    /// mapping) so that Synapse serverless, Spark and Fabric read them.
    pub async fn open_or_create(
        &self,
        table: TableRef,
        schema: &ArrowSchema,
    ) -> Result<DeltaTable> {
        if let Some(existing) = self.open_table(table).await? {
            return Ok(existing);
        }
        let schema: StructType = schema
            .try_into_kernel()
            .map_err(|e| Error::Storage(format!("schema of {table} is not a Delta schema: {e}")))?;
        let url = self.table_url(table)?;
        if url.scheme() == "file" {
            // delta-rs creates local tables only in an existing folder.
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        let delta = DeltaTableBuilder::from_url(url)
            .map_err(|e| Error::delta(table.sql_name(), e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        let created = delta
            .create()
            .with_table_name(table.sql_name())
            .with_columns(schema.fields().cloned())
            .with_configuration(
                table
                    .created_properties()
                    .into_iter()
                    .map(|(key, value)| (key, Some(value))),
            )
            .with_comment(format!(
                "patientflow {} table {}",
                table.layer.as_str(),
                table.name
            ))
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created it between our check and our create: use theirs.
            Err(_) => match self.open_table(table).await? {
                Some(t) => Ok(t),
                None => Err(Error::Storage(format!("could not create table {table}"))),
            },
        }
    }
}

/// Turns a lake location into a URL: local paths are made absolute (and created).
fn parse_location(location: &str) -> Result<Url> {
    if let Some(rest) = location.strip_prefix("file://") {
        let path = Path::new(rest);
        return local_dir_url(path);
    }
    if location.contains("://") {
        let url = Url::parse(location)
            .map_err(|e| Error::Config(format!("invalid lake URL '{location}': {e}")))?;
        return Ok(url);
    }
    local_dir_url(Path::new(location))
}

fn local_dir_url(path: &Path) -> Result<Url> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    Url::from_directory_path(&canonical)
        .map_err(|_| Error::Config(format!("cannot turn {} into a URL", canonical.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_paths_become_file_urls_and_tables_nest_by_layer() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().join("lake").to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(lake.root().scheme(), "file");
        let url = lake
            .table_url(TableRef::new(Layer::Bronze, "adt_messages"))
            .unwrap();
        assert!(url.path().ends_with("/lake/bronze/adt_messages/"), "{url}");
        assert!(!lake.is_azure());
    }

    #[tokio::test]
    async fn unsupported_schemes_and_empty_locations_are_config_errors() {
        let err = Lake::open("s3://bucket/x").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported lake URL scheme 's3://'"),
            "{err}"
        );
        let err = Lake::open("  ").await.unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[tokio::test]
    async fn missing_tables_open_as_none_and_create_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let t = TableRef::new(Layer::Ops, "probe");
        assert!(lake.open_table(t).await.unwrap().is_none());
        let schema = ArrowSchema::new(vec![deltalake::arrow::datatypes::Field::new(
            "x",
            deltalake::arrow::datatypes::DataType::Int64,
            true,
        )]);
        let created = lake.open_or_create(t, &schema).await.unwrap();
        assert_eq!(created.version(), Some(0));
        let again = lake.open_or_create(t, &schema).await.unwrap();
        assert_eq!(again.version(), Some(0));
        let protocol = again.snapshot().unwrap().protocol().clone();
        assert_eq!(protocol.min_reader_version(), 1);
    }
}
