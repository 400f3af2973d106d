//! The one error type of the crate, grouped by who is at fault.

use std::path::PathBuf;
use std::time::Duration;

use datafusion::error::DataFusionError;

/// Who has to act to fix an error: this decides the HTTP status and the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The statement is wrong or not allowed; the user must change it.
    User,
    /// The statement is fine but went over a limit of the deployment (memory, time, rows).
    Limit,
    /// The lake or the local system is missing, unreadable or malformed
    /// (files, an address to listen on).
    Lake,
    /// A bug in huoyue or DataFusion.
    Internal,
}

/// Everything that can go wrong while opening the lake or answering a statement.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    // ---- the user's statement ----
    /// The SQL does not parse, names an unknown table or column, has a type
    /// error, or failed while running (a bad cast, a division by zero).
    /// The message is DataFusion's.
    #[error("{0}")]
    Sql(String),
    /// The statement would write or create something, or change the session.
    #[error("read-only: {kind} is not allowed")]
    ReadOnly {
        /// The statement kind, upper case (`CREATE TABLE`, `INSERT`, `COPY`).
        kind: String,
    },
    /// More than one statement in one request.
    #[error("read-only: one statement at a time is allowed, got {count}")]
    MultipleStatements {
        /// How many statements were given.
        count: usize,
    },
    /// The request was empty.
    #[error("no SQL statement given")]
    Empty,

    // ---- limits of the deployment ----
    /// The query needed more memory than the configured limit.
    #[error("memory limit exceeded: {0}")]
    MemoryLimit(String),
    /// The query ran longer than the configured timeout and was cancelled.
    #[error("query timed out after {0:?} and was cancelled")]
    Timeout(Duration),
    /// The result has more rows than the configured maximum.
    #[error("result too large: more than {limit} rows; add a LIMIT or aggregate")]
    TooManyRows {
        /// The configured maximum number of rows.
        limit: usize,
    },

    // ---- the lake ----
    /// The lake directory does not exist (or is not a directory).
    #[error("lake directory {} does not exist or is not a directory", .0.display())]
    LakeMissing(PathBuf),
    /// A file of the lake or a roster could not be read or is malformed.
    #[error("lake: {0}")]
    Lake(String),
    /// Another I/O problem of the local system (a token file, a listen address).
    #[error("{0}")]
    Io(String),

    // ---- bugs ----
    /// An invariant was broken inside huoyue or DataFusion.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// Who is at fault for this error.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Sql(_)
            | Self::ReadOnly { .. }
            | Self::MultipleStatements { .. }
            | Self::Empty => Fault::User,
            Self::MemoryLimit(_) | Self::Timeout(_) | Self::TooManyRows { .. } => Fault::Limit,
            Self::LakeMissing(_) | Self::Lake(_) | Self::Io(_) => Fault::Lake,
            Self::Internal(_) => Fault::Internal,
        }
    }

    /// A short stable code for machines (`sql`, `read_only`, `memory_limit`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sql(_) => "sql",
            Self::ReadOnly { .. } | Self::MultipleStatements { .. } => "read_only",
            Self::Empty => "empty",
            Self::MemoryLimit(_) => "memory_limit",
            Self::Timeout(_) => "timeout",
            Self::TooManyRows { .. } => "too_many_rows",
            Self::LakeMissing(_) | Self::Lake(_) => "lake",
            Self::Io(_) => "io",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        let message = error.strip_backtrace();
        match error.find_root() {
            DataFusionError::ResourcesExhausted(_) => Self::MemoryLimit(message),
            DataFusionError::Internal(_) => Self::Internal(message),
            DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ParquetError(_) => Self::Lake(message),
            _ => Self::Sql(message),
        }
    }
}
