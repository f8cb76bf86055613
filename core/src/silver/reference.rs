//! Hospitals and the department dimension (SCD Type 2) from Bronze reference rows.
//!
//! Reference data is small, so both tables are rebuilt whole whenever Bronze's reference tables move;
//! the department history is rebuilt from every department row ever received, so a late capacity change
//! lands in the middle of the history.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::adt_events::ReferenceData;
use super::dq::{rules, Finding};
use super::quarantine::QuarantineRow;
use super::scd2::{build_history, Observation};
use super::{DIM_DEPARTMENT, HOSPITALS};
use crate::bronze;
use crate::storage::columns::{ints, strings};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{CommitMarker, Lake};
use crate::Result;

/// Tracked department attributes, in column order; counts are integers.
const DEPT_TEXT: [&str; 2] = ["department_name", "department_type"];
const DEPT_COUNTS: [&str; 4] = ["licensed_beds", "staffed_beds", "nurses", "physicians"];

/// What the reference step produced.
#[derive(Debug, Default)]
pub struct ReferenceOutput {
    /// Rows rejected.
    pub quarantine: Vec<QuarantineRow>,
    /// Bronze rows read.
    pub rows_in: usize,
    /// Rows written.
    pub rows_out: usize,
}

/// Rebuilds `silver_hospitals` and `silver_dim_department` when Bronze's reference tables changed.
pub async fn refresh(lake: &Lake, full: bool, out: &mut ReferenceOutput) -> Result<()> {
    let hospitals_in = lake
        .open_table(bronze::HOSPITALS)
        .await?
        .and_then(|t| crate::storage::version_of(&t));
    let departments_in = lake
        .open_table(bronze::DEPARTMENTS)
        .await?
        .and_then(|t| crate::storage::version_of(&t));
    let hosp_done = lake.checkpoint(HOSPITALS, bronze::HOSPITALS).await?;
    let dept_done = lake.checkpoint(DIM_DEPARTMENT, bronze::DEPARTMENTS).await?;
    let dept_hosp_done = lake.checkpoint(DIM_DEPARTMENT, bronze::HOSPITALS).await?;
    let hospitals_changed = hospitals_in.is_some() && (full || hosp_done != hospitals_in);
    let departments_changed = departments_in.is_some()
        && (full || dept_done != departments_in || dept_hosp_done != hospitals_in);
    if !hospitals_changed && !departments_changed {
        return Ok(());
    }
    let zones = read_hospitals(lake, out).await?;
    if hospitals_changed {
        let mut b = RowsBuilder::new();
        for (id, h) in &zones {
            b.push_row([
                ("hospital_id", Cell::str(Some(id.clone()))),
                ("name", Cell::Str(h.name.clone())),
                ("city", Cell::Str(h.city.clone())),
                ("state", Cell::Str(h.state.clone())),
                ("time_zone", Cell::str(Some(h.zone.name()))),
                (
                    "mrn_assigning_authority",
                    Cell::Str(h.mrn_assigning_authority.clone()),
                ),
            ]);
        }
        out.rows_out += b.len();
        let markers = vec![CommitMarker {
            app_id: crate::storage::checkpoint_id(bronze::HOSPITALS),
            version: hospitals_in.unwrap_or(-1),
        }];
        if b.is_empty() {
            lake.commit_markers(HOSPITALS, hospitals_schema(), &markers)
                .await?;
        } else {
            lake.overwrite(HOSPITALS, b.finish()?, &markers).await?;
        }
    }
    if departments_changed {
        let zones: HashMap<String, Tz> = zones.iter().map(|(k, v)| (k.clone(), v.zone)).collect();
        let batch = department_dimension(lake, &zones, out).await?;
        let mut markers = vec![CommitMarker {
            app_id: crate::storage::checkpoint_id(bronze::DEPARTMENTS),
            version: departments_in.unwrap_or(-1),
        }];
        if let Some(v) = hospitals_in {
            markers.push(CommitMarker {
                app_id: crate::storage::checkpoint_id(bronze::HOSPITALS),
                version: v,
            });
        }
        match batch {
            Some(batch) => {
                out.rows_out += batch.num_rows();
                lake.overwrite(DIM_DEPARTMENT, batch, &markers).await?;
            }
            // No valid department row yet: no dimension to write, but the rows read are done (their
            // findings go out), so the checkpoint moves and the next run does not read them again.
            None => {
                lake.commit_markers(DIM_DEPARTMENT, department_schema(), &markers)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The hospitals table's columns, for committing a checkpoint before any row exists.
fn hospitals_schema() -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    Schema::new(
        [
            "hospital_id",
            "name",
            "city",
            "state",
            "time_zone",
            "mrn_assigning_authority",
        ]
        .map(|n| Field::new(n, DataType::Utf8, true))
        .to_vec(),
    )
}

/// The department dimension's columns, for committing a checkpoint before any row exists.
fn department_schema() -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let mut fields = vec![
        Field::new("department_sk", DataType::Int64, true),
        Field::new("department_key", DataType::Utf8, true),
        Field::new("hospital_id", DataType::Utf8, true),
        Field::new("department_code", DataType::Utf8, true),
    ];
    fields.extend(
        DEPT_TEXT
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true)),
    );
    fields.extend(
        DEPT_COUNTS
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true)),
    );
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    fields.extend([
        Field::new("valid_from", ts.clone(), true),
        Field::new("valid_to", ts, true),
        Field::new("is_current", DataType::Boolean, true),
        Field::new("status", DataType::Utf8, true),
    ]);
    Schema::new(fields)
}

struct Hospital {
    name: Option<String>,
    city: Option<String>,
    state: Option<String>,
    zone: Tz,
    /// The assigning authority (PID-3 CX.4) whose MR-typed identifier is the hospital's MRN.
    mrn_assigning_authority: Option<String>,
}

/// The latest row per hospital id (by ingest order), with a valid zone.
async fn read_hospitals(
    lake: &Lake,
    out: &mut ReferenceOutput,
) -> Result<BTreeMap<String, Hospital>> {
    let mut result = BTreeMap::new();
    if lake.open_table(bronze::HOSPITALS).await?.is_none() {
        return Ok(result);
    }
    let batches = lake
        .sql(
            &[bronze::HOSPITALS],
            "SELECT * FROM bronze_hospitals ORDER BY _ingested_at, _source_file, _row_number",
        )
        .await?;
    for b in batches {
        let id = strings(&b, "hospital_id")?;
        let tz = strings(&b, "time_zone")?;
        let name = strings(&b, "name")?;
        let city = strings(&b, "city")?;
        let state = strings(&b, "state")?;
        // Optional: hospital files without the column read as "not configured".
        let authority = strings(&b, "mrn_assigning_authority")?;
        let file = strings(&b, "_source_file")?;
        let row = ints(&b, "_row_number")?;
        for i in 0..b.num_rows() {
            out.rows_in += 1;
            let key = format!(
                "{}:{}",
                file[i].clone().unwrap_or_default(),
                row[i].unwrap_or_default()
            );
            let reject = |reason: &str, raw: Option<&str>| QuarantineRow {
                source_table: bronze::HOSPITALS.sql_name(),
                source_key: key.clone(),
                finding: Finding::new(&rules::REF_ROW_INVALID, None, reason, raw),
                action: "quarantine",
                raw_record: None,
                source_name: file[i].clone(),
                source_position: row[i],
            };
            let Some(hid) = id[i].clone() else {
                out.quarantine
                    .push(reject("hospital row without hospital_id", None));
                continue;
            };
            let zone = match tz[i].as_deref().map(|z| z.parse::<Tz>()) {
                Some(Ok(z)) => z,
                _ => {
                    out.quarantine.push(reject(
                        "unknown or missing IANA time zone",
                        tz[i].as_deref(),
                    ));
                    continue;
                }
            };
            result.insert(
                hid,
                Hospital {
                    name: name[i].clone(),
                    city: city[i].clone(),
                    state: state[i].clone(),
                    zone,
                    mrn_assigning_authority: authority[i]
                        .as_deref()
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                },
            );
        }
    }
    Ok(result)
}

async fn department_dimension(
    lake: &Lake,
    zones: &HashMap<String, Tz>,
    out: &mut ReferenceOutput,
) -> Result<Option<deltalake::arrow::record_batch::RecordBatch>> {
    let mut observations: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
    if lake.open_table(bronze::DEPARTMENTS).await?.is_some() {
        let batches = lake
            .sql(&[bronze::DEPARTMENTS], "SELECT * FROM bronze_departments")
            .await?;
        for b in batches {
            let hospital = strings(&b, "hospital_id")?;
            let code = strings(&b, "department_code")?;
            let effective = strings(&b, "effective_date")?;
            let file = strings(&b, "_source_file")?;
            let row = ints(&b, "_row_number")?;
            let ingested = crate::storage::columns::timestamps(&b, "_ingested_at")?;
            let mut texts: Vec<(&str, Vec<Option<String>>)> = Vec::new();
            for c in DEPT_TEXT.iter().chain(DEPT_COUNTS.iter()) {
                texts.push((*c, strings(&b, c)?));
            }
            for i in 0..b.num_rows() {
                out.rows_in += 1;
                let key = format!(
                    "{}:{}",
                    file[i].clone().unwrap_or_default(),
                    row[i].unwrap_or_default()
                );
                let reject = |reason: String, raw: Option<&str>| QuarantineRow {
                    source_table: bronze::DEPARTMENTS.sql_name(),
                    source_key: key.clone(),
                    finding: Finding::new(&rules::REF_ROW_INVALID, None, reason, raw),
                    action: "quarantine",
                    raw_record: None,
                    source_name: file[i].clone(),
                    source_position: row[i],
                };
                let (Some(h), Some(c)) = (hospital[i].clone(), code[i].clone()) else {
                    out.quarantine.push(reject(
                        "department row without hospital_id or department_code".into(),
                        None,
                    ));
                    continue;
                };
                let Some(zone) = zones.get(&h) else {
                    out.quarantine.push(reject(
                        format!("hospital {h} is not in the hospital metadata"),
                        Some(&h),
                    ));
                    continue;
                };
                let date = effective[i]
                    .as_deref()
                    .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
                let Some(date) = date else {
                    out.quarantine.push(reject(
                        "effective_date missing or not YYYY-MM-DD".into(),
                        effective[i].as_deref(),
                    ));
                    continue;
                };
                let mut attrs = BTreeMap::new();
                let mut bad = None;
                for (name, values) in &texts {
                    if let Some(v) = values[i]
                        .as_deref()
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                    {
                        if DEPT_COUNTS.contains(name) && v.parse::<u32>().is_err() {
                            bad = Some((name.to_string(), v.to_string()));
                        }
                        attrs.insert(name.to_string(), v.to_string());
                    }
                }
                if let Some((name, v)) = bad {
                    out.quarantine.push(reject(
                        format!("{name} is not a non-negative whole number"),
                        Some(&v),
                    ));
                    continue;
                }
                let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
                let effective_utc = match zone.from_local_datetime(&midnight).earliest() {
                    Some(t) => t.with_timezone(&Utc),
                    None => Utc.from_utc_datetime(&midnight),
                };
                let dept_key = format!("{h}|{c}");
                observations
                    .entry(dept_key.clone())
                    .or_default()
                    .push(Observation {
                        key: dept_key,
                        effective: effective_utc,
                        sequence: format!(
                            "{}|{}",
                            ingested[i]
                                .map(|t| t.timestamp_micros())
                                .unwrap_or_default(),
                            key
                        ),
                        attrs,
                    });
            }
        }
    }
    let mut b = RowsBuilder::new();
    for (key, obs) in &observations {
        let (hospital, code) = key.split_once('|').unwrap_or((key, ""));
        for v in build_history(key, obs) {
            let mut cells: Vec<(&str, Cell)> = vec![
                ("department_sk", Cell::Int(Some(v.surrogate_key))),
                ("department_key", Cell::str(Some(key.clone()))),
                ("hospital_id", Cell::str(Some(hospital))),
                ("department_code", Cell::str(Some(code))),
            ];
            for name in DEPT_TEXT {
                cells.push((name, Cell::Str(v.attrs.get(name).cloned())));
            }
            for name in DEPT_COUNTS {
                cells.push((
                    name,
                    Cell::Int(v.attrs.get(name).and_then(|x| x.parse().ok())),
                ));
            }
            cells.push(("valid_from", Cell::ts(Some(v.valid_from))));
            cells.push(("valid_to", Cell::ts(v.valid_to)));
            cells.push(("is_current", Cell::Bool(Some(v.is_current()))));
            cells.push(("status", Cell::str(Some(v.status()))));
            b.push_row(cells);
        }
    }
    if b.is_empty() {
        return Ok(None);
    }
    b.finish().map(Some)
}

/// Loads what event typing needs: hospital zones and MRN assigning authorities, and every department
/// code ever defined.
pub async fn load_reference(lake: &Lake) -> Result<ReferenceData> {
    let mut data = ReferenceData::default();
    if lake.open_table(HOSPITALS).await?.is_some() {
        // `*`: a table written before `mrn_assigning_authority` existed lacks the column.
        for b in lake
            .sql(&[HOSPITALS], "SELECT * FROM silver_hospitals")
            .await?
        {
            let ids = strings(&b, "hospital_id")?;
            let tz = strings(&b, "time_zone")?;
            let authority = strings(&b, "mrn_assigning_authority")?;
            for ((id, tz), authority) in ids.into_iter().zip(tz).zip(authority) {
                if let (Some(id), Some(Ok(zone))) = (id, tz.map(|t| t.parse::<Tz>())) {
                    if let Some(a) = authority.filter(|a| !a.trim().is_empty()) {
                        data.mrn_authorities
                            .insert(id.clone(), a.trim().to_string());
                    }
                    data.hospitals.insert(id, zone);
                }
            }
        }
    }
    if lake.open_table(DIM_DEPARTMENT).await?.is_some() {
        for b in lake
            .sql(
                &[DIM_DEPARTMENT],
                "SELECT DISTINCT hospital_id, department_code FROM silver_dim_department",
            )
            .await?
        {
            let h = strings(&b, "hospital_id")?;
            let c = strings(&b, "department_code")?;
            for (h, c) in h.into_iter().zip(c) {
                if let (Some(h), Some(c)) = (h, c) {
                    data.departments
                        .entry(h)
                        .or_insert_with(HashSet::new)
                        .insert(c);
                }
            }
        }
    }
    Ok(data)
}
