//! Rule `DQ-PAT-IDENTITY-CONFLICT`: which of a patient's records may state who the patient is.
//!
//! HL7 sends a change of name, birth date or sex as an A08 (update patient information); every other
//! record (an encounter message, an EHR extract row) only repeats the identity the patient has. A
//! non-update record that states another identity is therefore a sign of a duplicate or reused MRN,
//! and its identity attributes are left out of the dimension — its movements are always applied, they
//! are decided elsewhere. The decision is a pure function of all the patient's records, taken in
//! event-time order, so it is re-taken (and earlier findings withdrawn) whenever records arrive late or
//! out of order:
//!
//! 1. **Corrected re-sends.** Several ADT records of the same visit, trigger and event time describe
//!    one event: the last recorded one (the sender's correction) stands; an earlier one stating another
//!    identity is a finding.
//! 2. **Segments.** For each identity attribute, the records up to the next A08 that carries it form a
//!    segment. A segment that starts with an A08 has that A08's value; the segment before the first A08
//!    has the value most of its records agree on (a tie goes to the value the next A08 confirms, else to
//!    the one the ADT feed states — the registration system is the system of record for identity —
//!    else to the earliest).
//! 3. **Announced values.** A record whose value differs from its segment's but equals the value the
//!    next A08 sets, and that was recorded at or after that A08's event time, was written after the
//!    change and merely carries it early in event time ("late recorded time"): it is consistent, not a
//!    conflict; the change itself takes effect at the A08.
//! 4. Any other disagreement is a conflict: the record's identity attributes are left out, and a
//!    finding names the attributes, the record and its lineage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::dq::{rules, Finding};
use super::quarantine::QuarantineRow;
use super::scd2::Observation;

/// Attributes that identify a person; a change outside an A08 update is a conflict.
pub const IDENTITY: [&str; 4] = ["family_name", "given_name", "birth_date", "sex"];

/// One record of a patient, as the identity rule sees it.
#[derive(Debug, Clone)]
pub struct Obs {
    /// The attributes it states, at its event time.
    pub observation: Observation,
    /// `A08`, another ADT trigger, or `EHR`.
    pub kind: String,
    /// The encounter an ADT record belongs to (re-sends are told by visit, trigger and event time).
    pub encounter: Option<String>,
    /// When the source recorded it (ADT MSH-7/EVN-2; an EHR row's `updated_at`).
    pub recorded: Option<DateTime<Utc>>,
    /// Lineage: the Silver table and key of the record.
    pub source_table: &'static str,
    /// The record's key in that table.
    pub source_key: String,
    /// Lineage: the file or Event Hub the record came from.
    pub source_name: Option<String>,
    /// Lineage: its position there (message number, row, offset).
    pub source_position: Option<i64>,
}

impl Obs {
    fn is_update(&self) -> bool {
        self.kind == "A08"
    }
}

/// Decides the identity attributes of one patient's records: removes those of conflicting records
/// (pushing one finding per such record to `findings`) and those that only announce an A08's change
/// early; returns the observations to build the history from, in event-time order.
pub fn resolve(obs: &mut [Obs], findings: &mut Vec<QuarantineRow>) -> Vec<Observation> {
    // At the same instant an A08 comes first: the records written with it already carry its change.
    obs.sort_by(|a, b| {
        let key = |o: &Obs| (o.observation.effective, !o.is_update());
        (key(a), &a.observation.sequence).cmp(&(key(b), &b.observation.sequence))
    });
    let mut conflicts: Vec<Vec<&str>> = vec![Vec::new(); obs.len()];
    let mut drop: Vec<Vec<&str>> = vec![Vec::new(); obs.len()];
    let mut reasons: Vec<Option<String>> = vec![None; obs.len()];

    // 1. Corrected re-sends: the last recorded record of a (visit, trigger, event time) stands.
    let mut events: BTreeMap<(&str, &str, DateTime<Utc>), Vec<usize>> = BTreeMap::new();
    for (i, o) in obs.iter().enumerate() {
        if let Some(enc) = o.encounter.as_deref() {
            events
                .entry((enc, o.kind.as_str(), o.observation.effective))
                .or_default()
                .push(i);
        }
    }
    let mut superseded = vec![false; obs.len()];
    for group in events.values().filter(|g| g.len() > 1) {
        let Some(&last) = group.iter().max_by(|&&a, &&b| {
            obs[a]
                .observation
                .sequence
                .cmp(&obs[b].observation.sequence)
        }) else {
            continue;
        };
        for &i in group.iter().filter(|&&i| i != last) {
            superseded[i] = true;
            for attr in IDENTITY {
                let (mine, theirs) = (
                    obs[i].observation.attrs.get(attr),
                    obs[last].observation.attrs.get(attr),
                );
                if mine.is_some() {
                    drop[i].push(attr);
                }
                if matches!((mine, theirs), (Some(a), Some(b)) if a != b) {
                    conflicts[i].push(attr);
                    reasons[i] = Some(format!(
                        "superseded by the re-send {}",
                        obs[last].source_key
                    ));
                }
            }
        }
    }

    // 2–4. Segments between the A08s that set each attribute.
    let live = |i: usize| !superseded[i];
    for attr in IDENTITY {
        let mut start = 0;
        while start < obs.len() {
            let end = (start + 1..obs.len())
                .find(|&i| {
                    live(i) && obs[i].is_update() && obs[i].observation.attrs.contains_key(attr)
                })
                .unwrap_or(obs.len());
            let next = obs.get(end);
            let next_value = next.and_then(|n| n.observation.attrs.get(attr));
            // Written after the next A08's change: carries its value early in event time.
            let announces = |o: &Obs| {
                next.is_some_and(|n| {
                    o.recorded.is_some_and(|r| r >= n.observation.effective)
                        && o.observation.attrs.get(attr) == next_value
                })
            };
            let segment: Vec<usize> = (start..end).filter(|&i| live(i)).collect();
            let reference = match segment.first() {
                Some(&first) if start == first && obs[first].is_update() => {
                    obs[first].observation.attrs.get(attr).cloned()
                }
                _ => consensus(
                    segment
                        .iter()
                        .filter(|&&i| !announces(&obs[i]))
                        .filter_map(|&i| {
                            let o = &obs[i];
                            o.observation.attrs.get(attr).map(|v| (v, o.kind != "EHR"))
                        }),
                    next_value,
                ),
            };
            if let Some(reference) = reference {
                for &i in &segment {
                    let o = &obs[i];
                    let Some(v) = o.observation.attrs.get(attr) else {
                        continue;
                    };
                    if o.is_update() || *v == reference {
                        continue;
                    }
                    drop[i].push(attr);
                    if !announces(o) {
                        conflicts[i].push(attr);
                    }
                }
            }
            start = end;
        }
    }

    let mut accepted = Vec::with_capacity(obs.len());
    for (i, o) in obs.iter().enumerate() {
        let mut observation = o.observation.clone();
        if !conflicts[i].is_empty() {
            // A record in doubt states no identity at all: its name may belong to another person too.
            for a in IDENTITY {
                observation.attrs.remove(a);
            }
            conflicts[i].sort_unstable();
            conflicts[i].dedup();
            let attrs = conflicts[i].join(", ");
            findings.push(QuarantineRow {
                source_table: o.source_table.to_string(),
                source_key: o.source_key.clone(),
                finding: Finding::new(
                    &rules::PAT_IDENTITY_CONFLICT,
                    Some(&conflicts[i].join(",")),
                    match &reasons[i] {
                        Some(r) => format!("{attrs} differs from the patient's identity: {r}"),
                        None => format!(
                            "{attrs} differs from the patient's identity outside an A08 update"
                        ),
                    },
                    None,
                ),
                action: "drop_attribute",
                raw_record: None,
                source_name: o.source_name.clone(),
                source_position: o.source_position,
            });
        } else {
            for a in &drop[i] {
                observation.attrs.remove(*a);
            }
        }
        accepted.push(observation);
    }
    accepted
}

/// The most frequent value. Among equally frequent ones: `preferred` (the value the next A08 sets)
/// if it is one of them, else one the ADT feed states (the registration system is the system of
/// record for who a patient is; an extract copies it), else the earliest. `None` for no value.
/// Values come with whether an ADT message states them.
fn consensus<'a>(
    values: impl Iterator<Item = (&'a String, bool)>,
    preferred: Option<&String>,
) -> Option<String> {
    // (value, count, stated by ADT)
    let mut counts: Vec<(&String, usize, bool)> = Vec::new();
    for (v, adt) in values {
        match counts.iter_mut().find(|(c, _, _)| *c == v) {
            Some((_, n, a)) => {
                *n += 1;
                *a |= adt;
            }
            None => counts.push((v, 1, adt)),
        }
    }
    let best = counts.iter().map(|(_, n, _)| *n).max()?;
    let tied = || counts.iter().filter(|(_, n, _)| *n == best);
    tied()
        .find(|(v, _, _)| Some(*v) == preferred)
        .or_else(|| tied().find(|(_, _, adt)| *adt))
        .or_else(|| tied().next())
        .map(|(v, _, _)| (*v).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
    }

    fn obs(hour: u32, kind: &str, key: &str, given: &str, birth: &str) -> Obs {
        Obs {
            observation: Observation {
                key: "H|P1".into(),
                effective: at(hour),
                sequence: key.into(),
                attrs: [("given_name", given), ("birth_date", birth)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            kind: kind.into(),
            encounter: (kind != "EHR").then(|| "H|V1".to_string()),
            recorded: Some(at(hour)),
            source_table: "silver_adt_events",
            source_key: key.into(),
            source_name: Some("adt/H.hl7".into()),
            source_position: Some(hour as i64),
        }
    }

    fn flagged(mut all: Vec<Obs>) -> Vec<String> {
        let mut findings = Vec::new();
        resolve(&mut all, &mut findings);
        findings.into_iter().map(|f| f.source_key).collect()
    }

    #[test]
    fn a_conflicting_first_record_is_caught_not_the_later_true_ones() {
        let got = flagged(vec![
            obs(1, "EHR", "m1", "Marie", "1936-02-03"),
            obs(2, "A04", "m2", "Marie", "1937-02-04"),
            obs(3, "A03", "m3", "Marie", "1937-02-04"),
        ]);
        assert_eq!(got, vec!["m1"]);
    }

    #[test]
    fn an_a08_changes_identity_and_records_at_its_instant_follow_it() {
        let got = flagged(vec![
            obs(1, "A04", "m1", "Marie", "1969-06-24"),
            obs(2, "A08", "m2", "Christina", "1969-06-24"),
            // Same instant as the A08, sorted before it by key: still after the change.
            obs(2, "EHR", "a-row", "Christina", "1969-06-24"),
            obs(3, "A03", "m3", "Marie", "1969-06-24"),
        ]);
        assert_eq!(
            got,
            vec!["m3"],
            "the old name after the A08 is the conflict"
        );
    }

    #[test]
    fn a_tie_before_the_first_a08_goes_to_the_value_the_a08_confirms() {
        let got = flagged(vec![
            obs(1, "EHR", "a", "Donald", "1936-02-03"),
            obs(1, "A04", "b", "Donald", "1937-02-04"),
            obs(5, "A08", "c", "Jose", "1937-02-04"),
        ]);
        assert_eq!(got, vec!["a"]);
    }

    #[test]
    fn a_tie_between_the_feed_and_the_extract_goes_to_the_feed() {
        // One A04 and one extract row at the same instant disagree on the birth date.
        let got = flagged(vec![
            obs(1, "EHR", "row", "Karen", "1991-06-09"),
            obs(1, "A04", "m1", "Karen", "1991-09-06"),
        ]);
        assert_eq!(got, vec!["row"]);
    }

    #[test]
    fn a_record_written_after_the_change_but_stamped_before_its_a08_is_consistent() {
        // The A02 happened at 03:00 but was recorded at 05:30, after the name change of 05:00.
        let mut late = obs(3, "A02", "m2", "Christina", "1969-06-24");
        late.recorded = Some(at(5) + chrono::Duration::minutes(30));
        let mut all = vec![
            obs(1, "A04", "m1", "Marie", "1969-06-24"),
            late,
            obs(5, "A08", "m3", "Christina", "1969-06-24"),
            obs(6, "A03", "m4", "Christina", "1969-06-24"),
        ];
        let mut findings = Vec::new();
        let accepted = resolve(&mut all, &mut findings);
        assert!(findings.is_empty(), "{findings:?}");
        // The change takes effect at the A08, not at the early-stamped record.
        let a02 = accepted.iter().find(|o| o.sequence == "m2").unwrap();
        assert!(!a02.attrs.contains_key("given_name"));
        assert_eq!(a02.attrs["birth_date"], "1969-06-24");
    }

    #[test]
    fn the_same_new_name_recorded_before_the_change_is_still_a_conflict() {
        // Recorded at 03:00, before the A08 of 05:00 existed: it cannot know the new name.
        let got = flagged(vec![
            obs(1, "A04", "m1", "Marie", "1969-06-24"),
            obs(2, "A02", "m1b", "Marie", "1969-06-24"),
            obs(3, "A02", "m2", "Christina", "1969-06-24"),
            obs(5, "A08", "m3", "Christina", "1969-06-24"),
        ]);
        assert_eq!(got, vec!["m2"]);
    }

    #[test]
    fn a_corrected_re_send_wins_over_the_original_even_when_it_is_the_first_record() {
        // The original A04 gave a wrong birth date; the re-send (same visit, trigger, time) fixed it.
        let mut fixed = obs(1, "A04", "m1-resend", "Marie", "1937-02-04");
        fixed.observation.sequence = "z".into();
        let mut all = vec![
            obs(1, "A04", "m1", "Marie", "1936-02-03"),
            fixed,
            obs(4, "A03", "m3", "Marie", "1937-02-04"),
        ];
        let mut findings = Vec::new();
        let accepted = resolve(&mut all, &mut findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].source_key, "m1");
        assert!(findings[0].finding.reason.contains("re-send m1-resend"));
        assert_eq!(findings[0].source_name.as_deref(), Some("adt/H.hl7"));
        assert_eq!(findings[0].source_position, Some(1));
        assert!(accepted
            .iter()
            .filter(|o| o.attrs.contains_key("birth_date"))
            .all(|o| o.attrs["birth_date"] == "1937-02-04"));
    }
}
