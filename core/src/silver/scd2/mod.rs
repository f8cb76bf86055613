//! Slowly Changing Dimension Type 2, sequenced by event time.
//!
//! A dimension's history for one natural key is a pure function of every observation of that key:
//! observations are ordered by event time (ties broken by a stable sequence key such as the recorded
//! time and message id), each one overlays the attributes it carries on the state before it (an absent
//! attribute keeps its value — partial updates are not deletions), and a new version starts whenever the
//! state changes. Rebuilding a key's history from all of its observations is what makes late and
//! out-of-order changes land in the right place: a late change splits the interval it falls in, an
//! unchanged or re-delivered observation makes no version, and several changes in one batch are all kept
//! in event-time order. This mirrors Databricks' AUTO CDC (`SEQUENCE BY` event time) rather than a
//! snapshot diff, which cannot place late changes.
//!
//! Invariants (tested by property tests below): exactly one current version per key; versions are
//! contiguous (each `valid_to` is the next `valid_from`), never overlap and leave no gaps; two consecutive
//! versions never carry identical attributes; the surrogate key of a version depends only on the natural
//! key and `valid_from`, so it is stable across rebuilds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// One observation of a key's tracked attributes, as of an event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Natural key (e.g. `MHA01|MHA01-P0001234`).
    pub key: String,
    /// When the attributes became true (event time, UTC).
    pub effective: DateTime<Utc>,
    /// Orders observations with the same `effective` time (e.g. recorded time + message id).
    pub sequence: String,
    /// The attributes this observation states; attributes it does not mention keep their value.
    pub attrs: BTreeMap<String, String>,
}

/// One version of a key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Natural key.
    pub key: String,
    /// Stable surrogate key of this version: a function of the natural key and `valid_from`.
    pub surrogate_key: i64,
    /// Start of validity (inclusive).
    pub valid_from: DateTime<Utc>,
    /// End of validity (exclusive); `None` for the current version.
    pub valid_to: Option<DateTime<Utc>>,
    /// The attributes during the interval.
    pub attrs: BTreeMap<String, String>,
    /// The `sequence` of the observation that started the version (lineage).
    pub started_by: String,
}

impl Version {
    /// True for the open (current) version.
    pub fn is_current(&self) -> bool {
        self.valid_to.is_none()
    }

    /// `active` for the current version, `inactive` for history, as the customer's model names it.
    pub fn status(&self) -> &'static str {
        if self.is_current() {
            "active"
        } else {
            "inactive"
        }
    }
}

/// Stable 63-bit surrogate key for (natural key, valid_from).
pub fn surrogate_key(key: &str, valid_from: DateTime<Utc>) -> i64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(key.as_bytes());
    h.update(valid_from.timestamp_micros().to_le_bytes());
    let d = h.finalize();
    let bytes: [u8; 8] = d[..8].try_into().unwrap_or_default();
    (u64::from_le_bytes(bytes) >> 1) as i64
}

/// Builds the full history of one key from all its observations (any order, duplicates allowed).
pub fn build_history(key: &str, observations: &[Observation]) -> Vec<Version> {
    let mut sorted: Vec<&Observation> = observations.iter().collect();
    sorted.sort_by(|a, b| (a.effective, &a.sequence).cmp(&(b.effective, &b.sequence)));
    let mut versions: Vec<Version> = Vec::new();
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    for obs in sorted {
        let mut next = state.clone();
        for (k, v) in &obs.attrs {
            next.insert(k.clone(), v.clone());
        }
        if !versions.is_empty() && next == state {
            continue;
        }
        match versions.last_mut() {
            // A second change at the same instant replaces the state of that instant: no zero-length version.
            Some(last) if last.valid_from == obs.effective => {
                last.attrs = next.clone();
                let merges_back = versions.len() >= 2 && versions[versions.len() - 2].attrs == next;
                if merges_back {
                    versions.pop();
                    if let Some(prev) = versions.last_mut() {
                        prev.valid_to = None;
                    }
                }
            }
            _ => {
                if let Some(last) = versions.last_mut() {
                    last.valid_to = Some(obs.effective);
                }
                versions.push(Version {
                    key: key.to_string(),
                    surrogate_key: surrogate_key(key, obs.effective),
                    valid_from: obs.effective,
                    valid_to: None,
                    attrs: next.clone(),
                    started_by: obs.sequence.clone(),
                });
            }
        }
        state = next;
    }
    versions
}

/// The version valid at `at`, if any.
pub fn as_of(history: &[Version], at: DateTime<Utc>) -> Option<&Version> {
    history
        .iter()
        .find(|v| v.valid_from <= at && v.valid_to.is_none_or(|to| at < to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + h * 3600, 0)
            .single()
            .unwrap()
    }

    fn obs(h: i64, seq: &str, attrs: &[(&str, &str)]) -> Observation {
        Observation {
            key: "K".into(),
            effective: t(h),
            sequence: seq.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_customers_example_age_change_makes_old_row_inactive_new_row_active() {
        let h = build_history(
            "K",
            &[obs(0, "a", &[("age", "41")]), obs(5, "b", &[("age", "42")])],
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].status(), "inactive");
        assert_eq!(h[0].valid_to, Some(t(5)));
        assert_eq!(h[1].status(), "active");
        assert_eq!(h[1].attrs["age"], "42");
    }

    #[test]
    fn a_late_change_splits_the_interval_it_falls_in() {
        let before = build_history(
            "K",
            &[
                obs(0, "a", &[("addr", "A")]),
                obs(10, "c", &[("addr", "C")]),
            ],
        );
        let after = build_history(
            "K",
            &[
                obs(0, "a", &[("addr", "A")]),
                obs(10, "c", &[("addr", "C")]),
                obs(4, "b", &[("addr", "B")]),
            ],
        );
        assert_eq!(before.len(), 2);
        assert_eq!(after.len(), 3);
        assert_eq!(after[0].valid_to, Some(t(4)));
        assert_eq!(after[1].attrs["addr"], "B");
        assert_eq!(after[1].valid_to, Some(t(10)));
        // The versions that still start where they did keep their surrogate keys.
        assert_eq!(before[0].surrogate_key, after[0].surrogate_key);
        assert_eq!(before[1].surrogate_key, after[2].surrogate_key);
    }

    #[test]
    fn unchanged_and_redelivered_observations_make_no_version() {
        let h = build_history(
            "K",
            &[
                obs(0, "a", &[("x", "1")]),
                obs(0, "a", &[("x", "1")]),
                obs(3, "b", &[("x", "1")]),
                obs(4, "c", &[]),
            ],
        );
        assert_eq!(h.len(), 1);
        assert!(h[0].is_current());
    }

    #[test]
    fn absent_attributes_carry_forward_and_new_attributes_start_a_version() {
        let h = build_history(
            "K",
            &[
                obs(0, "a", &[("name", "Ann"), ("sex", "F")]),
                obs(2, "b", &[("preferred_language", "es")]),
            ],
        );
        assert_eq!(h.len(), 2);
        assert!(!h[0].attrs.contains_key("preferred_language"));
        assert_eq!(h[1].attrs["name"], "Ann");
        assert_eq!(h[1].attrs["preferred_language"], "es");
    }

    #[test]
    fn changes_at_the_same_instant_keep_the_last_in_sequence() {
        let h = build_history(
            "K",
            &[
                obs(0, "a", &[("x", "1")]),
                obs(1, "b", &[("x", "2")]),
                obs(1, "c", &[("x", "3")]),
            ],
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].attrs["x"], "3");
        let back = build_history(
            "K",
            &[
                obs(0, "a", &[("x", "1")]),
                obs(1, "b", &[("x", "2")]),
                obs(1, "c", &[("x", "1")]),
            ],
        );
        assert_eq!(back.len(), 1, "{back:?}");
        assert!(back[0].is_current());
    }

    /// The reference model: the state at time `at` is every observation up to `at`, in order, overlaid.
    fn state_at(
        observations: &[Observation],
        at: DateTime<Utc>,
    ) -> Option<BTreeMap<String, String>> {
        let mut sorted: Vec<&Observation> =
            observations.iter().filter(|o| o.effective <= at).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(|a, b| (a.effective, &a.sequence).cmp(&(b.effective, &b.sequence)));
        let mut state = BTreeMap::new();
        for o in sorted {
            for (k, v) in &o.attrs {
                state.insert(k.clone(), v.clone());
            }
        }
        Some(state)
    }

    fn arb_observation() -> impl Strategy<Value = Observation> {
        (
            0i64..30,
            0u8..4,
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..2),
        )
            .prop_map(|(h, seq, a, b, c)| {
                let mut attrs = BTreeMap::new();
                if let Some(a) = a {
                    attrs.insert("address".to_string(), format!("addr{a}"));
                }
                if let Some(b) = b {
                    attrs.insert("name".to_string(), format!("name{b}"));
                }
                if let Some(c) = c {
                    attrs.insert(
                        "preferred_language".to_string(),
                        ["en", "es"][c as usize].to_string(),
                    );
                }
                Observation {
                    key: "K".into(),
                    effective: t(h),
                    sequence: format!("s{seq}"),
                    attrs,
                }
            })
    }

    proptest! {
        #[test]
        fn history_invariants_hold_and_match_the_reference_model(
            observations in proptest::collection::vec(arb_observation(), 0..40),
            redeliver in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
            shuffle_seed in any::<u64>(),
        ) {
            // Re-deliveries (exact duplicates) and arrival order must not matter.
            let mut arrived = observations.clone();
            for i in &redeliver {
                if !observations.is_empty() {
                    arrived.push(observations[i.index(observations.len())].clone());
                }
            }
            let mut rng = shuffle_seed;
            for i in (1..arrived.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                arrived.swap(i, (rng >> 33) as usize % (i + 1));
            }
            // Duplicate (effective, sequence) pairs with different content have no defined order; keep the first.
            let mut seen = std::collections::BTreeSet::new();
            let canonical: Vec<Observation> = observations.iter().filter(|o| seen.insert((o.effective, o.sequence.clone()))).cloned().collect();
            let arrived: Vec<Observation> = arrived.into_iter().filter(|o| canonical.contains(o)).collect();

            let history = build_history("K", &arrived);
            prop_assert_eq!(&history, &build_history("K", &canonical));
            if canonical.is_empty() {
                prop_assert!(history.is_empty());
                return Ok(());
            }
            prop_assert_eq!(history.iter().filter(|v| v.is_current()).count(), 1);
            prop_assert!(history.last().unwrap().is_current());
            for pair in history.windows(2) {
                prop_assert_eq!(pair[0].valid_to, Some(pair[1].valid_from));
                prop_assert!(pair[0].valid_from < pair[1].valid_from);
                prop_assert_ne!(&pair[0].attrs, &pair[1].attrs);
            }
            // Every instant agrees with the reference model.
            for h in -1..32 {
                let at = t(h);
                let model = state_at(&canonical, at);
                let built = as_of(&history, at).map(|v| v.attrs.clone());
                prop_assert_eq!(built, model, "at hour {}", h);
            }
        }
    }
}
