//! Bronze ADT messages → typed Silver events, through the data-quality rules.
//!
//! A message is either applied (with the repairs and left-out attributes it needed), counted as not
//! applicable (not a patient-flow event), or rejected to quarantine with its rule and reason. Nothing is
//! invented: a value that fails its checks is left out, and the previous known value stands.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::dq::checks::{check_birth_date, check_time, normalise_sex, TimeContext};
use super::dq::rules;
use super::dq::Finding;
use crate::bronze::charset::Declared;
use crate::sources::adt::hl7::{to_adt_event, Hl7Message};
use crate::sources::adt::json::parse_json_event_str;
use crate::sources::adt::time::TimeFormat;
use crate::sources::adt::AdtEvent;

/// Trigger events that change encounters or patients; others are stored in Bronze but not applied.
pub const APPLIED_EVENTS: [&str; 8] = ["A01", "A02", "A03", "A04", "A08", "A11", "A12", "A13"];

/// What Silver needs to know of the network to check a message.
#[derive(Debug, Clone, Default)]
pub struct ReferenceData {
    /// Hospital id → IANA time zone.
    pub hospitals: HashMap<String, Tz>,
    /// Hospital id → department codes ever defined for it.
    pub departments: HashMap<String, HashSet<String>>,
    /// Hospital id → the assigning authority (PID-3 CX.4) of its MRNs, where configured
    /// (`mrn_assigning_authority` of the hospital metadata).
    pub mrn_authorities: HashMap<String, String>,
}

/// How Bronze read a message whose bytes are not valid in its declared or expected character set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CharsetReading {
    /// MSH-18 as sent (`bronze_adt_messages.declared_charset`).
    pub declared: Option<String>,
    /// The fields read byte per character as ISO 8859-1, a guess (`charset_issue`: `PID-5`, JSON
    /// paths, `payload`).
    pub fields: Vec<String>,
}

/// The HL7 fields the pipeline keys a message by: sending application and facility, control id,
/// patient identifiers, location, visit number. A guessed reading of one of them is not trustworthy.
const CHARSET_KEY_FIELDS: [&str; 6] = ["MSH-3", "MSH-4", "MSH-10", "PID-3", "PV1-3", "PV1-19"];

/// Applies the character-set rules to a typed message: a message that declares UTF-8 (MSH-18) but is
/// not valid UTF-8 is rejected when an identifier it is keyed by is affected, and otherwise applied
/// with a repair finding; a message without a usable declaration that needed the Latin-1 reading is
/// applied with an info finding. A message not applied anyway stays so.
fn with_charset(row: &BronzeAdtRow, typed: Typed) -> Typed {
    let Some(reading) = &row.charset else {
        return typed;
    };
    if matches!(typed, Typed::NotApplied(_)) {
        return typed;
    }
    let fields = reading.fields.join(", ");
    let field = reading.fields.join(",");
    let finding = match reading.declared.as_deref() {
        Some(declared) if Declared::of(Some(declared)) == Declared::Utf8 => {
            let keys: Vec<&str> = reading
                .fields
                .iter()
                .map(String::as_str)
                .filter(|f| CHARSET_KEY_FIELDS.contains(f))
                .collect();
            if !keys.is_empty() {
                return Typed::Rejected(Finding::new(
                    &rules::ADT_CHARSET_INVALID,
                    Some(&keys.join(",")),
                    format!(
                        "MSH-18 declares {declared} but {} is not valid UTF-8: an identifier the \
                         message is keyed by cannot be trusted (its Latin-1 reading would be a guess)",
                        keys.join(", ")
                    ),
                    Some(declared),
                ));
            }
            Finding::new(
                &rules::ADT_CHARSET_INVALID,
                Some(&field),
                format!(
                    "guessed repair: MSH-18 declares {declared} but the message is not valid UTF-8; \
                     {fields} read byte by byte as ISO 8859-1 (Latin-1), a guess at what was meant"
                ),
                Some(declared),
            )
        }
        declared => Finding::new(
            &rules::ADT_CHARSET_FALLBACK,
            Some(&field),
            format!(
                "guessed repair: the message is not valid UTF-8 and {}; {fields} read byte by byte \
                 as ISO 8859-1 (Latin-1)",
                match declared {
                    Some(d) if Declared::of(Some(d)) == Declared::Other => {
                        format!("declares {d}, which Bronze does not decode")
                    }
                    Some(d) => format!("declares {d} (7-bit)"),
                    None => "declares no character set (no MSH-18: ASCII expected)".to_string(),
                }
            ),
            declared,
        ),
    };
    match typed {
        Typed::Event(event, mut findings) => {
            findings.push(finding);
            Typed::Event(event, findings)
        }
        other => other,
    }
}

/// One Bronze ADT row, as Silver reads it.
#[derive(Debug, Clone)]
pub struct BronzeAdtRow {
    /// `<facility>|<message id>` or `sha256:<hash>`.
    pub message_key: String,
    /// `hl7v2`, `json`, `fhir`, `unknown`.
    pub format: String,
    /// `ok` or `unparseable`.
    pub parse_status: String,
    /// Bronze's reason when unparseable.
    pub parse_error: Option<String>,
    /// Same key, different content as an earlier message.
    pub id_conflict: bool,
    /// The message.
    pub payload: String,
    /// SHA-256 of the payload (hex): with the key, identifies one of several messages sharing an id.
    pub payload_sha256: String,
    /// File or Event Hub name.
    pub source_name: String,
    /// Position in the file or event.
    pub source_position: i64,
    /// When Bronze received it.
    pub ingested_at: DateTime<Utc>,
    /// The Event Hub partition it was read from (Event Hub deliveries only).
    pub eh_partition: Option<String>,
    /// Its offset in that partition (Event Hub deliveries only).
    pub eh_offset: Option<String>,
    /// How Bronze read it when its bytes were not valid in the declared or expected character set
    /// (`bronze_adt_messages.charset_issue` set); `None` for a message read as sent.
    pub charset: Option<CharsetReading>,
}

/// A typed, checked ADT event.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedEvent {
    /// Bronze message key (lineage and idempotency).
    pub message_key: String,
    /// Message id.
    pub message_id: String,
    /// Hospital id.
    pub hospital_id: String,
    /// Trigger event.
    pub event_type: String,
    /// When it happened, UTC.
    pub event_time: DateTime<Utc>,
    /// When it was recorded, UTC.
    pub recorded_time: Option<DateTime<Utc>>,
    /// `<hospital>|<mrn>`.
    pub patient_key: String,
    /// MRN.
    pub mrn: String,
    /// `<hospital>|<visit number>` when the message names a visit.
    pub encounter_key: Option<String>,
    /// Visit number.
    pub visit_number: Option<String>,
    /// Patient class (HL7 0004).
    pub patient_class: Option<String>,
    /// Department code.
    pub department: Option<String>,
    /// Room.
    pub room: Option<String>,
    /// Bed.
    pub bed: Option<String>,
    /// Department before a transfer.
    pub prior_department: Option<String>,
    /// PV1-44, checked.
    pub admit_time: Option<DateTime<Utc>>,
    /// PV1-45, checked.
    pub discharge_time: Option<DateTime<Utc>>,
    /// Demographics that passed their checks (family_name, given_name, birth_date, sex, street, city,
    /// state, zip and any extra attributes).
    pub demographics: BTreeMap<String, String>,
    /// File or Event Hub name.
    pub source_name: String,
    /// Position within the source.
    pub source_position: i64,
    /// When Bronze received the message.
    pub ingested_at: DateTime<Utc>,
}

/// The outcome for one Bronze row.
#[derive(Debug, Clone)]
pub enum Typed {
    /// Applied; with the repairs and left-out attributes (findings of severity info/warn).
    Event(Box<TypedEvent>, Vec<Finding>),
    /// Not a patient-flow ADT event: counted, not applied.
    NotApplied(Finding),
    /// Rejected: goes to quarantine.
    Rejected(Finding),
}

/// Types and checks one Bronze ADT row.
pub fn type_row(row: &BronzeAdtRow, refdata: &ReferenceData) -> Typed {
    if row.parse_status != "ok" {
        let reason = row
            .parse_error
            .clone()
            .unwrap_or_else(|| "unparseable message".into());
        return Typed::Rejected(Finding::new(&rules::ADT_MALFORMED, None, reason, None));
    }
    if row.id_conflict {
        return Typed::Rejected(Finding::new(
            &rules::ADT_ID_CONFLICT,
            Some("message_id"),
            "message id already used by a message with different content",
            None,
        ));
    }
    let (event, standard) = match row.format.as_str() {
        "hl7v2" => {
            let parsed = Hl7Message::parse(&row.payload).and_then(|m| {
                let missing = missing_segments(&m);
                to_adt_event(&m).map(|e| (e, missing))
            });
            match parsed {
                Ok((e, missing)) => {
                    let applies = e
                        .event_type
                        .as_deref()
                        .is_some_and(|t| APPLIED_EVENTS.contains(&t));
                    if applies && !missing.is_empty() {
                        return Typed::Rejected(Finding::new(
                            &rules::ADT_MALFORMED,
                            None,
                            format!(
                                "ADT message without its {} segment(s): truncated?",
                                missing.join(", ")
                            ),
                            None,
                        ));
                    }
                    (e, TimeFormat::Hl7Dtm)
                }
                Err(e) => {
                    return Typed::Rejected(Finding::new(
                        &rules::ADT_MALFORMED,
                        None,
                        e.to_string(),
                        None,
                    ))
                }
            }
        }
        "json" => match parse_json_event_str(&row.payload) {
            Ok(e) => (e, TimeFormat::Iso8601),
            Err(e) => {
                return Typed::Rejected(Finding::new(
                    &rules::ADT_MALFORMED,
                    None,
                    e.to_string(),
                    None,
                ))
            }
        },
        other => {
            return Typed::NotApplied(Finding::new(
                &rules::ADT_NOT_APPLIED,
                None,
                format!("{other} messages are not applied as ADT events"),
                None,
            ))
        }
    };
    with_charset(row, type_event(row, event, standard, refdata))
}

fn type_event(
    row: &BronzeAdtRow,
    e: AdtEvent,
    standard: TimeFormat,
    refdata: &ReferenceData,
) -> Typed {
    let event_type = e.event_type.clone().unwrap_or_default();
    if !APPLIED_EVENTS.contains(&event_type.as_str()) {
        return Typed::NotApplied(Finding::new(
            &rules::ADT_NOT_APPLIED,
            Some("event_type"),
            format!("event '{event_type}' is not applied"),
            Some(&event_type),
        ));
    }
    let Some((hospital_id, zone)) = e
        .facility
        .as_ref()
        .and_then(|f| refdata.hospitals.get(f).map(|z| (f.clone(), *z)))
    else {
        return Typed::Rejected(Finding::new(
            &rules::ADT_FACILITY_UNKNOWN,
            Some("facility"),
            "sending facility is not a hospital of the network",
            e.facility.as_deref(),
        ));
    };
    let (mrn, mrn_finding) = choose_mrn(&e, refdata.mrn_authorities.get(&hospital_id));
    let Some(mrn) = mrn else {
        return Typed::Rejected(Finding::new(
            &rules::ADT_MRN_MISSING,
            Some("mrn"),
            "no patient identifier",
            None,
        ));
    };
    let encounter_event = event_type != "A08";
    if encounter_event && e.visit_number.is_none() {
        return Typed::Rejected(Finding::new(
            &rules::ADT_VISIT_MISSING,
            Some("visit_number"),
            "encounter event without a visit number",
            None,
        ));
    }
    // The reference for "in the future": the message's own recorded time when it is plausible (a replay
    // of history is received long after it was recorded), else when we received it.
    let received_ctx = TimeContext {
        zone,
        received: row.ingested_at + chrono::Duration::days(400),
        standard,
    };
    let reference = e
        .recorded_time
        .as_deref()
        .and_then(|raw| {
            check_time(
                "recorded_time",
                raw,
                &received_ctx,
                &rules::TIME_PLACEHOLDER,
            )
            .ok()
        })
        .map(|t| t.utc)
        .unwrap_or(row.ingested_at);
    let ctx = TimeContext {
        zone,
        received: reference,
        standard,
    };
    let mut findings = Vec::new();
    findings.extend(mrn_finding);

    let Some(raw_event_time) = e.event_time.as_deref() else {
        return Typed::Rejected(Finding::new(
            &rules::TIME_EVENT_INVALID,
            Some("event_time"),
            "no event time",
            None,
        ));
    };
    let event_time = match check_time(
        "event_time",
        raw_event_time,
        &ctx,
        &rules::TIME_EVENT_INVALID,
    ) {
        Ok(t) => {
            findings.extend(t.findings);
            t.utc
        }
        // An event that cannot be placed in time cannot be applied.
        Err(f) => return Typed::Rejected(f),
    };
    let optional_time =
        |field: &str, raw: Option<&str>, findings: &mut Vec<Finding>| -> Option<DateTime<Utc>> {
            let raw = raw?;
            match check_time(field, raw, &ctx, &rules::TIME_PLACEHOLDER) {
                Ok(t) => {
                    findings.extend(t.findings);
                    Some(t.utc)
                }
                Err(f) => {
                    findings.push(f);
                    None
                }
            }
        };
    let recorded_time = match e.recorded_time.as_deref() {
        Some(raw) => match check_time(
            "recorded_time",
            raw,
            &received_ctx,
            &rules::TIME_PLACEHOLDER,
        ) {
            Ok(t) => {
                findings.extend(t.findings);
                Some(t.utc)
            }
            Err(f) => {
                findings.push(f);
                None
            }
        },
        None => None,
    };
    let mut admit_time = optional_time("admit_time", e.admit_time.as_deref(), &mut findings);
    let mut discharge_time =
        optional_time("discharge_time", e.discharge_time.as_deref(), &mut findings);
    if event_type == "A01" && admit_time.is_none() {
        findings.push(Finding::new(
            &rules::ADMIT_TIME_MISSING,
            Some("admit_time"),
            "guessed repair: A01 without a usable admit time (PV1-44); the admission is taken to be the event time (EVN-6)",
            e.admit_time.as_deref(),
        ));
        admit_time = Some(event_time);
    }
    if let (Some(admit), Some(discharge)) = (admit_time, discharge_time) {
        if discharge < admit {
            if event_type == "A03" && event_time >= admit {
                findings.push(Finding::new(
                    &rules::TIME_DISCHARGE_BEFORE_ADMIT,
                    Some("discharge_time"),
                    "guessed repair: discharge time (PV1-45) before the admit time; the discharge is taken to be the A03's event time",
                    e.discharge_time.as_deref(),
                ));
                discharge_time = Some(event_time);
            } else if event_type == "A03" {
                return Typed::Rejected(Finding::new(
                    &rules::TIME_DISCHARGE_BEFORE_ADMIT,
                    Some("discharge_time"),
                    "discharge before admission, and the event time too",
                    e.discharge_time.as_deref(),
                ));
            } else {
                findings.push(
                    Finding::new(
                        &rules::TIME_DISCHARGE_BEFORE_ADMIT,
                        Some("discharge_time"),
                        "discharge time before admit time: left out",
                        e.discharge_time.as_deref(),
                    )
                    .with_action(rules::Action::DropAttribute),
                );
                discharge_time = None;
            }
        }
    }
    if let Some(dept) = &e.department {
        let known = refdata
            .departments
            .get(&hospital_id)
            .is_some_and(|d| d.contains(dept));
        if !known {
            return Typed::Rejected(Finding::new(
                &rules::DEPT_UNKNOWN,
                Some("department"),
                format!("department is not defined for {hospital_id}"),
                Some(dept),
            ));
        }
    }

    let mut demographics = BTreeMap::new();
    for (k, v) in [
        ("family_name", &e.family_name),
        ("given_name", &e.given_name),
        ("street", &e.street),
        ("city", &e.city),
        ("state", &e.state),
        ("zip", &e.zip),
    ] {
        if let Some(v) = v {
            demographics.insert(k.to_string(), v.clone());
        }
    }
    if let Some(raw) = &e.birth_date {
        match check_birth_date(raw, event_time) {
            Ok(d) => {
                demographics.insert("birth_date".into(), format_date(d));
            }
            Err(f) => findings.push(f),
        }
    }
    if let Some(raw) = &e.sex {
        match normalise_sex(raw) {
            Ok((code, repair)) => {
                demographics.insert("sex".into(), code);
                findings.extend(repair);
            }
            Err(f) => findings.push(f),
        }
    }
    for (k, v) in &e.attributes {
        let name = crate::bronze::profiles::normalise_column(k);
        demographics.entry(name).or_insert_with(|| v.clone());
    }

    let event = TypedEvent {
        message_key: row.message_key.clone(),
        message_id: e.message_id.clone(),
        patient_key: format!("{hospital_id}|{mrn}"),
        encounter_key: e
            .visit_number
            .as_ref()
            .map(|v| format!("{hospital_id}|{v}")),
        hospital_id,
        event_type,
        event_time,
        recorded_time,
        mrn,
        visit_number: e.visit_number.clone(),
        patient_class: e.patient_class.clone(),
        department: e.department.clone(),
        room: e.room.clone(),
        bed: e.bed.clone(),
        prior_department: e.prior_department.clone(),
        admit_time,
        discharge_time,
        demographics,
        source_name: row.source_name.clone(),
        source_position: row.source_position,
        ingested_at: row.ingested_at,
    };
    Typed::Event(Box::new(event), findings)
}

/// The MRN: the PID-3 repetition typed `MR` whose assigning authority (CX.4) is the facility's
/// configured one; when none is configured or none matches, the source's own choice (the first
/// MR-typed repetition, else the first). A configured authority missing among several MR-typed
/// repetitions leaves an info finding, so the fallback is visible.
fn choose_mrn(e: &AdtEvent, authority: Option<&String>) -> (Option<String>, Option<Finding>) {
    let Some(authority) = authority else {
        return (e.mrn.clone(), None);
    };
    let typed: Vec<_> = e
        .patient_identifiers
        .iter()
        .filter(|i| i.is_mrn())
        .collect();
    let chosen = typed.iter().find(|i| {
        i.assigning_authority
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(authority))
    });
    if let Some(id) = chosen {
        return (Some(id.id.clone()), None);
    }
    let finding = (typed.len() > 1).then(|| {
        let seen: Vec<&str> = typed
            .iter()
            .map(|i| i.assigning_authority.as_deref().unwrap_or("(none)"))
            .collect();
        Finding::new(
            &rules::ADT_MRN_AUTHORITY,
            Some("mrn"),
            format!(
                "guessed repair: no MR-typed PID-3 repetition from the configured assigning \
                 authority {authority} (found {}); the first MR-typed one is taken as the MRN",
                seen.join(", ")
            ),
            e.mrn.as_deref(),
        )
    });
    (e.mrn.clone(), finding)
}

/// Segments an ADT message of an applied trigger must have. The HL7 v2.5 structures of the applied
/// triggers (ADT_A01 for A01/A04/A08/A13, ADT_A02, ADT_A03, ADT_A09 for A11, ADT_A12) all require
/// EVN, PID and PV1.
fn missing_segments(m: &Hl7Message<'_>) -> Vec<&'static str> {
    ["EVN", "PID", "PV1"]
        .into_iter()
        .filter(|s| m.segment(s).is_none())
        .collect()
}

/// `YYYY-MM-DD`.
pub fn format_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn refdata() -> ReferenceData {
        ReferenceData {
            hospitals: HashMap::from([("MHA01".to_string(), chrono_tz::America::Chicago)]),
            departments: HashMap::from([(
                "MHA01".to_string(),
                ["ED", "MED", "ICU"].iter().map(|s| s.to_string()).collect(),
            )]),
            ..ReferenceData::default()
        }
    }

    fn row(payload: &str) -> BronzeAdtRow {
        BronzeAdtRow {
            message_key: "MHA01|M1".into(),
            format: "hl7v2".into(),
            parse_status: "ok".into(),
            parse_error: None,
            id_conflict: false,
            payload: payload.replace('\n', "\r"),
            payload_sha256: String::new(),
            source_name: "test".into(),
            source_position: 0,
            ingested_at: Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0).unwrap(),
            eh_partition: None,
            eh_offset: None,
            charset: None,
        }
    }

    const A01: &str = "MSH|^~\\&|REG|MHA01|LAKE|MHA|20260114083000-0600||ADT^A01|M1|P|2.5\n\
EVN|A01|20260114083000-0600||||20260114082500-0600\n\
PID|||P1^^^MHA01^MR||Doe^Jane||19800101|female\n\
PV1||I|MED^12^B^MHA01||||||||||||||||V1|||||||||||||||||||||||||{admit}";

    #[test]
    fn a_clean_admission_is_typed_in_utc_with_repairs_noted() {
        let typed = type_row(
            &row(&A01.replace("{admit}", "20260114082500-0600")),
            &refdata(),
        );
        let Typed::Event(e, findings) = typed else {
            panic!("not an event")
        };
        assert_eq!(e.event_type, "A01");
        assert_eq!(
            e.event_time,
            Utc.with_ymd_and_hms(2026, 1, 14, 14, 25, 0).unwrap()
        );
        assert_eq!(e.admit_time, Some(e.event_time));
        assert_eq!(e.encounter_key.as_deref(), Some("MHA01|V1"));
        assert_eq!(e.demographics["sex"], "F");
        assert_eq!(e.demographics["birth_date"], "1980-01-01");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule.id, "DQ-PAT-SEX-INVALID");
    }

    #[test]
    fn a_missing_admit_time_is_the_event_time_and_unknown_departments_are_rejected() {
        let Typed::Event(e, findings) = type_row(&row(&A01.replace("{admit}", "")), &refdata())
        else {
            panic!()
        };
        assert_eq!(e.admit_time, Some(e.event_time));
        assert!(findings
            .iter()
            .any(|f| f.rule.id == "DQ-ADMIT-TIME-MISSING"));
        let bad = A01.replace("{admit}", "").replace("MED^12^B", "XRAY9^1^A");
        let Typed::Rejected(f) = type_row(&row(&bad), &refdata()) else {
            panic!()
        };
        assert_eq!(f.rule.id, "DQ-DEPT-UNKNOWN");
        assert_eq!(f.raw_value.as_deref(), Some("XRAY9"));
    }

    #[test]
    fn the_mrn_is_chosen_by_the_facility_s_assigning_authority() {
        let two = A01
            .replace("{admit}", "")
            .replace("P1^^^MHA01^MR", "LEG123^^^LEGACY^MR~N456^^^MHA01^MR");
        let typed = |refdata: &ReferenceData, payload: &str| match type_row(&row(payload), refdata)
        {
            Typed::Event(e, f) => (e, f),
            other => panic!("{other:?}"),
        };
        let mut configured = refdata();
        configured
            .mrn_authorities
            .insert("MHA01".into(), "MHA01".into());
        let (e, findings) = typed(&configured, &two);
        assert_eq!(
            (e.mrn.as_str(), e.patient_key.as_str()),
            ("N456", "MHA01|N456")
        );
        assert!(!findings.iter().any(|f| f.rule.id == "DQ-ADT-MRN-AUTHORITY"));
        // Not configured: the first MR-typed repetition, silently (the documented rule).
        let (e, findings) = typed(&refdata(), &two);
        assert_eq!(
            (e.mrn.as_str(), e.patient_key.as_str()),
            ("LEG123", "MHA01|LEG123")
        );
        assert!(!findings.iter().any(|f| f.rule.id == "DQ-ADT-MRN-AUTHORITY"));
        // Configured but absent among several MR repetitions: the fallback, with an info finding.
        configured
            .mrn_authorities
            .insert("MHA01".into(), "OTHER".into());
        let (e, findings) = typed(&configured, &two);
        assert_eq!(e.mrn, "LEG123");
        let f = findings
            .iter()
            .find(|f| f.rule.id == "DQ-ADT-MRN-AUTHORITY")
            .expect("fallback finding");
        assert!(
            f.reason.contains("OTHER") && f.reason.contains("LEGACY, MHA01"),
            "{}",
            f.reason
        );
        assert_eq!(f.raw_value.as_deref(), Some("LEG123"));
        // One MR repetition from another authority: the fallback without a finding.
        let one = A01
            .replace("{admit}", "")
            .replace("P1^^^MHA01^MR", "P1^^^LEGACY^MR");
        let (e, findings) = typed(&configured, &one);
        assert_eq!(e.mrn, "P1");
        assert!(!findings.iter().any(|f| f.rule.id == "DQ-ADT-MRN-AUTHORITY"));
    }

    #[test]
    fn rejections_and_non_adt_messages() {
        let mut r = row("MSH|x");
        r.parse_status = "unparseable".into();
        r.parse_error = Some("truncated".into());
        assert!(
            matches!(type_row(&r, &refdata()), Typed::Rejected(f) if f.rule.id == "DQ-ADT-MALFORMED")
        );
        let oru = "MSH|^~\\&|LAB|MHA01|LAKE|MHA|20260114083000-0600||ORU^R01|M2|P|2.5\nPID|||P1";
        assert!(matches!(
            type_row(&row(oru), &refdata()),
            Typed::NotApplied(_)
        ));
        let future = A01
            .replace("{admit}", "")
            .replace("20260114082500-0600", "20390114082500-0600");
        assert!(
            matches!(type_row(&row(&future), &refdata()), Typed::Rejected(f) if f.rule.id == "DQ-TIME-FUTURE")
        );
        let other_hospital = A01
            .replace("{admit}", "")
            .replace("|MHA01|LAKE", "|XX99|LAKE");
        assert!(
            matches!(type_row(&row(&other_hospital), &refdata()), Typed::Rejected(f) if f.rule.id == "DQ-ADT-FACILITY-UNKNOWN")
        );
    }
}
