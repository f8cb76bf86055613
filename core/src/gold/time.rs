//! Time arithmetic shared by the Gold tables: instants as UTC microseconds, hour buckets, hospital-local
//! calendar keys, ages and age bands.
//!
//! Conventions (docs/kpis.md):
//! - an hourly census row for hour `h` is the snapshot at the top of the hour `h:00:00` UTC; a stay
//!   `[start, end)` is counted when `start <= h < end`;
//! - a flow (admission, transfer, discharge) at instant `t` counts in the hour `[h, h + 1 h)` holding `t`;
//! - date keys (`YYYYMMDD`), month keys (`YYYYMM`) and hours of day are the hospital's local calendar;
//! - ages are completed years at the UTC calendar date of the instant.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;
/// Microseconds in a minute.
pub const MINUTE_US: i64 = 60_000_000;

/// The age bands of the age-based KPIs, in order.
pub const AGE_BANDS: [&str; 5] = ["0-17", "18-44", "45-64", "65-84", "85+"];
/// The label of an unknown age (no usable birth date).
pub const AGE_UNKNOWN: &str = "unknown";
/// Ages at which the band changes.
const BAND_STARTS: [i32; 4] = [18, 45, 65, 85];

/// Index of the hour holding `t` (hours since 1970-01-01T00:00Z).
pub fn hour_floor(t: i64) -> i64 {
    t.div_euclid(HOUR_US)
}

/// Index of the first hour boundary at or after `t`.
pub fn hour_ceil(t: i64) -> i64 {
    -(-t).div_euclid(HOUR_US)
}

/// Microseconds of a UTC instant.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The UTC instant of microseconds.
pub fn instant(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Local calendar of an instant in a hospital's zone: (date, hour of day).
pub fn local(us: i64, zone: Tz) -> (NaiveDate, u32) {
    let t = zone.from_utc_datetime(&instant(us).naive_utc());
    (t.date_naive(), t.hour())
}

/// `YYYYMMDD` of a date.
pub fn date_key(d: NaiveDate) -> i32 {
    d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32
}

/// `YYYYMM` of a date.
pub fn month_key(d: NaiveDate) -> i32 {
    d.year() * 100 + d.month() as i32
}

/// The instant of local midnight starting `date` in `zone` (the earliest, should a zone ever repeat it).
pub fn local_midnight(date: NaiveDate, zone: Tz) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match zone.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc).timestamp_micros(),
        // A zone that skips midnight: the first instant of the day is one hour later.
        None => Utc.from_utc_datetime(&midnight).timestamp_micros(),
    }
}

/// Completed years at the UTC date of `at` for someone born on `birth`.
pub fn age_at(birth: NaiveDate, at: i64) -> i32 {
    let d = instant(at).date_naive();
    let mut age = d.year() - birth.year();
    if (d.month(), d.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Index into [`AGE_BANDS`] of an age; `None` for an impossible (negative) age.
pub fn band_index(age: i32) -> Option<usize> {
    match age {
        a if a < 0 => None,
        a if a < 18 => Some(0),
        a if a < 45 => Some(1),
        a if a < 65 => Some(2),
        a if a < 85 => Some(3),
        _ => Some(4),
    }
}

/// The band label of an optional age.
pub fn band_label(age: Option<i32>) -> &'static str {
    age.and_then(band_index)
        .map_or(AGE_UNKNOWN, |i| AGE_BANDS[i])
}

/// The instants (UTC midnight of the birthday) at which someone born on `birth` enters a new age band,
/// strictly inside `(from, to)`.
pub fn band_changes(birth: NaiveDate, from: i64, to: Option<i64>) -> Vec<i64> {
    let mut out = Vec::new();
    for years in BAND_STARTS {
        let y = birth.year() + years;
        // A 29 February birthday is reached on 1 March in common years (as `age_at` counts it).
        let day = NaiveDate::from_ymd_opt(y, birth.month(), birth.day())
            .or_else(|| NaiveDate::from_ymd_opt(y, 3, 1));
        let Some(day) = day else { continue };
        let at = Utc
            .from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
            .timestamp_micros();
        if at > from && to.is_none_or(|t| at < t) {
            out.push(at);
        }
    }
    out
}

/// Sex group of an HL7 table 0001 code: `female`, `male`, `other` (O, A, N) or `unknown` (U, missing).
pub fn sex_group(code: Option<&str>) -> usize {
    match code.map(str::trim) {
        Some("F") => 0,
        Some("M") => 1,
        Some("O" | "A" | "N") => 2,
        _ => 3,
    }
}

/// Labels of the sex groups, by [`sex_group`] index.
pub const SEX_GROUPS: [&str; 4] = ["female", "male", "other", "unknown"];

/// Linear-interpolation percentile (`percentile_cont`) of sorted values; `p` in [0, 1].
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Rounds to 4 decimals (ratios and averages in KPI tables), so results do not depend on summation order.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_buckets_and_census_convention() {
        assert_eq!(hour_floor(0), 0);
        assert_eq!(hour_floor(HOUR_US - 1), 0);
        assert_eq!(hour_floor(-1), -1);
        assert_eq!(hour_ceil(0), 0);
        assert_eq!(hour_ceil(1), 1);
        assert_eq!(hour_ceil(HOUR_US), 1);
    }

    #[test]
    fn ages_bands_and_birthdays() {
        let b = NaiveDate::from_ymd_opt(2000, 2, 29).unwrap();
        let t = |y, m, d| micros(Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap());
        assert_eq!(age_at(b, t(2018, 2, 28)), 17);
        assert_eq!(age_at(b, t(2018, 3, 1)), 18);
        assert_eq!(band_label(Some(17)), "0-17");
        assert_eq!(band_label(Some(85)), "85+");
        assert_eq!(band_label(Some(-1)), "unknown");
        assert_eq!(band_label(None), "unknown");
        let changes = band_changes(b, t(2017, 1, 1), Some(t(2019, 1, 1)));
        assert_eq!(
            changes,
            vec![micros(Utc.with_ymd_and_hms(2018, 3, 1, 0, 0, 0).unwrap())]
        );
        assert!(band_changes(b, t(2019, 1, 1), None).len() == 3);
    }

    #[test]
    fn local_calendar_and_percentiles() {
        let zone: Tz = "America/Chicago".parse().unwrap();
        let t = micros(Utc.with_ymd_and_hms(2026, 1, 2, 3, 30, 0).unwrap());
        let (d, h) = local(t, zone);
        assert_eq!((date_key(d), h), (20260101, 21));
        assert_eq!(month_key(d), 202601);
        let m = local_midnight(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), zone);
        assert_eq!(
            m,
            micros(Utc.with_ymd_and_hms(2026, 1, 2, 6, 0, 0).unwrap())
        );
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 0.5), Some(2.5));
        assert!((percentile_sorted(&v, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[], 0.5), None);
    }
}
