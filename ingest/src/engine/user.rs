//! The state of one scored user: the window's days, the lifetime state of the
//! order-dependent rules, and the points already written.

use serde::{Deserialize, Serialize};

use super::order::OrderKey;
use super::replay::{Log, Once, Pair, Replay, Review};
use super::rules::{Kind, Rules, capped};
use super::task::Tasks;

/// A school id: exactly 10 bytes (events.md: 10 ASCII digits), held inline so
/// that comparing the school of each event with the user's is no pointer chase.
/// Its bytes are always UTF-8: they are a whole `&str` ([`SchoolId::new`]) or
/// were checked when read back from a snapshot (a corrupt one is refused, not
/// restored to fail later).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[u8; 10]", into = "[u8; 10]")]
pub struct SchoolId([u8; 10]);

impl SchoolId {
    /// The id of a valid event's school (the decoder and [`EventRows::get`]
    /// let only 10-byte school ids through).
    ///
    /// [`EventRows::get`]: huoyue_schemas::columns::EventRows::get
    pub fn new(s: &str) -> SchoolId {
        SchoolId(
            s.as_bytes()
                .try_into()
                .expect("school ids of valid events are 10 bytes"),
        )
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("UTF-8: made from a str or checked by try_from")
    }
}

impl TryFrom<[u8; 10]> for SchoolId {
    type Error = &'static str;

    fn try_from(bytes: [u8; 10]) -> Result<SchoolId, Self::Error> {
        std::str::from_utf8(&bytes)
            .map(|_| SchoolId(bytes))
            .map_err(|_| "a school id that is not UTF-8")
    }
}

impl From<SchoolId> for [u8; 10] {
    fn from(id: SchoolId) -> [u8; 10] {
        id.0
    }
}

/// One day of the window.
#[derive(Clone, Serialize, Deserialize)]
pub struct DayState {
    pub day: i32,
    /// The first scoring event of the day in order, and the school it stated.
    pub first: OrderKey,
    pub school: SchoolId,
    /// Per rule: an event count, a presence flag or an item mask.
    pub slots: Vec<u64>,
    /// Per distinct-count rule: the distinct value hashes seen (up to what matters).
    pub sets: Vec<(u8, Vec<u64>)>,
}

/// What was written for one (day, rule) of a user, for a day that can still
/// change: the sums of the rows, and the school they are under.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    pub day: i32,
    pub rule: u8,
    pub points: i64,
    pub events: i64,
    pub school: SchoolId,
}

/// The [`Emitted`] entries of a user, and whether a day's school changed
/// since the last flush (only then can a row whose sums did not change
/// move). Snapshots before format 10 held (day, rule, points) alone;
/// [`legacy`] says which layout a snapshot being read (or, in tests,
/// written) has.
#[derive(Clone, Default)]
pub struct EmittedList {
    pub entries: Vec<Emitted>,
    pub moved: bool,
}

impl std::ops::Deref for EmittedList {
    type Target = Vec<Emitted>;
    fn deref(&self) -> &Vec<Emitted> {
        &self.entries
    }
}

impl std::ops::DerefMut for EmittedList {
    fn deref_mut(&mut self) -> &mut Vec<Emitted> {
        &mut self.entries
    }
}

/// The layout of [`EmittedList`] in snapshots of formats 5 to 9.
pub mod legacy {
    use std::cell::Cell;

    thread_local! {
        static BEFORE_10: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether users are read (or written) as formats 5 to 9 laid them out.
    pub fn active() -> bool {
        BEFORE_10.with(Cell::get)
    }

    /// Runs `f` with users read (or written) in the layout of formats 5 to
    /// 9 when `before_10`, on this thread (a restore reads on the thread
    /// that calls it).
    pub fn with<T>(before_10: bool, f: impl FnOnce() -> T) -> T {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                BEFORE_10.with(|c| c.set(self.0));
            }
        }
        let _reset = Reset(BEFORE_10.with(|c| c.replace(before_10)));
        f()
    }
}

/// The school of a legacy entry until [`UserState::settle_legacy`] sets it.
const UNKNOWN_SCHOOL: SchoolId = SchoolId([b'0'; 10]);

/// Days folded out of windows kept for new days, at most.
const MAX_SPARE_DAYS: usize = 4096;

impl Serialize for EmittedList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if legacy::active() {
            let old: Vec<(i32, u8, i64)> = self.iter().map(|e| (e.day, e.rule, e.points)).collect();
            old.serialize(s)
        } else {
            (&self.entries, self.moved).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EmittedList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if legacy::active() {
            // the events and school written are not known: the events as 0,
            // the school as the day's (UserState::settle_legacy)
            let old: Vec<(i32, u8, i64)> = Vec::deserialize(d)?;
            let entries = old
                .into_iter()
                .map(|(day, rule, points)| Emitted {
                    day,
                    rule,
                    points,
                    events: 0,
                    school: UNKNOWN_SCHOOL,
                })
                .collect();
            Ok(EmittedList {
                entries,
                moved: false,
            })
        } else {
            let (entries, moved) = <(Vec<Emitted>, bool)>::deserialize(d)?;
            Ok(EmittedList { entries, moved })
        }
    }
}

/// Lifetime state of a rule that needs more than the window's days.
#[derive(Clone, Serialize, Deserialize)]
pub enum Life {
    /// The login run ending on `last_day`, over frozen days.
    Streak {
        last_day: i32,
        run: u32,
    },
    Once(Log<Once>),
    Pair(Log<Pair>),
    Review(Log<Review>),
    Tasks(Tasks),
}

/// A scored user.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserState {
    pub id: Box<str>,
    /// The id's [`super::key128`], by which the engine finds the user
    /// (derived from `id`, so not stored in a snapshot).
    #[serde(skip)]
    pub key: u128,
    /// The school the latest scoring event stated (for rows of days without events).
    pub school: SchoolId,
    pub days: Vec<DayState>,
    pub lives: Vec<(u8, Life)>,
    /// What was written so far per (day, rule), for days that can still change.
    pub emitted: EmittedList,
    /// Events fed to each (day, rule) since the last flush.
    pub pending: Vec<(i32, u8, u32)>,
    /// Rules to recompute at the next flush (bit per rule index).
    pub dirty_rules: u64,
    /// Whether the user is on the engine's list for the next flush.
    pub queued: bool,
    /// Whether the user is in the engine's change log already (see
    /// [`super::Engine::take_segment`]).
    #[serde(skip)]
    pub logged: bool,
    /// The Kafka partition the user's latest scoring event came from ([`super::FILE_SOURCE`] for
    /// files): a rebalance hands a partition's users to its new owner.
    pub partition: i32,
    /// The arrival number ([`super::Engine::process_rows`]) of the event that
    /// set `school` and `partition`: events counted out of arrival order
    /// leave them as the latest to arrive set them. Not in a snapshot: every
    /// event after a restore arrived later.
    #[serde(skip)]
    pub latest_arrival: u64,
}

impl UserState {
    pub fn new(id: &str, key: u128, school: SchoolId) -> Self {
        UserState {
            id: id.into(),
            key,
            school,
            days: Vec::new(),
            lives: Vec::new(),
            emitted: EmittedList::default(),
            pending: Vec::new(),
            dirty_rules: 0,
            queued: false,
            logged: false,
            partition: super::FILE_SOURCE,
            latest_arrival: 0,
        }
    }

    /// The day's state, created if needed; keeps the school of the first event.
    pub fn day(
        &mut self,
        day: i32,
        key: OrderKey,
        school: SchoolId,
        n_rules: usize,
        spare: &mut Vec<DayState>,
    ) -> &mut DayState {
        // events come roughly in time order: the day is most often the last
        let i = match self.days.iter().rposition(|d| d.day == day) {
            Some(i) => {
                let d = &mut self.days[i];
                if key < d.first {
                    d.first = key;
                    if d.school != school {
                        // an earlier event states another school
                        d.school = school;
                        self.move_rows(day, school);
                    }
                }
                i
            }
            None => {
                // rows of the day written before it had a scoring event (a
                // task's publish day) are under another school, maybe
                self.move_rows(day, school);
                let at = self.days.partition_point(|d| d.day < day);
                let new = match spare.pop() {
                    Some(mut d) => {
                        d.slots.clear();
                        d.slots.resize(n_rules, 0);
                        d.sets.clear();
                        DayState {
                            day,
                            first: key,
                            school,
                            ..d
                        }
                    }
                    None => DayState {
                        day,
                        first: key,
                        school,
                        slots: vec![0; n_rules],
                        sets: Vec::new(),
                    },
                };
                self.days.insert(at, new);
                at
            }
        };
        &mut self.days[i]
    }

    /// Has the next flush move the rows written of `day` that are not under
    /// `school`, now the school of its first scoring event.
    fn move_rows(&mut self, day: i32, school: SchoolId) {
        for e in self.emitted.entries.iter() {
            if e.day == day && e.school != school {
                self.dirty_rules |= 1 << e.rule;
                self.emitted.moved = true;
            }
        }
    }

    pub fn add_pending(&mut self, day: i32, rule: u8) {
        // newest first: the latest entries are the current day's
        match self
            .pending
            .iter_mut()
            .rev()
            .find(|(d, r, _)| *d == day && *r == rule)
        {
            Some((_, _, n)) => *n += 1,
            None => self.pending.push((day, rule, 1)),
        }
        self.dirty_rules |= 1 << rule;
    }

    pub fn life(&mut self, rule: u8, make: impl FnOnce() -> Life) -> &mut Life {
        let i = match self.lives.iter().position(|(r, _)| *r == rule) {
            Some(i) => i,
            None => {
                self.lives.push((rule, make()));
                self.lives.len() - 1
            }
        };
        &mut self.lives[i].1
    }

    fn life_ref(&self, rule: u8) -> Option<&Life> {
        self.lives.iter().find(|(r, _)| *r == rule).map(|(_, l)| l)
    }

    /// Recomputes the dirty rules and reports every changed (day, rule) to `emit`
    /// as (day, school, rule, delta, events); `current` is scratch space,
    /// kept by the caller across users.
    pub fn flush(
        &mut self,
        rules: &Rules,
        current: &mut Vec<(i32, i64)>,
        mut emit: impl FnMut(i32, &str, u8, i64, i64),
    ) {
        let mut dirty = std::mem::take(&mut self.dirty_rules);
        let moved = std::mem::take(&mut self.emitted.moved);
        while dirty != 0 {
            let r = dirty.trailing_zeros() as u8;
            dirty &= dirty - 1;
            current.clear();
            self.current(rules, r, current);
            for e in self.emitted.iter() {
                if e.rule == r && !current.iter().any(|(cd, _)| *cd == e.day) {
                    current.push((e.day, 0));
                }
            }
            for &(d, rr, _) in &self.pending {
                if rr == r && !current.iter().any(|(cd, _)| *cd == d) {
                    current.push((d, i64::MIN));
                }
            }
            current.sort_unstable_by_key(|(d, _)| *d);
            for &(day, cur) in current.iter() {
                let events = self
                    .pending
                    .iter()
                    .find(|(d, rr, _)| *d == day && *rr == r)
                    .map_or(0, |p| i64::from(p.2));
                let slot = self
                    .emitted
                    .iter()
                    .position(|e| e.day == day && e.rule == r);
                let prev = slot.map(|i| self.emitted[i]);
                let (prev_points, prev_events) = prev.map_or((0, 0), |e| (e.points, e.events));
                let cur = if cur == i64::MIN { prev_points } else { cur };
                if cur == prev_points && events == 0 && !moved {
                    continue;
                }
                // the school of the day's first scoring event (lake.md); a
                // day out of the window keeps the school its rows are under
                let school = match self.days.iter().find(|d| d.day == day) {
                    Some(d) => d.school,
                    None => prev.map_or(self.school, |e| e.school),
                };
                match prev {
                    Some(p) if p.school != school => {
                        // what was written moves to the school of an earlier
                        // event that came since
                        if p.points != 0 || p.events != 0 {
                            emit(day, p.school.as_str(), r, -p.points, -p.events);
                        }
                        if cur != 0 || prev_events + events != 0 {
                            emit(day, school.as_str(), r, cur, prev_events + events);
                        }
                    }
                    _ => {
                        let delta = cur - prev_points;
                        if delta == 0 && events == 0 {
                            continue;
                        }
                        emit(day, school.as_str(), r, delta, events);
                    }
                }
                let written = Emitted {
                    day,
                    rule: r,
                    points: cur,
                    events: prev_events + events,
                    school,
                };
                match slot {
                    Some(i) => self.emitted[i] = written,
                    None => self.emitted.push(written),
                }
            }
        }
        self.pending.clear();
    }

    /// The points of rule `r` on every day it can currently have points.
    fn current(&mut self, rules: &Rules, r: u8, out: &mut Vec<(i32, i64)>) {
        let ri = usize::from(r);
        match &rules.rules[ri].kind {
            Kind::Streak {
                points,
                days,
                streak_points,
            } => {
                let (mut prev_day, mut run) = match self.life_ref(r) {
                    Some(Life::Streak { last_day, run }) => (*last_day, *run),
                    _ => (i32::MIN, 0),
                };
                for d in &self.days {
                    if d.slots[ri] == 0 {
                        continue;
                    }
                    run = if prev_day != i32::MIN && prev_day == d.day - 1 {
                        run + 1
                    } else {
                        1
                    };
                    prev_day = d.day;
                    out.push((
                        d.day,
                        if run >= *days {
                            *streak_points
                        } else {
                            *points
                        },
                    ));
                }
            }
            Kind::PerEvent { points, cap, .. } => {
                for d in &self.days {
                    out.push((d.day, capped(*points, d.slots[ri], *cap)));
                }
            }
            Kind::Tiers { tiers, .. } => {
                for d in &self.days {
                    let n = d
                        .sets
                        .iter()
                        .find(|(rr, _)| *rr == r)
                        .map_or(0, |(_, s)| s.len());
                    let p = tiers
                        .iter()
                        .find(|t| n >= t.at_least as usize)
                        .map_or(0, |t| t.points);
                    out.push((d.day, p));
                }
            }
            Kind::Items { points, .. } => {
                for d in &self.days {
                    out.push((d.day, points * i64::from(d.slots[ri].count_ones())));
                }
            }
            Kind::Once { points, required } => {
                if let Some(Life::Once(log)) = self
                    .lives
                    .iter_mut()
                    .find(|(rr, _)| *rr == r)
                    .map(|(_, l)| l)
                {
                    settled(log, &(*points, *required), out);
                }
            }
            Kind::Pair {
                points,
                cap,
                item_cap,
            } => {
                if let Some(Life::Pair(log)) = self
                    .lives
                    .iter_mut()
                    .find(|(rr, _)| *rr == r)
                    .map(|(_, l)| l)
                {
                    settled(log, &(*points, *cap, *item_cap), out);
                }
            }
            Kind::Review {
                level_points,
                has_level,
            } => {
                if let Some(Life::Review(log)) = self
                    .lives
                    .iter_mut()
                    .find(|(rr, _)| *rr == r)
                    .map(|(_, l)| l)
                {
                    settled(log, &(*level_points, *has_level), out);
                }
            }
            Kind::Threshold {
                points, cap, task, ..
            } => {
                if let Some(Life::Tasks(tasks)) = self
                    .lives
                    .iter_mut()
                    .find(|(rr, _)| *rr == r)
                    .map(|(_, l)| l)
                {
                    tasks.settle(*task);
                    for &(d, n) in &tasks.day_counts {
                        out.push((
                            d,
                            if n > 0 {
                                capped(*points, u64::from(n), *cap)
                            } else {
                                0
                            },
                        ));
                    }
                }
            }
        }
    }

    /// Moves the window's start to `w`: days before it are frozen for good.
    pub fn fold(&mut self, rules: &Rules, w: i32, spare: &mut Vec<DayState>) {
        let n = self.days.partition_point(|d| d.day < w);
        let leaving: Vec<DayState> = self.days.drain(..n).collect();
        for (ri, rule) in rules.rules.iter().enumerate() {
            let r = ri as u8;
            match &rule.kind {
                Kind::Streak { .. } => {
                    let mut any = false;
                    let life = self.life(r, || Life::Streak {
                        last_day: i32::MIN,
                        run: 0,
                    });
                    if let Life::Streak { last_day, run } = life {
                        for d in leaving.iter().filter(|d| d.slots[ri] > 0) {
                            *run = if *last_day != i32::MIN && *last_day == d.day - 1 {
                                *run + 1
                            } else {
                                1
                            };
                            *last_day = d.day;
                        }
                        any = *last_day != i32::MIN && *last_day >= w - 1;
                    }
                    if !any {
                        self.lives.retain(|(rr, _)| *rr != r);
                    }
                }
                Kind::Once { points, required } => {
                    if let Some(Life::Once(log)) = self
                        .lives
                        .iter_mut()
                        .find(|(rr, _)| *rr == r)
                        .map(|(_, l)| l)
                    {
                        log.fold(&(*points, *required), w);
                    }
                }
                Kind::Pair {
                    points,
                    cap,
                    item_cap,
                } => {
                    if let Some(Life::Pair(log)) = self
                        .lives
                        .iter_mut()
                        .find(|(rr, _)| *rr == r)
                        .map(|(_, l)| l)
                    {
                        log.fold(&(*points, *cap, *item_cap), w);
                    }
                }
                Kind::Review {
                    level_points,
                    has_level,
                } => {
                    if let Some(Life::Review(log)) = self
                        .lives
                        .iter_mut()
                        .find(|(rr, _)| *rr == r)
                        .map(|(_, l)| l)
                    {
                        log.fold(&(*level_points, *has_level), w);
                    }
                }
                Kind::Threshold { task, .. } => {
                    if let Some(Life::Tasks(tasks)) = self
                        .lives
                        .iter_mut()
                        .find(|(rr, _)| *rr == r)
                        .map(|(_, l)| l)
                    {
                        tasks.settle(*task);
                        tasks.fold(*task, w, w - rules.max_correction_days);
                    }
                }
                Kind::PerEvent { .. } | Kind::Tiers { .. } | Kind::Items { .. } => {}
            }
        }
        self.lives.retain(|(_, l)| match l {
            Life::Streak { .. } => true,
            Life::Once(log) => !log.is_empty(),
            Life::Pair(log) => !log.is_empty(),
            Life::Review(log) => !log.is_empty(),
            Life::Tasks(t) => !t.is_empty(),
        });
        let keep_from = w - rules.max_correction_days;
        self.emitted.retain(|e| {
            e.day >= w
                || (matches!(
                    rules.rules[usize::from(e.rule)].kind,
                    Kind::Threshold { .. }
                ) && e.day >= keep_from)
        });
        trim(&mut self.days);
        trim(&mut self.emitted.entries);
        // the days gone become other users' new days (a few thousand at most
        // are kept: about the users' days of one day)
        let room = MAX_SPARE_DAYS.saturating_sub(spare.len());
        spare.extend(leaving.into_iter().take(room));
    }

    /// Gives the entries read from a snapshot before format 10 the school
    /// their rows were written under: the day's, or the user's latest for a
    /// day out of the window (what those formats wrote them under).
    pub fn settle_legacy(&mut self) {
        for e in self.emitted.iter_mut() {
            e.school = self
                .days
                .iter()
                .find(|d| d.day == e.day)
                .map_or(self.school, |d| d.school);
        }
    }

    /// Whether the user holds nothing that can still matter.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
            && self.lives.is_empty()
            && self.emitted.is_empty()
            && self.pending.is_empty()
    }

    /// An estimate of the heap bytes this user holds.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut n = self.id.len();
        for d in &self.days {
            n += size_of::<DayState>() + d.slots.capacity() * 8;
            n += d
                .sets
                .iter()
                .map(|(_, s)| 32 + s.capacity() * 8)
                .sum::<usize>();
        }
        n += self.emitted.capacity() * size_of::<Emitted>() + self.pending.capacity() * 12;
        for (_, l) in &self.lives {
            n += size_of::<Life>()
                + match l {
                    Life::Streak { .. } => 0,
                    Life::Once(log) => log.entries.capacity() * 48,
                    Life::Pair(log) => {
                        log.entries.capacity() * 64
                            + log
                                .frozen
                                .res
                                .values()
                                .map(|r| 48 + r.actors.capacity() * 9)
                                .sum::<usize>()
                    }
                    Life::Review(log) => log.entries.capacity() * 64 + 64,
                    Life::Tasks(t) => t
                        .tasks
                        .values()
                        .map(|t| 96 + t.progress.capacity() * 16)
                        .sum::<usize>(),
                };
        }
        n
    }
}

/// Gives back a vector's spare room once it is mostly empty (memory stays
/// bounded by what is held), without reallocating at every fold.
pub fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > 2 * v.len() + 8 {
        v.shrink_to_fit();
    }
}

fn settled<R: Replay>(log: &mut Log<R>, p: &R::Params, out: &mut Vec<(i32, i64)>) {
    log.settle(p);
    out.extend_from_slice(R::day_points(&log.overlay));
}
