//! Step: the patient dimension (SCD Type 2), rebuilt for every patient touched by new ADT events or EHR
//! patient rows, from all observations of that patient.
//!
//! Observations come from every ADT message (its PID demographics, at the event time) and every EHR
//! patient row (at its `updated_at`). New attributes (any source column or Z-segment attribute not seen
//! before) become new columns with no code change; versions before an attribute was known read it as
//! null, and the first observation that carries it starts a new version.
//!
//! Identity: which records may state who the patient is is decided by [`identity::resolve`] (rule
//! `DQ-PAT-IDENTITY-CONFLICT`) over all the patient's records at once; a record in doubt keeps its
//! movements and loses only its identity attributes. Because the decision is re-taken whenever the
//! patient's records change, the step also reports the records it re-judged, so findings that no
//! longer hold (an A08 that arrived after the records carrying its change) are withdrawn.
//!
//! Types of the extra attributes (see [`schema_evolution`]): each extra attribute column has the type
//! the dimension's Delta schema gives it, or, when new, the narrowest type that reads all its values. A
//! value that needs the allowed wider type (long → double, date → timestamp) widens the column: the
//! whole dimension is rebuilt with the wider type and the widening is recorded (`DQ-SCHEMA-WIDENED`). A
//! value that fits neither leaves the column null in its versions and is kept in their
//! `_rescued_data`; the observation that brought it raises `DQ-SCHEMA-RESCUED` (once, when it is new).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};

use super::dq::{rules, Finding};
use super::encounters::sql_list;
use super::identity::{self, Obs};
use super::quarantine::QuarantineRow;
use super::scd2::{build_history, Observation};
use super::schema_evolution::{self, AttrType};
use super::{ADT_EVENTS, DIM_PATIENT, EHR_PATIENTS};
use crate::storage::columns::{ints, strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{checkpoint_id, CommitMarker, Lake};
use crate::Result;

/// Attributes every dimension row has, in column order (extra attributes follow, alphabetically).
pub(super) const CORE: [&str; 8] = [
    "family_name",
    "given_name",
    "birth_date",
    "sex",
    "street",
    "city",
    "state",
    "zip",
];

/// Columns of the dimension that are not attributes; an attribute by one of these names stays out.
const RESERVED: [&str; 11] = [
    "patient_sk",
    "patient_key",
    "hospital_id",
    "mrn",
    "valid_from",
    "valid_to",
    "is_current",
    "status",
    "started_by",
    "silver_run_id",
    schema_evolution::RESCUED_COLUMN,
];

const MAX_TARGETED_KEYS: usize = 20_000;

/// What the step did.
#[derive(Debug, Default)]
pub struct PatientOutput {
    /// Patients rebuilt.
    pub patients: usize,
    /// Versions written.
    pub versions: usize,
    /// Identity-conflict, rescued-value and widening findings.
    pub quarantine: Vec<QuarantineRow>,
    /// Every record whose identity was judged again (`(source table, source key)`), unless
    /// `rejudged_all`. Identity findings on these records that this run did not raise again no
    /// longer hold.
    pub rejudged: Vec<(String, String)>,
    /// The whole dimension was rebuilt: every record was judged again.
    pub rejudged_all: bool,
}

/// Rebuilds the dimension rows of the patients touched since the step's checkpoints.
pub async fn refresh(lake: &Lake, full: bool, run_id: &str) -> Result<PatientOutput> {
    let mut out = PatientOutput::default();
    let since_adt = if full {
        None
    } else {
        lake.checkpoint(DIM_PATIENT, ADT_EVENTS).await?
    };
    let since_ehr = if full {
        None
    } else {
        lake.checkpoint(DIM_PATIENT, EHR_PATIENTS).await?
    };
    let inc_adt = lake.increment(ADT_EVENTS, since_adt).await?;
    let inc_ehr = lake.increment(EHR_PATIENTS, since_ehr).await?;
    if !full
        && inc_adt.as_ref().is_none_or(|i| i.is_empty())
        && inc_ehr.as_ref().is_none_or(|i| i.is_empty())
    {
        return Ok(out);
    }
    let mut markers = Vec::new();
    let mut touched = BTreeSet::new();
    let mut whole = full;
    // The observations this run sees for the first time (all of a source read from its start).
    let mut fresh = Fresh::default();
    for (inc, table, source_key) in [
        (&inc_adt, ADT_EVENTS, "message_key"),
        (&inc_ehr, EHR_PATIENTS, "source_key"),
    ] {
        if let Some(inc) = inc {
            markers.push(CommitMarker {
                app_id: checkpoint_id(table),
                version: inc.until,
            });
            if inc.since.is_none() {
                whole = true;
                fresh.all.insert(table.sql_name());
            } else if !inc.is_empty() {
                let sql = format!("SELECT patient_key, {source_key} FROM input");
                for b in inc.query(&sql).await? {
                    touched.extend(strings(&b, "patient_key")?.into_iter().flatten());
                    fresh.keys.extend(
                        strings(&b, source_key)?
                            .into_iter()
                            .flatten()
                            .map(|k| (table.sql_name(), k)),
                    );
                }
            }
        }
    }
    if touched.len() > MAX_TARGETED_KEYS {
        whole = true;
    }

    let current_types = schema_evolution::table_types(lake, DIM_PATIENT).await?;
    let mut observations = load_observations(lake, whole, &touched).await?;
    let mut types = attribute_types(&observations, &current_types);
    let widened: Vec<(String, AttrType, AttrType)> = types
        .iter()
        .filter_map(|(name, ty)| {
            let before = *current_types.get(name)?;
            (before != *ty).then(|| (name.clone(), before, *ty))
        })
        .collect();
    if !widened.is_empty() && !whole {
        // A wider type is a new schema for every row: rebuild the whole dimension with it.
        whole = true;
        observations = load_observations(lake, true, &touched).await?;
        types = attribute_types(&observations, &current_types);
    }
    for (column, from, to) in &widened {
        let value = observations
            .values()
            .flatten()
            .filter_map(|o| o.observation.attrs.get(column))
            .find(|v| {
                schema_evolution::read(*from, v).is_none()
                    && schema_evolution::read(*to, v).is_some()
            });
        out.quarantine.push(QuarantineRow {
            source_table: DIM_PATIENT.sql_name(),
            source_key: column.clone(),
            finding: Finding::new(
                &rules::SCHEMA_WIDENED,
                Some(column.as_str()),
                format!(
                    "column {column} widened from {} to {}",
                    from.name(),
                    to.name()
                ),
                value.map(String::as_str),
            ),
            action: rules::SCHEMA_WIDENED.action.as_str(),
            raw_record: None,
            source_name: None,
            source_position: None,
        });
    }

    out.rejudged_all = whole;
    if !whole {
        out.rejudged = observations
            .values()
            .flatten()
            .map(|o| (o.source_table.to_string(), o.source_key.clone()))
            .collect();
    }
    let mut rows = RowsBuilder::new();
    let keep_rescued_column = current_types.contains_key(schema_evolution::RESCUED_COLUMN);
    for (key, obs) in observations.iter_mut() {
        rescue_findings(obs, &types, &fresh, &mut out.quarantine);
        let accepted = identity::resolve(obs, &mut out.quarantine);
        let history = build_history(key, &accepted);
        out.patients += 1;
        let (hospital, mrn) = key.split_once('|').unwrap_or((key, ""));
        for v in history {
            let mut cells: Vec<(&str, Cell)> = vec![
                ("patient_sk", Cell::Int(Some(v.surrogate_key))),
                ("patient_key", Cell::str(Some(key.clone()))),
                ("hospital_id", Cell::str(Some(hospital))),
                ("mrn", Cell::str(Some(mrn))),
            ];
            for name in CORE {
                let value = v.attrs.get(name).cloned();
                if name == "birth_date" {
                    cells.push((
                        name,
                        Cell::date(
                            value.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
                        ),
                    ));
                } else {
                    cells.push((name, Cell::Str(value)));
                }
            }
            let mut rescued = BTreeMap::new();
            for (name, ty) in &types {
                let raw = v.attrs.get(name).map(String::as_str);
                let cell = schema_evolution::cell(*ty, raw).unwrap_or_else(|| {
                    rescued.insert(name.clone(), raw.unwrap_or_default().to_string());
                    schema_evolution::cell(*ty, None).unwrap_or(Cell::Str(None))
                });
                cells.push((name.as_str(), cell));
            }
            cells.push(("valid_from", Cell::ts(Some(v.valid_from))));
            cells.push(("valid_to", Cell::ts(v.valid_to)));
            cells.push(("is_current", Cell::Bool(Some(v.is_current()))));
            cells.push(("status", Cell::str(Some(v.status()))));
            cells.push(("started_by", Cell::str(Some(v.started_by.clone()))));
            // Which run last wrote the patient: Gold finds the patients to redo by it.
            cells.push(("silver_run_id", Cell::str(Some(run_id))));
            if keep_rescued_column || !rescued.is_empty() {
                cells.push((
                    schema_evolution::RESCUED_COLUMN,
                    Cell::Str(schema_evolution::rescued_json(&rescued)),
                ));
            }
            rows.push_row(cells);
        }
    }
    out.versions = rows.len();
    if rows.is_empty() {
        if !markers.is_empty() {
            lake.commit_markers(DIM_PATIENT, empty_schema(), &markers)
                .await?;
        }
        return Ok(out);
    }
    let predicate = (!whole).then(|| format!("patient_key IN ({})", sql_list(&touched)));
    lake.rewrite(DIM_PATIENT, vec![rows.finish()?], predicate, &markers)
        .await?;
    Ok(out)
}

/// Observations first seen by this run: keys per source table, or whole tables read from the start.
#[derive(Debug, Default)]
struct Fresh {
    all: BTreeSet<String>,
    keys: BTreeSet<(String, String)>,
}

impl Fresh {
    fn contains(&self, table: &str, key: &str) -> bool {
        self.all.contains(table) || self.keys.contains(&(table.to_string(), key.to_string()))
    }
}

/// The type of every extra attribute the observations carry: the dimension's current type, widened
/// when a value needs it, or for a new attribute the narrowest type of all its values.
fn attribute_types(
    observations: &BTreeMap<String, Vec<Obs>>,
    current: &BTreeMap<String, AttrType>,
) -> BTreeMap<String, AttrType> {
    let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in observations.values().flatten() {
        for (k, v) in &o.observation.attrs {
            if !CORE.contains(&k.as_str()) && !RESERVED.contains(&k.as_str()) {
                values.entry(k.as_str()).or_default().push(v.as_str());
            }
        }
    }
    values
        .into_iter()
        .map(|(k, vs)| {
            (
                k.to_string(),
                schema_evolution::resolve(current.get(k).copied(), vs),
            )
        })
        .collect()
}

/// Raises `DQ-SCHEMA-RESCUED` for each value of a new observation that its column's type cannot hold.
fn rescue_findings(
    obs: &[Obs],
    types: &BTreeMap<String, AttrType>,
    fresh: &Fresh,
    findings: &mut Vec<QuarantineRow>,
) {
    for o in obs {
        if !fresh.contains(o.source_table, &o.source_key) {
            continue;
        }
        for (attr, raw) in &o.observation.attrs {
            let Some(ty) = types.get(attr) else {
                continue;
            };
            if schema_evolution::read(*ty, raw).is_some() {
                continue;
            }
            findings.push(QuarantineRow {
                source_table: o.source_table.to_string(),
                source_key: o.source_key.clone(),
                finding: Finding::new(
                    &rules::SCHEMA_RESCUED,
                    Some(attr.as_str()),
                    format!(
                        "the value does not read as {} (the column's type) nor as an allowed wider type: \
                         the column is left null and the value kept in {}",
                        ty.name(),
                        schema_evolution::RESCUED_COLUMN
                    ),
                    Some(raw.as_str()),
                ),
                action: rules::SCHEMA_RESCUED.action.as_str(),
                raw_record: None,
                source_name: o.source_name.clone(),
                source_position: o.source_position,
            });
        }
    }
}

/// Every observation of the given patients (all patients when `whole`).
async fn load_observations(
    lake: &Lake,
    whole: bool,
    touched: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<Obs>>> {
    let filter = if whole {
        String::new()
    } else {
        format!(" WHERE patient_key IN ({})", sql_list(touched))
    };
    let mut observations: BTreeMap<String, Vec<Obs>> = BTreeMap::new();
    if lake.open_table(ADT_EVENTS).await?.is_some() && (whole || !touched.is_empty()) {
        let sql = format!(
            "SELECT patient_key, event_type, event_time, recorded_time, message_key, encounter_key, \
             source_name, source_position, demographics FROM silver_adt_events{filter}"
        );
        for b in lake.sql(&[ADT_EVENTS], &sql).await? {
            let key = strings(&b, "patient_key")?;
            let kind = strings(&b, "event_type")?;
            let at = timestamps(&b, "event_time")?;
            let recorded = timestamps(&b, "recorded_time")?;
            let message = strings(&b, "message_key")?;
            let encounter = strings(&b, "encounter_key")?;
            let source_name = strings(&b, "source_name")?;
            let source_position = ints(&b, "source_position")?;
            let demo = strings(&b, "demographics")?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(t)) = (key[i].clone(), at[i]) else {
                    continue;
                };
                let source_key = message[i].clone().unwrap_or_default();
                observations.entry(k.clone()).or_default().push(Obs {
                    observation: Observation {
                        key: k,
                        effective: t,
                        sequence: format!(
                            "{:020}|{source_key}",
                            recorded[i]
                                .map(|r| r.timestamp_micros())
                                .unwrap_or_default()
                        ),
                        attrs: parse_attrs(demo[i].as_deref()),
                    },
                    kind: kind[i].clone().unwrap_or_default(),
                    encounter: encounter[i].clone(),
                    recorded: recorded[i],
                    source_table: "silver_adt_events",
                    source_key,
                    source_name: source_name[i].clone(),
                    source_position: source_position[i],
                });
            }
        }
    }
    if lake.open_table(EHR_PATIENTS).await?.is_some() && (whole || !touched.is_empty()) {
        let sql = format!("SELECT patient_key, effective_time, source_key, demographics FROM silver_ehr_patients{filter}");
        for b in lake.sql(&[EHR_PATIENTS], &sql).await? {
            let key = strings(&b, "patient_key")?;
            let at = timestamps(&b, "effective_time")?;
            let source = strings(&b, "source_key")?;
            let demo = strings(&b, "demographics")?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(t)) = (key[i].clone(), at[i]) else {
                    continue;
                };
                let source_key = source[i].clone().unwrap_or_default();
                // An extract row's key is `<file>:<row>`.
                let (file, row) = match source_key.rsplit_once(':') {
                    Some((f, r)) => (Some(f.to_string()), r.parse().ok()),
                    None => (None, None),
                };
                observations.entry(k.clone()).or_default().push(Obs {
                    observation: Observation {
                        key: k,
                        effective: t,
                        sequence: format!("{:020}|ehr|{source_key}", t.timestamp_micros()),
                        attrs: parse_attrs(demo[i].as_deref()),
                    },
                    kind: "EHR".into(),
                    encounter: None,
                    recorded: Some(t),
                    source_table: "silver_ehr_patients",
                    source_key,
                    source_name: file,
                    source_position: row,
                });
            }
        }
    }

    Ok(observations)
}

fn parse_attrs(json: Option<&str>) -> BTreeMap<String, String> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn empty_schema() -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let ts = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )
    };
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Schema::new(vec![
        Field::new("patient_sk", DataType::Int64, true),
        s("patient_key"),
        s("hospital_id"),
        s("mrn"),
        s("family_name"),
        s("given_name"),
        Field::new("birth_date", DataType::Date32, true),
        s("sex"),
        s("street"),
        s("city"),
        s("state"),
        s("zip"),
        ts("valid_from"),
        ts("valid_to"),
        Field::new("is_current", DataType::Boolean, true),
        s("status"),
        s("started_by"),
        s("silver_run_id"),
    ])
}

/// The age in whole years at `at` of someone born on `birth`.
pub fn age_at(birth: NaiveDate, at: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    let d = at.date_naive();
    let mut age = d.year() - birth.year();
    if (d.month(), d.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}
