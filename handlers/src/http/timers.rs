//! Timer triggers for the local runtime: the NCRONTAB schedules of the timer functions' function.json
//! (`%SETTING%` resolved from the environment, else from local.settings.sample.json), fired in process
//! like the host would, with the host's `TimerInfo` payload.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::functions::{self, Function, Invocation, Trigger, EMBEDDED_SAMPLE_SETTINGS};
use super::protocol::InvokeRequest;
use super::{local, AppState};

/// A timer function and its schedule.
#[derive(Debug, Clone)]
pub struct TimerSpec {
    /// The function.
    pub function: Function,
    /// The NCRONTAB expression after `%SETTING%` expansion.
    pub expression: String,
    /// The parsed schedule (UTC).
    pub schedule: cron::Schedule,
    /// `runOnStartup`.
    pub run_on_startup: bool,
}

/// Expands `%NAME%` from the environment, else from the sample settings' `Values`.
pub fn expand_settings(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('%')
            .ok_or_else(|| format!("unclosed %SETTING% in '{text}'"))?;
        let name = &after[..end];
        let value = std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| sample_setting(name))
            .ok_or_else(|| format!("app setting {name} (used by '{text}') is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn sample_setting(name: &str) -> Option<String> {
    let v: Value = serde_json::from_str(EMBEDDED_SAMPLE_SETTINGS).ok()?;
    v.get("Values")?.get(name)?.as_str().map(str::to_string)
}

/// Turns a 6-field NCRONTAB expression (`sec min hour day month day-of-week`, Sunday = 0) into what the
/// `cron` crate parses (day of week 1–7 with Sunday = 1, so numbers become names).
pub fn ncrontab_to_cron(expr: &str) -> Result<String, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!("'{expr}' is not a 6-field NCRONTAB expression (second minute hour day month day-of-week)"));
    }
    const DAYS: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let dow: String = {
        let mut out = String::new();
        let mut digits = String::new();
        let mut after_slash = false;
        let flush = |digits: &mut String, out: &mut String, after_slash: bool| {
            if digits.is_empty() {
                return Ok::<(), String>(());
            }
            if after_slash {
                out.push_str(digits);
            } else {
                let n: usize = digits
                    .parse()
                    .map_err(|_| format!("bad day of week in '{expr}'"))?;
                out.push_str(
                    DAYS.get(n)
                        .ok_or_else(|| format!("day of week {n} out of range in '{expr}'"))?,
                );
            }
            digits.clear();
            Ok(())
        };
        for c in fields[5].chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                flush(&mut digits, &mut out, after_slash)?;
                after_slash = c == '/';
                out.push(c);
            }
        }
        flush(&mut digits, &mut out, after_slash)?;
        out
    };
    Ok(format!(
        "{} {} {} {} {} {}",
        fields[0], fields[1], fields[2], fields[3], fields[4], dow
    ))
}

/// Parses a timer binding's schedule.
pub fn parse_schedule(raw: &str) -> Result<(String, cron::Schedule), String> {
    let expanded = expand_settings(raw)?;
    let cron_expr = ncrontab_to_cron(&expanded)?;
    let schedule =
        cron::Schedule::from_str(&cron_expr).map_err(|e| format!("schedule '{expanded}': {e}"))?;
    Ok((expanded, schedule))
}

/// The timer functions with their schedules, from `dir/<Name>/function.json` when `dir` has them, else
/// from the function.json compiled into this build.
pub fn load_timers(dir: Option<&Path>) -> Result<Vec<TimerSpec>, String> {
    let mut out = Vec::new();
    for f in Function::ALL {
        if f.trigger() != Trigger::Timer {
            continue;
        }
        let text = match dir.map(|d| d.join(f.name()).join("function.json")) {
            Some(p) if p.is_file() => {
                std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
            }
            _ => f.embedded_json().to_string(),
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}/function.json: {e}", f.name()))?;
        let binding = v["bindings"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "timerTrigger"))
            .ok_or_else(|| format!("{}/function.json has no timerTrigger binding", f.name()))?;
        let raw = binding["schedule"]
            .as_str()
            .ok_or_else(|| format!("{}: the timer has no schedule", f.name()))?;
        let (expression, schedule) =
            parse_schedule(raw).map_err(|e| format!("{}: {e}", f.name()))?;
        let run_on_startup = binding["runOnStartup"].as_bool().unwrap_or(false);
        out.push(TimerSpec {
            function: f,
            expression,
            schedule,
            run_on_startup,
        });
    }
    Ok(out)
}

/// The host's `TimerInfo` payload (reference §2.3).
pub fn timer_payload(
    function: Function,
    last: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    past_due: bool,
) -> InvokeRequest {
    let status = match (last, next) {
        (Some(l), Some(n)) => {
            json!({"Last": l.to_rfc3339(), "Next": n.to_rfc3339(), "LastUpdated": Utc::now().to_rfc3339()})
        }
        _ => Value::Null,
    };
    let mut data = Map::new();
    data.insert("timer".into(), json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status, "IsPastDue": past_due}));
    let mut metadata = Map::new();
    metadata.insert("sys".into(), local::sys(function));
    InvokeRequest { data, metadata }
}

/// Fires the timers until `shutdown` turns true. Runs of one timer never overlap (like the host's
/// singleton lock); a failed run is logged and the schedule goes on.
pub async fn run_timers(
    state: Arc<AppState>,
    timers: Vec<TimerSpec>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in timers {
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            tracing::info!(function = t.function.name(), schedule = %t.expression, "timer scheduled");
            let mut last: Option<DateTime<Utc>> = None;
            if t.run_on_startup {
                fire(&state, &t, None, t.schedule.upcoming(Utc).next(), false).await;
                last = Some(Utc::now());
            }
            while let Some(next) = t.schedule.upcoming(Utc).next() {
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => break,
                }
                if *shutdown.borrow() {
                    break;
                }
                let past_due = Utc::now() - next > chrono::Duration::seconds(60);
                let following = t.schedule.after(&next).next();
                fire(&state, &t, last, following, past_due).await;
                last = Some(next);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn fire(
    state: &Arc<AppState>,
    t: &TimerSpec,
    last: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    past_due: bool,
) {
    let inv = Invocation::local(t.function);
    let span = functions::invocation_span(t.function, &inv.id, None);
    let req = timer_payload(t.function, last, next, past_due);
    let (status, response) =
        tracing::Instrument::instrument(functions::invoke(state, &inv, req), span).await;
    if status == 200 {
        tracing::info!(function = t.function.name(), "timer run succeeded");
        // In Azure, Data Factory runs Gold after Silver (adf/); the local runtime stands in for it.
        if t.function == Function::SilverRefresh {
            let ctx = patientflow_core::ops::ledger::RunContext::new("serve")
                .with_trace_id(crate::telemetry::current_trace_id(None))
                .with_detail("after", "SilverRefresh");
            let body = super::refresh::run_gold(state, false, ctx).await;
            if body["StatusCode"] != "200" {
                tracing::warn!(
                    "Gold refresh after Silver failed: {}",
                    body["Error"]["Message"]
                );
            }
        }
    } else {
        tracing::warn!(
            function = t.function.name(),
            status,
            "timer run failed: {}",
            response.logs.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ncrontab_expressions_translate() {
        assert_eq!(ncrontab_to_cron("0 */5 * * * *").unwrap(), "0 */5 * * * *");
        assert_eq!(
            ncrontab_to_cron("0 30 9 * * 1-5").unwrap(),
            "0 30 9 * * MON-FRI"
        );
        assert_eq!(
            ncrontab_to_cron("0 0 0 * * 0,6").unwrap(),
            "0 0 0 * * SUN,SAT"
        );
        assert_eq!(ncrontab_to_cron("0 0 0 * * */2").unwrap(), "0 0 0 * * */2");
        assert!(ncrontab_to_cron("*/5 * * * *").is_err());
        assert!(ncrontab_to_cron("0 0 0 * * 9").is_err());
        let (_, s) = parse_schedule("0 30 9 * * 1-5").unwrap();
        let next = s.upcoming(Utc).next().unwrap();
        use chrono::Datelike;
        assert!(next.weekday().num_days_from_monday() < 5);
    }

    #[test]
    fn shipped_timers_load_with_settings_resolved() {
        // SILVER_SCHEDULE comes from the environment or the sample settings.
        let timers = load_timers(None).unwrap();
        let names: Vec<&str> = timers.iter().map(|t| t.function.name()).collect();
        assert_eq!(names, vec!["DepartmentSyncTimer", "SilverRefresh"]);
        assert_eq!(timers[0].expression, "0 0 2 * * *");
        assert!(!timers[1].expression.contains('%'));
        assert!(expand_settings("%NO_SUCH_SETTING_X%").is_err());
    }

    #[test]
    fn timer_payload_has_the_host_shape() {
        let r = timer_payload(Function::SilverRefresh, None, None, false);
        assert_eq!(r.data["timer"]["Schedule"]["AdjustForDST"], true);
        assert_eq!(r.data["timer"]["IsPastDue"], false);
        assert_eq!(r.metadata["sys"]["MethodName"], "SilverRefresh");
    }
}
