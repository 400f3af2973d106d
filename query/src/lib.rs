//! Read-only SQL over the huoyue lake with DataFusion.
//!
//! The library registers the lake's tables in a DataFusion session
//! ([`register_lake`], or the [`Lake`] handle), runs statements through a
//! read-only gate ([`check_read_only`], [`run_sql`]) and formats results
//! ([`format`]). The binary `huoyue-query` is a one-shot CLI, an interactive
//! shell and an HTTP server ([`server`]) on top of it; the monthly job uses
//! the library directly.
//!
//! ```no_run
//! # async fn example() -> Result<(), huoyue_query::QueryError> {
//! use huoyue_query::{Lake, QueryConfig};
//! let lake = Lake::open("/data/lake", QueryConfig::default())?;
//! let output = lake
//!     .query("SELECT rule, SUM(points) FROM daily_totals GROUP BY rule", None)
//!     .await?;
//! println!("{}", huoyue_query::format::format_output(&output, Default::default())?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cli;
mod config;
mod error;
pub mod format;
mod lake;
mod read_only;
mod run;
pub mod server;
pub mod units;

pub use config::{DEFAULT_MEMORY_LIMIT, QueryConfig, session, session_with_runtime};
pub use error::{Fault, QueryError};
pub use format::OutputFormat;
pub use lake::schemas;
pub use lake::{DAILY_TOTALS_SQL, Lake, TABLE_NAMES, register_lake};
pub use read_only::{check_read_only, verify_plan};
pub use run::{QueryOutput, plan_sql, run_query, run_sql};
