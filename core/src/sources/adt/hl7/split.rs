//! Splitting one file or Event Hub event into HL7 messages.

use super::message::{find_break, is_line_noise};

/// One piece of an input: a message, or content that belongs to no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based position among the chunks of the input.
    pub index: usize,
    /// Byte offset in the input where the chunk's first segment starts.
    pub offset: usize,
    /// What the chunk holds.
    pub kind: ChunkKind,
}

/// The content of a [`Chunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKind {
    /// One message (MSH and the segments after it), segments re-joined with `\r` (the canonical form,
    /// no trailing terminator). It may still fail [`Hl7Message::parse`](super::Hl7Message::parse).
    Message {
        /// The message text.
        text: String,
    },
    /// Segments that belong to no message, re-joined with `\r`.
    Junk {
        /// The segments as they arrived (leading whitespace and framing bytes dropped).
        text: String,
        /// Why they belong to no message.
        reason: JunkReason,
    },
}

/// Why a [`ChunkKind::Junk`] chunk belongs to no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JunkReason {
    /// Segments (or any other text) before the first MSH of the input.
    BeforeFirstMsh,
    /// Segments after a batch envelope segment (FHS/BHS/BTS/FTS) ended the previous message, with no MSH
    /// of their own.
    AfterEnvelope,
    /// The input holds batch envelope segments and nothing else: a batch with no message in it.
    EmptyEnvelope,
}

impl JunkReason {
    /// A stable snake_case code (for quarantine rule ids and counters).
    pub fn code(&self) -> &'static str {
        match self {
            JunkReason::BeforeFirstMsh => "before_first_msh",
            JunkReason::AfterEnvelope => "after_envelope",
            JunkReason::EmptyEnvelope => "empty_envelope",
        }
    }
}

impl std::fmt::Display for JunkReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JunkReason::BeforeFirstMsh => "content before the first MSH segment: no message header",
            JunkReason::AfterEnvelope => {
                "segments after a batch envelope segment (FHS/BHS/BTS/FTS) with no MSH of their own"
            }
            JunkReason::EmptyEnvelope => "batch envelope (FHS/BHS/BTS/FTS) with no message inside",
        })
    }
}

impl Chunk {
    /// The chunk's text, message or junk.
    pub fn text(&self) -> &str {
        match &self.kind {
            ChunkKind::Message { text } | ChunkKind::Junk { text, .. } => text,
        }
    }

    /// The message text, when the chunk is a message.
    pub fn message(&self) -> Option<&str> {
        match &self.kind {
            ChunkKind::Message { text } => Some(text),
            ChunkKind::Junk { .. } => None,
        }
    }
}

/// What a line of the input is.
#[derive(PartialEq)]
enum Line {
    Msh,
    Envelope,
    Other,
}

fn classify(line: &str) -> Line {
    let b = line.as_bytes();
    // The 4th byte is the field separator (or the segment is a bare id).
    let id_then_sep = b.len() == 3 || b.get(3).is_some_and(|c| !c.is_ascii_alphanumeric());
    match b.get(..3) {
        Some(b"MSH") => Line::Msh,
        Some(b"FHS" | b"BHS" | b"BTS" | b"FTS") if id_then_sep => Line::Envelope,
        _ => Line::Other,
    }
}

/// The non-blank lines of `text` with their byte offsets; CR, LF, CRLF and MLLP bytes all end a line.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < text.len() {
            let rest = &text[pos..];
            let len = find_break(rest).unwrap_or(rest.len());
            let line = &rest[..len];
            let start = pos;
            // Break characters are single bytes, so `+ 1` stays on a char boundary.
            pos += len + 1;
            let trimmed = line.trim_start_matches(is_line_noise);
            if !trimmed.trim().is_empty() {
                return Some((start + line.len() - trimmed.len(), trimmed));
            }
        }
        None
    })
}

/// Chunk being accumulated.
struct Pending<'a> {
    offset: usize,
    segments: Vec<&'a str>,
    junk: Option<JunkReason>,
}

impl Pending<'_> {
    fn finish(self, index: usize) -> Chunk {
        let text = self.segments.join("\r");
        let kind = match self.junk {
            None => ChunkKind::Message { text },
            Some(reason) => ChunkKind::Junk { text, reason },
        };
        Chunk {
            index,
            offset: self.offset,
            kind,
        }
    }
}

/// Appends a finished chunk, numbering it.
fn flush(p: Option<Pending<'_>>, chunks: &mut Vec<Chunk>) {
    if let Some(p) = p {
        let index = chunks.len();
        chunks.push(p.finish(index));
    }
}

/// Splits the text of one file or Event Hub event into messages and junk, in input order.
///
/// A message starts at each line beginning `MSH` and runs to the next MSH or batch envelope segment.
/// Segment endings may be CR, LF or CRLF, mixed; MLLP framing bytes (0x0B, 0x1C 0x0D), blank lines, a
/// leading byte-order mark and leading whitespace on a line are dropped. Batch envelopes
/// (FHS/BHS/BTS/FTS) are recognised and produce no chunk — unless the input holds nothing else
/// ([`JunkReason::EmptyEnvelope`]). Segments outside any message become junk chunks. Empty or
/// whitespace-only input yields no chunks. Never panics.
pub fn split_stream(text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current: Option<Pending<'_>> = None;
    let mut envelope: Vec<(usize, &str)> = Vec::new();
    let mut saw_msh = false;
    for (offset, line) in lines(text) {
        match classify(line) {
            Line::Msh => {
                flush(current.take(), &mut chunks);
                saw_msh = true;
                current = Some(Pending {
                    offset,
                    segments: vec![line],
                    junk: None,
                });
            }
            Line::Envelope => {
                flush(current.take(), &mut chunks);
                envelope.push((offset, line));
            }
            Line::Other => match current.as_mut() {
                Some(p) => p.segments.push(line),
                None => {
                    let reason = if saw_msh {
                        JunkReason::AfterEnvelope
                    } else {
                        JunkReason::BeforeFirstMsh
                    };
                    current = Some(Pending {
                        offset,
                        segments: vec![line],
                        junk: Some(reason),
                    });
                }
            },
        }
    }
    flush(current.take(), &mut chunks);
    if chunks.is_empty() && !envelope.is_empty() {
        let p = Pending {
            offset: envelope[0].0,
            segments: envelope.iter().map(|&(_, l)| l).collect(),
            junk: Some(JunkReason::EmptyEnvelope),
        };
        flush(Some(p), &mut chunks);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: &str = "MSH|^~\\&|A|F1|||2026||ADT^A01|1|P|2.5\rPID|1||M1";
    const M2: &str = "MSH|^~\\&|A|F1|||2026||ADT^A03|2|P|2.5\rPID|1||M2\rPV1|1|I";

    fn messages(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().filter_map(Chunk::message).collect()
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(split_stream("").is_empty());
        assert!(split_stream(" \r\n\t\n\u{feff}").is_empty());
        assert!(split_stream("\u{0b}\u{1c}\r").is_empty());
    }

    #[test]
    fn several_messages_mixed_line_endings() {
        let text = format!(
            "{}\n\n{}\r\n",
            M1.replace('\r', "\r\n"),
            M2.replacen('\r', "\n", 1)
        );
        let chunks = split_stream(&text);
        assert_eq!(messages(&chunks), [M1, M2]);
        assert_eq!(chunks[0].index, 0);
        assert_eq!(chunks[1].index, 1);
        assert_eq!(chunks[0].offset, 0);
        assert_eq!(&text[chunks[1].offset..chunks[1].offset + 3], "MSH");
    }

    #[test]
    fn bom_and_mllp_framing() {
        let text = format!("\u{feff}\u{0b}{M1}\r\u{1c}\r\u{0b}{M2}\r\u{1c}\r");
        let chunks = split_stream(&text);
        assert_eq!(messages(&chunks), [M1, M2]);
        assert_eq!(chunks[0].offset, 4); // BOM (3 bytes) + 0x0B
                                         // MLLP bytes glued to a segment are boundaries too.
        let glued = format!("{M1}\u{1c}\u{0b}{M2}");
        assert_eq!(messages(&split_stream(&glued)), [M1, M2]);
    }

    #[test]
    fn batch_envelopes_are_not_messages() {
        let text = format!("FHS|^~\\&|X\rBHS|^~\\&|X\r{M1}\r{M2}\rBTS|2\rFTS|1\r");
        let chunks = split_stream(&text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(messages(&chunks), [M1, M2]);
    }

    #[test]
    fn junk_before_first_msh() {
        let chunks = split_stream(&format!("EVN|A01|2026\rPID|1\r{M1}"));
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[0].kind,
            ChunkKind::Junk {
                text: "EVN|A01|2026\rPID|1".into(),
                reason: JunkReason::BeforeFirstMsh
            }
        );
        assert_eq!(chunks[1].message(), Some(M1));
        assert_eq!(chunks[1].offset, 19);
        let chunks = split_stream("hello world");
        assert!(matches!(
            chunks[0].kind,
            ChunkKind::Junk {
                reason: JunkReason::BeforeFirstMsh,
                ..
            }
        ));
    }

    #[test]
    fn junk_after_envelope() {
        let chunks = split_stream(&format!("BHS|^~\\&\r{M1}\rBHS|^~\\&\rPV1|1|O\rBTS|1"));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].message(), Some(M1));
        assert_eq!(
            chunks[1].kind,
            ChunkKind::Junk {
                text: "PV1|1|O".into(),
                reason: JunkReason::AfterEnvelope
            }
        );
    }

    #[test]
    fn envelope_without_messages() {
        let chunks = split_stream("FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r");
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].kind,
            ChunkKind::Junk {
                text: "FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1".into(),
                reason: JunkReason::EmptyEnvelope
            }
        );
        assert!(!JunkReason::EmptyEnvelope.to_string().contains('\n'));
    }

    #[test]
    fn segment_named_like_envelope_prefix_is_not_envelope() {
        // `BHSX` is not a batch header; inside a message it is just a (bad) segment.
        let chunks = split_stream(&format!("{M1}\rBHSX|1"));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].message().unwrap().ends_with("BHSX|1"));
    }
}
