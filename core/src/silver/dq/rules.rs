//! The data-quality rule catalogue. Every rule has an id, a severity and an action; `docs/data-quality.md`
//! describes each one and the tests check that the two agree.

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Recorded for the report; the data is correct as repaired.
    Info,
    /// Part of a record was not usable; the rest was kept.
    Warn,
    /// The record was rejected.
    Error,
}

impl Severity {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// What a rule does to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The record is kept with a value repaired by the rule's documented method.
    Repair,
    /// The offending attribute is left out (the previous known value stays); the record is kept.
    DropAttribute,
    /// The whole record goes to quarantine.
    Quarantine,
    /// Counted only (e.g. a re-delivery removed by Bronze, an event that arrived late).
    Count,
    /// The value fits neither its column's type nor an allowed widening: the typed column is left null
    /// and the raw value is kept in the row's `_rescued_data`.
    Rescue,
    /// The column's type was widened (long → double, date → timestamp); no value changed.
    Widen,
}

impl Action {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Repair => "repair",
            Action::DropAttribute => "drop_attribute",
            Action::Quarantine => "quarantine",
            Action::Count => "count",
            Action::Rescue => "rescue",
            Action::Widen => "widen",
        }
    }
}

/// One rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Stable id (`DQ-TIME-FUTURE`).
    pub id: &'static str,
    /// One line on what the rule checks.
    pub description: &'static str,
    /// Severity of a finding.
    pub severity: Severity,
    /// What happens to the record.
    pub action: Action,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $sev:ident, $act:ident, $desc:literal;)*) => {
        $(
            #[doc = $desc]
            pub const $name: Rule = Rule { id: $id, description: $desc, severity: Severity::$sev, action: Action::$act };
        )*
        /// Every rule, in catalogue order.
        pub const ALL: &[Rule] = &[$($name),*];
    };
}

rules! {
    ADT_MALFORMED = "DQ-ADT-MALFORMED", Error, Quarantine,
        "The message could not be parsed (truncated, no MSH-10, wrong separators, not HL7 or JSON).";
    ADT_ID_CONFLICT = "DQ-ADT-ID-CONFLICT", Error, Quarantine,
        "A message reuses the id of an earlier message with different content; the first one stands.";
    ADT_NOT_APPLIED = "DQ-ADT-NOT-APPLIED", Info, Count,
        "A message that is not a patient-flow ADT event (e.g. ORU results, A05, A40); stored in Bronze, counted, not applied.";
    ADT_FACILITY_UNKNOWN = "DQ-ADT-FACILITY-UNKNOWN", Error, Quarantine,
        "The sending facility is missing or not a hospital of the network.";
    ADT_MRN_MISSING = "DQ-ADT-MRN-MISSING", Error, Quarantine,
        "The message names no patient (PID-3 / patient.mrn empty).";
    ADT_VISIT_MISSING = "DQ-ADT-VISIT-MISSING", Error, Quarantine,
        "An encounter event (A01-A04, A11-A13) without a visit number (PV1-19).";
    TIME_EVENT_INVALID = "DQ-TIME-EVENT-INVALID", Error, Quarantine,
        "The event time (EVN-6, else EVN-2, else MSH-7) is missing or unreadable.";
    TIME_PLACEHOLDER = "DQ-TIME-PLACEHOLDER", Warn, DropAttribute,
        "A 1900-01-01 or 1970-01-01 placeholder date; an event time like that rejects the message, another field is left out.";
    TIME_FUTURE = "DQ-TIME-FUTURE", Warn, DropAttribute,
        "A time more than 24 h after the message was created or received; an event time like that rejects the message, another field is left out.";
    TIME_FORMAT = "DQ-TIME-FORMAT", Info, Repair,
        "A time in a format other than the source's standard one (e.g. MM/DD/YYYY hh:mm); read with the documented alternative formats.";
    TIME_NO_OFFSET = "DQ-TIME-NO-OFFSET", Info, Repair,
        "A local time without a UTC offset; read in the hospital's IANA zone (DST gap: shifted forward; overlap: the earlier instant).";
    TIME_DISCHARGE_BEFORE_ADMIT = "DQ-TIME-DISCHARGE-BEFORE-ADMIT", Warn, Repair,
        "A discharge time earlier than the admit time; the discharge falls back to the event time when that is consistent, else the record is rejected.";
    ADMIT_TIME_MISSING = "DQ-ADMIT-TIME-MISSING", Info, Repair,
        "An A01 without PV1-44 admit time; the admission is taken to be the A01's event time (EVN-6) — a guessed repair.";
    PAT_SEX_INVALID = "DQ-PAT-SEX-INVALID", Warn, DropAttribute,
        "A sex code outside HL7 table 0001; a spelled-out word of one meaning (female, MALE) is mapped, anything else (Q, 1, ?, UNK) left out.";
    PAT_AGE_IMPOSSIBLE = "DQ-PAT-AGE-IMPOSSIBLE", Warn, DropAttribute,
        "A birth date after the event or more than 120 years before it, or unreadable; left out.";
    PAT_IDENTITY_CONFLICT = "DQ-PAT-IDENTITY-CONFLICT", Warn, DropAttribute,
        "A record outside an A08 update gives an MRN another name, birth date or sex than the patient has then; its identity is left out, its movement applied.";
    DEPT_UNKNOWN = "DQ-DEPT-UNKNOWN", Error, Quarantine,
        "A location whose department code is not in the hospital's department metadata.";
    DUPLICATE_DELIVERY = "DQ-DUPLICATE-DELIVERY", Info, Count,
        "An exact re-delivery of a message or file; removed by Bronze and counted.";
    LATE_EVENT = "DQ-LATE-EVENT", Info, Count,
        "An event that arrived after later events of its encounter, or long after it happened; placed by event time.";
    EHR_ROW_INVALID = "DQ-EHR-ROW-INVALID", Error, Quarantine,
        "An EHR extract row without its key columns, or irregular (wrong field count).";
    REF_ROW_INVALID = "DQ-REF-ROW-INVALID", Error, Quarantine,
        "A hospital or department row with a missing key, an unreadable number or date, or an unknown time zone.";
    SCHEMA_RESCUED = "DQ-SCHEMA-RESCUED", Warn, Rescue,
        "A patient attribute value that fits neither its column's type nor an allowed widening (e.g. abc in a long column); the column is null and the raw value is kept in _rescued_data.";
    SCHEMA_WIDENED = "DQ-SCHEMA-WIDENED", Info, Widen,
        "A patient attribute column widened to hold a new value (long to double, date to timestamp); recorded once per table and column.";
    TIME_LOCAL_NONEXISTENT = "DQ-TIME-LOCAL-NONEXISTENT", Warn, Repair,
        "A local time without a UTC offset that does not exist in the hospital's zone (spring-forward gap); a guess: shifted forward by the gap (02:30 -> 03:30).";
    TIME_LOCAL_AMBIGUOUS = "DQ-TIME-LOCAL-AMBIGUOUS", Warn, Repair,
        "A local time without a UTC offset that happens twice in the hospital's zone (fall-back overlap); a guess: the earlier instant (daylight time).";
    ADT_MRN_AUTHORITY = "DQ-ADT-MRN-AUTHORITY", Info, Repair,
        "Several MR-typed PID-3 identifiers, none from the facility's configured assigning authority; a guess: the first MR-typed one is the MRN (the documented fallback).";
    ADT_CHARSET_INVALID = "DQ-ADT-CHARSET-INVALID", Warn, Repair,
        "A message whose MSH-18 declares UTF-8 but whose bytes are not valid UTF-8: read byte by byte as Latin-1 (a guess); quarantined when an identifier it is keyed by (MSH-3/4/10, PID-3, PV1-3, PV1-19) is affected.";
    ADT_CHARSET_FALLBACK = "DQ-ADT-CHARSET-FALLBACK", Info, Repair,
        "A message without a character set beyond ASCII in MSH-18 (or JSON) whose bytes are not valid UTF-8: read byte by byte as Latin-1 (a guess), applied.";
}

/// Looks a rule up by id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    ALL.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/data-quality.md has one table row per rule, with the rule's severity and action.
    #[test]
    fn the_data_quality_page_documents_every_rule_as_the_catalogue_defines_it() {
        let page = include_str!("../../../../docs/data-quality.md");
        for rule in ALL {
            let row = page
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", rule.id)))
                .unwrap_or_else(|| panic!("docs/data-quality.md has no row for {}", rule.id));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[2], rule.severity.as_str(), "{}: severity", rule.id);
            let action = rule.action.as_str().replace('_', " ");
            assert!(
                cells[3].starts_with(&action),
                "{}: the page says '{}', the catalogue '{action}'",
                rule.id,
                cells[3]
            );
        }
    }
}
