//! One parsed HL7 v2 message: its delimiters and segments, borrowing the message text.

use std::borrow::Cow;

use super::error::Hl7Error;
use super::path::Hl7Path;
use super::segment::Segment;
use super::separators::Separators;

/// Characters that separate segments. CR is the HL7 terminator; LF and CRLF are tolerated, and MLLP
/// framing bytes (0x0B, 0x1C) are boundaries too.
pub(crate) fn is_segment_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{0b}' | '\u{1c}')
}

/// Byte offset of the first segment break in `s` (all break characters are single ASCII bytes, so a
/// byte scan is exact and much faster than decoding chars).
pub(crate) fn find_break(s: &str) -> Option<usize> {
    s.as_bytes()
        .iter()
        .position(|&b| matches!(b, b'\r' | b'\n' | 0x0b | 0x1c))
}

/// `s` split at every segment break (like `str::split`, empty pieces included).
fn split_breaks(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match find_break(r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Leading noise on a line: whitespace, a byte-order mark, MLLP start bytes.
pub(crate) fn is_line_noise(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0c}' | '\u{feff}' | '\u{0b}' | '\u{1c}')
}

/// An HL7 v2 message split into segments. Fields are split lazily on access (see [`Segment`]).
///
/// ```
/// use patientflow_core::sources::adt::hl7::Hl7Message;
/// let msg = Hl7Message::parse("MSH|^~\\&|APP|MHA01|||20260114083000||ADT^A01|42|P|2.5\rPV1|1|I|ICU^12^A")
///     .unwrap();
/// assert_eq!(msg.get("PV1-3.2").as_deref(), Some("12"));
/// assert_eq!(msg.header().unwrap().trigger_event.as_deref(), Some("A01"));
/// ```
#[derive(Debug, Clone)]
pub struct Hl7Message<'a> {
    text: &'a str,
    seps: Separators,
    segments: Vec<Segment<'a>>,
}

impl<'a> Hl7Message<'a> {
    /// Parses one message and checks it is usable: a complete MSH with a control id (MSH-10) and a
    /// message type (MSH-9), and well-formed segment ids.
    ///
    /// Segment terminators may be CR, LF or CRLF; a leading BOM, whitespace and MLLP framing bytes are
    /// ignored. Use [`split_stream`](super::split_stream) first when the text may hold several messages.
    pub fn parse(text: &'a str) -> Result<Self, Hl7Error> {
        let msg = Self::parse_lenient(text)?;
        msg.check_structure()?;
        msg.header()?;
        Ok(msg)
    }

    /// Parses as far as the delimiters allow, without the checks of [`Hl7Message::parse`]: for salvaging
    /// what a broken message does carry (e.g. its facility, for a quarantine row). Fails only when the text
    /// does not start with MSH or MSH-1/MSH-2 are unusable.
    pub fn parse_lenient(text: &'a str) -> Result<Self, Hl7Error> {
        let body = text
            .trim_start_matches(|c: char| is_line_noise(c) || is_segment_break(c))
            .trim_end_matches(is_segment_break);
        if !body.starts_with("MSH") {
            return Err(Hl7Error::NotHl7);
        }
        let msh_end = find_break(body).unwrap_or(body.len());
        let seps = Separators::from_msh(&body[..msh_end])?;
        let segments = split_breaks(body)
            .map(|line| line.trim_start_matches(is_line_noise))
            .filter(|line| !line.trim().is_empty())
            .map(|line| Segment::new(line, seps))
            .collect();
        Ok(Hl7Message {
            text,
            seps,
            segments,
        })
    }

    /// Segment ids must be 3 upper-case letters or digits followed by the field separator; the MSH must
    /// reach MSH-10; only the first segment may be an MSH.
    fn check_structure(&self) -> Result<(), Hl7Error> {
        let last = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            let index = i + 1;
            let b = seg.raw().as_bytes();
            let id_ok = b.len() >= 3
                && b[..3]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            let sep_ok = b.len() == 3 || b.get(3) == Some(&self.seps.field);
            if index == last && b.len() <= 3 {
                let reason =
                    format!("the last segment ({index}) ends inside or right after its segment id");
                return Err(Hl7Error::Truncated { reason });
            }
            if !id_ok || !sep_ok {
                let reason =
                    "does not start with a 3-character segment id and the field separator".into();
                return Err(Hl7Error::BadSegment { index, reason });
            }
            if index > 1 && seg.name() == "MSH" {
                return Err(Hl7Error::MultipleMessages { index });
            }
        }
        let msh = &self.segments[0];
        let fields = msh.field_count();
        if fields < 10 {
            let reason = format!("the MSH segment ends after MSH-{fields}, before MSH-9/MSH-10");
            return Err(Hl7Error::Truncated { reason });
        }
        Ok(())
    }

    /// The text this message was parsed from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The delimiters declared in MSH-1/MSH-2.
    pub fn separators(&self) -> Separators {
        self.seps
    }

    /// All segments, in order (MSH first).
    pub fn all_segments(&self) -> &[Segment<'a>] {
        &self.segments
    }

    /// The first segment with id `name` (e.g. `"PV1"`).
    pub fn segment(&self, name: &str) -> Option<&Segment<'a>> {
        self.segments(name).next()
    }

    /// Every segment with id `name`, in order (for repeating segments such as OBX or NK1).
    pub fn segments<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Segment<'a>> + 's {
        // Copy the 3-byte id so the iterator does not borrow `name`; other lengths match nothing.
        let key: Option<[u8; 3]> = name.as_bytes().try_into().ok();
        self.segments
            .iter()
            .filter(move |s| key.is_some_and(|k| s.raw().as_bytes().get(..3) == Some(&k[..])))
    }

    /// The value at a path such as `PV1-3.1`, `PID-3[2].1` or `OBX[2]-5` (see [`Hl7Path`]), escapes
    /// decoded; `None` when absent, empty, or the path is malformed.
    pub fn get(&self, path: &str) -> Option<Cow<'a, str>> {
        self.get_path(&path.parse().ok()?)
    }

    /// Like [`Hl7Message::get`] but raw: escape sequences are left as they are.
    pub fn get_raw(&self, path: &str) -> Option<&'a str> {
        let p: Hl7Path = path.parse().ok()?;
        self.path_segment(&p)?.get_raw(
            p.field,
            p.repetition,
            p.component.unwrap_or(0),
            p.subcomponent.unwrap_or(0),
        )
    }

    /// The value at a pre-parsed path (saves re-parsing the path in hot loops).
    pub fn get_path(&self, p: &Hl7Path) -> Option<Cow<'a, str>> {
        self.path_segment(p)?.get(
            p.field,
            p.repetition,
            p.component.unwrap_or(0),
            p.subcomponent.unwrap_or(0),
        )
    }

    fn path_segment(&self, p: &Hl7Path) -> Option<&Segment<'a>> {
        let name = std::str::from_utf8(&p.segment).ok()?;
        self.segments(name).nth(p.occurrence - 1)
    }

    /// The value at field `field`, repetition `rep`, component `comp`, sub-component `sub` of the first
    /// `seg` segment, all 1-based (HL7 numbering, so `field("MSH", 9, 1, 2, 0)` is the trigger event);
    /// `comp`/`sub` of 0 select the whole repetition/component. Escapes decoded; `None` when empty.
    pub fn field(
        &self,
        seg: &str,
        field: usize,
        rep: usize,
        comp: usize,
        sub: usize,
    ) -> Option<Cow<'a, str>> {
        self.segment(seg)?.get(field, rep, comp, sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str =
        "MSH|^~\\&|EPIC|MHA01|PF|PF|20260114083000-0600||ADT^A02^ADT_A02|CTRL-1|P|2.5\r\
EVN|A02|20260114083105|||OP1|20260114083000\r\
PID|1||111^^^SSA^SS~MRN7^^^MHA^MR||Doe^Jane^Q||19570302|F|||12 Elm St^^Dayton^OH^45402\r\
PV1|1|I|ICU^ICU-04^A^MHA01||||||||||||||||V91\r\
OBX|1|TX|A||first\r\
OBX|2|TX|B||second\r\
ZPF|preferred_language=es~insurance_type=Medicaid";

    #[test]
    fn segments_and_paths() {
        let m = Hl7Message::parse(ADT).unwrap();
        assert_eq!(m.all_segments().len(), 7);
        assert_eq!(m.segment("PV1").unwrap().name(), "PV1");
        assert_eq!(m.segments("OBX").count(), 2);
        assert_eq!(m.get("OBX[2]-5").as_deref(), Some("second"));
        assert_eq!(m.get("OBX-5").as_deref(), Some("first"));
        assert_eq!(m.get("PID-3[2].1").as_deref(), Some("MRN7"));
        assert_eq!(m.get("PID-3.1").as_deref(), Some("111"));
        assert_eq!(m.get("PV1-3.1").as_deref(), Some("ICU"));
        assert_eq!(m.get("MSH-9").as_deref(), Some("ADT^A02^ADT_A02"));
        assert_eq!(m.get("MSH-9.2").as_deref(), Some("A02"));
        assert_eq!(m.get("MSH-10").as_deref(), Some("CTRL-1"));
        assert_eq!(m.get("MSH-1").as_deref(), Some("|"));
        assert_eq!(m.get("MSH-2").as_deref(), Some("^~\\&"));
        assert_eq!(m.field("MSH", 4, 1, 1, 0).as_deref(), Some("MHA01"));
        assert_eq!(
            m.field("ZPF", 1, 2, 0, 0).as_deref(),
            Some("insurance_type=Medicaid")
        );
        assert_eq!(m.get("ZZZ-1"), None);
        assert_eq!(m.get("bogus"), None);
        assert_eq!(m.get("PV1-99"), None);
    }

    #[test]
    fn line_endings_bom_and_mllp() {
        let crlf = ADT.replace('\r', "\r\n");
        let lf = format!("\u{feff}\u{0b}{}\u{1c}\r", ADT.replace('\r', "\n"));
        for text in [crlf.as_str(), lf.as_str()] {
            let m = Hl7Message::parse(text).unwrap();
            assert_eq!(m.all_segments().len(), 7);
            assert_eq!(
                m.get("ZPF-1[2]").as_deref(),
                Some("insurance_type=Medicaid")
            );
        }
    }

    #[test]
    fn structural_errors() {
        assert_eq!(Hl7Message::parse("PID|1").unwrap_err(), Hl7Error::NotHl7);
        assert_eq!(Hl7Message::parse("").unwrap_err(), Hl7Error::NotHl7);
        assert!(matches!(
            Hl7Message::parse("MSH|^~\\&|A|B|C|D|2026").unwrap_err(),
            Hl7Error::Truncated { .. }
        ));
        let cut = format!("{}\rPV", &ADT[..ADT.find("\rPV1").unwrap()]);
        assert!(matches!(
            Hl7Message::parse(&cut).unwrap_err(),
            Hl7Error::Truncated { .. }
        ));
        let bare = format!("{}\rPV1", &ADT[..ADT.find("\rPV1").unwrap()]);
        assert!(matches!(
            Hl7Message::parse(&bare).unwrap_err(),
            Hl7Error::Truncated { .. }
        ));
        let bad = ADT.replace("\rOBX|2", "\rfree text|2");
        assert_eq!(
            Hl7Message::parse(&bad).unwrap_err(),
            Hl7Error::BadSegment {
                index: 6,
                reason: "does not start with a 3-character segment id and the field separator"
                    .into()
            }
        );
        let two = format!("{ADT}\r{ADT}");
        assert_eq!(
            Hl7Message::parse(&two).unwrap_err(),
            Hl7Error::MultipleMessages { index: 8 }
        );
        // The lenient parse still reads what is there.
        let m = Hl7Message::parse_lenient(&bad).unwrap();
        assert_eq!(m.get("MSH-4").as_deref(), Some("MHA01"));
    }

    #[test]
    fn header_errors() {
        let no_id = ADT.replace("|CTRL-1|", "||");
        assert_eq!(
            Hl7Message::parse(&no_id).unwrap_err(),
            Hl7Error::MissingControlId
        );
        let no_type = ADT.replace("|ADT^A02^ADT_A02|", "||");
        assert_eq!(
            Hl7Message::parse(&no_type).unwrap_err(),
            Hl7Error::MissingMessageType
        );
        let m = Hl7Message::parse_lenient(&no_id).unwrap();
        assert_eq!(m.header().unwrap_err(), Hl7Error::MissingControlId);
        for e in [Hl7Error::MissingControlId, Hl7Error::NotHl7] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn non_default_separators() {
        let text =
            "MSH#$*@!#APP#FAC@F@X###20260101##ADT$A03#ID9#P#2.5\rPID#1##M1$$$H$MR*M2##Doe$Jo@S@e";
        let m = Hl7Message::parse(text).unwrap();
        assert_eq!(m.get("MSH-1").as_deref(), Some("#"));
        assert_eq!(m.get("MSH-4").as_deref(), Some("FAC#X"));
        assert_eq!(m.get("MSH-9.2").as_deref(), Some("A03"));
        assert_eq!(m.get("PID-3[2].1").as_deref(), Some("M2"));
        assert_eq!(m.get("PID-5.2").as_deref(), Some("Jo$e"));
        let h = m.header().unwrap();
        assert_eq!(h.control_id, "ID9");
    }

    #[test]
    fn z_segments() {
        let m = Hl7Message::parse(ADT).unwrap();
        let zpf = m.segment("ZPF").unwrap();
        let attrs: Vec<_> = zpf.repetitions(1).map(|r| r.raw()).collect();
        assert_eq!(attrs, ["preferred_language=es", "insurance_type=Medicaid"]);
    }
}
