//! Bronze ingestion of the real-time ADT feed: HL7 v2 ER7 and JSON messages.
//!
//! One Bronze row per message. An event or file may hold several messages (HL7 batches, NDJSON); each
//! becomes its own row with its position. Messages are parsed only as far as Bronze needs — message id,
//! type, trigger event, facility — and a message that cannot be parsed is still stored, flagged
//! `unparseable` with the reason.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use deltalake::arrow::array::{Array, AsArray};
use deltalake::DeltaTable;
use tokio::sync::Mutex;

use super::charset::{
    declared_charset, hl7_fields_beyond_ascii, json_fields_beyond_ascii, Declared,
};
use super::files::{expand_paths, read_input};
use super::{sha256_hex, IngestReport, InputError, Lineage, LineageKind, ADT_MESSAGES};
use crate::sources::adt::hl7::{split_stream, ChunkKind, Hl7Message};
use crate::storage::blind_append::{Appended, BlindAppender};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::{CommitMarker, Lake};
use crate::Result;

/// Rows per Delta commit when ingesting many files: bounds memory and keeps commits reasonable.
const ROWS_PER_COMMIT: usize = 250_000;

/// One delivery unit: an Event Hub event, an HTTP-posted record, or a whole file.
#[derive(Debug, Clone)]
pub struct AdtInput {
    /// The bytes as delivered.
    pub payload: Vec<u8>,
    /// Where they came from.
    pub lineage: Lineage,
}

/// A message cut out of an input, with what Bronze knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    /// The message text (HL7 segments joined by CR; JSON as received).
    pub text: String,
    /// `hl7v2`, `json`, `fhir` or `unknown`.
    pub format: &'static str,
    /// Index of the message within its input.
    pub position: usize,
    /// Byte offset of the message within its input.
    pub byte_offset: usize,
    /// Header fields, or why the message could not be parsed.
    pub header: std::result::Result<MessageHeader, String>,
}

/// The header fields Bronze records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageHeader {
    /// MSH-10 or the JSON `message_id`.
    pub message_id: String,
    /// `ADT^A01`-style message type.
    pub message_type: String,
    /// Trigger event (`A01`).
    pub trigger_event: String,
    /// Sending facility (hospital id).
    pub facility: Option<String>,
}

/// A message of an input decoded on its own, with what Bronze records of its character set.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    /// The message (its text, position and byte offset in the input, header).
    pub message: RawMessage,
    /// `utf8`, or `latin1` when the message's bytes are not UTF-8 (read byte per character).
    pub encoding: &'static str,
    /// HL7 MSH-18 as sent (first repetition, component 1); `None` when absent and for JSON.
    pub declared_charset: Option<String>,
    /// The fields whose reading is a guess, comma-separated (`PID-5,PID-11`; JSON paths; `payload`):
    /// set when the message was read as Latin-1 although it does not declare `8859/1`.
    pub charset_issue: Option<String>,
}

/// Splits one input into messages and decodes each message on its own: as UTF-8 when its bytes are
/// valid UTF-8, else byte per character as ISO 8859-1 (lossless), so one bad byte does not change
/// how the other messages of the input read. A leading UTF-8 byte-order mark is dropped; byte offsets
/// count from after it. Never fails.
pub fn decode_messages(payload: &[u8]) -> Vec<DecodedMessage> {
    let bytes = payload.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(payload);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return split_messages(text)
            .into_iter()
            .map(|message| DecodedMessage {
                declared_charset: declared_of(&message),
                message,
                encoding: "utf8",
                charset_issue: None,
            })
            .collect();
    }
    // Not UTF-8 as a whole: cut on a byte-per-character reading (every message boundary is ASCII),
    // then decode each message's own bytes.
    let view: String = bytes.iter().map(|&b| char::from(b)).collect();
    let mut offsets = RawOffsets::default();
    split_messages(&view)
        .into_iter()
        .map(|m| {
            let raw: Vec<u8> = m
                .text
                .chars()
                .map(|c| u8::try_from(c).unwrap_or(b'?'))
                .collect();
            let byte_offset = offsets.raw(&view, m.byte_offset);
            let declared = declared_of(&m);
            match String::from_utf8(raw) {
                Ok(text) => DecodedMessage {
                    message: reread(m, text, byte_offset),
                    encoding: "utf8",
                    declared_charset: declared,
                    charset_issue: None,
                },
                Err(e) => {
                    let issue = match Declared::of(declared.as_deref()) {
                        Declared::Latin1 => None,
                        _ => {
                            let fields = match m.format {
                                "hl7v2" if m.text.starts_with("MSH") => {
                                    hl7_fields_beyond_ascii(e.as_bytes())
                                }
                                "json" | "fhir" => json_fields_beyond_ascii(&m.text),
                                _ => vec!["payload".to_string()],
                            };
                            Some(fields.join(","))
                        }
                    };
                    DecodedMessage {
                        message: RawMessage { byte_offset, ..m },
                        encoding: "latin1",
                        declared_charset: declared,
                        charset_issue: issue,
                    }
                }
            }
        })
        .collect()
}

/// MSH-18 of an HL7 message.
fn declared_of(m: &RawMessage) -> Option<String> {
    (m.format == "hl7v2")
        .then(|| declared_charset(&m.text))
        .flatten()
}

/// A message cut from the byte-per-character reading, read again from its own (UTF-8) bytes.
fn reread(m: RawMessage, text: String, byte_offset: usize) -> RawMessage {
    match m.format {
        "hl7v2" if text.starts_with("MSH") => RawMessage {
            header: hl7_header(&text),
            text,
            byte_offset,
            ..m
        },
        "json" | "fhir" => json_message(&text, m.position, byte_offset),
        _ => RawMessage {
            text,
            byte_offset,
            ..m
        },
    }
}

/// Turns offsets in the byte-per-character reading of an input (where bytes above 0x7F take two
/// bytes) back into offsets in its bytes, for offsets that only grow.
#[derive(Default)]
struct RawOffsets {
    view: usize,
    raw: usize,
}

impl RawOffsets {
    fn raw(&mut self, view: &str, offset: usize) -> usize {
        if offset < self.view {
            *self = RawOffsets::default();
        }
        match view.get(self.view..offset) {
            Some(part) => {
                self.raw += part.chars().count();
                self.view = offset;
                self.raw
            }
            None => offset,
        }
    }
}

/// Splits one input's text into messages. Never fails: what cannot be understood becomes a message
/// with an error reason.
pub fn split_messages(text: &str) -> Vec<RawMessage> {
    let trimmed = text.trim_start_matches(['\u{feff}', '\u{0b}', ' ', '\t', '\r', '\n']);
    if trimmed.is_empty() {
        return Vec::new();
    }
    if trimmed.starts_with("MSH") || trimmed.starts_with("FHS") || trimmed.starts_with("BHS") {
        return split_hl7(text);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return split_json(text);
    }
    let reason = if text.chars().take(4096).any(|c| c == '\0') {
        "binary content: neither HL7 v2 (MSH/FHS/BHS) nor JSON".to_string()
    } else {
        "not an ADT message: neither HL7 v2 (starts with MSH, FHS or BHS) nor JSON (starts with { or [)"
            .to_string()
    };
    vec![RawMessage {
        text: text.to_string(),
        format: "unknown",
        position: 0,
        byte_offset: 0,
        header: Err(reason),
    }]
}

fn split_hl7(text: &str) -> Vec<RawMessage> {
    split_stream(text)
        .into_iter()
        .map(|chunk| {
            let (text, header) = match chunk.kind {
                ChunkKind::Message { text } => {
                    let header = hl7_header(&text);
                    (text, header)
                }
                ChunkKind::Junk { text, reason } => (text, Err(reason.to_string())),
            };
            RawMessage {
                text,
                format: "hl7v2",
                position: chunk.index,
                byte_offset: chunk.offset,
                header,
            }
        })
        .collect()
}

fn hl7_header(text: &str) -> std::result::Result<MessageHeader, String> {
    let message = Hl7Message::parse(text).map_err(|e| e.to_string())?;
    let h = message.header().map_err(|e| e.to_string())?;
    let facility = h
        .sending_facility
        .clone()
        .filter(|f| !f.is_empty())
        .or_else(|| {
            message
                .get("PV1-3.4")
                .map(|f| f.into_owned())
                .filter(|f| !f.is_empty())
        });
    let message_type = match &h.trigger_event {
        Some(t) => format!("{}^{}", h.message_code, t),
        None => h.message_code.clone(),
    };
    Ok(MessageHeader {
        message_id: h.control_id.clone(),
        message_type,
        trigger_event: h.trigger_event.clone().unwrap_or_default(),
        facility,
    })
}

fn split_json(text: &str) -> Vec<RawMessage> {
    let trimmed_start = text.len() - text.trim_start().len();
    if text[trimmed_start..].starts_with('[') {
        return match json_array_spans(text) {
            Some(spans) => spans
                .into_iter()
                .enumerate()
                .map(|(position, (start, end))| json_message(&text[start..end], position, start))
                .collect(),
            None => vec![RawMessage {
                text: text.to_string(),
                format: "json",
                position: 0,
                byte_offset: 0,
                header: Err("malformed JSON array".into()),
            }],
        };
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if !body.trim().is_empty() {
            out.push(json_message(body, out.len(), offset));
        }
        offset += line.len();
    }
    out
}

fn json_message(text: &str, position: usize, byte_offset: usize) -> RawMessage {
    // Only the header fields are materialised; the rest of the event is checked and skipped. An
    // event that does not fit (not an object, a duplicate key, malformed) is read whole, for the
    // same verdict and reason. Objects only: a derived struct would also take an array by position.
    let head = text
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<JsonHead>(text).ok())
        .flatten();
    let (format, header) = match head {
        Some(head) if head.resource_type.is_some() => ("fhir", fhir_header(|k| head.field(k))),
        Some(head) => ("json", json_header(|k| head.field(k))),
        None => json_event_read_whole(text),
    };
    RawMessage {
        text: text.to_string(),
        format,
        position,
        byte_offset,
        header,
    }
}

/// The format and header of a JSON or FHIR event read into a whole JSON value.
fn json_event_read_whole(text: &str) -> (&'static str, std::result::Result<MessageHeader, String>) {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => ("json", Err(format!("malformed JSON: {e}"))),
        Ok(v) if !v.is_object() => (
            "json",
            Err("a JSON ADT event must be an object".to_string()),
        ),
        Ok(v) if v.get("resourceType").is_some() => ("fhir", fhir_header(|k| v.get(k))),
        Ok(v) => ("json", json_header(|k| v.get(k))),
    }
}

/// The fields of a JSON or FHIR event that its Bronze header is made of. A field given as `null`
/// is present (`Some(Null)`), as in the whole value.
#[derive(serde::Deserialize)]
struct JsonHead {
    #[serde(rename = "resourceType", default, deserialize_with = "present")]
    resource_type: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    message_id: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    event_type: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    facility: Option<serde_json::Value>,
    #[serde(rename = "serviceProvider", default, deserialize_with = "present")]
    service_provider: Option<serde_json::Value>,
}

/// Reads a field that is there as `Some`, `null` included (serde's default maps `null` to `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    <serde_json::Value as serde::Deserialize>::deserialize(d).map(Some)
}

impl JsonHead {
    fn field(&self, key: &str) -> Option<&serde_json::Value> {
        match key {
            "resourceType" => self.resource_type.as_ref(),
            "id" => self.id.as_ref(),
            "message_id" => self.message_id.as_ref(),
            "event_type" => self.event_type.as_ref(),
            "facility" => self.facility.as_ref(),
            "serviceProvider" => self.service_provider.as_ref(),
            _ => None,
        }
    }
}

/// A header field as text: a non-blank string (trimmed) or a number.
fn json_str(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_header<'a>(
    get: impl Fn(&str) -> Option<&'a serde_json::Value>,
) -> std::result::Result<MessageHeader, String> {
    let message_id = json_str(get("message_id")).ok_or("missing message_id")?;
    let trigger = json_str(get("event_type")).ok_or("missing event_type")?;
    let facility = json_str(get("facility")).ok_or("missing facility")?;
    Ok(MessageHeader {
        message_id,
        message_type: format!("ADT^{trigger}"),
        trigger_event: trigger,
        facility: Some(facility),
    })
}

fn fhir_header<'a>(
    get: impl Fn(&str) -> Option<&'a serde_json::Value>,
) -> std::result::Result<MessageHeader, String> {
    let kind = json_str(get("resourceType")).ok_or("FHIR resource without resourceType")?;
    let id = json_str(get("id")).ok_or("FHIR resource without id")?;
    let facility = get("serviceProvider")
        .and_then(|p| p.get("reference"))
        .and_then(|r| r.as_str())
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_string());
    Ok(MessageHeader {
        message_id: format!("{kind}/{id}"),
        message_type: kind,
        trigger_event: String::new(),
        facility,
    })
}

/// Byte spans of the top-level elements of a JSON array, or None when `text` is not a well-formed
/// array at the top level. Elements are cut out verbatim so Bronze keeps them byte for byte.
fn json_array_spans(text: &str) -> Option<Vec<(usize, usize)>> {
    let bytes = text.as_bytes();
    let mut i = text.len() - text.trim_start().len();
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                start.get_or_insert(i);
            }
            b'{' | b'[' => {
                depth += 1;
                start.get_or_insert(i);
            }
            b'}' | b']' if depth > 0 => depth -= 1,
            b']' => {
                if let Some(s) = start.take() {
                    spans.push((s, text[..i].trim_end().len()));
                }
                return text[i + 1..].trim().is_empty().then_some(spans);
            }
            b',' if depth == 0 => {
                let s = start.take()?;
                spans.push((s, text[..i].trim_end().len()));
            }
            c if !c.is_ascii_whitespace() => {
                start.get_or_insert(i);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Compact fingerprints of the messages already in Bronze: message key → payload hashes.
/// 64-bit prefixes of SHA-256 keep a year of messages in a few tens of MB.
#[derive(Debug, Default)]
struct KeyIndex {
    version: i64,
    keys: HashMap<u64, Vec<u64>>,
}

fn fingerprint(s: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

fn hex_prefix(hex_hash: &str) -> u64 {
    u64::from_str_radix(hex_hash.get(..16).unwrap_or("0"), 16).unwrap_or_default()
}

/// What became of one message.
enum Verdict {
    New,
    Duplicate,
    Conflict,
}

impl KeyIndex {
    fn check_and_insert(&mut self, key: &str, payload_hash: &str) -> Verdict {
        let hashes = self.keys.entry(fingerprint(key)).or_default();
        let h = hex_prefix(payload_hash);
        if hashes.contains(&h) {
            Verdict::Duplicate
        } else {
            let conflict = !hashes.is_empty();
            hashes.push(h);
            if conflict {
                Verdict::Conflict
            } else {
                Verdict::New
            }
        }
    }
}

/// Writes ADT messages to Bronze. Keeps the Bronze table open and an in-memory index of the message
/// keys already stored, so a long-running process checks re-deliveries without rescanning the table
/// and commits without replaying its log; both catch up when another writer has committed in between.
#[derive(Debug)]
pub struct AdtIngestor {
    lake: Lake,
    state: Mutex<WriterState>,
}

/// What an [`AdtIngestor`] keeps between batches.
#[derive(Debug, Default)]
struct WriterState {
    /// The Bronze table as of the last commit seen, `None` before the first or after a failure.
    table: Option<DeltaTable>,
    /// The keys of the messages in `table`, `None` until loaded.
    index: Option<KeyIndex>,
    /// Appends events straight to the log once the table exists; `None` before, after a failure or
    /// a commit through delta-rs' write, and when the table needs delta-rs' write.
    appender: Option<BlindAppender>,
}

impl WriterState {
    fn index(&mut self) -> &mut KeyIndex {
        self.index.get_or_insert_with(KeyIndex::default)
    }

    /// Forgets what may no longer match the table: after a failed commit the index already holds the
    /// batch's keys, so a retry of the batch must not be mistaken for a re-delivery.
    fn invalidate(&mut self) {
        self.table = None;
        self.appender = None;
        if let Some(index) = self.index.as_mut() {
            index.version = -2;
        }
    }
}

impl AdtIngestor {
    /// An ingestor for the lake.
    pub fn new(lake: Lake) -> Self {
        AdtIngestor {
            lake,
            state: Mutex::new(WriterState::default()),
        }
    }

    /// Ingests delivered events (Event Hub batch or HTTP batch) in one commit. Fails only when the lake
    /// cannot be written, so the caller can retry the whole batch; bad messages are stored flagged.
    ///
    /// Once the table exists the commit goes straight to the Delta log ([`BlindAppender`]). When
    /// another writer committed in between, the batch is sorted again against the index caught up with
    /// that writer's messages, so neither takes the other's messages for new ones.
    pub async fn ingest_events(&self, inputs: Vec<AdtInput>, run_id: &str) -> Result<IngestReport> {
        let mut state = self.state.lock().await;
        for attempt in 1..=COMMIT_ATTEMPTS {
            if state.appender.is_none() {
                self.refresh(&mut state).await?;
                state.appender = match &state.table {
                    Some(t) => BlindAppender::for_table(&self.lake, ADT_MESSAGES, t)?,
                    None => None,
                };
            }
            let (mut report, rows, times) = rows_of_events(&inputs, state.index(), run_id);
            // The last attempt goes through delta-rs' write, which retries a lost race itself.
            let blind = attempt < COMMIT_ATTEMPTS && !rows.is_empty();
            if let Some(appender) = state.appender.as_mut().filter(|_| blind) {
                let count = rows.len();
                let appended = match rows.finish() {
                    Ok(batch) => {
                        appender
                            .append(vec![batch], &[], commit_metadata(run_id))
                            .await
                    }
                    Err(e) => Err(e),
                };
                match appended {
                    Ok(Appended::Committed(version)) => {
                        state.index().version = version;
                        record_commit(&mut report, count, version);
                        crate::ops::metrics::adt_messages_ingested(&times);
                        return Ok(report);
                    }
                    Ok(Appended::Behind) => {
                        tracing::debug!(attempt, "another writer committed first; catching up");
                        state.invalidate();
                        continue;
                    }
                    Err(e) => {
                        state.invalidate();
                        return Err(e);
                    }
                }
            }
            self.commit(&mut state, rows, &[], &mut report).await?;
            crate::ops::metrics::adt_messages_ingested(&times);
            return Ok(report);
        }
        unreachable!("the last attempt always returns")
    }

    /// Waits for the writer's background work (a checkpoint being written) to finish.
    pub async fn settle(&self) {
        if let Some(appender) = self.state.lock().await.appender.as_mut() {
            appender.settle().await;
        }
    }

    /// Ingests ADT files (files, folders, globs). A file whose exact content was ingested before is
    /// skipped; unreadable inputs are reported and the others still land.
    pub async fn ingest_paths(
        &self,
        paths: &[String],
        run_id: &str,
        progress: &dyn Fn(&str, usize),
    ) -> Result<IngestReport> {
        let (files, errors) = expand_paths(paths);
        self.ingest_files(files, errors, run_id, progress).await
    }

    async fn ingest_files(
        &self,
        files: Vec<PathBuf>,
        errors: Vec<InputError>,
        run_id: &str,
        progress: &dyn Fn(&str, usize),
    ) -> Result<IngestReport> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state).await?;
        let mut report = IngestReport {
            run_id: run_id.to_string(),
            errors,
            ..Default::default()
        };
        let mut rows = RowsBuilder::new();
        let mut times = MessageTimes::new();
        let mut markers = Vec::new();
        let now = chrono::Utc::now();
        for path in files {
            report.inputs_seen += 1;
            let file = match read_input(&path) {
                Ok(f) => f,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            let display = path.display().to_string();
            if file.bytes.iter().all(|b| b.is_ascii_whitespace()) {
                report.errors.push(InputError {
                    input: display,
                    reason: "empty file: no message to ingest".into(),
                });
                continue;
            }
            let marker_id = format!("file:{}", sha256_hex(&file.bytes));
            let seen_in_table = match &state.table {
                Some(t) => self.lake.marker_version(t, &marker_id).await?.is_some(),
                None => false,
            };
            if seen_in_table || markers.iter().any(|m: &CommitMarker| m.app_id == marker_id) {
                report.inputs_already_ingested += 1;
                progress(&display, 0);
                continue;
            }
            let input = AdtInput {
                payload: file.bytes,
                lineage: Lineage {
                    kind: LineageKind::File,
                    source_name: display.clone(),
                    ..Default::default()
                },
            };
            let before = rows.len();
            add_input_rows(
                &input,
                state.index(),
                &mut rows,
                &mut report,
                &mut times,
                run_id,
                now,
            );
            report.inputs_ingested += 1;
            markers.push(CommitMarker {
                app_id: marker_id,
                version: 1,
            });
            progress(&display, rows.len() - before);
            if rows.len() >= ROWS_PER_COMMIT {
                let full = std::mem::take(&mut rows);
                self.commit(&mut state, full, &std::mem::take(&mut markers), &mut report)
                    .await?;
                crate::ops::metrics::adt_messages_ingested(&std::mem::take(&mut times));
            }
        }
        self.commit(&mut state, rows, &markers, &mut report).await?;
        crate::ops::metrics::adt_messages_ingested(&times);
        Ok(report)
    }

    async fn commit(
        &self,
        state: &mut WriterState,
        rows: RowsBuilder,
        markers: &[CommitMarker],
        report: &mut IngestReport,
    ) -> Result<()> {
        if rows.is_empty() && markers.is_empty() {
            return Ok(());
        }
        let count = rows.len();
        if count == 0 {
            // Files that held only re-deliveries: no row to append, but the files are seen, so their
            // markers are committed alone and a retry skips them as already ingested.
            let version = match self
                .lake
                .commit_markers(ADT_MESSAGES, adt_messages_schema(), markers)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    state.invalidate();
                    return Err(e);
                }
            };
            // Committed through a table of its own: the next batch reopens ours.
            state.table = None;
            state.appender = None;
            state.index().version = version;
            report.versions.insert(ADT_MESSAGES.sql_name(), version);
            return Ok(());
        }
        let batches = vec![rows.finish()?];
        let metadata = commit_metadata(&report.run_id);
        let cached = state.table.take();
        let written = async {
            let delta = match cached {
                Some(t) => t,
                None => {
                    let schema = batches[0].schema();
                    self.lake.open_or_create(ADT_MESSAGES, &schema).await?
                }
            };
            self.lake
                .append_to(delta, ADT_MESSAGES, batches, markers, metadata)
                .await
        };
        let written = match written.await {
            Ok(t) => t,
            Err(e) => {
                state.invalidate();
                return Err(e);
            }
        };
        let version = crate::storage::version_of(&written).unwrap_or_default();
        state.table = Some(written);
        state.appender = None;
        state.index().version = version;
        record_commit(report, count, version);
        Ok(())
    }

    /// Brings the open table up to date (reading only the commits since the last one seen) and
    /// reloads the key index when the table moved on without us.
    async fn refresh(&self, state: &mut WriterState) -> Result<()> {
        let table = self
            .lake
            .refreshed(ADT_MESSAGES, state.table.take())
            .await?;
        let current = table
            .as_ref()
            .and_then(crate::storage::version_of)
            .unwrap_or(-1);
        let stale = state.index.as_ref().is_none_or(|i| i.version != current);
        if stale {
            state.index = Some(load_index(&self.lake, current).await?);
        }
        state.table = table;
        Ok(())
    }
}

/// How many times a batch of events is tried while other writers keep committing first.
const COMMIT_ATTEMPTS: usize = 4;

/// Sorts a batch of events against the key index into the rows to append.
fn rows_of_events(
    inputs: &[AdtInput],
    index: &mut KeyIndex,
    run_id: &str,
) -> (IngestReport, RowsBuilder, MessageTimes) {
    let mut report = IngestReport {
        run_id: run_id.to_string(),
        ..Default::default()
    };
    let mut rows = RowsBuilder::new();
    let mut times = MessageTimes::new();
    let now = chrono::Utc::now();
    for input in inputs {
        report.inputs_seen += 1;
        add_input_rows(
            input,
            index,
            &mut rows,
            &mut report,
            &mut times,
            run_id,
            now,
        );
    }
    report.inputs_ingested = report.inputs_seen;
    (report, rows, times)
}

/// The commit-info entries of a Bronze ADT commit.
fn commit_metadata(run_id: &str) -> HashMap<String, serde_json::Value> {
    HashMap::from([
        ("patientflow.run_id".to_string(), serde_json::json!(run_id)),
        (
            "patientflow.stage".to_string(),
            serde_json::json!("bronze.adt"),
        ),
    ])
}

/// Counts `count` rows committed as `version` in the report.
fn record_commit(report: &mut IngestReport, count: usize, version: i64) {
    *report
        .rows_written
        .entry(ADT_MESSAGES.sql_name())
        .or_default() += count;
    report.versions.insert(ADT_MESSAGES.sql_name(), version);
}

async fn load_index(lake: &Lake, version: i64) -> Result<KeyIndex> {
    let mut index = KeyIndex {
        version,
        keys: HashMap::new(),
    };
    if version < 0 {
        return Ok(index);
    }
    let batches = lake
        .sql(
            &[ADT_MESSAGES],
            "SELECT message_key, payload_sha256 FROM bronze_adt_messages",
        )
        .await?;
    for batch in batches {
        let keys = string_values(batch.column(0).as_ref());
        let hashes = string_values(batch.column(1).as_ref());
        for (k, h) in keys.iter().zip(hashes.iter()) {
            index
                .keys
                .entry(fingerprint(k))
                .or_default()
                .push(hex_prefix(h));
        }
    }
    Ok(index)
}

/// Reads a string column whatever its Arrow string flavour (Utf8, LargeUtf8, Utf8View).
fn string_values(array: &dyn Array) -> Vec<String> {
    use deltalake::arrow::datatypes::DataType;
    match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect(),
        _ => vec![String::new(); array.len()],
    }
}

/// Per hospital (sending facility), the newest message time of the rows about to be committed.
type MessageTimes = BTreeMap<String, chrono::DateTime<chrono::Utc>>;

/// Cuts one input into messages and pushes their Bronze rows. Each new message with a facility moves
/// that hospital's entry in `times` up to its message time: the Event Hub enqueued time, or `now` for
/// inputs that have none (files, HTTP posts).
fn add_input_rows(
    input: &AdtInput,
    index: &mut KeyIndex,
    rows: &mut RowsBuilder,
    report: &mut IngestReport,
    times: &mut MessageTimes,
    run_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    let ingested_at = now.timestamp_micros();
    let ingest_date = now.format("%Y-%m-%d").to_string();
    let l = &input.lineage;
    for decoded in decode_messages(&input.payload) {
        let message = decoded.message;
        let encoding = decoded.encoding;
        let payload_sha256 = sha256_hex(message.text.as_bytes());
        let (status, error, header) = match &message.header {
            Ok(h) => ("ok", None, Some(h)),
            Err(reason) => ("unparseable", Some(reason.clone()), None),
        };
        let message_key = match header {
            Some(h) => format!("{}|{}", h.facility.as_deref().unwrap_or(""), h.message_id),
            None => format!("sha256:{payload_sha256}"),
        };
        let conflict = match index.check_and_insert(&message_key, &payload_sha256) {
            Verdict::Duplicate => {
                report.duplicates_skipped += 1;
                continue;
            }
            Verdict::Conflict => {
                report.id_conflicts += 1;
                true
            }
            Verdict::New => false,
        };
        if status != "ok" {
            report.flagged_rows += 1;
        }
        if let Some(hospital) = header
            .and_then(|h| h.facility.as_deref())
            .filter(|f| !f.is_empty())
        {
            let at = l.enqueued_time.unwrap_or(now);
            let newest = times.entry(hospital.to_string()).or_insert(at);
            *newest = (*newest).max(at);
        }
        let cells: Vec<(&str, Cell)> = vec![
            ("message_key", Cell::Str(Some(message_key))),
            (
                "message_id",
                Cell::Str(header.map(|h| h.message_id.clone())),
            ),
            (
                "message_type",
                Cell::Str(header.map(|h| h.message_type.clone())),
            ),
            (
                "trigger_event",
                Cell::Str(
                    header
                        .map(|h| h.trigger_event.clone())
                        .filter(|t| !t.is_empty()),
                ),
            ),
            (
                "facility",
                Cell::Str(header.and_then(|h| h.facility.clone())),
            ),
            ("format", Cell::Str(Some(message.format.to_string()))),
            ("parse_status", Cell::Str(Some(status.to_string()))),
            ("parse_error", Cell::Str(error)),
            ("id_conflict", Cell::Bool(Some(conflict))),
            ("payload", Cell::Str(Some(message.text))),
            ("payload_encoding", Cell::Str(Some(encoding.to_string()))),
            ("declared_charset", Cell::Str(decoded.declared_charset)),
            ("charset_issue", Cell::Str(decoded.charset_issue)),
            ("payload_sha256", Cell::Str(Some(payload_sha256))),
            ("source_kind", Cell::Str(Some(l.kind.as_str().to_string()))),
            ("source_name", Cell::Str(Some(l.source_name.clone()))),
            ("source_position", Cell::Int(Some(message.position as i64))),
            (
                "source_byte_offset",
                Cell::Int(Some(message.byte_offset as i64)),
            ),
            ("eh_partition", Cell::Str(l.partition.clone())),
            ("eh_sequence_number", Cell::Int(l.sequence_number)),
            ("eh_offset", Cell::Str(l.offset.clone())),
            (
                "eh_enqueued_time",
                Cell::Ts(l.enqueued_time.map(|t| t.timestamp_micros())),
            ),
            ("ingested_at", Cell::Ts(Some(ingested_at))),
            ("ingest_date", Cell::Str(Some(ingest_date.clone()))),
            ("run_id", Cell::Str(Some(run_id.to_string()))),
        ];
        rows.push_row(cells);
    }
}

/// The columns of `bronze_adt_messages`, as [`add_input_rows`] writes them: for creating the table when a
/// commit carries only markers.
fn adt_messages_schema() -> deltalake::arrow::datatypes::Schema {
    use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let column = |name: &str, ty: &DataType| Field::new(name, ty.clone(), true);
    let (text, int, flag) = (DataType::Utf8, DataType::Int64, DataType::Boolean);
    Schema::new(vec![
        column("message_key", &text),
        column("message_id", &text),
        column("message_type", &text),
        column("trigger_event", &text),
        column("facility", &text),
        column("format", &text),
        column("parse_status", &text),
        column("parse_error", &text),
        column("id_conflict", &flag),
        column("payload", &text),
        column("payload_encoding", &text),
        column("declared_charset", &text),
        column("charset_issue", &text),
        column("payload_sha256", &text),
        column("source_kind", &text),
        column("source_name", &text),
        column("source_position", &int),
        column("source_byte_offset", &int),
        column("eh_partition", &text),
        column("eh_sequence_number", &int),
        column("eh_offset", &text),
        column("eh_enqueued_time", &ts),
        column("ingested_at", &ts),
        column("ingest_date", &text),
        column("run_id", &text),
    ])
}

/// Counts of Bronze ADT rows by parse status, for reports and tests.
pub async fn status_counts(lake: &Lake) -> Result<BTreeMap<String, i64>> {
    if lake.open_table(ADT_MESSAGES).await?.is_none() {
        return Ok(BTreeMap::new());
    }
    let batches = lake
        .sql(
            &[ADT_MESSAGES],
            "SELECT parse_status, COUNT(*) AS n FROM bronze_adt_messages GROUP BY parse_status",
        )
        .await?;
    let mut out = BTreeMap::new();
    for b in batches {
        let status = string_values(b.column(0).as_ref());
        let n = b
            .column(1)
            .as_primitive::<deltalake::arrow::datatypes::Int64Type>();
        for (i, s) in status.into_iter().enumerate() {
            out.insert(s, n.value(i));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_are_cut_verbatim_and_ndjson_by_line() {
        let text = r#" [ {"a": "x,]"} , {"b": [1,2]} ]"#;
        let spans = json_array_spans(text).unwrap();
        assert_eq!(&text[spans[0].0..spans[0].1], r#"{"a": "x,]"}"#);
        assert_eq!(&text[spans[1].0..spans[1].1], r#"{"b": [1,2]}"#);
        assert!(json_array_spans("[1, 2").is_none());
        assert!(json_array_spans("[1,,2]").is_none());
        let msgs = split_messages(
            "{\"message_id\":\"1\",\"event_type\":\"A01\",\"facility\":\"H\"}\n\n{bad\n",
        );
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].header.is_ok());
        assert!(msgs[1]
            .header
            .as_ref()
            .unwrap_err()
            .starts_with("malformed JSON"));
    }

    #[test]
    fn unknown_and_binary_content_is_kept_with_a_reason() {
        let m = split_messages("hello world");
        assert_eq!(m.len(), 1);
        assert!(m[0].header.as_ref().unwrap_err().contains("neither HL7"));
        let m = split_messages("\u{0}\u{1}PNG");
        assert!(m[0]
            .header
            .as_ref()
            .unwrap_err()
            .starts_with("binary content"));
        assert!(split_messages("  \n").is_empty());
    }

    /// An HL7 message whose PID-5 is `name` (bytes) and whose MSH-18 is `charset`.
    fn hl7_bytes(id: &str, charset: &str, name: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "MSH|^~\\&|REG|MHA01|||2026||ADT^A08|{id}|P|2.5||||||{charset}\rPID|1||P1^^^MHA01^MR||"
        )
        .into_bytes();
        m.extend_from_slice(name);
        m.extend_from_slice(b"^Ann\r");
        m
    }

    #[test]
    fn each_message_is_decoded_on_its_own() {
        let mut input = hl7_bytes("1", "UNICODE UTF-8", "Müller".as_bytes());
        let second_at = input.len();
        input.extend(hl7_bytes("2", "UNICODE UTF-8", b"M\xFCller"));
        input.extend(hl7_bytes("3", "", b"M\xFCller"));
        input.extend(hl7_bytes("4", "8859/1", b"M\xFCller"));
        let d = decode_messages(&input);
        assert_eq!(d.len(), 4);
        // The valid UTF-8 message of the file reads as UTF-8, not garbled by its neighbours.
        assert_eq!(d[0].encoding, "utf8");
        assert!(d[0]
            .message
            .text
            .contains("PID|1||P1^^^MHA01^MR||Müller^Ann"));
        assert_eq!(d[0].charset_issue, None);
        assert_eq!(d[0].declared_charset.as_deref(), Some("UNICODE UTF-8"));
        assert_eq!(d[0].message.header.as_ref().unwrap().message_id, "1");
        // Declared UTF-8, not UTF-8: kept losslessly as Latin-1, the field recorded.
        assert_eq!(d[1].encoding, "latin1");
        assert!(d[1].message.text.contains("Müller"));
        assert_eq!(d[1].charset_issue.as_deref(), Some("PID-5"));
        assert_eq!(d[1].message.byte_offset, second_at);
        assert_eq!(d[1].message.position, 1);
        // No declaration: the same reading, recorded as the fallback.
        assert_eq!(
            (d[2].encoding, d[2].declared_charset.as_deref()),
            ("latin1", None)
        );
        assert_eq!(d[2].charset_issue.as_deref(), Some("PID-5"));
        // Declared Latin-1: the Latin-1 reading is the declared one, no issue.
        assert_eq!(
            (d[3].encoding, d[3].charset_issue.as_deref()),
            ("latin1", None)
        );
        // The bytes of the Latin-1 readings come back exactly.
        let back: Vec<u8> = d[1]
            .message
            .text
            .chars()
            .map(|c| u8::try_from(c).unwrap())
            .collect();
        assert!(back.windows(6).any(|w| w == b"M\xFCller"));
        // A file that is valid UTF-8 as a whole is read as before.
        let clean = hl7_bytes("5", "", "Müller".as_bytes());
        let d = decode_messages(&clean);
        assert_eq!(
            (d[0].encoding, d[0].charset_issue.as_deref()),
            ("utf8", None)
        );
    }

    #[test]
    fn json_headers_read_from_the_header_fields_match_the_whole_value() {
        let events = [
            r#"{"message_id":"M1","event_type":"A01","facility":"MHA01","patient":{"mrn":"P1","name":["Doe","Jane"]}}"#,
            r#"{"message_id":17,"event_type":" A03 ","facility":"MHA02","extra":[1,2,{"x":null}]}"#,
            r#"{"message_id":"  ","event_type":"A01","facility":"MHA01"}"#,
            r#"{"event_type":"A01","facility":"MHA01"}"#,
            r#"{"message_id":"M1","event_type":"A01","facility":null}"#,
            r#"{"resourceType":"Encounter","id":"E1","serviceProvider":{"reference":"Organization/MHA03"}}"#,
            r#"{"resourceType":null,"message_id":"M1","event_type":"A01","facility":"MHA01"}"#,
            r#"{"resourceType":"Encounter","id":"E1","id":"E2"}"#,
            r#"{"resourceType":"Encounter"}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"message_id":"M1","#,
            r#"{"message_id":"M1"} trailing"#,
        ];
        for text in events {
            let m = json_message(text, 0, 0);
            assert_eq!((m.format, m.header), json_event_read_whole(text), "{text}");
        }
    }

    #[test]
    fn json_messages_are_decoded_on_their_own_too() {
        let mut input = "{\"message_id\":\"1\",\"event_type\":\"A08\",\"facility\":\"MHA01\",\"patient\":{\"family_name\":\"Müller\"}}\n"
            .as_bytes()
            .to_vec();
        let second_at = input.len();
        input.extend_from_slice(
            b"{\"message_id\":\"2\",\"event_type\":\"A08\",\"facility\":\"MHA01\",\"patient\":{\"family_name\":\"M\xFCller\"}}\n",
        );
        let d = decode_messages(&input);
        assert_eq!(d[0].encoding, "utf8");
        assert!(d[0].message.text.contains("Müller"));
        assert!(d[0].message.header.is_ok());
        assert_eq!(d[1].encoding, "latin1");
        assert_eq!(d[1].charset_issue.as_deref(), Some("patient.family_name"));
        assert_eq!(d[1].message.byte_offset, second_at);
    }

    #[test]
    fn the_marker_only_schema_is_the_schema_rows_are_written_with() {
        let mut index = KeyIndex::default();
        let mut rows = RowsBuilder::new();
        let mut report = IngestReport::default();
        let input = AdtInput {
            payload: b"MSH|^~\\&|A|F|||2026||ADT^A01|1|P|2.5\rPID|1||M1".to_vec(),
            lineage: Lineage::default(),
        };
        add_input_rows(
            &input,
            &mut index,
            &mut rows,
            &mut report,
            &mut MessageTimes::new(),
            "r",
            chrono::Utc::now(),
        );
        let batch = rows.finish().unwrap();
        assert_eq!(batch.schema().as_ref(), &adt_messages_schema());
    }

    #[test]
    fn key_index_tells_duplicates_from_conflicts() {
        let mut idx = KeyIndex::default();
        assert!(matches!(
            idx.check_and_insert("H|1", &sha256_hex(b"a")),
            Verdict::New
        ));
        assert!(matches!(
            idx.check_and_insert("H|1", &sha256_hex(b"a")),
            Verdict::Duplicate
        ));
        assert!(matches!(
            idx.check_and_insert("H|1", &sha256_hex(b"b")),
            Verdict::Conflict
        ));
        assert!(matches!(
            idx.check_and_insert("H|2", &sha256_hex(b"a")),
            Verdict::New
        ));
    }
}
