//! JSON ADT events, schema `patientflow.adt.v1` (docs/sources.md §1.2).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{clean_str, AdtEvent};

/// The schema name a JSON event may declare.
pub const SCHEMA: &str = "patientflow.adt.v1";

/// Why a JSON event was rejected. Messages name the field at fault, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdtJsonError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The event (or a nested part of it) is not a JSON object.
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    /// `schema` names another schema.
    #[error("unsupported schema: expected {SCHEMA}")]
    UnsupportedSchema,
    /// A required field is absent, null or empty.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field {field} must be {expected}, found {found}")]
    WrongType {
        /// Dotted path of the field, e.g. `patient.mrn`.
        field: String,
        /// The JSON type expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
}

impl AdtJsonError {
    /// A stable snake_case code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            AdtJsonError::InvalidJson(_) => "invalid_json",
            AdtJsonError::NotAnObject(_) => "not_an_object",
            AdtJsonError::UnsupportedSchema => "unsupported_schema",
            AdtJsonError::MissingField(_) => "missing_field",
            AdtJsonError::WrongType { .. } => "wrong_type",
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional string field: absent or null → `None`; a string is trimmed (empty → `None`); any other
/// type is an error naming `path`.
fn opt_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, AdtJsonError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(clean_str(s)),
        Some(other) => Err(AdtJsonError::WrongType {
            field: path.to_string(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

/// A required string field.
fn req_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<String, AdtJsonError> {
    opt_str(obj, key, path)?.ok_or(AdtJsonError::MissingField(path))
}

/// An optional nested object (absent or null → empty).
fn opt_obj<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'v Map<String, Value>>, AdtJsonError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(AdtJsonError::NotAnObject(path)),
    }
}

/// Keys of `patient` this schema maps; any other scalar key is kept as an extra attribute.
const PATIENT_KEYS: &[&str] = &[
    "mrn",
    "family_name",
    "given_name",
    "birth_date",
    "sex",
    "address",
    "attributes",
    "street",
    "city",
    "state",
    "zip",
];

/// An attribute value as text: strings as they are, numbers and booleans in JSON notation, arrays and
/// objects as compact JSON; null is "no value".
fn attribute_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => clean_str(s),
        other => Some(other.to_string()),
    }
}

/// Extra patient attributes: `patient.attributes`, plus any unmapped key directly under `patient`
/// (tolerating senders that flatten them). `attributes` wins when both name the same attribute.
fn attributes(patient: &Map<String, Value>) -> Result<BTreeMap<String, String>, AdtJsonError> {
    let mut out = BTreeMap::new();
    for (k, v) in patient {
        if !PATIENT_KEYS.contains(&k.as_str()) {
            if let Some(text) = attribute_text(v) {
                out.insert(k.clone(), text);
            }
        }
    }
    if let Some(attrs) = opt_obj(patient, "attributes", "patient.attributes")? {
        for (k, v) in attrs {
            if let (false, Some(text)) = (k.trim().is_empty(), attribute_text(v)) {
                out.insert(k.trim().to_string(), text);
            }
        }
    }
    Ok(out)
}

/// Parses one `patientflow.adt.v1` event.
///
/// Required: `message_id`, `event_type`, `facility`, `recorded_time`, `patient.mrn` (absent, null or
/// empty → [`AdtJsonError::MissingField`]). `event_time` defaults to `recorded_time`. Every mapped field
/// must be a string (or null); another type is [`AdtJsonError::WrongType`] naming the field. Address
/// parts are read from `patient.address` (or, failing that, directly from `patient`). Requirements
/// that depend on the event type (a visit number for A01–A13, a department for A01/A02/A04) are left to
/// Silver's data-quality rules, which apply them to HL7 and JSON alike.
pub fn parse_json_event(value: &Value) -> Result<AdtEvent, AdtJsonError> {
    let root = value
        .as_object()
        .ok_or(AdtJsonError::NotAnObject("the event"))?;
    if let Some(schema) = opt_str(root, "schema", "schema")? {
        if schema != SCHEMA {
            return Err(AdtJsonError::UnsupportedSchema);
        }
    }
    let message_id = req_str(root, "message_id", "message_id")?;
    let event_type = req_str(root, "event_type", "event_type")?;
    let facility = req_str(root, "facility", "facility")?;
    let recorded_time = req_str(root, "recorded_time", "recorded_time")?;
    let event_time =
        opt_str(root, "event_time", "event_time")?.unwrap_or_else(|| recorded_time.clone());
    let patient =
        opt_obj(root, "patient", "patient")?.ok_or(AdtJsonError::MissingField("patient.mrn"))?;
    let mrn = req_str(patient, "mrn", "patient.mrn")?;
    let empty = Map::new();
    let address = opt_obj(patient, "address", "patient.address")?;
    let addr = |key: &str, path: &str| match address {
        Some(a) => opt_str(a, key, path),
        None => opt_str(patient, key, path),
    };
    let visit = opt_obj(root, "visit", "visit")?.unwrap_or(&empty);
    let v = |key: &str| opt_str(visit, key, &format!("visit.{key}"));
    Ok(AdtEvent {
        message_id,
        event_type: Some(event_type),
        facility: Some(facility),
        recorded_time: Some(recorded_time),
        event_time: Some(event_time),
        mrn: Some(mrn),
        patient_identifiers: Vec::new(),
        family_name: opt_str(patient, "family_name", "patient.family_name")?,
        given_name: opt_str(patient, "given_name", "patient.given_name")?,
        birth_date: opt_str(patient, "birth_date", "patient.birth_date")?,
        sex: opt_str(patient, "sex", "patient.sex")?,
        street: addr("street", "patient.address.street")?,
        city: addr("city", "patient.address.city")?,
        state: addr("state", "patient.address.state")?,
        zip: addr("zip", "patient.address.zip")?,
        patient_class: v("patient_class")?,
        department: v("department")?,
        room: v("room")?,
        bed: v("bed")?,
        prior_department: v("prior_department")?,
        prior_room: v("prior_room")?,
        prior_bed: v("prior_bed")?,
        visit_number: v("visit_number")?,
        admit_time: v("admit_time")?,
        discharge_time: v("discharge_time")?,
        attributes: attributes(patient)?,
    })
}

/// Parses one event from JSON text (an object; a leading byte-order mark is ignored).
pub fn parse_json_event_str(text: &str) -> Result<AdtEvent, AdtJsonError> {
    let text = text.trim_start_matches('\u{feff}');
    let value: Value =
        serde_json::from_str(text).map_err(|e| AdtJsonError::InvalidJson(e.to_string()))?;
    parse_json_event(&value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc_example() -> Value {
        json!({
          "schema": "patientflow.adt.v1",
          "message_id": "MHA03-000123457",
          "event_type": "A02",
          "facility": "MHA03",
          "recorded_time": "2026-01-14T08:31:05-05:00",
          "event_time": "2026-01-14T08:30:00-05:00",
          "patient": {
            "mrn": "MHA03-P0004711",
            "family_name": "Lindqvist",
            "given_name": "Maja",
            "birth_date": "1957-03-02",
            "sex": "F",
            "address": {"street": "12 Elm St", "city": "Dayton", "state": "OH", "zip": "45402"},
            "attributes": {"preferred_language": "sv"}
          },
          "visit": {
            "visit_number": "MHA03-V0091234",
            "patient_class": "I",
            "department": "ICU",
            "room": "ICU-04",
            "bed": "ICU-04-A",
            "prior_department": "MED",
            "prior_room": "MED-12",
            "prior_bed": "MED-12-B",
            "admit_time": "2026-01-12T22:10:00-05:00",
            "discharge_time": null
          }
        })
    }

    #[test]
    fn parses_the_documented_example() {
        let e = parse_json_event(&doc_example()).unwrap();
        assert_eq!(e.message_id, "MHA03-000123457");
        assert_eq!(e.event_type.as_deref(), Some("A02"));
        assert_eq!(e.facility.as_deref(), Some("MHA03"));
        assert_eq!(
            e.recorded_time.as_deref(),
            Some("2026-01-14T08:31:05-05:00")
        );
        assert_eq!(e.event_time.as_deref(), Some("2026-01-14T08:30:00-05:00"));
        assert_eq!(e.mrn.as_deref(), Some("MHA03-P0004711"));
        assert_eq!(e.family_name.as_deref(), Some("Lindqvist"));
        assert_eq!(e.given_name.as_deref(), Some("Maja"));
        assert_eq!(e.birth_date.as_deref(), Some("1957-03-02"));
        assert_eq!(e.sex.as_deref(), Some("F"));
        assert_eq!(e.street.as_deref(), Some("12 Elm St"));
        assert_eq!(e.city.as_deref(), Some("Dayton"));
        assert_eq!(e.state.as_deref(), Some("OH"));
        assert_eq!(e.zip.as_deref(), Some("45402"));
        assert_eq!(e.patient_class.as_deref(), Some("I"));
        assert_eq!(e.department.as_deref(), Some("ICU"));
        assert_eq!(e.room.as_deref(), Some("ICU-04"));
        assert_eq!(e.bed.as_deref(), Some("ICU-04-A"));
        assert_eq!(e.prior_department.as_deref(), Some("MED"));
        assert_eq!(e.prior_room.as_deref(), Some("MED-12"));
        assert_eq!(e.prior_bed.as_deref(), Some("MED-12-B"));
        assert_eq!(e.visit_number.as_deref(), Some("MHA03-V0091234"));
        assert_eq!(e.admit_time.as_deref(), Some("2026-01-12T22:10:00-05:00"));
        assert_eq!(e.discharge_time, None);
        assert_eq!(e.attributes.len(), 1);
        assert_eq!(e.attributes["preferred_language"], "sv");
        let text = serde_json::to_string(&doc_example()).unwrap();
        assert_eq!(parse_json_event_str(&format!("\u{feff}{text}")).unwrap(), e);
    }

    #[test]
    fn event_time_defaults_to_recorded_time() {
        let mut v = doc_example();
        v.as_object_mut().unwrap().remove("event_time");
        let e = parse_json_event(&v).unwrap();
        assert_eq!(e.event_time, e.recorded_time);
        v["event_time"] = Value::Null;
        assert_eq!(parse_json_event(&v).unwrap().event_time, e.recorded_time);
    }

    #[test]
    fn minimal_event() {
        let v = json!({"message_id": "m1", "event_type": "A08", "facility": "MHA01",
                       "recorded_time": "2026-01-14 08:30", "patient": {"mrn": "P1"}});
        let e = parse_json_event(&v).unwrap();
        assert_eq!(e.visit_number, None);
        assert_eq!(e.department, None);
        assert!(e.attributes.is_empty());
    }

    #[test]
    fn missing_required_fields() {
        for (path, field) in [
            (vec!["message_id"], "message_id"),
            (vec!["event_type"], "event_type"),
            (vec!["facility"], "facility"),
            (vec!["recorded_time"], "recorded_time"),
            (vec!["patient", "mrn"], "patient.mrn"),
            (vec!["patient"], "patient.mrn"),
        ] {
            let mut v = doc_example();
            let mut obj = v.as_object_mut().unwrap();
            for key in &path[..path.len() - 1] {
                obj = obj[*key].as_object_mut().unwrap();
            }
            obj.remove(*path.last().unwrap());
            let e = parse_json_event(&v).unwrap_err();
            assert_eq!(e, AdtJsonError::MissingField(field));
            assert_eq!(e.to_string(), format!("missing required field {field}"));
        }
        let mut v = doc_example();
        v["message_id"] = json!("  ");
        assert_eq!(
            parse_json_event(&v).unwrap_err(),
            AdtJsonError::MissingField("message_id")
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut v = doc_example();
        v["patient"]["mrn"] = json!(4711);
        let e = parse_json_event(&v).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field patient.mrn must be a string, found a number"
        );
        let mut v = doc_example();
        v["visit"]["department"] = json!(["ICU"]);
        assert_eq!(
            parse_json_event(&v).unwrap_err(),
            AdtJsonError::WrongType {
                field: "visit.department".into(),
                expected: "a string",
                found: "an array"
            }
        );
        let mut v = doc_example();
        v["patient"]["address"]["zip"] = json!(45402);
        assert!(parse_json_event(&v)
            .unwrap_err()
            .to_string()
            .contains("patient.address.zip"));
        let mut v = doc_example();
        v["visit"] = json!("ICU");
        assert_eq!(
            parse_json_event(&v).unwrap_err(),
            AdtJsonError::NotAnObject("visit")
        );
        assert_eq!(
            parse_json_event(&json!([1])).unwrap_err(),
            AdtJsonError::NotAnObject("the event")
        );
        let mut v = doc_example();
        v["schema"] = json!("other.v2");
        assert_eq!(
            parse_json_event(&v).unwrap_err(),
            AdtJsonError::UnsupportedSchema
        );
        assert!(matches!(
            parse_json_event_str("{not json"),
            Err(AdtJsonError::InvalidJson(_))
        ));
    }

    #[test]
    fn extra_attributes() {
        let mut v = doc_example();
        v["patient"]["attributes"] = json!({"insurance_type": "Medicaid", "age": 42, "vip": true,
                                             "gone": null, "tags": ["a", "b"]});
        v["patient"]["preferred_language"] = json!("es");
        let e = parse_json_event(&v).unwrap();
        let want: BTreeMap<String, String> = [
            ("age", "42"),
            ("insurance_type", "Medicaid"),
            ("preferred_language", "es"),
            ("tags", "[\"a\",\"b\"]"),
            ("vip", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(e.attributes, want);
    }
}
