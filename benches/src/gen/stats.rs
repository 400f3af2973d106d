//! What a run produced.

use std::collections::BTreeMap;
use std::fmt;

/// Counts of a generation run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenStats {
    /// Distinct events written (first copies).
    pub events: u64,
    /// Exact duplicate lines (re-sent events).
    pub duplicates: u64,
    /// Malformed lines (all kinds, `too_large` included).
    pub malformed: u64,
    /// Malformed lines by the reason code an ingest must give them.
    pub malformed_by_reason: BTreeMap<&'static str, u64>,
    /// All lines written.
    pub lines: u64,
    /// Bytes of the event lines, newlines included.
    pub bytes: u64,
    /// Schools on the roster.
    pub schools: u64,
    /// Teachers (roster and unlisted).
    pub teachers: u64,
    /// Of those, the teachers left out of `users.csv` on purpose.
    pub unlisted_teachers: u64,
    /// Roster students.
    pub students: u64,
    /// Wall time of the run in seconds.
    pub seconds: f64,
}

impl GenStats {
    /// Lines per second of wall time.
    pub fn lines_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.lines as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for GenStats {
    /// One line: `events 1234567, duplicates …, malformed …, teachers … (… not
    /// in users.csv), students …, 2.1 s, 580000 events/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "events {}, duplicates {}, malformed {}, lines {}, schools {}, teachers {} ({} not in users.csv), students {}, {:.2} s, {:.0} events/s",
            self.events,
            self.duplicates,
            self.malformed,
            self.lines,
            self.schools,
            self.teachers,
            self.unlisted_teachers,
            self.students,
            self.seconds,
            self.lines_per_second()
        )
    }
}
