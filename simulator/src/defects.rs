//! The dirty-data catalogue: class ids, rate sampling and the ground-truth manifest.

use crate::rng::SimRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A defect class. The serialized id (`missing_admit_time`, …) is the contract with Silver's
/// data-quality rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectClass {
    /// PV1-44 / `visit.admit_time` blank on an A01, or `admit_time` empty in an encounter row of
    /// an admitted encounter.
    MissingAdmitTime,
    /// An exact re-delivery of an ADT message (same id, same bytes), a whole EHR file delivered
    /// again under another name in the same day folder, or a repeated departments.csv row.
    DuplicateDelivery,
    /// Same MRN sent with a different birth date, sex or name that is not a real A08 update.
    ConflictingIdentity,
    /// Discharge time earlier than admit time (A03 PV1-45 / encounter row).
    DischargeBeforeAdmit,
    /// A time years in the future.
    FutureTimestamp,
    /// `1900-01-01` or `1970-01-01` in a time or birth-date field.
    PlaceholderDate,
    /// A time written in another format (value still correct).
    MixedTimestampFormat,
    /// A hospital-local time written without its UTC offset (JSON/CSV).
    LocalTimeWithoutOffset,
    /// A department code not in the department metadata.
    UnknownDepartment,
    /// A sex code outside HL7 table 0001.
    InvalidSexCode,
    /// Birth date in the future or more than 120 years ago.
    ImpossibleAge,
    /// Broken HL7: `note` = `truncated` | `missing_msh10` | `wrong_separators`.
    MalformedHl7,
    /// A message delivered before an earlier-event-time message of the same encounter.
    OutOfOrder,
    /// Delivered hours to days after its event time, in a later day's file.
    LateEvent,
}

/// Every class, in catalogue order.
pub const ALL_CLASSES: [DefectClass; 14] = [
    DefectClass::MissingAdmitTime,
    DefectClass::DuplicateDelivery,
    DefectClass::ConflictingIdentity,
    DefectClass::DischargeBeforeAdmit,
    DefectClass::FutureTimestamp,
    DefectClass::PlaceholderDate,
    DefectClass::MixedTimestampFormat,
    DefectClass::LocalTimeWithoutOffset,
    DefectClass::UnknownDepartment,
    DefectClass::InvalidSexCode,
    DefectClass::ImpossibleAge,
    DefectClass::MalformedHl7,
    DefectClass::OutOfOrder,
    DefectClass::LateEvent,
];

impl DefectClass {
    /// The class id string.
    pub fn id(self) -> &'static str {
        match self {
            DefectClass::MissingAdmitTime => "missing_admit_time",
            DefectClass::DuplicateDelivery => "duplicate_delivery",
            DefectClass::ConflictingIdentity => "conflicting_identity",
            DefectClass::DischargeBeforeAdmit => "discharge_before_admit",
            DefectClass::FutureTimestamp => "future_timestamp",
            DefectClass::PlaceholderDate => "placeholder_date",
            DefectClass::MixedTimestampFormat => "mixed_timestamp_format",
            DefectClass::LocalTimeWithoutOffset => "local_time_without_offset",
            DefectClass::UnknownDepartment => "unknown_department",
            DefectClass::InvalidSexCode => "invalid_sex_code",
            DefectClass::ImpossibleAge => "impossible_age",
            DefectClass::MalformedHl7 => "malformed_hl7",
            DefectClass::OutOfOrder => "out_of_order",
            DefectClass::LateEvent => "late_event",
        }
    }
}

/// Where a defect was injected (`source` of a manifest line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Adt,
    EhrPatients,
    EhrEncounters,
    Departments,
}

impl Source {
    /// Manifest id.
    pub fn id(self) -> &'static str {
        match self {
            Source::Adt => "adt",
            Source::EhrPatients => "ehr_patients",
            Source::EhrEncounters => "ehr_encounters",
            Source::Departments => "departments",
        }
    }
}

/// One line of `truth/manifest.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `adt`, `ehr_patients`, `ehr_encounters` or `departments`.
    pub source: String,
    /// Message id (ADT) or `<file name>:<1-based data row number>` (CSV).
    pub record_key: String,
    /// Class id.
    pub defect: String,
    /// Field touched, or null for whole-record defects.
    pub field: Option<String>,
    /// The true value of the field (canonical form: UTC RFC 3339 for times, `YYYY-MM-DD` for
    /// dates), or null.
    pub clean_value: Option<String>,
    /// Details (variant, related record, …).
    pub note: Option<String>,
    /// ADT only: message id of the clean corrected re-send of this message (see
    /// `SimConfig::corrected_resend_rate`); absent when the sender did not correct it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_by: Option<String>,
}

/// Offered/injected counts of one class at one source, in that source's sampling unit
/// (ADT message, CSV row, EHR file, departments row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefectTally {
    /// Records the class could have been injected into.
    pub offered: u64,
    /// Records it was injected into.
    pub injected: u64,
}

/// Low-discrepancy Bernoulli sampler: over `n` offers it injects `rate * n ± 1` defects, at
/// randomised positions (a jittered accumulator), so a short run still shows each class at its
/// configured rate.
#[derive(Debug, Clone)]
pub struct Sampler {
    rate: f64,
    acc: f64,
    threshold: f64,
}

impl Sampler {
    /// New sampler; draws its first threshold from `rng`.
    pub fn new(rate: f64, rng: &mut SimRng) -> Self {
        Sampler {
            rate,
            acc: 0.0,
            threshold: rng.f64_open0(),
        }
    }
    /// One offer: returns whether to inject.
    pub fn offer(&mut self, rng: &mut SimRng) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        self.acc += self.rate;
        if self.acc >= self.threshold {
            self.acc -= 1.0;
            self.threshold = rng.f64_open0();
            true
        } else {
            false
        }
    }
}

/// Number of sources.
const SOURCES: usize = 4;
const ALL_SOURCES: [Source; SOURCES] = [
    Source::Adt,
    Source::EhrPatients,
    Source::EhrEncounters,
    Source::Departments,
];

/// Samplers and tallies of one injection context (one hospital's ADT feed, or the EHR extracts).
/// Indexed by (class, source) in flat arrays: `offer` runs a dozen times per message.
#[derive(Debug, Clone)]
pub struct Injector {
    pub rng: SimRng,
    samplers: Vec<Option<Sampler>>,
    rates: [f64; 14],
    tally: Vec<DefectTally>,
}

fn slot(class: DefectClass, source: Source) -> usize {
    class as usize * SOURCES + source as usize
}

impl Injector {
    /// Injector with per-class rates (missing classes: 0).
    pub fn new(rates: BTreeMap<DefectClass, f64>, rng: SimRng) -> Self {
        let mut r = [0.0; 14];
        for (c, v) in rates {
            r[c as usize] = v;
        }
        Injector {
            rng,
            samplers: vec![None; ALL_CLASSES.len() * SOURCES],
            rates: r,
            tally: vec![DefectTally::default(); ALL_CLASSES.len() * SOURCES],
        }
    }

    /// Offer one record to `class` at `source`; returns whether to inject. Counts the offer.
    pub fn offer(&mut self, class: DefectClass, source: Source) -> bool {
        let i = slot(class, source);
        let rng = &mut self.rng;
        let rate = self.rates[class as usize];
        let s = self.samplers[i].get_or_insert_with(|| Sampler::new(rate, rng));
        let hit = s.offer(rng);
        let t = &mut self.tally[i];
        t.offered += 1;
        if hit {
            t.injected += 1;
        }
        hit
    }

    /// Count an offer that was accepted earlier but could not be carried out (e.g. an
    /// out-of-order hold whose encounter had no further message in the run).
    pub fn retract(&mut self, class: DefectClass, source: Source) {
        let t = &mut self.tally[slot(class, source)];
        t.injected = t.injected.saturating_sub(1);
    }

    /// Offered/injected counts of every (class, source) that was offered at least once.
    pub fn tally(&self) -> BTreeMap<(DefectClass, Source), DefectTally> {
        let mut out = BTreeMap::new();
        for c in ALL_CLASSES {
            for s in ALL_SOURCES {
                let t = self.tally[slot(c, s)];
                if t.offered > 0 {
                    out.insert((c, s), t);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_hits_rate_closely() {
        let mut rng = SimRng::new(3, 3);
        for rate in [0.0, 0.01, 0.05, 0.3] {
            let mut s = Sampler::new(rate, &mut rng);
            let n = 10_000;
            let hits = (0..n).filter(|_| s.offer(&mut rng)).count() as f64;
            assert!((hits - rate * n as f64).abs() <= 1.0, "{rate}: {hits}");
        }
    }

    #[test]
    fn class_ids_roundtrip() {
        for c in ALL_CLASSES {
            let s = serde_json::to_string(&c).unwrap();
            assert_eq!(s, format!("\"{}\"", c.id()));
        }
    }
}
