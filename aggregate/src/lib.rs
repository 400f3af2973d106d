//! huoyue-aggregate: the monthly job (`teacher_monthly`, `school_monthly`, the
//! 通报 report) and compaction of the huoyue lake.
//!
//! * [`monthly::run`] computes a month from `daily_scores`, `daily_activity`
//!   and the rosters with DataFusion SQL and swaps the month's folders in.
//! * [`compact::run`] merges a partition's delta files into one.
//! * [`partition_lock::publish_file`] is the publishing half of the
//!   compaction protocol, for the ingest to call.

pub mod compact;
pub mod error;
pub mod lake;
pub mod month;
pub mod monthly;
pub mod partition_lock;
pub mod report;
pub mod roster;
pub mod rules;

pub use error::{AggregateError, Result};
pub use partition_lock::publish_file;
