//! The alert rules: each reads the lake and returns the conditions that hold now, each with a stable
//! incident key (`<rule>:<subject>`).
//!
//! | rule | key | holds while |
//! |---|---|---|
//! | `stage_failed` | `stage_failed:<stage>` | the stage's latest run in `ops_run_ledger` is `failed` |
//! | `retries_exhausted` | `retries_exhausted:<stage>` | that failed run's `retry_count` ≥ its retry budget (`details.max_retry_count` of the run, else the settings') |
//! | `gold_late` | `gold_late:gold` | the ledger has Gold runs but none succeeded (or skipped) within the window |
//! | `dq_breach` | `dq_breach:<source>` | the source's quarantine rate in the latest Silver run of `silver_dq_results` is above the threshold |
//! | `silent_feed` | `silent_feed:<hospital>` | the hospital's newest message in `bronze_adt_messages` is older than its threshold |
//! | `occupancy` | `occupancy:<hospital>:<department>` | the department's latest census hours are ≥ the occupancy threshold for at least the required consecutive hours |
//! | `ed_boarding` | `ed_boarding:<hospital>:<department>` | the emergency department's latest census hour holds boarders (admitted patients in the ED > 4 h) |

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::AlertSettings;
use crate::ops::ledger::{FAILED, RUN_LEDGER, SKIPPED, SUCCEEDED};
use crate::storage::{columns, Lake, TableRef};
use crate::Result;

/// An alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The latest run of a stage failed.
    StageFailed,
    /// A stage's latest run failed after its last retry.
    RetriesExhausted,
    /// No successful Gold refresh within the configured window.
    GoldLate,
    /// A source's quarantine rate in the latest Silver run is above the threshold.
    DqBreach,
    /// A hospital's ADT feed has sent nothing for longer than its threshold.
    SilentFeed,
    /// A department at or above the occupancy threshold for the required hours.
    Occupancy,
    /// Emergency-department boarders (admitted patients in the ED for more than 4 h).
    EdBoarding,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 7] = [
        Rule::StageFailed,
        Rule::RetriesExhausted,
        Rule::GoldLate,
        Rule::DqBreach,
        Rule::SilentFeed,
        Rule::Occupancy,
        Rule::EdBoarding,
    ];

    /// The rules about the pipeline itself (cheap: the ledger and the DQ figures), evaluated after
    /// every stage run.
    pub const PIPELINE: [Rule; 4] = [
        Rule::StageFailed,
        Rule::RetriesExhausted,
        Rule::GoldLate,
        Rule::DqBreach,
    ];

    /// The rule's name: the first part of its incident keys and the `alertRule` of its alerts.
    pub fn name(self) -> &'static str {
        match self {
            Rule::StageFailed => "stage_failed",
            Rule::RetriesExhausted => "retries_exhausted",
            Rule::GoldLate => "gold_late",
            Rule::DqBreach => "dq_breach",
            Rule::SilentFeed => "silent_feed",
            Rule::Occupancy => "occupancy",
            Rule::EdBoarding => "ed_boarding",
        }
    }

    /// The rule named `name`.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Azure Monitor severity of the rule's alerts (`Sev0` most severe … `Sev4`).
    pub fn severity(self) -> &'static str {
        match self {
            Rule::RetriesExhausted => "Sev1",
            Rule::StageFailed | Rule::SilentFeed => "Sev2",
            Rule::GoldLate | Rule::DqBreach | Rule::Occupancy | Rule::EdBoarding => "Sev3",
        }
    }

    /// `pipeline` for the rules about the pipeline, `clinical` for the operational ones.
    pub fn category(self) -> &'static str {
        match self {
            Rule::Occupancy | Rule::EdBoarding => "clinical",
            _ => "pipeline",
        }
    }
}

/// A condition that holds now: what an open incident is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The rule.
    pub rule: Rule,
    /// What it is about: a stage, a source, a hospital, `hospital:department`.
    pub subject: String,
    /// One line for a person.
    pub description: String,
    /// The figures behind it (the `alertContext.condition` of the payload).
    pub context: Value,
}

impl Condition {
    /// The incident key: `<rule>:<subject>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.rule.name(), self.subject)
    }
}

/// Evaluates `rule` at `now`. A rule whose input table does not exist yet holds for nothing.
pub async fn evaluate(
    lake: &Lake,
    settings: &AlertSettings,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<Vec<Condition>> {
    match rule {
        Rule::StageFailed | Rule::RetriesExhausted => stage_rules(lake, settings, rule).await,
        Rule::GoldLate => gold_late(lake, settings, now).await,
        Rule::DqBreach => dq_breach(lake, settings).await,
        Rule::SilentFeed => silent_feed(lake, settings, now).await,
        Rule::Occupancy => occupancy(lake, settings).await,
        Rule::EdBoarding => ed_boarding(lake, settings).await,
    }
}

async fn exists(lake: &Lake, table: TableRef) -> Result<bool> {
    Ok(lake.open_table(table).await?.is_some())
}

fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn stage_rules(lake: &Lake, settings: &AlertSettings, rule: Rule) -> Result<Vec<Condition>> {
    if !exists(lake, RUN_LEDGER).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT stage, status, retry_count, error, run_id, trigger, finished_at, details FROM ( \
           SELECT *, ROW_NUMBER() OVER (PARTITION BY stage ORDER BY finished_at DESC, run_id DESC) AS rn \
           FROM {} ) AS latest WHERE rn = 1",
        RUN_LEDGER.sql_name()
    );
    let mut out = Vec::new();
    for b in lake.sql(&[RUN_LEDGER], &sql).await? {
        let stage = columns::strings(&b, "stage")?;
        let status = columns::strings(&b, "status")?;
        let retries = columns::ints(&b, "retry_count")?;
        let error = columns::strings(&b, "error")?;
        let run_id = columns::strings(&b, "run_id")?;
        let trigger = columns::strings(&b, "trigger")?;
        let finished = columns::timestamps(&b, "finished_at")?;
        let details = columns::strings(&b, "details")?;
        for k in 0..b.num_rows() {
            let (Some(stage), Some(status)) = (&stage[k], &status[k]) else {
                continue;
            };
            if status != FAILED {
                continue;
            }
            let retry_count = retries[k].unwrap_or_default();
            // The host's own budget when the run recorded it, else the configured one.
            let recorded = details[k]
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| d["max_retry_count"].as_u64())
                .and_then(|n| u32::try_from(n).ok());
            let budget = recorded.unwrap_or_else(|| settings.max_retries_for(stage));
            if rule == Rule::RetriesExhausted && retry_count < i64::from(budget) {
                continue;
            }
            let err = error[k].clone().unwrap_or_default();
            let description = if rule == Rule::RetriesExhausted {
                format!("{stage} failed after {retry_count} retries (budget {budget}): {err}")
            } else {
                format!("the latest {stage} run failed: {err}")
            };
            out.push(Condition {
                rule,
                subject: stage.clone(),
                description,
                context: json!({
                    "stage": stage,
                    "run_id": run_id[k],
                    "trigger": trigger[k],
                    "finished_at": finished[k],
                    "retry_count": retry_count,
                    "max_retries": budget,
                    "error": err,
                }),
            });
        }
    }
    Ok(out)
}

async fn gold_late(
    lake: &Lake,
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Condition>> {
    if !exists(lake, RUN_LEDGER).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT COUNT(*) AS runs, \
         MAX(CASE WHEN status IN ({ok}, {skipped}) THEN finished_at END) AS last_ok \
         FROM {t} WHERE stage = 'gold'",
        ok = text(SUCCEEDED),
        skipped = text(SKIPPED),
        t = RUN_LEDGER.sql_name()
    );
    let window = Duration::minutes(settings.gold_late_minutes);
    let batches = lake.sql(&[RUN_LEDGER], &sql).await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Vec::new());
    };
    let runs = columns::ints(b, "runs")?;
    let last_ok = columns::timestamps(b, "last_ok")?;
    if runs[0].unwrap_or_default() == 0 {
        return Ok(Vec::new());
    }
    let last = last_ok[0];
    if last.is_some_and(|t| now - t <= window) {
        return Ok(Vec::new());
    }
    let since = match last {
        Some(t) => format!("since {}", t.to_rfc3339()),
        None => "ever".into(),
    };
    Ok(vec![Condition {
        rule: Rule::GoldLate,
        subject: "gold".into(),
        description: format!(
            "no successful Gold refresh {since} (window {} min)",
            settings.gold_late_minutes
        ),
        context: json!({"last_success": last, "window_minutes": settings.gold_late_minutes}),
    }])
}

async fn dq_breach(lake: &Lake, settings: &AlertSettings) -> Result<Vec<Condition>> {
    let table = crate::silver::DQ_RESULTS;
    if !exists(lake, table).await? {
        return Ok(Vec::new());
    }
    let t = table.sql_name();
    let sql = format!(
        "SELECT run_id, source, records_in, findings, rate FROM {t} \
         WHERE rule_id = '*' AND run_at = (SELECT MAX(run_at) FROM {t})"
    );
    let mut out = Vec::new();
    for b in lake.sql(&[table], &sql).await? {
        let run_id = columns::strings(&b, "run_id")?;
        let source = columns::strings(&b, "source")?;
        let records = columns::ints(&b, "records_in")?;
        let findings = columns::ints(&b, "findings")?;
        let rate = columns::floats(&b, "rate")?;
        for k in 0..b.num_rows() {
            let (Some(source), Some(rate)) = (&source[k], rate[k]) else {
                continue;
            };
            let n = records[k].unwrap_or_default();
            if n < settings.dq_min_records || rate <= settings.dq_quarantine_rate {
                continue;
            }
            out.push(Condition {
                rule: Rule::DqBreach,
                subject: source.clone(),
                description: format!(
                    "{source}: {:.1} % of {n} records quarantined in the latest Silver run (threshold {:.1} %)",
                    rate * 100.0,
                    settings.dq_quarantine_rate * 100.0
                ),
                context: json!({
                    "source": source,
                    "run_id": run_id[k],
                    "records_in": n,
                    "quarantined": findings[k],
                    "rate": rate,
                    "threshold": settings.dq_quarantine_rate,
                }),
            });
        }
    }
    Ok(out)
}

async fn silent_feed(
    lake: &Lake,
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Condition>> {
    let table = crate::bronze::ADT_MESSAGES;
    if !exists(lake, table).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT facility, MAX(ingested_at) AS last_at, COUNT(*) AS messages FROM {} \
         WHERE facility IS NOT NULL AND facility <> '' GROUP BY facility",
        table.sql_name()
    );
    let mut out = Vec::new();
    for b in lake.sql(&[table], &sql).await? {
        let facility = columns::strings(&b, "facility")?;
        let last = columns::timestamps(&b, "last_at")?;
        for k in 0..b.num_rows() {
            let (Some(hospital), Some(last)) = (&facility[k], last[k]) else {
                continue;
            };
            let limit = settings.silent_feed_minutes_for(hospital);
            let silent = (now - last).num_minutes();
            if silent <= limit {
                continue;
            }
            out.push(Condition {
                rule: Rule::SilentFeed,
                subject: hospital.clone(),
                description: format!(
                    "no ADT message from {hospital} for {silent} min (threshold {limit} min; last at {})",
                    last.to_rfc3339()
                ),
                context: json!({
                    "hospital_id": hospital,
                    "last_message_at": last,
                    "silent_minutes": silent,
                    "threshold_minutes": limit,
                }),
            });
        }
    }
    Ok(out)
}

/// The latest census hours per department: `(hour, occupancy_pct, ed_boarders)`, newest first.
type CensusTail = BTreeMap<(String, String), Vec<(DateTime<Utc>, Option<f64>, Option<i64>)>>;

async fn census_tail(lake: &Lake, hours: i64) -> Result<CensusTail> {
    let table = crate::gold::FACT_CENSUS_HOURLY;
    let mut out = CensusTail::new();
    if !exists(lake, table).await? {
        return Ok(out);
    }
    let t = table.sql_name();
    let sql = format!(
        "SELECT hospital_id, department_code, hour_start, occupancy_pct, ed_boarders FROM {t} \
         WHERE hour_start >= (SELECT MAX(hour_start) FROM {t}) - INTERVAL '{hours} hours' \
         ORDER BY hospital_id, department_code, hour_start DESC"
    );
    for b in lake.sql(&[table], &sql).await? {
        let hospital = columns::strings(&b, "hospital_id")?;
        let department = columns::strings(&b, "department_code")?;
        let hour = columns::timestamps(&b, "hour_start")?;
        let pct = columns::floats(&b, "occupancy_pct")?;
        let boarders = columns::ints(&b, "ed_boarders")?;
        for k in 0..b.num_rows() {
            let (Some(h), Some(d), Some(at)) = (&hospital[k], &department[k], hour[k]) else {
                continue;
            };
            out.entry((h.clone(), d.clone()))
                .or_default()
                .push((at, pct[k], boarders[k]));
        }
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    }
    Ok(out)
}

async fn occupancy(lake: &Lake, settings: &AlertSettings) -> Result<Vec<Condition>> {
    let need = settings.occupancy_hours.max(1);
    let tail = census_tail(lake, need + 1).await?;
    let mut out = Vec::new();
    for ((hospital, department), rows) in tail {
        // Consecutive hours at or above the threshold, counted back from the department's latest hour.
        let mut run = 0i64;
        let mut peak = 0f64;
        let mut prev: Option<DateTime<Utc>> = None;
        for (at, pct, _) in &rows {
            if prev.is_some_and(|p| p - *at != Duration::hours(1)) {
                break;
            }
            match pct {
                Some(p) if *p >= settings.occupancy_pct => {
                    run += 1;
                    peak = peak.max(*p);
                    prev = Some(*at);
                }
                _ => break,
            }
        }
        if run < need {
            continue;
        }
        let latest = rows.first().map(|r| r.0);
        out.push(Condition {
            rule: Rule::Occupancy,
            subject: format!("{hospital}:{department}"),
            description: format!(
                "{hospital} {department} at ≥ {:.0} % occupancy for {run} h or more (peak {peak:.1} %)",
                settings.occupancy_pct
            ),
            context: json!({
                "hospital_id": hospital,
                "department_code": department,
                "latest_hour": latest,
                "hours_at_or_above": run,
                "peak_pct": peak,
                "threshold_pct": settings.occupancy_pct,
                "required_hours": need,
            }),
        });
    }
    Ok(out)
}

async fn ed_boarding(lake: &Lake, settings: &AlertSettings) -> Result<Vec<Condition>> {
    let tail = census_tail(lake, 0).await?;
    let mut out = Vec::new();
    for ((hospital, department), rows) in tail {
        let Some((at, _, Some(boarders))) = rows.first() else {
            continue;
        };
        if *boarders < settings.boarding_min_patients.max(1) {
            continue;
        }
        out.push(Condition {
            rule: Rule::EdBoarding,
            subject: format!("{hospital}:{department}"),
            description: format!(
                "{hospital} {department}: {boarders} admitted patient(s) in the ED for more than 4 h"
            ),
            context: json!({
                "hospital_id": hospital,
                "department_code": department,
                "hour": at,
                "ed_boarders": boarders,
                "min_patients": settings.boarding_min_patients,
            }),
        });
    }
    Ok(out)
}
