//! When things happen within a day: hours of activity in China time, the
//! rare events near midnight, and how timestamps are written.

use super::calendar::US_PER_SEC;
use super::fmt::TsStyle;
use super::rng::Rng;

/// Relative weight of each China-time hour 07–21 for teachers on school days.
const TEACHER_SCHOOL_HOURS: [u32; 15] = [2, 6, 8, 8, 6, 3, 4, 7, 7, 6, 4, 3, 4, 5, 4];
/// The same at weekends and on holidays (later, flatter).
const TEACHER_FREE_HOURS: [u32; 15] = [1, 2, 4, 5, 4, 3, 3, 4, 4, 4, 3, 4, 5, 6, 5];
/// Students and parents: mornings before class, evenings after.
const STUDENT_HOURS: [u32; 15] = [3, 2, 2, 2, 2, 3, 2, 2, 2, 4, 6, 8, 9, 9, 6];
/// Share of events placed within an hour of midnight China time, where the
/// UTC date and the China date differ.
const NEAR_MIDNIGHT: f64 = 0.015;

fn pick(rng: &mut Rng, weights: &[u32; 15]) -> u32 {
    if rng.chance(NEAR_MIDNIGHT) {
        // 23:00–23:59 or 00:00–00:59
        let hour = if rng.chance(0.5) { 23 } else { 0 };
        return hour * 3600 + rng.below(3600) as u32;
    }
    let h = 7 + rng.weighted(weights) as u32;
    h * 3600 + rng.below(3600) as u32
}

/// A teacher's second of the China day (mostly 07:00–22:00).
pub fn teacher_second(rng: &mut Rng, school_day: bool) -> u32 {
    pick(
        rng,
        if school_day {
            &TEACHER_SCHOOL_HOURS
        } else {
            &TEACHER_FREE_HOURS
        },
    )
}

/// A student's or parent's second of the China day.
pub fn student_second(rng: &mut Rng) -> u32 {
    pick(rng, &STUDENT_HOURS)
}

/// A second after `first`, mostly before 22:00, always within the day.
pub fn later_second(rng: &mut Rng, first: u32) -> u32 {
    let end = 22 * 3600u32;
    let span = if first + 1800 < end {
        end - first
    } else {
        1800
    };
    (first + 1 + rng.below(span as u64) as u32).min(86_399)
}

/// The style of a timestamp: mostly `+08:00`, some UTC, some fractions.
pub fn style(rng: &mut Rng) -> TsStyle {
    match rng.weighted(&[72, 10, 4, 11, 3]) {
        0 => TsStyle::China,
        1 => TsStyle::ChinaMillis,
        2 => TsStyle::ChinaMicros,
        3 => TsStyle::Utc,
        _ => TsStyle::UtcMillis,
    }
}

/// The instant of second `sod` of the day starting at `day_start_us`, with a
/// random sub-second part, truncated to what `style` writes.
pub fn instant(rng: &mut Rng, day_start_us: i64, sod: u32, style: TsStyle) -> i64 {
    style.truncate(day_start_us + sod as i64 * US_PER_SEC + rng.below(US_PER_SEC as u64) as i64)
}
