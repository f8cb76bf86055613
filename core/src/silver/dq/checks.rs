//! Checks shared by every source: timestamps, birth dates, sex codes.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use super::rules::{self, Rule};
use super::Finding;
use crate::sources::adt::time::{
    parse_date, parse_source_time, LocalReading, SourceTime, TimeFormat,
};

/// What a time is checked against.
#[derive(Debug, Clone, Copy)]
pub struct TimeContext {
    /// The hospital's zone, for times without an offset.
    pub zone: Tz,
    /// When the record reached us: nothing can have happened more than a day after it.
    pub received: DateTime<Utc>,
    /// The source's standard format; other formats are read but reported.
    pub standard: TimeFormat,
}

/// A time that passed its checks, with the repairs it needed.
#[derive(Debug, Clone)]
pub struct CheckedTime {
    /// The instant.
    pub utc: DateTime<Utc>,
    /// Repairs applied (format, missing offset).
    pub findings: Vec<Finding>,
}

/// Why a time was not usable: the rule and the reason.
pub type TimeRejection = Finding;

/// True for the placeholder dates systems write when they have no value: 1900-01-01, the Unix epoch
/// 1970-01-01, the spreadsheet and SQL Server zero dates (1899-12-30/31, 1753-01-01) and anything
/// before 1800. A merely implausible birth date (say 1890) is an impossible age, not a placeholder.
pub fn is_placeholder(date: NaiveDate) -> bool {
    let (y, m, d) = (date.year(), date.month(), date.day());
    (y == 1900 || y == 1970 || y == 1753) && m == 1 && d == 1
        || (y == 1899 && m == 12 && (d == 30 || d == 31))
        || y < 1800
}

/// True for times no hospital event can have: a placeholder, or any time before 1900.
fn is_placeholder_event_time(date: NaiveDate) -> bool {
    is_placeholder(date) || date.year() < 1900
}

/// Parses and checks one time field. `invalid_rule` is the rule for an unreadable value (the event
/// time's own rule rejects the record; others leave the field out).
pub fn check_time(
    field: &str,
    raw: &str,
    ctx: &TimeContext,
    invalid_rule: &'static Rule,
) -> Result<CheckedTime, TimeRejection> {
    let parsed = parse_source_time(raw).map_err(|e| {
        Finding::new(
            invalid_rule,
            Some(field),
            format!("{field}: {e}"),
            Some(raw),
        )
    })?;
    if is_placeholder_event_time(parsed.local.date()) {
        return Err(Finding::new(
            &rules::TIME_PLACEHOLDER,
            Some(field),
            format!("{field} is a placeholder date"),
            Some(raw),
        ));
    }
    let resolved = parsed.resolve(ctx.zone).map_err(|e| {
        Finding::new(
            invalid_rule,
            Some(field),
            format!("{field}: {e}"),
            Some(raw),
        )
    })?;
    let utc = resolved.utc;
    if utc > ctx.received + chrono::Duration::hours(24) {
        return Err(Finding::new(
            &rules::TIME_FUTURE,
            Some(field),
            format!("{field} is more than 24 h after the record was received"),
            Some(raw),
        ));
    }
    let mut findings = Vec::new();
    if parsed.format != ctx.standard {
        findings.push(Finding::new(
            &rules::TIME_FORMAT,
            Some(field),
            format!(
                "{field} written as {:?}, read with the alternative format",
                parsed.format
            ),
            Some(raw),
        ));
    }
    if let Some(f) = local_reading_finding(field, raw, &parsed, resolved.reading, utc, ctx.zone) {
        findings.push(f);
    }
    Ok(CheckedTime { utc, findings })
}

/// The finding for a time without a UTC offset: the generic one when the local time exists once in the
/// zone, the DST rule's own when it fell in the spring-forward gap or the fall-back overlap (instead of,
/// not beside, the generic one). None for a time with an offset.
fn local_reading_finding(
    field: &str,
    raw: &str,
    parsed: &SourceTime,
    reading: LocalReading,
    utc: DateTime<Utc>,
    zone: Tz,
) -> Option<Finding> {
    let local = parsed.local.format("%Y-%m-%d %H:%M");
    let instant = utc.format("%Y-%m-%dT%H:%M:%SZ");
    let (rule, reason) = match reading {
        LocalReading::Offset => return None,
        LocalReading::Unique => (
            &rules::TIME_NO_OFFSET,
            format!(
                "{field} has no UTC offset; read as {} local time",
                zone.name()
            ),
        ),
        LocalReading::Nonexistent => (
            &rules::TIME_LOCAL_NONEXISTENT,
            format!(
                "guessed repair: {field} {local} has no UTC offset and does not exist in {} \
                 (spring-forward gap); shifted forward by the gap to {} = {instant}",
                zone.name(),
                utc.with_timezone(&zone).format("%H:%M %Z"),
            ),
        ),
        LocalReading::Ambiguous => (
            &rules::TIME_LOCAL_AMBIGUOUS,
            format!(
                "guessed repair: {field} {local} has no UTC offset and happens twice in {} \
                 (fall-back overlap); the earlier instant is taken, {} = {instant}",
                zone.name(),
                utc.with_timezone(&zone).format("%H:%M %Z"),
            ),
        ),
    };
    Some(Finding::new(rule, Some(field), reason, Some(raw)))
}

/// Parses and checks a birth date against the event date: not a placeholder, not after the event, not
/// more than 120 years before it.
pub fn check_birth_date(raw: &str, event: DateTime<Utc>) -> Result<NaiveDate, Finding> {
    let field = "birth_date";
    let date = parse_date(raw).map_err(|e| {
        Finding::new(
            &rules::PAT_AGE_IMPOSSIBLE,
            Some(field),
            format!("birth date unreadable: {e}"),
            Some(raw),
        )
    })?;
    if is_placeholder(date) {
        return Err(Finding::new(
            &rules::TIME_PLACEHOLDER,
            Some(field),
            "birth date is a placeholder date",
            Some(raw),
        ));
    }
    let event_date = event.date_naive();
    if date > event_date {
        return Err(Finding::new(
            &rules::PAT_AGE_IMPOSSIBLE,
            Some(field),
            "birth date after the event",
            Some(raw),
        ));
    }
    if event_date.year() - date.year() > 120 {
        return Err(Finding::new(
            &rules::PAT_AGE_IMPOSSIBLE,
            Some(field),
            "age above 120 years",
            Some(raw),
        ));
    }
    Ok(date)
}

/// Normalises a sex code to HL7 table 0001 (F, M, O, U, A, N). A spelled-out word that can only mean
/// one code (`female`, `MALE`, `woman`, `unknown`…) is mapped, with a repair finding; anything else —
/// a letter outside the table (`Q`, `Z`, `X`), a digit (`1`/`2` mean male/female in ISO/IEC 5218
/// but other things elsewhere: mapping them would be a guess), `?`, `UNK` (the sender does not know,
/// which says nothing about the value we know) — is an error: the attribute is left out and the
/// previous known value stands.
pub fn normalise_sex(raw: &str) -> Result<(String, Option<Finding>), Finding> {
    let t = raw.trim();
    if ["F", "M", "O", "U", "A", "N"].contains(&t) {
        return Ok((t.to_string(), None));
    }
    let mapped = match t.to_ascii_lowercase().as_str() {
        "female" | "woman" => Some("F"),
        "male" | "man" => Some("M"),
        "other" => Some("O"),
        "unknown" => Some("U"),
        "f" => Some("F"),
        "m" => Some("M"),
        _ => None,
    };
    match mapped {
        Some(code) => Ok((
            code.to_string(),
            Some(
                Finding::new(
                    &rules::PAT_SEX_INVALID,
                    Some("sex"),
                    format!("sex code spelled out, mapped to {code}"),
                    Some(raw),
                )
                .with_action(rules::Action::Repair),
            ),
        )),
        None => Err(Finding::new(
            &rules::PAT_SEX_INVALID,
            Some("sex"),
            "sex code outside HL7 table 0001: left out, the previous known value stands",
            Some(raw),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> TimeContext {
        TimeContext {
            zone: chrono_tz::America::Chicago,
            received: Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0).unwrap(),
            standard: TimeFormat::Hl7Dtm,
        }
    }

    #[test]
    fn times_are_checked_and_repaired() {
        let ok = check_time(
            "event_time",
            "20260114083000-0600",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap();
        assert_eq!(
            ok.utc,
            Utc.with_ymd_and_hms(2026, 1, 14, 14, 30, 0).unwrap()
        );
        assert!(ok.findings.is_empty());
        let local = check_time(
            "event_time",
            "202601140830",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap();
        assert_eq!(
            local.utc,
            Utc.with_ymd_and_hms(2026, 1, 14, 14, 30, 0).unwrap()
        );
        assert_eq!(local.findings[0].rule.id, "DQ-TIME-NO-OFFSET");
        let us = check_time(
            "event_time",
            "01/14/2026 08:30",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap();
        assert_eq!(us.utc, local.utc);
        assert!(us.findings.iter().any(|f| f.rule.id == "DQ-TIME-FORMAT"));
        let e = check_time(
            "event_time",
            "19000101000000",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap_err();
        assert_eq!(e.rule.id, "DQ-TIME-PLACEHOLDER");
        let e = check_time(
            "event_time",
            "20310101000000-0600",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap_err();
        assert_eq!(e.rule.id, "DQ-TIME-FUTURE");
        let e = check_time(
            "event_time",
            "2026-13-01",
            &ctx(),
            &rules::TIME_EVENT_INVALID,
        )
        .unwrap_err();
        assert_eq!(e.rule.id, "DQ-TIME-EVENT-INVALID");
    }

    #[test]
    fn dst_edges_get_their_own_finding_instead_of_the_generic_one() {
        let mut c = ctx();
        c.received = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let check_late =
            |raw: &str| check_time("event_time", raw, &c, &rules::TIME_EVENT_INVALID).unwrap();
        let gap = check_late("20260308023000");
        assert_eq!(gap.utc, Utc.with_ymd_and_hms(2026, 3, 8, 8, 30, 0).unwrap());
        assert_eq!(gap.findings.len(), 1, "{:?}", gap.findings);
        assert_eq!(gap.findings[0].rule.id, "DQ-TIME-LOCAL-NONEXISTENT");
        assert!(gap.findings[0].reason.starts_with("guessed repair:"));
        assert!(
            gap.findings[0].reason.contains("03:30 CDT"),
            "{}",
            gap.findings[0].reason
        );
        let overlap = check_late("2026-11-01T01:30:00");
        assert_eq!(
            overlap.utc,
            Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap()
        );
        let ids: Vec<_> = overlap.findings.iter().map(|f| f.rule.id).collect();
        assert_eq!(ids, ["DQ-TIME-FORMAT", "DQ-TIME-LOCAL-AMBIGUOUS"]);
        assert!(overlap.findings[1].reason.contains("earlier instant"));
        // With an offset, the overlap is no question.
        let stated = check_late("202611010130-0600");
        assert!(stated.findings.is_empty());
    }

    #[test]
    fn birth_dates_and_sex_codes() {
        let at = Utc.with_ymd_and_hms(2026, 1, 14, 0, 0, 0).unwrap();
        assert!(check_birth_date("19800102", at).is_ok());
        assert_eq!(
            check_birth_date("2027-01-01", at).unwrap_err().rule.id,
            "DQ-PAT-AGE-IMPOSSIBLE"
        );
        // An implausible year is an impossible age; the sentinel dates are placeholders.
        assert_eq!(
            check_birth_date("1890-01-01", at).unwrap_err().rule.id,
            "DQ-PAT-AGE-IMPOSSIBLE"
        );
        for sentinel in ["1900-01-01", "1899-12-31", "1753-01-01", "0001-01-01"] {
            assert_eq!(
                check_birth_date(sentinel, at).unwrap_err().rule.id,
                "DQ-TIME-PLACEHOLDER",
                "{sentinel}"
            );
        }
        assert_eq!(
            check_birth_date("1901-05-01", at).unwrap_err().rule.id,
            "DQ-PAT-AGE-IMPOSSIBLE"
        );
        assert_eq!(normalise_sex("F").unwrap(), ("F".to_string(), None));
        assert_eq!(normalise_sex("female").unwrap().0, "F");
        assert_eq!(normalise_sex("MALE").unwrap().0, "M");
        assert!(
            normalise_sex("MALE").unwrap().1.is_some(),
            "a repair leaves a finding"
        );
        for junk in ["X", "Q", "Z", "1", "2", "?", "UNK", "", "FEM"] {
            assert_eq!(
                normalise_sex(junk).unwrap_err().rule.id,
                "DQ-PAT-SEX-INVALID",
                "{junk}"
            );
        }
    }
}
