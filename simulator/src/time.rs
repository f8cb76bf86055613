//! Time arithmetic and formatting without clock reads.
//!
//! Simulation time is `i64` seconds since the Unix epoch (UTC). Formatting is hand-rolled (civil
//! date algorithms of Howard Hinnant) because the generator formats several million timestamps per
//! simulated year; hospital-local offsets come from a per-hour table built once from chrono-tz.

use chrono::{NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;
use std::fmt::Write as _;

/// Seconds per day.
pub const DAY: i64 = 86_400;
/// Seconds per hour.
pub const HOUR: i64 = 3_600;
/// Seconds per minute.
pub const MINUTE: i64 = 60;

/// Days since 1970-01-01 for a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since epoch of a chrono date.
pub fn days_of(date: NaiveDate) -> i64 {
    use chrono::Datelike;
    days_from_civil(date.year() as i64, date.month(), date.day())
}

/// Chrono date of days since epoch.
pub fn date_of(days: i64) -> NaiveDate {
    let (y, m, d) = civil_from_days(days);
    NaiveDate::from_ymd_opt(y as i32, m, d).expect("valid civil date")
}

/// Day of week, 0 = Monday … 6 = Sunday.
pub fn weekday(days: i64) -> usize {
    // 1970-01-01 was a Thursday (index 3).
    ((days + 3).rem_euclid(7)) as usize
}

/// Floor division of seconds into days.
pub fn day_index(t: i64) -> i64 {
    t.div_euclid(DAY)
}

/// UTC offset (seconds east) of `tz` at instant `t`.
pub fn tz_offset(tz: Tz, t: i64) -> i32 {
    let dt = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    tz.offset_from_utc_datetime(&dt.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Instant of local midnight of `days` at `tz` (US transitions happen at 02:00, so midnight is
/// never ambiguous; `earliest` covers exotic zones).
pub fn local_midnight(tz: Tz, days: i64) -> i64 {
    let date = date_of(days);
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight");
    match tz.from_local_datetime(&naive).earliest() {
        Some(dt) => dt.timestamp(),
        None => naive.and_utc().timestamp() - tz_offset(tz, naive.and_utc().timestamp()) as i64,
    }
}

/// Per-hour table of a zone's UTC offsets over a window, with a chrono-tz fallback outside it.
#[derive(Debug, Clone)]
pub struct OffsetTable {
    tz: Tz,
    base: i64,
    offsets: std::sync::Arc<Vec<i32>>,
}

impl OffsetTable {
    /// Table covering `[from, to)` (seconds), hour by hour. US DST transitions fall on whole UTC
    /// hours, so a per-hour table is exact for them.
    pub fn new(tz: Tz, from: i64, to: i64) -> Self {
        let base = from.div_euclid(HOUR) * HOUR;
        let hours = ((to - base) / HOUR + 1).max(1) as usize;
        let offsets = (0..hours)
            .map(|h| tz_offset(tz, base + h as i64 * HOUR))
            .collect();
        OffsetTable {
            tz,
            base,
            offsets: std::sync::Arc::new(offsets),
        }
    }

    /// Offset in seconds at `t`.
    #[inline]
    pub fn at(&self, t: i64) -> i32 {
        let h = (t - self.base).div_euclid(HOUR);
        if h >= 0 && (h as usize) < self.offsets.len() {
            self.offsets[h as usize]
        } else {
            tz_offset(self.tz, t)
        }
    }

    /// Local wall-clock seconds (as if UTC) at `t`.
    #[inline]
    pub fn local(&self, t: i64) -> i64 {
        t + self.at(t) as i64
    }

    /// Whether the local wall time at `t` is within an hour of a DST transition (where a time
    /// written without offset could be ambiguous or non-existent).
    pub fn near_transition(&self, t: i64) -> bool {
        let o = self.at(t);
        self.at(t - HOUR) != o || self.at(t + HOUR) != o
    }

    /// The zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

fn push2(s: &mut String, v: u32) {
    s.push((b'0' + (v / 10 % 10) as u8) as char);
    s.push((b'0' + (v % 10) as u8) as char);
}

fn push4(s: &mut String, v: i64) {
    if (0..10_000).contains(&v) {
        let v = v as u32;
        push2(s, v / 100);
        push2(s, v % 100);
    } else {
        let _ = write!(s, "{v:04}");
    }
}

/// Broken-down wall time.
#[derive(Debug, Clone, Copy)]
pub struct Civil {
    pub y: i64,
    pub mo: u32,
    pub d: u32,
    pub h: u32,
    pub mi: u32,
    pub s: u32,
}

/// Break wall seconds (already shifted to the wanted zone) into fields.
pub fn civil(wall: i64) -> Civil {
    let days = wall.div_euclid(DAY);
    let sod = wall.rem_euclid(DAY) as u32;
    let (y, mo, d) = civil_from_days(days);
    Civil {
        y,
        mo,
        d,
        h: sod / 3600,
        mi: sod / 60 % 60,
        s: sod % 60,
    }
}

fn push_date(s: &mut String, c: &Civil, sep: bool) {
    push4(s, c.y);
    if sep {
        s.push('-');
    }
    push2(s, c.mo);
    if sep {
        s.push('-');
    }
    push2(s, c.d);
}

fn push_offset(s: &mut String, off: i32, colon: bool) {
    let (sign, a) = if off < 0 { ('-', -off) } else { ('+', off) };
    s.push(sign);
    push2(s, (a / 3600) as u32);
    if colon {
        s.push(':');
    }
    push2(s, (a / 60 % 60) as u32);
}

/// `2026-01-14T13:30:00Z`.
pub fn rfc3339_utc(t: i64) -> String {
    let mut s = String::with_capacity(20);
    push_rfc3339_utc(&mut s, t);
    s
}

/// Append `2026-01-14T13:30:00Z`.
pub fn push_rfc3339_utc(s: &mut String, t: i64) {
    let c = civil(t);
    push_date(s, &c, true);
    s.push('T');
    push2(s, c.h);
    s.push(':');
    push2(s, c.mi);
    s.push(':');
    push2(s, c.s);
    s.push('Z');
}

/// `2026-01-14T08:30:00-05:00` (offset in seconds east).
pub fn rfc3339_local(t: i64, off: i32) -> String {
    let mut s = String::with_capacity(25);
    let c = civil(t + off as i64);
    push_date(&mut s, &c, true);
    s.push('T');
    push2(&mut s, c.h);
    s.push(':');
    push2(&mut s, c.mi);
    s.push(':');
    push2(&mut s, c.s);
    push_offset(&mut s, off, true);
    s
}

/// `2026-01-14T08:30:00` — local wall time without any offset.
pub fn iso_local_naive(t: i64, off: i32) -> String {
    let mut s = String::with_capacity(19);
    let c = civil(t + off as i64);
    push_date(&mut s, &c, true);
    s.push('T');
    push2(&mut s, c.h);
    s.push(':');
    push2(&mut s, c.mi);
    s.push(':');
    push2(&mut s, c.s);
    s
}

/// HL7 DTM with offset: `20260114083000-0500`.
pub fn hl7_dtm(t: i64, off: i32) -> String {
    let mut s = String::with_capacity(19);
    push_hl7_dtm(&mut s, t, off);
    s
}

/// Append an HL7 DTM with offset.
pub fn push_hl7_dtm(s: &mut String, t: i64, off: i32) {
    let c = civil(t + off as i64);
    push_date(s, &c, false);
    push2(s, c.h);
    push2(s, c.mi);
    push2(s, c.s);
    push_offset(s, off, false);
}

/// `01/14/2026 08:30` (seconds appended only when non-zero) in local wall time.
pub fn us_local(t: i64, off: i32) -> String {
    let c = civil(t + off as i64);
    let mut s = String::with_capacity(19);
    push2(&mut s, c.mo);
    s.push('/');
    push2(&mut s, c.d);
    s.push('/');
    push4(&mut s, c.y);
    s.push(' ');
    push2(&mut s, c.h);
    s.push(':');
    push2(&mut s, c.mi);
    if c.s != 0 {
        s.push(':');
        push2(&mut s, c.s);
    }
    s
}

/// RFC 2822: `Wed, 14 Jan 2026 08:30:00 -0500`.
pub fn rfc2822(t: i64, off: i32) -> String {
    const DOW: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let wall = t + off as i64;
    let c = civil(wall);
    let mut s = String::with_capacity(31);
    s.push_str(DOW[weekday(wall.div_euclid(DAY))]);
    s.push_str(", ");
    push2(&mut s, c.d);
    s.push(' ');
    s.push_str(MON[(c.mo - 1) as usize]);
    s.push(' ');
    push4(&mut s, c.y);
    s.push(' ');
    push2(&mut s, c.h);
    s.push(':');
    push2(&mut s, c.mi);
    s.push(':');
    push2(&mut s, c.s);
    s.push(' ');
    push_offset(&mut s, off, false);
    s
}

/// `2026-01-14 08:30:00-05:00` (space instead of `T`).
pub fn iso_space(t: i64, off: i32) -> String {
    rfc3339_local(t, off).replacen('T', " ", 1)
}

/// `YYYY-MM-DD` of days since epoch.
pub fn ymd(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(10);
    push4(&mut s, y);
    s.push('-');
    push2(&mut s, m);
    s.push('-');
    push2(&mut s, d);
    s
}

/// `YYYYMMDD` of days since epoch (HL7 DT).
pub fn ymd_compact(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(8);
    push4(&mut s, y);
    push2(&mut s, m);
    push2(&mut s, d);
    s
}

/// Add whole years to an instant, keeping month/day/time (Feb 29 → Feb 28).
pub fn add_years(t: i64, years: i64) -> i64 {
    let c = civil(t);
    let d = if c.mo == 2 && c.d == 29 { 28 } else { c.d };
    days_from_civil(c.y + years, c.mo, d) * DAY + (c.h * 3600 + c.mi * 60 + c.s) as i64
}

/// Add whole years to a date (days since epoch).
pub fn add_years_days(days: i64, years: i64) -> i64 {
    let (y, m, d) = civil_from_days(days);
    let d = if m == 2 && d == 29 { 28 } else { d };
    days_from_civil(y + years, m, d)
}

/// Convert seconds to chrono UTC.
pub fn to_utc(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip_and_formats() {
        for z in [-25_567, -1, 0, 1, 11_016, 20_467, 20_468, 47_482] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        let t = 1_768_397_400; // 2026-01-14T13:30:00Z
        assert_eq!(rfc3339_utc(t), "2026-01-14T13:30:00Z");
        assert_eq!(rfc3339_local(t, -5 * 3600), "2026-01-14T08:30:00-05:00");
        assert_eq!(hl7_dtm(t, -5 * 3600), "20260114083000-0500");
        assert_eq!(us_local(t, -5 * 3600), "01/14/2026 08:30");
        assert_eq!(rfc2822(t, -5 * 3600), "Wed, 14 Jan 2026 08:30:00 -0500");
        assert_eq!(iso_local_naive(t, -6 * 3600), "2026-01-14T07:30:00");
        assert_eq!(weekday(days_from_civil(2026, 1, 14)), 2);
        assert_eq!(ymd(days_from_civil(1957, 3, 2)), "1957-03-02");
        assert_eq!(rfc3339_utc(add_years(t, 10)), "2036-01-14T13:30:00Z");
    }

    proptest::proptest! {
        #[test]
        fn formats_parse_back_to_the_same_instant(t in -2_000_000_000i64..6_000_000_000i64, q in -48i32..56) {
            let off = q * 900; // quarter-hour offsets, -12:00..+14:00
            let v = chrono::DateTime::parse_from_rfc3339(&rfc3339_local(t, off)).unwrap();
            proptest::prop_assert_eq!(v.timestamp(), t);
            proptest::prop_assert_eq!(v.offset().local_minus_utc(), off);
            let u = chrono::DateTime::parse_from_rfc3339(&rfc3339_utc(t)).unwrap();
            proptest::prop_assert_eq!(u.timestamp(), t);
            let h = chrono::DateTime::parse_from_str(&hl7_dtm(t, off), "%Y%m%d%H%M%S%z").unwrap();
            proptest::prop_assert_eq!(h.timestamp(), t);
            let r = chrono::DateTime::parse_from_rfc2822(&rfc2822(t, off)).unwrap();
            proptest::prop_assert_eq!(r.timestamp(), t);
        }
    }

    #[test]
    fn offsets_follow_dst() {
        let tz: Tz = "America/Chicago".parse().unwrap();
        let jan = days_from_civil(2026, 1, 14) * DAY;
        let jul = days_from_civil(2026, 7, 14) * DAY;
        let table = OffsetTable::new(tz, jan, jul + DAY);
        assert_eq!(table.at(jan + 12 * HOUR), -6 * 3600);
        assert_eq!(table.at(jul + 12 * HOUR), -5 * 3600);
        assert_eq!(
            local_midnight(tz, days_from_civil(2026, 1, 14)),
            jan + 6 * HOUR
        );
    }
}
