//! Hand-written formatting into a byte buffer: integers and RFC 3339
//! timestamps, with no allocation beyond the buffer's own growth.

use super::calendar::{CHINA_OFFSET_SECS, SECS_PER_DAY, US_PER_SEC, civil_from_days};

/// How an instant is written. The spec accepts any RFC 3339 offset; real
/// platforms send mostly `+08:00`, some gateways re-stamp in UTC, and some
/// clients add a fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TsStyle {
    /// `2026-11-03T08:15:30+08:00`
    China,
    /// `2026-11-03T08:15:30.250+08:00`
    ChinaMillis,
    /// `2026-11-03T08:15:30.250123+08:00`
    ChinaMicros,
    /// `2026-11-03T00:15:30Z`
    Utc,
    /// `2026-11-03T00:15:30.250Z`
    UtcMillis,
}

impl TsStyle {
    /// Rounds an instant to the precision this style writes, so that the
    /// written text is exactly the instant the generator reasons with.
    #[inline]
    pub fn truncate(self, us: i64) -> i64 {
        match self {
            TsStyle::China | TsStyle::Utc => us - us.rem_euclid(US_PER_SEC),
            TsStyle::ChinaMillis | TsStyle::UtcMillis => us - us.rem_euclid(1000),
            TsStyle::ChinaMicros => us,
        }
    }
}

/// Appends the decimal digits of `n`.
#[inline]
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `n` zero-padded to at least `width` digits.
#[inline]
pub fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = tmp.len() - i;
    for _ in digits..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[inline]
fn push2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Appends `YYYY-MM-DD` of a day count.
pub fn push_date(buf: &mut Vec<u8>, day: i64) {
    let (y, m, d) = civil_from_days(day);
    push_padded(buf, y.max(0) as u64, 4);
    buf.push(b'-');
    push2(buf, m);
    buf.push(b'-');
    push2(buf, d);
}

/// Appends `YYYYMMDD` of a day count.
pub fn push_date_compact(buf: &mut Vec<u8>, day: i64) {
    let (y, m, d) = civil_from_days(day);
    push_padded(buf, y.max(0) as u64, 4);
    push2(buf, m);
    push2(buf, d);
}

/// Appends the RFC 3339 text of instant `us` (µs since the epoch) in `style`.
pub fn push_ts(buf: &mut Vec<u8>, us: i64, style: TsStyle) {
    let china = matches!(
        style,
        TsStyle::China | TsStyle::ChinaMillis | TsStyle::ChinaMicros
    );
    let secs = us.div_euclid(US_PER_SEC) + if china { CHINA_OFFSET_SECS } else { 0 };
    let frac = us.rem_euclid(US_PER_SEC) as u64;
    let day = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
    push_date(buf, day);
    buf.push(b'T');
    push2(buf, sod / 3600);
    buf.push(b':');
    push2(buf, sod / 60 % 60);
    buf.push(b':');
    push2(buf, sod % 60);
    match style {
        TsStyle::ChinaMillis | TsStyle::UtcMillis => {
            buf.push(b'.');
            push_padded(buf, frac / 1000, 3);
        }
        TsStyle::ChinaMicros => {
            buf.push(b'.');
            push_padded(buf, frac, 6);
        }
        TsStyle::China | TsStyle::Utc => {}
    }
    if china {
        buf.extend_from_slice(b"+08:00");
    } else {
        buf.push(b'Z');
    }
}

#[cfg(test)]
mod tests {
    use super::super::calendar::days_from_civil;
    use super::*;

    fn ts(us: i64, style: TsStyle) -> String {
        let mut b = Vec::new();
        push_ts(&mut b, us, style);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn integers() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        b.push(b' ');
        push_u64(&mut b, 18_446_744_073_709_551_615);
        b.push(b' ');
        push_padded(&mut b, 42, 4);
        b.push(b' ');
        push_padded(&mut b, 123_456, 3);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "0 18446744073709551615 0042 123456"
        );
    }

    #[test]
    fn timestamps_in_both_offsets() {
        // 2026-11-03T00:15:30.250123Z
        let us = (days_from_civil(2026, 11, 3) * 86_400 + 15 * 60 + 30) * 1_000_000 + 250_123;
        assert_eq!(ts(us, TsStyle::Utc), "2026-11-03T00:15:30Z");
        assert_eq!(ts(us, TsStyle::UtcMillis), "2026-11-03T00:15:30.250Z");
        assert_eq!(ts(us, TsStyle::China), "2026-11-03T08:15:30+08:00");
        assert_eq!(
            ts(us, TsStyle::ChinaMicros),
            "2026-11-03T08:15:30.250123+08:00"
        );
        assert_eq!(
            ts(us, TsStyle::ChinaMillis),
            "2026-11-03T08:15:30.250+08:00"
        );
        // 16:30Z is the next day in China.
        let late = (days_from_civil(2026, 11, 2) * 86_400 + 16 * 3600 + 30 * 60) * 1_000_000;
        assert_eq!(ts(late, TsStyle::China), "2026-11-03T00:30:00+08:00");
        assert_eq!(TsStyle::China.truncate(us) % 1_000_000, 0);
        assert_eq!(TsStyle::UtcMillis.truncate(us) % 1_000, 0);
    }
}
