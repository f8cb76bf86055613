//! HL7 v2 ER7 ("pipe") messages: splitting a stream into messages, parsing them, and mapping an ADT
//! message onto [`AdtEvent`](super::AdtEvent).
//!
//! ```
//! use patientflow_core::sources::adt::hl7::{split_stream, to_adt_event, Hl7Message};
//! let file = "MSH|^~\\&|EPIC|MHA01|||20260114083000||ADT^A01|42|P|2.5\nPID|1||M7^^^MHA^MR\nPV1|1|I|ICU^4^A\n";
//! for chunk in split_stream(file) {
//!     let msg = Hl7Message::parse(chunk.message().unwrap()).unwrap();
//!     let event = to_adt_event(&msg).unwrap();
//!     assert_eq!(event.department.as_deref(), Some("ICU"));
//! }
//! ```

mod adt;
mod error;
mod escape;
mod header;
mod message;
mod path;
mod segment;
mod separators;
mod split;

pub use adt::to_adt_event;
pub use error::Hl7Error;
pub use escape::unescape;
pub use header::MessageHeader;
pub use message::Hl7Message;
pub use path::{Hl7Path, PathError};
pub use segment::{Field, Repetition, Segment};
pub use separators::Separators;
pub use split::{split_stream, Chunk, ChunkKind, JunkReason};
