//! Bronze ingestion of tabular files (EHR extracts, reference data): CSV with any of the usual
//! delimiters, JSON arrays or NDJSON. Every source column is kept (mapped names for the columns a
//! profile maps, normalised names for the rest), plus lineage columns that start with `_`.

use std::collections::{BTreeMap, HashMap};

use super::files::{decode_text, expand_paths, read_input};
use super::profiles::{table_for_entity, EntityLayout, Profile};
use super::{sha256_hex, IngestReport, InputError};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{CommitMarker, Lake, TableRef};
use crate::Result;

/// Rows per table kept in memory before a commit.
const ROWS_PER_COMMIT: usize = 250_000;

/// One file's rows, ready for Bronze.
struct ParsedFile {
    table: TableRef,
    rows: Vec<Vec<(String, Cell)>>,
    flagged: usize,
}

/// Ingests tabular files with the first of `profiles` that recognises each file: its name matches one
/// of the profile's entity patterns and its columns include the entity's required ones.
pub async fn ingest(
    lake: &Lake,
    paths: &[String],
    profiles: &[Profile],
    run_id: &str,
    progress: &dyn Fn(&str, usize),
) -> Result<IngestReport> {
    let (files, errors) = expand_paths(paths);
    let mut report = IngestReport {
        run_id: run_id.to_string(),
        errors,
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let mut pending: BTreeMap<TableRef, (RowsBuilder, Vec<CommitMarker>)> = BTreeMap::new();
    let mut tables_open: HashMap<TableRef, Option<deltalake::DeltaTable>> = HashMap::new();
    for path in files {
        report.inputs_seen += 1;
        let display = path.display().to_string();
        let file = match read_input(&path) {
            Ok(f) => f,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        if file.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            report.errors.push(InputError {
                input: display,
                reason: "empty file: no row to ingest".into(),
            });
            continue;
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let file_hash = sha256_hex(&file.bytes);
        let (text, encoding) = decode_text(&file.bytes);
        let parsed = match parse_file(&file_name, &text, encoding, profiles) {
            Ok(Some(p)) => p,
            Ok(None) => {
                report.inputs_not_applicable.push(display);
                continue;
            }
            Err(reason) => {
                report.errors.push(InputError {
                    input: display,
                    reason,
                });
                continue;
            }
        };
        let marker_id = format!("file:{file_hash}");
        if let std::collections::hash_map::Entry::Vacant(slot) = tables_open.entry(parsed.table) {
            slot.insert(lake.open_table(parsed.table).await?);
        }
        let already = match tables_open.get(&parsed.table).and_then(|t| t.as_ref()) {
            Some(t) => lake.marker_version(t, &marker_id).await?.is_some(),
            None => false,
        };
        let (builder, markers) = pending.entry(parsed.table).or_default();
        if already || markers.iter().any(|m| m.app_id == marker_id) {
            report.inputs_already_ingested += 1;
            progress(&display, 0);
            continue;
        }
        let extract_date = extract_date(&file_name);
        let count = parsed.rows.len();
        for (i, row) in parsed.rows.into_iter().enumerate() {
            let mut cells: Vec<(&str, Cell)> =
                row.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            cells.push(("_source_file", Cell::Str(Some(display.clone()))));
            cells.push(("_row_number", Cell::Int(Some(i as i64 + 1))));
            cells.push(("_extract_date", Cell::Str(extract_date.clone())));
            cells.push(("_file_sha256", Cell::Str(Some(file_hash.clone()))));
            cells.push(("_ingested_at", Cell::Ts(Some(now.timestamp_micros()))));
            cells.push(("_run_id", Cell::Str(Some(run_id.to_string()))));
            builder.push_row(cells);
        }
        markers.push(CommitMarker {
            app_id: marker_id,
            version: 1,
        });
        report.flagged_rows += parsed.flagged;
        report.inputs_ingested += 1;
        progress(&display, count);
        if builder.len() >= ROWS_PER_COMMIT {
            let rows = std::mem::take(builder);
            let marks = std::mem::take(markers);
            commit(lake, parsed.table, rows, marks, &mut report).await?;
        }
    }
    for (table, (rows, markers)) in pending {
        commit(lake, table, rows, markers, &mut report).await?;
    }
    Ok(report)
}

async fn commit(
    lake: &Lake,
    table: TableRef,
    rows: RowsBuilder,
    markers: Vec<CommitMarker>,
    report: &mut IngestReport,
) -> Result<()> {
    if rows.is_empty() {
        // A file with a header and no rows still counts as ingested: mark it so a re-drop is a no-op.
        if markers.is_empty() || lake.open_table(table).await?.is_none() {
            return Ok(());
        }
    }
    let count = rows.len();
    let batch = rows.finish()?;
    let batches = if count > 0 { vec![batch] } else { Vec::new() };
    if batches.is_empty() {
        return Ok(());
    }
    let metadata = HashMap::from([
        (
            "patientflow.run_id".to_string(),
            serde_json::json!(report.run_id),
        ),
        (
            "patientflow.stage".to_string(),
            serde_json::json!(format!("bronze.{}", table.name)),
        ),
    ]);
    let version = lake.append(table, batches, &markers, metadata).await?;
    *report.rows_written.entry(table.sql_name()).or_default() += count;
    report.versions.insert(table.sql_name(), version);
    Ok(())
}

/// The first `YYYY-MM-DD` in a file name: the extract date of daily extracts.
fn extract_date(file_name: &str) -> Option<String> {
    let b = file_name.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let s = &file_name.get(i..i + 10)?;
        let ok = s.bytes().enumerate().all(|(j, c)| match j {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        });
        (ok && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()).then(|| s.to_string())
    })
}

/// Finds the profile and entity of a file and parses its rows. `Ok(None)`: no profile claims the file.
fn parse_file(
    file_name: &str,
    text: &str,
    encoding: &str,
    profiles: &[Profile],
) -> std::result::Result<Option<ParsedFile>, String> {
    let is_json = {
        let t = text.trim_start();
        t.starts_with('[') || t.starts_with('{')
    };
    let mut candidates = Vec::new();
    for profile in profiles {
        if let Some((entity, layout)) = profile.entity_for(file_name) {
            candidates.push((profile, entity, layout));
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut last_error = String::new();
    for (profile, entity, layout) in &candidates {
        let table = table_for_entity(entity).ok_or_else(|| {
            format!(
                "profile {} names an unknown entity '{entity}'",
                profile.name
            )
        })?;
        let parsed = if is_json {
            parse_json(text, layout)
        } else {
            parse_csv(text, layout)
        };
        match parsed {
            Ok((mut rows, flagged)) => {
                for row in &mut rows {
                    row.push((
                        "_source_profile".into(),
                        Cell::Str(Some(profile.name.clone())),
                    ));
                    row.push(("_encoding".into(), Cell::Str(Some(encoding.to_string()))));
                }
                return Ok(Some(ParsedFile {
                    table,
                    rows,
                    flagged,
                }));
            }
            // Report the first profile's reason: it is the one the file name matched best.
            Err(e) if last_error.is_empty() => {
                last_error = format!("{} (profile {})", e, profile.name)
            }
            Err(_) => {}
        }
    }
    Err(last_error)
}

type Rows = Vec<Vec<(String, Cell)>>;

/// Picks the delimiter that splits the header line into the most fields (outside quotes).
fn detect_delimiter(header_line: &str) -> u8 {
    let candidates = [b',', b';', b'\t', b'|'];
    let mut best = (b',', 0usize);
    for d in candidates {
        let mut in_quotes = false;
        let mut n = 0;
        for c in header_line.bytes() {
            if c == b'"' {
                in_quotes = !in_quotes;
            } else if c == d && !in_quotes {
                n += 1;
            }
        }
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

fn parse_csv(text: &str, layout: &EntityLayout) -> std::result::Result<(Rows, usize), String> {
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = detect_delimiter(header_line);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(format!("unreadable CSV header: {e}")),
        None => return Err("no header row".into()),
    };
    let names = unique_names(header.iter().map(|h| layout.target_name(h)).collect());
    let missing: Vec<&String> = layout
        .required
        .iter()
        .filter(|r| !names.contains(r))
        .collect();
    if !missing.is_empty() {
        let shown = if delimiter == b'\t' {
            "tab".to_string()
        } else {
            (delimiter as char).to_string()
        };
        return Err(format!(
            "required column(s) {} missing; the header read with delimiter '{shown}' gives {} column(s): {}{}",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            names.len(),
            names.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
            if names.len() == 1 { " — is the file delimited by another character?" } else { "" },
        ));
    }
    let mut rows = Vec::new();
    let mut flagged = 0;
    for (i, record) in records.enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                // Keep what the reader could not split, flagged, rather than dropping it.
                flagged += 1;
                rows.push(vec![(
                    "_row_issue".to_string(),
                    Cell::Str(Some(format!("unreadable CSV row {}: {e}", i + 1))),
                )]);
                continue;
            }
        };
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue;
        }
        let mut row: Vec<(String, Cell)> = Vec::with_capacity(names.len() + 2);
        for (name, value) in names.iter().zip(record.iter()) {
            let v = (!value.is_empty()).then(|| value.to_string());
            row.push((name.clone(), Cell::Str(v)));
        }
        if record.len() != names.len() {
            flagged += 1;
            let issue = if record.len() > names.len() {
                let extra: Vec<&str> = record.iter().skip(names.len()).collect();
                row.push((
                    "_extra_fields".into(),
                    Cell::Str(Some(serde_json::json!(extra).to_string())),
                ));
                format!(
                    "row has {} fields, the header {}; extra fields kept in _extra_fields",
                    record.len(),
                    names.len()
                )
            } else {
                format!(
                    "row has {} fields, the header {}; missing fields are null",
                    record.len(),
                    names.len()
                )
            };
            row.push(("_row_issue".into(), Cell::Str(Some(issue))));
        }
        rows.push(row);
    }
    Ok((rows, flagged))
}

fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    names
        .into_iter()
        .map(|n| {
            let count = seen.entry(n.clone()).or_default();
            *count += 1;
            if *count == 1 {
                n
            } else {
                format!("{n}_{count}")
            }
        })
        .collect()
}

fn parse_json(text: &str, layout: &EntityLayout) -> std::result::Result<(Rows, usize), String> {
    let values: Vec<std::result::Result<serde_json::Value, String>> =
        if text.trim_start().starts_with('[') {
            match serde_json::from_str::<Vec<serde_json::Value>>(text) {
                Ok(v) => v.into_iter().map(Ok).collect(),
                Err(e) => return Err(format!("malformed JSON array: {e}")),
            }
        } else {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(|e| format!("malformed JSON line: {e}")))
                .collect()
        };
    let mut rows = Vec::new();
    let mut flagged = 0;
    for value in values {
        match value {
            Ok(serde_json::Value::Object(map)) => {
                let mut row = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let s = match v {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s),
                        other => Some(other.to_string()),
                    };
                    row.push((layout.target_name(&k), Cell::Str(s)));
                }
                rows.push(row);
            }
            Ok(other) => {
                flagged += 1;
                rows.push(vec![
                    (
                        "_row_issue".into(),
                        Cell::Str(Some("JSON value is not an object".into())),
                    ),
                    ("_raw".into(), Cell::Str(Some(other.to_string()))),
                ]);
            }
            Err(reason) => {
                flagged += 1;
                rows.push(vec![("_row_issue".into(), Cell::Str(Some(reason)))]);
            }
        }
    }
    if rows
        .iter()
        .all(|r| r.iter().any(|(k, _)| k == "_row_issue"))
        && !rows.is_empty()
    {
        return Err("no JSON object in the file".into());
    }
    let names: Vec<&String> = rows.iter().flatten().map(|(k, _)| k).collect();
    let missing: Vec<&String> = layout
        .required
        .iter()
        .filter(|r| !names.contains(r))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "required field(s) {} missing from every JSON object",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok((rows, flagged))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patients_layout() -> EntityLayout {
        Profile::builtin_ehr()[0]
            .entity_for("patients_2026-01-01.csv")
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn delimiters_are_detected_and_ragged_rows_flagged_not_dropped() {
        let text = "patient_id;facility;first_name\nP1;H1;Ann\nP2;H1;Bo;extra\nP3;H1\n";
        let (rows, flagged) = parse_csv(text, &patients_layout()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(flagged, 2);
        assert!(rows[1].iter().any(|(k, _)| k == "_extra_fields"));
        assert!(rows[2].iter().any(|(k, v)| k == "_row_issue"
            && matches!(v, Cell::Str(Some(s)) if s.contains("missing fields are null"))));
    }

    #[test]
    fn an_unknown_delimiter_is_a_clear_error() {
        let err = parse_csv("patient_id#facility\nP1#H1\n", &patients_layout()).unwrap_err();
        assert!(err.contains("another character"), "{err}");
    }

    #[test]
    fn extract_dates_come_from_file_names() {
        assert_eq!(
            extract_date("patients_2026-01-31.csv").as_deref(),
            Some("2026-01-31")
        );
        assert_eq!(extract_date("patients_2026-02-31.csv"), None);
        assert_eq!(extract_date("patients.csv"), None);
    }
}
