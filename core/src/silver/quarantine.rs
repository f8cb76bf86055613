//! The quarantine table: every record a rule rejected, and every attribute a rule left out, with the
//! rule, the reason, the lineage and the raw value. Writes are idempotent: each row's id is a hash of
//! the rule, the field and the source record, and ids already present are not written again.

use std::collections::{HashMap, HashSet};

use super::dq::rules::Rule;
use super::dq::Finding;
use super::QUARANTINE;
use crate::storage::columns::strings;
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{CommitMarker, Lake};
use crate::Result;

/// A finding with the record it concerns.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    /// Bronze/Silver table the record came from.
    pub source_table: String,
    /// The record's key there (message key, or `file:row`).
    pub source_key: String,
    /// The finding.
    pub finding: Finding,
    /// `quarantine` (the record) or `drop_attribute` (one field).
    pub action: &'static str,
    /// The whole raw record (message or row as JSON).
    pub raw_record: Option<String>,
    /// File or Event Hub name.
    pub source_name: Option<String>,
    /// Position in the source.
    pub source_position: Option<i64>,
}

impl QuarantineRow {
    /// The stable id of this row.
    pub fn id(&self) -> String {
        let field = self.finding.field.as_deref().unwrap_or("");
        crate::bronze::sha256_hex(
            format!(
                "{}\u{1}{}\u{1}{}\u{1}{}",
                self.finding.rule.id, field, self.source_table, self.source_key
            )
            .as_bytes(),
        )[..32]
            .to_string()
    }
}

/// Writes quarantine rows not already present, with `markers`, in one commit. Returns rows written.
pub async fn write(
    lake: &Lake,
    rows: Vec<QuarantineRow>,
    markers: &[CommitMarker],
    run_id: &str,
) -> Result<usize> {
    let existing = existing_ids(lake).await?;
    let now = chrono::Utc::now();
    let mut seen = HashSet::new();
    let mut builder = RowsBuilder::new();
    for r in rows {
        let id = r.id();
        if existing.contains(&id) || !seen.insert(id.clone()) {
            continue;
        }
        builder.push_row([
            ("quarantine_id", Cell::Str(Some(id))),
            ("run_id", Cell::str(Some(run_id))),
            ("quarantined_at", Cell::ts(Some(now))),
            ("source_table", Cell::Str(Some(r.source_table))),
            ("source_key", Cell::Str(Some(r.source_key))),
            ("rule_id", Cell::str(Some(r.finding.rule.id))),
            (
                "severity",
                Cell::str(Some(if r.action == "quarantine" {
                    "error"
                } else {
                    r.finding.rule.severity.as_str()
                })),
            ),
            ("action", Cell::str(Some(r.action))),
            ("field", Cell::Str(r.finding.field)),
            ("reason", Cell::Str(Some(r.finding.reason))),
            ("raw_value", Cell::Str(r.finding.raw_value)),
            ("raw_record", Cell::Str(r.raw_record)),
            ("source_name", Cell::Str(r.source_name)),
            ("source_position", Cell::Int(r.source_position)),
        ]);
    }
    let n = builder.len();
    if n == 0 && markers.is_empty() {
        return Ok(0);
    }
    if n == 0 {
        // Nothing new to quarantine, but the checkpoint must move: commit the markers with no rows.
        lake.commit_markers(QUARANTINE, quarantine_schema(), markers)
            .await?;
        return Ok(0);
    }
    let batch = builder.finish()?;
    lake.append(QUARANTINE, vec![batch], markers, HashMap::new())
        .await?;
    Ok(n)
}

/// Withdraws the findings of `rule` on re-judged records that the new judgement no longer raises
/// (`current`): a rule whose verdict depends on other records (the patient's whole history) may
/// clear a record when the records it was waiting for arrive. `rejudged` lists the
/// `(source table, source key)` of the records judged again; `all` means every record was. The
/// withdrawal is one Delta delete, so the table's history still shows the finding and when it went.
/// Returns the rows withdrawn.
pub async fn withdraw_stale(
    lake: &Lake,
    rule: &'static Rule,
    rejudged: &[(String, String)],
    all: bool,
    current: &[QuarantineRow],
) -> Result<usize> {
    let Some(table) = lake.open_table(QUARANTINE).await? else {
        return Ok(0);
    };
    if !all && rejudged.is_empty() {
        return Ok(0);
    }
    let keep: HashSet<String> = current
        .iter()
        .filter(|r| r.finding.rule.id == rule.id)
        .map(QuarantineRow::id)
        .collect();
    let rejudged: HashSet<(&str, &str)> = rejudged
        .iter()
        .map(|(t, k)| (t.as_str(), k.as_str()))
        .collect();
    let sql = format!(
        "SELECT quarantine_id, source_table, source_key FROM silver_quarantine WHERE rule_id = '{}'",
        rule.id
    );
    let mut stale = Vec::new();
    for b in lake.sql(&[QUARANTINE], &sql).await? {
        let id = strings(&b, "quarantine_id")?;
        let table = strings(&b, "source_table")?;
        let key = strings(&b, "source_key")?;
        for i in 0..b.num_rows() {
            let (Some(id), Some(t), Some(k)) = (&id[i], &table[i], &key[i]) else {
                continue;
            };
            if !keep.contains(id) && (all || rejudged.contains(&(t.as_str(), k.as_str()))) {
                stale.push(id.clone());
            }
        }
    }
    if stale.is_empty() {
        return Ok(0);
    }
    let list = stale
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    lake.delete_where(
        QUARANTINE,
        table,
        &format!("quarantine_id IN ({list})"),
        &[],
    )
    .await?;
    Ok(stale.len())
}

async fn existing_ids(lake: &Lake) -> Result<HashSet<String>> {
    if lake.open_table(QUARANTINE).await?.is_none() {
        return Ok(HashSet::new());
    }
    let batches = lake
        .sql(&[QUARANTINE], "SELECT quarantine_id FROM silver_quarantine")
        .await?;
    let mut out = HashSet::new();
    for b in batches {
        out.extend(strings(&b, "quarantine_id")?.into_iter().flatten());
    }
    Ok(out)
}

/// The quarantine table's schema (for creating it empty).
pub fn quarantine_schema() -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Schema::new(vec![
        s("quarantine_id"),
        s("run_id"),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        s("source_table"),
        s("source_key"),
        s("rule_id"),
        s("severity"),
        s("action"),
        s("field"),
        s("reason"),
        s("raw_value"),
        s("raw_record"),
        s("source_name"),
        Field::new("source_position", DataType::Int64, true),
    ])
}
