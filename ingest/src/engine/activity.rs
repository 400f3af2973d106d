//! `daily_activity`: per (day, actor) usage counts, rolled up between flushes.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::interner::{Index, table_bytes};
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
#[derive(Clone, Copy)]
pub(super) struct Written {
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
    /// Stored in its own section of a snapshot, after the remembered ids.
    #[serde(skip)]
    pub(super) written: WrittenDays,
}

/// The [`Written`] (day, actor)s: one table per day, by actor key, so that
/// the day being written is a small table, and a day that leaves every
/// window is looked at once.
#[derive(Default)]
pub(super) struct WrittenDays(DayTables<FxHashMap<u128, Written>>);

/// Tables of a few days each, found by day: events come roughly in time
/// order, so the day looked up is most often the last one. The tables of
/// days gone are kept, emptied, for new days: days are alike, and a fresh
/// table that doubles as it fills moves every entry at each step and
/// faults its memory in.
struct DayTables<T> {
    days: Vec<(i32, T)>,
    /// Where the last day looked up is in `days`.
    last: usize,
    spare: Vec<T>,
}

impl<T> Default for DayTables<T> {
    fn default() -> Self {
        DayTables {
            days: Vec::new(),
            last: 0,
            spare: Vec::new(),
        }
    }
}

impl<T: Default> DayTables<T> {
    /// The table of `day`, made (from a spare one) if need be.
    fn day(&mut self, day: i32) -> &mut T {
        if find_from_last(&self.days, &mut self.last, |(d, _)| *d == day).is_none() {
            let table = self.spare.pop().unwrap_or_default();
            self.days.push((day, table));
            self.last = self.days.len() - 1;
        }
        &mut self.days[self.last].1
    }

    /// The table of `day`, if it has one.
    fn existing(&mut self, day: i32) -> Option<&mut T> {
        let i = find_from_last(&self.days, &mut self.last, |(d, _)| *d == day)?;
        Some(&mut self.days[i].1)
    }

    /// Drops the days whose table `emptied` empties (it gets each day and
    /// table, and says whether the table is now empty), keeping at most
    /// `max_spare` of their tables for new days.
    fn recycle(&mut self, max_spare: usize, mut emptied: impl FnMut(i32, &mut T) -> bool) {
        let (days, spare) = (&mut self.days, &mut self.spare);
        days.retain_mut(|(day, t)| {
            if !emptied(*day, t) {
                return true;
            }
            if spare.len() < max_spare {
                spare.push(std::mem::take(t));
            }
            false
        });
        spare.truncate(max_spare);
        self.last = 0;
    }
}

/// The bytes of one (day, actor) in a snapshot: day 4, actor key 16, first
/// event's instant 8 and id words 32, role 1, school 10, partition 4, counts
/// 16, little-endian.
const WRITTEN_RECORD: usize = 91;

impl WrittenDays {
    /// Writes every (day, actor) as a fixed-width record after their count
    /// (a snapshot's last section): at memory speed, where postcard's varints
    /// of the keys and ids took about half a microsecond each.
    pub(super) fn write(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        let all = self
            .0
            .days
            .iter()
            .flat_map(|(day, table)| table.iter().map(move |(user, w)| (*day, user, w)));
        write_records(self.len(), all, out)
    }

    /// [`WrittenDays::write`] of the (day, actor)s of `keys` that are here.
    pub(super) fn write_some(&self, keys: &[(i32, u128)], out: &mut Vec<u8>) {
        let tables = &self.0.days;
        let some = keys.iter().filter_map(|(day, user)| {
            let (_, table) = tables.iter().find(|(d, _)| d == day)?;
            let (user, w) = table.get_key_value(user)?;
            Some((*day, user, w))
        });
        let some: Vec<_> = some.collect();
        write_records(some.len(), some.into_iter(), out).expect("a Vec takes every byte");
    }

    /// The bytes [`WrittenDays::write`] writes.
    pub(super) fn snapshot_bytes(&self) -> usize {
        8 + WRITTEN_RECORD * self.0.days.iter().map(|(_, t)| t.len()).sum::<usize>()
    }

    /// Reads what [`WrittenDays::write`] wrote: the whole of `bytes`.
    pub(super) fn read(bytes: &[u8]) -> Result<WrittenDays, String> {
        let mut written = WrittenDays::default();
        if !written.read_into(bytes)?.is_empty() {
            return Err("written activity: bytes after it".into());
        }
        Ok(written)
    }

    /// Adds what [`WrittenDays::write`] wrote at the start of `bytes` (a
    /// record replaces an earlier one of its (day, actor)); the bytes after.
    pub(super) fn read_into<'b>(&mut self, bytes: &'b [u8]) -> Result<&'b [u8], String> {
        let (len, records) = bytes
            .split_first_chunk::<8>()
            .ok_or("written activity: missing")?;
        let len = u64::from_le_bytes(*len) as usize;
        let size = len.saturating_mul(WRITTEN_RECORD);
        if records.len() < size {
            return Err("written activity: truncated".into());
        }
        let (records, after) = records.split_at(size);
        for r in records.chunks_exact(WRITTEN_RECORD) {
            let mut at = 0;
            let mut take = |n: usize| {
                at += n;
                &r[at - n..at]
            };
            let day = i32::from_le_bytes(take(4).try_into().expect("4 bytes"));
            let user = u128::from_le_bytes(take(16).try_into().expect("16 bytes"));
            let ts = i64::from_le_bytes(take(8).try_into().expect("8 bytes"));
            let id = std::array::from_fn(|_| u64::from_le_bytes(take(8).try_into().expect("8")));
            let role = *Role::ALL
                .get(usize::from(take(1)[0]))
                .ok_or("written activity: a bad role")?;
            let school: [u8; 10] = take(10).try_into().expect("10 bytes");
            let school_id =
                SchoolId::try_from(school).map_err(|_| "written activity: a bad school id")?;
            let partition = i32::from_le_bytes(take(4).try_into().expect("4 bytes"));
            let counts =
                std::array::from_fn(|_| u32::from_le_bytes(take(4).try_into().expect("4")));
            self.0.day(day).insert(
                user,
                Written {
                    first: OrderKey { ts, id },
                    role,
                    school_id,
                    partition,
                    counts,
                },
            );
        }
        Ok(after)
    }

    /// The (day, actor)s held.
    pub(super) fn len(&self) -> usize {
        self.0.days.iter().map(|(_, t)| t.len()).sum()
    }
}

/// The `len` (day, actor)s of `all` as fixed-width records after their count.
fn write_records<'a>(
    len: usize,
    all: impl Iterator<Item = (i32, &'a u128, &'a Written)>,
    out: &mut (impl std::io::Write + ?Sized),
) -> std::io::Result<()> {
    out.write_all(&(len as u64).to_le_bytes())?;
    let mut block = Vec::with_capacity(1024 * WRITTEN_RECORD);
    for (day, user, w) in all {
        block.extend_from_slice(&day.to_le_bytes());
        block.extend_from_slice(&user.to_le_bytes());
        block.extend_from_slice(&w.first.ts.to_le_bytes());
        for word in w.first.id {
            block.extend_from_slice(&word.to_le_bytes());
        }
        block.push(w.role as u8);
        block.extend_from_slice(w.school_id.as_str().as_bytes());
        block.extend_from_slice(&w.partition.to_le_bytes());
        for n in w.counts {
            block.extend_from_slice(&n.to_le_bytes());
        }
        if block.len() + WRITTEN_RECORD > block.capacity() {
            out.write_all(&block)?;
            block.clear();
        }
    }
    out.write_all(&block)
}

impl WrittenDays {
    /// Keeps the (day, actor)s for which `keep` holds.
    fn retain(&mut self, mut keep: impl FnMut(&Written) -> bool) {
        self.recycle(|_, table| table.retain(|_, w| keep(w)));
    }

    /// Drops the days before `from` whole (their tables kept for new days).
    fn forget_before(&mut self, from: i32) {
        self.recycle(|day, table| {
            if day < from {
                table.clear();
            }
        });
    }

    /// `change` each day's table; empty ones go.
    fn recycle(&mut self, mut change: impl FnMut(i32, &mut FxHashMap<u128, Written>)) {
        // a few spare tables at most: the days a window spans
        self.0.recycle(8, |day, table| {
            change(day, table);
            table.is_empty()
        });
    }
}

/// The rows of each day, found by their actor's key: one small table per day
/// rather than one for the whole flush. Events come roughly in time order, so
/// the rows being counted at any moment are those of a day or two, and a
/// day's table stays in cache where one table of a month's rows (a
/// 100-school month in one flush: 735k rows) missed on nearly every event.
type DayIndex = DayTables<Index>;

impl DayIndex {
    /// Forgets every row, keeping the tables (the next flush has about as many
    /// days) but no more than twice as many as this flush used.
    fn clear(&mut self) {
        let keep = 2 * self.days.len() + 2;
        self.recycle(keep, |_, index| {
            index.clear();
            true
        });
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
    /// the days from `from` on (a long flush of a file spans many days no
    /// later event can reach); the rest is forgotten. The (day, actor)s
    /// written go to `log`, if given.
    pub fn drain(
        &mut self,
        from: i32,
        mut log: Option<&mut Vec<(i32, u128)>>,
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
            let table = if r.day >= from {
                self.written.0.day(r.day)
            } else {
                match self.written.0.existing(r.day) {
                    Some(table) => table,
                    None => {
                        emit(r.role, name(names, r.school_name), r.counts);
                        continue;
                    }
                }
            };
            if let Some(log) = &mut log {
                log.push((r.day, r.user));
            }
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
        self.forget_written(from);
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

    /// Forgets the written (day, actor)s of the days before `from`, which no
    /// event can change any more. `from` only moves forward, so those kept are
    /// the same whether this runs at every drain or once.
    pub(super) fn forget_written(&mut self, from: i32) {
        if self.written.0.days.iter().any(|(day, _)| *day < from) {
            self.written.forget_before(from);
        }
    }

    /// Forgets the written (day, actor)s of the partitions for which `gone` holds.
    pub fn release(&mut self, gone: impl Fn(i32) -> bool) {
        self.written.retain(|w| !gone(w.partition));
    }

    /// Takes over `other`'s written (day, actor)s of the partitions for
    /// which `taken` holds.
    pub fn absorb(&mut self, other: &mut Activity, taken: impl Fn(i32) -> bool) {
        for (day, table) in std::mem::take(&mut other.written.0.days) {
            for (user, w) in table {
                if taken(w.partition) {
                    self.written.0.day(day).entry(user).or_insert(w);
                }
            }
        }
    }

    /// Heap bytes of the written (day, actor)s.
    pub fn heap_bytes(&self) -> usize {
        self.written
            .0
            .days
            .iter()
            .map(|(_, t)| table_bytes::<(u128, Written)>(t.capacity()))
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

#[inline]
fn push_name(names: &mut String, s: &str) -> Name {
    let start = names.len() as u32;
    names.push_str(s);
    Name {
        start,
        len: s.len() as u32,
    }
}

#[inline]
fn name(names: &str, n: Name) -> &str {
    &names[n.start as usize..(n.start + n.len) as usize]
}
