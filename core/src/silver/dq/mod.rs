//! Data quality: the rule catalogue, findings, and the checks shared by every source (times, codes).

pub mod checks;
pub mod rules;

use rules::Rule;

/// One finding of a rule on one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// The field concerned, if one.
    pub field: Option<String>,
    /// One readable line (no patient data beyond the offending value, which is kept separately).
    pub reason: String,
    /// The offending value as received.
    pub raw_value: Option<String>,
}

impl Finding {
    /// A finding of `rule` on `field`.
    pub fn new(
        rule: &'static Rule,
        field: Option<&str>,
        reason: impl Into<String>,
        raw: Option<&str>,
    ) -> Self {
        Finding {
            rule,
            field: field.map(str::to_string),
            reason: reason.into(),
            raw_value: raw.map(str::to_string),
        }
    }
}
