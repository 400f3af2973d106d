//! Rules whose points depend on the order of events (scoring.md ground rule 3).
//!
//! Each keeps, per scored user, a *frozen* state summarising every event older than
//! the allowed lateness (no event can arrive before them any more), and a *log* of
//! the events inside the window. The window's points are an *overlay* computed by
//! applying the log in order on top of the frozen state, read-only. Events that
//! arrive in order are applied incrementally; one that arrives out of order makes
//! the overlay be rebuilt from the frozen state. When the window moves, the events
//! leaving it are applied into the frozen state for good.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::order::OrderKey;

/// A rule kind that replays its log.
pub trait Replay {
    type Params;
    type Item: Clone + Serialize + DeserializeOwned;
    type Frozen: Default + Clone + Serialize + DeserializeOwned;
    type Overlay: Default + Clone + Serialize + DeserializeOwned;

    fn apply(
        p: &Self::Params,
        frozen: &Self::Frozen,
        ov: &mut Self::Overlay,
        day: i32,
        item: &Self::Item,
    );
    /// Adds what `ov` holds to `frozen`. `ov` is left for [`Replay::reset`]
    /// to empty: implementations drain their tables into `frozen`, so that
    /// the allocations stay for the next replay.
    fn merge(p: &Self::Params, frozen: &mut Self::Frozen, ov: &mut Self::Overlay);
    /// Empties an overlay for a replay (implementations keep their allocations).
    fn reset(ov: &mut Self::Overlay) {
        *ov = Self::Overlay::default();
    }
    /// Points per day of the overlay.
    fn day_points(ov: &Self::Overlay) -> &[(i32, i64)];
    /// Whether the frozen state still matters (else it can be dropped).
    fn frozen_matters(frozen: &Self::Frozen) -> bool;
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Entry<T> {
    pub key: OrderKey,
    pub day: i32,
    pub item: T,
}

/// The frozen state, the window's log and its overlay, for one user and rule.
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Log<R: Replay> {
    pub frozen: R::Frozen,
    pub overlay: R::Overlay,
    pub entries: Vec<Entry<R::Item>>,
    /// Entries `..applied` are sorted and applied to the overlay.
    pub applied: usize,
}

impl<R: Replay> Default for Log<R> {
    fn default() -> Self {
        Log {
            frozen: R::Frozen::default(),
            overlay: R::Overlay::default(),
            entries: Vec::new(),
            applied: 0,
        }
    }
}

impl<R: Replay> Log<R> {
    pub fn push(&mut self, key: OrderKey, day: i32, item: R::Item) {
        self.entries.push(Entry { key, day, item });
    }

    /// Brings the overlay up to date with every entry.
    pub fn settle(&mut self, p: &R::Params) {
        if self.applied == self.entries.len() {
            return;
        }
        let start = self.applied;
        self.entries[start..].sort_by_key(|e| e.key);
        let in_order = start == 0 || self.entries[start - 1].key <= self.entries[start].key;
        if in_order {
            for e in &self.entries[start..] {
                R::apply(p, &self.frozen, &mut self.overlay, e.day, &e.item);
            }
        } else {
            self.entries.sort_by_key(|e| e.key);
            self.rebuild(p);
        }
        self.applied = self.entries.len();
    }

    fn rebuild(&mut self, p: &R::Params) {
        R::reset(&mut self.overlay);
        for e in &self.entries {
            R::apply(p, &self.frozen, &mut self.overlay, e.day, &e.item);
        }
    }

    /// Freezes every entry of a day before `window_start`.
    pub fn fold(&mut self, p: &R::Params, window_start: i32) {
        self.settle(p);
        let n = self.entries.partition_point(|e| e.day < window_start);
        if n == 0 {
            return;
        }
        // The overlay, rebuilt below anyway, takes the entries that leave
        // (its tables keep their room). When they all leave, the settled
        // overlay already is every entry applied in order.
        if n < self.entries.len() {
            R::reset(&mut self.overlay);
            for e in &self.entries[..n] {
                R::apply(p, &self.frozen, &mut self.overlay, e.day, &e.item);
            }
        }
        R::merge(p, &mut self.frozen, &mut self.overlay);
        self.entries.drain(..n);
        super::user::trim(&mut self.entries);
        if self.entries.is_empty() {
            // a log with nothing in the window holds no tables
            self.overlay = R::Overlay::default();
        } else {
            self.rebuild(p);
        }
        self.applied = self.entries.len();
    }

    /// Whether nothing is left worth keeping.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !R::frozen_matters(&self.frozen)
    }
}

fn add_day(days: &mut Vec<(i32, i64)>, day: i32, points: i64) -> i64 {
    match days.iter_mut().find(|(d, _)| *d == day) {
        Some((_, p)) => {
            *p += points;
            *p - points
        }
        None => {
            days.push((day, points));
            0
        }
    }
}

fn points_on(days: &[(i32, i64)], day: i32) -> i64 {
    days.iter().find(|(d, _)| *d == day).map_or(0, |(_, p)| *p)
}

// ---------------------------------------------------------------- once when complete

/// `once_when_complete`: the day the union of profile items first covers the
/// required set.
#[derive(Clone)]
pub struct Once;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct OnceFrozen {
    pub mask: u8,
    pub done: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct OnceOverlay {
    mask: u8,
    days: Vec<(i32, i64)>,
}

/// (points, required mask)
pub type OnceParams = (i64, u8);

impl Replay for Once {
    type Params = OnceParams;
    type Item = u8;
    type Frozen = OnceFrozen;
    type Overlay = OnceOverlay;

    fn apply(
        &(points, required): &OnceParams,
        f: &OnceFrozen,
        ov: &mut OnceOverlay,
        day: i32,
        &mask: &u8,
    ) {
        if f.done || !ov.days.is_empty() {
            return;
        }
        ov.mask |= mask;
        if (f.mask | ov.mask) & required == required {
            ov.days.push((day, points));
        }
    }

    fn merge(_: &OnceParams, f: &mut OnceFrozen, ov: &mut OnceOverlay) {
        f.mask |= ov.mask;
        f.done |= !ov.days.is_empty();
    }

    fn day_points(ov: &OnceOverlay) -> &[(i32, i64)] {
        &ov.days
    }

    fn frozen_matters(f: &OnceFrozen) -> bool {
        f.mask != 0 || f.done
    }
}

// ---------------------------------------------------------------- distinct pair

/// `distinct_pair`: a point per new (item, actor) pair, capped per owner-day and
/// per item over its lifetime.
#[derive(Clone)]
pub struct Pair;

/// (points, daily cap, lifetime cap per item)
pub type PairParams = (i64, i64, i64);

#[derive(Clone, Serialize, Deserialize)]
pub struct PairItem {
    /// Hash of the resource id.
    pub item: u64,
    /// Hash of the actor's user id.
    pub actor: u64,
    /// The actor is the owner (never a propagation).
    pub own: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PairRes {
    /// Actors paired with the resource (emptied once it reaches its lifetime cap).
    pub actors: FxHashSet<u64>,
    pub points: i64,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PairFrozen {
    pub res: FxHashMap<u64, PairRes>,
}

/// The window's pairs and points: flat tables, so a replay allocates nothing
/// once the tables have grown.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PairOverlay {
    /// (item, actor) pairs new in the window.
    pairs: FxHashSet<(u64, u64)>,
    /// Points each item earned in the window (items that earned some).
    points: FxHashMap<u64, i64>,
    days: Vec<(i32, i64)>,
}

impl Replay for Pair {
    type Params = PairParams;
    type Item = PairItem;
    type Frozen = PairFrozen;
    type Overlay = PairOverlay;

    fn apply(
        &(points, cap, item_cap): &PairParams,
        f: &PairFrozen,
        ov: &mut PairOverlay,
        day: i32,
        it: &PairItem,
    ) {
        if it.own {
            return;
        }
        let frozen = f.res.get(&it.item);
        let frozen_points = frozen.map_or(0, |r| r.points);
        if frozen_points >= item_cap {
            return; // capped for life: pairs no longer matter, nothing can be earned
        }
        if frozen.is_some_and(|r| r.actors.contains(&it.actor)) {
            return;
        }
        if !ov.pairs.insert((it.item, it.actor)) {
            return;
        }
        let item_points = ov.points.get(&it.item).copied().unwrap_or(0);
        let day_points = points_on(&ov.days, day);
        let earn = points
            .min(cap - day_points)
            .min(item_cap - frozen_points - item_points)
            .max(0);
        if earn > 0 {
            *ov.points.entry(it.item).or_default() += earn;
            add_day(&mut ov.days, day, earn);
        }
    }

    fn merge(&(_, _, item_cap): &PairParams, f: &mut PairFrozen, ov: &mut PairOverlay) {
        for (item, earned) in ov.points.drain() {
            f.res.entry(item).or_default().points += earned;
        }
        for (item, actor) in ov.pairs.drain() {
            let res = f.res.entry(item).or_default();
            if res.points >= item_cap {
                // capped for life: its pairs no longer matter
                if !res.actors.is_empty() {
                    res.actors = FxHashSet::default();
                }
            } else {
                res.actors.insert(actor);
            }
        }
    }

    fn reset(ov: &mut PairOverlay) {
        ov.pairs.clear();
        ov.points.clear();
        ov.days.clear();
    }

    fn day_points(ov: &PairOverlay) -> &[(i32, i64)] {
        &ov.days
    }

    fn frozen_matters(f: &PairFrozen) -> bool {
        !f.res.is_empty()
    }
}

// ---------------------------------------------------------------- review levels

/// `review_levels`: the first approval at each level earns its points; a deletion
/// takes back everything the resource earned and ends it.
#[derive(Clone)]
pub struct Review;

/// (points per level, level counted)
pub type ReviewParams = ([i64; 3], [bool; 3]);

#[derive(Clone, Serialize, Deserialize)]
pub struct ReviewItem {
    pub item: u64,
    pub level: u8,
    pub deleted: bool,
}

#[derive(Clone, Copy, Default, Serialize, Deserialize)]
pub struct ReviewRes {
    approved: u8,
    deleted: bool,
    points: i64,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ReviewFrozen {
    res: FxHashMap<u64, ReviewRes>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ReviewOverlay {
    res: FxHashMap<u64, ReviewRes>,
    days: Vec<(i32, i64)>,
}

impl Replay for Review {
    type Params = ReviewParams;
    type Item = ReviewItem;
    type Frozen = ReviewFrozen;
    type Overlay = ReviewOverlay;

    fn apply(
        (level_points, has_level): &ReviewParams,
        f: &ReviewFrozen,
        ov: &mut ReviewOverlay,
        day: i32,
        it: &ReviewItem,
    ) {
        let res = ov
            .res
            .entry(it.item)
            .or_insert_with(|| f.res.get(&it.item).copied().unwrap_or_default());
        if res.deleted {
            return;
        }
        if it.deleted {
            let back = res.points;
            res.deleted = true;
            res.points = 0;
            add_day(&mut ov.days, day, -back);
            return;
        }
        let bit = 1u8 << it.level;
        if res.approved & bit != 0 {
            return;
        }
        res.approved |= bit;
        let l = usize::from(it.level);
        if has_level[l] {
            res.points += level_points[l];
            add_day(&mut ov.days, day, level_points[l]);
        }
    }

    fn merge(_: &ReviewParams, f: &mut ReviewFrozen, ov: &mut ReviewOverlay) {
        f.res.extend(ov.res.drain());
    }

    fn reset(ov: &mut ReviewOverlay) {
        ov.res.clear();
        ov.days.clear();
    }

    fn day_points(ov: &ReviewOverlay) -> &[(i32, i64)] {
        &ov.days
    }

    fn frozen_matters(f: &ReviewFrozen) -> bool {
        !f.res.is_empty()
    }
}
