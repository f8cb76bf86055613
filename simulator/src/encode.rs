//! Wire encodings of ADT messages: HL7 v2.5.1 ER7 and JSON `patientflow.adt.v1`
//! (docs/sources.md §1).

use crate::time::{self, OffsetTable};
use std::fmt::Write as _;

/// A time field value: absent, an instant (formatted in the hospital's zone with its offset), or a
/// raw replacement string (used by defects).
#[derive(Debug, Clone, PartialEq)]
pub enum TimeVal {
    None,
    At(i64),
    Raw(String),
}

/// A date field value: days since epoch, or a raw replacement string.
#[derive(Debug, Clone, PartialEq)]
pub enum DateVal {
    At(i64),
    Raw(String),
}

/// A point of care.
#[derive(Debug, Clone, PartialEq)]
pub struct LocVal {
    pub dept: String,
    pub room: String,
    pub bed: String,
}

/// How an HL7 message is broken (defect `malformed_hl7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Cut in the middle (after the MSH segment), then the segment terminator.
    Truncated(u32),
    /// MSH-10 empty.
    MissingMsh10,
    /// Fields after `MSH|^~\&|` separated by `;` instead of the declared `|`.
    WrongSeparators,
}

impl Malformed {
    /// Manifest note.
    pub fn note(self) -> &'static str {
        match self {
            Malformed::Truncated(_) => "truncated",
            Malformed::MissingMsh10 => "missing_msh10",
            Malformed::WrongSeparators => "wrong_separators",
        }
    }
}

/// All facts of one ADT message, already carrying any field-level defect.
#[derive(Debug, Clone)]
pub struct AdtMessage {
    pub message_id: String,
    pub event: &'static str,
    pub facility: &'static str,
    pub recorded: TimeVal,
    pub event_time: TimeVal,
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub birth: DateVal,
    pub sex: String,
    pub street: String,
    pub city: &'static str,
    pub state: &'static str,
    pub zip: String,
    pub language: Option<&'static str>,
    pub insurance: Option<&'static str>,
    pub visit: String,
    pub class: &'static str,
    pub admission_type: &'static str,
    pub loc: Option<LocVal>,
    pub prior: Option<LocVal>,
    pub admit: TimeVal,
    pub discharge: TimeVal,
}

/// HL7 escape of a text value (`\F\ \S\ \R\ \E\ \T\`).
pub fn hl7_escape(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '\\' => out.push_str("\\E\\"),
            '&' => out.push_str("\\T\\"),
            c => out.push(c),
        }
    }
}

fn hl7_time(out: &mut String, v: &TimeVal, tz: &OffsetTable) {
    match v {
        TimeVal::None => {}
        TimeVal::At(t) => time::push_hl7_dtm(out, *t, tz.at(*t)),
        TimeVal::Raw(s) => out.push_str(s),
    }
}

fn hl7_loc(out: &mut String, l: &LocVal, facility: &str) {
    hl7_escape(out, &l.dept);
    out.push('^');
    hl7_escape(out, &l.room);
    out.push('^');
    hl7_escape(out, &l.bed);
    out.push('^');
    out.push_str(facility);
}

fn message_structure(event: &str) -> &'static str {
    match event {
        "A02" => "ADT_A02",
        "A03" => "ADT_A03",
        "A11" => "ADT_A09",
        "A12" => "ADT_A12",
        _ => "ADT_A01",
    }
}

/// Encode as HL7 ER7 with segment terminator `seg_end` (the last segment is terminated too).
pub fn to_hl7(
    m: &AdtMessage,
    tz: &OffsetTable,
    seg_end: &str,
    malformed: Option<Malformed>,
) -> String {
    let mut s = String::with_capacity(520);
    // MSH
    s.push_str("MSH|^~\\&|ADT|");
    s.push_str(m.facility);
    s.push_str("|PATIENTFLOW|MHA|");
    hl7_time(&mut s, &m.recorded, tz);
    s.push_str("||ADT^");
    s.push_str(m.event);
    s.push('^');
    s.push_str(message_structure(m.event));
    s.push('|');
    if malformed != Some(Malformed::MissingMsh10) {
        s.push_str(&m.message_id);
    }
    s.push_str("|P|2.5.1");
    s.push_str(seg_end);
    let msh_end = s.len();
    // EVN: 1 type, 2 recorded, 6 occurred, 7 event facility
    s.push_str("EVN|");
    s.push_str(m.event);
    s.push('|');
    hl7_time(&mut s, &m.recorded, tz);
    s.push_str("||||");
    hl7_time(&mut s, &m.event_time, tz);
    s.push('|');
    s.push_str(m.facility);
    s.push_str(seg_end);
    // PID: 1, 3 MRN, 5 name, 7 DOB, 8 sex, 11 address
    s.push_str("PID|1||");
    s.push_str(&m.mrn);
    s.push_str("^^^");
    s.push_str(m.facility);
    s.push_str("^MR||");
    hl7_escape(&mut s, &m.family);
    s.push('^');
    hl7_escape(&mut s, &m.given);
    s.push_str("||");
    match &m.birth {
        DateVal::At(d) => s.push_str(&time::ymd_compact(*d)),
        DateVal::Raw(r) => s.push_str(r),
    }
    s.push('|');
    hl7_escape(&mut s, &m.sex);
    s.push_str("|||");
    hl7_escape(&mut s, &m.street);
    s.push_str("^^");
    hl7_escape(&mut s, m.city);
    s.push('^');
    s.push_str(m.state);
    s.push('^');
    s.push_str(&m.zip);
    s.push_str(seg_end);
    // PV1: 2 class, 3 location, 4 admission type, 6 prior location, 19 visit, 44 admit, 45 discharge
    let pv1_start = s.len();
    s.push_str("PV1|1|");
    s.push_str(m.class);
    s.push('|');
    if let Some(l) = &m.loc {
        hl7_loc(&mut s, l, m.facility);
    }
    s.push('|');
    s.push_str(m.admission_type);
    s.push_str("||");
    if let Some(l) = &m.prior {
        hl7_loc(&mut s, l, m.facility);
    }
    // fields 7..18 empty, then 19
    s.push_str("|||||||||||||");
    s.push_str(&m.visit);
    // fields 20..43 empty, then 44, 45
    for _ in 19..44 {
        s.push('|');
    }
    hl7_time(&mut s, &m.admit, tz);
    s.push('|');
    hl7_time(&mut s, &m.discharge, tz);
    s.push_str(seg_end);
    // ZPF: extra patient attributes
    if m.language.is_some() || m.insurance.is_some() {
        s.push_str("ZPF|");
        let mut first = true;
        if let Some(l) = m.language {
            s.push_str("preferred_language=");
            s.push_str(l);
            first = false;
        }
        if let Some(i) = m.insurance {
            if !first {
                s.push('~');
            }
            s.push_str("insurance_type=");
            hl7_escape(&mut s, i);
        }
        s.push_str(seg_end);
    }
    match malformed {
        Some(Malformed::Truncated(frac)) => {
            // Keep MSH, cut somewhere between it and PV1, end with a terminator so the next message
            // still starts on a fresh segment. The cut always loses the required PV1 segment: a cut
            // that only shortens the last segment leaves a message HL7 v2 allows (trailing fields
            // may be omitted), which no receiver can tell from a complete one.
            let body = pv1_start - msh_end;
            let mut cut =
                msh_end + 4 + (body.saturating_sub(8) as u64 * frac as u64 / 1000) as usize;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str(seg_end);
            s
        }
        Some(Malformed::WrongSeparators) => {
            let head = "MSH|^~\\&|";
            let rest = s[head.len()..].replace('|', ";");
            format!("{head}{rest}")
        }
        _ => s,
    }
}

/// JSON string escape (RFC 8259).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_time(out: &mut String, v: &TimeVal, tz: &OffsetTable) {
    match v {
        TimeVal::None => out.push_str("null"),
        TimeVal::At(t) => {
            out.push('"');
            out.push_str(&time::rfc3339_local(*t, tz.at(*t)));
            out.push('"');
        }
        TimeVal::Raw(s) => json_str(out, s),
    }
}

fn json_key(out: &mut String, k: &str) {
    out.push('"');
    out.push_str(k);
    out.push_str("\":");
}

/// Encode as one line of JSON (no trailing newline).
pub fn to_json(m: &AdtMessage, tz: &OffsetTable) -> String {
    let mut s = String::with_capacity(720);
    s.push_str("{\"schema\":\"patientflow.adt.v1\",\"message_id\":");
    json_str(&mut s, &m.message_id);
    s.push_str(",\"event_type\":\"");
    s.push_str(m.event);
    s.push_str("\",\"facility\":\"");
    s.push_str(m.facility);
    s.push_str("\",");
    json_key(&mut s, "recorded_time");
    json_time(&mut s, &m.recorded, tz);
    s.push(',');
    json_key(&mut s, "event_time");
    json_time(&mut s, &m.event_time, tz);
    s.push_str(",\"patient\":{\"mrn\":");
    json_str(&mut s, &m.mrn);
    s.push_str(",\"family_name\":");
    json_str(&mut s, &m.family);
    s.push_str(",\"given_name\":");
    json_str(&mut s, &m.given);
    s.push_str(",\"birth_date\":");
    match &m.birth {
        DateVal::At(d) => {
            s.push('"');
            s.push_str(&time::ymd(*d));
            s.push('"');
        }
        DateVal::Raw(r) => json_str(&mut s, r),
    }
    s.push_str(",\"sex\":");
    json_str(&mut s, &m.sex);
    s.push_str(",\"address\":{\"street\":");
    json_str(&mut s, &m.street);
    s.push_str(",\"city\":");
    json_str(&mut s, m.city);
    s.push_str(",\"state\":\"");
    s.push_str(m.state);
    s.push_str("\",\"zip\":\"");
    s.push_str(&m.zip);
    s.push_str("\"}");
    if m.language.is_some() || m.insurance.is_some() {
        s.push_str(",\"attributes\":{");
        let mut first = true;
        if let Some(l) = m.language {
            s.push_str("\"preferred_language\":");
            json_str(&mut s, l);
            first = false;
        }
        if let Some(i) = m.insurance {
            if !first {
                s.push(',');
            }
            s.push_str("\"insurance_type\":");
            json_str(&mut s, i);
        }
        s.push('}');
    }
    s.push_str("},\"visit\":{\"visit_number\":");
    json_str(&mut s, &m.visit);
    s.push_str(",\"patient_class\":\"");
    s.push_str(m.class);
    s.push('"');
    if let Some(l) = &m.loc {
        s.push_str(",\"department\":");
        json_str(&mut s, &l.dept);
        s.push_str(",\"room\":");
        json_str(&mut s, &l.room);
        s.push_str(",\"bed\":");
        json_str(&mut s, &l.bed);
    }
    if let Some(l) = &m.prior {
        s.push_str(",\"prior_department\":");
        json_str(&mut s, &l.dept);
        s.push_str(",\"prior_room\":");
        json_str(&mut s, &l.room);
        s.push_str(",\"prior_bed\":");
        json_str(&mut s, &l.bed);
    }
    s.push(',');
    json_key(&mut s, "admit_time");
    json_time(&mut s, &m.admit, tz);
    s.push(',');
    json_key(&mut s, "discharge_time");
    json_time(&mut s, &m.discharge, tz);
    s.push_str("}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn sample() -> (AdtMessage, OffsetTable) {
        let tz: Tz = "America/New_York".parse().unwrap();
        let t = 1_768_397_400; // 2026-01-14T13:30:00Z = 08:30 EST
        let table = OffsetTable::new(tz, t - 86_400 * 5, t + 86_400);
        let m = AdtMessage {
            message_id: "MHA03-000123457".into(),
            event: "A02",
            facility: "MHA03",
            recorded: TimeVal::At(t + 65),
            event_time: TimeVal::At(t),
            mrn: "MHA03-P0004711".into(),
            family: "Lindqvist".into(),
            given: "Maja".into(),
            birth: DateVal::At(crate::time::days_from_civil(1957, 3, 2)),
            sex: "F".into(),
            street: "12 Elm St Lot 3 & 4".into(),
            city: "Dayton",
            state: "OH",
            zip: "45402".into(),
            language: Some("sv"),
            insurance: None,
            visit: "MHA03-V0091234".into(),
            class: "I",
            admission_type: "E",
            loc: Some(LocVal {
                dept: "ICU".into(),
                room: "ICU-04".into(),
                bed: "ICU-04-A".into(),
            }),
            prior: Some(LocVal {
                dept: "MED".into(),
                room: "MED-12".into(),
                bed: "MED-12-B".into(),
            }),
            admit: TimeVal::At(t - 2 * 86_400),
            discharge: TimeVal::None,
        };
        (m, table)
    }

    fn field(seg: &str, n: usize) -> &str {
        seg.split('|').nth(n).unwrap_or("")
    }

    #[test]
    fn hl7_fields_sit_at_their_positions() {
        let (m, tz) = sample();
        let h = to_hl7(&m, &tz, "\r", None);
        let segs: Vec<&str> = h.split('\r').filter(|s| !s.is_empty()).collect();
        assert_eq!(segs.len(), 5);
        let msh = segs[0];
        // MSH-1 is the separator itself, so MSH-n is split index n-1.
        assert_eq!(field(msh, 3), "MHA03");
        assert_eq!(field(msh, 8), "ADT^A02^ADT_A02");
        assert_eq!(field(msh, 9), "MHA03-000123457");
        let evn = segs[1];
        assert_eq!(field(evn, 2), "20260114083105-0500");
        assert_eq!(field(evn, 6), "20260114083000-0500");
        let pid = segs[2];
        assert_eq!(field(pid, 3), "MHA03-P0004711^^^MHA03^MR");
        assert_eq!(field(pid, 5), "Lindqvist^Maja");
        assert_eq!(field(pid, 7), "19570302");
        assert_eq!(field(pid, 8), "F");
        assert_eq!(field(pid, 11), "12 Elm St Lot 3 \\T\\ 4^^Dayton^OH^45402");
        let pv1 = segs[3];
        assert_eq!(field(pv1, 2), "I");
        assert_eq!(field(pv1, 3), "ICU^ICU-04^ICU-04-A^MHA03");
        assert_eq!(field(pv1, 6), "MED^MED-12^MED-12-B^MHA03");
        assert_eq!(field(pv1, 19), "MHA03-V0091234");
        assert_eq!(field(pv1, 44), "20260112083000-0500");
        assert_eq!(field(pv1, 45), "");
        assert_eq!(pv1.split('|').count(), 46);
        assert_eq!(segs[4], "ZPF|preferred_language=sv");
    }

    #[test]
    fn json_is_valid_and_matches_contract() {
        let (m, tz) = sample();
        let j = to_json(&m, &tz);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["schema"], "patientflow.adt.v1");
        assert_eq!(v["event_time"], "2026-01-14T08:30:00-05:00");
        assert_eq!(v["patient"]["address"]["street"], "12 Elm St Lot 3 & 4");
        assert_eq!(v["patient"]["attributes"]["preferred_language"], "sv");
        assert_eq!(v["visit"]["prior_bed"], "MED-12-B");
        assert!(v["visit"]["discharge_time"].is_null());
    }

    #[test]
    fn malformed_variants() {
        let (m, tz) = sample();
        let t = to_hl7(&m, &tz, "\r", Some(Malformed::Truncated(500)));
        assert!(t.starts_with("MSH|") && t.ends_with('\r'));
        assert!(t.len() < to_hl7(&m, &tz, "\r", None).len());
        let n = to_hl7(&m, &tz, "\r", Some(Malformed::MissingMsh10));
        assert_eq!(n.split('\r').next().unwrap().split('|').nth(9), Some(""));
        let w = to_hl7(&m, &tz, "\r", Some(Malformed::WrongSeparators));
        assert!(w.starts_with("MSH|^~\\&|ADT;MHA03;"));
    }
}
