//! Event Hub trigger batches (`cardinality: many`, `dataType: string`; reference §2.1): the event bodies
//! and the per-event metadata arrays, decoded from every shape the host is known to send.
//!
//! - `Data.events`: a JSON string holding a JSON array of strings (current host), or the array itself; an
//!   element that is an object (a binding without `dataType`) is kept as its JSON text.
//! - `Metadata.PartitionContext`: an object (or JSON-in-string) with `PartitionId` and `EventHubName`.
//! - `Metadata.SequenceNumberArray`, `OffsetArray`, `EnqueuedTimeUtcArray`, `PropertiesArray`,
//!   `SystemPropertiesArray`: arrays (or JSON-in-string arrays) in event order. Enqueued times come
//!   without an offset (`DateTime` of kind Unspecified, in UTC); offsets as strings or numbers.
//!   `SystemPropertiesArray[i]` fills in what the flat arrays lack.
//!
//! Nothing here fails on odd metadata: a missing or short array leaves those lineage fields empty.

use chrono::{DateTime, NaiveDateTime, Utc};
use patientflow_core::bronze::adt::AdtInput;
use patientflow_core::bronze::{Lineage, LineageKind};
use serde_json::{json, Map, Value};

use super::error::AppError;
use super::protocol::{get_ci, unwrap_json, InvokeRequest};

/// A decoded Event Hub batch.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    /// Event hub name (from `PartitionContext.EventHubName`, else the `EventHubName` setting).
    pub hub: String,
    /// Partition id.
    pub partition: Option<String>,
    /// The events, in delivery order.
    pub events: Vec<AdtInput>,
    /// Notes about metadata that did not line up (logged with the invocation).
    pub notes: Vec<String>,
}

/// Decodes the trigger payload of `AdtIngest` (binding name `events`).
pub fn decode_batch(req: &InvokeRequest, default_hub: &str) -> Result<EventBatch, AppError> {
    let raw = req.data("events").ok_or_else(|| {
        AppError::BadRequest("Data.events is missing: not an Event Hub trigger payload".into())
    })?;
    let bodies: Vec<Vec<u8>> = match raw {
        Value::Array(items) => items.into_iter().map(event_body).collect(),
        // cardinality "one", or a host that sent the body without JSON quoting.
        Value::String(s) => vec![s.into_bytes()],
        Value::Null => Vec::new(),
        other => vec![other.to_string().into_bytes()],
    };
    let ctx = req.metadata("PartitionContext").unwrap_or(Value::Null);
    let ctx_field = |k: &str| {
        ctx.as_object()
            .and_then(|m| get_ci(m, k))
            .and_then(scalar_string)
    };
    let mut partition = ctx_field("PartitionId");
    let hub = ctx_field("EventHubName").unwrap_or_else(|| default_hub.to_string());

    let n = bodies.len();
    let mut notes = Vec::new();
    let mut array = |key: &str| -> Vec<Value> {
        match req.metadata(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => {
                if a.len() != n {
                    notes.push(format!("Metadata.{key} has {} entries for {n} events; extra or missing ones ignored", a.len()));
                }
                a.into_iter().map(|v| unwrap_json(&v)).collect()
            }
            Some(other) => {
                notes.push(format!(
                    "Metadata.{key} is not an array ({}); ignored",
                    kind(&other)
                ));
                Vec::new()
            }
        }
    };
    let sequence = array("SequenceNumberArray");
    let offsets = array("OffsetArray");
    let enqueued = array("EnqueuedTimeUtcArray");
    let system = array("SystemPropertiesArray");
    // PropertiesArray (application properties) has no Bronze column; it is decoded only to validate.
    let _properties = array("PropertiesArray");

    if partition.is_none() {
        // Older payloads: the partition only in the system properties.
        partition = system
            .iter()
            .find_map(|s| sys_field(s, &["PartitionId", "x-opt-partition-id"]));
    }
    let events = bodies
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let sys = system.get(i);
            let sequence_number = sequence.get(i).and_then(as_i64).or_else(|| {
                sys.and_then(|s| sys_value(s, &["SequenceNumber", "x-opt-sequence-number"]))
                    .and_then(|v| as_i64(&v))
            });
            let offset = offsets.get(i).and_then(scalar_string).or_else(|| {
                sys.and_then(|s| sys_field(s, &["Offset", "OffsetString", "x-opt-offset"]))
            });
            let enqueued_time = enqueued.get(i).and_then(parse_time).or_else(|| {
                sys.and_then(|s| sys_value(s, &["EnqueuedTimeUtc", "x-opt-enqueued-time"]))
                    .and_then(|v| parse_time(&v))
            });
            AdtInput {
                payload,
                lineage: Lineage {
                    kind: LineageKind::EventHub,
                    source_name: hub.clone(),
                    partition: partition.clone(),
                    sequence_number,
                    offset,
                    enqueued_time,
                },
            }
        })
        .collect();
    Ok(EventBatch {
        hub,
        partition,
        events,
        notes,
    })
}

/// One event body: strings as they are, anything else as its JSON text.
fn event_body(v: Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn sys_value(sys: &Value, keys: &[&str]) -> Option<Value> {
    let m = sys.as_object()?;
    keys.iter()
        .find_map(|k| get_ci(m, k).filter(|v| !v.is_null()).cloned())
}

fn sys_field(sys: &Value, keys: &[&str]) -> Option<String> {
    sys_value(sys, keys).as_ref().and_then(scalar_string)
}

/// Event Hub times: `2025-01-01T10:00:00.123` (UTC without an offset), RFC 3339 with an offset or `Z`,
/// or a space instead of `T`.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Builds the host's invocation payload for a batch of event bodies, exactly as the Functions host does
/// for `cardinality: many`, `dataType: string` (every array double-encoded). Used by the local runtime's
/// Event Hub stand-in and by the benchmark.
pub fn host_payload(hub: &str, partition: &str, events: &[EventMeta<'_>]) -> Value {
    let bodies: Vec<&str> = events.iter().map(|e| e.body).collect();
    let seq: Vec<i64> = events.iter().map(|e| e.sequence_number).collect();
    let offsets: Vec<String> = events.iter().map(|e| e.offset.to_string()).collect();
    let times: Vec<String> = events
        .iter()
        .map(|e| e.enqueued_time.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .collect();
    let keys: Vec<Value> = events.iter().map(|_| Value::Null).collect();
    let props: Vec<Value> = events.iter().map(|_| json!({})).collect();
    let system: Vec<Value> = events
        .iter()
        .zip(&times)
        .map(|(e, t)| {
            json!({"x-opt-sequence-number": e.sequence_number, "x-opt-offset": e.offset,
                   "x-opt-enqueued-time": format!("{t}+00:00"), "SequenceNumber": e.sequence_number,
                   "Offset": e.offset, "PartitionKey": null, "EnqueuedTimeUtc": t})
        })
        .collect();
    let mut metadata = Map::new();
    metadata.insert(
        "PartitionContext".into(),
        json!({"FullyQualifiedNamespace": "local.servicebus.invalid", "EventHubName": hub,
               "ConsumerGroup": "$Default", "PartitionId": partition}),
    );
    metadata.insert("SequenceNumberArray".into(), enc(&seq));
    metadata.insert("OffsetArray".into(), enc(&offsets));
    metadata.insert("EnqueuedTimeUtcArray".into(), enc(&times));
    metadata.insert("PartitionKeyArray".into(), enc(&keys));
    metadata.insert("PropertiesArray".into(), enc(&props));
    metadata.insert("SystemPropertiesArray".into(), enc(&system));
    metadata.insert(
        "sys".into(),
        json!({"MethodName": "AdtIngest", "UtcNow": Utc::now().to_rfc3339(), "RandGuid": uuid::Uuid::new_v4().to_string()}),
    );
    json!({"Data": {"events": enc(&bodies)}, "Metadata": metadata})
}

/// One event of [`host_payload`].
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    /// Event body.
    pub body: &'a str,
    /// Sequence number within the partition.
    pub sequence_number: i64,
    /// Offset within the partition.
    pub offset: i64,
    /// Enqueued time.
    pub enqueued_time: DateTime<Utc>,
}

/// The host's double encoding: a value serialised to JSON text inside a JSON string.
fn enc<T: serde::Serialize>(v: &T) -> Value {
    Value::String(serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoded_batches_decode_with_lineage() {
        let body = r#"{"Data":{"events":"[\"MSH|^~\\\\&|A\",\"{\\\"message_id\\\":\\\"1\\\"}\"]"},
            "Metadata":{"PartitionContext":{"EventHubName":"adt-events","PartitionId":"3"},
              "SequenceNumberArray":"[101,102]","OffsetArray":"[\"4294969992\",\"4294970384\"]",
              "EnqueuedTimeUtcArray":"[\"2025-01-01T10:00:00.123\",\"2025-01-01T10:00:01\"]",
              "PropertiesArray":"[{},{}]","SystemPropertiesArray":"[{},{}]"}}"#;
        let req = InvokeRequest::parse(body.as_bytes()).unwrap();
        let b = decode_batch(&req, "x").unwrap();
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.events[0].payload, b"MSH|^~\\&|A");
        assert_eq!(b.events[1].payload, br#"{"message_id":"1"}"#);
        let l = &b.events[1].lineage;
        assert_eq!(l.source_name, "adt-events");
        assert_eq!(l.partition.as_deref(), Some("3"));
        assert_eq!(l.sequence_number, Some(102));
        assert_eq!(l.offset.as_deref(), Some("4294970384"));
        assert_eq!(
            l.enqueued_time.unwrap().to_rfc3339(),
            "2025-01-01T10:00:01+00:00"
        );
        assert!(b.notes.is_empty(), "{:?}", b.notes);
    }

    #[test]
    fn plain_arrays_and_system_properties_fill_in() {
        let body = json!({"Data": {"events": ["a", {"b": 1}]},
            "Metadata": {"PartitionContext": "{\"PartitionId\":\"2\",\"EventHubName\":\"azurelogs\"}",
              "SystemPropertiesArray": [
                {"x-opt-sequence-number": 59, "x-opt-offset": 616008, "SequenceNumber": 59, "Offset": 616008,
                 "EnqueuedTimeUtc": "2023-03-13T01:25:02.25"},
                {"SequenceNumber": 60, "Offset": "616100", "x-opt-enqueued-time": "2023-03-13T01:25:03+00:00"}],
              "SequenceNumberArray": [59]}});
        let req: InvokeRequest = serde_json::from_value(body).unwrap();
        let b = decode_batch(&req, "x").unwrap();
        assert_eq!(b.events[1].payload, br#"{"b":1}"#);
        assert_eq!(b.events[0].lineage.offset.as_deref(), Some("616008"));
        assert_eq!(b.events[1].lineage.sequence_number, Some(60));
        assert_eq!(
            b.events[1].lineage.enqueued_time.unwrap().to_rfc3339(),
            "2023-03-13T01:25:03+00:00"
        );
        assert_eq!(
            b.events[0].lineage.enqueued_time.unwrap().to_rfc3339(),
            "2023-03-13T01:25:02.250+00:00"
        );
        assert_eq!(b.notes.len(), 1, "the short SequenceNumberArray is noted");
    }

    #[test]
    fn missing_events_is_a_bad_request_and_odd_metadata_is_tolerated() {
        let req = InvokeRequest::parse(br#"{"Data":{},"Metadata":{}}"#).unwrap();
        assert!(matches!(
            decode_batch(&req, "x"),
            Err(AppError::BadRequest(_))
        ));
        let req =
            InvokeRequest::parse(br#"{"Data":{"events":"\"one\""},"Metadata":{"OffsetArray":7}}"#)
                .unwrap();
        let b = decode_batch(&req, "hub").unwrap();
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.hub, "hub");
        assert_eq!(b.notes.len(), 1);
    }

    #[test]
    fn host_payload_decodes_back() {
        let t = Utc::now();
        let events = [
            EventMeta {
                body: "MSH|1",
                sequence_number: 5,
                offset: 0,
                enqueued_time: t,
            },
            EventMeta {
                body: "{\"x\":1}",
                sequence_number: 6,
                offset: 5,
                enqueued_time: t,
            },
        ];
        let payload = host_payload("adt-events", "1", &events);
        assert!(payload["Data"]["events"].is_string());
        let req: InvokeRequest = serde_json::from_value(payload).unwrap();
        let b = decode_batch(&req, "x").unwrap();
        assert_eq!(b.events[1].payload, b"{\"x\":1}");
        assert_eq!(b.events[1].lineage.sequence_number, Some(6));
        assert_eq!(b.events[1].lineage.offset.as_deref(), Some("5"));
        assert_eq!(b.partition.as_deref(), Some("1"));
    }
}
