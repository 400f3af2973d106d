//! The contract of huoyue: typed events and their validation, rule profiles, and
//! the Arrow schemas of the lake. This crate does no I/O beyond reading a profile
//! file that it is asked to read.

pub mod columns;
pub mod decode;
pub mod event;
pub mod lake;
pub mod profile;
pub mod reason;
pub mod time;
mod words;

pub use decode::{MAX_EVENT_BYTES, decode};
pub use event::{Action, Client, Event, EventView, Extra, ExtraStr, Kinds, Role, ScoredBy};
pub use profile::{DEFAULT_PROFILE, Profile, ProfileError, Rule, RuleKind};
pub use reason::{Reason, Rejection};
