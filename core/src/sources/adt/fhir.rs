//! FHIR R4 Encounter (+ Patient) resources, e.g. from a bulk-data NDJSON export, turned into the
//! [`AdtEvent`]s an HL7 feed would have sent for the same stay.
//!
//! One Encounter yields, in time order:
//! - an **A01** (inpatient class, or any encounter with a `hospitalization` block) or **A04** (emergency,
//!   ambulatory, virtual, home health) at the *earlier* of `period.start` and the first `location[]`
//!   start — so an ED stay that began before the admission is not lost — in the first location, with
//!   `admit_time` = `period.start`;
//! - one **A02** per further `location[]` entry, at its `period.start`, with the previous entry as the
//!   prior location;
//! - an **A03** at `period.end`, in the last location, with `discharge_time` = `period.end`.
//!
//! Encounters with status `planned`, `cancelled` or `entered-in-error` yield nothing. Message ids are
//! derived from the encounter id (`fhir:<id>:A01`, `fhir:<id>:A02:<n>`, `fhir:<id>:A03`), so
//! re-ingesting the same resource yields the same ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::time::parse_source_time;
use super::{clean_str, AdtEvent};

/// Why a resource could not be turned into events. Messages name the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Not an Encounter resource.
    #[error("not a FHIR Encounter resource")]
    NotEncounter,
    /// A field the mapping needs is absent.
    #[error("missing required field {0}")]
    MissingField(&'static str),
}

/// Patient resources by id, for resolving `Encounter.subject`.
#[derive(Debug, Clone, Default)]
pub struct FhirPatients {
    by_id: HashMap<String, Value>,
}

impl FhirPatients {
    /// Indexes the Patient resources of an NDJSON text (other lines and resource types are skipped).
    pub fn from_ndjson(text: &str) -> Self {
        let mut by_id = HashMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["resourceType"] == "Patient" {
                if let Some(id) = v["id"].as_str() {
                    by_id.insert(id.to_string(), v);
                }
            }
        }
        FhirPatients { by_id }
    }

    /// How many patients are indexed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no patient is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The Patient an Encounter's `subject` refers to (`Patient/<id>`), if indexed.
    pub fn subject_of(&self, encounter: &Value) -> Option<&Value> {
        let reference = encounter["subject"]["reference"].as_str()?;
        self.by_id.get(reference.strip_prefix("Patient/")?)
    }
}

/// A JSON string, trimmed; `None` when absent, not a string, or empty.
fn s(v: &Value) -> Option<String> {
    v.as_str().and_then(clean_str)
}

/// The id part of a reference: `Location/abc` → `abc`, `Location?identifier=sys|abc` → `abc`.
fn reference_id(reference: &str) -> Option<String> {
    let tail = match reference.rsplit_once('|') {
        Some((_, id)) => id,
        None => reference.rsplit_once('/').map_or(reference, |(_, id)| id),
    };
    clean_str(tail)
}

/// A reference's display text, else its id.
fn reference_label(r: &Value) -> Option<String> {
    s(&r["display"]).or_else(|| r["reference"].as_str().and_then(reference_id))
}

/// Patient demographics copied onto every event of the encounter.
fn apply_patient(e: &mut AdtEvent, p: &Value) {
    let ids = p["identifier"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let is_mr = |i: &&Value| {
        i["type"]["coding"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["code"] == "MR"))
    };
    e.mrn = ids
        .iter()
        .find(is_mr)
        .or(ids.first())
        .and_then(|i| s(&i["value"]))
        .or_else(|| s(&p["id"]));
    let names = p["name"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let name = names
        .iter()
        .find(|n| n["use"] == "official")
        .or(names.first());
    if let Some(n) = name {
        e.family_name = s(&n["family"]);
        e.given_name = s(&n["given"][0]);
    }
    e.sex = match p["gender"].as_str() {
        Some("male") => Some("M".into()),
        Some("female") => Some("F".into()),
        Some("other") => Some("O".into()),
        Some("unknown") => Some("U".into()),
        _ => None,
    };
    e.birth_date = s(&p["birthDate"]);
    let addr = &p["address"][0];
    e.street = s(&addr["line"][0]);
    e.city = s(&addr["city"]);
    e.state = s(&addr["state"]);
    e.zip = s(&addr["postalCode"]);
    if let Some(lang) = s(&p["communication"][0]["language"]["coding"][0]["code"]) {
        e.attributes.insert("preferred_language".into(), lang);
    }
}

/// (admit trigger, HL7 table 0004 patient class) for an Encounter.class.
fn class_of(encounter: &Value) -> (&'static str, Option<&'static str>) {
    let inpatient = encounter.get("hospitalization").is_some();
    match encounter["class"]["code"].as_str() {
        Some("IMP" | "ACUTE" | "NONAC") => ("A01", Some("I")),
        Some("EMER") => ("A04", Some("E")),
        Some("AMB" | "VR" | "HH" | "FLD" | "OBSENC" | "SS") => ("A04", Some("O")),
        Some("PRENC") => ("A04", Some("P")),
        _ if inpatient => ("A01", Some("I")),
        _ => ("A04", None),
    }
}

/// An instant for ordering two timestamps that carry offsets (FHIR dateTimes with a time always do).
fn instant(t: &str) -> Option<DateTime<Utc>> {
    parse_source_time(t).ok()?.to_utc(chrono_tz::UTC).ok()
}

/// One location entry: (department label, period.start).
fn locations(encounter: &Value) -> Vec<(Option<String>, Option<String>)> {
    encounter["location"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|l| (reference_label(&l["location"]), s(&l["period"]["start"])))
        .collect()
}

/// The events of one Encounter (see the module docs), with demographics from `patient` when given —
/// without it the MRN is the id in `Encounter.subject`. `facility` overrides the hospital id, which is
/// otherwise `serviceProvider`'s identifier value, reference id or display, in that order.
pub fn encounter_events(
    encounter: &Value,
    patient: Option<&Value>,
    facility: Option<&str>,
) -> Result<Vec<AdtEvent>, FhirError> {
    if encounter["resourceType"] != "Encounter" {
        return Err(FhirError::NotEncounter);
    }
    let id = s(&encounter["id"]).ok_or(FhirError::MissingField("Encounter.id"))?;
    if matches!(
        encounter["status"].as_str(),
        Some("planned" | "cancelled" | "entered-in-error")
    ) {
        return Ok(Vec::new());
    }
    let locs = locations(encounter);
    let period_start = s(&encounter["period"]["start"]);
    let period_end = s(&encounter["period"]["end"]);
    let first_loc_start = locs.first().and_then(|l| l.1.clone());
    // The earlier of period.start and the first location's start (ED before admission).
    let start = match (&period_start, &first_loc_start) {
        (Some(p), Some(l)) => match (instant(p), instant(l)) {
            (Some(pi), Some(li)) if li < pi => Some(l.clone()),
            _ => Some(p.clone()),
        },
        (p, l) => p.clone().or_else(|| l.clone()),
    };
    let start = start.ok_or(FhirError::MissingField("Encounter.period.start"))?;
    let provider = &encounter["serviceProvider"];
    let (admit_trigger, patient_class) = class_of(encounter);
    let mut base = AdtEvent {
        facility: facility
            .and_then(clean_str)
            .or_else(|| s(&provider["identifier"]["value"]))
            .or_else(|| provider["reference"].as_str().and_then(reference_id))
            .or_else(|| s(&provider["display"])),
        mrn: encounter["subject"]["reference"]
            .as_str()
            .and_then(reference_id),
        patient_class: patient_class.map(str::to_string),
        visit_number: s(&encounter["identifier"][0]["value"]).or_else(|| Some(id.clone())),
        admit_time: period_start.clone(),
        ..AdtEvent::default()
    };
    if let Some(p) = patient {
        apply_patient(&mut base, p);
    }
    let event = |trigger: &str, suffix: String, time: &str| AdtEvent {
        message_id: format!("fhir:{id}:{trigger}{suffix}"),
        event_type: Some(trigger.to_string()),
        recorded_time: Some(time.to_string()),
        event_time: Some(time.to_string()),
        ..base.clone()
    };
    let mut out = Vec::new();
    let mut admit = event(admit_trigger, String::new(), &start);
    admit.department = locs.first().and_then(|l| l.0.clone());
    out.push(admit);
    for (n, pair) in locs.windows(2).enumerate() {
        let Some(time) = &pair[1].1 else { continue };
        let mut e = event("A02", format!(":{}", n + 1), time);
        e.department = pair[1].0.clone();
        e.prior_department = pair[0].0.clone();
        out.push(e);
    }
    if let Some(end) = &period_end {
        let mut e = event("A03", String::new(), end);
        e.department = locs.last().and_then(|l| l.0.clone());
        e.discharge_time = Some(end.clone());
        out.push(e);
    }
    Ok(out)
}

/// The events of every Encounter line of an NDJSON text, with patients resolved from `patients`.
/// Returns the events and, per failed line, its 1-based line number and the error.
pub fn events_from_ndjson(
    encounters: &str,
    patients: &FhirPatients,
    facility: Option<&str>,
) -> (Vec<AdtEvent>, Vec<(usize, FhirError)>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in encounters.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Value>(line)
            .map_err(|e| FhirError::InvalidJson(e.to_string()))
            .and_then(|v| encounter_events(&v, patients.subject_of(&v), facility));
        match result {
            Ok(evs) => events.extend(evs),
            Err(e) => errors.push((i + 1, e)),
        }
    }
    (events, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encounter() -> Value {
        json!({
            "resourceType": "Encounter", "id": "enc1", "status": "finished",
            "identifier": [{"value": "V100"}],
            "class": {"code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "serviceProvider": {"reference": "Organization/MHA02"},
            "period": {"start": "2026-01-10T08:40:00-06:00", "end": "2026-01-12T17:55:00-06:00"},
            "location": [
                {"location": {"reference": "Location/ed", "display": "ED"},
                 "period": {"start": "2026-01-10T06:45:00-06:00", "end": "2026-01-10T09:33:00-06:00"}},
                {"location": {"reference": "Location/med"},
                 "period": {"start": "2026-01-10T09:33:00-06:00", "end": "2026-01-12T17:55:00-06:00"}}
            ]
        })
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"value": "X9"}, {"type": {"coding": [{"code": "MR"}]}, "value": "MRN1"}],
            "name": [{"use": "maiden", "family": "Old"}, {"use": "official", "family": "Doe", "given": ["Jane", "Q"]}],
            "gender": "female", "birthDate": "1957-03-02",
            "address": [{"line": ["12 Elm St"], "city": "Dayton", "state": "OH", "postalCode": "45402"}],
            "communication": [{"language": {"coding": [{"code": "es"}]}}]
        })
    }

    #[test]
    fn admit_transfer_discharge() {
        let evs = encounter_events(&encounter(), Some(&patient()), None).unwrap();
        let kinds: Vec<_> = evs
            .iter()
            .map(|e| e.event_type.as_deref().unwrap())
            .collect();
        assert_eq!(kinds, ["A01", "A02", "A03"]);
        let (a01, a02, a03) = (&evs[0], &evs[1], &evs[2]);
        assert_eq!(a01.message_id, "fhir:enc1:A01");
        // The ED stay began before period.start: the admit event is at the ED start.
        assert_eq!(a01.event_time.as_deref(), Some("2026-01-10T06:45:00-06:00"));
        assert_eq!(a01.admit_time.as_deref(), Some("2026-01-10T08:40:00-06:00"));
        assert_eq!(a01.department.as_deref(), Some("ED"));
        assert_eq!(a01.patient_class.as_deref(), Some("I"));
        assert_eq!(a01.facility.as_deref(), Some("MHA02"));
        assert_eq!(a01.visit_number.as_deref(), Some("V100"));
        assert_eq!(a01.mrn.as_deref(), Some("MRN1"));
        assert_eq!(a01.family_name.as_deref(), Some("Doe"));
        assert_eq!(a01.given_name.as_deref(), Some("Jane"));
        assert_eq!(a01.sex.as_deref(), Some("F"));
        assert_eq!(a01.zip.as_deref(), Some("45402"));
        assert_eq!(a01.attributes["preferred_language"], "es");
        assert_eq!(a02.message_id, "fhir:enc1:A02:1");
        assert_eq!(a02.department.as_deref(), Some("med"));
        assert_eq!(a02.prior_department.as_deref(), Some("ED"));
        assert_eq!(a02.event_time.as_deref(), Some("2026-01-10T09:33:00-06:00"));
        assert_eq!(a03.department.as_deref(), Some("med"));
        assert_eq!(
            a03.discharge_time.as_deref(),
            Some("2026-01-12T17:55:00-06:00")
        );
        assert_eq!(a03.event_time, a03.discharge_time);
    }

    #[test]
    fn classes_status_and_errors() {
        let mut e = encounter();
        e["class"]["code"] = json!("EMER");
        e.as_object_mut().unwrap().remove("location");
        e["period"].as_object_mut().unwrap().remove("end");
        let evs = encounter_events(&e, None, Some("MHA07")).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event_type.as_deref(), Some("A04"));
        assert_eq!(evs[0].patient_class.as_deref(), Some("E"));
        assert_eq!(evs[0].facility.as_deref(), Some("MHA07"));
        assert_eq!(evs[0].mrn.as_deref(), Some("p1"));
        assert_eq!(
            evs[0].event_time.as_deref(),
            Some("2026-01-10T08:40:00-06:00")
        );
        e["status"] = json!("entered-in-error");
        assert!(encounter_events(&e, None, None).unwrap().is_empty());
        assert_eq!(
            encounter_events(&patient(), None, None).unwrap_err(),
            FhirError::NotEncounter
        );
        let mut e = encounter();
        e.as_object_mut().unwrap().remove("period");
        e.as_object_mut().unwrap().remove("location");
        assert_eq!(
            encounter_events(&e, None, None).unwrap_err(),
            FhirError::MissingField("Encounter.period.start")
        );
    }

    #[test]
    fn ndjson_helpers() {
        let patients = FhirPatients::from_ndjson(&format!("{}\n\nnot json\n", patient()));
        assert_eq!(patients.len(), 1);
        let text = format!("{}\n{{bad\n", encounter());
        let (events, errors) = events_from_ndjson(&text, &patients, None);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].mrn.as_deref(), Some("MRN1"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
        assert_eq!(
            reference_id("Location?identifier=https://x|abc").as_deref(),
            Some("abc")
        );
    }
}
