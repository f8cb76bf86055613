//! Scoring the data-quality rules against a ground-truth manifest of injected defects (the
//! simulator's `truth/manifest.jsonl`): recall per defect class (was every injected defect found by
//! the rule that answers it, or handled by the structure that answers it), precision per rule (of a
//! rule's findings, how many are on records that really carry its defect), and the clean records
//! that were quarantined or lost an attribute — which must be none.
//!
//! Records are matched by key: an ADT message by its message id (the quarantine and Silver keys are
//! `<facility>|<message id>`), a CSV row by `<file name>:<row>`. A malformed message may have lost its
//! id; those are matched by count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::storage::columns::{ints, strings};
use crate::storage::Lake;
use crate::Result;

/// One line of a defect manifest (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestLine {
    /// `adt`, `ehr_patients`, `ehr_encounters` or `departments`.
    pub source: String,
    /// Message id, or `<file name>:<row>`.
    pub record_key: String,
    /// Defect class id.
    pub defect: String,
    /// Field touched.
    #[serde(default)]
    pub field: Option<String>,
    /// The message id of a corrected re-send of this record, when one was sent.
    #[serde(default)]
    pub corrected_by: Option<String>,
}

/// Why a manifest could not be read: the line and the parse error.
#[derive(Debug, thiserror::Error)]
#[error("manifest line {line}: {source}")]
pub struct ManifestError {
    /// 1-based line number.
    pub line: usize,
    /// The JSON error.
    pub source: serde_json::Error,
}

/// Reads a manifest in JSON Lines (blank lines are skipped).
pub fn read_manifest(text: &str) -> std::result::Result<Vec<ManifestLine>, ManifestError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| ManifestError {
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Each defect class answered by a finding on the record, with the rules that answer it.
const CLASS_RULES: [(&str, &[&str]); 11] = [
    ("missing_admit_time", &["DQ-ADMIT-TIME-MISSING"]),
    // A wrong birth date may also be impossible (an infant's, moved by a year) or a placeholder:
    // those rules catch it first, and it is left out all the same.
    (
        "conflicting_identity",
        &[
            "DQ-PAT-IDENTITY-CONFLICT",
            "DQ-PAT-AGE-IMPOSSIBLE",
            "DQ-TIME-PLACEHOLDER",
        ],
    ),
    (
        "discharge_before_admit",
        &["DQ-TIME-DISCHARGE-BEFORE-ADMIT"],
    ),
    ("future_timestamp", &["DQ-TIME-FUTURE"]),
    ("placeholder_date", &["DQ-TIME-PLACEHOLDER"]),
    ("mixed_timestamp_format", &["DQ-TIME-FORMAT"]),
    // A time in a DST gap or overlap gets its own rule instead of the generic one.
    (
        "local_time_without_offset",
        &[
            "DQ-TIME-NO-OFFSET",
            "DQ-TIME-LOCAL-NONEXISTENT",
            "DQ-TIME-LOCAL-AMBIGUOUS",
        ],
    ),
    ("unknown_department", &["DQ-DEPT-UNKNOWN"]),
    ("invalid_sex_code", &["DQ-PAT-SEX-INVALID"]),
    // An impossible birth date may also be a placeholder date (1899-12-30): left out either way.
    (
        "impossible_age",
        &["DQ-PAT-AGE-IMPOSSIBLE", "DQ-TIME-PLACEHOLDER"],
    ),
    ("malformed_hl7", &["DQ-ADT-MALFORMED"]),
];

/// The rules that answer a defect class by a finding on the record; `None` for the classes answered
/// by structure (Bronze deduplication, event-time replay).
pub fn rules_for(class: &str) -> Option<&'static [&'static str]> {
    CLASS_RULES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, rules)| *rules)
}

/// Recall of one defect class at one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassScore {
    /// Defect class id.
    pub class: String,
    /// Source.
    pub source: String,
    /// Injected defects.
    pub injected: usize,
    /// Found by their rule, or handled by structure.
    pub detected: usize,
    /// Up to ten record keys that were missed.
    pub missed: Vec<String>,
}

impl ClassScore {
    /// detected / injected.
    pub fn recall(&self) -> f64 {
        if self.injected == 0 {
            1.0
        } else {
            self.detected as f64 / self.injected as f64
        }
    }
}

/// Precision of one rule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleScore {
    /// Rule id.
    pub rule: String,
    /// Records with a finding of the rule.
    pub records: usize,
    /// Of those, records the manifest lists as defective (any class): the finding is not on a clean
    /// record. A repair can follow from another defect of the record (a future PV1-44 left out makes
    /// the admission a guessed repair; a time in another format also lacks its offset).
    pub true_positives: usize,
    /// Of those, records the manifest marks with a class the rule answers.
    pub own_class: usize,
}

impl RuleScore {
    /// true positives / records.
    pub fn precision(&self) -> f64 {
        if self.records == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.records as f64
        }
    }
}

/// The whole score.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// Recall per (class, source).
    pub classes: Vec<ClassScore>,
    /// Precision per rule that answers a class.
    pub rules: Vec<RuleScore>,
    /// Source records in Bronze (ADT messages, EHR rows).
    pub records: usize,
    /// Records the manifest lists.
    pub defective_records: usize,
    /// Clean records (not in the manifest) quarantined or with an attribute left out.
    pub clean_flagged: usize,
    /// Up to twenty of them: `record key: rule (action)`.
    pub clean_flagged_samples: Vec<String>,
}

impl Score {
    /// Injected defects over every class.
    pub fn injected(&self) -> usize {
        self.classes.iter().map(|c| c.injected).sum()
    }

    /// Detected defects over every class.
    pub fn detected(&self) -> usize {
        self.classes.iter().map(|c| c.detected).sum()
    }

    /// A plain-text table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{:<28} {:<15} {:>8} {:>8} {:>9}\n",
            "class", "source", "injected", "detected", "recall"
        );
        for c in &self.classes {
            s.push_str(&format!(
                "{:<28} {:<15} {:>8} {:>8} {:>8.2}%\n",
                c.class,
                c.source,
                c.injected,
                c.detected,
                c.recall() * 100.0
            ));
        }
        s.push_str(&format!(
            "\n{:<32} {:>8} {:>9} {:>10} {:>10}\n",
            "rule", "records", "defective", "own class", "precision"
        ));
        for r in &self.rules {
            s.push_str(&format!(
                "{:<32} {:>8} {:>9} {:>10} {:>9.2}%\n",
                r.rule,
                r.records,
                r.true_positives,
                r.own_class,
                r.precision() * 100.0
            ));
        }
        s.push_str(&format!(
            "\nrecall {}/{} ({:.2} %); {} records, {} in the manifest; clean records quarantined or \
             with an attribute left out: {}\n",
            self.detected(),
            self.injected(),
            if self.injected() == 0 {
                100.0
            } else {
                self.detected() as f64 * 100.0 / self.injected() as f64
            },
            self.records,
            self.defective_records,
            self.clean_flagged
        ));
        for f in &self.clean_flagged_samples {
            s.push_str(&format!("  clean record flagged: {f}\n"));
        }
        s
    }
}

/// The record a quarantine row is about, in the manifest's key space.
fn record_of(source_table: &str, source_key: &str) -> String {
    if source_table.ends_with("adt_messages") || source_table.ends_with("adt_events") {
        // `<facility>|<id>`, or `<facility>|<id>@<hash>` for a message reusing an id.
        let id = source_key.rsplit('|').next().unwrap_or(source_key);
        id.split('@').next().unwrap_or(id).to_string()
    } else {
        source_key
            .rsplit('/')
            .next()
            .unwrap_or(source_key)
            .to_string()
    }
}

/// Scores the lake's findings against `manifest`.
pub async fn score(lake: &Lake, manifest: &[ManifestLine]) -> Result<Score> {
    use crate::{bronze, silver};
    // Findings per record.
    let mut rules_on: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut flagged: HashMap<String, String> = HashMap::new();
    let mut anonymous_malformed = 0usize;
    if lake.open_table(silver::QUARANTINE).await?.is_some() {
        for b in lake
            .sql(
                &[silver::QUARANTINE],
                "SELECT source_table, source_key, rule_id, action FROM silver_quarantine",
            )
            .await?
        {
            let table = strings(&b, "source_table")?;
            let key = strings(&b, "source_key")?;
            let rule = strings(&b, "rule_id")?;
            let action = strings(&b, "action")?;
            for i in 0..b.num_rows() {
                let (Some(t), Some(k), Some(r)) = (&table[i], &key[i], &rule[i]) else {
                    continue;
                };
                if k.starts_with("sha256:") {
                    if r == "DQ-ADT-MALFORMED" {
                        anonymous_malformed += 1;
                    }
                    continue;
                }
                let record = record_of(t, k);
                rules_on
                    .entry(record.clone())
                    .or_default()
                    .insert(r.clone());
                if matches!(action[i].as_deref(), Some("quarantine" | "drop_attribute")) {
                    flagged
                        .entry(record)
                        .or_insert_with(|| format!("{r} ({})", action[i].as_deref().unwrap_or("")));
                }
            }
        }
    }
    // What Silver applied, and how often Bronze holds each message.
    let mut applied: HashSet<String> = HashSet::new();
    if lake.open_table(silver::ADT_EVENTS).await?.is_some() {
        for b in lake
            .sql(
                &[silver::ADT_EVENTS],
                "SELECT message_id FROM silver_adt_events",
            )
            .await?
        {
            applied.extend(strings(&b, "message_id")?.into_iter().flatten());
        }
    }
    let mut records = 0usize;
    let mut in_bronze: HashMap<String, i64> = HashMap::new();
    if lake.open_table(bronze::ADT_MESSAGES).await?.is_some() {
        for b in lake
            .sql(
                &[bronze::ADT_MESSAGES],
                "SELECT message_key, count(*) AS n FROM bronze_adt_messages GROUP BY message_key",
            )
            .await?
        {
            let key = strings(&b, "message_key")?;
            let n = ints(&b, "n")?;
            for i in 0..b.num_rows() {
                let k = key[i].clone().unwrap_or_default();
                records += n[i].unwrap_or_default() as usize;
                in_bronze.insert(record_of("adt_messages", &k), n[i].unwrap_or_default());
            }
        }
    }
    // EHR rows per source file name (a re-delivered file must add none).
    let mut rows_from: HashMap<String, i64> = HashMap::new();
    for table in [bronze::EHR_PATIENTS, bronze::EHR_ENCOUNTERS] {
        if lake.open_table(table).await?.is_none() {
            continue;
        }
        let sql = format!(
            "SELECT _source_file, count(*) AS n FROM {} GROUP BY _source_file",
            table.sql_name()
        );
        for b in lake.sql(&[table], &sql).await? {
            let file = strings(&b, "_source_file")?;
            let n = ints(&b, "n")?;
            for i in 0..b.num_rows() {
                let f = file[i].clone().unwrap_or_default();
                let name = f.rsplit('/').next().unwrap_or(&f).to_string();
                records += n[i].unwrap_or_default() as usize;
                *rows_from.entry(name).or_default() += n[i].unwrap_or_default();
            }
        }
    }

    let malformed_ids: HashSet<&str> = manifest
        .iter()
        .filter(|m| m.defect == "malformed_hl7")
        .map(|m| m.record_key.as_str())
        .collect();
    let mut classes: BTreeMap<(String, String), ClassScore> = BTreeMap::new();
    let mut unmatched_malformed: Vec<(String, String)> = Vec::new();
    for m in manifest {
        let found = rules_on.get(&m.record_key);
        let detected = match rules_for(&m.defect) {
            Some(rules) => {
                let hit = found.is_some_and(|f| rules.iter().any(|r| f.contains(*r)));
                if !hit && m.defect == "malformed_hl7" {
                    unmatched_malformed.push((m.source.clone(), m.record_key.clone()));
                    continue;
                }
                hit
            }
            // Structural classes: the record is neither lost nor doubled.
            None => match m.source.as_str() {
                "adt" => {
                    malformed_ids.contains(m.record_key.as_str())
                        || (in_bronze.get(&m.record_key) == Some(&1)
                            && (applied.contains(&m.record_key) || found.is_some()))
                }
                "ehr_patients" | "ehr_encounters" => {
                    let file = m.record_key.rsplit_once(':').map_or("", |(f, _)| f);
                    m.defect != "duplicate_delivery" || !rows_from.contains_key(file)
                }
                _ => !flagged.contains_key(&m.record_key),
            },
        };
        let c = classes
            .entry((m.defect.clone(), m.source.clone()))
            .or_insert_with(|| ClassScore {
                class: m.defect.clone(),
                source: m.source.clone(),
                ..ClassScore::default()
            });
        c.injected += 1;
        if detected {
            c.detected += 1;
        } else if c.missed.len() < 10 {
            c.missed.push(m.record_key.clone());
        }
    }
    // Malformed messages without a usable id: matched by count.
    let mut left = anonymous_malformed;
    for (source, key) in unmatched_malformed {
        let c = classes
            .entry(("malformed_hl7".into(), source.clone()))
            .or_insert_with(|| ClassScore {
                class: "malformed_hl7".into(),
                source,
                ..ClassScore::default()
            });
        c.injected += 1;
        if left > 0 {
            left -= 1;
            c.detected += 1;
        } else if c.missed.len() < 10 {
            c.missed.push(key);
        }
    }

    // Precision per rule, over the records that carry its findings.
    let mut classes_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for m in manifest {
        classes_of
            .entry(m.record_key.as_str())
            .or_default()
            .insert(m.defect.as_str());
    }
    let mut rules: BTreeMap<&str, RuleScore> = BTreeMap::new();
    for (record, found) in &rules_on {
        for r in found {
            let answering: Vec<&str> = classes_of
                .get(record.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|c| rules_for(c).is_some_and(|rs| rs.contains(&r.as_str())))
                .collect();
            let Some(score) = rules_for_rule(r) else {
                continue;
            };
            let e = rules.entry(score).or_insert_with(|| RuleScore {
                rule: score.to_string(),
                ..RuleScore::default()
            });
            e.records += 1;
            if classes_of.contains_key(record.as_str()) {
                e.true_positives += 1;
            }
            if !answering.is_empty() {
                e.own_class += 1;
            }
        }
    }

    let defective: HashSet<&str> = manifest.iter().map(|m| m.record_key.as_str()).collect();
    let mut clean: Vec<String> = flagged
        .iter()
        .filter(|(r, _)| !defective.contains(r.as_str()))
        .map(|(r, why)| format!("{r}: {why}"))
        .collect();
    clean.sort();
    Ok(Score {
        classes: classes.into_values().collect(),
        rules: rules.into_values().collect(),
        records,
        defective_records: defective.len(),
        clean_flagged: clean.len(),
        clean_flagged_samples: clean.into_iter().take(20).collect(),
    })
}

/// The rule id as a `'static` str when some defect class is answered by it.
fn rules_for_rule(rule: &str) -> Option<&'static str> {
    CLASS_RULES
        .iter()
        .flat_map(|(_, rules)| rules.iter())
        .find(|r| **r == rule)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_matched_across_key_spaces() {
        assert_eq!(
            record_of("bronze_adt_messages", "MHA01|MHA01-000000012"),
            "MHA01-000000012"
        );
        assert_eq!(
            record_of(
                "bronze_adt_messages",
                "MHA01|MHA01-000000012@0123456789abcdef"
            ),
            "MHA01-000000012"
        );
        assert_eq!(
            record_of(
                "bronze_ehr_patients",
                "/data/ehr/2026-01-02/patients_2026-01-02.csv:17"
            ),
            "patients_2026-01-02.csv:17"
        );
    }

    #[test]
    fn manifests_parse_with_unknown_fields_and_scores_divide_safely() {
        let m = read_manifest(
            "{\"source\":\"adt\",\"record_key\":\"A-1\",\"defect\":\"invalid_sex_code\",\"field\":\"patient.sex\",\"clean_value\":\"F\",\"note\":null}\n\n",
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].defect, "invalid_sex_code");
        let bad = read_manifest(
            "{\"source\":\"adt\",\"record_key\":\"A-1\",\"defect\":\"x\"}\n\n{not json\n",
        )
        .unwrap_err();
        assert_eq!(bad.line, 3, "{bad}");
        assert!(bad.to_string().starts_with("manifest line 3:"), "{bad}");
        assert!(m[0].corrected_by.is_none());
        let c = ClassScore {
            injected: 4,
            detected: 3,
            ..ClassScore::default()
        };
        assert_eq!(c.recall(), 0.75);
        assert_eq!(ClassScore::default().recall(), 1.0);
        assert_eq!(
            rules_for_rule("DQ-TIME-LOCAL-AMBIGUOUS"),
            Some("DQ-TIME-LOCAL-AMBIGUOUS")
        );
        assert_eq!(rules_for_rule("DQ-ADT-NOT-APPLIED"), None);
    }
}
