//! `threshold_distinct`: a task earns its owner points on its publish day once
//! enough distinct students have read or completed it within its window.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::order::OrderKey;
use huoyue_schemas::time::day_of;

/// One task of one owner.
#[derive(Clone, Serialize, Deserialize)]
pub struct Task {
    /// The first progress event in order: its key and its `published_at`.
    pub first: OrderKey,
    pub published_at: i64,
    /// (student hash, ts) of every counted progress event; once the first event is
    /// frozen, only the eligible students are kept, each once.
    pub progress: Vec<(u64, i64)>,
    /// The publish day it qualified for, if it has.
    pub qualified_day: Option<i32>,
    /// Nothing can change it any more, so its progress is forgotten and its
    /// events are ignored: it qualified with its first event frozen, or its
    /// window is over (then, unqualified, it is kept for one more window, see
    /// [`Tasks::fold`]).
    #[serde(default)]
    pub sealed: bool,
    pub dirty: bool,
}

impl Task {
    /// Nothing can change it any more: its progress is forgotten and its
    /// events are ignored.
    fn seal(&mut self) {
        self.sealed = true;
        self.progress = Vec::new();
    }
}

/// The tasks of one owner and the qualified-task count per publish day.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    pub tasks: FxHashMap<u64, Task>,
    pub day_counts: Vec<(i32, u32)>,
    pub dirty: Vec<u64>,
}

/// The rule's parameters in engine units, with the profile's time zone and
/// the engine's allowed lateness ([`super::rules::Rules::compile`]).
#[derive(Clone, Copy, Debug)]
pub struct TaskParams {
    pub threshold: u32,
    pub window: i64,
    pub offset_seconds: i32,
    pub lateness_days: i32,
}

impl Tasks {
    /// Records a progress event; `student` is `Some` when its actor counts.
    /// Returns the task's publish instant (its first event's `published_at`,
    /// which need not be this event's).
    ///
    /// An unqualified task is forgotten two windows and the lateness after
    /// its publish instant ([`Tasks::fold`]); an event after that (and after
    /// [`first_final_by`]) starts it anew. So that this does not depend on
    /// when the state is folded, such an event starts it anew also while the
    /// old task is still held: the old one moves aside ([`aside`]) until it
    /// is forgotten, and the events of the days it still takes that come
    /// after (within the lateness) count for nothing, as they would for it.
    pub fn observe(
        &mut self,
        task: u64,
        key: OrderKey,
        published_at: i64,
        student: Option<(u64, i64)>,
        p: TaskParams,
    ) -> i64 {
        let day = day_of(key.ts, p.offset_seconds);
        if let Some(old) = self.tasks.get(&aside(task))
            && (day <= forget_after(old, p) || day <= first_final_by(old, p))
        {
            return old.published_at;
        }
        if let Some(t) = self.tasks.get(&task)
            && day > forget_after(t, p)
            && first_final_by(t, p) < day
            && t.qualified_day.is_none()
            && qualified_day(t, p).is_none()
        {
            let mut old = self.tasks.remove(&task).expect("just found");
            old.seal();
            self.tasks.insert(aside(task), old);
        }
        let t = self.tasks.entry(task).or_insert_with(|| Task {
            first: key,
            published_at,
            progress: Vec::new(),
            qualified_day: None,
            sealed: false,
            dirty: false,
        });
        if t.sealed {
            return t.published_at;
        }
        if key < t.first {
            t.first = key;
            t.published_at = published_at;
        }
        if let Some(s) = student {
            t.progress.push(s);
        }
        if !t.dirty {
            t.dirty = true;
            self.dirty.push(task);
        }
        t.published_at
    }

    /// Re-decides every task touched since the last call; returns whether any
    /// publish day's count changed.
    pub fn settle(&mut self, p: TaskParams) -> bool {
        let mut changed = false;
        for id in std::mem::take(&mut self.dirty) {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            t.dirty = false;
            if t.sealed {
                continue;
            }
            let now = qualified_day(t, p);
            if now != t.qualified_day {
                if let Some(d) = t.qualified_day {
                    bump(&mut self.day_counts, d, -1);
                }
                if let Some(d) = now {
                    bump(&mut self.day_counts, d, 1);
                }
                t.qualified_day = now;
                changed = true;
            }
        }
        changed
    }

    /// Forgets what can no longer change: of the tasks whose first event is
    /// frozen (before `window_start`: no event earlier in order can come, so
    /// their publish instant is final), those whose window ended before
    /// `window_start` and the progress of the others; and day counts older
    /// than any task could still correct.
    ///
    /// A task whose window ended is sealed: its later events count for
    /// nothing (they are after its window; an earlier one would be late).
    /// If it did not qualify, it is forgotten one window and the lateness
    /// later ([`forget_after`]), as [`Tasks::observe`] would start it anew
    /// by then; a qualified one is kept, sealed, for good. Producers that
    /// send one `published_at` per task never see a difference.
    pub fn fold(&mut self, p: TaskParams, window_start: i32, keep_days_from: i32) {
        self.tasks.retain(|_, t| {
            // until its first event is older than the window, an event that
            // comes later can be first, with another publish instant
            if day_of(t.first.ts, p.offset_seconds) >= window_start {
                return true;
            }
            let last_day = day_of(t.published_at.saturating_add(p.window), p.offset_seconds);
            if last_day < window_start {
                t.seal();
                // a qualified task keeps that fact for good (lake.md,
                // guarantee 5): forgotten, a later event stating another
                // `published_at` would start it anew and it could earn again
                return t.qualified_day.is_some()
                    || forget_after(t, p) >= window_start
                    || first_final_by(t, p) >= window_start;
            }
            if t.qualified_day.is_some() {
                t.seal();
            } else {
                let (lo, hi) = (t.published_at, t.published_at.saturating_add(p.window));
                t.progress.retain(|&(_, ts)| lo <= ts && ts <= hi);
                t.progress.sort_unstable();
                t.progress.dedup_by_key(|s| s.0);
                t.progress.shrink_to_fit();
            }
            true
        });
        self.day_counts
            .retain(|&(d, n)| n > 0 && d >= keep_days_from);
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.day_counts.is_empty()
    }
}

/// The last day of events that belong to `t` if it does not qualify: two
/// windows after its publish instant, plus the lateness. After it (and after
/// [`first_final_by`]) it is forgotten and an event starts it anew
/// ([`Tasks::observe`]).
fn forget_after(t: &Task, p: TaskParams) -> i32 {
    day_of(
        t.published_at.saturating_add(p.window.saturating_mul(2)),
        p.offset_seconds,
    )
    .saturating_add(p.lateness_days)
}

/// The day after which every event that can still come is later in order
/// than `t`'s first event: the first event's day plus the lateness. An event
/// of a later day starts an unqualified task past [`forget_after`] anew;
/// one of this day or before, which came before the first event was final,
/// joins it, whatever came first (an event earlier in order that comes
/// after it is of its day minus the lateness or later).
fn first_final_by(t: &Task, p: TaskParams) -> i32 {
    day_of(t.first.ts, p.offset_seconds).saturating_add(p.lateness_days)
}

/// Where a task that an event started anew keeps its old self until that is
/// forgotten: under its id's hash with these bits flipped (another task's
/// hash is as unlikely to be that as to be equal).
fn aside(task: u64) -> u64 {
    task ^ 0x9e37_79b9_7f4a_7c15
}

fn bump(days: &mut Vec<(i32, u32)>, day: i32, by: i32) {
    match days.iter_mut().find(|(d, _)| *d == day) {
        Some((_, n)) => *n = n.saturating_add_signed(by),
        None if by > 0 => days.push((day, by as u32)),
        None => {}
    }
}

fn qualified_day(t: &Task, p: TaskParams) -> Option<i32> {
    let (lo, hi) = (t.published_at, t.published_at.saturating_add(p.window));
    let mut students: Vec<u64> = t
        .progress
        .iter()
        .filter(|(_, ts)| lo <= *ts && *ts <= hi)
        .map(|(s, _)| *s)
        .collect();
    if students.len() < p.threshold as usize {
        return None;
    }
    students.sort_unstable();
    students.dedup();
    (students.len() >= p.threshold as usize).then(|| day_of(t.published_at, p.offset_seconds))
}
