//! Step: new Bronze ADT messages → `silver_adt_events`, findings → quarantine.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::adt_events::{type_row, BronzeAdtRow, CharsetReading, ReferenceData, Typed, TypedEvent};
use super::dq::Finding;
use super::quarantine::QuarantineRow;
use super::ADT_EVENTS;
use crate::bronze;
use crate::storage::columns::{bools, ints, strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{Increment, Lake};
use crate::{Error, Result};

/// The typed result of an increment of Bronze ADT messages.
#[derive(Debug, Default)]
pub struct TypedIncrement {
    /// Events to apply.
    pub events: Vec<TypedEvent>,
    /// Rejections and left-out attributes.
    pub quarantine: Vec<QuarantineRow>,
    /// Every finding (for the DQ report), by rule id.
    pub findings: BTreeMap<&'static str, usize>,
    /// Messages read.
    pub rows_in: usize,
    /// Messages not applicable (not patient-flow ADT).
    pub not_applied: usize,
}

/// Types every message of the increment. Reads Bronze as a stream, so payloads are not all in memory.
pub async fn type_increment(inc: &Increment, refdata: &ReferenceData) -> Result<TypedIncrement> {
    let mut out = TypedIncrement::default();
    if inc.is_empty() {
        return Ok(out);
    }
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    inc.register(&ctx, "input").await?;
    // A Bronze table written before the charset columns existed has none: read them as null.
    let has_charset = ctx
        .table("input")
        .await
        .map_err(|e| Error::Query(e.to_string()))?
        .schema()
        .has_column_with_unqualified_name("charset_issue");
    let charset = if has_charset {
        "declared_charset, charset_issue"
    } else {
        "CAST(NULL AS VARCHAR) AS declared_charset, CAST(NULL AS VARCHAR) AS charset_issue"
    };
    let df = ctx
        .sql(&format!(
            "SELECT message_key, format, parse_status, parse_error, id_conflict, payload, payload_sha256, \
             source_name, source_position, ingested_at, eh_partition, eh_offset, {charset} FROM input"
        ))
        .await
        .map_err(|e| Error::Query(e.to_string()))?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| Error::Query(e.to_string()))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| Error::Query(e.to_string()))?;
        let key = strings(&batch, "message_key")?;
        let format = strings(&batch, "format")?;
        let status = strings(&batch, "parse_status")?;
        let error = strings(&batch, "parse_error")?;
        let conflict = bools(&batch, "id_conflict")?;
        let payload = strings(&batch, "payload")?;
        let sha = strings(&batch, "payload_sha256")?;
        let source = strings(&batch, "source_name")?;
        let position = ints(&batch, "source_position")?;
        let ingested = timestamps(&batch, "ingested_at")?;
        let eh_partition = strings(&batch, "eh_partition")?;
        let eh_offset = strings(&batch, "eh_offset")?;
        let declared = strings(&batch, "declared_charset")?;
        let issue = strings(&batch, "charset_issue")?;
        for i in 0..batch.num_rows() {
            out.rows_in += 1;
            let row = BronzeAdtRow {
                message_key: key[i].clone().unwrap_or_default(),
                format: format[i].clone().unwrap_or_default(),
                parse_status: status[i].clone().unwrap_or_default(),
                parse_error: error[i].clone(),
                id_conflict: conflict[i].unwrap_or(false),
                payload: payload[i].clone().unwrap_or_default(),
                payload_sha256: sha[i].clone().unwrap_or_default(),
                source_name: source[i].clone().unwrap_or_default(),
                source_position: position[i].unwrap_or_default(),
                ingested_at: ingested[i].unwrap_or_default(),
                eh_partition: eh_partition[i].clone(),
                eh_offset: eh_offset[i].clone(),
                charset: issue[i].as_ref().map(|fields| CharsetReading {
                    declared: declared[i].clone(),
                    fields: fields.split(',').map(str::to_string).collect(),
                }),
            };
            match type_row(&row, refdata) {
                Typed::Event(event, findings) => {
                    for f in findings {
                        *out.findings.entry(f.rule.id).or_default() += 1;
                        let action = f.action().as_str();
                        out.quarantine.push(quarantine_row(&row, f, action));
                    }
                    out.events.push(*event);
                }
                Typed::NotApplied(f) => {
                    *out.findings.entry(f.rule.id).or_default() += 1;
                    out.not_applied += 1;
                }
                Typed::Rejected(f) => {
                    *out.findings.entry(f.rule.id).or_default() += 1;
                    out.quarantine.push(quarantine_row(&row, f, "quarantine"));
                }
            }
        }
    }
    Ok(out)
}

fn quarantine_row(row: &BronzeAdtRow, finding: Finding, action: &'static str) -> QuarantineRow {
    QuarantineRow {
        source_table: bronze::ADT_MESSAGES.sql_name(),
        // Messages sharing an id (a conflict) are told apart by their content hash.
        source_key: if row.id_conflict {
            format!(
                "{}@{}",
                row.message_key,
                &row.payload_sha256[..row.payload_sha256.len().min(16)]
            )
        } else {
            row.message_key.clone()
        },
        finding,
        action,
        raw_record: (action == "quarantine").then(|| row.payload.clone()),
        // An Event Hub event is found again by its partition and offset; a file's message by its
        // position in the file.
        source_name: Some(match (&row.eh_partition, &row.eh_offset) {
            (Some(p), Some(o)) if o.parse::<i64>().is_err() => {
                format!("{}/partition/{p}/offset/{o}", row.source_name)
            }
            (Some(p), _) => format!("{}/partition/{p}", row.source_name),
            _ => row.source_name.clone(),
        }),
        source_position: row
            .eh_offset
            .as_deref()
            .filter(|_| row.eh_partition.is_some())
            .and_then(|o| o.parse().ok())
            .or(Some(row.source_position)),
    }
}

/// Appends the typed events with the increment's checkpoint, in one commit.
pub async fn write_events(
    lake: &Lake,
    inc: &Increment,
    events: &[TypedEvent],
    run_id: &str,
    replace_all: bool,
) -> Result<usize> {
    let markers = [inc.marker()];
    if events.is_empty() && replace_all {
        lake.truncate(ADT_EVENTS, &markers).await?;
        return Ok(0);
    }
    if events.is_empty() {
        lake.commit_markers(ADT_EVENTS, events_schema(), &markers)
            .await?;
        return Ok(0);
    }
    let mut b = RowsBuilder::new();
    for e in events {
        b.push_row(event_cells(e, run_id));
    }
    let n = b.len();
    if replace_all {
        lake.overwrite(ADT_EVENTS, b.finish()?, &markers).await?;
    } else {
        lake.append(ADT_EVENTS, vec![b.finish()?], &markers, Default::default())
            .await?;
    }
    Ok(n)
}

fn event_cells<'a>(e: &'a TypedEvent, run_id: &'a str) -> Vec<(&'a str, Cell)> {
    vec![
        ("message_key", Cell::str(Some(e.message_key.clone()))),
        ("message_id", Cell::str(Some(e.message_id.clone()))),
        ("hospital_id", Cell::str(Some(e.hospital_id.clone()))),
        ("event_type", Cell::str(Some(e.event_type.clone()))),
        ("event_time", Cell::ts(Some(e.event_time))),
        ("recorded_time", Cell::ts(e.recorded_time)),
        ("patient_key", Cell::str(Some(e.patient_key.clone()))),
        ("mrn", Cell::str(Some(e.mrn.clone()))),
        ("encounter_key", Cell::Str(e.encounter_key.clone())),
        ("visit_number", Cell::Str(e.visit_number.clone())),
        ("patient_class", Cell::Str(e.patient_class.clone())),
        ("department", Cell::Str(e.department.clone())),
        ("room", Cell::Str(e.room.clone())),
        ("bed", Cell::Str(e.bed.clone())),
        ("prior_department", Cell::Str(e.prior_department.clone())),
        ("admit_time", Cell::ts(e.admit_time)),
        ("discharge_time", Cell::ts(e.discharge_time)),
        (
            "demographics",
            Cell::str(Some(
                serde_json::to_string(&e.demographics).unwrap_or_default(),
            )),
        ),
        ("source_name", Cell::str(Some(e.source_name.clone()))),
        ("source_position", Cell::Int(Some(e.source_position))),
        ("ingested_at", Cell::ts(Some(e.ingested_at))),
        ("silver_run_id", Cell::str(Some(run_id))),
    ]
}

/// The schema of `silver_adt_events`, for creating it empty.
pub fn events_schema() -> deltalake::arrow::datatypes::Schema {
    use chrono::TimeZone;
    let sample = TypedEvent {
        message_key: String::new(),
        message_id: String::new(),
        hospital_id: String::new(),
        event_type: String::new(),
        event_time: chrono::Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        recorded_time: None,
        patient_key: String::new(),
        mrn: String::new(),
        encounter_key: None,
        visit_number: None,
        patient_class: None,
        department: None,
        room: None,
        bed: None,
        prior_department: None,
        admit_time: None,
        discharge_time: None,
        demographics: BTreeMap::new(),
        source_name: String::new(),
        source_position: 0,
        ingested_at: chrono::Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
    };
    let mut b = RowsBuilder::new();
    b.push_row(event_cells(&sample, ""));
    match b.finish() {
        Ok(batch) => batch.schema().as_ref().clone(),
        Err(_) => deltalake::arrow::datatypes::Schema::empty(),
    }
}
