//! The delimiter set of one message, read from MSH-1 and MSH-2.

use super::error::Hl7Error;

/// The delimiters a message declares in its MSH segment.
///
/// All delimiters are single ASCII punctuation bytes; that lets every split work on bytes without ever
/// landing inside a multi-byte UTF-8 character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Field separator (MSH-1, normally `|`).
    pub field: u8,
    /// Component separator (MSH-2 first character, normally `^`).
    pub component: u8,
    /// Repetition separator (MSH-2 second character, normally `~`); `None` when MSH-2 declares none.
    pub repetition: Option<u8>,
    /// Escape character (MSH-2 third character, normally `\`); `None` when MSH-2 declares none.
    pub escape: Option<u8>,
    /// Sub-component separator (MSH-2 fourth character, normally `&`); `None` when MSH-2 declares none.
    pub subcomponent: Option<u8>,
}

impl Default for Separators {
    /// The HL7 default delimiters `|^~\&`.
    fn default() -> Self {
        Separators {
            field: b'|',
            component: b'^',
            repetition: Some(b'~'),
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
        }
    }
}

/// A byte HL7 accepts as a delimiter: printable ASCII punctuation (no letters, digits, spaces or controls).
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

impl Separators {
    /// Reads the delimiters from the start of an MSH segment (`MSH|^~\&|...`).
    ///
    /// MSH-2 may hold 1 to 4 encoding characters, plus the v2.7 truncation character as a fifth, which is
    /// ignored. A doubled escape character (`^~\\&`, left behind when a message was copied out of a
    /// source-code string literal) is read as `^~\&`: the doubled form is otherwise invalid and this is the
    /// only reading that makes sense of it.
    pub fn from_msh(segment: &str) -> Result<Separators, Hl7Error> {
        let bytes = segment.as_bytes();
        if !bytes.starts_with(b"MSH") {
            return Err(Hl7Error::NotHl7);
        }
        let Some(&field) = bytes.get(3) else {
            return Err(Hl7Error::Truncated {
                reason: "the message ends right after the MSH segment id".into(),
            });
        };
        if !is_delimiter(field) {
            return Err(Hl7Error::BadSeparators {
                reason: "MSH-1 field separator must be an ASCII punctuation character".into(),
            });
        }
        let rest = &bytes[4..];
        let mut enc: &[u8] = &rest[..rest.iter().position(|&b| b == field).unwrap_or(rest.len())];
        if enc.is_empty() {
            return Err(Hl7Error::BadSeparators {
                reason: "MSH-2 encoding characters are missing".into(),
            });
        }
        let doubled_escape: [u8; 4];
        if enc.len() == 5 && enc[2] == enc[3] {
            doubled_escape = [enc[0], enc[1], enc[2], enc[4]];
            enc = &doubled_escape;
        } else if enc.len() == 5 {
            // v2.7 truncation character: declared, but it only matters to senders.
            enc = &enc[..4];
        }
        if enc.len() > 4 {
            return Err(Hl7Error::BadSeparators {
                reason: format!("MSH-2 has {} characters; expected 4 (`^~\\&`)", enc.len()),
            });
        }
        if let Some(pos) = enc.iter().position(|&b| !is_delimiter(b)) {
            return Err(Hl7Error::BadSeparators {
                reason: format!(
                    "MSH-2 character {} is not an ASCII punctuation character",
                    pos + 1
                ),
            });
        }
        for (i, &b) in enc.iter().enumerate() {
            if b == field || enc[..i].contains(&b) {
                return Err(Hl7Error::BadSeparators {
                    reason: "MSH-1/MSH-2 declare the same delimiter twice".into(),
                });
            }
        }
        Ok(Separators {
            field,
            component: enc[0],
            repetition: enc.get(1).copied(),
            escape: enc.get(2).copied(),
            subcomponent: enc.get(3).copied(),
        })
    }

    /// The field separator as a one-character string slice (what MSH-1 returns).
    pub(crate) fn field_str(&self) -> &'static str {
        ascii_str(self.field)
    }
}

/// A `'static` one-character string for an ASCII punctuation byte (MSH-1 is returned as such a slice).
fn ascii_str(b: u8) -> &'static str {
    const PUNCT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    PUNCT
        .find(b as char)
        .map(|i| &PUNCT[i..i + 1])
        .unwrap_or("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_separators() {
        let s = Separators::from_msh("MSH|^~\\&|APP").unwrap();
        assert_eq!(s, Separators::default());
        assert_eq!(s.field_str(), "|");
    }

    #[test]
    fn non_default_separators() {
        let s = Separators::from_msh("MSH#$*@!#APP").unwrap();
        assert_eq!(s.field, b'#');
        assert_eq!(s.component, b'$');
        assert_eq!(s.repetition, Some(b'*'));
        assert_eq!(s.escape, Some(b'@'));
        assert_eq!(s.subcomponent, Some(b'!'));
        assert_eq!(s.field_str(), "#");
    }

    #[test]
    fn doubled_escape_and_truncation_char() {
        assert_eq!(
            Separators::from_msh("MSH|^~\\\\&|A").unwrap(),
            Separators::default()
        );
        assert_eq!(
            Separators::from_msh("MSH|^~\\&#|A").unwrap(),
            Separators::default()
        );
    }

    #[test]
    fn short_encoding_characters() {
        let s = Separators::from_msh("MSH|^~|A").unwrap();
        assert_eq!(s.escape, None);
        assert_eq!(s.subcomponent, None);
    }

    #[test]
    fn bad_separators() {
        for bad in [
            "MSHA^~\\&|",
            "MSH||",
            "MSH|",
            "MSH|^^\\&|",
            "MSH|^~\\&xyz|",
            "MSH|^a\\&|",
            "MSH ^~\\&|",
        ] {
            assert!(
                matches!(
                    Separators::from_msh(bad),
                    Err(Hl7Error::BadSeparators { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Separators::from_msh("MSH"),
            Err(Hl7Error::Truncated { .. })
        ));
        assert!(matches!(
            Separators::from_msh("PID|1"),
            Err(Hl7Error::NotHl7)
        ));
    }
}
