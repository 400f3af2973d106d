//! `huoyue-gen`: a deterministic, realistic generator of platform events
//! and rosters.
//!
//! Three ways to use it:
//!
//! - [`generate`] writes `events.ndjson` and `dims/{schools,users}.csv` into
//!   a directory; [`generate_to`] writes the same into any writers.
//! - [`EventStream`] yields each line (bytes, Kafka key, kind) in arrival
//!   order without writing anything: for a Kafka producer or a benchmark.
//! - [`for_each_line`] is the callback form of the same.
//!
//! The same [`GenConfig`] always gives byte-identical output. Memory is
//! bounded: one day of events plus the reordering window is held at a time.

mod calendar;
mod clock;
mod config;
mod event;
mod fmt;
mod malformed;
mod names;
mod output;
mod persona;
mod rng;
mod roster;
mod simulate;
mod stats;
mod stream;

pub use calendar::parse_month;
pub use config::GenConfig;
pub use event::{Action, Role, UserRef};
pub use malformed::MalformedKind;
pub use names::{COUNTIES, County};
pub use output::{for_each_line, generate, generate_to};
pub use roster::{Category, CountyInfo, Registration, Roster, School};
pub use stats::GenStats;
pub use stream::{EventStream, Line, LineKind};
