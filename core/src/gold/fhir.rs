//! A documented conversion of FHIR R4 Encounter/Patient NDJSON (e.g. the MIMIC-IV FHIR demo) into what
//! the pipeline ingests: JSON ADT events (`patientflow.adt.v1`, docs/sources.md §1.2) and the hospital and
//! department reference CSVs (docs/sources.md §3).
//!
//! Why a conversion: Bronze stores FHIR resources, but Silver applies only HL7 v2 and JSON ADT events
//! (FHIR rows are counted as "not applied"). [`crate::sources::adt::fhir::encounter_events`] already maps
//! one Encounter to the A01/A04 → A02… → A03 events an HL7 feed would have sent; this module serialises
//! those events as JSON ADT events and derives the reference data from the care units.
//!
//! The admission event (A01/A04) is timed at the first location's start — when the patient is placed in
//! a bed — with `admit_time` (PV1-44) = `period.start`; [`encounter_events`] times it at the earlier of
//! the two, which would put the patient in the first location before the location history does.
//!
//! Two adjustments, both recorded in the result so a caller can apply them to anything it compares with:
//! - **Dates.** MIMIC shifts every patient into 2110–2201; Silver rightly rejects times that far in the
//!   future. Each encounter is moved by a whole number of weeks (weekday and time of day kept) so that it
//!   starts within `window_weeks` weeks from `window_start`; encounters are spread over the window in
//!   order of their original start. The patient's birth date moves with the patient's first encounter.
//!   MIMIC's per-patient shift already makes cross-patient simultaneity synthetic, so a census over the
//!   converted data is as meaningful as one over the original; intervals inside an encounter are exact.
//! - **Departments.** A care unit (Location display or id, resolved through `locations`) becomes a
//!   department code (upper-case words joined by `_`); its type is derived from the name and its capacity
//!   is a nominal `staffed_beds` (MIMIC publishes no capacity), effective from `effective_date`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::sources::adt::fhir::{encounter_events, FhirPatients};

/// Options of the conversion.
#[derive(Debug, Clone)]
pub struct FhirConversionOptions {
    /// Hospital id given to every encounter.
    pub facility: String,
    /// Hospital name.
    pub name: String,
    /// City, state.
    pub city: String,
    /// State.
    pub state: String,
    /// IANA zone of the hospital.
    pub time_zone: String,
    /// First day of the window encounters are moved into.
    pub window_start: NaiveDate,
    /// Width of the window, in weeks.
    pub window_weeks: i64,
    /// Nominal staffed (and licensed) beds per care unit.
    pub staffed_beds: i64,
    /// Effective date of the department rows.
    pub effective_date: NaiveDate,
}

impl Default for FhirConversionOptions {
    fn default() -> Self {
        FhirConversionOptions {
            facility: "BIDMC".into(),
            name: "Beth Israel Deaconess Medical Center (MIMIC-IV demo)".into(),
            city: "Boston".into(),
            state: "MA".into(),
            time_zone: "America/New_York".into(),
            window_start: NaiveDate::from_ymd_opt(2025, 1, 6).unwrap_or_default(),
            window_weeks: 13,
            staffed_beds: 20,
            effective_date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
        }
    }
}

/// The converted data set.
#[derive(Debug, Clone, Default)]
pub struct FhirConversion {
    /// JSON ADT events, one per line.
    pub adt_ndjson: String,
    /// `hospitals.csv`.
    pub hospitals_csv: String,
    /// `departments.csv`.
    pub departments_csv: String,
    /// Days each encounter was moved by, by visit number (`Encounter.identifier[0].value`, else id).
    pub shift_days: BTreeMap<String, i64>,
    /// Department code of each care unit.
    pub department_codes: BTreeMap<String, String>,
    /// Events written.
    pub events: usize,
    /// Encounter lines that could not be converted: (1-based line, reason).
    pub skipped: Vec<(usize, String)>,
}

/// Department code of a care unit name: upper-case alphanumeric words joined by `_`.
pub fn department_code(care_unit: &str) -> String {
    care_unit
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join("_")
}

/// Department type of a care unit name (docs/sources.md §3 vocabulary).
pub fn department_type(care_unit: &str) -> &'static str {
    let n = care_unit.to_ascii_lowercase();
    if n.contains("emergency") {
        "Emergency"
    } else if n.contains("intensive care") || n.contains("icu") || n.contains("ccu") {
        "ICU"
    } else if n.contains("cardi") {
        "Cardiology"
    } else if n.contains("surg")
        || n.contains("pacu")
        || n.contains("trauma")
        || n.contains("vascular")
        || n.contains("transplant")
    {
        "Surgery"
    } else if n.contains("obstet") || n.contains("labor") {
        "Maternity"
    } else {
        "Medical"
    }
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn shifted(t: &Option<String>, days: i64) -> Option<String> {
    t.as_deref().and_then(parse).map(|d| {
        (d + Duration::days(days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    })
}

/// The start of an Encounter: the earlier of `period.start` and its first location's start.
fn encounter_start(e: &Value) -> Option<DateTime<Utc>> {
    let p = e["period"]["start"].as_str().and_then(parse);
    let l = e["location"][0]["period"]["start"].as_str().and_then(parse);
    match (p, l) {
        (Some(p), Some(l)) => Some(p.min(l)),
        (p, l) => p.or(l),
    }
}

/// Converts Encounter NDJSON (+ Patient NDJSON) into JSON ADT events and reference CSVs. `locations` maps
/// a Location id to its care unit name (MIMIC's Location resources are not in the demo export; the
/// demo's `careunit_to_fhir_location_id.json` gives the mapping).
pub fn convert(
    encounters_ndjson: &str,
    patients_ndjson: &str,
    locations: &HashMap<String, String>,
    opts: &FhirConversionOptions,
) -> FhirConversion {
    let mut out = FhirConversion::default();
    let patients = FhirPatients::from_ndjson(patients_ndjson);
    let mut parsed: Vec<(usize, Value, DateTime<Utc>)> = Vec::new();
    for (i, line) in encounters_ndjson.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => match encounter_start(&v) {
                Some(start) => parsed.push((i + 1, v, start)),
                None => out
                    .skipped
                    .push((i + 1, "no period.start or location start".into())),
            },
            Err(e) => out.skipped.push((i + 1, format!("invalid JSON: {e}"))),
        }
    }
    parsed.sort_by(|a, b| (a.2, a.1["id"].as_str()).cmp(&(b.2, b.1["id"].as_str())));

    // Shift per encounter; birth-date shift per patient (that of the patient's first encounter).
    let mut birth_shift: HashMap<String, i64> = HashMap::new();
    let mut units: BTreeSet<String> = BTreeSet::new();
    let mut lines = Vec::new();
    for (k, (line_no, enc, start)) in parsed.iter().enumerate() {
        let target = opts.window_start + Duration::weeks(k as i64 % opts.window_weeks.max(1));
        let gap = (target - start.date_naive()).num_days();
        let days = 7 * gap.div_euclid(7) + if gap.rem_euclid(7) > 0 { 7 } else { 0 };
        let subject = enc["subject"]["reference"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let bshift = *birth_shift.entry(subject).or_insert(days);
        let visit = enc["identifier"][0]["value"]
            .as_str()
            .or_else(|| enc["id"].as_str())
            .unwrap_or_default()
            .to_string();
        let events =
            match encounter_events(enc, patients.subject_of(enc), Some(opts.facility.as_str())) {
                Ok(ev) => ev,
                Err(e) => {
                    out.skipped.push((*line_no, e.to_string()));
                    continue;
                }
            };
        out.shift_days.insert(visit, days);
        // The admission message is sent when the patient is placed in the first location: its event
        // time is that location's start (the bed assignment), while PV1-44 (`admit_time`) keeps
        // `period.start`. An encounter whose period starts before its first location therefore has no
        // bed in between, as its location history says.
        let first_location = enc["location"][0]["period"]["start"]
            .as_str()
            .map(str::to_string);
        let mut events = events;
        if let (Some(first), Some(loc)) = (events.first_mut(), first_location) {
            first.event_time = Some(loc.clone());
            first.recorded_time = Some(loc);
        }
        for e in events {
            let unit = |d: &Option<String>| -> Option<String> {
                d.as_ref()
                    .map(|id| locations.get(id).cloned().unwrap_or_else(|| id.clone()))
            };
            let dept_unit = unit(&e.department);
            let prior_unit = unit(&e.prior_department);
            units.extend(dept_unit.iter().cloned());
            units.extend(prior_unit.iter().cloned());
            let birth = e
                .birth_date
                .as_deref()
                .and_then(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").ok())
                .map(|b| (b + Duration::days(bshift)).format("%Y-%m-%d").to_string());
            let mut patient = Map::new();
            patient.insert("mrn".into(), json!(e.mrn));
            patient.insert("family_name".into(), json!(e.family_name));
            patient.insert("given_name".into(), json!(e.given_name));
            patient.insert("birth_date".into(), json!(birth));
            patient.insert("sex".into(), json!(e.sex));
            patient.insert(
                "address".into(),
                json!({"street": e.street, "city": e.city, "state": e.state, "zip": e.zip}),
            );
            if !e.attributes.is_empty() {
                patient.insert("attributes".into(), json!(e.attributes));
            }
            let event = json!({
                "schema": "patientflow.adt.v1",
                "message_id": e.message_id,
                "event_type": e.event_type,
                "facility": e.facility,
                "recorded_time": shifted(&e.recorded_time, days),
                "event_time": shifted(&e.event_time, days),
                "patient": Value::Object(patient),
                "visit": {
                    "visit_number": e.visit_number,
                    "patient_class": e.patient_class,
                    "department": dept_unit.as_deref().map(department_code),
                    "prior_department": prior_unit.as_deref().map(department_code),
                    "admit_time": shifted(&e.admit_time, days),
                    "discharge_time": shifted(&e.discharge_time, days),
                }
            });
            lines.push(event.to_string());
        }
    }
    out.events = lines.len();
    out.adt_ndjson = lines.join("\n") + "\n";
    for u in locations.values() {
        units.insert(u.clone());
    }
    out.hospitals_csv = format!(
        "hospital_id,name,city,state,time_zone\n{},\"{}\",{},{},{}\n",
        opts.facility, opts.name, opts.city, opts.state, opts.time_zone
    );
    let mut csv = String::from(
        "hospital_id,department_code,department_name,department_type,licensed_beds,staffed_beds,nurses,physicians,effective_date\n",
    );
    for u in &units {
        let code = department_code(u);
        out.department_codes.insert(u.clone(), code.clone());
        csv.push_str(&format!(
            "{},{},\"{}\",{},{},{},,,{}\n",
            opts.facility,
            code,
            u.replace('"', "\"\""),
            department_type(u),
            opts.staffed_beds,
            opts.staffed_beds,
            opts.effective_date.format("%Y-%m-%d")
        ));
    }
    out.departments_csv = csv;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn care_units_become_codes_and_types() {
        assert_eq!(
            department_code("Medical Intensive Care Unit (MICU)"),
            "MEDICAL_INTENSIVE_CARE_UNIT_MICU"
        );
        assert_eq!(department_code("Med/Surg/GYN"), "MED_SURG_GYN");
        assert_eq!(
            department_type("Emergency Department Observation"),
            "Emergency"
        );
        assert_eq!(department_type("Coronary Care Unit (CCU)"), "ICU");
        assert_eq!(department_type("Medicine/Cardiology"), "Cardiology");
        assert_eq!(department_type("PACU"), "Surgery");
        assert_eq!(department_type("Neurology"), "Medical");
    }

    #[test]
    fn an_encounter_becomes_shifted_json_events() {
        let enc = json!({
            "resourceType": "Encounter", "id": "e1", "status": "finished",
            "identifier": [{"value": "H1"}], "class": {"code": "EW EMER."},
            "subject": {"reference": "Patient/p1"}, "hospitalization": {},
            "period": {"start": "2150-03-10T08:40:00-04:00", "end": "2150-03-12T17:55:00-04:00"},
            "location": [
                {"location": {"reference": "Location/L1"}, "period": {"start": "2150-03-10T06:45:00-04:00", "end": "2150-03-10T09:33:00-04:00"}},
                {"location": {"reference": "Location/L2"}, "period": {"start": "2150-03-10T09:33:00-04:00", "end": "2150-03-12T17:55:00-04:00"}}
            ]
        });
        let pat = json!({"resourceType": "Patient", "id": "p1", "identifier": [{"value": "S1"}], "gender": "male", "birthDate": "2090-01-01"});
        let locations: HashMap<String, String> = [
            ("L1".to_string(), "Emergency Department".to_string()),
            ("L2".to_string(), "Medicine".to_string()),
        ]
        .into();
        let c = convert(
            &enc.to_string(),
            &pat.to_string(),
            &locations,
            &FhirConversionOptions::default(),
        );
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        assert_eq!(c.events, 3);
        let days = c.shift_days["H1"];
        assert_eq!(days % 7, 0);
        let first: Value = serde_json::from_str(c.adt_ndjson.lines().next().unwrap()).unwrap();
        assert_eq!(first["event_type"], "A01");
        assert_eq!(first["visit"]["department"], "EMERGENCY_DEPARTMENT");
        let t = parse(first["event_time"].as_str().unwrap()).unwrap();
        assert_eq!(
            t,
            parse("2150-03-10T06:45:00-04:00").unwrap() + Duration::days(days)
        );
        assert!(t.date_naive() >= NaiveDate::from_ymd_opt(2025, 1, 6).unwrap());
        assert!(t.date_naive() < NaiveDate::from_ymd_opt(2025, 1, 13).unwrap());
        assert!(c
            .departments_csv
            .contains("BIDMC,MEDICINE,\"Medicine\",Medical,20,20,,,2024-01-01"));
    }
}
