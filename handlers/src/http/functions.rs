//! The functions of `functions/*/function.json`, their triggers and HTTP routes, and the one dispatcher
//! that turns an invocation into the host's answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use patientflow_core::ops::ledger::{self, RunContext, RunRecord};
use patientflow_core::pipeline::StageReport;
use serde_json::{Map, Value};

use super::error::AppError;
use super::protocol::{get_ci, HttpReply, InvokeRequest, InvokeResponse};
use super::{dashboard, ingest, refresh, serving, AppState};

/// Every function folder of `functions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// Event Hub trigger: ADT events → Bronze.
    AdtIngest,
    /// Blob trigger (Event Grid): one landed EHR or reference file → Bronze.
    EhrBatchIngest,
    /// HTTP (ADF): a day's EHR extract files → Bronze.
    EhrBatchIngestHttp,
    /// HTTP: hospital and department metadata → Bronze.
    DepartmentSync,
    /// Timer: the same, daily.
    DepartmentSyncTimer,
    /// Timer: Bronze → Silver.
    SilverRefresh,
    /// HTTP (ADF WebHook): Silver → Gold, 202 then callback.
    GoldRefresh,
    /// HTTP: read-only SQL.
    Query,
    /// HTTP: status.
    Health,
    /// HTTP: the dashboard.
    Dashboard,
}

/// What fires a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `eventHubTrigger`.
    EventHub,
    /// `blobTrigger`.
    Blob,
    /// `timerTrigger`.
    Timer,
    /// `httpTrigger` with an `http` output named `res`.
    Http {
        /// Route below `/api/`.
        route: &'static str,
        /// Accepted methods (lower case).
        methods: &'static [&'static str],
    },
}

impl Function {
    /// All functions, in the order of docs/deployment.md §9.
    pub const ALL: [Function; 10] = [
        Function::AdtIngest,
        Function::EhrBatchIngest,
        Function::EhrBatchIngestHttp,
        Function::DepartmentSync,
        Function::DepartmentSyncTimer,
        Function::SilverRefresh,
        Function::GoldRefresh,
        Function::Query,
        Function::Health,
        Function::Dashboard,
    ];

    /// The folder name, which is also the path the host POSTs to.
    pub fn name(self) -> &'static str {
        match self {
            Function::AdtIngest => "AdtIngest",
            Function::EhrBatchIngest => "EhrBatchIngest",
            Function::EhrBatchIngestHttp => "EhrBatchIngestHttp",
            Function::DepartmentSync => "DepartmentSync",
            Function::DepartmentSyncTimer => "DepartmentSyncTimer",
            Function::SilverRefresh => "SilverRefresh",
            Function::GoldRefresh => "GoldRefresh",
            Function::Query => "Query",
            Function::Health => "Health",
            Function::Dashboard => "Dashboard",
        }
    }

    /// Looks a function up by folder name (case-insensitive, like the host's binding names).
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The trigger, as declared in the function's function.json (a unit test checks they agree).
    pub fn trigger(self) -> Trigger {
        match self {
            Function::AdtIngest => Trigger::EventHub,
            Function::EhrBatchIngest => Trigger::Blob,
            Function::DepartmentSyncTimer | Function::SilverRefresh => Trigger::Timer,
            Function::EhrBatchIngestHttp => Trigger::Http {
                route: "ehr/ingest",
                methods: &["post"],
            },
            Function::DepartmentSync => Trigger::Http {
                route: "departments/sync",
                methods: &["post"],
            },
            Function::GoldRefresh => Trigger::Http {
                route: "gold/refresh",
                methods: &["post"],
            },
            Function::Query => Trigger::Http {
                route: "query",
                methods: &["get", "post"],
            },
            Function::Health => Trigger::Http {
                route: "health",
                methods: &["get"],
            },
            Function::Dashboard => Trigger::Http {
                route: "dashboard/{*path}",
                methods: &["get"],
            },
        }
    }

    /// True for HTTP-triggered functions (they answer through `Outputs.res`).
    pub fn is_http(self) -> bool {
        matches!(self.trigger(), Trigger::Http { .. })
    }

    /// The pipeline stage an invocation of the function runs, which [`invoke`] records in the run
    /// ledger. `None` for the serving functions, and for GoldRefresh, whose run happens after the
    /// invocation has answered and is recorded by [`refresh::run_gold`].
    pub fn stage(self) -> Option<&'static str> {
        match self {
            Function::AdtIngest => Some("bronze.adt"),
            Function::EhrBatchIngest | Function::EhrBatchIngestHttp => Some("bronze.ehr"),
            Function::DepartmentSync | Function::DepartmentSyncTimer => Some("bronze.reference"),
            Function::SilverRefresh => Some("silver"),
            Function::GoldRefresh | Function::Query | Function::Health | Function::Dashboard => {
                None
            }
        }
    }

    /// The run ledger's `trigger` for the function's runs: `eventhub`, `blob`, `timer`, `http`, and
    /// `adf` for GoldRefresh (called by Data Factory's WebHook activity).
    pub fn ledger_trigger(self) -> &'static str {
        match (self, self.trigger()) {
            (Function::GoldRefresh, _) => "adf",
            (_, Trigger::EventHub) => "eventhub",
            (_, Trigger::Blob) => "blob",
            (_, Trigger::Timer) => "timer",
            (_, Trigger::Http { .. }) => "http",
        }
    }

    /// The function.json shipped with this build (compiled in; `package` and `serve` fall back to these
    /// when no `functions/` folder is at hand).
    pub fn embedded_json(self) -> &'static str {
        match self {
            Function::AdtIngest => include_str!("../../../functions/AdtIngest/function.json"),
            Function::EhrBatchIngest => {
                include_str!("../../../functions/EhrBatchIngest/function.json")
            }
            Function::EhrBatchIngestHttp => {
                include_str!("../../../functions/EhrBatchIngestHttp/function.json")
            }
            Function::DepartmentSync => {
                include_str!("../../../functions/DepartmentSync/function.json")
            }
            Function::DepartmentSyncTimer => {
                include_str!("../../../functions/DepartmentSyncTimer/function.json")
            }
            Function::SilverRefresh => {
                include_str!("../../../functions/SilverRefresh/function.json")
            }
            Function::GoldRefresh => include_str!("../../../functions/GoldRefresh/function.json"),
            Function::Query => include_str!("../../../functions/Query/function.json"),
            Function::Health => include_str!("../../../functions/Health/function.json"),
            Function::Dashboard => include_str!("../../../functions/Dashboard/function.json"),
        }
    }
}

/// The host.json shipped with this build.
pub const EMBEDDED_HOST_JSON: &str = include_str!("../../../host.json");
/// The sample app settings (defaults for `%SETTING%` expansion in the local runtime).
pub const EMBEDDED_SAMPLE_SETTINGS: &str = include_str!("../../../local.settings.sample.json");

/// What a function returns when it worked.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The HTTP reply (HTTP functions only).
    pub reply: Option<HttpReply>,
    /// Lines for the invocation log.
    pub logs: Vec<String>,
    /// A machine-readable result (stage or ingest report).
    pub return_value: Option<Value>,
    /// The stage run this invocation made, as the run ledger records it (pipeline functions).
    pub run: Option<StageReport>,
}

impl Outcome {
    /// An HTTP reply with one log line.
    pub fn http(reply: HttpReply, log: impl Into<String>) -> Self {
        Outcome {
            reply: Some(reply),
            logs: vec![log.into()],
            return_value: None,
            run: None,
        }
    }
}

/// The context of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function invoked.
    pub function: Function,
    /// The host's invocation id (`X-Azure-Functions-InvocationId`), or a generated one.
    pub id: String,
    /// The host's W3C `traceparent` header, when it sent one.
    pub traceparent: Option<String>,
}

impl Invocation {
    /// An invocation of `function` that no host called (local timers, the Event Hub stand-in, local
    /// HTTP routes): a new id, no `traceparent`.
    pub fn local(function: Function) -> Self {
        Invocation {
            function,
            id: uuid::Uuid::new_v4().to_string(),
            traceparent: None,
        }
    }
}

/// What the run ledger records about an invocation besides the stage's report: the trigger, the host's
/// retry attempt (`Metadata.RetryContext.RetryCount`, which the host sends custom handlers for
/// functions with a retry policy; 0 when absent), the trace id, and the function, invocation id and
/// `MaxRetryCount` in `details`.
pub fn run_context(inv: &Invocation, req: &InvokeRequest) -> RunContext {
    let retry = req.metadata("RetryContext");
    let field = |key: &str| {
        retry
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|m| get_ci(m, key))
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
    };
    let retry_count = field("RetryCount")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let mut ctx = RunContext::new(inv.function.ledger_trigger())
        .with_retry_count(retry_count)
        .with_trace_id(crate::telemetry::current_trace_id(
            inv.traceparent.as_deref(),
        ))
        .with_detail("function", inv.function.name())
        .with_detail("invocation_id", inv.id.clone());
    if let Some(max) = field("MaxRetryCount") {
        ctx = ctx.with_detail("max_retry_count", max);
    }
    ctx
}

/// Records the stage run of one invocation of a pipeline function in the run ledger: the report the
/// function made, a `skipped` run when it made none, or a `failed` run with the error. An HTTP call
/// refused with a 4xx ran no stage and is not recorded. A ledger that cannot be written is logged as
/// an error; the invocation's answer stays what it was. AdtIngest's rows are queued to the
/// background [`ledger::LedgerWriter`] (flushed on shutdown); the others are written before the answer.
pub async fn record_run(
    state: &Arc<AppState>,
    inv: &Invocation,
    req: &InvokeRequest,
    started_at: DateTime<Utc>,
    result: Result<&Outcome, &AppError>,
) {
    let f = inv.function;
    let Some(stage) = f.stage() else {
        return;
    };
    let ctx = run_context(inv, req);
    let row = match result {
        Ok(Outcome {
            run: Some(report), ..
        }) => RunRecord::from_report(report, &ctx),
        Ok(outcome) => {
            let report = StageReport {
                stage: stage.into(),
                run_id: String::new(),
                trigger: String::new(),
                started_at,
                finished_at: Utc::now(),
                status: ledger::SKIPPED.into(),
                rows_in: 0,
                rows_out: 0,
                rows_quarantined: 0,
                error: None,
                details: serde_json::json!({ "reason": outcome.logs.join("; ") }),
            };
            RunRecord::from_report(&report, &ctx)
        }
        Err(e) if f.is_http() && e.status() < 500 => return,
        Err(e) => {
            let (stage, message) = match e {
                AppError::StageFailed { stage, message } => (stage.as_str(), message.clone()),
                other => (stage, other.to_string()),
            };
            RunRecord::failed(stage, started_at, Utc::now(), &message, &ctx)
        }
    };
    // A run that failed before the lake was ever opened failed opening it: trying again would only
    // make the invocation wait a second time. Otherwise the lake is opened if need be (a run that
    // touched no table, such as an ignored blob, on a fresh process).
    let lake = match (state.opened_lake(), result) {
        (Some(lake), _) => Some(lake),
        (None, Ok(_) | Err(AppError::BadRequest(_))) => state.lake().await.ok(),
        (None, Err(_)) => None,
    };
    match lake {
        // An Event Hub batch's answer does not wait for the ledger's commit: the next batch of the
        // partition is held back until the answer, and the row lands a moment later (coalesced with
        // the rows of the batches after it when they come faster than a commit).
        Some(lake) if f == Function::AdtIngest => state.ledger_writer(lake).await.record(row),
        Some(lake) => {
            ledger::record(lake, &row).await;
        }
        None => tracing::error!(
            stage = %row.stage,
            run_id = %row.run_id,
            "run_ledger_write_failed: the {} run {} ({}) is not in the run ledger: the lake {} could not be opened",
            row.stage,
            row.run_id,
            row.status,
            state.settings.lake_url
        ),
    }
}

/// The span an invocation runs in: `invocation{function=…, invocation_id=…}` (plus the host's
/// `traceparent` when the host sent the request). With OpenTelemetry export on, it is also named after
/// the function and carries the FaaS attributes (see [`crate::telemetry`]).
pub fn invocation_span(function: Function, id: &str, traceparent: Option<&str>) -> tracing::Span {
    let span = match traceparent {
        Some(tp) => tracing::info_span!(
            "invocation",
            function = function.name(),
            invocation_id = %id,
            traceparent = %tp,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        ),
        None => tracing::info_span!(
            "invocation",
            function = function.name(),
            invocation_id = %id,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        ),
    };
    crate::telemetry::start_invocation(&span, function, id, traceparent);
    span
}

/// Runs one invocation and builds the host's answer: the HTTP status to send the host and the body.
///
/// - HTTP functions always answer the host 200; their outcome or error goes to the caller through
///   `Outputs.res` (reference §1.4).
/// - Other functions answer 200 on success; on failure they answer the error's status (500 for a stage
///   failure), which fails the invocation so the host's retry policy applies (§2.2).
///
/// Every invocation of a pipeline function leaves one row in the run ledger (`ops_run_ledger`): this
/// is the one place the Functions host, the local runtime's timers, its HTTP routes and its Event Hub
/// stand-in all pass through.
pub async fn invoke(
    state: &Arc<AppState>,
    inv: &Invocation,
    req: InvokeRequest,
) -> (u16, InvokeResponse) {
    let f = inv.function;
    let started_at = Utc::now();
    let result = match f {
        Function::AdtIngest => ingest::adt_ingest(state, inv, &req).await,
        Function::EhrBatchIngest => ingest::ehr_blob(state, inv, &req).await,
        Function::EhrBatchIngestHttp => ingest::ehr_http(state, inv, &req).await,
        Function::DepartmentSync | Function::DepartmentSyncTimer => {
            ingest::department_sync(state, inv, &req).await
        }
        Function::SilverRefresh => refresh::silver(state, inv, &req).await,
        Function::GoldRefresh => refresh::gold(state, inv, &req).await,
        Function::Query => serving::query(state, inv, &req).await,
        Function::Health => serving::health(state, inv, &req).await,
        Function::Dashboard => dashboard::dashboard(state, inv, &req).await,
    };
    record_run(state, inv, &req, started_at, result.as_ref()).await;
    if f.stage().is_some() {
        // The lake changed: readers' policy sessions must see it.
        state.security.invalidate();
    }
    match result {
        Ok(outcome) => {
            let mut outputs = Map::new();
            if f.is_http() {
                let reply = outcome
                    .reply
                    .unwrap_or_else(|| HttpReply::json(200, serde_json::json!({})));
                tracing::info!(
                    status = reply.status,
                    "{} answered {}",
                    f.name(),
                    reply.status
                );
                crate::telemetry::record_outcome(Some(reply.status), None);
                outputs.insert("res".into(), reply.to_output());
            } else {
                crate::telemetry::record_outcome(None, None);
            }
            for line in &outcome.logs {
                tracing::info!("{line}");
            }
            (
                200,
                InvokeResponse {
                    outputs,
                    logs: outcome.logs,
                    return_value: outcome.return_value,
                },
            )
        }
        Err(e) => {
            let line = failure_line(f, &e);
            crate::telemetry::record_outcome(
                f.is_http().then(|| e.status()),
                Some((e.code(), &line)),
            );
            if e.status() >= 500 {
                tracing::error!(code = e.code(), "{line}");
            } else {
                tracing::warn!(code = e.code(), "{line}");
            }
            if f.is_http() {
                let mut outputs = Map::new();
                outputs.insert("res".into(), e.reply().to_output());
                (
                    200,
                    InvokeResponse {
                        outputs,
                        logs: vec![line],
                        return_value: None,
                    },
                )
            } else {
                (
                    e.status(),
                    InvokeResponse {
                        outputs: Map::new(),
                        logs: vec![line],
                        return_value: Some(e.body()),
                    },
                )
            }
        }
    }
}

/// The log line of a failed invocation. A failed pipeline stage reads `pipeline_run_failed stage=<stage>`,
/// the marker the Azure Monitor log alert keys on (docs/deployment.md §7).
pub fn failure_line(f: Function, e: &AppError) -> String {
    let message = e.to_string().replace(['\n', '\r'], " ");
    match e {
        AppError::StageFailed { stage, message } => {
            format!(
                "pipeline_run_failed stage={stage} function={} error={}",
                f.name(),
                message.replace(['\n', '\r'], " ")
            )
        }
        _ => format!(
            "{} failed ({} {}): {message}",
            f.name(),
            e.status(),
            e.code()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(f: Function) -> Vec<Value> {
        let v: Value = serde_json::from_str(f.embedded_json()).expect("function.json is JSON");
        v["bindings"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn triggers_and_routes_match_function_json() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("function.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut known: Vec<String> = Function::ALL.iter().map(|f| f.name().to_string()).collect();
        known.sort();
        assert_eq!(
            on_disk, known,
            "every functions/<Name> folder has a handler and vice versa"
        );
        for f in Function::ALL {
            let b = bindings(f);
            let trigger = b
                .iter()
                .find(|b| b["direction"] == "in")
                .expect("an input binding");
            match f.trigger() {
                Trigger::EventHub => {
                    assert_eq!(trigger["type"], "eventHubTrigger");
                    assert_eq!(trigger["name"], "events");
                }
                Trigger::Blob => {
                    assert_eq!(trigger["type"], "blobTrigger");
                    assert_eq!(trigger["name"], "blob");
                }
                Trigger::Timer => {
                    assert_eq!(trigger["type"], "timerTrigger");
                    assert_eq!(trigger["name"], "timer");
                }
                Trigger::Http { route, methods } => {
                    assert_eq!(trigger["type"], "httpTrigger", "{}", f.name());
                    assert_eq!(trigger["name"], "req");
                    assert_eq!(trigger["route"], route, "{}", f.name());
                    let declared: Vec<String> = trigger["methods"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m.as_str().unwrap().to_ascii_lowercase())
                        .collect();
                    assert_eq!(
                        declared,
                        methods.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                        "{}",
                        f.name()
                    );
                    assert!(b.iter().any(|b| b["type"] == "http"
                        && b["direction"] == "out"
                        && b["name"] == "res"));
                }
            }
            // The compiled-in copy is the file in the repository.
            let disk = std::fs::read_to_string(root.join(f.name()).join("function.json")).unwrap();
            assert_eq!(
                disk,
                f.embedded_json(),
                "{} function.json changed: rebuild",
                f.name()
            );
        }
    }

    #[test]
    fn names_resolve_case_insensitively() {
        assert_eq!(Function::from_name("adtingest"), Some(Function::AdtIngest));
        assert_eq!(Function::from_name("Nope"), None);
    }

    #[test]
    fn stage_failures_carry_the_alert_marker() {
        let line = failure_line(
            Function::SilverRefresh,
            &AppError::stage("silver", "not yet"),
        );
        assert!(
            line.starts_with("pipeline_run_failed stage=silver "),
            "{line}"
        );
    }
}
