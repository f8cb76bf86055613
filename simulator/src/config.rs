//! Run configuration.

use crate::defects::DefectClass;
use crate::network;
use crate::SimError;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which hospitals to simulate: the first `n` of the network, or an explicit list of ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Hospitals {
    /// The first `n` hospitals (`MHA01` …), 1–7.
    Count(usize),
    /// Explicit hospital ids, e.g. `["MHA03", "MHA07"]`.
    Ids(Vec<String>),
}

impl Default for Hospitals {
    fn default() -> Self {
        Hospitals::Count(7)
    }
}

/// Everything that determines a simulated data set. Same config (including `seed`) ⇒
/// byte-identical output.
///
/// `Default` is the full 7-hospital MHA network for one year from 2026-01-01 with 5 % of every
/// defect class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random stream.
    pub seed: u64,
    /// First simulated day (UTC calendar day; the hospitals open empty at 00:00 UTC).
    pub start_date: NaiveDate,
    /// Number of simulated days.
    pub days: u32,
    /// Hospitals to simulate.
    pub hospitals: Hospitals,
    /// Multiplies every arrival rate (ED, elective, maternity). Capacity does not scale, so
    /// values well above 1 overload the wards on purpose (long ED boarding).
    pub scale: f64,
    /// Fraction of ADT messages written as JSON (`patientflow.adt.v1`) instead of HL7 ER7.
    pub json_fraction: f64,
    /// Rate of every defect class not listed in `defect_rates`; 0 = clean data.
    pub dirty_rate: f64,
    /// Per-class overrides of `dirty_rate` (class id → rate in [0, 1]).
    pub defect_rates: BTreeMap<DefectClass, f64>,
    /// Day index (0-based from `start_date`) from which `preferred_language` is collected and
    /// appears in EHR files and ADT messages. `None` = one third through the run.
    pub preferred_language_from_day: Option<u32>,
    /// Day index from which `insurance_type` appears. `None` = two thirds through the run.
    pub insurance_type_from_day: Option<u32>,
    /// Share of ADT messages with a content defect that the sender corrects and sends again as
    /// a new, clean message (new message id, same event). Not a defect: no manifest line, but the
    /// defective original's lines name the re-send in `corrected_by`.
    pub corrected_resend_rate: f64,
    /// Whether A08 updates may change identity attributes (family/given name, birth date, sex).
    /// `false`: A08s only change address, insurance or language.
    pub demographic_changes: bool,
    /// Share of eligible identity-changing A08s delivered only after the encounter's next
    /// message, which already carries the new values. Not a defect: no manifest line.
    pub a08_overtaken_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 20_260_101,
            start_date: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
            days: 365,
            hospitals: Hospitals::default(),
            scale: 1.0,
            json_fraction: 0.3,
            dirty_rate: 0.05,
            defect_rates: BTreeMap::new(),
            preferred_language_from_day: None,
            insurance_type_from_day: None,
            corrected_resend_rate: 0.5,
            demographic_changes: true,
            a08_overtaken_rate: 0.3,
        }
    }
}

impl SimConfig {
    /// A clean configuration (no defects) — convenient for truth-only experiments.
    pub fn clean() -> Self {
        SimConfig {
            dirty_rate: 0.0,
            ..SimConfig::default()
        }
    }

    /// The effective rate of a defect class.
    pub fn rate(&self, class: DefectClass) -> f64 {
        self.defect_rates
            .get(&class)
            .copied()
            .unwrap_or(self.dirty_rate)
    }

    /// Day index from which `preferred_language` appears.
    pub fn language_day(&self) -> u32 {
        self.preferred_language_from_day.unwrap_or(self.days / 3)
    }

    /// Day index from which `insurance_type` appears.
    pub fn insurance_day(&self) -> u32 {
        self.insurance_type_from_day.unwrap_or(self.days * 2 / 3)
    }

    /// Resolve the hospital selection to indices into the network, in network order.
    pub fn hospital_indices(&self) -> Result<Vec<usize>, SimError> {
        let all = network::mha_hospitals();
        match &self.hospitals {
            Hospitals::Count(n) => {
                if *n == 0 || *n > all.len() {
                    return Err(SimError::Config(format!(
                        "hospitals = {n}: choose 1..={} or a list of ids like [\"MHA01\", \"MHA03\"]",
                        all.len()
                    )));
                }
                Ok((0..*n).collect())
            }
            Hospitals::Ids(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    match all.iter().position(|h| h.id == id.as_str()) {
                        Some(i) => out.push(i),
                        None => {
                            return Err(SimError::Config(format!(
                                "unknown hospital id {id:?}: known ids are MHA01..MHA07"
                            )))
                        }
                    }
                }
                out.sort_unstable();
                out.dedup();
                if out.is_empty() {
                    return Err(SimError::Config("hospitals: the list is empty".into()));
                }
                Ok(out)
            }
        }
    }

    /// Check ranges; returns a message naming the bad value.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Config(m));
        if self.days == 0 || self.days > 3_660 {
            return bad(format!("days = {}: must be 1..=3660", self.days));
        }
        if !(self.scale > 0.0 && self.scale <= 20.0) {
            return bad(format!("scale = {}: must be in (0, 20]", self.scale));
        }
        if !(0.0..=1.0).contains(&self.json_fraction) {
            return bad(format!(
                "json_fraction = {}: must be in [0, 1]",
                self.json_fraction
            ));
        }
        if !(0.0..=1.0).contains(&self.dirty_rate) {
            return bad(format!(
                "dirty_rate = {}: must be in [0, 1]",
                self.dirty_rate
            ));
        }
        for (name, r) in [
            ("corrected_resend_rate", self.corrected_resend_rate),
            ("a08_overtaken_rate", self.a08_overtaken_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return bad(format!("{name} = {r}: must be in [0, 1]"));
            }
        }
        for (c, r) in &self.defect_rates {
            if !(0.0..=1.0).contains(r) {
                return bad(format!("defect_rates.{} = {r}: must be in [0, 1]", c.id()));
            }
        }
        use chrono::Datelike;
        if !(1900..=2400).contains(&self.start_date.year()) {
            return bad(format!(
                "start_date = {}: year must be 1900..=2400",
                self.start_date
            ));
        }
        self.hospital_indices()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_roundtrip_and_hospital_forms() {
        let mut cfg = SimConfig::default();
        cfg.defect_rates.insert(DefectClass::LateEvent, 0.1);
        cfg.hospitals = Hospitals::Ids(vec!["MHA03".into(), "MHA01".into()]);
        let s = serde_json::to_string(&cfg).unwrap();
        assert!(s.contains("\"late_event\":0.1"), "{s}");
        let back: SimConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.hospital_indices().unwrap(), vec![0, 2]);
        let c: SimConfig = serde_json::from_str(r#"{"hospitals": 3, "days": 10}"#).unwrap();
        assert_eq!(c.hospital_indices().unwrap(), vec![0, 1, 2]);
        assert_eq!(c.rate(DefectClass::MalformedHl7), 0.05);
        assert!(serde_json::from_str::<SimConfig>(r#"{"hospitalz": 3}"#).is_err());
        let bad = SimConfig {
            hospitals: Hospitals::Count(9),
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
        assert_eq!(c.corrected_resend_rate, 0.5);
        assert_eq!(c.a08_overtaken_rate, 0.3);
        assert!(c.demographic_changes);
        let c: SimConfig = serde_json::from_str(
            r#"{"corrected_resend_rate": 1, "a08_overtaken_rate": 0, "demographic_changes": false}"#,
        )
        .unwrap();
        assert_eq!(
            (
                c.corrected_resend_rate,
                c.a08_overtaken_rate,
                c.demographic_changes
            ),
            (1.0, 0.0, false)
        );
        for bad in [
            SimConfig {
                corrected_resend_rate: 1.5,
                ..SimConfig::default()
            },
            SimConfig {
                a08_overtaken_rate: -0.1,
                ..SimConfig::default()
            },
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("must be in [0, 1]"), "{e}");
        }
    }
}
