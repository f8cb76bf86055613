//! Step: the patient dimension (SCD Type 2), rebuilt for every patient touched by new ADT events or EHR
//! patient rows, from all observations of that patient.
//!
//! Observations come from every ADT message (its PID demographics, at the event time) and every EHR
//! patient row (at its `updated_at`). New attributes (any source column or Z-segment attribute not seen
//! before) become new columns with no code change; versions before an attribute was known read it as
//! null, and the first observation that carries it starts a new version.
//!
//! Identity conflicts: a non-update ADT message (anything but A08), or an extract row, that gives a
//! patient another name, birth date or sex than the patient has at that time is not a demographic
//! change — HL7 sends those as A08 — but a sign of a duplicate or reused MRN. Its demographics are left out of the history and the
//! finding goes to quarantine (rule `DQ-PAT-IDENTITY-CONFLICT`).
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
use super::quarantine::QuarantineRow;
use super::scd2::{build_history, Observation};
use super::schema_evolution::{self, AttrType};
use super::{ADT_EVENTS, DIM_PATIENT, EHR_PATIENTS};
use crate::storage::columns::{strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{checkpoint_id, CommitMarker, Lake};
use crate::Result;

/// Attributes that identify a person; a change outside an A08 update is a conflict.
const IDENTITY: [&str; 4] = ["family_name", "given_name", "birth_date", "sex"];

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
const RESERVED: [&str; 10] = [
    "patient_sk",
    "patient_key",
    "hospital_id",
    "mrn",
    "valid_from",
    "valid_to",
    "is_current",
    "status",
    "started_by",
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
}

struct Obs {
    observation: Observation,
    /// `A08`, another ADT trigger, or `EHR`.
    kind: String,
    source_table: &'static str,
    source_key: String,
}

/// Rebuilds the dimension rows of the patients touched since the step's checkpoints.
pub async fn refresh(lake: &Lake, full: bool) -> Result<PatientOutput> {
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

    let mut rows = RowsBuilder::new();
    let keep_rescued_column = current_types.contains_key(schema_evolution::RESCUED_COLUMN);
    for (key, obs) in observations.iter_mut() {
        rescue_findings(obs, &types, &fresh, &mut out.quarantine);
        let accepted = drop_identity_conflicts(obs, &mut out.quarantine);
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
                source_name: None,
                source_position: None,
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
            "SELECT patient_key, event_type, event_time, recorded_time, message_key, demographics FROM silver_adt_events{filter}"
        );
        for b in lake.sql(&[ADT_EVENTS], &sql).await? {
            let key = strings(&b, "patient_key")?;
            let kind = strings(&b, "event_type")?;
            let at = timestamps(&b, "event_time")?;
            let recorded = timestamps(&b, "recorded_time")?;
            let message = strings(&b, "message_key")?;
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
                    source_table: "silver_adt_events",
                    source_key,
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
                observations.entry(k.clone()).or_default().push(Obs {
                    observation: Observation {
                        key: k,
                        effective: t,
                        sequence: format!("{:020}|ehr|{source_key}", t.timestamp_micros()),
                        attrs: parse_attrs(demo[i].as_deref()),
                    },
                    kind: "EHR".into(),
                    source_table: "silver_ehr_patients",
                    source_key,
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

/// Removes the identity attributes of non-update observations (ADT other than A08, EHR rows) that
/// contradict the identity the patient has at that time; returns the observations to build the
/// history from.
///
/// Only an A08 changes who a patient is. Between two A08s that set an attribute, its value is the one
/// the A08 set or, before the first such A08, the value most observations agree on (the earliest of
/// equally frequent values): so a conflicting record is caught whether it arrives first or later.
fn drop_identity_conflicts(obs: &mut [Obs], findings: &mut Vec<QuarantineRow>) -> Vec<Observation> {
    // At the same instant an A08 comes first: the records written with it already carry its change.
    obs.sort_by(|a, b| {
        let key = |o: &Obs| (o.observation.effective, o.kind != "A08");
        (key(a), &a.observation.sequence).cmp(&(key(b), &b.observation.sequence))
    });
    let is_update = |o: &Obs| o.kind == "A08";
    // conflicts[i]: the identity attributes observation i contradicts.
    let mut conflicts: Vec<Vec<&str>> = vec![Vec::new(); obs.len()];
    for attr in IDENTITY {
        let mut segment_start = 0;
        while segment_start < obs.len() {
            // A segment runs up to the next A08 that sets this attribute.
            let segment_end = (segment_start + 1..obs.len())
                .find(|&i| is_update(&obs[i]) && obs[i].observation.attrs.contains_key(attr))
                .unwrap_or(obs.len());
            let segment = &obs[segment_start..segment_end];
            let reference = match segment.first() {
                Some(first) if is_update(first) => first.observation.attrs.get(attr).cloned(),
                // Before the first A08: a tie goes to the value that A08 confirms, if any.
                _ => consensus(
                    segment.iter().filter_map(|o| o.observation.attrs.get(attr)),
                    obs.get(segment_end)
                        .and_then(|next| next.observation.attrs.get(attr)),
                ),
            };
            if let Some(reference) = reference {
                for (i, o) in segment.iter().enumerate() {
                    if !is_update(o)
                        && o.observation
                            .attrs
                            .get(attr)
                            .is_some_and(|v| *v != reference)
                    {
                        conflicts[segment_start + i].push(attr);
                    }
                }
            }
            segment_start = segment_end;
        }
    }
    let mut accepted = Vec::with_capacity(obs.len());
    for (o, conflicts) in obs.iter().zip(conflicts) {
        let mut observation = o.observation.clone();
        if !conflicts.is_empty() {
            for a in IDENTITY {
                observation.attrs.remove(a);
            }
            findings.push(QuarantineRow {
                source_table: o.source_table.to_string(),
                source_key: o.source_key.clone(),
                finding: Finding::new(
                    &rules::PAT_IDENTITY_CONFLICT,
                    Some(&conflicts.join(",")),
                    format!(
                        "{} differs from the patient's identity outside an A08 update",
                        conflicts.join(", ")
                    ),
                    None,
                ),
                action: "drop_attribute",
                raw_record: None,
                source_name: None,
                source_position: None,
            });
        }
        accepted.push(observation);
    }
    accepted
}

/// The most frequent value; among equally frequent ones `preferred` if it is one of them, else the
/// earliest. `None` for no value.
fn consensus<'a>(
    values: impl Iterator<Item = &'a String>,
    preferred: Option<&String>,
) -> Option<String> {
    let mut counts: Vec<(&String, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(c, _)| *c == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max()?;
    let tied = || counts.iter().filter(|(_, n)| *n == best);
    tied()
        .find(|(v, _)| Some(*v) == preferred)
        .or_else(|| tied().next())
        .map(|(v, _)| (*v).clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn obs(hour: u32, kind: &str, key: &str, given: &str, birth: &str) -> Obs {
        Obs {
            observation: Observation {
                key: "H|P1".into(),
                effective: Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap(),
                sequence: key.into(),
                attrs: [("given_name", given), ("birth_date", birth)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            kind: kind.into(),
            source_table: "silver_adt_events",
            source_key: key.into(),
        }
    }

    fn flagged(mut all: Vec<Obs>) -> Vec<String> {
        let mut findings = Vec::new();
        drop_identity_conflicts(&mut all, &mut findings);
        findings.into_iter().map(|f| f.source_key).collect()
    }

    #[test]
    fn a_conflicting_first_record_is_caught_not_the_later_true_ones() {
        let got = flagged(vec![
            obs(1, "EHR", "m1", "Marie", "1936-02-03"),
            obs(2, "A04", "m2", "Marie", "1937-02-04"),
            obs(3, "A03", "m3", "Marie", "1937-02-04"),
        ]);
        assert_eq!(got, vec!["m1"]);
    }

    #[test]
    fn an_a08_changes_identity_and_records_at_its_instant_follow_it() {
        let got = flagged(vec![
            obs(1, "A04", "m1", "Marie", "1969-06-24"),
            obs(2, "A08", "m2", "Christina", "1969-06-24"),
            // Same instant as the A08, sorted before it by key: still after the change.
            obs(2, "EHR", "a-row", "Christina", "1969-06-24"),
            obs(3, "A03", "m3", "Marie", "1969-06-24"),
        ]);
        assert_eq!(
            got,
            vec!["m3"],
            "the old name after the A08 is the conflict"
        );
    }

    #[test]
    fn a_tie_before_the_first_a08_goes_to_the_value_the_a08_confirms() {
        let got = flagged(vec![
            obs(1, "EHR", "a", "Donald", "1936-02-03"),
            obs(1, "A04", "b", "Donald", "1937-02-04"),
            obs(5, "A08", "c", "Jose", "1937-02-04"),
        ]);
        assert_eq!(got, vec!["a"]);
    }
}
