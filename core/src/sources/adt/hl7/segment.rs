//! One segment and its fields, repetitions, components and sub-components, split lazily on access.
//!
//! Nothing is split up front: a segment is a slice of the message text plus its delimiters, and each
//! access walks only the bytes it needs (a few hundred nanoseconds for a typical PID or PV1).

use std::borrow::Cow;

use super::escape::unescape;
use super::separators::Separators;

/// One segment of a message (borrowing the message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    raw: &'a str,
    seps: Separators,
}

/// Splits `s` on byte `sep` and returns the `n`th piece (0-based); `None` past the end.
///
/// A plain byte loop: HL7 pieces are short, so this beats repeated `memchr` calls. `sep` is ASCII, so the
/// cut points are always char boundaries.
#[inline]
fn nth_piece(s: &str, sep: u8, n: usize) -> Option<&str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut seen = 0;
    if n > 0 {
        let pos = b.iter().position(|&c| {
            seen += usize::from(c == sep);
            seen == n
        })?;
        start = pos + 1;
    }
    let end = b[start..]
        .iter()
        .position(|&c| c == sep)
        .map_or(b.len(), |p| start + p);
    s.get(start..end)
}

/// `s` split at every `sep` byte (like `str::split`, empty pieces included) with a plain byte loop,
/// which beats `memchr`-based splitting on HL7's many short pieces.
pub(crate) fn split_byte(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.as_bytes().iter().position(|&c| c == sep) {
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

/// `Some` when non-empty.
#[inline]
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl<'a> Segment<'a> {
    /// A segment over `raw` (one segment's text without terminator), split with `seps`.
    pub(crate) fn new(raw: &'a str, seps: Separators) -> Self {
        Segment { raw, seps }
    }

    /// The segment id, e.g. `PID` (the first three characters; empty if the segment is shorter).
    pub fn name(&self) -> &'a str {
        self.raw.get(..3).unwrap_or("")
    }

    /// The segment's text as it appears in the message, id included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The delimiters of the message this segment belongs to.
    pub fn separators(&self) -> Separators {
        self.seps
    }

    fn is_msh(&self) -> bool {
        self.raw.starts_with("MSH")
    }

    /// The number of the last field present (HL7 numbering; 0 for a bare segment id).
    pub fn field_count(&self) -> usize {
        let pieces = self.raw.bytes().filter(|&b| b == self.seps.field).count();
        // For MSH the first separator *is* MSH-1, so the count of pieces is off by one the other way.
        if self.is_msh() {
            pieces + 1
        } else {
            pieces
        }
    }

    /// The raw text of field `n` in HL7 numbering, escapes and all; `Some("")` for a present but empty
    /// field, `None` past the end of the segment or for `n == 0`.
    ///
    /// For MSH, field 1 is the field separator itself and field 2 the encoding characters, so `MSH-9` is
    /// the 8th piece after the segment id — the classic off-by-one this method hides.
    pub fn field_raw(&self, n: usize) -> Option<&'a str> {
        match (self.is_msh(), n) {
            (_, 0) => None,
            (true, 1) => Some(self.seps.field_str()),
            (true, n) => nth_piece(self.raw, self.seps.field, n - 1),
            (false, n) => nth_piece(self.raw, self.seps.field, n),
        }
    }

    /// Field `n` (HL7 numbering); `None` past the end of the segment.
    pub fn field(&self, n: usize) -> Option<Field<'a>> {
        let raw = self.field_raw(n)?;
        // MSH-1 and MSH-2 hold the delimiters themselves: they are never split or unescaped.
        let whole = n <= 2 && self.is_msh();
        Some(Field {
            raw,
            seps: self.seps,
            whole,
        })
    }

    /// All fields in order, field 1 first (one pass over the segment: cheaper than many
    /// [`Segment::field`] calls when most fields are wanted).
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let seps = self.seps;
        let msh = self.is_msh();
        let mut pieces = split_byte(self.raw, seps.field).skip(1);
        let mut n = 0;
        std::iter::from_fn(move || {
            n += 1;
            let raw = if msh && n == 1 {
                seps.field_str()
            } else {
                pieces.next()?
            };
            Some(Field {
                raw,
                seps,
                whole: msh && n <= 2,
            })
        })
    }

    /// The repetitions of field `n` (none when the field is absent or empty).
    pub fn repetitions(&self, n: usize) -> impl Iterator<Item = Repetition<'a>> + 'a {
        self.field(n).into_iter().flat_map(|f| f.repetitions())
    }

    /// Repetition `rep` (1-based) of field `n`.
    pub fn repetition(&self, n: usize, rep: usize) -> Option<Repetition<'a>> {
        self.field(n)?.repetition(rep)
    }

    /// The raw (still escaped) text at field `n`, repetition `rep`, component `comp`, sub-component `sub`;
    /// `comp`/`sub` of 0 select the whole repetition/component. `None` when absent or empty.
    pub fn get_raw(&self, n: usize, rep: usize, comp: usize, sub: usize) -> Option<&'a str> {
        self.field(n)?.get_raw(rep, comp, sub)
    }

    /// Like [`Segment::get_raw`], with escape sequences decoded.
    pub fn get(&self, n: usize, rep: usize, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        self.field(n)?.get(rep, comp, sub)
    }
}

/// One field of a segment, all its repetitions included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    raw: &'a str,
    seps: Separators,
    /// MSH-1/MSH-2: returned whole, never split or unescaped.
    whole: bool,
}

impl<'a> Field<'a> {
    /// The field's raw text (all repetitions, escapes kept); may be empty.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The repetitions (none when the field is empty).
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'a>> + 'a {
        let Field { raw, seps, whole } = *self;
        // No repetition separator (or MSH-1/2): one repetition, split on a byte that never occurs.
        let sep = match (whole, seps.repetition) {
            (false, Some(r)) => r,
            _ => b'\r',
        };
        non_empty(raw)
            .into_iter()
            .flat_map(move |r| split_byte(r, sep))
            .map(move |raw| Repetition { raw, seps, whole })
    }

    /// Repetition `rep` (1-based).
    pub fn repetition(&self, rep: usize) -> Option<Repetition<'a>> {
        self.repetitions().nth(rep.checked_sub(1)?)
    }

    /// Raw text at repetition `rep`, component `comp`, sub-component `sub` (0 = the whole level).
    pub fn get_raw(&self, rep: usize, comp: usize, sub: usize) -> Option<&'a str> {
        self.repetition(rep)?.part_raw(comp, sub)
    }

    /// Like [`Field::get_raw`], with escape sequences decoded.
    pub fn get(&self, rep: usize, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        self.repetition(rep)?.part(comp, sub)
    }
}

/// One repetition of a field (a field that does not repeat has exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repetition<'a> {
    raw: &'a str,
    seps: Separators,
    /// MSH-1/MSH-2: returned whole, never split or unescaped.
    whole: bool,
}

impl<'a> Repetition<'a> {
    /// The repetition's raw text.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The whole repetition with escapes decoded (component separators kept); `None` when empty.
    pub fn value(&self) -> Option<Cow<'a, str>> {
        self.part(0, 0)
    }

    /// Raw text of component `comp` (1-based); `None` when absent or empty.
    pub fn component_raw(&self, comp: usize) -> Option<&'a str> {
        self.part_raw(comp, 0)
    }

    /// Component `comp` (1-based) with escapes decoded; `None` when absent or empty.
    pub fn component(&self, comp: usize) -> Option<Cow<'a, str>> {
        self.part(comp, 0)
    }

    /// Sub-component `sub` of component `comp` (both 1-based) with escapes decoded.
    pub fn subcomponent(&self, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        self.part(comp.max(1), sub.max(1))
    }

    /// Raw text of a component / sub-component; 0 selects the whole level.
    pub fn part_raw(&self, comp: usize, sub: usize) -> Option<&'a str> {
        if self.whole {
            return (comp <= 1 && sub <= 1)
                .then_some(self.raw)
                .and_then(non_empty);
        }
        let c = match comp {
            0 => return non_empty(self.raw),
            c => nth_piece(self.raw, self.seps.component, c - 1)?,
        };
        match (sub, self.seps.subcomponent) {
            (0, _) => non_empty(c),
            (1, None) => non_empty(c),
            (_, None) => None,
            (s, Some(sep)) => nth_piece(c, sep, s - 1).and_then(non_empty),
        }
    }

    /// Decoded text of a component / sub-component; 0 selects the whole level.
    pub fn part(&self, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        let raw = self.part_raw(comp, sub)?;
        if self.whole {
            Some(Cow::Borrowed(raw))
        } else {
            Some(unescape(raw, &self.seps))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(s: &str) -> Segment<'_> {
        Segment::new(s, Separators::default())
    }

    #[test]
    fn msh_numbering() {
        let msh = seg("MSH|^~\\&|APP|FAC|RAPP|RFAC|20260114083000||ADT^A01^ADT_A01|CTRL1|P|2.5");
        assert_eq!(msh.field_raw(1), Some("|"));
        assert_eq!(msh.field_raw(2), Some("^~\\&"));
        assert_eq!(msh.field_raw(3), Some("APP"));
        assert_eq!(msh.field_raw(4), Some("FAC"));
        assert_eq!(msh.field_raw(7), Some("20260114083000"));
        assert_eq!(msh.field_raw(8), Some(""));
        assert_eq!(msh.field_raw(9), Some("ADT^A01^ADT_A01"));
        assert_eq!(msh.field_raw(10), Some("CTRL1"));
        assert_eq!(msh.field_raw(12), Some("2.5"));
        assert_eq!(msh.field_raw(13), None);
        assert_eq!(msh.field_count(), 12);
        assert_eq!(msh.get(9, 1, 2, 0).as_deref(), Some("A01"));
        // The encoding characters come back whole, not split on `^` nor unescaped.
        assert_eq!(msh.get(2, 1, 0, 0).as_deref(), Some("^~\\&"));
        assert_eq!(msh.get(2, 1, 2, 0), None);
        assert_eq!(msh.repetitions(2).count(), 1);
    }

    #[test]
    fn fields_iterator_matches_field() {
        for raw in ["MSH|^~\\&|A||B", "PID|1||X~Y^Z|", "PV1", "ZPF|"] {
            let s = seg(raw);
            let all: Vec<_> = s.fields().collect();
            assert_eq!(all.len(), s.field_count(), "{raw}");
            for (i, f) in all.iter().enumerate() {
                assert_eq!(Some(*f), s.field(i + 1), "{raw} field {}", i + 1);
            }
            assert_eq!(s.field(all.len() + 1), None);
        }
        assert_eq!(seg("PID|1|2").fields().nth(1).unwrap().raw(), "2");
    }

    #[test]
    fn nth_piece_edges() {
        assert_eq!(nth_piece("", b'|', 0), Some(""));
        assert_eq!(nth_piece("", b'|', 1), None);
        assert_eq!(nth_piece("a|b||", b'|', 0), Some("a"));
        assert_eq!(nth_piece("a|b||", b'|', 1), Some("b"));
        assert_eq!(nth_piece("a|b||", b'|', 3), Some(""));
        assert_eq!(nth_piece("a|b||", b'|', 4), None);
        assert_eq!(nth_piece("é|ü", b'|', 1), Some("ü"));
    }

    #[test]
    fn other_segment_numbering() {
        let pid = seg("PID|1||MRN1^^^HOSP^MR||Doe^Jane");
        assert_eq!(pid.name(), "PID");
        assert_eq!(pid.field_raw(0), None);
        assert_eq!(pid.field_raw(1), Some("1"));
        assert_eq!(pid.field_raw(3), Some("MRN1^^^HOSP^MR"));
        assert_eq!(pid.field_count(), 5);
        assert_eq!(pid.get(5, 1, 2, 0).as_deref(), Some("Jane"));
        assert_eq!(pid.get(2, 1, 0, 0), None);
        assert_eq!(pid.get(9, 1, 0, 0), None);
    }

    #[test]
    fn repetitions_components_subcomponents() {
        let pid = seg("PID|||A1^^^X^PI~B2^^^Y&1.2.3&ISO^MR~~C3|");
        let reps: Vec<_> = pid.repetitions(3).map(|r| r.raw()).collect();
        assert_eq!(reps, ["A1^^^X^PI", "B2^^^Y&1.2.3&ISO^MR", "", "C3"]);
        assert_eq!(pid.get(3, 2, 1, 0).as_deref(), Some("B2"));
        assert_eq!(pid.get(3, 2, 4, 0).as_deref(), Some("Y&1.2.3&ISO"));
        assert_eq!(pid.get(3, 2, 4, 2).as_deref(), Some("1.2.3"));
        assert_eq!(pid.get(3, 2, 4, 4), None);
        assert_eq!(pid.get(3, 3, 1, 0), None);
        assert_eq!(pid.get(3, 4, 1, 1).as_deref(), Some("C3"));
        assert_eq!(pid.get(3, 5, 1, 0), None);
        assert_eq!(pid.get(3, 0, 1, 0), None);
        let r = pid.repetition(3, 1).unwrap();
        assert_eq!(r.component(5).as_deref(), Some("PI"));
        assert_eq!(r.subcomponent(1, 1).as_deref(), Some("A1"));
        assert_eq!(r.value().as_deref(), Some("A1^^^X^PI"));
        assert_eq!(pid.repetitions(4).count(), 0);
    }

    #[test]
    fn unescapes_values() {
        let nte = seg(r"NTE|1||Smith \T\ Sons\.br\next \S\ line");
        assert_eq!(
            nte.get(3, 1, 1, 0).as_deref(),
            Some("Smith & Sons\nnext ^ line")
        );
        assert_eq!(
            nte.get_raw(3, 1, 1, 0),
            Some(r"Smith \T\ Sons\.br\next \S\ line")
        );
    }
}
