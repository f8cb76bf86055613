//! The Azure Functions custom-handler wire protocol (reference: azure-contracts.md §1.3–§1.4, Appendix A).
//!
//! The host POSTs `{"Data": {...}, "Metadata": {...}}` to `/<FunctionName>` and expects HTTP 200 with
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`. Strings and arrays in `Data`/`Metadata` arrive
//! double-encoded (a JSON string holding JSON text), objects arrive nested; [`unwrap_json`] undoes one layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::AppError;

/// What the host sends for one invocation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InvokeRequest {
    /// One entry per input binding (trigger and inputs), keyed by binding name.
    #[serde(
        default,
        rename = "Data",
        alias = "data",
        deserialize_with = "object_or_null"
    )]
    pub data: Map<String, Value>,
    /// The trigger's binding data plus `sys`.
    #[serde(
        default,
        rename = "Metadata",
        alias = "metadata",
        deserialize_with = "object_or_null"
    )]
    pub metadata: Map<String, Value>,
}

fn object_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        // An older host may send a whole section as JSON text.
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(serde::de::Error::custom("expected a JSON object")),
        },
        _ => Err(serde::de::Error::custom("expected a JSON object")),
    }
}

impl InvokeRequest {
    /// Parses the host's body. A body that is not a JSON object of this shape is a 400.
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(InvokeRequest::default());
        }
        serde_json::from_slice(body).map_err(|e| {
            AppError::BadRequest(format!(
                "the invocation body is not a custom-handler payload ({{\"Data\": {{…}}, \"Metadata\": {{…}}}}): {e}"
            ))
        })
    }

    /// A `Data` value with one layer of JSON-in-string undone.
    pub fn data(&self, key: &str) -> Option<Value> {
        get_ci(&self.data, key).map(unwrap_json)
    }

    /// A `Metadata` value with one layer of JSON-in-string undone.
    pub fn metadata(&self, key: &str) -> Option<Value> {
        get_ci(&self.metadata, key).map(unwrap_json)
    }
}

/// Looks a key up exactly, then case-insensitively (the host binds names case-insensitively).
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Undoes the host's double encoding once: a string holding JSON text becomes that JSON value; any other
/// value (and a string that is not JSON) is returned as it is.
pub fn unwrap_json(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            // Only JSON text that can be a container or a string is unwrapped: a bare `123` or `true`
            // inside a string stays a string (e.g. a partition id "3").
            if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') || t == "null" {
                serde_json::from_str(s).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            }
        }
        other => other.clone(),
    }
}

/// What the handler answers the host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InvokeResponse {
    /// Output bindings by name (`res` for HTTP functions).
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Lines for the invocation log (App Insights `traces`, Information level).
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// Value of a `$return` binding; also carries the stage report for non-HTTP functions.
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Value>,
}

/// An HTTP reply for the `res` output binding.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body: JSON values are sent as JSON text.
    pub body: ReplyBody,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
}

/// Body of an [`HttpReply`].
#[derive(Debug, Clone)]
pub enum ReplyBody {
    /// A JSON document.
    Json(Value),
    /// Text (CSV, HTML).
    Text(String),
}

impl HttpReply {
    /// A JSON reply.
    pub fn json(status: u16, body: Value) -> Self {
        HttpReply {
            status,
            content_type: "application/json; charset=utf-8".into(),
            body: ReplyBody::Json(body),
            headers: BTreeMap::new(),
        }
    }

    /// A text reply with a content type.
    pub fn text(status: u16, content_type: &str, body: String) -> Self {
        HttpReply {
            status,
            content_type: content_type.into(),
            body: ReplyBody::Text(body),
            headers: BTreeMap::new(),
        }
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        match &self.body {
            ReplyBody::Json(v) => v.to_string(),
            ReplyBody::Text(s) => s.clone(),
        }
    }

    /// The `Outputs.res` object: `statusCode`, `status`, `body` and `headers` always present (the strict
    /// host variant requires all of them, §1.4). The body is always sent as a string so the host passes
    /// it through byte for byte.
    pub fn to_output(&self) -> Value {
        let mut headers = Map::new();
        headers.insert(
            "Content-Type".into(),
            Value::String(self.content_type.clone()),
        );
        for (k, v) in &self.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
        serde_json::json!({
            "statusCode": self.status.to_string(),
            "status": self.status.to_string(),
            "body": self.body_text(),
            "headers": headers,
        })
    }
}

/// The HTTP trigger's `Data.req` in default (non-forwarding) mode (§1.3).
#[derive(Debug, Clone, Default)]
pub struct HttpTriggerRequest {
    /// Method (upper case).
    pub method: String,
    /// Query parameters.
    pub query: BTreeMap<String, String>,
    /// Headers, names lower-cased, first value.
    pub headers: BTreeMap<String, String>,
    /// Route parameters.
    pub params: BTreeMap<String, String>,
    /// Body as text (a base64 body from an octet-stream request is decoded when it is UTF-8).
    pub body: String,
}

impl HttpTriggerRequest {
    /// Reads `Data.req` (missing → an empty GET request).
    pub fn from_invocation(req: &InvokeRequest) -> Result<Self, AppError> {
        let Some(v) = req.data("req") else {
            return Ok(HttpTriggerRequest {
                method: "GET".into(),
                ..Default::default()
            });
        };
        let Value::Object(m) = v else {
            return Err(AppError::BadRequest(
                "Data.req is not an HTTP request object".into(),
            ));
        };
        let text = |k: &str| get_ci(&m, k).and_then(|v| v.as_str().map(str::to_string));
        let method = text("Method")
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        let query = string_map(get_ci(&m, "Query"), false);
        let headers = string_map(get_ci(&m, "Headers"), true);
        let params = string_map(get_ci(&m, "Params"), false);
        let body = match get_ci(&m, "Body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // A JSON body the host already parsed (some host versions do): keep its JSON text.
            Some(other) => other.to_string(),
        };
        Ok(HttpTriggerRequest {
            method,
            query,
            headers,
            params,
            body,
        })
    }

    /// A header value (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as a JSON object; an empty body is an empty object; anything else is a 400.
    pub fn json_body(&self) -> Result<Map<String, Value>, AppError> {
        if self.body.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            // The body of a host request may itself be double-encoded.
            Ok(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(AppError::BadRequest(
                    "the request body must be a JSON object".into(),
                )),
            },
            Ok(_) => Err(AppError::BadRequest(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(AppError::BadRequest(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// A map of strings from an object (or JSON-in-string) whose values are strings, numbers or arrays of
/// them (header values come as arrays; the first value is kept).
fn string_map(v: Option<&Value>, lower_keys: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(v) = v.map(unwrap_json) else {
        return out;
    };
    let Value::Object(m) = v else { return out };
    for (k, v) in m {
        let value = match v {
            Value::String(s) => s,
            Value::Array(items) => match items.first() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            },
            Value::Null => String::new(),
            other => other.to_string(),
        };
        out.insert(
            if lower_keys {
                k.to_ascii_lowercase()
            } else {
                k
            },
            value,
        );
    }
    out
}

/// The body of an HTTP caller's reply from `Outputs.res` (used by the local host stand-in and tests):
/// status, headers and body text.
pub fn reply_from_output(res: &Value) -> (u16, BTreeMap<String, String>, String) {
    let status = get_object_ci(res, "statusCode")
        .or_else(|| get_object_ci(res, "status"))
        .and_then(|v| match v {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        })
        .unwrap_or(200);
    let mut headers = BTreeMap::new();
    if let Some(Value::Object(h)) = get_object_ci(res, "headers") {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.insert(k.clone(), v);
        }
    }
    let body = match get_object_ci(res, "body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    (status, headers, body)
}

fn get_object_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| get_ci(m, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn double_encoded_values_are_unwrapped_once() {
        assert_eq!(unwrap_json(&json!("\"abc\"")), json!("abc"));
        assert_eq!(unwrap_json(&json!("[1,2]")), json!([1, 2]));
        assert_eq!(
            unwrap_json(&json!("[\"{\\\"a\\\":1}\"]")),
            json!(["{\"a\":1}"])
        );
        assert_eq!(unwrap_json(&json!({"a": 1})), json!({"a": 1}));
        // Not JSON: kept.
        assert_eq!(unwrap_json(&json!("MSH|^~\\&|")), json!("MSH|^~\\&|"));
        assert_eq!(unwrap_json(&json!("[broken")), json!("[broken"));
        // Scalars inside strings stay strings.
        assert_eq!(unwrap_json(&json!("3")), json!("3"));
    }

    #[test]
    fn http_request_reads_old_and_new_host_shapes() {
        let old = InvokeRequest::parse(
            br#"{"Data":{"req":{"Url":"http://x/api/query?sql=1","Method":"get","Query":"{\"sql\":\"SELECT 1\"}",
                "Headers":{"Content-Type":["application/json"]},"Params":{},"Body":""}},"Metadata":{}}"#,
        )
        .unwrap();
        let r = HttpTriggerRequest::from_invocation(&old).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.query.get("sql").map(String::as_str), Some("SELECT 1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let new = InvokeRequest::parse(
            br#"{"Data":{"req":{"Method":"POST","Query":{"x":"1"},"Body":"{\"sql\":\"SELECT 2\"}"}}}"#,
        )
        .unwrap();
        let r = HttpTriggerRequest::from_invocation(&new).unwrap();
        assert_eq!(r.json_body().unwrap()["sql"], json!("SELECT 2"));
        assert!(InvokeRequest::parse(b"{not json").is_err());
        assert!(InvokeRequest::parse(b"[1]").is_err());
    }

    #[test]
    fn outputs_res_round_trips() {
        let reply = HttpReply::json(202, json!({"ok": true}));
        let (status, headers, body) = reply_from_output(&reply.to_output());
        assert_eq!(status, 202);
        assert_eq!(headers["Content-Type"], "application/json; charset=utf-8");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"ok": true})
        );
        let (status, _, body) = reply_from_output(&json!({"statusCode": 201, "body": {"a": 1}}));
        assert_eq!((status, body.as_str()), (201, "{\"a\":1}"));
    }
}
