//! Data quality: the rule catalogue, findings, and the checks shared by every source (times, codes).

pub mod checks;
pub mod rules;
pub mod score;

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
    /// What was done, when it is not the rule's usual action (a rule that usually leaves a value
    /// out may map a known spelling instead, and the other way round).
    pub action: Option<rules::Action>,
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
            action: None,
        }
    }

    /// The same finding, with `action` as what was done.
    pub fn with_action(mut self, action: rules::Action) -> Self {
        self.action = Some(action);
        self
    }

    /// What was done: the finding's own action, else the rule's.
    pub fn action(&self) -> rules::Action {
        self.action.unwrap_or(self.rule.action)
    }
}
