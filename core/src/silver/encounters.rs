//! Step: encounters and location stays, rebuilt for every encounter touched by new Silver events or
//! EHR encounter rows.
//!
//! Which source wins: the ADT feed is the real-time record of where a patient is, so locations, stays
//! and the times ADT states come from ADT. The daily EHR extract fills what ADT lacks: an encounter
//! ADT never reported (a single stay in the extract's department), a missing arrival or admission time,
//! and a discharge ADT has not (yet) sent — provided it is not before the admission.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use deltalake::arrow::datatypes::Schema;

use super::dq::{rules, Finding};
use super::encounter_state::{replay, EncounterEvent, EncounterState, EncounterStatus, Stay};
use super::quarantine::QuarantineRow;
use super::{ADT_EVENTS, EHR_ENCOUNTERS, ENCOUNTERS, LOCATION_STAYS};
use crate::storage::columns::{ints, strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{checkpoint_id, CommitMarker, Lake};
use crate::Result;

/// Above this many touched encounters a refresh rebuilds the tables whole: one scan beats a huge
/// predicate.
const MAX_TARGETED_KEYS: usize = 20_000;

/// What the step did.
#[derive(Debug, Default)]
pub struct EncounterOutput {
    /// Encounters rebuilt.
    pub encounters: usize,
    /// Stays written.
    pub stays: usize,
    /// True when the tables were rebuilt whole.
    pub rebuilt_whole: bool,
    /// `DQ-LATE-EVENT` findings: events received after a later event of their encounter.
    pub late: Vec<QuarantineRow>,
}

/// When an event of an encounter happened and when (in what order) it was received.
#[derive(Debug, Clone)]
struct Arrival {
    event_time: DateTime<Utc>,
    /// Received at, then the file or Event Hub and the position in it: the order of receipt.
    received: (Option<DateTime<Utc>>, String, i64),
    message_key: String,
}

/// The events of one encounter that were received after an event that happened later: they arrived
/// late or out of order, and the replay placed them by event time. One finding each (rule
/// `DQ-LATE-EVENT`, action count), with the event's lineage; the same event gives the same finding id,
/// so re-evaluating an encounter adds nothing.
fn late_arrivals(list: &mut [Arrival]) -> Vec<QuarantineRow> {
    list.sort_by(|a, b| a.received.cmp(&b.received));
    let mut latest: Option<DateTime<Utc>> = None;
    let mut out = Vec::new();
    for a in list.iter() {
        match latest {
            Some(l) if a.event_time < l => out.push(QuarantineRow {
                source_table: ADT_EVENTS.sql_name(),
                source_key: a.message_key.clone(),
                finding: Finding::new(
                    &rules::LATE_EVENT,
                    Some("event_time"),
                    format!(
                        "received after an event of its encounter that happened later ({}); placed by event time",
                        l.to_rfc3339()
                    ),
                    None,
                ),
                action: rules::LATE_EVENT.action.as_str(),
                raw_record: None,
                source_name: Some(a.received.1.clone()),
                source_position: Some(a.received.2),
            }),
            _ => latest = Some(a.event_time),
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
struct EhrEncounter {
    patient_key: Option<String>,
    department: Option<String>,
    patient_class: Option<String>,
    arrival: Option<DateTime<Utc>>,
    admit: Option<DateTime<Utc>>,
    discharge: Option<DateTime<Utc>>,
    effective: Option<DateTime<Utc>>,
}

/// Rebuilds the encounters and stays touched since the step's checkpoints.
pub async fn refresh(lake: &Lake, full: bool, run_id: &str) -> Result<EncounterOutput> {
    let mut out = EncounterOutput::default();
    // One `since` per input for both outputs: the earlier of the two tables' checkpoints, so a crash
    // between the two commits is repaired by the next run.
    let since_events = if full {
        None
    } else {
        min_checkpoint(lake, ADT_EVENTS).await?
    };
    let since_ehr = if full {
        None
    } else {
        min_checkpoint(lake, EHR_ENCOUNTERS).await?
    };
    let inc_events = lake.increment(ADT_EVENTS, since_events).await?;
    let inc_ehr = lake.increment(EHR_ENCOUNTERS, since_ehr).await?;
    let nothing_new = inc_events.as_ref().is_none_or(|i| i.is_empty())
        && inc_ehr.as_ref().is_none_or(|i| i.is_empty());
    if nothing_new && !full {
        return Ok(out);
    }
    let mut markers = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut whole = full;
    for (inc, table) in [(&inc_events, ADT_EVENTS), (&inc_ehr, EHR_ENCOUNTERS)] {
        if let Some(inc) = inc {
            markers.push(CommitMarker {
                app_id: checkpoint_id(table),
                version: inc.until,
            });
            if inc.since.is_none() {
                whole = true;
            } else if !inc.is_empty() {
                for b in inc
                    .query(
                        "SELECT DISTINCT encounter_key FROM input WHERE encounter_key IS NOT NULL",
                    )
                    .await?
                {
                    touched.extend(strings(&b, "encounter_key")?.into_iter().flatten());
                }
            }
        }
    }
    if touched.len() > MAX_TARGETED_KEYS {
        whole = true;
    }
    out.rebuilt_whole = whole;
    let filter = if whole {
        String::new()
    } else {
        format!(" WHERE encounter_key IN ({})", sql_list(&touched))
    };

    let mut events: BTreeMap<String, (String, Vec<EncounterEvent>)> = BTreeMap::new();
    let mut arrivals: BTreeMap<String, Vec<Arrival>> = BTreeMap::new();
    if lake.open_table(ADT_EVENTS).await?.is_some() && (whole || !touched.is_empty()) {
        let sql = format!(
            "SELECT encounter_key, patient_key, event_type, event_time, recorded_time, message_key, department, room, bed, \
             patient_class, admit_time, discharge_time, ingested_at, source_name, source_position \
             FROM silver_adt_events{filter}{}",
            if filter.is_empty() { " WHERE encounter_key IS NOT NULL" } else { "" }
        );
        for b in lake.sql(&[ADT_EVENTS], &sql).await? {
            let key = strings(&b, "encounter_key")?;
            let patient = strings(&b, "patient_key")?;
            let kind = strings(&b, "event_type")?;
            let at = timestamps(&b, "event_time")?;
            let recorded = timestamps(&b, "recorded_time")?;
            let message = strings(&b, "message_key")?;
            let dept = strings(&b, "department")?;
            let room = strings(&b, "room")?;
            let bed = strings(&b, "bed")?;
            let class = strings(&b, "patient_class")?;
            let admit = timestamps(&b, "admit_time")?;
            let discharge = timestamps(&b, "discharge_time")?;
            let ingested = timestamps(&b, "ingested_at")?;
            let source_name = strings(&b, "source_name")?;
            let source_position = ints(&b, "source_position")?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(t)) = (key[i].clone(), at[i]) else {
                    continue;
                };
                arrivals.entry(k.clone()).or_default().push(Arrival {
                    event_time: t,
                    received: (
                        ingested[i],
                        source_name[i].clone().unwrap_or_default(),
                        source_position[i].unwrap_or_default(),
                    ),
                    message_key: message[i].clone().unwrap_or_default(),
                });
                let entry = events
                    .entry(k)
                    .or_insert_with(|| (patient[i].clone().unwrap_or_default(), Vec::new()));
                entry.1.push(EncounterEvent {
                    event_type: kind[i].clone().unwrap_or_default(),
                    event_time: t,
                    sequence: format!(
                        "{:020}|{}",
                        recorded[i]
                            .map(|r| r.timestamp_micros())
                            .unwrap_or_default(),
                        message[i].clone().unwrap_or_default()
                    ),
                    department: dept[i].clone(),
                    room: room[i].clone(),
                    bed: bed[i].clone(),
                    patient_class: class[i].clone(),
                    admit_time: admit[i],
                    discharge_time: discharge[i],
                });
            }
        }
    }
    let mut ehr: BTreeMap<String, EhrEncounter> = BTreeMap::new();
    if lake.open_table(EHR_ENCOUNTERS).await?.is_some() && (whole || !touched.is_empty()) {
        let sql = format!(
            "SELECT encounter_key, patient_key, department, patient_class, arrival_time, admit_time, discharge_time, \
             effective_time FROM silver_ehr_encounters{filter}"
        );
        for b in lake.sql(&[EHR_ENCOUNTERS], &sql).await? {
            let key = strings(&b, "encounter_key")?;
            let patient = strings(&b, "patient_key")?;
            let dept = strings(&b, "department")?;
            let class = strings(&b, "patient_class")?;
            let arrival = timestamps(&b, "arrival_time")?;
            let admit = timestamps(&b, "admit_time")?;
            let discharge = timestamps(&b, "discharge_time")?;
            let effective = timestamps(&b, "effective_time")?;
            for i in 0..b.num_rows() {
                let Some(k) = key[i].clone() else { continue };
                let row = EhrEncounter {
                    patient_key: patient[i].clone(),
                    department: dept[i].clone(),
                    patient_class: class[i].clone(),
                    arrival: arrival[i],
                    admit: admit[i],
                    discharge: discharge[i],
                    effective: effective[i],
                };
                // The latest extract row describes the encounter best; earlier rows fill its gaps.
                let merged = match ehr.remove(&k) {
                    None => row,
                    Some(prev) => {
                        let (newer, older) = if row.effective >= prev.effective {
                            (row, prev)
                        } else {
                            (prev, row)
                        };
                        EhrEncounter {
                            patient_key: newer.patient_key.or(older.patient_key),
                            department: newer.department.or(older.department),
                            patient_class: newer.patient_class.or(older.patient_class),
                            arrival: newer.arrival.or(older.arrival),
                            admit: newer.admit.or(older.admit),
                            discharge: newer.discharge.or(older.discharge),
                            effective: newer.effective,
                        }
                    }
                };
                ehr.insert(k, merged);
            }
        }
    }

    for list in arrivals.values_mut() {
        out.late.extend(late_arrivals(list));
    }
    let keys: BTreeSet<&String> = events.keys().chain(ehr.keys()).collect();
    let mut enc_rows = RowsBuilder::new();
    let mut stay_rows = RowsBuilder::new();
    for key in keys {
        let (patient_key, evs) = events.get(key).cloned().unwrap_or_default();
        let state = replay(&evs);
        let extract = ehr.get(key);
        let (state, source) = reconcile(state, extract);
        let patient_key = if patient_key.is_empty() {
            extract
                .and_then(|e| e.patient_key.clone())
                .unwrap_or_default()
        } else {
            patient_key
        };
        let (hospital, visit) = key.split_once('|').unwrap_or((key, ""));
        let los_hours = match (state.admit_time, state.discharge_time) {
            (Some(a), Some(d)) if state.status == EncounterStatus::Discharged => {
                Some((d - a).num_seconds() as f64 / 3600.0)
            }
            _ => None,
        };
        enc_rows.push_row([
            ("encounter_key", Cell::str(Some(key.clone()))),
            ("hospital_id", Cell::str(Some(hospital))),
            ("visit_number", Cell::str(Some(visit))),
            ("patient_key", Cell::str(Some(patient_key.clone()))),
            (
                "mrn",
                Cell::str(patient_key.split_once('|').map(|(_, m)| m.to_string())),
            ),
            ("patient_class", Cell::Str(state.patient_class.clone())),
            ("status", Cell::str(Some(state.status.as_str()))),
            ("arrival_time", Cell::ts(state.arrival_time)),
            ("admit_time", Cell::ts(state.admit_time)),
            ("discharge_time", Cell::ts(state.discharge_time)),
            (
                "first_department",
                Cell::Str(state.first_department.clone()),
            ),
            ("last_department", Cell::Str(state.last_department.clone())),
            ("los_hours", Cell::F64(los_hours)),
            ("source", Cell::str(Some(source))),
            (
                "events_applied",
                Cell::Int(Some(state.events_applied as i64)),
            ),
            (
                "events_cancelled",
                Cell::Int(Some(state.events_cancelled as i64)),
            ),
            ("last_event_time", Cell::ts(state.last_event_time)),
            ("silver_run_id", Cell::str(Some(run_id))),
        ]);
        for (i, stay) in state.stays.iter().enumerate() {
            stay_rows.push_row([
                ("encounter_key", Cell::str(Some(key.clone()))),
                ("stay_seq", Cell::Int(Some(i as i64 + 1))),
                ("hospital_id", Cell::str(Some(hospital))),
                ("patient_key", Cell::str(Some(patient_key.clone()))),
                ("department", Cell::Str(stay.department.clone())),
                ("room", Cell::Str(stay.room.clone())),
                ("bed", Cell::Str(stay.bed.clone())),
                ("start_time", Cell::ts(Some(stay.start))),
                ("end_time", Cell::ts(stay.end)),
                ("start_event", Cell::str(Some(stay.start_event.clone()))),
                ("end_event", Cell::Str(stay.end_event.clone())),
                ("source", Cell::str(Some(source))),
            ]);
        }
    }
    out.encounters = enc_rows.len();
    out.stays = stay_rows.len();
    let predicate = (!whole).then(|| format!("encounter_key IN ({})", sql_list(&touched)));
    write(
        lake,
        ENCOUNTERS,
        enc_rows,
        predicate.clone(),
        &markers,
        encounters_schema,
    )
    .await?;
    write(
        lake,
        LOCATION_STAYS,
        stay_rows,
        predicate,
        &markers,
        stays_schema,
    )
    .await?;
    Ok(out)
}

/// `silver_encounters` columns, for a checkpoint committed before any row exists.
fn encounters_schema() -> Schema {
    schema(&[
        ("encounter_key", Kind::Text),
        ("hospital_id", Kind::Text),
        ("visit_number", Kind::Text),
        ("patient_key", Kind::Text),
        ("mrn", Kind::Text),
        ("patient_class", Kind::Text),
        ("status", Kind::Text),
        ("arrival_time", Kind::Time),
        ("admit_time", Kind::Time),
        ("discharge_time", Kind::Time),
        ("first_department", Kind::Text),
        ("last_department", Kind::Text),
        ("los_hours", Kind::Float),
        ("source", Kind::Text),
        ("events_applied", Kind::Int),
        ("events_cancelled", Kind::Int),
        ("last_event_time", Kind::Time),
        ("silver_run_id", Kind::Text),
    ])
}

/// `silver_location_stays` columns, for a checkpoint committed before any row exists (e.g. while
/// no department is known, so no event places a patient).
fn stays_schema() -> Schema {
    schema(&[
        ("encounter_key", Kind::Text),
        ("stay_seq", Kind::Int),
        ("hospital_id", Kind::Text),
        ("patient_key", Kind::Text),
        ("department", Kind::Text),
        ("room", Kind::Text),
        ("bed", Kind::Text),
        ("start_time", Kind::Time),
        ("end_time", Kind::Time),
        ("start_event", Kind::Text),
        ("end_event", Kind::Text),
        ("source", Kind::Text),
    ])
}

enum Kind {
    Text,
    Int,
    Float,
    Time,
}

fn schema(columns: &[(&str, Kind)]) -> Schema {
    use deltalake::arrow::datatypes::{DataType, Field, TimeUnit};
    Schema::new(
        columns
            .iter()
            .map(|(name, kind)| {
                let t = match kind {
                    Kind::Text => DataType::Utf8,
                    Kind::Int => DataType::Int64,
                    Kind::Float => DataType::Float64,
                    Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                };
                Field::new(*name, t, true)
            })
            .collect::<Vec<_>>(),
    )
}

async fn min_checkpoint(lake: &Lake, input: crate::storage::TableRef) -> Result<Option<i64>> {
    let a = lake.checkpoint(ENCOUNTERS, input).await?;
    let b = lake.checkpoint(LOCATION_STAYS, input).await?;
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    })
}

async fn write(
    lake: &Lake,
    table: crate::storage::TableRef,
    rows: RowsBuilder,
    predicate: Option<String>,
    markers: &[CommitMarker],
    empty_schema: fn() -> Schema,
) -> Result<()> {
    if rows.is_empty() {
        match &predicate {
            // Touched encounters that now have no rows (e.g. stays of a cancelled admission): delete them.
            Some(p) => {
                if let Some(t) = lake.open_table(table).await? {
                    lake.delete_where(table, t, p, markers).await?;
                }
            }
            None => {
                if lake.open_table(table).await?.is_some() {
                    lake.truncate(table, markers).await?;
                } else {
                    lake.commit_markers(table, empty_schema(), markers).await?;
                }
            }
        }
        return Ok(());
    }
    lake.rewrite(table, vec![rows.finish()?], predicate, markers)
        .await?;
    Ok(())
}

/// Quotes keys for an SQL `IN (...)` list.
pub(crate) fn sql_list(keys: &BTreeSet<String>) -> String {
    keys.iter()
        .map(|k| format!("'{}'", k.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fills what ADT lacks from the EHR extract; builds the encounter from the extract alone when ADT has
/// nothing usable.
fn reconcile(
    mut state: EncounterState,
    ehr: Option<&EhrEncounter>,
) -> (EncounterState, &'static str) {
    let Some(e) = ehr else { return (state, "adt") };
    let adt_known = matches!(
        state.status,
        EncounterStatus::Registered | EncounterStatus::Admitted | EncounterStatus::Discharged
    );
    if !adt_known {
        if state.status == EncounterStatus::Cancelled {
            return (state, "adt");
        }
        let start = e.arrival.or(e.admit);
        let Some(start) = start else {
            return (state, "adt");
        };
        state.arrival_time = Some(start);
        state.admit_time = e.admit;
        state.discharge_time = e.discharge;
        state.patient_class = e.patient_class.clone();
        state.status = if e.discharge.is_some() {
            EncounterStatus::Discharged
        } else if e.admit.is_some() {
            EncounterStatus::Admitted
        } else {
            EncounterStatus::Registered
        };
        state.stays = vec![Stay {
            department: e.department.clone(),
            room: None,
            bed: None,
            start,
            end: e.discharge,
            start_event: "EHR".into(),
            end_event: e.discharge.map(|_| "EHR".into()),
        }];
        state.first_department = e.department.clone();
        state.last_department = e.department.clone();
        return (state, "ehr");
    }
    let mut used = false;
    if state.arrival_time.is_none() && e.arrival.is_some() {
        state.arrival_time = e.arrival;
        used = true;
    }
    if state.admit_time.is_none()
        && e.admit.is_some()
        && state.status != EncounterStatus::Registered
    {
        state.admit_time = e.admit;
        used = true;
    }
    if state.discharge_time.is_none() {
        if let Some(d) = e.discharge {
            let after_start = state.stays.last().is_none_or(|s| d >= s.start);
            if after_start && state.admit_time.is_none_or(|a| d >= a) {
                state.discharge_time = Some(d);
                state.status = EncounterStatus::Discharged;
                if let Some(open) = state.stays.last_mut() {
                    if open.end.is_none() {
                        open.end = Some(d);
                        open.end_event = Some("EHR".into());
                    }
                }
                used = true;
            }
        }
    }
    (state, if used { "adt+ehr" } else { "adt" })
}
