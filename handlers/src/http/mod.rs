//! The HTTP app shared by `patientflow handler` (Azure Functions custom handler) and `patientflow serve`
//! (the local runtime): thin adapters from the custom-handler protocol to `patientflow_core`.
//!
//! Routes:
//! - `GET /` — readiness (the host polls it until it answers).
//! - `POST /{FunctionName}` — one invocation from the Functions host (`{Data, Metadata}` →
//!   `{Outputs, Logs, ReturnValue}`).
//! - `/api/{route}` — what the host does for HTTP-triggered functions, played locally: the request is
//!   wrapped as `Data.req`, the function runs, and `Outputs.res` becomes the HTTP answer.
//! - `POST /api/adt` — the local Event Hub stand-in: NDJSON, a JSON array or HL7 text, fed to
//!   `AdtIngest` in Event-Hub-shaped batches.

pub mod auth;
pub mod bench;
pub mod dashboard;
pub mod error;
pub mod eventhub;
pub mod functions;
pub mod ingest;
pub mod landing;
pub mod local;
pub mod protocol;
pub mod refresh;
pub mod serving;
pub mod timers;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use patientflow_core::bronze::adt::AdtIngestor;
use patientflow_core::storage::Lake;
use tracing::Instrument;

pub use error::AppError;
use functions::{Function, Invocation};
use protocol::{HttpReply, InvokeRequest};

/// Largest request body accepted (Event Hub batches and blob contents exceed axum's 2 MB default).
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// Settings of the app, from the environment (the same keys locally and in Azure, docs/deployment.md §5).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lake URL (`PATIENTFLOW_LAKE` / `--lake`).
    pub lake_url: String,
    /// Landing container (Azure) or folder (local lake): `PATIENTFLOW_LANDING_CONTAINER`, default `landing`.
    pub landing: String,
    /// Folder of the landing area holding hospital/department metadata: `PATIENTFLOW_REFERENCE_FOLDER`,
    /// default empty (the whole landing area; only `hospitals*`, `departments*`, `capacity*` files are read).
    pub reference_folder: String,
    /// Event hub name used when the trigger metadata lacks one (`EventHubName`, default `adt-events`).
    pub event_hub_name: String,
    /// Attempts of the ADF callback POST.
    pub callback_attempts: u32,
    /// First wait between callback attempts (doubles each time, at most 30 s).
    pub callback_backoff: Duration,
    /// Time allowed to open the lake.
    pub lake_timeout: Duration,
}

impl Settings {
    /// Settings from the environment, with the lake URL given.
    pub fn from_env(lake_url: &str) -> Self {
        let var = |k: &str, default: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into())
        };
        Settings {
            lake_url: lake_url.to_string(),
            landing: var("PATIENTFLOW_LANDING_CONTAINER", "landing"),
            reference_folder: var("PATIENTFLOW_REFERENCE_FOLDER", ""),
            event_hub_name: var("EventHubName", "adt-events"),
            callback_attempts: var("PATIENTFLOW_CALLBACK_ATTEMPTS", "5")
                .parse()
                .unwrap_or(5)
                .max(1),
            callback_backoff: Duration::from_millis(
                var("PATIENTFLOW_CALLBACK_BACKOFF_MS", "1000")
                    .parse()
                    .unwrap_or(1000),
            ),
            lake_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared state: settings, the lake (opened on first use, so the handler is ready even while storage is
/// down), one ADT ingestor (it caches the Bronze de-duplication index), background work.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub settings: Settings,
    lake: tokio::sync::OnceCell<Lake>,
    adt: tokio::sync::Mutex<Option<Arc<AdtIngestor>>>,
    /// HTTP client (ADF callbacks).
    pub http: reqwest::Client,
    background: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// One Gold refresh at a time.
    pub gold_lock: tokio::sync::Mutex<()>,
    /// Sequence numbers and offsets of the local Event Hub stand-in, per partition.
    pub stand_in: std::sync::Mutex<local::StandInPartitions>,
    /// Access control: authentication, policy sessions, the audit writer.
    pub security: auth::Security,
    /// The run-ledger writer of Event Hub batches (started on first use).
    ledger: tokio::sync::OnceCell<patientflow_core::ops::ledger::LedgerWriter>,
}

impl AppState {
    /// New state, closed to every reader (no credentials accepted); nothing is opened yet.
    #[cfg(test)]
    pub fn new(settings: Settings) -> Arc<Self> {
        Self::with_security(settings, auth::Security::closed())
    }

    /// New state with the access control in force; nothing is opened yet.
    pub fn with_security(settings: Settings, security: auth::Security) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Arc::new(AppState {
            settings,
            lake: tokio::sync::OnceCell::new(),
            adt: tokio::sync::Mutex::new(None),
            http,
            background: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            gold_lock: tokio::sync::Mutex::new(()),
            stand_in: std::sync::Mutex::new(local::StandInPartitions::default()),
            security,
            ledger: tokio::sync::OnceCell::new(),
        })
    }

    /// The lake, opened on first use. Failing to open it is `Unavailable` (503) and is retried on the
    /// next call.
    pub async fn lake(&self) -> Result<&Lake, AppError> {
        self.lake
            .get_or_try_init(|| async {
                match tokio::time::timeout(
                    self.settings.lake_timeout,
                    Lake::open(&self.settings.lake_url),
                )
                .await
                {
                    Ok(Ok(lake)) => Ok(lake),
                    Ok(Err(e)) => Err(AppError::Unavailable(format!(
                        "the lake {} cannot be opened: {e}",
                        self.settings.lake_url
                    ))),
                    Err(_) => Err(AppError::Unavailable(format!(
                        "the lake {} did not answer within {} s",
                        self.settings.lake_url,
                        self.settings.lake_timeout.as_secs()
                    ))),
                }
            })
            .await
    }

    /// The lake if it has been opened, without trying to open it (the run ledger's writes use it: a
    /// lake the stage itself could not open would only make them wait again).
    pub fn opened_lake(&self) -> Option<&Lake> {
        self.lake.get()
    }

    /// The ADT ingestor (one per process).
    pub async fn adt_ingestor(&self) -> Result<Arc<AdtIngestor>, AppError> {
        let lake = self.lake().await?.clone();
        let mut guard = self.adt.lock().await;
        Ok(guard
            .get_or_insert_with(|| Arc::new(AdtIngestor::new(lake)))
            .clone())
    }

    /// Drops the ADT ingestor after a failed write: its de-duplication index may hold keys of the batch
    /// that was not committed, which would make the host's retry skip them as re-deliveries.
    pub async fn reset_adt_ingestor(&self) {
        *self.adt.lock().await = None;
    }

    /// Runs work after the invocation that started it has answered (GoldRefresh).
    pub fn spawn_background<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut set = self.background.lock().unwrap_or_else(|p| p.into_inner());
        while set.try_join_next().is_some() {}
        set.spawn(work.in_current_span());
    }

    /// The background run-ledger writer for `lake` (one per process).
    pub async fn ledger_writer(&self, lake: &Lake) -> &patientflow_core::ops::ledger::LedgerWriter {
        self.ledger
            .get_or_init(|| async {
                patientflow_core::ops::ledger::LedgerWriter::start(lake.clone())
            })
            .await
    }

    /// Waits (up to `limit`) for background work to finish, then for the run-ledger rows still queued;
    /// used on shutdown.
    pub async fn drain_background(&self, limit: Duration) -> usize {
        let mut set =
            std::mem::take(&mut *self.background.lock().unwrap_or_else(|p| p.into_inner()));
        let pending = set.len();
        if pending > 0 {
            tracing::info!(pending, "waiting for background work before exiting");
            let _ = tokio::time::timeout(limit, async { while set.join_next().await.is_some() {} })
                .await;
        }
        if let Some(writer) = self.ledger.get() {
            let _ = tokio::time::timeout(limit, writer.flush()).await;
        }
        let adt = self.adt.lock().await.clone();
        if let Some(ingestor) = adt {
            let _ = tokio::time::timeout(limit, ingestor.settle()).await;
        }
        set.len()
    }
}

/// The app: every route, with the state. Kept apart from `main` so tests drive it with
/// `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(ready).head(ready))
        .route("/api/adt", post(local::adt_post))
        .route("/api", any(local::api_route_root))
        .route("/api/{*path}", any(local::api_route))
        .route(
            "/{function}",
            post(invoke_route).fallback(invoke_wrong_method),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn ready() -> Response {
    Json(serde_json::json!({"status": "ready", "service": "patientflow", "version": env!("CARGO_PKG_VERSION")}))
        .into_response()
}

async fn not_found() -> Response {
    AppError::NotFound("no such route; functions are invoked with POST /<FunctionName>, HTTP routes live under /api/".into())
        .into_response()
}

async fn invoke_wrong_method() -> Response {
    AppError::MethodNotAllowed(
        "function invocations are POST /<FunctionName> with {\"Data\", \"Metadata\"}".into(),
    )
    .into_response()
}

/// `POST /{FunctionName}`: one invocation from the host.
async fn invoke_route(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = Function::from_name(&name) else {
        return AppError::NotFound(format!("no function named '{name}'")).into_response();
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let id = header("x-azure-functions-invocationid")
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let traceparent = header("traceparent").unwrap_or_default();
    let span = functions::invocation_span(function, &id, Some(&traceparent));
    async move {
        let traceparent = Some(traceparent).filter(|t| !t.is_empty());
        let inv = Invocation {
            function,
            id,
            traceparent,
        };
        let req = match InvokeRequest::parse(&body) {
            Ok(r) => r,
            Err(e) => {
                let line = functions::failure_line(function, &e);
                tracing::warn!("{line}");
                crate::telemetry::record_outcome(None, Some((e.code(), &line)));
                let empty = InvokeRequest::default();
                functions::record_run(&state, &inv, &empty, chrono::Utc::now(), Err(&e)).await;
                return e.into_response();
            }
        };
        let (status, response) = functions::invoke(&state, &inv, req).await;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(response)).into_response()
    }
    .instrument(span)
    .await
}

/// An [`HttpReply`] as an axum response.
pub fn reply_response(reply: &HttpReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body_text()).into_response();
    let h = response.headers_mut();
    if let Ok(v) = reply.content_type.parse() {
        h.insert(axum::http::header::CONTENT_TYPE, v);
    }
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    response
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests;
