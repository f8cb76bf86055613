//! Why a message could not be read. Reasons never quote field values (they may be patient data).

/// A message that cannot be parsed, or whose header lacks what the pipeline needs. Bronze stores the
/// [`Display`](std::fmt::Display) text (one line) as the rejection reason and [`Hl7Error::code`] as the
/// machine-readable kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    /// The text does not start with an MSH segment.
    #[error("not an HL7 v2 message: the text does not start with an MSH segment")]
    NotHl7,
    /// MSH-1 / MSH-2 do not declare a usable delimiter set.
    #[error("bad separators: {reason}")]
    BadSeparators {
        /// What is wrong with MSH-1 / MSH-2.
        reason: String,
    },
    /// MSH-10 (message control id, the idempotency key) is empty.
    #[error("missing message control id: MSH-10 is empty")]
    MissingControlId,
    /// MSH-9 component 1 (message code, e.g. `ADT`) is empty.
    #[error("missing message type: MSH-9 is empty")]
    MissingMessageType,
    /// The message was cut short.
    #[error("truncated message: {reason}")]
    Truncated {
        /// Where the message ends early.
        reason: String,
    },
    /// A segment inside the message does not start with a valid segment id.
    #[error("bad segment {index}: {reason}")]
    BadSegment {
        /// 1-based position of the segment in the message (MSH is 1).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A second MSH segment: the text holds more than one message and should go through
    /// [`split_stream`](super::split_stream) first.
    #[error("more than one message: a second MSH segment starts at segment {index}")]
    MultipleMessages {
        /// 1-based position of the second MSH segment.
        index: usize,
    },
}

impl Hl7Error {
    /// A stable snake_case code for the error kind (for quarantine rule ids and counters).
    pub fn code(&self) -> &'static str {
        match self {
            Hl7Error::NotHl7 => "not_hl7",
            Hl7Error::BadSeparators { .. } => "bad_separators",
            Hl7Error::MissingControlId => "missing_control_id",
            Hl7Error::MissingMessageType => "missing_message_type",
            Hl7Error::Truncated { .. } => "truncated",
            Hl7Error::BadSegment { .. } => "bad_segment",
            Hl7Error::MultipleMessages { .. } => "multiple_messages",
        }
    }
}
