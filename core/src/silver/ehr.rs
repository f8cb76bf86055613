//! Step: new Bronze EHR extract rows → typed `silver_ehr_patients` / `silver_ehr_encounters`, findings →
//! quarantine. Extract rows are observations: patients feed the patient dimension, encounters reconcile
//! with the ADT picture (see `encounters.rs` for which source wins).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::StreamExt;

use super::adt_events::{format_date, ReferenceData};
use super::dq::checks::{check_birth_date, check_time, normalise_sex, TimeContext};
use super::dq::{rules, Finding};
use super::quarantine::QuarantineRow;
use super::schema_evolution;
use super::EHR_PATIENTS;
use crate::bronze;
use crate::sources::adt::time::TimeFormat;
use crate::storage::columns::{ints, names, strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{Increment, Lake};
use crate::{Error, Result};

/// Columns of a patients extract that are not patient attributes.
const PATIENT_NON_ATTRIBUTES: [&str; 4] = ["patient_id", "facility", "updated_at", "death_date"];

/// Columns of `silver_ehr_patients` that are not extra attributes.
const PATIENT_COLUMNS: [&str; 8] = [
    "patient_key",
    "hospital_id",
    "mrn",
    "effective_time",
    "demographics",
    "source_key",
    "ingested_at",
    "silver_run_id",
];

/// Renamed attributes: extract column → dimension attribute.
const PATIENT_RENAMES: [(&str, &str); 2] =
    [("first_name", "given_name"), ("last_name", "family_name")];

/// What an EHR increment produced.
#[derive(Debug, Default)]
pub struct EhrOutput {
    /// Rows read.
    pub rows_in: usize,
    /// Rows written.
    pub rows_out: usize,
    /// Findings to quarantine.
    pub quarantine: Vec<QuarantineRow>,
    /// Findings by rule id.
    pub findings: BTreeMap<&'static str, usize>,
}

/// One Bronze batch of an extract: every column as text, plus the lineage each row's findings carry.
struct ExtractRows {
    names: Vec<String>,
    cols: Vec<Vec<Option<String>>>,
    received: Vec<Option<DateTime<Utc>>>,
    row_numbers: Vec<Option<i64>>,
}

impl ExtractRows {
    fn read(batch: &deltalake::arrow::record_batch::RecordBatch) -> Result<Self> {
        let names = names(batch);
        let cols = names
            .iter()
            .map(|n| strings(batch, n))
            .collect::<Result<_>>()?;
        Ok(ExtractRows {
            names,
            cols,
            received: timestamps(batch, "_ingested_at")?,
            row_numbers: ints(batch, "_row_number")?,
        })
    }

    /// Row `i`'s value of column `name`.
    fn get(&self, name: &str, i: usize) -> Option<String> {
        let c = self.names.iter().position(|n| n == name)?;
        self.cols[c][i].clone()
    }

    /// Where row `i` came from, for its findings.
    fn context(&self, i: usize) -> RowContext {
        let file = self.get("_source_file", i);
        RowContext {
            key: format!(
                "{}:{}",
                file.clone().unwrap_or_default(),
                self.row_numbers[i].unwrap_or_default()
            ),
            file,
            row: self.row_numbers[i],
            raw: row_json(&self.names, &self.cols, i),
        }
    }
}

struct RowContext {
    key: String,
    file: Option<String>,
    row: Option<i64>,
    raw: String,
}

impl RowContext {
    fn finding(&self, table: &str, f: Finding, action: &'static str, out: &mut EhrOutput) {
        *out.findings.entry(f.rule.id).or_default() += 1;
        out.quarantine.push(QuarantineRow {
            source_table: table.to_string(),
            source_key: self.key.clone(),
            finding: f,
            action,
            raw_record: (action == "quarantine").then(|| self.raw.clone()),
            source_name: self.file.clone(),
            source_position: self.row,
        });
    }
}

/// What an extract row's times are checked against for "in the future": the end of the day after its
/// extract date (an extract cannot describe what had not happened), else when we received it.
fn reference_time(extract_date: Option<&str>, received: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let from_extract = extract_date
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.succ_opt()?.and_hms_opt(23, 59, 59))
        .map(|t| Utc.from_utc_datetime(&t));
    from_extract.or(received).unwrap_or_else(Utc::now)
}

/// The time zone of a hospital, or the row is rejected.
fn zone_of(refdata: &ReferenceData, facility: &Option<String>) -> Option<chrono_tz::Tz> {
    facility
        .as_ref()
        .and_then(|f| refdata.hospitals.get(f).copied())
}

/// The row's effective time: `updated_at`, else midnight of the extract date in the hospital's zone.
fn effective_time(
    updated: Option<&str>,
    extract_date: Option<&str>,
    ctx: &TimeContext,
    rc: &RowContext,
    table: &str,
    out: &mut EhrOutput,
) -> Option<DateTime<Utc>> {
    if let Some(raw) = updated {
        match check_time("updated_at", raw, ctx, &rules::TIME_PLACEHOLDER) {
            Ok(t) => {
                for f in t.findings {
                    rc.finding(table, f, "repair", out);
                }
                return Some(t.utc);
            }
            Err(f) => rc.finding(table, f, "drop_attribute", out),
        }
    }
    let date = NaiveDate::parse_from_str(extract_date?, "%Y-%m-%d").ok()?;
    ctx.zone
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

async fn stream_rows(
    inc: &Increment,
    mut each: impl FnMut(&deltalake::arrow::record_batch::RecordBatch) -> Result<()>,
) -> Result<()> {
    if inc.is_empty() {
        return Ok(());
    }
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    inc.register(&ctx, "input").await?;
    let df = ctx
        .sql("SELECT * FROM input")
        .await
        .map_err(|e| Error::Query(e.to_string()))?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| Error::Query(e.to_string()))?;
    while let Some(batch) = stream.next().await {
        each(&batch.map_err(|e| Error::Query(e.to_string()))?)?;
    }
    Ok(())
}

fn row_json(names: &[String], cols: &[Vec<Option<String>>], i: usize) -> String {
    let map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(cols)
        .filter_map(|(n, c)| {
            c[i].as_ref()
                .map(|v| (n.clone(), serde_json::Value::String(v.clone())))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Types the new patient rows of the increment.
pub async fn patients(
    inc: &Increment,
    refdata: &ReferenceData,
    run_id: &str,
    out: &mut EhrOutput,
) -> Result<RowsBuilder> {
    let table = bronze::EHR_PATIENTS.sql_name();
    let mut b = RowsBuilder::new();
    stream_rows(inc, |batch| {
        let rows = ExtractRows::read(batch)?;
        let (cols_names, cols, received) = (&rows.names, &rows.cols, &rows.received);
        let get = |n: &str, i: usize| rows.get(n, i);
        for i in 0..batch.num_rows() {
            out.rows_in += 1;
            let rc = rows.context(i);
            if let Some(issue) = get("_row_issue", i) {
                rc.finding(
                    &table,
                    Finding::new(&rules::EHR_ROW_INVALID, None, issue, None),
                    "quarantine",
                    out,
                );
                continue;
            }
            let (Some(mrn), facility) = (get("patient_id", i), get("facility", i)) else {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::EHR_ROW_INVALID,
                        Some("patient_id"),
                        "no patient_id",
                        None,
                    ),
                    "quarantine",
                    out,
                );
                continue;
            };
            let Some(zone) = zone_of(refdata, &facility) else {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::ADT_FACILITY_UNKNOWN,
                        Some("facility"),
                        "facility is not a hospital of the network",
                        facility.as_deref(),
                    ),
                    "quarantine",
                    out,
                );
                continue;
            };
            let hospital = facility.unwrap_or_default();
            let ctx = TimeContext {
                zone,
                received: reference_time(get("_extract_date", i).as_deref(), received[i]),
                standard: TimeFormat::Iso8601,
            };
            let Some(effective) = effective_time(
                get("updated_at", i).as_deref(),
                get("_extract_date", i).as_deref(),
                &ctx,
                &rc,
                &table,
                out,
            ) else {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::EHR_ROW_INVALID,
                        Some("updated_at"),
                        "no usable updated_at or extract date",
                        None,
                    ),
                    "quarantine",
                    out,
                );
                continue;
            };
            let mut demographics = BTreeMap::new();
            for (ci, name) in cols_names.iter().enumerate() {
                if name.starts_with('_') || PATIENT_NON_ATTRIBUTES.contains(&name.as_str()) {
                    continue;
                }
                let Some(value) = cols[ci][i].clone() else {
                    continue;
                };
                let attr = PATIENT_RENAMES
                    .iter()
                    .find(|(f, _)| f == name)
                    .map(|(_, t)| *t)
                    .unwrap_or(name);
                match attr {
                    "birth_date" => match check_birth_date(&value, effective) {
                        Ok(d) => {
                            demographics.insert(attr.to_string(), format_date(d));
                        }
                        Err(f) => rc.finding(&table, f, "drop_attribute", out),
                    },
                    "sex" => match normalise_sex(&value) {
                        Ok((code, repair)) => {
                            demographics.insert(attr.to_string(), code);
                            if let Some(f) = repair {
                                rc.finding(&table, f, "repair", out);
                            }
                        }
                        Err(f) => rc.finding(&table, f, "drop_attribute", out),
                    },
                    _ => {
                        demographics.insert(attr.to_string(), value);
                    }
                }
            }
            // The extra attributes also get columns of their own, as text here: `commit` types them.
            let extra: Vec<(&str, Cell)> = demographics
                .iter()
                .filter(|(k, _)| {
                    !super::patients::CORE.contains(&k.as_str())
                        && !PATIENT_COLUMNS.contains(&k.as_str())
                        && !k.starts_with('_')
                })
                .map(|(k, v)| (k.as_str(), Cell::str(Some(v.as_str()))))
                .collect();
            b.push_row(
                [
                    ("patient_key", Cell::str(Some(format!("{hospital}|{mrn}")))),
                    ("hospital_id", Cell::str(Some(hospital))),
                    ("mrn", Cell::str(Some(mrn))),
                    ("effective_time", Cell::ts(Some(effective))),
                    (
                        "demographics",
                        Cell::str(Some(
                            serde_json::to_string(&demographics).unwrap_or_default(),
                        )),
                    ),
                    ("source_key", Cell::str(Some(rc.key.clone()))),
                    ("ingested_at", Cell::ts(received[i])),
                    ("silver_run_id", Cell::str(Some(run_id))),
                ]
                .into_iter()
                .chain(extra),
            );
        }
        Ok(())
    })
    .await?;
    out.rows_out += b.len();
    Ok(b)
}

/// Types the new encounter rows of the increment.
pub async fn encounters(
    inc: &Increment,
    refdata: &ReferenceData,
    run_id: &str,
    out: &mut EhrOutput,
) -> Result<RowsBuilder> {
    let table = bronze::EHR_ENCOUNTERS.sql_name();
    let mut b = RowsBuilder::new();
    stream_rows(inc, |batch| {
        let rows = ExtractRows::read(batch)?;
        let get = |n: &str, i: usize| rows.get(n, i);
        for i in 0..batch.num_rows() {
            out.rows_in += 1;
            let rc = rows.context(i);
            if let Some(issue) = get("_row_issue", i) {
                rc.finding(
                    &table,
                    Finding::new(&rules::EHR_ROW_INVALID, None, issue, None),
                    "quarantine",
                    out,
                );
                continue;
            }
            let (Some(visit), Some(mrn)) = (get("encounter_id", i), get("patient_id", i)) else {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::EHR_ROW_INVALID,
                        Some("encounter_id"),
                        "no encounter_id or patient_id",
                        None,
                    ),
                    "quarantine",
                    out,
                );
                continue;
            };
            let facility = get("facility", i);
            let Some(zone) = zone_of(refdata, &facility) else {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::ADT_FACILITY_UNKNOWN,
                        Some("facility"),
                        "facility is not a hospital of the network",
                        facility.as_deref(),
                    ),
                    "quarantine",
                    out,
                );
                continue;
            };
            let hospital = facility.unwrap_or_default();
            let department = get("department", i);
            if let Some(d) = &department {
                if !refdata
                    .departments
                    .get(&hospital)
                    .is_some_and(|s| s.contains(d))
                {
                    rc.finding(
                        &table,
                        Finding::new(
                            &rules::DEPT_UNKNOWN,
                            Some("department"),
                            format!("department is not defined for {hospital}"),
                            Some(d),
                        ),
                        "quarantine",
                        out,
                    );
                    continue;
                }
            }
            let ctx = TimeContext {
                zone,
                received: reference_time(get("_extract_date", i).as_deref(), rows.received[i]),
                standard: TimeFormat::Iso8601,
            };
            let time = |field: &str, out: &mut EhrOutput| -> Option<DateTime<Utc>> {
                let raw = get(field, i)?;
                match check_time(field, &raw, &ctx, &rules::TIME_PLACEHOLDER) {
                    Ok(t) => {
                        for f in t.findings {
                            rc.finding(&table, f, "repair", out);
                        }
                        Some(t.utc)
                    }
                    Err(f) => {
                        rc.finding(&table, f, "drop_attribute", out);
                        None
                    }
                }
            };
            let arrival = time("arrival_time", out);
            let admit = time("admit_time", out);
            let mut discharge = time("discharge_time", out);
            if let (Some(a), Some(d)) = (admit.or(arrival), discharge) {
                if d < a {
                    rc.finding(
                        &table,
                        Finding::new(
                            &rules::TIME_DISCHARGE_BEFORE_ADMIT,
                            Some("discharge_time"),
                            "discharge before admission: left out",
                            get("discharge_time", i).as_deref(),
                        ),
                        "drop_attribute",
                        out,
                    );
                    discharge = None;
                }
            }
            let class = get("patient_class", i);
            if admit.is_none() && get("admit_time", i).is_none() && class.as_deref() == Some("I") {
                rc.finding(
                    &table,
                    Finding::new(
                        &rules::ADMIT_TIME_MISSING,
                        Some("admit_time"),
                        "inpatient row without admit time: the ADT A01 supplies it",
                        None,
                    ),
                    "repair",
                    out,
                );
            }
            let effective = effective_time(
                get("updated_at", i).as_deref(),
                get("_extract_date", i).as_deref(),
                &ctx,
                &rc,
                &table,
                out,
            );
            b.push_row([
                (
                    "encounter_key",
                    Cell::str(Some(format!("{hospital}|{visit}"))),
                ),
                ("hospital_id", Cell::str(Some(hospital.clone()))),
                ("visit_number", Cell::str(Some(visit))),
                ("patient_key", Cell::str(Some(format!("{hospital}|{mrn}")))),
                ("department", Cell::Str(department)),
                ("patient_class", Cell::Str(class)),
                ("arrival_time", Cell::ts(arrival)),
                ("admit_time", Cell::ts(admit)),
                ("discharge_time", Cell::ts(discharge)),
                ("effective_time", Cell::ts(effective)),
                ("source_key", Cell::str(Some(rc.key.clone()))),
                ("ingested_at", Cell::ts(rows.received[i])),
                ("silver_run_id", Cell::str(Some(run_id))),
            ]);
        }
        Ok(())
    })
    .await?;
    out.rows_out += b.len();
    Ok(b)
}

/// Writes typed rows with the increment's checkpoint in one commit: appended, or replacing the table
/// on a full refresh.
///
/// Patient rows: the extra attribute columns take the types `silver_ehr_patients` has for them (or,
/// when new, the narrowest type of their values, see `schema_evolution`); a column whose new values
/// need the allowed wider type is widened first (every row rewritten, recorded as `DQ-SCHEMA-WIDENED`
/// in quarantine), and a value that fits neither is null in its column and kept in `_rescued_data`
/// (the patient dimension raises its `DQ-SCHEMA-RESCUED` finding).
pub async fn commit(
    lake: &Lake,
    table: crate::storage::TableRef,
    rows: RowsBuilder,
    inc: &Increment,
    replace_all: bool,
) -> Result<()> {
    let markers = [inc.marker()];
    if rows.is_empty() {
        if replace_all {
            lake.truncate(table, &markers).await?;
        }
        lake.commit_markers(table, empty_schema(table), &markers)
            .await?;
        return Ok(());
    }
    let mut batch = rows.finish()?;
    if table == EHR_PATIENTS {
        let extra: Vec<String> = names(&batch)
            .into_iter()
            .filter(|n| !PATIENT_COLUMNS.contains(&n.as_str()))
            .collect();
        let current = schema_evolution::table_types(lake, table).await?;
        let typed = schema_evolution::type_columns(&batch, &extra, &current)?;
        if !typed.widened.is_empty() {
            record_widenings(lake, table, &typed.widened, &batch).await?;
            if !replace_all {
                schema_evolution::widen_table(lake, table, &typed.widened).await?;
            }
        }
        batch = typed.batch;
    }
    if replace_all {
        lake.overwrite(table, batch, &markers).await?;
    } else {
        lake.append(table, vec![batch], &markers, Default::default())
            .await?;
    }
    Ok(())
}

/// Records each widening of a `silver_ehr_patients` column in quarantine (once per column), under the
/// run that wrote `batch`, before the table changes: a crash in between repeats an idempotent write.
async fn record_widenings(
    lake: &Lake,
    table: crate::storage::TableRef,
    widened: &[schema_evolution::Widening],
    batch: &deltalake::arrow::record_batch::RecordBatch,
) -> Result<()> {
    let run_id = strings(batch, "silver_run_id")?
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
    let rows: Vec<QuarantineRow> = widened
        .iter()
        .map(|w| QuarantineRow {
            source_table: table.sql_name(),
            source_key: w.column.clone(),
            finding: Finding::new(
                &rules::SCHEMA_WIDENED,
                Some(w.column.as_str()),
                format!(
                    "column {} widened from {} to {}",
                    w.column,
                    w.from.name(),
                    w.to.name()
                ),
                Some(w.value.as_str()),
            ),
            action: rules::SCHEMA_WIDENED.action.as_str(),
            raw_record: None,
            source_name: None,
            source_position: None,
        })
        .collect();
    super::quarantine::write(lake, rows, &[], &run_id).await?;
    Ok(())
}

fn empty_schema(table: crate::storage::TableRef) -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let ts = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )
    };
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    if table == EHR_PATIENTS {
        Schema::new(vec![
            s("patient_key"),
            s("hospital_id"),
            s("mrn"),
            ts("effective_time"),
            s("demographics"),
            s("source_key"),
            ts("ingested_at"),
            s("silver_run_id"),
        ])
    } else {
        Schema::new(vec![
            s("encounter_key"),
            s("hospital_id"),
            s("visit_number"),
            s("patient_key"),
            s("department"),
            s("patient_class"),
            ts("arrival_time"),
            ts("admit_time"),
            ts("discharge_time"),
            ts("effective_time"),
            s("source_key"),
            ts("ingested_at"),
            s("silver_run_id"),
        ])
    }
}
