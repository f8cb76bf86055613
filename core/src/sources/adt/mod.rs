//! ADT (admit / discharge / transfer) messages: HL7 v2 ER7 and `patientflow.adt.v1` JSON, parsed into one
//! source-neutral [`AdtEvent`] that Silver consumes. Pure parsing: no I/O, no clock reads.
//!
//! - [`hl7`]: splitting a file or event into messages ([`hl7::split_stream`]), parsing them
//!   ([`hl7::Hl7Message`]) and mapping them ([`hl7::to_adt_event`]).
//! - [`json`]: JSON events ([`json::parse_json_event`]).
//! - [`fhir`]: FHIR R4 Encounter/Patient resources ([`fhir::encounter_events`]).
//! - [`time`]: source timestamps and birth dates, with the DST policy for zone-less local times.
//!
//! The wire formats are specified in `docs/sources.md` §1.

use std::collections::BTreeMap;

pub mod fhir;
pub mod hl7;
pub mod json;
pub mod time;

/// One ADT event, whatever format it arrived in.
///
/// Every value is the source's text, trimmed; empty or absent values — and HL7's explicit null `""` —
/// are `None`. Times and the birth
/// date stay raw strings so Silver can apply its data-quality rules to them (placeholders, mixed formats,
/// missing offsets); [`time::parse_source_time`] and [`time::parse_date`] parse them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct AdtEvent {
    /// Message id, the idempotency key (HL7 MSH-10; JSON `message_id`).
    pub message_id: String,
    /// HL7 trigger event code such as `A01` (HL7 MSH-9.2, else EVN-1; JSON `event_type`).
    pub event_type: Option<String>,
    /// Hospital id (HL7 MSH-4.1, else PV1-3.4; JSON `facility`).
    pub facility: Option<String>,
    /// When the event was recorded (HL7 EVN-2, else MSH-7; JSON `recorded_time`).
    pub recorded_time: Option<String>,
    /// When the event happened (HL7 EVN-6, else EVN-2, else MSH-7; JSON `event_time`, else
    /// `recorded_time`).
    pub event_time: Option<String>,
    /// Medical record number (HL7 PID-3: the first repetition typed `MR`, else the first one). Silver
    /// may choose another of [`AdtEvent::patient_identifiers`] by the facility's assigning authority.
    pub mrn: Option<String>,
    /// Every patient identifier the message carries (HL7 PID-3 repetitions), in message order. Empty
    /// for sources that name only one MRN (JSON `patient.mrn`, FHIR).
    #[serde(default)]
    pub patient_identifiers: Vec<PatientIdentifier>,
    /// Family name (HL7 PID-5.1).
    pub family_name: Option<String>,
    /// Given name (HL7 PID-5.2).
    pub given_name: Option<String>,
    /// Birth date as sent (HL7 PID-7, a DTM; JSON `YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// Administrative sex (HL7 table 0001 code, PID-8).
    pub sex: Option<String>,
    /// Street address (HL7 PID-11.1).
    pub street: Option<String>,
    /// City (HL7 PID-11.3).
    pub city: Option<String>,
    /// State (HL7 PID-11.4).
    pub state: Option<String>,
    /// ZIP / postal code (HL7 PID-11.5).
    pub zip: Option<String>,
    /// Patient class (HL7 table 0004 code, PV1-2).
    pub patient_class: Option<String>,
    /// Department code: the point of care (HL7 PV1-3.1).
    pub department: Option<String>,
    /// Room (HL7 PV1-3.2).
    pub room: Option<String>,
    /// Bed (HL7 PV1-3.3).
    pub bed: Option<String>,
    /// Department before a transfer (HL7 PV1-6.1).
    pub prior_department: Option<String>,
    /// Room before a transfer (HL7 PV1-6.2).
    pub prior_room: Option<String>,
    /// Bed before a transfer (HL7 PV1-6.3).
    pub prior_bed: Option<String>,
    /// Visit number, the encounter id (HL7 PV1-19.1).
    pub visit_number: Option<String>,
    /// Admission time (HL7 PV1-44).
    pub admit_time: Option<String>,
    /// Discharge time (HL7 PV1-45).
    pub discharge_time: Option<String>,
    /// Extra patient attributes by name (HL7 `ZPF-1` repetitions `name=value`; JSON
    /// `patient.attributes`), for schema evolution.
    pub attributes: BTreeMap<String, String>,
}

/// One patient identifier (HL7 CX): the id and who issued it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PatientIdentifier {
    /// The id (CX.1).
    pub id: String,
    /// The assigning authority's namespace id (CX.4, first sub-component HD.1), e.g. `MHA01`.
    pub assigning_authority: Option<String>,
    /// The identifier type code (CX.5, HL7 table 0203), e.g. `MR`.
    pub type_code: Option<String>,
}

impl PatientIdentifier {
    /// True when typed `MR` (medical record number).
    pub fn is_mrn(&self) -> bool {
        self.type_code
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("MR"))
    }
}

/// The encoding of an ADT payload, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdtFormat {
    /// HL7 v2 ER7: starts with `MSH`, `FHS` or `BHS`.
    Hl7,
    /// JSON: starts with `{` or `[`.
    Json,
    /// Anything else.
    Unknown,
}

/// Guesses the format of a payload from its first significant characters (after a byte-order mark,
/// whitespace and MLLP framing bytes).
pub fn detect_format(text: &str) -> AdtFormat {
    let t = text.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '\u{feff}' | '\u{0b}' | '\u{1c}')
    });
    if ["MSH", "FHS", "BHS"].iter().any(|p| t.starts_with(p)) {
        AdtFormat::Hl7
    } else if t.starts_with(['{', '[']) {
        AdtFormat::Json
    } else {
        AdtFormat::Unknown
    }
}

/// Trims a value; `None` when nothing is left.
pub(crate) fn clean_str(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect_format("MSH|^~\\&|"), AdtFormat::Hl7);
        assert_eq!(detect_format("\u{feff}\u{0b}MSH|^~\\&|"), AdtFormat::Hl7);
        assert_eq!(detect_format("\r\nFHS|^~\\&|"), AdtFormat::Hl7);
        assert_eq!(detect_format("BHS|^~\\&|"), AdtFormat::Hl7);
        assert_eq!(detect_format("  {\"a\":1}"), AdtFormat::Json);
        assert_eq!(detect_format("\u{feff}[{}]"), AdtFormat::Json);
        assert_eq!(detect_format("PID|1"), AdtFormat::Unknown);
        assert_eq!(detect_format(""), AdtFormat::Unknown);
        assert_eq!(detect_format("msh|"), AdtFormat::Unknown);
    }
}
