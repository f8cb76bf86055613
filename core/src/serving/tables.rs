//! The inventory of the lake's tables: version, rows, files and schema of each.

use serde::Serialize;

use crate::storage::{Lake, TableRef};
use crate::{Error, Result};

/// Every table patientflow knows, in data-flow order, then the Ops tables (the run ledger).
pub fn known_tables() -> Vec<TableRef> {
    crate::bronze::TABLES
        .iter()
        .chain(crate::silver::TABLES.iter())
        .chain(crate::gold::TABLES.iter())
        .chain(crate::ops::TABLES.iter())
        .chain(std::iter::once(&crate::security::audit::SECURITY_AUDIT))
        .copied()
        .collect()
}

/// What `patientflow tables` shows of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// SQL name (`bronze_adt_messages`).
    pub name: String,
    /// Current Delta version; `None` when the table does not exist yet.
    pub version: Option<i64>,
    /// Rows, from the file statistics in the Delta log (no data is read).
    pub rows: Option<u64>,
    /// Data files.
    pub files: usize,
    /// Columns as `name: type`.
    pub columns: Vec<String>,
}

/// Describes every known table (missing ones with `version: None`).
pub async fn describe_all(lake: &Lake) -> Result<Vec<TableInfo>> {
    let mut out = Vec::new();
    for table in known_tables() {
        out.push(describe(lake, table).await?);
    }
    Ok(out)
}

/// Describes one table.
pub async fn describe(lake: &Lake, table: TableRef) -> Result<TableInfo> {
    let Some(delta) = lake.open_table(table).await? else {
        return Ok(TableInfo {
            name: table.sql_name(),
            version: None,
            rows: None,
            files: 0,
            columns: vec![],
        });
    };
    let snapshot = delta
        .snapshot()
        .map_err(|e| Error::delta(table.sql_name(), e))?;
    let mut rows = Some(0u64);
    let mut files = 0;
    for file in snapshot.log_data().iter() {
        files += 1;
        rows = match (rows, file.num_records()) {
            (Some(r), Some(n)) => Some(r + n as u64),
            _ => None,
        };
    }
    let columns = snapshot
        .schema()
        .fields()
        .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
        .collect();
    Ok(TableInfo {
        name: table.sql_name(),
        version: crate::storage::version_of(&delta),
        rows,
        files,
        columns,
    })
}

fn type_name(t: &deltalake::kernel::DataType) -> String {
    match t {
        deltalake::kernel::DataType::Primitive(p) => serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{p:?}")),
        other => format!("{other:?}").to_lowercase(),
    }
}
