//! SilverRefresh (timer) and GoldRefresh (ADF WebHook: 202 at once, work in the background, then POST
//! the result to `callBackUri`; reference §3.1, docs/deployment.md §8).

use std::sync::Arc;
use std::time::Duration;

use patientflow_core::ops::ledger::{self, RunContext};
use patientflow_core::pipeline::{self, RefreshOptions, StageReport};
use serde_json::{json, Value};
use tracing::Instrument;

use super::error::AppError;
use super::functions::{Invocation, Outcome};
use super::protocol::{get_ci, HttpReply, HttpTriggerRequest, InvokeRequest};
use super::AppState;

/// One line summarising a stage report.
fn summary(r: &StageReport) -> String {
    format!(
        "stage {} {}: run {} trigger {} rows_in {} rows_out {} quarantined {} in {} ms",
        r.stage,
        r.status,
        r.run_id,
        r.trigger,
        r.rows_in,
        r.rows_out,
        r.rows_quarantined,
        (r.finished_at - r.started_at).num_milliseconds()
    )
}

/// SilverRefresh: the timer tick runs an incremental Silver refresh. A failure fails the invocation and
/// logs `pipeline_run_failed stage=silver`; the next tick resumes from Silver's checkpoint.
pub async fn silver(
    state: &Arc<AppState>,
    _inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let past_due = req
        .data("timer")
        .and_then(|t| {
            t.as_object()
                .and_then(|m| get_ci(m, "IsPastDue"))
                .and_then(Value::as_bool)
        })
        .unwrap_or(false);
    let lake = state
        .lake()
        .await
        .map_err(|e| AppError::stage("silver", e))?;
    let options = RefreshOptions {
        full: false,
        trigger: "timer".into(),
    };
    let report = pipeline::refresh_silver(lake, &options)
        .await
        .map_err(|e| AppError::stage("silver", e))?;
    if report.status == "failed" {
        return Err(AppError::stage(
            "silver",
            report
                .error
                .clone()
                .unwrap_or_else(|| "the refresh reported failure".into()),
        ));
    }
    let mut logs = vec![summary(&report)];
    if past_due {
        logs.push("SilverRefresh: the timer was past due".into());
    }
    Ok(Outcome {
        reply: None,
        logs,
        return_value: Some(json!(report)),
        run: Some(report),
    })
}

/// The GoldRefresh request body: ADF's configured body plus `callBackUri`.
#[derive(Debug, Clone)]
pub struct GoldRequest {
    /// Where to POST the result.
    pub callback: url::Url,
    /// `full` rebuilds Gold; anything else (default `incremental`) processes what is new.
    pub full: bool,
}

/// Reads and validates the body. No `callBackUri` (or not an http(s) URL) is a 400.
pub fn parse_gold_request(http: &HttpTriggerRequest) -> Result<GoldRequest, AppError> {
    let body = http.json_body()?;
    let uri = get_ci(&body, "callBackUri")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::BadRequest("callBackUri is missing: GoldRefresh is called by an ADF WebHook activity, which adds it to the body".into()))?;
    let callback = url::Url::parse(uri)
        .map_err(|e| AppError::BadRequest(format!("callBackUri is not a URL: {e}")))?;
    if !matches!(callback.scheme(), "http" | "https") {
        return Err(AppError::BadRequest(
            "callBackUri must be an http(s) URL".into(),
        ));
    }
    let mode = get_ci(&body, "mode")
        .and_then(Value::as_str)
        .unwrap_or("incremental")
        .to_ascii_lowercase();
    let full = match mode.as_str() {
        "full" => true,
        "incremental" | "" => false,
        other => {
            return Err(AppError::BadRequest(format!(
                "mode '{other}' is not 'incremental' or 'full'"
            )))
        }
    };
    Ok(GoldRequest { callback, full })
}

/// GoldRefresh: validates, answers 202 at once and refreshes Gold in the background, then calls back.
pub async fn gold(
    state: &Arc<AppState>,
    inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let http = HttpTriggerRequest::from_invocation(req)?;
    let request = parse_gold_request(&http)?;
    let work_state = state.clone();
    let invocation_id = inv.id.clone();
    let span = tracing::info_span!("gold_refresh", invocation_id = %inv.id, full = request.full);
    let callback_host = request.callback.host_str().unwrap_or("-").to_string();
    let mode = if request.full { "full" } else { "incremental" };
    let ctx = super::functions::run_context(inv, req);
    state.spawn_background(
        async move {
            let body = run_gold(&work_state, request.full, ctx).await;
            post_callback(&work_state, &request.callback, &body).await;
        }
        .instrument(span),
    );
    let body = json!({"status": "accepted", "invocation_id": invocation_id, "mode": mode});
    Ok(Outcome::http(
        HttpReply::json(202, body),
        format!("GoldRefresh accepted; the result goes to the callBackUri on {callback_host}"),
    ))
}

/// Runs the Gold refresh, records it in the run ledger (trigger, retry count and trace id from `ctx`),
/// and builds the callback body (reference §3.1, `reportStatusOnCallBack: true`):
/// success `{"Output": <StageReport>, "StatusCode": "200"}`; failure
/// `{"Output": {...}, "Error": {"ErrorCode": "GOLD_REFRESH_FAILED", "Message": ...}, "StatusCode": "500"}`.
pub async fn run_gold(state: &Arc<AppState>, full: bool, ctx: RunContext) -> Value {
    let _one_at_a_time = state.gold_lock.lock().await;
    let options = RefreshOptions {
        full,
        trigger: ctx.trigger.clone(),
    };
    let result = match state.lake().await {
        Ok(lake) => ledger::tracked(lake, "gold", &ctx, pipeline::refresh_gold(lake, &options))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => {
            tracing::error!("run_ledger_write_failed: the gold run is not in the run ledger: {e}");
            Err(e.to_string())
        }
    };
    state.security.invalidate();
    match result {
        Ok(report) if report.status != "failed" => {
            tracing::info!("{}", summary(&report));
            json!({"Output": report, "StatusCode": "200"})
        }
        Ok(report) => {
            let message = report
                .error
                .clone()
                .unwrap_or_else(|| "the Gold refresh reported failure".into());
            tracing::error!("pipeline_run_failed stage=gold function=GoldRefresh error={message}");
            callback_error(json!(report), &message)
        }
        Err(message) => {
            tracing::error!("pipeline_run_failed stage=gold function=GoldRefresh error={message}");
            callback_error(
                json!({"stage": "gold", "status": "failed", "trigger": ctx.trigger, "error": message}),
                &message,
            )
        }
    }
}

fn callback_error(output: Value, message: &str) -> Value {
    json!({
        "Output": output,
        "Error": {"ErrorCode": "GOLD_REFRESH_FAILED", "Message": message},
        "StatusCode": "500",
    })
}

/// POSTs the callback, retrying network errors, 429 and 5xx with exponential backoff.
pub async fn post_callback(state: &Arc<AppState>, url: &url::Url, body: &Value) -> bool {
    let attempts = state.settings.callback_attempts;
    let mut wait = state.settings.callback_backoff;
    for attempt in 1..=attempts {
        let sent = state
            .http
            .post(url.clone())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let retry = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(
                    attempt,
                    status = r.status().as_u16(),
                    "GoldRefresh callback delivered"
                );
                return true;
            }
            Ok(r) => {
                let status = r.status();
                tracing::warn!(
                    attempt,
                    status = status.as_u16(),
                    "GoldRefresh callback refused"
                );
                status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408
            }
            Err(e) => {
                tracing::warn!(attempt, "GoldRefresh callback failed: {e}");
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    tracing::error!("pipeline_run_failed stage=gold.callback function=GoldRefresh error=the callBackUri could not be reached after {attempts} attempts");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_with(body: &str) -> HttpTriggerRequest {
        HttpTriggerRequest {
            method: "POST".into(),
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn gold_requests_need_a_callback() {
        let r = parse_gold_request(&http_with(
            r#"{"mode":"full","callBackUri":"https://adf.example/cb?sig=1"}"#,
        ))
        .unwrap();
        assert!(r.full);
        assert_eq!(r.callback.as_str(), "https://adf.example/cb?sig=1");
        let r =
            parse_gold_request(&http_with(r#"{"CallbackUri":"http://127.0.0.1:1/x"}"#)).unwrap();
        assert!(!r.full);
        for bad in [
            r#"{"mode":"incremental"}"#,
            "",
            r#"{"callBackUri":"ftp://x"}"#,
            "not json",
            r#"{"callBackUri":"http://x","mode":"odd"}"#,
        ] {
            assert!(
                matches!(
                    parse_gold_request(&http_with(bad)),
                    Err(AppError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn failure_callbacks_have_the_adf_error_shape() {
        let b = callback_error(json!({}), "boom");
        assert_eq!(b["Error"]["ErrorCode"], "GOLD_REFRESH_FAILED");
        assert_eq!(b["Error"]["Message"], "boom");
        assert_eq!(b["StatusCode"], "500");
    }
}
