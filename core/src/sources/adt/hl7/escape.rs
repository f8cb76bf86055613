//! HL7 escape sequences (`\F\`, `\S\`, `\T\`, `\R\`, `\E\`, `\Xhh..\`, `\.br\`).

use std::borrow::Cow;

use super::separators::Separators;

/// Decodes the escape sequences of one value.
///
/// `\F\ \S\ \T\ \R\ \E\` become the field, component, sub-component, repetition and escape characters;
/// `\Xhh..\` becomes the bytes it spells (read as UTF-8, or byte-per-character Latin-1 when they are not
/// valid UTF-8); `\.br\` becomes a newline. Anything else — other formatting commands such as `\H\` or
/// `\.sp\`, an unterminated sequence, odd or non-hex digits after `X` — is left as it stands.
/// Values without the escape character are returned borrowed (the common, allocation-free case).
pub fn unescape<'a>(value: &'a str, seps: &Separators) -> Cow<'a, str> {
    let Some(esc) = seps.escape else {
        return Cow::Borrowed(value);
    };
    let bytes = value.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == esc) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len());
    out.push_str(&value[..first]);
    let mut i = first;
    while i < bytes.len() {
        if bytes[i] != esc {
            // Copy the run up to the next escape character in one go; boundaries are ASCII bytes, so the
            // slice is always on a char boundary.
            let next = bytes[i..]
                .iter()
                .position(|&b| b == esc)
                .map_or(bytes.len(), |p| i + p);
            out.push_str(&value[i..next]);
            i = next;
            continue;
        }
        let Some(close) = bytes[i + 1..].iter().position(|&b| b == esc) else {
            out.push_str(&value[i..]);
            break;
        };
        let end = i + 1 + close;
        let seq = &value[i + 1..end];
        if !decode_sequence(seq, seps, &mut out) {
            out.push_str(&value[i..=end]);
        }
        i = end + 1;
    }
    Cow::Owned(out)
}

/// Appends the decoded form of one escape sequence body (between the escape characters); false when the
/// sequence is not one we decode.
fn decode_sequence(seq: &str, seps: &Separators, out: &mut String) -> bool {
    let single = |b: Option<u8>, out: &mut String| match b {
        Some(b) => {
            out.push(b as char);
            true
        }
        None => false,
    };
    match seq {
        "F" => single(Some(seps.field), out),
        "S" => single(Some(seps.component), out),
        "T" => single(seps.subcomponent, out),
        "R" => single(seps.repetition, out),
        "E" => single(seps.escape, out),
        ".br" => {
            out.push('\n');
            true
        }
        _ => match seq.strip_prefix('X') {
            Some(hex) => decode_hex(hex, out),
            None => false,
        },
    }
}

/// Decodes `\Xhh..\` digits; false (left as-is) when they are not an even number of hex digits.
fn decode_hex(hex: &str, out: &mut String) -> bool {
    if hex.is_empty() || hex.len() % 2 == 1 {
        return false;
    }
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.as_bytes().chunks(2) {
        let (Some(hi), Some(lo)) = (hex_val(pair[0]), hex_val(pair[1])) else {
            return false;
        };
        bytes.push(hi << 4 | lo);
    }
    match String::from_utf8(bytes) {
        Ok(s) => out.push_str(&s),
        Err(e) => out.extend(e.into_bytes().into_iter().map(char::from)),
    }
    true
}

/// Value of one hex digit.
fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> String {
        unescape(s, &Separators::default()).into_owned()
    }

    #[test]
    fn all_delimiter_escapes() {
        assert_eq!(un(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
        assert_eq!(un(r"Smith \T\ Sons"), "Smith & Sons");
    }

    #[test]
    fn hex_and_line_break() {
        assert_eq!(un(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(un(r"\X0D0A\"), "\r\n");
        assert_eq!(un(r"caf\XC3A9\"), "café");
        // Not UTF-8: byte-per-character Latin-1.
        assert_eq!(un(r"caf\XE9\"), "café");
        assert_eq!(un(r"\X41\\X42\"), "AB");
    }

    #[test]
    fn unknown_and_broken_escapes_kept() {
        assert_eq!(un(r"\H\bold\N\"), r"\H\bold\N\");
        assert_eq!(un(r"\.sp\"), r"\.sp\");
        assert_eq!(un(r"\X0\"), r"\X0\");
        assert_eq!(un(r"\XZZ\"), r"\XZZ\");
        assert_eq!(un(r"trailing \F"), r"trailing \F");
        assert_eq!(un(r"\"), r"\");
        assert_eq!(un(r"\\"), r"\\");
        assert_eq!(un(r"x\r"), r"x\r");
    }

    #[test]
    fn borrowed_when_nothing_to_do() {
        assert!(matches!(
            unescape("plain", &Separators::default()),
            Cow::Borrowed("plain")
        ));
        let no_esc = Separators {
            escape: None,
            ..Separators::default()
        };
        assert_eq!(unescape(r"\F\", &no_esc), r"\F\");
    }

    #[test]
    fn non_default_escape_character() {
        let seps = Separators::from_msh("MSH#$*@!#").unwrap();
        assert_eq!(unescape("a@F@b@S@c@E@", &seps), "a#b$c@");
        assert_eq!(unescape(r"a\F\b", &seps), r"a\F\b");
    }

    #[test]
    fn multibyte_text_survives() {
        assert_eq!(un("Zoë \\T\\ Jürgen \\.br\\ 東京"), "Zoë & Jürgen \n 東京");
    }
}
