//! OpenTelemetry export of the invocation spans (docs/operations.md, "OpenTelemetry traces").
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: then the
//! `tracing` spans of `serve` and `handler` (one `invocation` span per function invocation, and what runs
//! inside it) go out over OTLP/HTTP in batches, protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` says
//! `http/json`. The standard `OTEL_*` variables (service name, resource attributes, headers, batch
//! delay, sampler) apply. Requests are sent by the workspace's reqwest client on the binary's Tokio
//! runtime; an unreachable collector costs one warning, never a failed invocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::http::functions::{Function, Trigger};

/// Set once the exporter is installed; the span helpers below do nothing until then.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Set by the first failed export: later failures stay quiet.
static WARNED: AtomicBool = AtomicBool::new(false);

/// How long an export request may take (the OTLP default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last batch.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The installed OTLP pipeline; [`Telemetry::shutdown`] flushes what is queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The pipeline the environment asks for: `Ok(None)` when no OTLP endpoint is set (or
    /// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`). Export requests run on `runtime`.
    pub fn from_env(runtime: &tokio::runtime::Handle) -> Result<Option<Telemetry>, String> {
        if !configured() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))?;
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient {
                client,
                runtime: runtime.clone(),
            });
        // With both encodings compiled in the crate would default to JSON; the specification's
        // default is protobuf.
        if env_value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_none()
            && env_value("OTEL_EXPORTER_OTLP_PROTOCOL").is_none()
        {
            builder = builder.with_protocol(Protocol::HttpBinary);
        }
        let exporter = builder
            .build()
            .map_err(|e| format!("OTLP span exporter: {e}"))?;
        let mut resource = Resource::builder();
        if !service_name_in_env() {
            resource = resource.with_service_name("patientflow");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry { provider }))
    }

    /// The tracer for the `tracing-opentelemetry` layer.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("patientflow")
    }

    /// Exports what is still queued and stops the exporter. Call it while the Tokio runtime is alive
    /// but not from inside it (it blocks until the last batch is sent or [`SHUTDOWN_TIMEOUT`]).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            warn_once(&format!("flushing the last spans failed: {e}"));
        }
    }
}

/// Whether the environment asks for trace export.
fn configured() -> bool {
    let endpoint = env_value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env_value("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = env_value("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let no_exporter =
        env_value("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    endpoint.is_some() && !disabled && !no_exporter
}

/// Whether `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names the service.
fn service_name_in_env() -> bool {
    env_value("OTEL_SERVICE_NAME").is_some()
        || env_value("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
            attrs
                .split(',')
                .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
        })
}

/// A variable's value, when set and not blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn warn_once(message: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("OpenTelemetry export: {message} (further failures are not logged)");
    }
}

/// Whether spans are being exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Names the invocation span after the function and gives it the FaaS attributes (`faas.name`,
/// `faas.trigger`, `faas.invocation_id`); a W3C `traceparent` from the host makes it a child of the
/// host's trace. The span must declare the empty fields `otel.name` and `otel.kind`.
pub fn start_invocation(
    span: &tracing::Span,
    function: Function,
    id: &str,
    traceparent: Option<&str>,
) {
    if !enabled() {
        return;
    }
    let (trigger, kind) = match function.trigger() {
        Trigger::EventHub => ("pubsub", "consumer"),
        Trigger::Blob => ("datasource", "consumer"),
        Trigger::Timer => ("timer", "server"),
        Trigger::Http { .. } => ("http", "server"),
    };
    span.record("otel.name", function.name());
    span.record("otel.kind", kind);
    span.set_attribute("faas.name", function.name());
    span.set_attribute("faas.trigger", trigger);
    span.set_attribute("faas.invocation_id", id.to_string());
    if let Some(tp) = traceparent.filter(|tp| !tp.is_empty()) {
        let carrier = HashMap::from([("traceparent".to_string(), tp.to_string())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        // An invalid header extracts to an empty context: the span stays a root.
        let _ = span.set_parent(parent);
    }
}

/// Records a finished invocation on the current (invocation) span: for HTTP functions the answer's
/// status code, and for a failure the error code (`error.type`) and an error status with `message`.
/// A 5xx answer without an error is a failure too; a success leaves the status unset.
pub fn record_outcome(http_status: Option<u16>, error: Option<(&'static str, &str)>) {
    if !enabled() {
        return;
    }
    let span = tracing::Span::current();
    if let Some(status) = http_status {
        span.set_attribute("http.response.status_code", i64::from(status));
    }
    match (error, http_status) {
        (Some((code, message)), _) => {
            span.set_attribute("error.type", code);
            span.set_status(Status::error(message.to_string()));
        }
        (None, Some(status)) if status >= 500 => {
            span.set_attribute("error.type", status.to_string());
            span.set_status(Status::error(format!("answered {status}")));
        }
        (None, _) => {}
    }
}

/// Sends the exporter's requests with the workspace's async reqwest client on the binary's Tokio
/// runtime: the SDK's batch processor calls it from its own thread, outside any runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await;
        match sent {
            Ok(Ok((status, headers, body))) => {
                if !status.is_success() {
                    warn_once(&format!("the collector answered {status}"));
                }
                let mut response = Response::new(body);
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                Ok(response)
            }
            Ok(Err(e)) => {
                warn_once(&format!("cannot reach the collector: {e}"));
                Err(Box::new(e))
            }
            // The runtime is shutting down.
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// The trace id to record for the work running now (the run ledger's `trace_id`): the current span's
/// OpenTelemetry trace when export is on (a child of the host's trace when the host sent a
/// `traceparent`), else the trace id of `traceparent`, else none.
pub fn current_trace_id(traceparent: Option<&str>) -> Option<String> {
    if enabled() {
        let context = tracing::Span::current().context();
        let span_context = opentelemetry::trace::TraceContextExt::span(&context)
            .span_context()
            .clone();
        if span_context.is_valid() {
            return Some(span_context.trace_id().to_string());
        }
    }
    traceparent.and_then(trace_id_of)
}

/// The trace id of a W3C `traceparent` header (`version-traceid-parentid-flags`), when it is valid.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    let trace_id = trace_id.to_ascii_lowercase();
    patientflow_core::ops::ledger::is_trace_id(&trace_id).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_traceparent_headers() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of(""), None);
        assert_eq!(trace_id_of("garbage"), None);
        // Export is off in unit tests: the header is the only source.
        assert_eq!(current_trace_id(None), None);
    }
}
