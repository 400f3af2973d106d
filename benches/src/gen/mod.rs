//! `huoyue-gen`: a deterministic, realistic generator of platform events
//! and rosters.
//!
//! # Use
//!
//! - [`generate`] writes `events.ndjson` and `dims/{schools,users}.csv` into
//!   a directory; [`generate_to`] writes the same into any writers.
//! - [`EventStream`] yields each line (bytes, Kafka key, kind, instant) in
//!   arrival order without writing anything: for a Kafka producer or a
//!   benchmark. [`Line::key`] is the id of the user the event is scored for
//!   (`owner_id` for `resource_interact`, `resource_review` and
//!   `task_progress`, else `user_id`).
//! - [`for_each_line`] is the callback form of the same.
//!
//! ```
//! use huoyue_benches::r#gen::{GenConfig, LineKind, for_each_line};
//! let cfg = GenConfig { schools: 2, teachers_per_school: 6, students_per_school: 30, ..GenConfig::default() };
//! let mut keyed = 0;
//! let stats = for_each_line(&cfg, |line| {
//!     if line.kind == LineKind::Event {
//!         assert!(!line.key.is_empty());
//!         keyed += 1;
//!     }
//!     Ok(())
//! })
//! .unwrap();
//! assert_eq!(keyed, stats.events);
//! ```
//!
//! The same [`GenConfig`] always gives byte-identical output, on any
//! machine (own PRNG, no platform maths). Memory is bounded: one day of
//! events plus the reordering window is held at a time (about 75 MB for 600
//! schools).
//!
//! # The data
//!
//! - **Rosters.** Schools in real Zhejiang counties (GB/T 2260 codes, 瑞安市
//!   330381 first), ids `33` + the county code's last four digits + a 4-digit
//!   number; sizes vary around the means; ~20% `demo`. Users `t<school>-<n>`,
//!   `s<school>-<n>`, `p<school>-<n>` (the parent of that student, for ~60%
//!   of students), and `admin-<county code>`, the county's reviewer, listed
//!   under the county's first school. Students and parents have no name.
//!   `student_base` ≥ the roster students; at some schools students not yet
//!   on the roster register, so registrations exceed the base. About 2% of
//!   teachers (and one per county for sure) act without being on the roster.
//! - **Days.** `lead_days` of the previous month, then the month. School
//!   days are Monday–Friday except 1 Jan, 1–5 May and 1–7 Oct.
//!   Activity is 07:00–22:00 China time, 1.5% within an hour of midnight.
//!   Timestamps are mostly `+08:00`, some `Z`, some with a fraction.
//! - **Teachers.** A login habit (never / daily, streaks across the month
//!   start / most school days / now and then) and a depth: most teachers
//!   only log in; how many also teach, publish tasks, interact with
//!   students and parents (days below 5, 5–9 and ≥ 10 distinct
//!   counterparts), use their space (mobile and pc) and provincial apps
//!   (listed and unknown ids) depends on the school's adoption. Profiles are
//!   completed in one update, over two or three, or never.
//! - **Resources** `r-<owner>-<n>` are downloaded, favourited, shared,
//!   commented on and viewed by students and colleagues (repeated pairs,
//!   owners viewing their own); a few are popular county-wide and reach the
//!   50-point lifetime cap. The county admin approves some at county, city
//!   and province level (sometimes out of order, sometimes twice) and
//!   deletes some after approval.
//! - **Tasks** are read and completed by the teacher's class over the next
//!   days (parents read some too); some reach 10 students after the publish
//!   day, some never; a few get a read 29 days or just over 30 days after
//!   publishing. `published_at` is the same instant on every progress event
//!   of a task (sometimes written in UTC).
//! - **Arrival.** Most events arrive within two minutes, some within an
//!   hour, a few up to `disorder_hours` late (≤ 48 h, so nothing is late
//!   under a 3-day lateness). About 1% are re-sent as exact duplicates up
//!   to 30 minutes later; about 0.1% of lines are malformed, one of every
//!   kind of [`MalformedKind`], each breaking exactly one rule of events.md.

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

pub use calendar::{month_end_us, parse_month};
pub use config::GenConfig;
pub use event::{Action, Role, UserRef};
pub use malformed::MalformedKind;
pub use names::{COUNTIES, County};
pub use output::{for_each_line, generate, generate_to};
pub use roster::{Category, CountyInfo, Registration, Roster, School};
pub use stats::GenStats;
pub use stream::{EventStream, Line, LineKind};
