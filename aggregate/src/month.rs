//! Calendar months and days, as the job names them (`YYYY-MM`, `YYYY-MM-DD`).

use std::fmt;

use crate::error::{AggregateError, Result};

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year, 1000–9999.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM` strictly (four-digit year, two-digit month 01–12).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || AggregateError::InvalidMonth(s.to_string());
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !all_digits(&b[..4]) || !all_digits(&b[5..]) {
            return Err(bad());
        }
        let year: i32 = s[..4].parse().map_err(|_| bad())?;
        let month: u32 = s[5..].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1000 {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The number of days of the month (`D` in monthly.md).
    pub fn days(&self) -> u32 {
        days_in_month(self.year, self.month)
    }

    /// The first day, `YYYY-MM-01`.
    pub fn first_day(&self) -> Day {
        Day {
            year: self.year,
            month: self.month,
            day: 1,
        }
    }

    /// The last day of the month.
    pub fn last_day(&self) -> Day {
        Day {
            year: self.year,
            month: self.month,
            day: self.days(),
        }
    }

    /// 1 January of the month's year (the start of `ytd_points`).
    pub fn year_start(&self) -> Day {
        Day {
            year: self.year,
            month: 1,
            day: 1,
        }
    }

    /// Every day of the month, in order.
    pub fn each_day(&self) -> impl Iterator<Item = Day> + '_ {
        (1..=self.days()).map(|day| Day {
            year: self.year,
            month: self.month,
            day,
        })
    }

    /// `2026年9月`, as the report titles write it.
    pub fn chinese(&self) -> String {
        format!("{}年{}月", self.year, self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    /// The year.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, from 1.
    pub day: u32,
}

impl Day {
    /// Parses `YYYY-MM-DD` strictly, checking that the day exists.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || AggregateError::InvalidDay(s.to_string());
        let b = s.as_bytes();
        if b.len() != 10 || b[7] != b'-' {
            return Err(bad());
        }
        let month = Month::parse(&s[..7]).map_err(|_| bad())?;
        if !all_digits(&b[8..]) {
            return Err(bad());
        }
        let day: u32 = s[8..].parse().map_err(|_| bad())?;
        if day == 0 || day > month.days() {
            return Err(bad());
        }
        Ok(Self {
            year: month.year,
            month: month.month,
            day,
        })
    }

    /// The month of the day.
    pub fn month(&self) -> Month {
        Month {
            year: self.year,
            month: self.month,
        }
    }

    /// `9月15日`, as the report writes a day of the month.
    pub fn chinese_short(&self) -> String {
        format!("{}月{}日", self.month, self.day)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn all_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(Month::parse("2026-09").unwrap().days(), 30);
        assert_eq!(Month::parse("2024-02").unwrap().days(), 29);
        assert_eq!(Month::parse("1900-02").unwrap().days(), 28);
        assert_eq!(Month::parse("2000-02").unwrap().days(), 29);
        for bad in [
            "2026-13",
            "2026-00",
            "2026-9",
            "26-09",
            "2026/09",
            "2026-09-01",
            "",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Month::parse("2026-09").unwrap().last_day().to_string(),
            "2026-09-30"
        );
    }

    #[test]
    fn days_parse_strictly() {
        assert_eq!(Day::parse("2026-02-28").unwrap().day, 28);
        for bad in [
            "2026-02-29",
            "2026-09-31",
            "2026-09-00",
            "2026-9-01",
            "2026-09-1x",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
    }
}
