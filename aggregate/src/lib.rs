//! huoyue-aggregate: the monthly job (`teacher_monthly`, `school_monthly`, the
//! 通报 report), compaction and re-scoring of the huoyue lake.
//!
//! * [`monthly::run`] computes a month from `daily_scores`, `daily_activity`
//!   and the rosters with DataFusion SQL and swaps the month's folders in.
//! * [`compact::run`] merges a partition's delta files into one.
//! * [`rescore::run`] recomputes a month's `daily_scores` from `events` (and
//!   the `late` rows of `rejected`) with the ingest's scoring engine and swaps
//!   the month's day folders in.
//! * [`rebuild::run`] rebuilds the file runs' engine state from `events`
//!   when its checkpoint is corrupt.
//! * [`swap`] is the folder-swap protocol both follow, on top of the ingest's
//!   partition lock.

pub mod compact;
pub mod error;
pub mod lake;
pub mod month;
pub mod monthly;
pub mod rebuild;
pub mod report;
pub mod rescore;
pub mod roster;
pub mod rules;
pub mod swap;

pub use error::{AggregateError, Result};
