//! OpenTelemetry export of the invocation spans and the pipeline metrics (docs/operations.md,
//! "OpenTelemetry traces" and "Metrics").
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or the signal's own `…_TRACES_ENDPOINT` /
//! `…_METRICS_ENDPOINT`) is set: then the `tracing` spans of `serve` and `handler` (one `invocation`
//! span per function invocation, and what runs inside it) go out over OTLP/HTTP in batches, and the
//! metrics of [`patientflow_core::ops::metrics`] (run durations and rows, quarantine rates, ingest lag
//! per hospital) every `OTEL_METRIC_EXPORT_INTERVAL` (60 s), protobuf unless
//! `OTEL_EXPORTER_OTLP_PROTOCOL` says `http/json`. The standard `OTEL_*` variables (service name,
//! resource attributes, headers, batch delay, sampler, temporality) apply. Requests are sent by the
//! workspace's reqwest client on the binary's Tokio runtime; an unreachable collector costs one
//! warning, never a failed invocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _, ObservableGauge};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use patientflow_core::ops::metrics::{self as measured, RunMeasurements};
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

/// The metrics' names, as the Azure alert rules query them.
pub mod metric_names {
    /// Histogram of stage run durations, seconds; attributes `stage`, `status`.
    pub const RUN_DURATION: &str = "patientflow.run.duration";
    /// Counter of rows per stage run; attributes `stage`, `kind` (`in`, `out`, `quarantined`).
    pub const RUN_ROWS: &str = "patientflow.run.rows";
    /// Gauge of a Silver source's quarantine rate in the latest run, 0..1; attribute `source`.
    pub const QUARANTINE_RATE: &str = "patientflow.quarantine.rate";
    /// Gauge of the seconds since the newest ADT message of a hospital; attribute `hospital_id`.
    pub const INGEST_LAG: &str = "patientflow.ingest.lag";
}

/// Bucket bounds of the run duration histogram, in seconds: sub-second ingests to half-hour rebuilds.
const DURATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// The installed OTLP pipelines; [`Telemetry::shutdown`] flushes what is queued. With metrics but no
/// trace export configured, the tracer provider has no exporter: spans end where they are made.
pub struct Telemetry {
    traces: SdkTracerProvider,
    metrics: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// The pipelines the environment asks for: `Ok(None)` when no OTLP endpoint is set (or
    /// `OTEL_SDK_DISABLED=true`, or both `OTEL_TRACES_EXPORTER=none` and `OTEL_METRICS_EXPORTER=none`).
    /// Export requests run on `runtime`.
    pub fn from_env(runtime: &tokio::runtime::Handle) -> Result<Option<Telemetry>, String> {
        let (traces_on, metrics_on) = (configured(Signal::Traces), configured(Signal::Metrics));
        if !traces_on && !metrics_on {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP HTTP client: {e}"))?;
        let http = ExportClient {
            client,
            runtime: runtime.clone(),
        };
        let resource = resource();
        let traces = if traces_on {
            tracer_provider(http.clone(), resource.clone())?
        } else {
            SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .build()
        };
        let metrics = if metrics_on {
            Some(meter_provider(http, resource)?)
        } else {
            None
        };
        ENABLED.store(traces_on, Ordering::Relaxed);
        Ok(Some(Telemetry { traces, metrics }))
    }

    /// The tracer for the `tracing-opentelemetry` layer.
    pub fn tracer(&self) -> SdkTracer {
        self.traces.tracer("patientflow")
    }

    /// Exports what is still queued (spans, and the metrics of the last interval) and stops the
    /// exporters. Call it while the Tokio runtime is alive but not from inside it (it blocks until the
    /// last export is sent or [`SHUTDOWN_TIMEOUT`]).
    pub fn shutdown(self) {
        if let Err(e) = self.traces.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            warn_once(&format!("flushing the last spans failed: {e}"));
        }
        if let Some(provider) = self.metrics {
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                warn_once(&format!("flushing the last metrics failed: {e}"));
            }
        }
    }
}

/// The OTLP encoding to use when neither the signal's nor the general protocol variable is set: with
/// both encodings compiled in the crate would default to JSON; the specification's default is
/// protobuf.
fn default_protocol(signal: Signal) -> Option<Protocol> {
    let own = match signal {
        Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    };
    (env_value(own).is_none() && env_value("OTEL_EXPORTER_OTLP_PROTOCOL").is_none())
        .then_some(Protocol::HttpBinary)
}

fn tracer_provider(http: ExportClient, resource: Resource) -> Result<SdkTracerProvider, String> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http);
    if let Some(protocol) = default_protocol(Signal::Traces) {
        builder = builder.with_protocol(protocol);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("OTLP span exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The meter provider with a periodic reader (`OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default), and the
/// pipeline's instruments on it. Temporality is delta (what Azure Monitor stores) unless
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` says otherwise.
fn meter_provider(http: ExportClient, resource: Resource) -> Result<SdkMeterProvider, String> {
    let mut builder = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_http_client(http);
    if let Some(protocol) = default_protocol(Signal::Metrics) {
        builder = builder.with_protocol(protocol);
    }
    if env_value("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE").is_none() {
        builder = builder.with_temporality(Temporality::Delta);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("OTLP metric exporter: {e}"))?;
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter).build())
        .with_resource(resource)
        .build();
    let meter = provider.meter("patientflow");
    let instruments = Instruments {
        duration: meter
            .f64_histogram(metric_names::RUN_DURATION)
            .with_unit("s")
            .with_description("Duration of a stage run")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        rows: meter
            .u64_counter(metric_names::RUN_ROWS)
            .with_unit("{row}")
            .with_description("Rows of stage runs: read (in), written (out), quarantined")
            .build(),
        quarantine_rate: meter
            .f64_gauge(metric_names::QUARANTINE_RATE)
            .with_unit("1")
            .with_description("Share of a source's records quarantined in the latest Silver run")
            .build(),
        _ingest_lag: meter
            .f64_observable_gauge(metric_names::INGEST_LAG)
            .with_unit("s")
            .with_description("Seconds since the newest ADT message ingested from the hospital")
            .with_callback(|observer| {
                let now = chrono::Utc::now();
                for (hospital, newest) in measured::newest_adt_messages() {
                    observer.observe(
                        measured::lag_seconds(newest, now),
                        &[KeyValue::new("hospital_id", hospital)],
                    );
                }
            })
            .build(),
    };
    if INSTRUMENTS.set(instruments).is_ok() {
        measured::set_run_observer(observe_run);
    }
    Ok(provider)
}

/// The pipeline's instruments, once the meter provider is installed.
struct Instruments {
    duration: Histogram<f64>,
    rows: Counter<u64>,
    quarantine_rate: Gauge<f64>,
    /// Observed by its callback at each collection; kept so it stays registered.
    _ingest_lag: ObservableGauge<f64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Records one finished stage run: its duration, its rows in, out and quarantined (zeros included, so
/// each series is there to alert on), and for Silver the quarantine rate of each source.
fn observe_run(m: &RunMeasurements) {
    let Some(i) = INSTRUMENTS.get() else {
        return;
    };
    let stage = KeyValue::new("stage", m.stage.clone());
    i.duration.record(
        m.duration_seconds,
        &[stage.clone(), KeyValue::new("status", m.status.clone())],
    );
    for (kind, n) in [
        ("in", m.rows_in),
        ("out", m.rows_out),
        ("quarantined", m.rows_quarantined),
    ] {
        i.rows.add(n, &[stage.clone(), KeyValue::new("kind", kind)]);
    }
    for (source, rate) in &m.quarantine_rates {
        i.quarantine_rate
            .record(*rate, &[KeyValue::new("source", source.clone())]);
    }
}

/// The resource of both signals: the service name (unless the environment names it) and version.
fn resource() -> Resource {
    let mut resource = Resource::builder();
    if !service_name_in_env() {
        resource = resource.with_service_name("patientflow");
    }
    resource
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An exported signal.
#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

/// Whether the environment asks for the signal's export: an endpoint (the signal's own or the general
/// one), the SDK not disabled, the signal's exporter not `none`.
fn configured(signal: Signal) -> bool {
    let (own_endpoint, exporter) = match signal {
        Signal::Traces => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"),
        Signal::Metrics => (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_METRICS_EXPORTER",
        ),
    };
    let endpoint = env_value(own_endpoint).or_else(|| env_value("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = env_value("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let no_exporter = env_value(exporter).is_some_and(|v| v.eq_ignore_ascii_case("none"));
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
#[derive(Debug, Clone)]
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
