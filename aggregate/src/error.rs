//! The one error type of the library, grouped by who is at fault.

use std::path::PathBuf;

/// Everything that can stop a monthly run or a compaction.
///
/// Messages are one line, lowercase, without trailing punctuation: the binary
/// prints them as they are.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    // --- the caller's configuration -------------------------------------
    /// `--month` is not `YYYY-MM` with a month 01–12.
    #[error("invalid month {0:?}: expected YYYY-MM with a month 01-12")]
    InvalidMonth(String),
    /// `--day` is not a calendar date `YYYY-MM-DD`.
    #[error("invalid day {0:?}: expected a date YYYY-MM-DD")]
    InvalidDay(String),
    /// `--profile` names neither a built-in profile nor a readable, valid
    /// file, or `--rules` is invalid.
    #[error("{0}")]
    Profile(String),
    /// `--table` is not a table that compaction knows.
    #[error(
        "cannot compact table {0:?}: expected daily_scores, daily_activity, events or rejected"
    )]
    UnknownTable(String),

    // --- the input (lake, rosters) ----------------------------------------
    /// The lake directory does not exist.
    #[error("lake {} does not exist or is not a directory", .0.display())]
    LakeNotFound(PathBuf),
    /// The month has no `daily_scores` and no `daily_activity` rows.
    #[error("no data for month {month} in {}", .lake.display())]
    NoData {
        /// `YYYY-MM`.
        month: String,
        /// The lake directory.
        lake: PathBuf,
    },
    /// A roster is missing, unreadable or invalid; the message names the file
    /// and the column or line.
    #[error("{0}")]
    Roster(String),
    /// The lake holds something the ingest does not write (a column of
    /// another type, a value outside events.md, a `late` row that does not
    /// decode); the message names the file or day.
    #[error("{0}")]
    InvalidLake(String),
    /// The partitions being replaced changed during the run (an ingest still
    /// writing into the month); nothing was replaced.
    #[error("{0}")]
    Changed(String),
    /// The lake is not in the state the command is for (a file run holds
    /// it, its file-mode state is sound); nothing was changed.
    #[error("{0}")]
    Refused(String),

    // --- external systems (file system, libraries) ------------------------
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another error, with what was being done (the partition being
    /// compacted, say).
    #[error("{context}: {source}")]
    During {
        /// What was being done, naming the path.
        context: String,
        /// The cause.
        #[source]
        source: Box<AggregateError>,
    },
    /// DataFusion failed (planning or execution).
    #[error("query failed: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed (a cast or a batch).
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Writing or reading Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Writing the xlsx report failed.
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),

    // --- bugs ----------------------------------------------------------------
    /// An invariant of this crate does not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `s` on one line (an error line), a cause that repeats the one before it
/// once (DataFusion nests `Parquet error: Parquet error: …`).
pub fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The library's result type.
pub type Result<T, E = AggregateError> = std::result::Result<T, E>;

/// Attaches a context (what was being done) to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| AggregateError::Io {
            context: what(),
            source,
        })
    }
}
