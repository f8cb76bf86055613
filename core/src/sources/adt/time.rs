//! Source timestamps: HL7 DTM, ISO 8601 / RFC 3339 and US `MM/DD/YYYY` forms, and birth dates.
//!
//! Parsing keeps what the source said — the local wall-clock time, the offset if one was given, the
//! precision and the format — so Silver can report mixed formats and zone-less times. Conversion to UTC
//! ([`SourceTime::to_utc`]) uses the offset when present, else the hospital's IANA zone with a fixed DST
//! policy. Nothing here reads the clock.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;

/// How much of a timestamp the source gave. Missing parts read as their minimum (month 1, day 1, 00:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// `YYYY`
    Year,
    /// `YYYYMM`
    Month,
    /// A date.
    Day,
    /// Date and hour.
    Hour,
    /// Date, hour and minute.
    Minute,
    /// To the second.
    Second,
    /// With fractional seconds.
    Fraction,
}

/// The textual form a timestamp arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeFormat {
    /// HL7 DTM: `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`.
    Hl7Dtm,
    /// ISO 8601 / RFC 3339: `YYYY-MM-DD[THH:MM[:SS[.S+]]][Z|±HH:MM|±HHMM|±HH]`.
    Iso8601,
    /// ISO 8601 with a space between date and time (`YYYY-MM-DD HH:MM:SS`), as SQL databases write.
    IsoSpace,
    /// US slash form: `M/D/YYYY[ H:MM[:SS][ AM|PM]]`.
    UsSlash,
    /// RFC 2822 (`Wed, 14 Jan 2026 08:30:00 -0500`).
    Rfc2822,
}

/// A parsed source timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTime {
    /// The wall-clock time as written (in `offset` if present, else in the hospital's local time).
    pub local: NaiveDateTime,
    /// The UTC offset the source stated, if any.
    pub offset: Option<FixedOffset>,
    /// How much of the timestamp was given.
    pub precision: Precision,
    /// The form it arrived in.
    pub format: TimeFormat,
}

/// Why a timestamp or date could not be read. Messages name the part at fault, never the whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Nothing but whitespace.
    #[error("empty time value")]
    Empty,
    /// Not any accepted format.
    #[error("unrecognised time format: {0}")]
    Unrecognized(&'static str),
    /// The right shape, but an impossible value (month 13, Feb 30, hour 25, offset +2500, ...).
    #[error("invalid time value: {0}")]
    Invalid(String),
    /// The instant falls outside the representable range.
    #[error("time out of range")]
    OutOfRange,
}

/// How a time was placed on the UTC time line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalReading {
    /// The source stated a UTC offset: the zone was not needed.
    Offset,
    /// A zone-less local time that happens exactly once in the zone.
    Unique,
    /// A zone-less local time in the spring-forward gap: it never happened on the wall clock, and was
    /// shifted forward by the length of the gap (a guess at what the source meant).
    Nonexistent,
    /// A zone-less local time in the fall-back overlap: it happened twice, and the earlier instant was
    /// taken (a guess at what the source meant).
    Ambiguous,
}

/// An instant and how the source's time was read to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTime {
    /// The instant.
    pub utc: DateTime<Utc>,
    /// Which case of the DST policy applied.
    pub reading: LocalReading,
}

impl SourceTime {
    /// The instant in UTC: [`SourceTime::resolve`] without the case it took.
    pub fn to_utc(&self, zone: Tz) -> Result<DateTime<Utc>, TimeError> {
        self.resolve(zone).map(|r| r.utc)
    }

    /// The instant in UTC, and which case of the DST policy gave it.
    ///
    /// With a stated offset, that offset is used and `zone` is ignored. Without one, `local` is read as
    /// wall-clock time in `zone` (the hospital's IANA zone), with this DST policy:
    /// - a **nonexistent** local time (in the spring-forward gap) is shifted forward by the length of the
    ///   gap — it is read with the offset in force just before the gap, so 02:30 on a spring-forward day
    ///   in America/Chicago becomes 03:30 CDT (08:30 UTC);
    /// - an **ambiguous** local time (in the repeated fall-back hour) takes the *earlier* instant, i.e.
    ///   the daylight-time reading (01:30 on a fall-back day in America/Chicago → 01:30 CDT = 06:30 UTC).
    pub fn resolve(&self, zone: Tz) -> Result<ResolvedTime, TimeError> {
        let (offset_secs, reading) = match self.offset {
            Some(off) => (off.local_minus_utc(), LocalReading::Offset),
            None => match zone.from_local_datetime(&self.local) {
                LocalResult::Single(t) => {
                    (t.offset().fix().local_minus_utc(), LocalReading::Unique)
                }
                LocalResult::Ambiguous(a, b) => {
                    // Earlier instant = the larger offset (east-most reading).
                    let offset = a
                        .offset()
                        .fix()
                        .local_minus_utc()
                        .max(b.offset().fix().local_minus_utc());
                    (offset, LocalReading::Ambiguous)
                }
                LocalResult::None => {
                    // In a gap: use the offset in force a day before (i.e. before the transition).
                    let before = self
                        .local
                        .checked_sub_signed(Duration::days(1))
                        .ok_or(TimeError::OutOfRange)?;
                    let offset = zone
                        .offset_from_utc_datetime(&before)
                        .fix()
                        .local_minus_utc();
                    (offset, LocalReading::Nonexistent)
                }
            },
        };
        let utc = self
            .local
            .checked_sub_signed(Duration::seconds(i64::from(offset_secs)))
            .ok_or(TimeError::OutOfRange)?;
        Ok(ResolvedTime {
            utc: Utc.from_utc_datetime(&utc),
            reading,
        })
    }
}

/// Parses a source timestamp in any accepted form (see [`TimeFormat`]). Surrounding whitespace is
/// ignored. HL7 fractions may have 1–9 digits (the standard says up to 4; longer ones are common).
pub fn parse_source_time(s: &str) -> Result<SourceTime, TimeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TimeError::Empty);
    }
    let b = s.as_bytes();
    if s.contains('/') {
        parse_us(s)
    } else if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        // `YYYY-ZZZZ` is a year-precision DTM with an offset, not an ISO date.
        parse_iso(s).or_else(|e| parse_dtm(s).map_err(|_| e))
    } else if b[0].is_ascii_digit() {
        parse_dtm(s)
    } else if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        // E-mail style `Wed, 14 Jan 2026 08:30:00 -0500`, as some interface engines write.
        Ok(SourceTime {
            local: t.naive_local(),
            offset: Some(*t.offset()),
            precision: Precision::Second,
            format: TimeFormat::Rfc2822,
        })
    } else {
        Err(TimeError::Unrecognized(
            "expected HL7 DTM, ISO 8601, RFC 2822 or MM/DD/YYYY",
        ))
    }
}

/// Parses a birth date: `YYYY-MM-DD`, `YYYYMMDD` or `MM/DD/YYYY`; also any timestamp of
/// [`parse_source_time`] to at least day precision (HL7 PID-7 is a DTM such as `19890118000000`), whose
/// written calendar date is taken as is (no zone conversion: a birth date is a date).
pub fn parse_date(s: &str) -> Result<NaiveDate, TimeError> {
    let t = parse_source_time(s)?;
    if t.precision < Precision::Day {
        return Err(TimeError::Invalid(
            "a date needs a year, month and day".into(),
        ));
    }
    Ok(t.local.date())
}

/// A cursor over ASCII digits and punctuation.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn new(s: &'a str) -> Self {
        Cur {
            b: s.as_bytes(),
            pos: 0,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` digits, as a number and the count read.
    /// (The value saturates; callers only read short numbers from it.)
    fn digits(&mut self, min: usize, max: usize) -> Option<(u32, usize)> {
        let start = self.pos;
        let mut n: u32 = 0;
        while self.pos - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            n = n
                .saturating_mul(10)
                .saturating_add(u32::from(self.b[self.pos] - b'0'));
            self.pos += 1;
        }
        let len = self.pos - start;
        (len >= min).then_some((n, len))
    }

    /// Fraction digits after a `.`/`,` (1–9), as nanoseconds.
    fn fraction(&mut self) -> Result<u32, TimeError> {
        let (n, len) = self.digits(1, 9).ok_or(TimeError::Unrecognized(
            "expected 1-9 digits of fractional seconds",
        ))?;
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(TimeError::Unrecognized("more than 9 fractional digits"));
        }
        Ok(n * 10u32.pow(9 - len as u32))
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos.min(self.b.len())..]
    }
}

/// The date and time parts, before validation.
#[derive(Default)]
struct Parts {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Parts {
    fn build(&self) -> Result<NaiveDateTime, TimeError> {
        let bad = |what: &str| Err(TimeError::Invalid(what.to_string()));
        if !(1..=12).contains(&self.month) {
            return bad(&format!("month {} out of range", self.month));
        }
        let Some(date) = NaiveDate::from_ymd_opt(self.year as i32, self.month, self.day) else {
            return bad(&format!(
                "day {} does not exist in {:04}-{:02}",
                self.day, self.year, self.month
            ));
        };
        if self.hour > 23 {
            return bad(&format!("hour {} out of range", self.hour));
        }
        if self.minute > 59 {
            return bad(&format!("minute {} out of range", self.minute));
        }
        if self.second > 59 {
            return bad(&format!("second {} out of range", self.second));
        }
        let time = NaiveTime::from_hms_nano_opt(self.hour, self.minute, self.second, self.nanos)
            .ok_or_else(|| TimeError::Invalid("time of day out of range".into()))?;
        Ok(date.and_time(time))
    }
}

/// An offset of `hours`/`minutes` with `sign`; at most ±14:00, minutes below 60.
fn make_offset(sign: u8, hours: u32, minutes: u32) -> Result<FixedOffset, TimeError> {
    if hours > 14 || minutes > 59 || (hours == 14 && minutes > 0) {
        return Err(TimeError::Invalid(format!(
            "UTC offset {}{hours:02}{minutes:02} out of range",
            sign as char
        )));
    }
    let secs = (hours * 3600 + minutes * 60) as i32;
    let secs = if sign == b'-' { -secs } else { secs };
    FixedOffset::east_opt(secs).ok_or(TimeError::OutOfRange)
}

/// HL7 DTM `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`.
fn parse_dtm(s: &str) -> Result<SourceTime, TimeError> {
    const SHAPE: &str = "HL7 DTM needs 4, 6, 8, 10, 12 or 14 digits, then optional .S and +/-ZZZZ";
    let mut c = Cur::new(s);
    let (_, len) = c.digits(4, 14).ok_or(TimeError::Unrecognized(SHAPE))?;
    let d = &s.as_bytes()[..len];
    let num = |from: usize, to: usize| -> u32 {
        d[from..to]
            .iter()
            .fold(0, |n, &x| n * 10 + u32::from(x - b'0'))
    };
    let precision = match len {
        4 => Precision::Year,
        6 => Precision::Month,
        8 => Precision::Day,
        10 => Precision::Hour,
        12 => Precision::Minute,
        14 => Precision::Second,
        _ => return Err(TimeError::Unrecognized(SHAPE)),
    };
    let at = |from: usize, default: u32| {
        if len > from {
            num(from, from + 2)
        } else {
            default
        }
    };
    let mut parts = Parts {
        year: num(0, 4),
        month: at(4, 1),
        day: at(6, 1),
        hour: at(8, 0),
        minute: at(10, 0),
        second: at(12, 0),
        nanos: 0,
    };
    let mut precision = precision;
    if c.eat(b'.') {
        if len != 14 {
            return Err(TimeError::Unrecognized(
                "HL7 DTM fractional seconds need all 14 date-time digits",
            ));
        }
        parts.nanos = c.fraction()?;
        precision = Precision::Fraction;
    }
    let offset = match c.peek() {
        None => None,
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let (hh, mm) = (c.digits(2, 2), c.digits(2, 2));
            match (hh, mm, c.done()) {
                (Some((h, _)), Some((m, _)), true) => Some(make_offset(sign, h, m)?),
                _ => {
                    return Err(TimeError::Unrecognized(
                        "HL7 DTM offset must be +/-ZZZZ (4 digits)",
                    ))
                }
            }
        }
        Some(_) => return Err(TimeError::Unrecognized(SHAPE)),
    };
    Ok(SourceTime {
        local: parts.build()?,
        offset,
        precision,
        format: TimeFormat::Hl7Dtm,
    })
}

/// ISO 8601 / RFC 3339: `YYYY-MM-DD[(T|t| )HH:MM[:SS[.S+]]][Z|±HH:MM|±HHMM|±HH]`.
fn parse_iso(s: &str) -> Result<SourceTime, TimeError> {
    const SHAPE: &str = "ISO 8601 needs YYYY-MM-DD[THH:MM[:SS[.S]]][Z|+HH:MM]";
    let shape = || TimeError::Unrecognized(SHAPE);
    let mut c = Cur::new(s);
    let year = c.digits(4, 4).ok_or_else(shape)?.0;
    if !c.eat(b'-') {
        return Err(shape());
    }
    let month = c.digits(2, 2).ok_or_else(shape)?.0;
    if !c.eat(b'-') {
        return Err(shape());
    }
    let day = c.digits(2, 2).ok_or_else(shape)?.0;
    let mut parts = Parts {
        year,
        month,
        day,
        ..Parts::default()
    };
    let mut precision = Precision::Day;
    let mut format = TimeFormat::Iso8601;
    if matches!(c.peek(), Some(b'T' | b't' | b' ')) {
        if c.peek() == Some(b' ') {
            format = TimeFormat::IsoSpace;
        }
        c.pos += 1;
        parts.hour = c.digits(2, 2).ok_or_else(shape)?.0;
        if !c.eat(b':') {
            return Err(shape());
        }
        parts.minute = c.digits(2, 2).ok_or_else(shape)?.0;
        precision = Precision::Minute;
        if c.eat(b':') {
            parts.second = c.digits(2, 2).ok_or_else(shape)?.0;
            precision = Precision::Second;
            if c.eat(b'.') || c.eat(b',') {
                parts.nanos = c.fraction()?;
                precision = Precision::Fraction;
            }
        }
    }
    let offset = match c.peek() {
        None => None,
        Some(b'Z' | b'z') if precision > Precision::Day && c.rest().len() == 1 => {
            Some(make_offset(b'+', 0, 0)?)
        }
        Some(sign @ (b'+' | b'-')) if precision > Precision::Day => {
            c.pos += 1;
            let h = c.digits(2, 2).ok_or_else(shape)?.0;
            c.eat(b':');
            let m = if c.done() {
                0
            } else {
                c.digits(2, 2).ok_or_else(shape)?.0
            };
            if !c.done() {
                return Err(shape());
            }
            Some(make_offset(sign, h, m)?)
        }
        Some(_) => return Err(shape()),
    };
    Ok(SourceTime {
        local: parts.build()?,
        offset,
        precision,
        format,
    })
}

/// US slash form `M/D/YYYY[ H:MM[:SS][ AM|PM]]` (month and day first, 1 or 2 digits).
fn parse_us(s: &str) -> Result<SourceTime, TimeError> {
    const SHAPE: &str = "US dates need MM/DD/YYYY[ HH:MM[:SS][ AM|PM]]";
    let shape = || TimeError::Unrecognized(SHAPE);
    let mut c = Cur::new(s);
    let month = c.digits(1, 2).ok_or_else(shape)?.0;
    if !c.eat(b'/') {
        return Err(shape());
    }
    let day = c.digits(1, 2).ok_or_else(shape)?.0;
    if !c.eat(b'/') {
        return Err(shape());
    }
    let year = c.digits(4, 4).ok_or_else(shape)?.0;
    let mut parts = Parts {
        year,
        month,
        day,
        ..Parts::default()
    };
    let mut precision = Precision::Day;
    if c.eat(b' ') || c.eat(b'T') {
        while c.eat(b' ') {}
        parts.hour = c.digits(1, 2).ok_or_else(shape)?.0;
        if !c.eat(b':') {
            return Err(shape());
        }
        parts.minute = c.digits(2, 2).ok_or_else(shape)?.0;
        precision = Precision::Minute;
        if c.eat(b':') {
            parts.second = c.digits(2, 2).ok_or_else(shape)?.0;
            precision = Precision::Second;
        }
        while c.eat(b' ') {}
        let meridiem = std::str::from_utf8(c.rest())
            .unwrap_or("")
            .to_ascii_uppercase();
        match meridiem.as_str() {
            "" => {}
            "AM" | "A.M." | "PM" | "P.M." => {
                if !(1..=12).contains(&parts.hour) {
                    return Err(TimeError::Invalid(format!(
                        "hour {} out of range for a 12-hour clock",
                        parts.hour
                    )));
                }
                let pm = meridiem.starts_with('P');
                parts.hour = match (pm, parts.hour) {
                    (false, 12) => 0,
                    (true, 12) => 12,
                    (true, h) => h + 12,
                    (false, h) => h,
                };
            }
            _ => return Err(shape()),
        }
    } else if !c.done() {
        return Err(shape());
    }
    Ok(SourceTime {
        local: parts.build()?,
        offset: None,
        precision,
        format: TimeFormat::UsSlash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Chicago, New_York};

    fn ndt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn hl7_dtm_precisions() {
        let cases = [
            ("2026", "2026-01-01 00:00:00", Precision::Year),
            ("202602", "2026-02-01 00:00:00", Precision::Month),
            ("20260214", "2026-02-14 00:00:00", Precision::Day),
            ("2026021408", "2026-02-14 08:00:00", Precision::Hour),
            ("202602140830", "2026-02-14 08:30:00", Precision::Minute),
            ("20260214083015", "2026-02-14 08:30:15", Precision::Second),
            (
                "20260214083015.1234",
                "2026-02-14 08:30:15.1234",
                Precision::Fraction,
            ),
            (
                "20210817151943.4",
                "2021-08-17 15:19:43.4",
                Precision::Fraction,
            ),
        ];
        for (s, local, precision) in cases {
            let t = parse_source_time(s).unwrap();
            assert_eq!(t.local, ndt(local), "{s}");
            assert_eq!(t.precision, precision, "{s}");
            assert_eq!(t.format, TimeFormat::Hl7Dtm);
            assert_eq!(t.offset, None);
        }
    }

    #[test]
    fn hl7_dtm_offsets() {
        let t = parse_source_time("198908181126+0215").unwrap();
        assert_eq!(t.offset, FixedOffset::east_opt(2 * 3600 + 15 * 60));
        assert_eq!(t.precision, Precision::Minute);
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("1989-08-18T09:11:00Z"));
        let t = parse_source_time("20210817151943.4+0200").unwrap();
        assert_eq!(t.to_utc(New_York).unwrap(), utc("2021-08-17T13:19:43.4Z"));
        let t = parse_source_time("20260114083000-0500").unwrap();
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-01-14T13:30:00Z"));
        let t = parse_source_time(" 20260114-0600 ").unwrap();
        assert_eq!(t.precision, Precision::Day);
        assert_eq!(t.to_utc(New_York).unwrap(), utc("2026-01-14T06:00:00Z"));
    }

    #[test]
    fn iso_forms() {
        let t = parse_source_time("2026-01-14T08:30:00-05:00").unwrap();
        assert_eq!(t.format, TimeFormat::Iso8601);
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-01-14T13:30:00Z"));
        let t = parse_source_time("2026-01-14T08:30:00Z").unwrap();
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-01-14T08:30:00Z"));
        let t = parse_source_time("2026-01-14 08:30:00").unwrap();
        assert_eq!((t.offset, t.precision), (None, Precision::Second));
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-01-14T14:30:00Z"));
        let t = parse_source_time("2026-01-14T08:30").unwrap();
        assert_eq!(t.precision, Precision::Minute);
        assert_eq!(t.local, ndt("2026-01-14 08:30:00"));
        let t = parse_source_time("2026-01-14T08:30:00.250+0530").unwrap();
        assert_eq!(t.precision, Precision::Fraction);
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-01-14T03:00:00.25Z"));
        let t = parse_source_time("2026-01-14").unwrap();
        assert_eq!(t.precision, Precision::Day);
        let t = parse_source_time("2026-01-14T08:30:00-05").unwrap();
        assert_eq!(t.offset, FixedOffset::west_opt(5 * 3600));
    }

    #[test]
    fn us_slash_forms() {
        let t = parse_source_time("01/14/2026 08:30").unwrap();
        assert_eq!(t.format, TimeFormat::UsSlash);
        assert_eq!(t.local, ndt("2026-01-14 08:30:00"));
        let t = parse_source_time("1/14/2026 8:30 AM").unwrap();
        assert_eq!(t.local, ndt("2026-01-14 08:30:00"));
        let t = parse_source_time("01/14/2026 8:30 pm").unwrap();
        assert_eq!(t.local, ndt("2026-01-14 20:30:00"));
        let t = parse_source_time("01/14/2026 12:05 AM").unwrap();
        assert_eq!(t.local, ndt("2026-01-14 00:05:00"));
        let t = parse_source_time("01/14/2026 12:05:09 PM").unwrap();
        assert_eq!(t.local, ndt("2026-01-14 12:05:09"));
        assert_eq!(t.precision, Precision::Second);
        let t = parse_source_time("01/14/2026").unwrap();
        assert_eq!(t.precision, Precision::Day);
        assert!(parse_source_time("01/14/2026 13:00 PM").is_err());
        assert!(parse_source_time("01/14/2026 0:30 AM").is_err());
    }

    #[test]
    fn invalid_values_have_reasons() {
        let e = parse_source_time("20261314").unwrap_err();
        assert_eq!(e, TimeError::Invalid("month 13 out of range".into()));
        let e = parse_source_time("2026-02-30T10:00").unwrap_err();
        assert_eq!(
            e,
            TimeError::Invalid("day 30 does not exist in 2026-02".into())
        );
        assert!(matches!(
            parse_source_time("2026011425"),
            Err(TimeError::Invalid(_))
        ));
        assert!(matches!(
            parse_source_time("202601142360"),
            Err(TimeError::Invalid(_))
        ));
        assert!(matches!(
            parse_source_time("20260114+2500"),
            Err(TimeError::Invalid(_))
        ));
        assert!(matches!(
            parse_source_time("13/01/2026"),
            Err(TimeError::Invalid(_))
        ));
        assert_eq!(parse_source_time("  "), Err(TimeError::Empty));
        for bad in [
            "abc",
            "20260",
            "2026011408301",
            "202601.5",
            "20260114+05",
            "20260114X",
            "2026-1-14",
            "2026-01-14T8:30",
            "2026-01-14Z",
            "2026-01-14T08:30:00+05:00x",
            "01-14-2026",
            "01/14/26",
            "01/14/2026 08:30 XM",
            "20260114083000.1234567890",
        ] {
            assert!(parse_source_time(bad).is_err(), "{bad:?}");
        }
        for e in [
            parse_source_time("x").unwrap_err(),
            parse_source_time("20261314").unwrap_err(),
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn zone_less_times_use_the_hospital_zone() {
        let t = parse_source_time("20260714083000").unwrap();
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-07-14T13:30:00Z"));
        assert_eq!(t.to_utc(New_York).unwrap(), utc("2026-07-14T12:30:00Z"));
    }

    #[test]
    fn dst_gap_shifts_forward() {
        // 2026-03-08: clocks jump 02:00 -> 03:00 in both zones.
        let t = parse_source_time("20260308023000").unwrap();
        // 02:30 does not exist: read as 03:30 CDT (08:30 UTC) / 03:30 EDT (07:30 UTC).
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-03-08T08:30:00Z"));
        assert_eq!(t.to_utc(New_York).unwrap(), utc("2026-03-08T07:30:00Z"));
        assert_eq!(
            t.to_utc(Chicago).unwrap(),
            parse_source_time("2026-03-08T03:30:00")
                .unwrap()
                .to_utc(Chicago)
                .unwrap()
        );
        assert_eq!(
            t.resolve(Chicago).unwrap().reading,
            LocalReading::Nonexistent
        );
        // Just around the gap nothing moves.
        let before = parse_source_time("2026-03-08T01:59:00").unwrap();
        assert_eq!(
            before.resolve(Chicago).unwrap().reading,
            LocalReading::Unique
        );
        assert_eq!(before.to_utc(Chicago).unwrap(), utc("2026-03-08T07:59:00Z"));
        let after = parse_source_time("2026-03-08T03:00:00").unwrap();
        assert_eq!(after.to_utc(Chicago).unwrap(), utc("2026-03-08T08:00:00Z"));
    }

    #[test]
    fn dst_overlap_takes_earlier_instant() {
        // 2026-11-01: 01:00-02:00 happens twice.
        let t = parse_source_time("11/01/2026 1:30 AM").unwrap();
        assert_eq!(t.to_utc(Chicago).unwrap(), utc("2026-11-01T06:30:00Z")); // CDT
        assert_eq!(t.to_utc(New_York).unwrap(), utc("2026-11-01T05:30:00Z")); // EDT
        assert_eq!(t.resolve(Chicago).unwrap().reading, LocalReading::Ambiguous);
        let later = parse_source_time("2026-11-01T02:00:00").unwrap();
        assert_eq!(
            later.resolve(Chicago).unwrap().reading,
            LocalReading::Unique
        );
        assert_eq!(later.to_utc(Chicago).unwrap(), utc("2026-11-01T08:00:00Z")); // CST
                                                                                 // An explicit offset picks the second 01:30.
        let second = parse_source_time("202611010130-0600").unwrap();
        assert_eq!(
            second.resolve(Chicago).unwrap().reading,
            LocalReading::Offset
        );
        assert_eq!(second.to_utc(Chicago).unwrap(), utc("2026-11-01T07:30:00Z"));
    }

    #[test]
    fn birth_dates() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(parse_date("1957-03-02").unwrap(), d(1957, 3, 2));
        assert_eq!(parse_date("19570302").unwrap(), d(1957, 3, 2));
        assert_eq!(parse_date("03/02/1957").unwrap(), d(1957, 3, 2));
        assert_eq!(parse_date("19890118000000").unwrap(), d(1989, 1, 18));
        assert_eq!(parse_date("198808181126").unwrap(), d(1988, 8, 18));
        assert_eq!(parse_date("2000-02-29").unwrap(), d(2000, 2, 29));
        assert!(matches!(parse_date("1957"), Err(TimeError::Invalid(_))));
        assert!(matches!(parse_date("19571302"), Err(TimeError::Invalid(_))));
        assert!(matches!(
            parse_date("2001-02-29"),
            Err(TimeError::Invalid(_))
        ));
        assert!(matches!(
            parse_date("02/30/2001"),
            Err(TimeError::Invalid(_))
        ));
        assert!(parse_date("").is_err());
        assert!(parse_date("yesterday").is_err());
    }
}
