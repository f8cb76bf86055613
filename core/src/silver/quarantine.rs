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
    let ids: Vec<String> = rows.iter().map(QuarantineRow::id).collect();
    let existing = existing_ids(lake, &ids).await?;
    let now = chrono::Utc::now();
    let mut seen = HashSet::new();
    let mut builder = RowsBuilder::new();
    for (r, id) in rows.into_iter().zip(ids) {
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

/// Which of `candidates` the quarantine table holds already. Nothing is read when there is no
/// candidate (most incremental steps), and a few candidates are looked up by id rather than by
/// reading every id of the table into memory.
async fn existing_ids(lake: &Lake, candidates: &[String]) -> Result<HashSet<String>> {
    /// Up to this many candidates go into an `IN` list.
    const LOOKUP_LIMIT: usize = 1_000;
    if candidates.is_empty() || lake.open_table(QUARANTINE).await?.is_none() {
        return Ok(HashSet::new());
    }
    let sql = if candidates.len() <= LOOKUP_LIMIT {
        let list: Vec<String> = candidates
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")))
            .collect();
        format!(
            "SELECT quarantine_id FROM silver_quarantine WHERE quarantine_id IN ({})",
            list.join(", ")
        )
    } else {
        "SELECT quarantine_id FROM silver_quarantine".to_string()
    };
    let wanted: HashSet<&str> = candidates.iter().map(String::as_str).collect();
    let mut out = HashSet::new();
    for b in lake.sql(&[QUARANTINE], &sql).await? {
        out.extend(
            strings(&b, "quarantine_id")?
                .into_iter()
                .flatten()
                .filter(|id| wanted.contains(id.as_str())),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::silver::dq::{rules, Finding};

    fn row(key: usize) -> QuarantineRow {
        QuarantineRow {
            source_table: "bronze_adt_messages".into(),
            source_key: format!("MHA01|M{key}"),
            finding: Finding::new(&rules::ADT_MRN_MISSING, Some("pid_3"), "no MRN", None),
            action: "quarantine",
            raw_record: Some(format!("MSH|...|M{key}")),
            source_name: None,
            source_position: Some(key as i64),
        }
    }

    async fn count(lake: &Lake) -> usize {
        lake.sql(&[QUARANTINE], "SELECT quarantine_id FROM silver_quarantine")
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum()
    }

    #[tokio::test]
    async fn a_finding_is_quarantined_once_whether_looked_up_by_id_or_by_reading_all_ids() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        assert_eq!(write(&lake, vec![], &[], "r0").await.unwrap(), 0);
        assert!(
            lake.open_table(QUARANTINE).await.unwrap().is_none(),
            "nothing to write, nothing created"
        );
        assert_eq!(
            write(&lake, (0..3).map(row).collect(), &[], "r1")
                .await
                .unwrap(),
            3
        );
        // A few candidates: looked up by id. Two are there already, one is new, one comes twice.
        let again = vec![row(1), row(2), row(3), row(3)];
        assert_eq!(write(&lake, again, &[], "r2").await.unwrap(), 1);
        assert_eq!(count(&lake).await, 4);
        // More candidates than the lookup takes: every id is read, with the same outcome.
        let many: Vec<QuarantineRow> = (0..1_500).map(row).collect();
        assert_eq!(write(&lake, many, &[], "r3").await.unwrap(), 1_496);
        assert_eq!(count(&lake).await, 1_500);
        assert_eq!(
            write(&lake, (0..1_500).map(row).collect(), &[], "r4")
                .await
                .unwrap(),
            0
        );
        assert_eq!(count(&lake).await, 1_500);
    }
}
