//! Bronze: append-only, lossless, raw tables with lineage.
//!
//! Every accepted message or row is stored as it arrived, with where it came from (Event Hub partition,
//! sequence number, offset and enqueued time, or file name and position), when it was ingested and by
//! which run — even when it cannot be parsed, in which case it is flagged with the reason. Nothing here
//! is ever updated or deleted; replaying Bronze rebuilds Silver and Gold.
//!
//! Idempotency: an exact re-delivery (same message id, same content) is skipped and counted; the same
//! id with different content is kept and flagged as a conflict; a file whose exact content was already
//! ingested into a table is skipped as a whole (a `file:<sha256>` marker is committed with its rows).

pub mod adt;
pub mod charset;
pub mod ehr;
pub mod files;
pub mod profiles;
pub mod reference;
mod tabular;

use std::path::PathBuf;

use serde::Serialize;

use crate::storage::{Layer, TableRef};

/// Raw ADT messages (HL7 v2 and JSON), one row per message.
pub const ADT_MESSAGES: TableRef = TableRef::new(Layer::Bronze, "adt_messages");
/// Rows of EHR patient extracts.
pub const EHR_PATIENTS: TableRef = TableRef::new(Layer::Bronze, "ehr_patients");
/// Rows of EHR encounter extracts.
pub const EHR_ENCOUNTERS: TableRef = TableRef::new(Layer::Bronze, "ehr_encounters");
/// Department metadata rows (capacity, staffing, effective date).
pub const DEPARTMENTS: TableRef = TableRef::new(Layer::Bronze, "departments");
/// Hospital metadata rows.
pub const HOSPITALS: TableRef = TableRef::new(Layer::Bronze, "hospitals");

/// Every Bronze table.
pub const TABLES: [TableRef; 5] = [
    ADT_MESSAGES,
    EHR_PATIENTS,
    EHR_ENCOUNTERS,
    DEPARTMENTS,
    HOSPITALS,
];

/// What one ingest call did. Serialisable so the CLI, the HTTP handlers and the run ledger report it
/// the same way.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestReport {
    /// Identifier of this ingest run (also stored on every row it wrote).
    pub run_id: String,
    /// Inputs (files or events) looked at.
    pub inputs_seen: usize,
    /// Inputs whose rows were written.
    pub inputs_ingested: usize,
    /// Files skipped because their exact content was ingested before.
    pub inputs_already_ingested: usize,
    /// Files that were not for this table (e.g. a Synthea `providers.csv`) and were left alone.
    pub inputs_not_applicable: Vec<String>,
    /// Rows written to Bronze, per table.
    pub rows_written: std::collections::BTreeMap<String, usize>,
    /// Messages skipped as exact re-deliveries (same id, same content).
    pub duplicates_skipped: usize,
    /// Messages kept but flagged: same id as an earlier message, different content.
    pub id_conflicts: usize,
    /// Rows kept but flagged as unparseable or irregular, with their reason.
    pub flagged_rows: usize,
    /// Inputs that could not be read at all (nothing of them was written), with the reason.
    pub errors: Vec<InputError>,
    /// Table versions after the run, per table written.
    pub versions: std::collections::BTreeMap<String, i64>,
}

impl IngestReport {
    /// Total rows written across tables.
    pub fn total_rows(&self) -> usize {
        self.rows_written.values().sum()
    }

    /// Adds another report's counts into this one (same run).
    pub fn absorb(&mut self, other: IngestReport) {
        self.inputs_seen += other.inputs_seen;
        self.inputs_ingested += other.inputs_ingested;
        self.inputs_already_ingested += other.inputs_already_ingested;
        self.inputs_not_applicable
            .extend(other.inputs_not_applicable);
        for (k, v) in other.rows_written {
            *self.rows_written.entry(k).or_default() += v;
        }
        self.duplicates_skipped += other.duplicates_skipped;
        self.id_conflicts += other.id_conflicts;
        self.flagged_rows += other.flagged_rows;
        self.errors.extend(other.errors);
        self.versions.extend(other.versions);
    }
}

/// An input that could not be ingested, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputError {
    /// File path or event description.
    pub input: String,
    /// One readable line.
    pub reason: String,
}

/// Where an ADT message came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lineage {
    /// `eventhub`, `file` or `http`.
    pub kind: LineageKind,
    /// File path, Event Hub name or request id.
    pub source_name: String,
    /// Event Hub partition id.
    pub partition: Option<String>,
    /// Event Hub sequence number.
    pub sequence_number: Option<i64>,
    /// Event Hub offset.
    pub offset: Option<String>,
    /// Event Hub enqueued time.
    pub enqueued_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// The kind of channel a message arrived on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LineageKind {
    /// An Event Hub event (Azure, or the local runtime's stand-in).
    #[default]
    EventHub,
    /// A file from a landing folder or container.
    File,
    /// An HTTP POST to the ingest endpoint.
    Http,
}

impl LineageKind {
    /// Stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            LineageKind::EventHub => "eventhub",
            LineageKind::File => "file",
            LineageKind::Http => "http",
        }
    }
}

/// A new run id: a sortable UTC timestamp plus a random suffix.
pub fn new_run_id(stage: &str) -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{stage}-{now}-{suffix}")
}

/// A file to ingest, read whole.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path as given (for lineage and messages).
    pub path: PathBuf,
    /// File contents.
    pub bytes: Vec<u8>,
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
