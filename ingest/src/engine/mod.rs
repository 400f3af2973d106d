//! The scoring engine: a deterministic state machine with no I/O and no clock.
//!
//! Valid events go in one at a time ([`Engine::process`]); at a flush
//! ([`Engine::flush`]) the engine hands the score deltas per (day, user, rule) and
//! the activity counts per (day, user) since the previous flush to a [`DeltaSink`].
//! The sums of the deltas depend only on the set of events accepted, not on their
//! arrival order, the batch boundaries, or a [`Engine::snapshot`] / [`Engine::restore`]
//! in between (scoring.md, ground rule 3).

mod activity;
mod interner;
mod order;
mod replay;
mod rules;
mod task;
mod user;

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use huoyue_schemas::columns::EventRows;
use huoyue_schemas::event::{Action, Event, EventView, ExtraStr, Kinds, ScoredBy};
use huoyue_schemas::profile::Profile;
use huoyue_schemas::time::day_of;

pub use activity::ActivityRow;
pub use order::OrderKey;
pub use rules::Rules;

use interner::{Index, hash64, table_bytes};
use replay::{Log, PairItem, ReviewItem};
use rules::{Kind, item_bit, level_index};
use user::{Life, SchoolId, UserState};

/// Engine settings that are not part of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Days before the newest day seen that can still be re-scored (lake.md
    /// guarantee 4). Default 3.
    pub lateness_days: i32,
    /// Days of event time for which event ids are remembered to catch duplicates
    /// (events.md: at least 7). Default 7; never less than `lateness_days + 1`.
    pub dedup_days: i32,
    /// The ids of this many most recent arrivals are remembered whatever their
    /// event time, so a re-sent event that arrives soon after its original is a
    /// duplicate even when its event time is long past. Default 8 Mi.
    pub dedup_recent: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lateness_days: default_lateness_days(),
            dedup_days: default_dedup_days(),
            dedup_recent: default_dedup_recent(),
        }
    }
}

/// lake.md, guarantee 4: "default 3 days".
fn default_lateness_days() -> i32 {
    3
}

/// events.md: duplicates are recognised for at least 7 days of event time.
fn default_dedup_days() -> i32 {
    7
}

/// Producer retries arrive within minutes to hours: 8 Mi arrivals is hours at
/// provincial rates (≈ 256 MiB of ids at most).
fn default_dedup_recent() -> u64 {
    8 << 20
}

/// What became of an event handed to [`Engine::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Scored (or stored without points) on `day`.
    Accepted { day: i32 },
    /// Its `event_id` was seen before: counted, not scored, not stored.
    Duplicate,
    /// Older than the allowed lateness: goes to `rejected` with reason `late`.
    Late,
}

/// Receives the deltas of a flush.
pub trait DeltaSink {
    /// A `daily_scores` row.
    fn score(
        &mut self,
        day: i32,
        user_id: &str,
        school_id: &str,
        rule: &str,
        points: i64,
        events: i64,
    );
    /// A `daily_activity` row.
    fn activity(&mut self, row: &ActivityRow<'_>);
}

/// Everything the engine remembers; this is what a checkpoint stores.
#[derive(Default, Serialize, Deserialize)]
struct State {
    /// Each source partition's newest day and window (a few entries: one per
    /// Kafka partition read, or one, [`FILE_SOURCE`], for a file).
    sources: Vec<Source>,
    /// Where in `sources` the last event's source was: consecutive events
    /// mostly share a source (a Kafka batch holds runs of one partition).
    /// Only a hint, checked before use.
    #[serde(skip)]
    last_source: usize,
    /// Hash of each remembered event id, with its day, source partition and
    /// arrival number. (Stored after the rest of a snapshot, see [`packed_ids`].)
    #[serde(skip)]
    seen: FxHashMap<u128, Seen>,
    /// The rule by which the last fold forgot ids (stored with the ids,
    /// see [`SegmentsSection`]).
    #[serde(skip)]
    forget: ForgetRule,
    /// Events whose ids were remembered so far (accepted or late).
    arrivals: u64,
    users: Vec<UserState>,
    dirty: Vec<u32>,
    activity: activity::Activity,
    #[serde(skip)]
    index: Index,
    /// The day from which the last flush kept the `daily_activity` (day,
    /// actor)s written ([`written_from`]; stored with the ids, see
    /// [`SegmentsSection`]).
    #[serde(skip)]
    written_from: i32,
    /// Days folded out of users' windows, kept to be a user's new day
    /// ([`UserState::day`]): a day's slots are allocated once, not once per
    /// user and day.
    #[serde(skip)]
    spare_days: Vec<user::DayState>,
}

/// The ids the last fold forgot, as a rule over an id's partition, day and
/// arrival number. Each fold forgets by the same rule over all its sources,
/// and each part of the rule only ever forgets more (a source's window only
/// moves forward; a rebalance that takes a source over or drops one makes the
/// next segment a base, see [`Engine::take_segment`]), so the ids remembered
/// are exactly those ever remembered that the last fold's rule keeps, plus
/// those remembered since: what a restore from segments rebuilds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ForgetRule {
    /// Per partition, the day before which its ids are forgotten; ids of
    /// partitions not listed are kept.
    before: Vec<(i32, i32)>,
    /// Ids that arrived after this arrival number are kept whatever their
    /// day (the `dedup_recent` most recent ones).
    recent_from: u64,
}

impl ForgetRule {
    fn keeps(&self, s: &Seen) -> bool {
        s.arrival > self.recent_from
            || self
                .before
                .iter()
                .find(|(p, _)| *p == s.partition)
                .is_none_or(|&(_, before)| s.day >= before)
    }
}

/// The source partition of events read from a file (or any source that is
/// not Kafka).
pub const FILE_SOURCE: i32 = -1;

/// One source partition of events: a Kafka partition, or [`FILE_SOURCE`].
///
/// Lateness is measured per source: a partition is one ordered stream, and
/// the service reads partitions at different speeds (catching up, librdkafka
/// hands over one partition's backlog after another), so the newest day of
/// all sources says nothing about how late an event of a slower one is.
/// Producers key by scored user (events.md), so a user's events, and the
/// state they build, belong to one source; a user's state is folded with its
/// source's window, and a remembered id is forgotten by its source's newest
/// day. An idle source's state does not grow.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Source {
    partition: i32,
    /// The newest day accepted from this source.
    newest: i32,
    /// The window start its users were last folded to.
    folded_to: Option<i32>,
}

/// A remembered event id's day, source partition and arrival number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    day: i32,
    partition: i32,
    arrival: u64,
}

impl State {
    /// The newest day accepted from `partition`.
    fn newest_of(&self, partition: i32) -> Option<i32> {
        self.sources
            .iter()
            .find(|s| s.partition == partition)
            .map(|s| s.newest)
    }
}

/// Where the first item of `items` that `is` picks is, trying `last` first
/// and setting it to the answer: for short lists where consecutive lookups
/// mostly want the same item (a source partition, an activity day).
#[inline]
fn find_from_last<T>(items: &[T], last: &mut usize, is: impl Fn(&T) -> bool) -> Option<usize> {
    if items.get(*last).is_some_and(&is) {
        return Some(*last);
    }
    let i = items.iter().position(is)?;
    *last = i;
    Some(i)
}

/// The scoring engine.
pub struct Engine {
    rules: Rules,
    cfg: EngineConfig,
    profile_name: String,
    /// [`Profile::rule_shape`], recorded in snapshots.
    rule_shape: Vec<String>,
    state: State,
    /// What changed since the last [`Engine::take_segment`], once
    /// [`Engine::log_changes`] asked for it.
    log: Option<ChangeLog>,
    /// Whether the next segment must be a base: state was taken over or
    /// dropped by a rebalance, or no segment was ever taken.
    base_needed: bool,
}

/// What changed since the last segment.
#[derive(Default)]
struct ChangeLog {
    /// Ids remembered.
    ids: Vec<u128>,
    /// Keys of the users changed, each once ([`UserState::logged`]).
    users: Vec<u128>,
    /// Keys of the users forgotten.
    gone: Vec<u128>,
    /// The `daily_activity` (day, actor)s written.
    written: Vec<(i32, u128)>,
}

/// Puts `user` in `log` (if there is one) unless it is there already.
fn log_user(log: &mut Option<ChangeLog>, user: &mut UserState) {
    if let Some(log) = log
        && !user.logged
    {
        user.logged = true;
        log.users.push(user.key);
    }
}

/// The part of the state a checkpoint keeps apart from its snapshot
/// ([`Engine::take_segment`]): the remembered ids, the scored users and the
/// `daily_activity` (day, actor)s written, all of them (a base) or those
/// changed since the last segment.
pub struct Segment {
    pub base: bool,
    /// Ids, users (and users forgotten) and (day, actor)s in `bytes`.
    pub records: u64,
    /// As [`Engine::restore_with_segments`] reads them: the ids' fixed-width
    /// records, the users forgotten and the users (postcard), the (day,
    /// actor)s' fixed-width records.
    pub bytes: Vec<u8>,
}

/// What a format-9 snapshot says of the state kept in segments, before the
/// remembered ids.
#[derive(Serialize, Deserialize)]
struct SegmentsSection {
    forget: ForgetRule,
    /// The day before which the last flush forgot the (day, actor)s written.
    written_from: i32,
    /// The ids, the users and the (day, actor)s written are not in the
    /// snapshot but in segments.
    elsewhere: bool,
}

/// [`State`] as serialized, its users given apart (none when they are in
/// segments).
#[derive(Serialize)]
struct StateOut<'a> {
    sources: &'a [Source],
    arrivals: u64,
    users: &'a [UserState],
    dirty: &'a [u32],
    activity: &'a activity::Activity,
}

/// `postcard::to_io` that reports the writer's own error (a full disk, say):
/// postcard turns any I/O error into "the serialize buffer is full".
fn to_io<T: Serialize>(value: &T, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
    struct KeepError<'a, W: ?Sized> {
        out: &'a mut W,
        error: Option<std::io::Error>,
    }
    impl<W: std::io::Write + ?Sized> std::io::Write for KeepError<'_, W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let r = self.out.write(buf);
            r.map_err(|e| self.keep(e))
        }
        // postcard writes each value with `write_all`: the writer's own, not
        // the default loop over `write`
        fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            let r = self.out.write_all(buf);
            r.map_err(|e| self.keep(e))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.out.flush()
        }
    }
    impl<W: ?Sized> KeepError<'_, W> {
        fn keep(&mut self, e: std::io::Error) -> std::io::Error {
            let kind = e.kind();
            self.error.get_or_insert(e);
            kind.into()
        }
    }
    let mut w = KeepError { out, error: None };
    match postcard::to_io(value, &mut w) {
        Ok(_) => Ok(()),
        Err(e) => Err(w.error.take().unwrap_or_else(|| std::io::Error::other(e))),
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    format: u32,
    profile: String,
    cfg: EngineConfig,
}

/// 3: `OrderKey` ids as four big-endian words. 4: the remembered ids packed.
/// 5: the activity roll-up's user ids in one buffer, its school ids and the
/// users' inline. 6: the newest day and window per source partition, and each
/// remembered id's partition. 7: the profile's rule shape
/// ([`Profile::rule_shape`]) after the header, checked at restore. 8: the
/// activity roll-up's written (day, actor)s after the remembered ids, as
/// fixed-width records (`activity::WrittenDays::write`). 9: a
/// [`SegmentsSection`] before the remembered ids; the users, the ids and the
/// written (day, actor)s may be kept apart in segments ([`Engine::take_segment`]).
/// 10: a user's (day, rule)s written hold the events and the school written
/// too ([`user::Emitted`]), so that rows move to the school of an earlier
/// event that comes later.
/// (The users' and activity rows' [`key128`] keys are derived at restore.)
const SNAPSHOT_FORMAT: u32 = 10;

/// The remembered event ids as fixed-width little-endian records (id hash,
/// day, partition, arrival: 32 bytes; format 5 had no partition: 28) after the
/// rest of a snapshot, not as a map of varints: the bulk of a snapshot, written
/// and read at memory speed.
mod packed_ids {
    use rustc_hash::FxHashMap;

    use super::{Seen, UNKNOWN_PARTITION};

    /// Whether the records hold the id's partition (format 6 on) or not.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Layout {
        WithPartition,
        /// Format 5: the ids read get [`UNKNOWN_PARTITION`].
        NoPartition,
    }

    impl Layout {
        fn record(self) -> usize {
            match self {
                Layout::WithPartition => 32,
                Layout::NoPartition => 28,
            }
        }
    }

    pub fn write<'a>(
        seen: impl ExactSizeIterator<Item = (&'a u128, &'a Seen)>,
        out: &mut (impl std::io::Write + ?Sized),
        layout: Layout,
    ) -> std::io::Result<()> {
        out.write_all(&(seen.len() as u64).to_le_bytes())?;
        // records are gathered into blocks, not written one by one
        let mut block = Vec::with_capacity(2048 * layout.record());
        for (id, s) in seen {
            block.extend_from_slice(&id.to_le_bytes());
            block.extend_from_slice(&s.day.to_le_bytes());
            if layout == Layout::WithPartition {
                block.extend_from_slice(&s.partition.to_le_bytes());
            }
            block.extend_from_slice(&s.arrival.to_le_bytes());
            if block.len() == block.capacity() {
                out.write_all(&block)?;
                block.clear();
            }
        }
        out.write_all(&block)
    }

    /// The remembered ids, and the bytes after them.
    pub fn read(bytes: &[u8], layout: Layout) -> Result<(FxHashMap<u128, Seen>, &[u8]), String> {
        let mut seen = FxHashMap::default();
        let after = read_into(&mut seen, bytes, layout)?;
        Ok((seen, after))
    }

    /// Adds the remembered ids `bytes` starts with to `seen` (a record
    /// replaces an earlier one of the same id); returns the bytes after them.
    pub fn read_into<'b>(
        seen: &mut FxHashMap<u128, Seen>,
        bytes: &'b [u8],
        layout: Layout,
    ) -> Result<&'b [u8], String> {
        let (len, records) = bytes
            .split_first_chunk::<8>()
            .ok_or("remembered ids: missing")?;
        let len = u64::from_le_bytes(*len) as usize;
        let size = len.saturating_mul(layout.record());
        if records.len() < size {
            return Err("remembered ids: truncated".into());
        }
        let (records, after) = records.split_at(size);
        seen.reserve(len);
        for r in records.chunks_exact(layout.record()) {
            let (id, rest) = r.split_first_chunk::<16>().expect("16 bytes");
            let (day, rest) = rest.split_first_chunk::<4>().expect("4 bytes");
            let (partition, arrival) = match layout {
                Layout::WithPartition => {
                    let (p, rest) = rest.split_first_chunk::<4>().expect("4 bytes");
                    (i32::from_le_bytes(*p), rest)
                }
                Layout::NoPartition => (UNKNOWN_PARTITION, rest),
            };
            let arrival = u64::from_le_bytes(arrival.try_into().expect("8 bytes"));
            seen.insert(
                u128::from_le_bytes(*id),
                Seen {
                    day: i32::from_le_bytes(*day),
                    partition,
                    arrival,
                },
            );
        }
        Ok(after)
    }
}

/// Format 5 snapshots (before sources had a newest day each), read so that
/// an upgrade keeps its checkpointed state.
mod v5 {
    use rustc_hash::FxHashMap;
    use serde::Deserialize;

    use super::{Seen, Source, activity, user::UserState};

    /// The state's fields in format 5's order.
    #[derive(Deserialize)]
    pub struct State {
        pub newest_day: Option<i32>,
        pub folded_to: Option<i32>,
        pub arrivals: u64,
        pub users: Vec<UserState>,
        pub dirty: Vec<u32>,
        pub activity: activity::Activity,
    }

    impl State {
        /// Every partition the users came from starts at the one newest day
        /// and window format 5 had; the remembered ids' partitions are not
        /// known ([`super::UNKNOWN_PARTITION`], from [`super::packed_ids`]).
        pub fn upgrade(self, seen: FxHashMap<u128, Seen>) -> super::State {
            let mut partitions: Vec<i32> = self.users.iter().map(|u| u.partition).collect();
            partitions.sort_unstable();
            partitions.dedup();
            let sources = match self.newest_day {
                Some(newest) => partitions
                    .into_iter()
                    .map(|partition| Source {
                        partition,
                        newest,
                        folded_to: self.folded_to,
                    })
                    .collect(),
                None => Vec::new(),
            };
            super::State {
                sources,
                last_source: 0,
                seen,
                forget: Default::default(),
                arrivals: self.arrivals,
                users: self.users,
                dirty: self.dirty,
                activity: self.activity,
                index: Default::default(),
                written_from: 0,
                spare_days: Vec::new(),
            }
        }
    }
}

/// The partition of a remembered id from a format-5 snapshot: forgotten once
/// every source's newest day is past it.
const UNKNOWN_PARTITION: i32 = i32::MIN;

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("engine snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("engine snapshot was taken under profile {found:?}, not {expected:?}")]
    Profile { found: String, expected: String },
    #[error(
        "engine snapshot was taken under another version of profile {profile:?}: it was laid out by {found}, now {expected} (a profile that keeps its name must keep its time zone, its scored role and its rules' ids, kinds, actions and order; their parameters may change)"
    )]
    Rules {
        profile: String,
        found: String,
        expected: String,
    },
}

impl Engine {
    pub fn new(profile: &Profile, cfg: EngineConfig) -> Engine {
        let cfg = EngineConfig {
            dedup_days: cfg.dedup_days.max(cfg.lateness_days + 1),
            ..cfg
        };
        Engine {
            rules: Rules::compile(profile, cfg.lateness_days),
            cfg,
            profile_name: profile.name.clone(),
            rule_shape: profile.rule_shape(),
            state: State::default(),
            log: None,
            base_needed: true,
        }
    }

    pub fn config(&self) -> EngineConfig {
        self.cfg
    }

    /// The newest event day accepted so far, from any source.
    pub fn newest_day(&self) -> Option<i32> {
        self.state.sources.iter().map(|s| s.newest).max()
    }

    /// The newest event day accepted from source `partition` ([`FILE_SOURCE`]: a file), the
    /// day lateness is measured from for its events.
    pub fn newest_day_of(&self, partition: i32) -> Option<i32> {
        self.state.newest_of(partition)
    }

    /// The profile's fixed offset from UTC, in seconds.
    pub fn offset_seconds(&self) -> i32 {
        self.rules.offset_seconds
    }

    /// Takes one valid event.
    pub fn process(&mut self, e: &Event<'_>) -> Outcome {
        self.process_from(e, FILE_SOURCE)
    }

    /// Takes one valid event read from Kafka partition `partition` ([`FILE_SOURCE`]: not Kafka).
    pub fn process_from(&mut self, e: &Event<'_>, partition: i32) -> Outcome {
        self.process_keyed(e, &EventKeys::of(e), partition)
    }

    /// Takes the events of a decoded batch: row `i` of `rows`, with the keys
    /// `keys[i]` ([`EventKeys::of`]); `arrival` lists the rows in the order
    /// they were read, with their source partitions ([`Arrival`]). `then`
    /// gets each row's outcome, in that order. Rows are read in place
    /// ([`EventRows::row`]), not built into [`Event`]s.
    ///
    /// Two passes. The first, in arrival order, settles each event's outcome
    /// (duplicate, late or accepted) and moves the windows. The second counts
    /// the accepted events in the order of the rows, which the decoder sorts
    /// by day and scored user ([`crate::pipeline::DecodedChunk::grouped`]):
    /// a user's state is then fetched once per day of the batch rather than
    /// once per event. The order of counting changes no outcome and no sum:
    /// what the second pass does for an event depends only on that event and
    /// on the state of its own user and actor, whose sums do not depend on
    /// order (scoring.md, ground rule 3), and everything shared (ids,
    /// windows) is the first pass's. The one check that reads another
    /// source's window ([`Engine::late_by_user`]: a user last seen on another
    /// partition) is settled ahead: a batch where it could decide an outcome
    /// is taken one event at a time, in arrival order ([`Engine::grouping`]).
    pub fn process_rows(
        &mut self,
        rows: &EventRows<'_>,
        keys: &[EventKeys],
        arrival: &[Arrival],
        mut then: impl FnMut(&Engine, usize, Outcome),
    ) {
        debug_assert_eq!(rows.len(), keys.len());
        debug_assert_eq!(rows.len(), arrival.len());
        let Some(partition) = self.grouping(arrival) else {
            for a in arrival {
                let (i, k) = (a.row as usize, &keys[a.row as usize]);
                let outcome = self.process_keyed(&rows.row(i, k.kinds), k, a.partition);
                then(self, i, outcome);
            }
            return;
        };
        const AHEAD: usize = 16;
        let off = self.rules.offset_seconds;
        // the day and arrival number of each row accepted (day i32::MIN: not)
        let mut accepted = vec![(i32::MIN, 0u64); keys.len()];
        for group in arrival.chunks(AHEAD) {
            // Independent lookups whose answers are not needed: the CPU runs
            // them side by side and the lines they touch are cached below.
            let mut found = 0usize;
            for a in group {
                found += usize::from(self.state.seen.contains_key(&a.id));
            }
            std::hint::black_box(found);
            for a in group {
                let day = day_of(a.ts, off);
                let outcome = match self.admit(a.id, day, a.partition) {
                    Ok(source) => {
                        self.settle_source(source, a.partition, day);
                        accepted[a.row as usize] = (day, self.state.arrivals);
                        Outcome::Accepted { day }
                    }
                    Err(outcome) => outcome,
                };
                then(self, a.row as usize, outcome);
            }
        }
        let mut last = None;
        for (i, (k, (day, number))) in keys.iter().zip(accepted).enumerate() {
            if day == i32::MIN {
                continue;
            }
            let e = rows.row(i, k.kinds);
            let scored = self.scored_after(&e, k, &mut last);
            self.count(&e, k, partition, day, number, scored);
        }
    }

    /// The one partition of a batch that [`Engine::process_rows`] may count
    /// grouped by user, if it may: every event comes from that partition (so
    /// that each user's and actor's partition is the same in any order of
    /// counting), and no other source's window is past the day of any event
    /// ([`Engine::late_by_user`] holds for none). So for a file, and for a
    /// batch of one Kafka partition whose users were not seen on a partition
    /// ahead of it.
    fn grouping(&self, arrival: &[Arrival]) -> Option<i32> {
        let p = arrival.first()?.partition;
        let off = self.rules.offset_seconds;
        let ahead: Option<i32> = (self.state.sources.iter())
            .filter(|s| s.partition != p)
            .filter_map(|s| s.folded_to)
            .max();
        arrival
            .iter()
            .all(|a| a.partition == p && ahead.is_none_or(|w| day_of(a.ts, off) >= w))
            .then_some(p)
    }

    /// [`Engine::process_from`] with the event's keys already computed.
    fn process_keyed<E: EventView>(&mut self, e: &E, keys: &EventKeys, partition: i32) -> Outcome {
        let day = day_of(e.ts(), self.rules.offset_seconds);
        let source = match self.admit(keys.id, day, partition) {
            Ok(source) => source,
            Err(outcome) => return outcome,
        };
        // the user the event is scored for, if any (found or added now, so
        // that the check below comes before anything is counted)
        let scored = self.scored(e, keys);
        if scored.is_some_and(|(u, _)| self.late_by_user(u, partition, day)) {
            return Outcome::Late;
        }
        self.settle_source(source, partition, day);
        self.count(e, keys, partition, day, self.state.arrivals, scored);
        Outcome::Accepted { day }
    }

    /// Remembers the event id `id` of an event of `day` from `partition`:
    /// `Err` if it is a duplicate or late by its source's window, else the
    /// source's place in the list, if it has one yet.
    fn admit(&mut self, id: u128, day: i32, partition: i32) -> Result<Option<usize>, Outcome> {
        let st = &mut self.state;
        // One probe of the id table: found is a duplicate, else the free slot
        // takes the id, late or not: a late event was seen too, so a re-sent
        // copy of it is a duplicate (events.md), not late again.
        let slot = match st.seen.entry(id) {
            Entry::Occupied(_) => return Err(Outcome::Duplicate),
            Entry::Vacant(slot) => slot,
        };
        st.arrivals += 1;
        slot.insert(Seen {
            day,
            partition,
            arrival: st.arrivals,
        });
        if let Some(log) = &mut self.log {
            log.ids.push(id);
        }
        let source = find_from_last(&st.sources, &mut st.last_source, |s| {
            s.partition == partition
        });
        if source.is_some_and(|i| day < st.sources[i].newest - self.cfg.lateness_days) {
            return Err(Outcome::Late);
        }
        Ok(source)
    }

    /// The user `e` is scored for, if any (found or added now), and the
    /// school it states.
    fn scored<E: EventView>(&mut self, e: &E, keys: &EventKeys) -> Option<(u32, SchoolId)> {
        self.scored_after(e, keys, &mut None)
    }

    /// [`Engine::scored`] where `last` is the last scored user found, by key
    /// (and is set to this one): a grouped batch brings each user's events
    /// one after another, and users keep their place until a flush.
    fn scored_after<E: EventView>(
        &mut self,
        e: &E,
        keys: &EventKeys,
        last: &mut Option<(u128, u32)>,
    ) -> Option<(u32, SchoolId)> {
        if self.rules.by_action[keys.kinds.action as usize].is_empty() {
            return None;
        }
        let (id, key) = self.rules.scored_user(e, keys)?;
        let st = &mut self.state;
        let school = SchoolId::new(e.scored_school());
        let u = match *last {
            Some((k, u)) if k == key => u,
            _ => user_index(&mut st.users, &mut st.index, id, key, school),
        };
        *last = Some((key, u));
        Some((u, school))
    }

    /// Whether an event of `day` from `partition` for user `u` is late by
    /// the user's state: a user whose events came from another partition
    /// (producers not keying by scored user) has state folded by that
    /// partition's window, and an event before it cannot be scored exactly.
    fn late_by_user(&self, u: u32, partition: i32, day: i32) -> bool {
        let st = &self.state;
        let theirs = st.users[u as usize].partition;
        theirs != partition
            && st
                .sources
                .iter()
                .find(|s| s.partition == theirs)
                .is_some_and(|src| src.folded_to.is_some_and(|w| day < w))
    }

    /// Moves the newest day of the source of an accepted event of `day`
    /// (`source`: its place in the list, if it has one yet).
    fn settle_source(&mut self, source: Option<usize>, partition: i32, day: i32) {
        let st = &mut self.state;
        let source = match source {
            Some(i) => i,
            None => {
                st.sources.push(Source {
                    partition,
                    newest: day,
                    folded_to: None,
                });
                st.sources.len() - 1
            }
        };
        let newest = &mut st.sources[source].newest;
        *newest = (*newest).max(day);
    }

    /// Counts an accepted event of `day` from `partition`, the `number`-th
    /// to arrive: its actor's activity and, for its `scored` user
    /// ([`Engine::scored`]), each rule that reads it.
    fn count<E: EventView>(
        &mut self,
        e: &E,
        keys: &EventKeys,
        partition: i32,
        day: i32,
        number: u64,
        scored: Option<(u32, SchoolId)>,
    ) {
        let off = self.rules.offset_seconds;
        let ts = e.ts();
        let kinds = keys.kinds;
        let st = &mut self.state;
        let key = OrderKey::new(ts, e.event_id());
        st.activity.add(day, key, keys.user, partition, e);

        let Some((u, school)) = scored else {
            return;
        };
        let rule_ids = &self.rules.by_action[kinds.action as usize];
        let user = &mut st.users[u as usize];
        if !user.queued {
            user.queued = true;
            st.dirty.push(u);
        }
        log_user(&mut self.log, user);
        if number > user.latest_arrival {
            user.latest_arrival = number;
            user.school = school;
            user.partition = partition;
        }
        let n_rules = self.rules.rules.len();
        let spare = &mut st.spare_days;
        user.day(day, key, school, n_rules, spare);
        for &r in rule_ids {
            let ri = usize::from(r);
            match &self.rules.rules[ri].kind {
                Kind::Streak { .. } => {
                    user.day(day, key, school, n_rules, spare).slots[ri] = 1;
                }
                Kind::PerEvent { client, .. } => {
                    if client.is_some_and(|c| c != kinds.client) {
                        continue;
                    }
                    user.day(day, key, school, n_rules, spare).slots[ri] += 1;
                }
                Kind::Tiers { field, keep, .. } => {
                    let Some(v) = field.get(e) else { continue };
                    let h = hash64(v);
                    let d = user.day(day, key, school, n_rules, spare);
                    let set = match d.sets.iter().position(|(rr, _)| *rr == r) {
                        Some(i) => &mut d.sets[i].1,
                        None => {
                            d.sets.push((r, Vec::new()));
                            &mut d.sets.last_mut().expect("just pushed").1
                        }
                    };
                    if set.len() < *keep && !set.contains(&h) {
                        set.push(h);
                    }
                }
                Kind::Items { field, items, .. } => {
                    let Some(v) = field.get(e) else { continue };
                    if let Some(i) = items.iter().position(|it| **it == *v) {
                        user.day(day, key, school, n_rules, spare).slots[ri] |= 1 << i;
                    }
                }
                Kind::Once { .. } => {
                    let mut mask = 0u8;
                    e.each_item(&mut |i| mask |= item_bit(i));
                    if let Life::Once(log) = user.life(r, || Life::Once(Log::default())) {
                        log.push(key, day, mask);
                    }
                }
                Kind::Pair { .. } => {
                    let (Some(res), Some(owner)) =
                        (e.str(ExtraStr::ResourceId), e.str(ExtraStr::OwnerId))
                    else {
                        continue;
                    };
                    let item = PairItem {
                        item: hash64(res),
                        actor: hash64(e.user_id()),
                        own: e.user_id() == owner,
                    };
                    if let Life::Pair(log) = user.life(r, || Life::Pair(Log::default())) {
                        log.push(key, day, item);
                    }
                }
                Kind::Review { .. } => {
                    let (Some(res), Some(level)) = (
                        e.str(ExtraStr::ResourceId),
                        e.str(ExtraStr::Level).and_then(level_index),
                    ) else {
                        continue;
                    };
                    let deleted = e.str(ExtraStr::Outcome) == Some("deleted");
                    let item = ReviewItem {
                        item: hash64(res),
                        level: level as u8,
                        deleted,
                    };
                    if let Life::Review(log) = user.life(r, || Life::Review(Log::default())) {
                        log.push(key, day, item);
                    }
                }
                Kind::Threshold {
                    counted_role,
                    task: p,
                    ..
                } => {
                    let (Some(task), Some(published_at)) =
                        (e.str(ExtraStr::TaskId), e.published_at())
                    else {
                        continue;
                    };
                    let student = (kinds.role == *counted_role).then(|| (hash64(e.user_id()), ts));
                    // the event counts on the task's publish day, where its points go
                    let publish = match user.life(r, || Life::Tasks(task::Tasks::default())) {
                        Life::Tasks(tasks) => {
                            tasks.observe(hash64(task), key, published_at, student, *p)
                        }
                        _ => published_at,
                    };
                    user.add_pending(day_of(publish, off), r);
                    continue;
                }
            }
            user.add_pending(day, r);
        }
    }

    /// Hands every delta since the last flush to `sink`, then forgets what the
    /// allowed lateness no longer needs.
    pub fn flush(&mut self, sink: &mut impl DeltaSink) {
        let st = &mut self.state;
        let mut scratch = Vec::new();
        for u in std::mem::take(&mut st.dirty) {
            let user = &mut st.users[u as usize];
            user.queued = false;
            log_user(&mut self.log, user);
            let rules = &self.rules;
            // lent out while the user's rows are written (a clone was an
            // allocation and a copy per user and flush)
            let id = std::mem::take(&mut user.id);
            user.flush(rules, &mut scratch, |day, school, r, points, events| {
                sink.score(
                    day,
                    &id,
                    school,
                    &rules.rules[usize::from(r)].id,
                    points,
                    events,
                );
            });
            user.id = id;
        }
        let moved = self.move_windows();
        // what the activity roll-up writes is kept for the days each
        // partition's window (moved first) still holds
        let st = &mut self.state;
        st.written_from = st
            .written_from
            .max(written_from(&st.sources, self.cfg.lateness_days));
        let log = self.log.as_mut().map(|l| &mut l.written);
        st.activity
            .drain(st.written_from, log, |row| sink.activity(row));
        self.fold(&moved);
    }

    /// Moves each source's lateness window to its newest day; returns the
    /// (partition, window start) of those that moved.
    fn move_windows(&mut self) -> Vec<(i32, i32)> {
        let lateness = self.cfg.lateness_days;
        self.state
            .sources
            .iter_mut()
            .filter_map(|s| {
                let w = s.newest - lateness;
                if s.folded_to.is_some_and(|f| f >= w) {
                    return None;
                }
                s.folded_to = Some(w);
                Some((s.partition, w))
            })
            .collect()
    }

    /// Folds the state of the users of the sources whose window `moved`
    /// ([`Engine::move_windows`]), and forgets the ids their newest day no
    /// longer needs.
    fn fold(&mut self, moved: &[(i32, i32)]) {
        if moved.is_empty() {
            return;
        }
        let st = &mut self.state;
        let lateness = self.cfg.lateness_days;
        for user in &mut st.users {
            if let Some(&(_, w)) = moved.iter().find(|(p, _)| *p == user.partition) {
                user.fold(&self.rules, w, &mut st.spare_days);
                log_user(&mut self.log, user);
            }
        }
        let before = st.users.len();
        let log = &mut self.log;
        st.users.retain(|u| {
            let keep = !u.is_empty();
            if let Some(log) = log.as_mut().filter(|_| !keep) {
                log.gone.push(u.key);
            }
            keep
        });
        if st.users.len() != before {
            st.index = Index::rebuild(st.users.iter().map(|u| u.key as u64));
        }
        // the day before which each source's ids are forgotten (by its
        // window, which only moves forward); ids of unknown partition (format
        // 5) once every source is past them, never again after that
        let dedup = self.cfg.dedup_days;
        let mut before: Vec<(i32, i32)> = st
            .sources
            .iter()
            .filter_map(|s| Some((s.partition, s.folded_to? + lateness - dedup)))
            .collect();
        if let Some(slowest) = st.sources.iter().map(|s| s.newest).min() {
            let was = st
                .forget
                .before
                .iter()
                .find(|(p, _)| *p == UNKNOWN_PARTITION);
            let day = was.map_or(i32::MIN, |&(_, d)| d).max(slowest - dedup);
            before.push((UNKNOWN_PARTITION, day));
        }
        st.forget = ForgetRule {
            before,
            recent_from: st.arrivals.saturating_sub(self.cfg.dedup_recent),
        };
        let forget = &st.forget;
        // arrival numbers start at 1: while fewer ids than `dedup_recent` have
        // arrived, every one is among the most recent and none can go, and
        // the scan of the whole table (a month of a county's ids at every
        // flush of a file run) is skipped
        if forget.recent_from > 0 {
            st.seen.retain(|_, s| forget.keeps(s));
        }
    }

    /// The whole state, to be restored by [`Engine::restore`] under the same profile.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_into(Vec::new())
    }

    /// [`Engine::snapshot`] into `buf` (cleared first): a buffer kept from an
    /// earlier snapshot is already mapped, where a fresh one of many megabytes
    /// costs a page fault per 4 KiB.
    pub fn snapshot_into(&self, mut buf: Vec<u8>) -> Vec<u8> {
        buf.clear();
        let st = &self.state;
        buf.reserve(
            4096 + st.seen.len() * 32
                + st.users.len() * 2048
                + st.activity.written.snapshot_bytes(),
        );
        self.snapshot_to(&mut buf).expect("a Vec takes every byte");
        buf
    }

    /// [`Engine::snapshot`] written to `out` as it is made, without a copy
    /// of the whole state in memory.
    pub fn snapshot_to(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        self.snapshot_with(out, false)
    }

    /// [`Engine::snapshot_into`] without the remembered ids, the users and
    /// the written (day, actor)s, which go to segments
    /// ([`Engine::take_segment`]) instead; restored by
    /// [`Engine::restore_with_segments`].
    pub fn snapshot_without_segments_into(&self, mut buf: Vec<u8>) -> Vec<u8> {
        buf.clear();
        buf.reserve(4096 + self.state.users.len() * 2048);
        self.snapshot_with(&mut buf, true)
            .expect("a Vec takes every byte");
        buf
    }

    fn snapshot_with(
        &self,
        out: &mut (impl std::io::Write + ?Sized),
        elsewhere: bool,
    ) -> std::io::Result<()> {
        let header = SnapshotHeader {
            format: SNAPSHOT_FORMAT,
            profile: self.profile_name.clone(),
            cfg: self.cfg,
        };
        to_io(&header, out)?;
        to_io(&self.rule_shape, out)?;
        let st = &self.state;
        let state = StateOut {
            sources: &st.sources,
            arrivals: st.arrivals,
            // with the users in segments, their positions mean nothing: a
            // restore finds those waiting for a flush by `queued`
            users: if elsewhere { &[] } else { &st.users },
            dirty: if elsewhere { &[] } else { &st.dirty },
            activity: &st.activity,
        };
        to_io(&state, out)?;
        let section = SegmentsSection {
            forget: st.forget.clone(),
            written_from: st.written_from,
            elsewhere,
        };
        to_io(&section, out)?;
        if elsewhere {
            return Ok(());
        }
        packed_ids::write(st.seen.iter(), out, packed_ids::Layout::WithPartition)?;
        st.activity.written.write(out)
    }

    /// Logs what changes from now on, for [`Engine::take_segment`].
    pub fn log_changes(&mut self) {
        self.log.get_or_insert_with(ChangeLog::default);
    }

    /// The segment of a checkpoint whose snapshot
    /// ([`Engine::snapshot_without_segments_into`]) is taken now: with
    /// `base` (or when the engine needs one: state taken over or dropped by a
    /// rebalance, or nothing logged) every remembered id, scored user and
    /// (day, actor) written, else those changed since the last segment
    /// ([`Engine::log_changes`]) and the users forgotten. A restore from the
    /// last base and the segments after it, up to the snapshot's, rebuilds
    /// the state exactly: the ids and (day, actor)s forgotten since go by
    /// the rules of the last flush ([`ForgetRule`],
    /// [`activity::Activity::forget_written`]). The log starts again empty:
    /// a checkpoint that is not stored must end the instance, or be
    /// followed by a base.
    pub fn take_segment(&mut self, base: bool) -> Segment {
        let base = base || self.base_needed || self.log.is_none();
        // the log starts again empty
        let mut log = std::mem::take(self.log.get_or_insert_with(ChangeLog::default));
        self.base_needed = false;
        let st = &mut self.state;
        // the users changed that are still here (a user forgotten is not)
        let changed: Vec<u32> = log
            .users
            .iter()
            .filter_map(|&key| {
                let users = &st.users;
                st.index.find(key as u64, |i| users[i as usize].key == key)
            })
            .collect();
        for &u in &changed {
            st.users[u as usize].logged = false;
        }
        let mut bytes = Vec::new();
        let layout = packed_ids::Layout::WithPartition;
        let vec = "a Vec takes every byte";
        let mut records = 0;
        if base {
            packed_ids::write(st.seen.iter(), &mut bytes, layout).expect(vec);
            to_io(&(&[] as &[u128], &st.users), &mut bytes).expect(vec);
            st.activity.written.write(&mut bytes).expect(vec);
            records += st.seen.len() + st.users.len() + st.activity.written.len();
        } else {
            // what was forgotten since it was logged is not found any more
            let ids: Vec<(&u128, &Seen)> = log
                .ids
                .iter()
                .filter_map(|id| st.seen.get_key_value(id))
                .collect();
            packed_ids::write(ids.iter().copied(), &mut bytes, layout).expect(vec);
            let users: Vec<&UserState> = changed.iter().map(|&u| &st.users[u as usize]).collect();
            to_io(&(&log.gone, &users), &mut bytes).expect(vec);
            log.written.sort_unstable();
            log.written.dedup();
            st.activity.written.write_some(&log.written, &mut bytes);
            records += ids.len() + log.gone.len() + users.len() + log.written.len();
        }
        Segment {
            base,
            records: records as u64,
            bytes,
        }
    }

    /// An engine in the state a snapshot recorded (one that holds the whole
    /// state: [`Engine::snapshot`]).
    pub fn restore(profile: &Profile, bytes: &[u8]) -> Result<Engine, RestoreError> {
        Engine::restore_with_segments(profile, bytes, &[])
    }

    /// Checks that a snapshot can be restored under `profile` (its format,
    /// its profile's name, and the time zone, scored role and rules its
    /// state is laid out by, [`Profile::rule_shape`]) without reading the
    /// state; returns its header and the bytes after what was read.
    fn check_snapshot<'b>(
        profile: &Profile,
        bytes: &'b [u8],
    ) -> Result<(SnapshotHeader, &'b [u8]), RestoreError> {
        let corrupt = |e: postcard::Error| RestoreError::Corrupt(e.to_string());
        let (header, rest): (SnapshotHeader, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(corrupt)?;
        if !(5..=SNAPSHOT_FORMAT).contains(&header.format) {
            return Err(RestoreError::Corrupt(format!(
                "unknown format {}",
                header.format
            )));
        }
        if header.profile != profile.name {
            return Err(RestoreError::Profile {
                found: header.profile,
                expected: profile.name.clone(),
            });
        }
        // formats 5 and 6 did not record the shape: taken as the profile's
        if header.format < 7 {
            return Ok((header, rest));
        }
        let (shape, rest): (Vec<String>, &[u8]) =
            postcard::take_from_bytes(rest).map_err(corrupt)?;
        let expected = profile.rule_shape();
        // until session 19 the shape was the rules alone
        let rules_only = &expected[..profile.rules.len()];
        if shape != expected && shape != rules_only {
            return Err(RestoreError::Rules {
                profile: profile.name.clone(),
                found: shape.join(", "),
                expected: expected.join(", "),
            });
        }
        Ok((header, rest))
    }

    /// Checks that the snapshot `bytes` restores under `profile`, as
    /// [`Engine::restore`] would, without reading its state: a tool that
    /// reads a lake's checkpoints (a rescore) refuses another profile as
    /// the ingest would. Gives the settings the state was kept under.
    pub fn check_profile(profile: &Profile, bytes: &[u8]) -> Result<EngineConfig, RestoreError> {
        Engine::check_snapshot(profile, bytes).map(|(header, _)| header.cfg)
    }

    /// An engine in the state a snapshot recorded, with the part kept apart
    /// read from `segments` (the last base and the segments after it, in
    /// order, [`Engine::take_segment`]) if the snapshot was taken without it
    /// ([`Engine::snapshot_without_segments_into`]).
    pub fn restore_with_segments(
        profile: &Profile,
        bytes: &[u8],
        segments: &[&[u8]],
    ) -> Result<Engine, RestoreError> {
        let (header, rest) = Engine::check_snapshot(profile, bytes)?;
        let before_10 = header.format < 10;
        let mut engine = user::legacy::with(before_10, || {
            Engine::restore_any(profile, header, rest, segments)
        })?;
        if before_10 {
            for u in &mut engine.state.users {
                u.settle_legacy();
            }
            // its segments have the old layout: the next one starts afresh
            engine.base_needed = true;
        }
        Ok(engine)
    }

    /// [`Engine::restore_with_segments`] of the snapshot `header` and the
    /// bytes after what [`Engine::check_snapshot`] read, in the layout
    /// [`user::legacy`] says.
    fn restore_any(
        profile: &Profile,
        header: SnapshotHeader,
        rest: &[u8],
        segments: &[&[u8]],
    ) -> Result<Engine, RestoreError> {
        let corrupt = |e: postcard::Error| RestoreError::Corrupt(e.to_string());
        let mut elsewhere = false;
        let (mut state, after) = if header.format == 5 {
            let (old, ids): (v5::State, &[u8]) =
                postcard::take_from_bytes(rest).map_err(corrupt)?;
            let (seen, after) = packed_ids::read(ids, packed_ids::Layout::NoPartition)
                .map_err(RestoreError::Corrupt)?;
            (old.upgrade(seen), after)
        } else {
            let (mut state, mut ids): (State, &[u8]) =
                postcard::take_from_bytes(rest).map_err(corrupt)?;
            if header.format >= 9 {
                let (section, rest): (SegmentsSection, &[u8]) =
                    postcard::take_from_bytes(ids).map_err(corrupt)?;
                state.forget = section.forget;
                state.written_from = section.written_from;
                elsewhere = section.elsewhere;
                ids = rest;
            }
            if elsewhere {
                (state, ids)
            } else {
                let layout = packed_ids::Layout::WithPartition;
                let (seen, after) = packed_ids::read(ids, layout).map_err(RestoreError::Corrupt)?;
                state.seen = seen;
                (state, after)
            }
        };
        if elsewhere {
            if !after.is_empty() {
                return Err(RestoreError::Corrupt(
                    "bytes after a snapshot whose state is in segments".into(),
                ));
            }
            read_segments(&mut state, segments)?;
        } else if !segments.is_empty() {
            return Err(RestoreError::Corrupt(
                "segments given for a snapshot that holds its whole state".into(),
            ));
        } else if header.format >= 8 {
            // formats 5 to 7 end with the ids; 8 on have the written activity after
            state.activity.written =
                activity::WrittenDays::read(after).map_err(RestoreError::Corrupt)?;
        } else if !after.is_empty() {
            return Err(RestoreError::Corrupt(
                "bytes after the remembered ids".into(),
            ));
        }
        for u in &mut state.users {
            u.key = key128(&u.id);
        }
        state.index = Index::rebuild(state.users.iter().map(|u| u.key as u64));
        state.activity.rebuild_index();
        let mut engine = Engine::new(profile, header.cfg);
        engine.state = state;
        // a state restored from segments goes on from them; others start a base
        engine.base_needed = !elsewhere;
        Ok(engine)
    }

    /// Takes over the users whose latest events came from `partitions` from
    /// `other` (an engine restored from another instance's checkpoint, which
    /// owned those partitions), and the event ids it remembers. Users of other
    /// partitions stay as they are here. This is how a Kafka partition's state
    /// follows it to its new owner on a rebalance; it is exact when producers
    /// key by scored user (events.md), so that a user's events share a partition.
    pub fn absorb(&mut self, other: Engine, partitions: &std::collections::BTreeSet<i32>) {
        // state comes in other than by an event: the next segment is a base,
        // and the partitions taken over are forgotten by their own window
        // from the next fold on
        self.base_needed = true;
        self.state
            .forget
            .before
            .retain(|(p, _)| !partitions.contains(p) && *p != UNKNOWN_PARTITION);
        let mut theirs = other.state;
        let st = &mut self.state;
        st.activity
            .absorb(&mut theirs.activity, |p| partitions.contains(&p));
        for mut user in theirs.users {
            if !partitions.contains(&user.partition) {
                continue;
            }
            let h = user.key as u64;
            let users = &st.users;
            match st.index.find(h, |i| users[i as usize].key == user.key) {
                Some(u) => {
                    let mine = &mut st.users[u as usize];
                    user.queued = mine.queued;
                    *mine = user;
                }
                None => {
                    user.queued = false;
                    st.users.push(user);
                    st.index.insert(h, (st.users.len() - 1) as u32);
                }
            }
        }
        // the ids of the partitions taken over (and those of unknown partition,
        // from a format-5 snapshot)
        for (id, seen) in theirs.seen {
            if partitions.contains(&seen.partition) || seen.partition == UNKNOWN_PARTITION {
                st.seen.entry(id).or_insert(seen);
            }
        }
        // the partitions taken over come with their newest day and window
        for s in theirs.sources {
            if !partitions.contains(&s.partition) {
                continue;
            }
            match st.sources.iter_mut().find(|m| m.partition == s.partition) {
                Some(mine) => *mine = s,
                None => st.sources.push(s),
            }
        }
        st.arrivals = st.arrivals.max(theirs.arrivals);
    }

    /// Forgets the state of the source partitions for which `gone` holds,
    /// which this instance no longer reads: their users, newest days,
    /// windows and remembered ids. (The checkpoint written when they were
    /// revoked keeps that state for their new owner, which takes it over with
    /// [`Engine::absorb`].) Without this, a revoked partition's state would
    /// stay forever: its window only moves with its own events. Returns the
    /// users forgotten.
    pub fn release(&mut self, gone: impl Fn(i32) -> bool) -> usize {
        let gone = |p: i32| p != UNKNOWN_PARTITION && gone(p);
        let st = &mut self.state;
        if !st.sources.iter().any(|s| gone(s.partition)) {
            return 0;
        }
        st.sources.retain(|s| !gone(s.partition));
        st.seen.retain(|_, s| !gone(s.partition));
        // state goes other than by a fold: the next segment is a base, and a
        // partition that comes back starts a new window
        self.base_needed = true;
        st.forget.before.retain(|(p, _)| !gone(*p));
        st.activity.release(gone);
        let before = st.users.len();
        st.users.retain(|u| !gone(u.partition));
        let released = before - st.users.len();
        if released > 0 {
            st.index = Index::rebuild(st.users.iter().map(|u| u.key as u64));
            // the positions of the users waiting for the next flush moved
            st.dirty = (0..st.users.len() as u32)
                .filter(|&u| st.users[u as usize].queued)
                .collect();
        }
        released
    }

    /// Makes room for about `ids` more remembered event ids at once, when the
    /// caller knows roughly how many events come (file mode: from the file's
    /// size). The id table otherwise doubles as it fills, moving every id
    /// into fresh memory at each step.
    pub fn reserve_ids(&mut self, ids: usize) {
        self.state.seen.reserve(ids);
    }

    /// Event ids remembered to catch duplicates.
    pub fn remembered_ids(&self) -> usize {
        self.state.seen.len()
    }

    /// The records a base segment would hold now ([`Engine::take_segment`]).
    pub fn segment_records(&self) -> usize {
        let st = &self.state;
        st.seen.len() + st.users.len() + st.activity.written.len()
    }

    /// Sizes of the state, for metrics and the benchmark.
    pub fn stats(&self) -> EngineStats {
        let st = &self.state;
        let users_bytes = st
            .users
            .iter()
            .map(|u| u.heap_bytes() + std::mem::size_of::<UserState>())
            .sum::<usize>()
            + st.index.heap_bytes();
        let ids_bytes = table_bytes::<(u128, Seen)>(st.seen.capacity());
        let activity_bytes = st.activity.heap_bytes();
        EngineStats {
            users: st.users.len(),
            remembered_ids: st.seen.len(),
            state_bytes: users_bytes + ids_bytes + activity_bytes,
            users_bytes,
            ids_bytes,
            activity_bytes,
        }
    }
}

/// Sizes of the engine's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineStats {
    /// Scored users with state.
    pub users: usize,
    /// Event ids remembered for de-duplication.
    pub remembered_ids: usize,
    /// Estimated heap bytes of the whole state: the three parts below.
    pub state_bytes: usize,
    /// Of which the scored users' state and their lookup.
    pub users_bytes: usize,
    /// Of which the remembered ids' table (33 bytes a bucket, between 8/7
    /// and 16/7 buckets per id, as it grows by doubling).
    pub ids_bytes: usize,
    /// Of which the `daily_activity` (day, actor)s kept for the lateness window.
    pub activity_bytes: usize,
}

/// The day from which `daily_activity`'s written (day, actor)s are kept: the
/// earliest window of the sources not far behind the newest (within the
/// lateness), since an actor's events of a day can come from any of them (an
/// event on someone else's resource is keyed by its owner). A source further
/// behind, or idle, does not hold every other's back: a row of its for a
/// day before this starts afresh, under its own first event's role and school.
fn written_from(sources: &[Source], lateness: i32) -> i32 {
    let Some(newest) = sources.iter().map(|s| s.newest).max() else {
        return i32::MIN;
    };
    sources
        .iter()
        .filter(|s| s.newest >= newest - lateness)
        .filter_map(|s| s.folded_to)
        .min()
        .unwrap_or(i32::MIN)
}

/// The state kept in `segments` (the last base, then the segments after
/// it; [`Engine::take_segment`]) put into `state`, restored from a snapshot
/// without it: a later record of an id, a user or a (day, actor) replaces an
/// earlier one, a user forgotten goes, and the ids and (day, actor)s
/// forgotten since they were written go by the last flush's rules.
fn read_segments(state: &mut State, segments: &[&[u8]]) -> Result<(), RestoreError> {
    if segments.is_empty() {
        return Err(RestoreError::Corrupt(
            "its state is in segments, and none were read".into(),
        ));
    }
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        RestoreError::Corrupt(format!("segment {what}: {e}"))
    };
    let mut users: FxHashMap<u128, UserState> = FxHashMap::default();
    for segment in segments {
        let layout = packed_ids::Layout::WithPartition;
        let rest = packed_ids::read_into(&mut state.seen, segment, layout)
            .map_err(|e| corrupt("ids", &e))?;
        type Users = (Vec<u128>, Vec<UserState>);
        let ((gone, changed), rest): (Users, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| corrupt("users", &e))?;
        for key in gone {
            users.remove(&key);
        }
        for user in changed {
            users.insert(key128(&user.id), user);
        }
        let rest = state
            .activity
            .written
            .read_into(rest)
            .map_err(|e| corrupt("activity", &e))?;
        if !rest.is_empty() {
            return Err(RestoreError::Corrupt("bytes after a segment".into()));
        }
    }
    let forget = &state.forget;
    state.seen.retain(|_, s| forget.keeps(s));
    state.activity.forget_written(state.written_from);
    state.users = users.into_values().collect();
    // the users waiting for a flush, at their new positions
    state.dirty = (0..state.users.len() as u32)
        .filter(|&u| state.users[u as usize].queued)
        .collect();
    Ok(())
}

fn user_index(
    users: &mut Vec<UserState>,
    index: &mut Index,
    id: &str,
    key: u128,
    school: SchoolId,
) -> u32 {
    let h = key as u64;
    if let Some(u) = index.find(h, |i| users[i as usize].key == key) {
        return u;
    }
    let u = users.len() as u32;
    users.push(UserState::new(id, key, school));
    index.insert(h, u);
    u
}

/// What the first pass of [`Engine::process_rows`] reads of an event, in the
/// order events were read: its id's key, instant and source partition, and
/// its row in the batch. The three are copies of what the row's keys, the
/// batch and its span hold: the rows are sorted by day and user
/// ([`crate::pipeline::DecodedChunk::grouped`]), and reading them through
/// `row` in arrival order would jump about the batch for every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub id: u128,
    pub ts: i64,
    pub partition: i32,
    pub row: u32,
}

/// The 128-bit hashes (xxh3) by which the engine finds an event's state: the
/// event id (de-duplication), the actor (`daily_activity`) and the owner
/// (owner-scored rules). The decoder threads compute them, so the engine's
/// thread neither hashes nor compares strings. Two distinct strings share a
/// key with probability 2⁻¹²⁸, which the engine treats as never.
/// With them, the event's [`Kinds`], so that reading the event back from its
/// batch does not parse them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKeys {
    pub id: u128,
    pub user: u128,
    /// 0 without an `owner_id`.
    pub owner: u128,
    pub kinds: Kinds,
}

impl EventKeys {
    pub fn of(e: &Event<'_>) -> EventKeys {
        EventKeys {
            id: key128(&e.event_id),
            user: key128(&e.user_id),
            owner: e.extra.owner_id.as_deref().map_or(0, key128),
            kinds: e.kinds(),
        }
    }

    /// The key of the user the event is scored for: the owner's for an
    /// owner-scored action, else the actor's (also when the profile scores
    /// nobody for it): what [`super::pipeline::DecodedChunk::grouped`] groups
    /// rows by.
    pub fn group(&self) -> u128 {
        match self.kinds.action.scored_by() {
            ScoredBy::Owner if self.owner != 0 => self.owner,
            _ => self.user,
        }
    }
}

/// A string's 128-bit key (xxh3), stable across versions and restarts.
pub fn key128(s: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(s.as_bytes())
}

/// Whether an action is read by any rule of the engine's profile.
pub fn is_scored(rules: &Rules, action: Action) -> bool {
    !rules.by_action[action as usize].is_empty()
}

#[cfg(test)]
mod tests;
