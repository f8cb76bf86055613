//! Alerts: rules evaluated from the lake, one notice per incident (fired, then resolved), delivered to
//! a webhook through an outbox in the lake (`ops_alert_outbox`).
//!
//! A cycle ([`run_cycle`]) evaluates the rules, queues a `fired` notice for every condition that holds
//! without an open incident and a `resolved` notice for every open incident whose condition no longer
//! holds (in one commit), then delivers what is due. While a condition holds, later cycles queue
//! nothing. A notice that cannot be delivered stays in the outbox and is retried with exponential
//! backoff by later cycles, in the order it was queued; a restart reads the same outbox, so nothing is
//! lost and nothing is queued twice. A rule that cannot be evaluated (its query failed) leaves its
//! incidents as they are.
//!
//! Cycles run after every stage run recorded in the ledger (the pipeline rules, [`after_run`]), on the
//! local runtime's schedule and from `patientflow alerts evaluate` (every rule). Settings come from the
//! environment ([`AlertSettings::from_env`]); alerts are off unless a webhook is configured or
//! `PATIENTFLOW_ALERTS=on`.

pub mod delivery;
pub mod outbox;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use delivery::WebhookFormat;
pub use outbox::{Incident, OutboxRow, ALERT_OUTBOX, FIRED, RESOLVED};
pub use rules::{Condition, Rule};

use crate::storage::Lake;
use crate::{Error, Result};

/// Thresholds and delivery settings. Every field has an environment variable (see
/// [`AlertSettings::from_env`]) and a default.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Alerts evaluated at all (`PATIENTFLOW_ALERTS`; on by default when a webhook URL is set).
    pub enabled: bool,
    /// Webhook receiving the notices (`PATIENTFLOW_ALERT_WEBHOOK_URL`); without one, notices wait in
    /// the outbox.
    pub webhook_url: Option<String>,
    /// Body shape (`PATIENTFLOW_ALERT_WEBHOOK_FORMAT`: `azure-monitor`, `teams`, `slack`).
    pub webhook_format: WebhookFormat,
    /// Time a webhook request may take (`PATIENTFLOW_ALERT_WEBHOOK_TIMEOUT_SECONDS`, 10).
    pub webhook_timeout: Duration,
    /// Retry budget of a stage (`PATIENTFLOW_ALERT_MAX_RETRIES`, 3): a failed run with
    /// `retry_count` ≥ it has exhausted its retries.
    pub max_retries: u32,
    /// Per-stage budgets (`PATIENTFLOW_ALERT_MAX_RETRIES_BY_STAGE`, `bronze.adt=5`: AdtIngest's
    /// `maxRetryCount`).
    pub max_retries_by_stage: BTreeMap<String, u32>,
    /// Minutes without a successful Gold refresh before `gold_late` (`PATIENTFLOW_ALERT_GOLD_LATE_MINUTES`, 90).
    pub gold_late_minutes: i64,
    /// Quarantine rate of a source (0–1) above which `dq_breach` fires (`PATIENTFLOW_ALERT_DQ_RATE`, 0.05).
    pub dq_quarantine_rate: f64,
    /// Records a source must have in the run for `dq_breach` (`PATIENTFLOW_ALERT_DQ_MIN_RECORDS`, 20).
    pub dq_min_records: i64,
    /// Minutes without an ADT message before `silent_feed` (`PATIENTFLOW_ALERT_SILENT_FEED_MINUTES`, 60).
    pub silent_feed_minutes: i64,
    /// Per-hospital thresholds (`PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL`, `MHA01=30,MHB02=240`).
    pub silent_feed_by_hospital: BTreeMap<String, i64>,
    /// Occupancy (% of staffed beds) of `occupancy` (`PATIENTFLOW_ALERT_OCCUPANCY_PCT`, 85).
    pub occupancy_pct: f64,
    /// Consecutive census hours at or above it (`PATIENTFLOW_ALERT_OCCUPANCY_HOURS`, 2).
    pub occupancy_hours: i64,
    /// ED boarders in the latest census hour for `ed_boarding` (`PATIENTFLOW_ALERT_BOARDING_PATIENTS`, 1).
    pub boarding_min_patients: i64,
    /// First retry delay (`PATIENTFLOW_ALERT_RETRY_BASE_SECONDS`, 30); doubled per attempt.
    pub retry_base: Duration,
    /// Longest retry delay (`PATIENTFLOW_ALERT_RETRY_MAX_SECONDS`, 3600).
    pub retry_max: Duration,
    /// Period of the scheduled cycle under `serve` (`PATIENTFLOW_ALERT_INTERVAL_SECONDS`, 300).
    pub interval: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            enabled: false,
            webhook_url: None,
            webhook_format: WebhookFormat::AzureMonitor,
            webhook_timeout: Duration::from_secs(10),
            max_retries: 3,
            max_retries_by_stage: BTreeMap::from([("bronze.adt".to_string(), 5)]),
            gold_late_minutes: 90,
            dq_quarantine_rate: 0.05,
            dq_min_records: 20,
            silent_feed_minutes: 60,
            silent_feed_by_hospital: BTreeMap::new(),
            occupancy_pct: 85.0,
            occupancy_hours: 2,
            boarding_min_patients: 1,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            interval: Duration::from_secs(300),
        }
    }
}

fn parse_map<T: std::str::FromStr>(name: &str, raw: &str) -> Result<BTreeMap<String, T>> {
    let mut out = BTreeMap::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("{name}: '{part}' is not key=value")))?;
        let v = v
            .trim()
            .parse()
            .map_err(|_| Error::Config(format!("{name}: '{part}' has no valid number")))?;
        out.insert(k.trim().to_string(), v);
    }
    Ok(out)
}

impl AlertSettings {
    /// The settings from `lookup` (an environment): every unset or empty variable keeps its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| -> Option<String> {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // The variable `k` as a number, or `d` when unset.
        fn num<T: std::str::FromStr>(
            get: &dyn Fn(&str) -> Option<String>,
            k: &str,
            d: T,
        ) -> Result<T> {
            match get(k) {
                None => Ok(d),
                Some(v) => v
                    .parse()
                    .map_err(|_| Error::Config(format!("{k}: '{v}' is not a valid number"))),
            }
        }
        let d = AlertSettings::default();
        let webhook_url = get("PATIENTFLOW_ALERT_WEBHOOK_URL");
        let enabled = match get("PATIENTFLOW_ALERTS").map(|v| v.to_ascii_lowercase()) {
            None => webhook_url.is_some(),
            Some(v) => matches!(v.as_str(), "on" | "true" | "1" | "yes"),
        };
        let format = match get("PATIENTFLOW_ALERT_WEBHOOK_FORMAT") {
            None => d.webhook_format,
            Some(v) => WebhookFormat::parse(&v).ok_or_else(|| {
                Error::Config(format!(
                    "PATIENTFLOW_ALERT_WEBHOOK_FORMAT: '{v}' is not azure-monitor, teams or slack"
                ))
            })?,
        };
        let secs = |k: &str, d: Duration| -> Result<Duration> {
            Ok(Duration::from_secs(num(&get, k, d.as_secs())?))
        };
        let mut by_stage = d.max_retries_by_stage.clone();
        if let Some(v) = get("PATIENTFLOW_ALERT_MAX_RETRIES_BY_STAGE") {
            by_stage.extend(parse_map("PATIENTFLOW_ALERT_MAX_RETRIES_BY_STAGE", &v)?);
        }
        let by_hospital = match get("PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL") {
            Some(v) => parse_map("PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL", &v)?,
            None => BTreeMap::new(),
        };
        let max_retries = num(&get, "PATIENTFLOW_ALERT_MAX_RETRIES", d.max_retries)?;
        let gold_late_minutes = num(
            &get,
            "PATIENTFLOW_ALERT_GOLD_LATE_MINUTES",
            d.gold_late_minutes,
        )?;
        let dq_quarantine_rate = num(&get, "PATIENTFLOW_ALERT_DQ_RATE", d.dq_quarantine_rate)?;
        let dq_min_records = num(&get, "PATIENTFLOW_ALERT_DQ_MIN_RECORDS", d.dq_min_records)?;
        let silent_feed_minutes = num(
            &get,
            "PATIENTFLOW_ALERT_SILENT_FEED_MINUTES",
            d.silent_feed_minutes,
        )?;
        let occupancy_pct = num(&get, "PATIENTFLOW_ALERT_OCCUPANCY_PCT", d.occupancy_pct)?;
        let occupancy_hours = num(&get, "PATIENTFLOW_ALERT_OCCUPANCY_HOURS", d.occupancy_hours)?;
        let boarding_min_patients = num(
            &get,
            "PATIENTFLOW_ALERT_BOARDING_PATIENTS",
            d.boarding_min_patients,
        )?;
        Ok(AlertSettings {
            enabled,
            webhook_url,
            webhook_format: format,
            webhook_timeout: secs(
                "PATIENTFLOW_ALERT_WEBHOOK_TIMEOUT_SECONDS",
                d.webhook_timeout,
            )?,
            max_retries,
            max_retries_by_stage: by_stage,
            gold_late_minutes,
            dq_quarantine_rate,
            dq_min_records,
            silent_feed_minutes,
            silent_feed_by_hospital: by_hospital,
            occupancy_pct,
            occupancy_hours,
            boarding_min_patients,
            retry_base: secs("PATIENTFLOW_ALERT_RETRY_BASE_SECONDS", d.retry_base)?,
            retry_max: secs("PATIENTFLOW_ALERT_RETRY_MAX_SECONDS", d.retry_max)?,
            interval: secs("PATIENTFLOW_ALERT_INTERVAL_SECONDS", d.interval)?,
        })
    }

    /// The settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The retry budget of `stage`.
    pub fn max_retries_for(&self, stage: &str) -> u32 {
        self.max_retries_by_stage
            .get(stage)
            .copied()
            .unwrap_or(self.max_retries)
    }

    /// The silent-feed threshold of `hospital`, in minutes.
    pub fn silent_feed_minutes_for(&self, hospital: &str) -> i64 {
        self.silent_feed_by_hospital
            .get(hospital)
            .copied()
            .unwrap_or(self.silent_feed_minutes)
    }

    /// Delay before attempt `attempts + 1`: `retry_base · 2^(attempts − 1)`, at most `retry_max`.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.retry_base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.retry_max)
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CycleReport {
    /// Rules evaluated.
    pub evaluated: Vec<String>,
    /// Rules whose evaluation failed, with the error (their incidents were left as they were).
    pub rule_errors: BTreeMap<String, String>,
    /// Incidents opened (keys).
    pub fired: Vec<String>,
    /// Incidents resolved (keys).
    pub resolved: Vec<String>,
    /// Notices delivered in this cycle.
    pub delivered: usize,
    /// Delivery attempts that failed in this cycle.
    pub failed_attempts: usize,
    /// Notices still waiting after the cycle.
    pub pending: usize,
    /// Incidents open after the cycle.
    pub open: usize,
}

/// One cycle serialises with the others of the process (the outbox is read, then written).
fn cycle_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

fn alert_id(key: &str, opened_at: DateTime<Utc>) -> String {
    let name = format!("{key}|{}", opened_at.timestamp_micros());
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

fn notice(
    condition: &Condition,
    alert_id: &str,
    kind: &str,
    fired_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> OutboxRow {
    let notification_id = format!("{alert_id}:{kind}");
    let resolved_at = (kind == RESOLVED).then_some(now);
    let payload =
        delivery::common_schema(condition, alert_id, &notification_id, fired_at, resolved_at);
    OutboxRow {
        notification_id,
        alert_id: alert_id.to_string(),
        incident_key: condition.key(),
        rule: condition.rule.name().to_string(),
        kind: kind.to_string(),
        severity: condition.rule.severity().to_string(),
        description: condition.description.clone(),
        payload: payload.to_string(),
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        delivered_at: None,
        last_error: None,
    }
}

/// The condition an open incident was opened for, rebuilt from its `fired` notice (for its resolved
/// notice).
fn condition_of(row: &OutboxRow) -> Condition {
    let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
    let ctx = &payload["data"]["alertContext"];
    let rule = Rule::from_name(&row.rule).unwrap_or(Rule::StageFailed);
    let subject = ctx["subject"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            row.incident_key
                .split_once(':')
                .map(|(_, s)| s.to_string())
                .unwrap_or_default()
        });
    Condition {
        rule,
        subject,
        description: format!("resolved: {}", row.description),
        context: ctx["condition"].clone(),
    }
}

/// Evaluates `rules` at `now`, queues the notices of incidents opened and resolved, and delivers what
/// is due (every pending notice whose `next_attempt_at` ≤ `now`, oldest first; the first failure ends
/// the round, so notices reach the receiver in order).
pub async fn run_cycle(
    lake: &Lake,
    settings: &AlertSettings,
    rules: &[Rule],
    now: DateTime<Utc>,
) -> Result<CycleReport> {
    let _guard = cycle_lock().lock().await;
    let mut report = CycleReport::default();
    let mut holding: BTreeMap<String, Condition> = BTreeMap::new();
    let mut evaluated: BTreeSet<&'static str> = BTreeSet::new();
    for &rule in rules {
        match rules::evaluate(lake, settings, rule, now).await {
            Ok(conditions) => {
                evaluated.insert(rule.name());
                report.evaluated.push(rule.name().to_string());
                for c in conditions {
                    holding.insert(c.key(), c);
                }
            }
            Err(e) => {
                tracing::warn!(rule = rule.name(), "alert rule not evaluated: {e}");
                report
                    .rule_errors
                    .insert(rule.name().to_string(), e.to_string());
            }
        }
    }
    let rows = outbox::read_all(lake).await?;
    let open = outbox::open_incidents(&rows);
    let mut queued = Vec::new();
    for (key, c) in &holding {
        if !open.contains_key(key) {
            let id = alert_id(key, now);
            queued.push(notice(c, &id, FIRED, now, now));
            report.fired.push(key.clone());
        }
    }
    for (key, incident) in &open {
        if holding.contains_key(key) || !evaluated.contains(incident.rule.as_str()) {
            continue;
        }
        let Some(fired) = rows
            .iter()
            .rev()
            .find(|r| &r.incident_key == key && r.kind == FIRED)
        else {
            continue;
        };
        let c = condition_of(fired);
        queued.push(notice(
            &c,
            &incident.alert_id,
            RESOLVED,
            fired.created_at,
            now,
        ));
        report.resolved.push(key.clone());
    }
    outbox::append(lake, &queued).await?;
    for r in &queued {
        tracing::info!(
            incident = %r.incident_key,
            kind = %r.kind,
            alert_id = %r.alert_id,
            "alert_{}: {}", r.kind, r.description
        );
    }
    report.open = open.len() + report.fired.len() - report.resolved.len();

    let mut all = rows;
    all.extend(queued);
    let (delivered, failed, pending) = deliver(lake, settings, &mut all, now).await?;
    report.delivered = delivered;
    report.failed_attempts = failed;
    report.pending = pending;
    Ok(report)
}

/// Delivers the due notices of `rows` (the whole outbox) and records the attempts. Returns (delivered,
/// failed attempts, still pending).
async fn deliver(
    lake: &Lake,
    settings: &AlertSettings,
    rows: &mut [OutboxRow],
    now: DateTime<Utc>,
) -> Result<(usize, usize, usize)> {
    let mut pending: Vec<&mut OutboxRow> = rows.iter_mut().filter(|r| !r.delivered()).collect();
    pending.sort_by(|a, b| {
        (a.created_at, a.kind == RESOLVED).cmp(&(b.created_at, b.kind == RESOLVED))
    });
    let Some(url) = settings.webhook_url.as_deref() else {
        return Ok((0, 0, pending.len()));
    };
    let client = reqwest::Client::new();
    let (mut delivered, mut failed) = (0, 0);
    let mut changed: Vec<OutboxRow> = Vec::new();
    for row in pending.iter_mut() {
        if row.next_attempt_at > now {
            continue;
        }
        let payload: serde_json::Value =
            serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null);
        row.attempts += 1;
        let sent = delivery::send(
            &client,
            url,
            settings.webhook_format,
            &row.notification_id,
            &payload,
            settings.webhook_timeout,
        )
        .await;
        match sent {
            Ok(()) => {
                row.delivered_at = Some(Utc::now().max(now));
                row.last_error = None;
                delivered += 1;
                changed.push(row.clone());
            }
            Err(e) => {
                let wait = chrono::Duration::from_std(settings.backoff(row.attempts))
                    .unwrap_or(chrono::Duration::hours(1));
                row.next_attempt_at = now + wait;
                tracing::warn!(
                    notification = %row.notification_id,
                    attempts = row.attempts,
                    "alert_delivery_failed: {e}; next attempt at {}",
                    row.next_attempt_at
                );
                row.last_error = Some(e);
                failed += 1;
                changed.push(row.clone());
                break;
            }
        }
    }
    outbox::update(lake, &changed).await?;
    let left = pending.iter().filter(|r| !r.delivered()).count();
    Ok((delivered, failed, left))
}

/// The open incidents and the whole outbox (oldest first).
pub async fn status(lake: &Lake) -> Result<(Vec<Incident>, Vec<OutboxRow>)> {
    let rows = outbox::read_all(lake).await?;
    let open = outbox::open_incidents(&rows).into_values().collect();
    Ok((open, rows))
}

/// The settings [`after_run`] uses: those given to [`configure`], else the environment's (read once).
pub fn process_settings() -> &'static AlertSettings {
    settings_cell().get_or_init(|| match AlertSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("alerts are off: {e}");
            AlertSettings::default()
        }
    })
}

fn settings_cell() -> &'static OnceLock<AlertSettings> {
    static SETTINGS: OnceLock<AlertSettings> = OnceLock::new();
    &SETTINGS
}

/// Sets the process's alert settings (before the first stage run); false when they were already set.
pub fn configure(settings: AlertSettings) -> bool {
    settings_cell().set(settings).is_ok()
}

/// Time an after-run cycle may take before it is given up (and logged).
const AFTER_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The cycle after a stage run: the pipeline rules ([`Rule::PIPELINE`]) and delivery, when alerts are
/// enabled. Never fails: an error is logged.
pub async fn after_run(lake: &Lake) {
    let settings = process_settings();
    if !settings.enabled {
        return;
    }
    match tokio::time::timeout(
        AFTER_RUN_TIMEOUT,
        run_cycle(lake, settings, &Rule::PIPELINE, Utc::now()),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("alert cycle after the run failed: {e}"),
        Err(_) => tracing::error!(
            "alert cycle after the run gave up after {} s",
            AFTER_RUN_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_with_defaults() {
        let s = AlertSettings::from_lookup(|_| None).unwrap();
        assert_eq!(s, AlertSettings::default());
        assert!(!s.enabled);
        let env = BTreeMap::from([
            ("PATIENTFLOW_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("PATIENTFLOW_ALERT_WEBHOOK_FORMAT", "slack"),
            (
                "PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL",
                "MHA01=30, MHB02=240",
            ),
            ("PATIENTFLOW_ALERT_MAX_RETRIES_BY_STAGE", "silver=1"),
            ("PATIENTFLOW_ALERT_OCCUPANCY_PCT", "90"),
        ]);
        let s = AlertSettings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert!(s.enabled, "a webhook turns alerts on");
        assert_eq!(s.webhook_format, WebhookFormat::Slack);
        assert_eq!(s.silent_feed_minutes_for("MHA01"), 30);
        assert_eq!(s.silent_feed_minutes_for("MHC03"), 60);
        assert_eq!(s.max_retries_for("silver"), 1);
        assert_eq!(s.max_retries_for("bronze.adt"), 5);
        assert_eq!(s.max_retries_for("gold"), 3);
        assert_eq!(s.occupancy_pct, 90.0);
        let bad = AlertSettings::from_lookup(|k| {
            (k == "PATIENTFLOW_ALERT_DQ_RATE").then(|| "lots".to_string())
        });
        assert!(matches!(bad, Err(Error::Config(_))));
        let off = AlertSettings::from_lookup(|k| match k {
            "PATIENTFLOW_ALERTS" => Some("off".into()),
            "PATIENTFLOW_ALERT_WEBHOOK_URL" => Some("http://x".into()),
            _ => None,
        })
        .unwrap();
        assert!(!off.enabled);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = AlertSettings::default();
        assert_eq!(s.backoff(1), Duration::from_secs(30));
        assert_eq!(s.backoff(2), Duration::from_secs(60));
        assert_eq!(s.backoff(4), Duration::from_secs(240));
        assert_eq!(s.backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn payload_shapes() {
        let c = Condition {
            rule: Rule::StageFailed,
            subject: "silver".into(),
            description: "the latest silver run failed: boom".into(),
            context: serde_json::json!({"stage": "silver"}),
        };
        let now = Utc::now();
        let p = delivery::common_schema(&c, "a-1", "a-1:fired", now, None);
        assert_eq!(p["schemaId"], "azureMonitorCommonAlertSchema");
        assert_eq!(p["data"]["essentials"]["monitorCondition"], "Fired");
        assert_eq!(p["data"]["essentials"]["severity"], "Sev2");
        assert!(p["data"]["essentials"]["resolvedDateTime"].is_null());
        assert_eq!(
            p["data"]["alertContext"]["incidentKey"],
            "stage_failed:silver"
        );
        let slack = delivery::render(WebhookFormat::Slack, &p);
        assert!(slack["text"]
            .as_str()
            .unwrap()
            .contains("stage_failed:silver"));
        let teams = delivery::render(WebhookFormat::Teams, &p);
        assert_eq!(
            teams["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
    }
}
