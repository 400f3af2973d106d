//! The generator's knobs, their defaults and their validation.

use super::calendar::parse_month;
use super::names::COUNTIES;

/// Everything that determines the generated data. The same configuration
/// always produces byte-identical output.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Year of the month to generate.
    pub year: i32,
    /// Month to generate, 1–12.
    pub month: u32,
    /// Number of schools (≥ 1).
    pub schools: u32,
    /// Mean roster teachers per school; actual sizes vary around it.
    pub teachers_per_school: u32,
    /// Mean roster students per school; actual sizes vary around it.
    pub students_per_school: u32,
    /// Number of counties the schools are spread over (1 to the size of the
    /// built-in table of real Zhejiang counties).
    pub counties: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Days at the end of the previous month that are generated too, so that
    /// login streaks and tasks cross the month boundary.
    pub lead_days: u32,
    /// Share of events re-sent as an exact duplicate line a little later.
    pub duplicate_share: f64,
    /// Share of lines that are malformed (one of every rejected kind).
    pub malformed_share: f64,
    /// Share of lines over 64 KiB (reason `too_large`); 0 by default.
    pub oversize_share: f64,
    /// The longest delay, in hours, between an event's `ts` and its place in
    /// arrival order (0–48).
    pub disorder_hours: f64,
    /// Scales how many events an active user produces in a day (repeated
    /// logins, lessons, space operations, interactions, app uses, resource
    /// propagation); who is active does not change. 1.0 = the built-in model.
    pub activity: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            year: 2026,
            month: 11,
            schools: 20,
            teachers_per_school: 40,
            students_per_school: 600,
            counties: 1,
            seed: 1,
            lead_days: 10,
            duplicate_share: 0.01,
            malformed_share: 0.001,
            oversize_share: 0.0,
            disorder_hours: 36.0,
            activity: 1.0,
        }
    }
}

impl GenConfig {
    /// Sets `year` and `month` from `YYYY-MM`.
    pub fn set_month(&mut self, s: &str) -> Result<(), String> {
        let (y, m) = parse_month(s)?;
        self.year = y as i32;
        self.month = m;
        Ok(())
    }

    /// Checks every knob; the error names the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.month) {
            return Err(format!("month {} is not between 1 and 12", self.month));
        }
        if !(1970..=9999).contains(&self.year) {
            return Err(format!("year {} is not between 1970 and 9999", self.year));
        }
        if self.schools == 0 {
            return Err("--schools must be at least 1".into());
        }
        if self.teachers_per_school == 0 {
            return Err("--teachers-per-school must be at least 1".into());
        }
        if self.teachers_per_school > 5000 {
            return Err("--teachers-per-school must be at most 5000".into());
        }
        if self.students_per_school > 50_000 {
            return Err("--students-per-school must be at most 50000".into());
        }
        let max_counties = COUNTIES.len() as u32;
        if self.counties == 0 || self.counties > max_counties {
            return Err(format!("--counties must be between 1 and {max_counties}"));
        }
        if self.counties > self.schools {
            return Err(format!(
                "--counties {} is more than --schools {}: every county needs a school",
                self.counties, self.schools
            ));
        }
        if self.schools.div_ceil(self.counties) > 9999 {
            return Err(
                "at most 9999 schools per county (school ids have 4 digits for the school)".into(),
            );
        }
        if self.lead_days > 60 {
            return Err("--lead-days must be at most 60".into());
        }
        for (name, v) in [
            ("--duplicate-share", self.duplicate_share),
            ("--malformed-share", self.malformed_share),
            ("--oversize-share", self.oversize_share),
        ] {
            if !(0.0..=0.5).contains(&v) {
                return Err(format!("{name} must be between 0 and 0.5, got {v}"));
            }
        }
        if !(0.0..=48.0).contains(&self.disorder_hours) {
            return Err(format!(
                "--disorder-hours must be between 0 and 48, got {}",
                self.disorder_hours
            ));
        }
        if !(self.activity > 0.0 && self.activity <= 100.0) {
            return Err(format!(
                "--activity must be above 0 and at most 100, got {}",
                self.activity
            ));
        }
        Ok(())
    }
}
