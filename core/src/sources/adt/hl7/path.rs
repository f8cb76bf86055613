//! Field paths such as `PV1-3.1`, `PID-3[2].1` or `OBX[2]-5`.

use std::str::FromStr;

/// A parsed field path. All positions are 1-based, as in HL7 documentation.
///
/// Grammar: `SEG[occurrence]-field[repetition].component.subcomponent`, where everything after the field
/// number is optional and a `.` may stand in for the `-` after the segment id (`PID.3.1`). The
/// occurrence picks among repeated segments (default 1st), the repetition among field repetitions
/// (default 1st). Without a component the whole repetition is addressed; without a sub-component the
/// whole component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hl7Path {
    /// Segment id, e.g. `*b"PV1"`.
    pub segment: [u8; 3],
    /// Which occurrence of the segment (1 = first).
    pub occurrence: usize,
    /// Field number in HL7 numbering (for MSH, MSH-1 is the field separator).
    pub field: usize,
    /// Field repetition (1 = first).
    pub repetition: usize,
    /// Component, or `None` for the whole repetition.
    pub component: Option<usize>,
    /// Sub-component, or `None` for the whole component.
    pub subcomponent: Option<usize>,
}

/// A path that does not follow the grammar of [`Hl7Path`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad HL7 path {path:?}: {reason}")]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for Hl7Path {
    type Err = PathError;

    fn from_str(path: &str) -> Result<Self, Self::Err> {
        let err = |reason| PathError {
            path: path.to_string(),
            reason,
        };
        let b = path.as_bytes();
        if b.len() < 5
            || !b[..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(err("expected a 3-character segment id such as PID"));
        }
        let mut cur = Cursor { b, pos: 3 };
        let occurrence = cur.bracket().map_err(err)?.unwrap_or(1);
        if !cur.eat(b'-') && !cur.eat(b'.') {
            return Err(err("expected '-' after the segment id"));
        }
        let field = cur.number().ok_or_else(|| err("expected a field number"))?;
        let repetition = cur.bracket().map_err(err)?.unwrap_or(1);
        let component = if cur.eat(b'.') {
            Some(
                cur.number()
                    .ok_or_else(|| err("expected a component number"))?,
            )
        } else {
            None
        };
        let subcomponent = if component.is_some() && cur.eat(b'.') {
            Some(
                cur.number()
                    .ok_or_else(|| err("expected a sub-component number"))?,
            )
        } else {
            None
        };
        if cur.pos != b.len() {
            return Err(err("unexpected characters after the path"));
        }
        if [occurrence, field, repetition].contains(&0)
            || component == Some(0)
            || subcomponent == Some(0)
        {
            return Err(err("positions are 1-based"));
        }
        Ok(Hl7Path {
            segment: [b[0], b[1], b[2]],
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

/// A tiny byte cursor for the path grammar.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        if self.pos == start || self.pos - start > 6 {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    /// An optional `[n]`.
    fn bracket(&mut self) -> Result<Option<usize>, &'static str> {
        if !self.eat(b'[') {
            return Ok(None);
        }
        let n = self.number().ok_or("expected a number inside [ ]")?;
        if !self.eat(b']') {
            return Err("expected ']'");
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Hl7Path {
        s.parse().unwrap()
    }

    #[test]
    fn parses_paths() {
        let x = p("PV1-3.1");
        assert_eq!((&x.segment, x.field, x.component), (b"PV1", 3, Some(1)));
        assert_eq!((x.occurrence, x.repetition, x.subcomponent), (1, 1, None));
        let x = p("PID-3[2].1");
        assert_eq!((x.field, x.repetition, x.component), (3, 2, Some(1)));
        let x = p("OBX[2]-5.1.2");
        assert_eq!(
            (x.occurrence, x.field, x.component, x.subcomponent),
            (2, 5, Some(1), Some(2))
        );
        assert_eq!(p("PID.3.1"), p("PID-3.1"));
        assert_eq!(p("MSH-9").component, None);
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            "",
            "PV",
            "pv1-3",
            "PV1",
            "PV1-",
            "PV1-x",
            "PV1-3.",
            "PV1-0",
            "PV1-3[0]",
            "PV1-3[2",
            "PV1-3.1.2.3",
            "PV1-3 ",
            "PÄ1-3",
            "PV1-99999999",
        ] {
            assert!(bad.parse::<Hl7Path>().is_err(), "{bad:?}");
        }
    }
}
