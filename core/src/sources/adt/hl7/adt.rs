//! Mapping an HL7 v2 ADT message onto the source-neutral [`AdtEvent`] (docs/sources.md §1.1, §1.3).

use std::collections::BTreeMap;

use super::error::Hl7Error;
use super::header::clean;
use super::message::Hl7Message;
use super::segment::Field;
use crate::sources::adt::{AdtEvent, PatientIdentifier};

/// The fields of the first segment named `name` (empty when there is none), split once so the many
/// look-ups below each cost only their own field.
fn fields_of<'a>(msg: &Hl7Message<'a>, name: &str) -> Vec<Field<'a>> {
    let mut out = Vec::new();
    if let Some(seg) = msg.segment(name) {
        // One allocation: PV1 alone has ~50 fields, and growing the vector step by step costs more than
        // splitting the segment.
        out.reserve(64);
        out.extend(seg.fields());
    }
    out
}

/// Field `f`, component `c`, first sub-component, of the first repetition; trimmed, `None` when empty.
/// Taking sub-component 1 keeps v2.7+ senders (which put `&`-qualified HD/FN types in PV1-3.1, PID-5.1)
/// in line with older ones.
fn value(fields: &[Field<'_>], f: usize, c: usize) -> Option<String> {
    clean(fields.get(f.checked_sub(1)?)?.get(1, c, 1))
}

/// The MRN from PID-3: the first repetition whose identifier type (component 5) is `MR`, else the first
/// repetition's id.
fn mrn(pid: &[Field<'_>]) -> Option<String> {
    let pid3 = pid.get(2)?;
    let typed_mr = pid3.repetitions().find_map(|r| {
        let is_mr = r
            .component(5)
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("MR"));
        if is_mr {
            clean(r.component(1))
        } else {
            None
        }
    });
    typed_mr.or_else(|| clean(pid3.repetition(1)?.component(1)))
}

/// Every PID-3 repetition with an id: CX.1, the assigning authority's namespace (CX.4.1) and the
/// identifier type (CX.5).
fn identifiers(pid: &[Field<'_>]) -> Vec<PatientIdentifier> {
    let Some(pid3) = pid.get(2) else {
        return Vec::new();
    };
    pid3.repetitions()
        .filter_map(|r| {
            Some(PatientIdentifier {
                id: clean(r.component(1))?,
                assigning_authority: clean(r.subcomponent(4, 1)),
                type_code: clean(r.component(5)),
            })
        })
        .collect()
}

/// Extra patient attributes from every `ZPF` segment: field 1 repetitions `name=value`. Entries without
/// `=`, with an empty name or with an empty value are skipped; a later entry wins over an earlier one.
fn attributes(msg: &Hl7Message<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for zpf in msg.segments("ZPF") {
        for rep in zpf.repetitions(1) {
            let Some(entry) = rep.value() else { continue };
            let Some((name, val)) = entry.split_once('=') else {
                continue;
            };
            let (name, val) = (name.trim(), val.trim());
            if !name.is_empty() && !val.is_empty() {
                out.insert(name.to_string(), val.to_string());
            }
        }
    }
    out
}

/// Maps a parsed message onto an [`AdtEvent`] (field positions per docs/sources.md §1.1).
///
/// Fails only when the header is unusable (no MSH-10 / MSH-9); every other field is optional here —
/// whether an event lacks something it needs (a visit number on an A01, say) is Silver's data-quality
/// call, made the same way for HL7 and JSON. `recorded_time` falls back to MSH-7 when there is no EVN-2,
/// and `event_time` to EVN-2, then MSH-7.
pub fn to_adt_event(msg: &Hl7Message<'_>) -> Result<AdtEvent, Hl7Error> {
    let header = msg.header()?;
    let evn = fields_of(msg, "EVN");
    let pid = fields_of(msg, "PID");
    let pv1 = fields_of(msg, "PV1");
    let recorded_time = value(&evn, 2, 1).or(header.message_datetime);
    let event_time = value(&evn, 6, 1).or_else(|| recorded_time.clone());
    Ok(AdtEvent {
        message_id: header.control_id,
        event_type: header.trigger_event,
        facility: header.sending_facility.or_else(|| value(&pv1, 3, 4)),
        recorded_time,
        event_time,
        mrn: mrn(&pid),
        patient_identifiers: identifiers(&pid),
        family_name: value(&pid, 5, 1),
        given_name: value(&pid, 5, 2),
        birth_date: value(&pid, 7, 1),
        sex: value(&pid, 8, 1),
        street: value(&pid, 11, 1),
        city: value(&pid, 11, 3),
        state: value(&pid, 11, 4),
        zip: value(&pid, 11, 5),
        patient_class: value(&pv1, 2, 1),
        department: value(&pv1, 3, 1),
        room: value(&pv1, 3, 2),
        bed: value(&pv1, 3, 3),
        prior_department: value(&pv1, 6, 1),
        prior_room: value(&pv1, 6, 2),
        prior_bed: value(&pv1, 6, 3),
        visit_number: value(&pv1, 19, 1),
        admit_time: value(&pv1, 44, 1),
        discharge_time: value(&pv1, 45, 1),
        attributes: attributes(msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment from (field number, value) pairs; unlisted fields are empty.
    fn seg(name: &str, fields: &[(usize, &str)]) -> String {
        let last = fields.iter().map(|f| f.0).max().unwrap_or(0);
        let mut out = vec![""; last + 1];
        out[0] = name;
        for &(i, v) in fields {
            out[i] = v;
        }
        out.join("|")
    }

    fn a02() -> String {
        let pv1 = seg(
            "PV1",
            &[
                (1, "1"),
                (2, "I"),
                (3, "ICU^ICU-04^ICU-04-A^MHA03"),
                (6, "MED^MED-12^MED-12-B"),
                (19, "MHA03-V0091234"),
                (44, "202601122210-0500"),
                (45, "\"\""),
            ],
        );
        [
            "MSH|^~\\&|EPIC|MHA03|PF|PF|20260114083105||ADT^A02^ADT_A02|MHA03-000123457|P|2.5",
            "EVN|A02|20260114083105-0500|||OP1|20260114083000-0500",
            "PID|1||999-11-2222^^^SSA^SS~MHA03-P0004711^^^MHA03^MR||Lindqvist^Maja^K||19570302|F|||12 Elm St^^Dayton^OH^45402",
            &pv1,
            "ZPF|preferred_language=es~insurance_type=Medicaid~junk~=x~empty=",
        ]
        .join("\r")
    }

    #[test]
    fn maps_every_field() {
        let text = a02();
        let m = Hl7Message::parse(&text).unwrap();
        let e = to_adt_event(&m).unwrap();
        assert_eq!(e.message_id, "MHA03-000123457");
        assert_eq!(e.event_type.as_deref(), Some("A02"));
        assert_eq!(e.facility.as_deref(), Some("MHA03"));
        assert_eq!(e.recorded_time.as_deref(), Some("20260114083105-0500"));
        assert_eq!(e.event_time.as_deref(), Some("20260114083000-0500"));
        assert_eq!(e.mrn.as_deref(), Some("MHA03-P0004711"));
        assert_eq!(e.family_name.as_deref(), Some("Lindqvist"));
        assert_eq!(e.given_name.as_deref(), Some("Maja"));
        assert_eq!(e.birth_date.as_deref(), Some("19570302"));
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
        assert_eq!(e.admit_time.as_deref(), Some("202601122210-0500"));
        assert_eq!(e.discharge_time, None);
        assert_eq!(e.attributes.len(), 2);
        assert_eq!(e.attributes["preferred_language"], "es");
        assert_eq!(e.attributes["insurance_type"], "Medicaid");
    }

    #[test]
    fn fallbacks() {
        // No MR-typed id: first repetition; no MSH-4: PV1-3.4; no EVN: MSH-7 for both times;
        // no MSH-9.2: EVN-1 (absent here too).
        let text = "MSH|^~\\&|APP||||20260114083000||ADT|7|P|2.3\r\
PID|1||A1^^^X^PI~B2^^^Y^SS\r\
PV1|1|E|ED&1.2&ISO^^^MHA05&9.9&ISO";
        let e = to_adt_event(&Hl7Message::parse(text).unwrap()).unwrap();
        assert_eq!(e.mrn.as_deref(), Some("A1"));
        assert_eq!(e.facility.as_deref(), Some("MHA05"));
        assert_eq!(e.department.as_deref(), Some("ED"));
        assert_eq!(e.recorded_time.as_deref(), Some("20260114083000"));
        assert_eq!(e.event_time.as_deref(), Some("20260114083000"));
        assert_eq!(e.event_type, None);
        assert!(e.attributes.is_empty());
    }

    #[test]
    fn evn2_when_no_evn6_and_evn1_trigger() {
        let text = "MSH|^~\\&|APP|F|||20260114083000||ADT|7|P|2.3\rEVN|A08|20260114082000";
        let e = to_adt_event(&Hl7Message::parse(text).unwrap()).unwrap();
        assert_eq!(e.event_type.as_deref(), Some("A08"));
        assert_eq!(e.recorded_time.as_deref(), Some("20260114082000"));
        assert_eq!(e.event_time.as_deref(), Some("20260114082000"));
        assert_eq!(e.mrn, None);
    }

    #[test]
    fn every_pid3_repetition_is_kept_with_its_authority_and_type() {
        let text = "MSH|^~\\&|APP|F|||2026||ADT^A08|7|P|2.5\rPID|1||LEG123^^^LEGACY^MR~N456^^^MHA01&1.2.3&ISO^MR~^^^X^PI~S1";
        let e = to_adt_event(&Hl7Message::parse(text).unwrap()).unwrap();
        // The source-neutral MRN stays the first MR-typed repetition; Silver chooses by authority.
        assert_eq!(e.mrn.as_deref(), Some("LEG123"));
        let ids: Vec<_> = e
            .patient_identifiers
            .iter()
            .map(|i| {
                (
                    i.id.as_str(),
                    i.assigning_authority.as_deref(),
                    i.type_code.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("LEG123", Some("LEGACY"), Some("MR")),
                ("N456", Some("MHA01"), Some("MR")),
                ("S1", None, None),
            ]
        );
    }

    #[test]
    fn escaped_values_are_decoded() {
        let text = "MSH|^~\\&|APP|F|||2026||ADT^A08|7|P|2.5\rPID|1||M1||O\\T\\Brien^Ann||||||1 A\\S\\B St\rZPF|note=a\\T\\b";
        let e = to_adt_event(&Hl7Message::parse(text).unwrap()).unwrap();
        assert_eq!(e.family_name.as_deref(), Some("O&Brien"));
        assert_eq!(e.street.as_deref(), Some("1 A^B St"));
        assert_eq!(e.attributes["note"], "a&b");
    }
}
