//! Crate-wide error type.

/// Result alias for the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the core library returns. Messages name the table, file or setting at fault and, where it helps,
/// the fix; they never contain patient data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lake URL or other setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Input could not be read as the format it claims to be.
    #[error("bad input {source_name}: {reason}")]
    Input { source_name: String, reason: String },
    /// Reading or writing the lake failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A Delta Lake operation failed.
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// A SQL query failed.
    #[error("query: {0}")]
    Query(String),
    /// File-system I/O failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a delta-rs error with the table it concerns.
    pub fn delta(table: impl Into<String>, source: deltalake::DeltaTableError) -> Self {
        Error::Delta {
            table: table.into(),
            source,
        }
    }

    /// An I/O error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
