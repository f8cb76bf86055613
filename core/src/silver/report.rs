//! Data-quality figures of a run (`silver_dq_results`) and the data-quality report (JSON and HTML):
//! rows in, valid, findings per rule and source, pass rates, the trend against earlier runs, schema
//! changes seen, and samples with PHI masked.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::dq::rules;
use super::quarantine::QuarantineRow;
use super::{DQ_RESULTS, QUARANTINE};
use crate::storage::columns::{floats, ints, strings, timestamps};
use crate::storage::rows::{Cell, RowsBuilder};
use crate::storage::Lake;
use crate::Result;

/// Figures of one source in one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SourceFigures {
    /// Records read.
    pub records_in: usize,
    /// Records that passed (applied or written).
    pub records_valid: usize,
    /// Findings by rule id.
    pub findings: BTreeMap<String, usize>,
}

/// Figures of a whole run.
#[derive(Debug, Default)]
pub struct RunFigures {
    /// By source (`adt`, `ehr_patients`, …).
    pub sources: BTreeMap<String, SourceFigures>,
    /// Step details for the stage report.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl RunFigures {
    /// Adds a source's counts and findings.
    pub fn add_findings(
        &mut self,
        source: &str,
        rows_in: usize,
        valid: usize,
        findings: &BTreeMap<&'static str, usize>,
    ) {
        let s = self.sources.entry(source.to_string()).or_default();
        s.records_in += rows_in;
        s.records_valid += valid;
        for (rule, n) in findings {
            *s.findings.entry(rule.to_string()).or_default() += n;
        }
    }

    /// Adds a source whose findings are quarantine rows.
    pub fn add_source(
        &mut self,
        source: &str,
        rows_in: usize,
        valid: usize,
        quarantine: &[QuarantineRow],
    ) {
        let mut findings: BTreeMap<&'static str, usize> = BTreeMap::new();
        for q in quarantine {
            *findings.entry(q.finding.rule.id).or_default() += 1;
        }
        self.add_findings(source, rows_in, valid, &findings);
    }

    /// Records read, all sources.
    pub fn rows_in(&self) -> usize {
        self.sources.values().map(|s| s.records_in).sum()
    }

    /// Records valid, all sources.
    pub fn rows_out(&self) -> usize {
        self.sources.values().map(|s| s.records_valid).sum()
    }

    /// Records rejected, all sources.
    pub fn quarantined(&self) -> usize {
        self.sources
            .values()
            .flat_map(|s| s.findings.iter())
            .filter(|(rule, _)| {
                rules::by_id(rule).is_some_and(|r| r.action == rules::Action::Quarantine)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// The figures as JSON (the stage report's details).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = self.details.clone();
        m.insert("sources".into(), json!(self.sources));
        serde_json::Value::Object(m)
    }
}

/// Writes the run's figures to `silver_dq_results` (one row per source and rule, plus a `*` row per
/// source with the totals). Returns false when the run read nothing.
pub async fn write_results(
    lake: &Lake,
    run_id: &str,
    run_at: DateTime<Utc>,
    figures: &RunFigures,
) -> Result<bool> {
    if figures.rows_in() == 0 {
        return Ok(false);
    }
    let mut b = RowsBuilder::new();
    for (source, f) in &figures.sources {
        let mut push = |rule: &str, severity: &str, action: &str, n: usize| {
            let rate = if f.records_in == 0 {
                None
            } else {
                Some(n as f64 / f.records_in as f64)
            };
            b.push_row([
                ("run_id", Cell::str(Some(run_id))),
                ("run_at", Cell::ts(Some(run_at))),
                ("source", Cell::str(Some(source.clone()))),
                ("rule_id", Cell::str(Some(rule))),
                ("severity", Cell::str(Some(severity))),
                ("action", Cell::str(Some(action))),
                ("records_in", Cell::Int(Some(f.records_in as i64))),
                ("records_valid", Cell::Int(Some(f.records_valid as i64))),
                ("findings", Cell::Int(Some(n as i64))),
                ("rate", Cell::F64(rate)),
            ]);
        };
        push(
            "*",
            "info",
            "count",
            f.records_in - f.records_valid.min(f.records_in),
        );
        for (rule, n) in &f.findings {
            let r = rules::by_id(rule);
            push(
                rule,
                r.map(|r| r.severity.as_str()).unwrap_or("info"),
                r.map(|r| r.action.as_str()).unwrap_or("count"),
                *n,
            );
        }
    }
    lake.append(DQ_RESULTS, vec![b.finish()?], &[], Default::default())
        .await?;
    Ok(true)
}

/// The data-quality report.
#[derive(Debug, Serialize)]
pub struct DqReport {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The run reported on (the latest by default).
    pub run_id: Option<String>,
    /// When it ran.
    pub run_at: Option<DateTime<Utc>>,
    /// Per source: records in, valid, pass rate, findings per rule.
    pub sources: Vec<SourceSummary>,
    /// The same figures for the earlier runs (newest first), for the trend.
    pub trend: Vec<TrendPoint>,
    /// Columns that appeared in the source tables, and attribute columns whose type was widened.
    pub schema_changes: Vec<SchemaChange>,
    /// Quarantine samples, PHI masked.
    pub samples: Vec<Sample>,
    /// The rule catalogue.
    pub rules: Vec<rules::Rule>,
}

/// One source's figures in a run.
#[derive(Debug, Serialize)]
pub struct SourceSummary {
    /// Source name.
    pub source: String,
    /// Records read.
    pub records_in: i64,
    /// Records that passed.
    pub records_valid: i64,
    /// valid / in.
    pub pass_rate: Option<f64>,
    /// Findings per rule: (rule, severity, action, count, rate).
    pub findings: Vec<RuleCount>,
}

/// One rule's count.
#[derive(Debug, Serialize)]
pub struct RuleCount {
    /// Rule id.
    pub rule_id: String,
    /// Severity.
    pub severity: String,
    /// Action.
    pub action: String,
    /// Findings.
    pub findings: i64,
    /// Findings per record read.
    pub rate: Option<f64>,
}

/// A run's pass rate per source, for the trend.
#[derive(Debug, Serialize)]
pub struct TrendPoint {
    /// Run id.
    pub run_id: String,
    /// When.
    pub run_at: Option<DateTime<Utc>>,
    /// Source.
    pub source: String,
    /// Records read.
    pub records_in: i64,
    /// Pass rate.
    pub pass_rate: Option<f64>,
}

/// A column seen for the first time, or widened.
#[derive(Debug, Serialize)]
pub struct SchemaChange {
    /// Table.
    pub table: String,
    /// Column.
    pub column: String,
    /// `added`, or `widened from long to double` (`DQ-SCHEMA-WIDENED`).
    pub change: String,
}

/// A quarantined record, PHI masked.
#[derive(Debug, Serialize)]
pub struct Sample {
    /// Rule.
    pub rule_id: String,
    /// Source table.
    pub source_table: String,
    /// Field.
    pub field: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// The raw value, masked.
    pub raw_value_masked: Option<String>,
    /// Lineage.
    pub source: Option<String>,
}

/// Masks a value for a report: keeps its shape (length, character classes, separators), hides content.
pub fn mask(value: &str) -> String {
    value
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            c if c.is_ascii_digit() => {
                if i == 0 {
                    c
                } else {
                    '9'
                }
            }
            c if c.is_alphabetic() => {
                if i == 0 {
                    c
                } else {
                    'x'
                }
            }
            c => c,
        })
        .collect()
}

/// Builds the report for a run (the latest when `run_id` is `None`).
pub async fn build(lake: &Lake, run_id: Option<&str>) -> Result<DqReport> {
    let mut report = DqReport {
        generated_at: Utc::now(),
        run_id: None,
        run_at: None,
        sources: Vec::new(),
        trend: Vec::new(),
        schema_changes: Vec::new(),
        samples: Vec::new(),
        rules: rules::ALL.to_vec(),
    };
    if lake.open_table(DQ_RESULTS).await?.is_none() {
        return Ok(report);
    }
    let runs = lake
        .sql(&[DQ_RESULTS], "SELECT run_id, MAX(run_at) AS run_at FROM silver_dq_results GROUP BY run_id ORDER BY run_at DESC")
        .await?;
    let mut run_list: Vec<(String, Option<DateTime<Utc>>)> = Vec::new();
    for b in &runs {
        let ids = strings(b, "run_id")?;
        let at = timestamps(b, "run_at")?;
        run_list.extend(
            ids.into_iter()
                .zip(at)
                .filter_map(|(i, t)| i.map(|i| (i, t))),
        );
    }
    let chosen = match run_id {
        Some(r) => run_list.iter().find(|(id, _)| id == r).cloned(),
        None => run_list.first().cloned(),
    };
    let Some((chosen_id, chosen_at)) = chosen else {
        return Ok(report);
    };
    report.run_id = Some(chosen_id.clone());
    report.run_at = chosen_at;
    let rows = lake
        .sql(
            &[DQ_RESULTS],
            "SELECT * FROM silver_dq_results ORDER BY run_at DESC, source, rule_id",
        )
        .await?;
    let mut per_source: BTreeMap<String, SourceSummary> = BTreeMap::new();
    for b in &rows {
        let run = strings(b, "run_id")?;
        let at = timestamps(b, "run_at")?;
        let source = strings(b, "source")?;
        let rule = strings(b, "rule_id")?;
        let severity = strings(b, "severity")?;
        let action = strings(b, "action")?;
        let records_in = ints(b, "records_in")?;
        let valid = ints(b, "records_valid")?;
        let findings = ints(b, "findings")?;
        let rate = floats(b, "rate")?;
        for i in 0..b.num_rows() {
            let src = source[i].clone().unwrap_or_default();
            let pass = match (records_in[i], valid[i]) {
                (Some(n), Some(v)) if n > 0 => Some(v as f64 / n as f64),
                _ => None,
            };
            if rule[i].as_deref() == Some("*") {
                report.trend.push(TrendPoint {
                    run_id: run[i].clone().unwrap_or_default(),
                    run_at: at[i],
                    source: src.clone(),
                    records_in: records_in[i].unwrap_or_default(),
                    pass_rate: pass,
                });
            }
            if run[i].as_deref() != Some(chosen_id.as_str()) {
                continue;
            }
            let entry = per_source
                .entry(src.clone())
                .or_insert_with(|| SourceSummary {
                    source: src.clone(),
                    records_in: records_in[i].unwrap_or_default(),
                    records_valid: valid[i].unwrap_or_default(),
                    pass_rate: pass,
                    findings: Vec::new(),
                });
            if rule[i].as_deref() != Some("*") {
                entry.findings.push(RuleCount {
                    rule_id: rule[i].clone().unwrap_or_default(),
                    severity: severity[i].clone().unwrap_or_default(),
                    action: action[i].clone().unwrap_or_default(),
                    findings: findings[i].unwrap_or_default(),
                    rate: rate[i],
                });
            }
        }
    }
    report.sources = per_source.into_values().collect();
    report.trend.truncate(60);
    report.schema_changes = schema_changes(lake).await?;
    if lake.open_table(QUARANTINE).await?.is_some() {
        let sql = format!(
            "SELECT rule_id, source_table, field, reason, raw_value, source_name FROM silver_quarantine \
             WHERE run_id = '{}' ORDER BY rule_id, quarantine_id LIMIT 200",
            chosen_id.replace('\'', "''")
        );
        let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
        for b in lake.sql(&[QUARANTINE], &sql).await? {
            let rule = strings(&b, "rule_id")?;
            let table = strings(&b, "source_table")?;
            let field = strings(&b, "field")?;
            let reason = strings(&b, "reason")?;
            let raw = strings(&b, "raw_value")?;
            let source = strings(&b, "source_name")?;
            for i in 0..b.num_rows() {
                let r = rule[i].clone().unwrap_or_default();
                let n = per_rule.entry(r.clone()).or_default();
                *n += 1;
                if *n > 3 {
                    continue;
                }
                report.samples.push(Sample {
                    rule_id: r,
                    source_table: table[i].clone().unwrap_or_default(),
                    field: field[i].clone(),
                    reason: reason[i].clone(),
                    raw_value_masked: raw[i].as_deref().map(mask),
                    source: source[i].clone(),
                });
            }
        }
    }
    Ok(report)
}

/// Source columns that are not part of the documented layouts: what schema evolution brought in.
async fn schema_changes(lake: &Lake) -> Result<Vec<SchemaChange>> {
    let documented = [
        "patient_id",
        "facility",
        "first_name",
        "last_name",
        "birth_date",
        "sex",
        "street",
        "city",
        "state",
        "zip",
        "updated_at",
        "encounter_id",
        "department",
        "patient_class",
        "arrival_time",
        "admit_time",
        "discharge_time",
    ];
    let mut out = Vec::new();
    for table in [crate::bronze::EHR_PATIENTS, crate::bronze::EHR_ENCOUNTERS] {
        let info = crate::serving::tables::describe(lake, table).await?;
        for c in info.columns {
            let name = c.split(':').next().unwrap_or_default().to_string();
            if !name.starts_with('_') && !documented.contains(&name.as_str()) {
                out.push(SchemaChange {
                    table: info.name.clone(),
                    column: name,
                    change: "added".into(),
                });
            }
        }
    }
    if lake.open_table(QUARANTINE).await?.is_some() {
        let sql = format!(
            "SELECT source_table, field, reason FROM silver_quarantine WHERE rule_id = '{}' \
             ORDER BY source_table, field",
            rules::SCHEMA_WIDENED.id
        );
        for b in lake.sql(&[QUARANTINE], &sql).await? {
            let table = strings(&b, "source_table")?;
            let field = strings(&b, "field")?;
            let reason = strings(&b, "reason")?;
            for i in 0..b.num_rows() {
                let column = field[i].clone().unwrap_or_default();
                let change = reason[i]
                    .as_deref()
                    .and_then(|r| r.split_once(" widened "))
                    .map(|(_, how)| format!("widened {how}"))
                    .unwrap_or_else(|| "widened".into());
                out.push(SchemaChange {
                    table: table[i].clone().unwrap_or_default(),
                    column,
                    change,
                });
            }
        }
    }
    Ok(out)
}

/// Renders the report as a self-contained HTML page.
pub fn to_html(r: &DqReport) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.2} %", v * 100.0))
            .unwrap_or_else(|| "–".into())
    };
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>patientflow data-quality report</title>\
         <style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1.5rem}\
         td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}th{background:#f2f4f7}.error{color:#b00020}.warn{color:#a15c00}\
         .num{text-align:right}</style></head><body>",
    );
    h.push_str("<h1>Data-quality report</h1>");
    h.push_str(&format!(
        "<p>Run <b>{}</b> at {} · generated {}</p>",
        esc(r.run_id.as_deref().unwrap_or("none")),
        r.run_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        r.generated_at.to_rfc3339()
    ));
    h.push_str("<h2>Sources</h2><table><tr><th>source</th><th>records in</th><th>valid</th><th>pass rate</th></tr>");
    for s in &r.sources {
        h.push_str(&format!(
            "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&s.source),
            s.records_in,
            s.records_valid,
            pct(s.pass_rate)
        ));
    }
    h.push_str("</table><h2>Findings by rule</h2><table><tr><th>source</th><th>rule</th><th>severity</th><th>action</th><th>findings</th><th>rate</th></tr>");
    for s in &r.sources {
        for f in &s.findings {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class={}>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
                esc(&s.source), esc(&f.rule_id), esc(&f.severity), esc(&f.severity), esc(&f.action), f.findings, pct(f.rate)
            ));
        }
    }
    h.push_str("</table><h2>Trend</h2><table><tr><th>run</th><th>at</th><th>source</th><th>records in</th><th>pass rate</th></tr>");
    for t in &r.trend {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&t.run_id),
            t.run_at.map(|x| x.to_rfc3339()).unwrap_or_default(),
            esc(&t.source),
            t.records_in,
            pct(t.pass_rate)
        ));
    }
    h.push_str("</table><h2>Schema changes seen</h2><ul>");
    for c in &r.schema_changes {
        h.push_str(&format!(
            "<li>{}.{}: {}</li>",
            esc(&c.table),
            esc(&c.column),
            esc(&c.change)
        ));
    }
    h.push_str("</ul><h2>Samples (PHI masked)</h2><table><tr><th>rule</th><th>table</th><th>field</th><th>reason</th><th>value</th></tr>");
    for s in &r.samples {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&s.rule_id),
            esc(&s.source_table),
            esc(s.field.as_deref().unwrap_or("")),
            esc(s.reason.as_deref().unwrap_or("")),
            esc(s.raw_value_masked.as_deref().unwrap_or(""))
        ));
    }
    h.push_str("</table><h2>Rules</h2><table><tr><th>id</th><th>severity</th><th>action</th><th>description</th></tr>");
    for rule in &r.rules {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rule.id,
            rule.severity.as_str(),
            rule.action.as_str(),
            esc(rule.description)
        ));
    }
    h.push_str("</table></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_shape_but_not_content() {
        assert_eq!(mask("1900-01-01"), "1999-99-99");
        assert_eq!(mask("Doe^Jane"), "Dxx^xxxx");
    }
}
