//! `daily_activity`: per (day, actor) usage counts, rolled up between flushes.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::interner::Index;
use super::order::OrderKey;
use super::user::SchoolId;
use super::{UNKNOWN_PARTITION, find_from_last, key128};
use huoyue_schemas::event::{Action, EventView, Role};

/// A `daily_activity` row as handed to a [`super::DeltaSink`].
#[derive(Clone, Copy, Debug)]
pub struct ActivityRow<'a> {
    pub day: i32,
    pub user_id: &'a str,
    pub role: Role,
    pub school_id: &'a str,
    pub logins: i64,
    pub deep_actions: i64,
    pub registers: i64,
    pub events: i64,
}

/// Where a string is in [`Activity::names`].
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct Name {
    start: u32,
    len: u32,
}

/// The counts of one (day, user) since the last flush.
#[derive(Clone, Serialize, Deserialize)]
struct Row {
    day: i32,
    /// The actor's [`super::key128`] (derived from `user_id`, so not stored
    /// in a snapshot).
    #[serde(skip)]
    user: u128,
    user_id: Name,
    role: Role,
    school_id: SchoolId,
    /// `school_id` as text in [`Activity::names`] (derived, so not stored in a
    /// snapshot): the drain hands it out without checking ten bytes per row.
    #[serde(skip)]
    school_name: Name,
    /// The first event in order among those counted here (it gives role and school).
    first: OrderKey,
    /// logins, deep actions, registers, events
    counts: [i64; 4],
    /// The source partition of the event that made the row (not stored in a
    /// snapshot: a restored row's is not known).
    #[serde(skip, default = "unknown_partition")]
    partition: i32,
}

fn unknown_partition() -> i32 {
    UNKNOWN_PARTITION
}

/// What earlier flushes wrote for a (day, actor) whose day can still get
/// events (its source partition's lateness window): the first event in order
/// so far, the role and school it stated, and the counts written under them.
/// lake.md gives a (day, actor) the role and school of the day's first event,
/// not of each flush's: a later flush writes its counts under these, and an
/// earlier event stating others moves the counts written to them.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct Written {
    first: OrderKey,
    role: Role,
    school_id: SchoolId,
    partition: i32,
    /// As written (a day's counts of one actor fit 32 bits).
    counts: [u32; 4],
}

/// The rows of the current flush. Their user and school ids live in one
/// buffer, cleared at each flush, not in an allocation per row.
#[derive(Default, Serialize, Deserialize)]
pub struct Activity {
    rows: Vec<Row>,
    names: String,
    #[serde(skip)]
    index: DayIndex,
    /// Stored in its own section of a snapshot ([`Activity::written`],
    /// [`Activity::set_written`]), after the rest.
    #[serde(skip)]
    written: WrittenDays,
}

/// The [`Written`] (day, actor)s: one table per day, by actor key, so that
/// the day being written is a small table, and a day that leaves every
/// window is looked at once.
#[derive(Default)]
struct WrittenDays {
    days: Vec<(i32, FxHashMap<u128, Written>)>,
    /// Where the last day looked up is in `days`.
    last: usize,
    /// The tables of days gone, emptied, for new days: days are alike, and a
    /// fresh table that doubles as it fills moves every entry at each step
    /// and faults its memory in.
    spare: Vec<FxHashMap<u128, Written>>,
}

impl WrittenDays {
    fn day(&mut self, day: i32) -> &mut FxHashMap<u128, Written> {
        if find_from_last(&self.days, &mut self.last, |(d, _)| *d == day).is_none() {
            let table = self.spare.pop().unwrap_or_default();
            self.days.push((day, table));
            self.last = self.days.len() - 1;
        }
        &mut self.days[self.last].1
    }

    /// The table of `day`, if it has one.
    fn existing(&mut self, day: i32) -> Option<&mut FxHashMap<u128, Written>> {
        let i = find_from_last(&self.days, &mut self.last, |(d, _)| *d == day)?;
        Some(&mut self.days[i].1)
    }

    /// Keeps the (day, actor)s for which `keep` holds, looking only at the
    /// days before `from`; the days before `drop` go whole, unlooked at.
    fn retain_before(&mut self, drop: i32, from: i32, mut keep: impl FnMut(i32, &Written) -> bool) {
        for (day, table) in &mut self.days {
            if *day < drop {
                table.clear();
            } else if *day < from {
                table.retain(|_, w| keep(*day, w));
            }
        }
        let (days, spare) = (&mut self.days, &mut self.spare);
        days.retain_mut(|(_, t)| {
            if !t.is_empty() {
                return true;
            }
            // a few at most: the days a window spans
            if spare.len() < 8 {
                spare.push(std::mem::take(t));
            }
            false
        });
        self.last = 0;
    }
}

/// The rows of each day, found by their actor's key: one small table per day
/// rather than one for the whole flush. Events come roughly in time order, so
/// the rows being counted at any moment are those of a day or two, and a
/// day's table stays in cache where one table of a month's rows (a
/// 100-school month in one flush: 735k rows) missed on nearly every event.
#[derive(Default)]
struct DayIndex {
    days: Vec<(i32, Index)>,
    /// Where the last day looked up is in `days`.
    last: usize,
}

impl DayIndex {
    /// A table of `days` no day holds since the last clear.
    const FREE: i32 = i32::MIN;

    fn day(&mut self, day: i32) -> &mut Index {
        if find_from_last(&self.days, &mut self.last, |(d, _)| *d == day).is_none() {
            self.last = match self.days.iter().position(|(d, _)| *d == Self::FREE) {
                Some(i) => {
                    self.days[i].0 = day;
                    i
                }
                None => {
                    self.days.push((day, Index::default()));
                    self.days.len() - 1
                }
            };
        }
        &mut self.days[self.last].1
    }

    /// Forgets every row, keeping the tables (the next flush has about as many
    /// days) but no more than twice as many as this flush used.
    fn clear(&mut self) {
        let used = self.days.iter().filter(|(d, _)| *d != Self::FREE).count();
        self.days.truncate(2 * used + 2);
        for (d, index) in &mut self.days {
            *d = Self::FREE;
            index.clear();
        }
        self.last = 0;
    }
}

impl Activity {
    /// Counts `e`, whose actor has the key `user`, read from `partition`.
    pub fn add<E: EventView + ?Sized>(
        &mut self,
        day: i32,
        key: OrderKey,
        user: u128,
        partition: i32,
        e: &E,
    ) {
        let kinds = e.kinds();
        let h = user as u64;
        let rows = &self.rows;
        let index = self.index.day(day);
        let i = match index.find(h, |i| rows[i as usize].user == user) {
            Some(i) => i as usize,
            None => {
                let user_id = push_name(&mut self.names, e.user_id());
                let school_name = push_name(&mut self.names, e.school_id());
                self.rows.push(Row {
                    day,
                    user,
                    user_id,
                    role: kinds.role,
                    school_id: SchoolId::new(e.school_id()),
                    school_name,
                    first: key,
                    counts: [0; 4],
                    partition,
                });
                index.insert(h, (self.rows.len() - 1) as u32);
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i];
        if key < row.first {
            row.first = key;
            row.role = kinds.role;
            let school = SchoolId::new(e.school_id());
            if school != row.school_id {
                row.school_id = school;
                row.school_name = push_name(&mut self.names, e.school_id());
            }
        }
        row.counts[3] += 1;
        match kinds.action {
            Action::Login => row.counts[0] += 1,
            Action::Register => row.counts[2] += 1,
            a if a.is_deep() => row.counts[1] += 1,
            _ => {}
        }
    }

    /// Hands every row of this flush to `each`, leaving the roll-up empty:
    /// under the role and school of the day's first event, also when that
    /// came in an earlier flush ([`Written`]). What is written is kept for
    /// the days for which `stays(day, partition)` holds: those still in
    /// their partition's window once this flush is folded (a long flush of
    /// a file spans many days that no later event can reach).
    pub fn drain(
        &mut self,
        stays: impl Fn(i32, i32) -> bool,
        mut each: impl FnMut(&ActivityRow<'_>),
    ) {
        let names = &self.names;
        for r in &self.rows {
            let mut emit = |role: Role, school_id: &str, counts: [i64; 4]| {
                let [logins, deep_actions, registers, events] = counts;
                each(&ActivityRow {
                    day: r.day,
                    user_id: name(names, r.user_id),
                    role,
                    school_id,
                    logins,
                    deep_actions,
                    registers,
                    events,
                });
            };
            let table = if stays(r.day, r.partition) {
                self.written.day(r.day)
            } else {
                match self.written.existing(r.day) {
                    Some(table) => table,
                    None => {
                        emit(r.role, name(names, r.school_name), r.counts);
                        continue;
                    }
                }
            };
            let w = match table.entry(r.user) {
                Entry::Vacant(slot) => {
                    emit(r.role, name(names, r.school_name), r.counts);
                    slot.insert(Written {
                        first: r.first,
                        role: r.role,
                        school_id: r.school_id,
                        partition: r.partition,
                        counts: r.counts.map(|n| n as u32),
                    });
                    continue;
                }
                Entry::Occupied(w) => w.into_mut(),
            };
            let total: [i64; 4] = std::array::from_fn(|i| i64::from(w.counts[i]) + r.counts[i]);
            if r.first < w.first && (r.role, r.school_id) != (w.role, w.school_id) {
                // an earlier event states another role or school: what was
                // written under the old ones moves to the new
                emit(
                    w.role,
                    w.school_id.as_str(),
                    w.counts.map(|n| -i64::from(n)),
                );
                emit(r.role, name(names, r.school_name), total);
                (w.role, w.school_id) = (r.role, r.school_id);
            } else {
                emit(w.role, w.school_id.as_str(), r.counts);
            }
            w.first = w.first.min(r.first);
            w.counts = total.map(|n| n as u32);
        }
        // keep the allocations (the next flush has about as many rows), but
        // give back what a much larger flush left
        let (n, bytes) = (self.rows.len(), self.names.len());
        self.rows.clear();
        self.names.clear();
        self.index.clear();
        if self.rows.capacity() > 2 * n + 8 {
            self.rows.shrink_to(n);
        }
        if self.names.capacity() > 2 * bytes + 64 {
            self.names.shrink_to(bytes);
        }
    }

    /// Forgets the written (day, actor)s no event can change any more: those
    /// whose day is before `window` of their source partition (`None`: the
    /// partition's window did not move). `earliest` and `latest` bound the
    /// windows of every partition: days before the first go whole, days
    /// from the second on stay whole.
    pub fn forget(&mut self, earliest: i32, latest: i32, window: impl Fn(i32) -> Option<i32>) {
        if self.written.days.iter().all(|(day, _)| *day >= latest) {
            return;
        }
        self.written.retain_before(earliest, latest, |day, w| {
            window(w.partition).is_none_or(|start| day >= start)
        });
    }

    /// Forgets the written (day, actor)s of the partitions for which `gone` holds.
    pub fn release(&mut self, gone: impl Fn(i32) -> bool) {
        self.written
            .retain_before(i32::MIN, i32::MAX, |_, w| !gone(w.partition));
    }

    /// Takes over `other`'s written (day, actor)s of the partitions for
    /// which `taken` holds.
    pub fn absorb(&mut self, other: &mut Activity, taken: impl Fn(i32) -> bool) {
        for (day, table) in std::mem::take(&mut other.written.days) {
            for (user, w) in table {
                if taken(w.partition) {
                    self.written.day(day).entry(user).or_insert(w);
                }
            }
        }
    }

    /// The written (day, actor)s, for a snapshot.
    pub fn written(&self) -> Vec<((i32, u128), Written)> {
        let days = &self.written.days;
        days.iter()
            .flat_map(|(day, t)| t.iter().map(move |(user, w)| ((*day, *user), *w)))
            .collect()
    }

    /// The written (day, actor)s a snapshot recorded.
    pub fn set_written(&mut self, written: Vec<((i32, u128), Written)>) {
        self.written = WrittenDays::default();
        for ((day, user), w) in written {
            self.written.day(day).insert(user, w);
        }
    }

    /// Heap bytes of the written (day, actor)s.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u128, Written)>() + 1;
        self.written
            .days
            .iter()
            .map(|(_, t)| t.capacity() * entry)
            .sum()
    }

    /// Derives the rows' keys and rebuilds the lookup after a restore.
    pub fn rebuild_index(&mut self) {
        for r in &mut self.rows {
            r.user = key128(name(&self.names, r.user_id));
            r.school_name = push_name(&mut self.names, r.school_id.as_str());
        }
        self.index.clear();
        for (i, r) in self.rows.iter().enumerate() {
            self.index.day(r.day).insert(r.user as u64, i as u32);
        }
    }
}

fn push_name(names: &mut String, s: &str) -> Name {
    let start = names.len() as u32;
    names.push_str(s);
    Name {
        start,
        len: s.len() as u32,
    }
}

fn name(names: &str, n: Name) -> &str {
    &names[n.start as usize..(n.start + n.len) as usize]
}
