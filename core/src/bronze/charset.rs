//! Character sets of ADT messages: the one an HL7 message declares (MSH-18, HL7 table 0211) and, when
//! a message's bytes are not valid in it, the fields whose reading is a guess.
//!
//! Bronze decodes each message on its own: as UTF-8 when its bytes are valid UTF-8, else byte by byte
//! as ISO 8859-1 (Latin-1), which maps every byte to one character and so loses nothing. The Latin-1
//! reading is what the sender meant only when the message declares `8859/1`; otherwise it is a guess,
//! and the fields it touched (those holding bytes above 0x7F) are recorded for Silver's rules.

/// What a message says about its character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// No MSH-18, or `ASCII` (the default HL7 gives an omitted MSH-18): 7-bit ASCII is expected, and
    /// bytes beyond it are read as UTF-8, else as Latin-1.
    Default,
    /// `UNICODE UTF-8` (also the common spellings `UTF-8`, `UTF8`): the bytes must be valid UTF-8.
    Utf8,
    /// `8859/1` (also `ISO-8859-1`, `ISO8859-1`, `LATIN1`): the Latin-1 reading is the declared one.
    Latin1,
    /// Another table 0211 value (8859/2…, GB 18030…), which Bronze does not decode: a message that is
    /// not valid UTF-8 is read as Latin-1, a guess like the default case.
    Other,
}

impl Declared {
    /// Classifies an MSH-18 value (as [`declared_charset`] returns it).
    pub fn of(value: Option<&str>) -> Declared {
        let Some(v) = value else {
            return Declared::Default;
        };
        match v.trim().to_ascii_uppercase().as_str() {
            "" | "ASCII" => Declared::Default,
            "UNICODE UTF-8" | "UTF-8" | "UTF8" => Declared::Utf8,
            "8859/1" | "ISO-8859-1" | "ISO8859-1" | "LATIN1" => Declared::Latin1,
            _ => Declared::Other,
        }
    }
}

/// MSH-18 of an HL7 message: component 1 of its first repetition (the message's default character
/// set; later repetitions name alternates switched to by escape sequences), trimmed, as sent. `None`
/// when the message has no MSH-18 or it is empty. Reads only ASCII structure, so it works on the
/// byte-per-character reading of any message.
pub fn declared_charset(message: &str) -> Option<String> {
    let msh = message.split(['\r', '\n']).next()?;
    if !msh.starts_with("MSH") {
        return None;
    }
    let mut chars = msh.chars().skip(3);
    let field_sep = chars.next()?;
    let encoding: Vec<char> = chars.take_while(|c| *c != field_sep).collect();
    let component = encoding.first().copied().unwrap_or('^');
    let repetition = encoding.get(1).copied().unwrap_or('~');
    // Split on the field separator: [MSH, MSH-2, MSH-3, ...], so MSH-n is at index n - 1.
    let value = msh.split(field_sep).nth(17)?;
    let first = value
        .split(repetition)
        .next()?
        .split(component)
        .next()?
        .trim();
    (!first.is_empty() && first != "\"\"").then(|| first.to_string())
}

/// The fields of an HL7 message (its bytes, segments ended by CR or LF) holding bytes above 0x7F, as
/// `SEG-n` in message order, each once (`MSH-4`, `PID-5`, `PID-11`); a segment id that is not ASCII
/// itself is named as it reads.
pub fn hl7_fields_beyond_ascii(bytes: &[u8]) -> Vec<String> {
    let field_sep = bytes.get(3).copied().unwrap_or(b'|');
    let mut out: Vec<String> = Vec::new();
    let mut push = |label: String| {
        if !out.contains(&label) {
            out.push(label);
        }
    };
    for segment in bytes.split(|b| *b == b'\r' || *b == b'\n') {
        if segment.is_ascii() {
            continue;
        }
        let name: String = segment.iter().take(3).map(|&b| char::from(b)).collect();
        // MSH-1 is the field separator itself, so MSH's pieces are numbered one higher.
        let shift = usize::from(name == "MSH");
        for (i, field) in segment.split(|b| *b == field_sep).enumerate() {
            if field.is_ascii() {
                continue;
            }
            push(if i == 0 {
                name.clone()
            } else {
                format!("{name}-{}", i + shift)
            });
        }
    }
    out
}

/// The members of a JSON message (read byte per character) whose key or string value holds
/// characters above U+007F, as dotted paths (`patient.family_name`, `notes[0]`); `payload` when the
/// text is not JSON or the characters are outside any string.
pub fn json_fields_beyond_ascii(text: &str) -> Vec<String> {
    fn push(out: &mut Vec<String>, p: &str) {
        let p = if p.is_empty() { "$" } else { p };
        if !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if !s.is_ascii() => push(out, path),
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if !k.is_ascii() {
                        push(out, &p);
                    }
                    walk(x, &p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&v, "", &mut out);
    }
    if out.is_empty() {
        out.push("payload".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msh18_is_read_from_its_first_repetition() {
        let msh = |f18: &str| format!("MSH|^~\\&|A|F|||2026||ADT^A01|1|P|2.5||||||{f18}\rPID|1");
        assert_eq!(
            declared_charset(&msh("UNICODE UTF-8")).as_deref(),
            Some("UNICODE UTF-8")
        );
        assert_eq!(
            declared_charset(&msh("8859/1~ISO IR87")).as_deref(),
            Some("8859/1")
        );
        assert_eq!(declared_charset(&msh("")), None);
        assert_eq!(
            declared_charset("MSH|^~\\&|A|F|||2026||ADT^A01|1|P|2.5"),
            None
        );
        assert_eq!(declared_charset("PID|1"), None);
        assert_eq!(Declared::of(Some("unicode utf-8")), Declared::Utf8);
        assert_eq!(Declared::of(Some("ASCII")), Declared::Default);
        assert_eq!(Declared::of(None), Declared::Default);
        assert_eq!(Declared::of(Some("8859/1")), Declared::Latin1);
        assert_eq!(Declared::of(Some("GB 18030-2000")), Declared::Other);
    }

    #[test]
    fn fields_beyond_ascii_are_named_by_position() {
        let mut m =
            b"MSH|^~\\&|A|F\xE9|||2026||ADT^A01|1|P|2.5\rPID|1||M1||M\xFCller^Ann||||||".to_vec();
        m.extend_from_slice(b"R\xFCe 1\rPV1|1|I\rNTE|1||\xC3\xA9");
        assert_eq!(
            hl7_fields_beyond_ascii(&m),
            ["MSH-4", "PID-5", "PID-11", "NTE-3"]
        );
        assert!(hl7_fields_beyond_ascii(b"MSH|^~\\&|A\rPID|1").is_empty());
        let json = "{\"message_id\":\"1\",\"patient\":{\"family_name\":\"M\u{fc}ller\",\"notes\":[\"ok\",\"\u{e9}\"]}}";
        assert_eq!(
            json_fields_beyond_ascii(json),
            ["patient.family_name", "patient.notes[1]"]
        );
        assert_eq!(json_fields_beyond_ascii("{bad \u{e9}"), ["payload"]);
    }
}
