//! Instants and calendar days, without a date library on the hot path.
//!
//! Instants are microseconds since the Unix epoch (UTC), the unit of the lake's
//! `Timestamp(µs, "UTC")` columns. Days are days since the epoch, the unit of Arrow's
//! `Date32`.

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Microseconds in one second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// The instants an event may state (`ts`, `published_at`): those whose day is
/// within the years 1–9999 in every time zone a profile can have (offsets up
/// to ±23:59), from 0001-01-02T00:00:00Z up to, not including,
/// 9999-12-31T00:00:00Z. A day outside those years has no `day=YYYY-MM-DD`
/// partition name that readers parse, nor a Spark date.
pub const EVENT_INSTANTS: std::ops::Range<i64> =
    -719_161 * MICROS_PER_DAY..2_932_896 * MICROS_PER_DAY;

/// Parses an RFC 3339 timestamp with a mandatory offset (`Z` or `±HH:MM`) and an
/// optional fraction, into microseconds since the epoch. Digits of the fraction past
/// the sixth are truncated. Returns `None` for anything else (no offset, a space
/// instead of `T`, out-of-range fields, a leap second).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_seconds = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Some(seconds * MICROS_PER_SECOND + micros)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in `month` (1–12) of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The calendar day of an instant in a fixed offset from UTC.
#[inline]
pub fn day_of(micros: i64, offset_seconds: i32) -> i32 {
    (micros + i64::from(offset_seconds) * MICROS_PER_SECOND).div_euclid(MICROS_PER_DAY) as i32
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_day(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) {
        return None;
    }
    Some(days_from_civil(i64::from(y), m, d) as i32)
}

/// Parses a fixed UTC offset `Z`, `+HH:MM` or `-HH:MM` into seconds east of UTC.
pub fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s == "+00:00" {
        return Some(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let (h, m) = (digits(b, 1, 2)?, digits(b, 4, 2)?);
    if h > 23 || m > 59 {
        return None;
    }
    let v = (h * 3600 + m * 60) as i32;
    match b[0] {
        b'+' => Some(v),
        b'-' => Some(-v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_of_events_md() {
        let a = parse_rfc3339("2026-11-03T08:15:30+08:00").unwrap();
        let b = parse_rfc3339("2026-11-03T00:15:30Z").unwrap();
        assert_eq!(a, b);
        let c = parse_rfc3339("2026-11-03T00:15:30.250Z").unwrap();
        assert_eq!(c - b, 250_000);
        let d = parse_rfc3339("2026-11-03T00:15:30.1234567z").unwrap();
        assert_eq!(d - b, 123_456);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59-00:00"), Some(-1_000_000));
    }

    #[test]
    fn refuses_what_is_not_rfc3339_with_an_offset() {
        for s in [
            "2026/10/05 10:00",
            "2026-10-05T10:00:00",
            "2026-10-05 10:00:00Z",
            "2026-10-05T10:00Z",
            "2026-02-29T10:00:00Z",
            "2026-10-05T24:00:00Z",
            "2026-10-05T10:00:60Z",
            "2026-10-05T10:00:00.Z",
            "2026-10-05T10:00:00+0800",
            "2026-10-05T10:00:00+08:00 ",
            "2026-10-05T10:00:00+24:00",
            "",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
        assert!(parse_rfc3339("2028-02-29T10:00:00Z").is_some());
        // the bounds of what an event may state are those days, UTC
        let (first, end) = (EVENT_INSTANTS.start, EVENT_INSTANTS.end);
        assert_eq!(Some(first), parse_rfc3339("0001-01-02T00:00:00Z"));
        assert_eq!(Some(end), parse_rfc3339("9999-12-31T00:00:00Z"));
        assert_eq!(
            i64::from(day_of(first, -(23 * 3600 + 59 * 60))),
            days_from_civil(1, 1, 1)
        );
        assert_eq!(
            i64::from(day_of(end - 1, 23 * 3600 + 59 * 60)),
            days_from_civil(9999, 12, 31)
        );
    }

    #[test]
    fn day_in_china_time() {
        let t = parse_rfc3339("2026-11-02T16:30:00Z").unwrap();
        assert_eq!(format_day(day_of(t, 8 * 3600)), "2026-11-03");
        assert_eq!(format_day(day_of(t, 0)), "2026-11-02");
        let t = parse_rfc3339("1969-12-31T23:00:00Z").unwrap();
        assert_eq!(day_of(t, 0), -1);
    }

    #[test]
    fn civil_round_trip() {
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(
            parse_day("2026-11-03").map(format_day).as_deref(),
            Some("2026-11-03")
        );
        assert_eq!(parse_day("2026-13-03"), None);
    }
}
