//! Civil dates, China time and school days, without a date library.
//!
//! Days are counted from 1970-01-01 (day 0). Instants are microseconds since
//! the Unix epoch, UTC. China time is UTC+08:00 all year (no daylight saving).
//! The generator shares no code with the crates it feeds (not even these
//! date algorithms, which `huoyue-schemas` has too), so that a bug in one is
//! not written into the data that tests it.

/// Microseconds in one second.
pub const US_PER_SEC: i64 = 1_000_000;
/// Seconds in one day.
pub const SECS_PER_DAY: i64 = 86_400;
/// The China time offset in seconds (+08:00).
pub const CHINA_OFFSET_SECS: i64 = 8 * 3600;

/// Days since 1970-01-01 of the civil date `y-m-d` (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(y, m, d)` of a day count (inverse of [`days_from_civil`]).
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

/// Number of days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as u32
}

/// Day of the week, Monday = 0 … Sunday = 6.
pub fn weekday(day: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (day + 3).rem_euclid(7) as u32
}

/// The instant (µs) at which `day` starts in China time.
pub fn china_day_start_us(day: i64) -> i64 {
    (day * SECS_PER_DAY - CHINA_OFFSET_SECS) * US_PER_SEC
}

/// The instant (µs) at which month `m` of year `y` ends in China time.
pub fn month_end_us(y: i64, m: u32) -> i64 {
    china_day_start_us(days_from_civil(y, m, 1) + i64::from(days_in_month(y, m)))
}

/// A fixed-date public holiday on which schools are closed: New Year's Day,
/// Labour Day (1–5 May) and National Day week (1–7 October). Spring Festival
/// moves with the lunar calendar and the summer break with the province, so
/// both are left out: every other weekday is a school day.
pub fn is_holiday(day: i64) -> bool {
    let (_, m, d) = civil_from_days(day);
    matches!((m, d), (1, 1) | (5, 1..=5) | (10, 1..=7))
}

/// Monday to Friday and not a holiday.
pub fn is_school_day(day: i64) -> bool {
    weekday(day) < 5 && !is_holiday(day)
}

/// Parses `YYYY-MM` (year 1970–9999, month 01–12).
pub fn parse_month(s: &str) -> Result<(i64, u32), String> {
    let bad = || format!("--month must be YYYY-MM (e.g. 2026-11), got {s:?}");
    let b = s.as_bytes();
    if b.len() != 7
        || b[4] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
    {
        return Err(bad());
    }
    let y: i64 = s[..4].parse().map_err(|_| bad())?;
    let m: u32 = s[5..].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) {
        return Err(format!("--month {s}: month {m} is not between 01 and 12"));
    }
    if y < 1970 {
        return Err(format!("--month {s}: year before 1970"));
    }
    Ok((y, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in -1000..30_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn weekdays_and_month_lengths() {
        // 2026-11-03 is a Tuesday.
        assert_eq!(weekday(days_from_civil(2026, 11, 3)), 1);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2026, 11), 30);
        assert!(!is_school_day(days_from_civil(2026, 10, 5)));
        assert!(is_school_day(days_from_civil(2026, 11, 3)));
    }

    #[test]
    fn month_parsing() {
        assert_eq!(parse_month("2026-11"), Ok((2026, 11)));
        assert!(parse_month("2026-13").unwrap_err().contains("month 13"));
        assert!(parse_month("2026-1").is_err());
        assert!(parse_month("26-11-01").is_err());
    }
}
