//! The pull-based event stream: days are generated one at a time and put
//! into arrival order through a bounded reordering window (sorted once a
//! day); duplicates and
//! malformed lines are mixed in on the way out.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use super::calendar::{SECS_PER_DAY, US_PER_SEC, china_day_start_us};
use super::config::GenConfig;
use super::event::{BAD_SEQ, Event};
use super::malformed::{self, MalformedKind};
use super::rng::Rng;
use super::roster::Roster;
use super::simulate::Simulator;
use super::stats::GenStats;

/// What a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// A valid event, first copy.
    Event,
    /// An exact copy of an earlier line (same `event_id`).
    Duplicate,
    /// A malformed line; [`MalformedKind::reason`] is the reason an ingest
    /// must reject it with.
    Malformed(MalformedKind),
}

/// One line of the stream, borrowed from the stream's buffers until the
/// next call of [`EventStream::next_line`].
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// The line's bytes, without the trailing newline.
    pub bytes: &'a [u8],
    /// The Kafka key: the id of the user the event is scored for
    /// (`owner_id` for `resource_interact`, `resource_review` and
    /// `task_progress`, else `user_id`). Empty for garbage lines.
    pub key: &'a [u8],
    /// What the line is.
    pub kind: LineKind,
    /// The event's instant (µs since the epoch); for malformed lines the
    /// instant of the event they were made from.
    pub ts_us: i64,
}

struct Pending {
    arrival: i64,
    order: u64,
    dup: bool,
    ev: Event,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.arrival == o.arrival && self.order == o.order
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.arrival, self.order).cmp(&(o.arrival, o.order))
    }
}

/// Orders of duplicate copies sort after every original with the same
/// arrival instant.
const DUP_ORDER: u64 = 1 << 62;

/// A deterministic stream of NDJSON lines in arrival order.
///
/// ```
/// use huoyue_benches::r#gen::{EventStream, GenConfig, LineKind};
/// let cfg = GenConfig { schools: 2, teachers_per_school: 8, students_per_school: 40, ..GenConfig::default() };
/// let mut stream = EventStream::new(&cfg).unwrap();
/// let mut n = 0;
/// while let Some(line) = stream.next_line() {
///     if line.kind == LineKind::Event {
///         assert!(line.bytes.starts_with(b"{\"event_id\":\"ev-"));
///     }
///     n += 1;
/// }
/// assert_eq!(n, stream.stats().lines);
/// ```
pub struct EventStream {
    roster: Arc<Roster>,
    sim: Simulator,
    /// Events not yet written (carried over and of the newest day).
    arena: Vec<Event>,
    /// `(arrival, order, index in arena)`, sorted; `pos` is the next one.
    keys: Vec<(i64, u64, u32)>,
    pos: usize,
    /// Spare buffers swapped in when the open set is rebuilt.
    spare_arena: Vec<Event>,
    spare_keys: Vec<(i64, u64, u32)>,
    /// Duplicate copies waiting for their arrival (about 1% of events).
    dups: BinaryHeap<Reverse<Pending>>,
    day_buf: Vec<Event>,
    next_day: u32,
    cutoff: i64,
    rng: Rng,
    disorder_us: i64,
    dup_p: f64,
    bad_p: f64,
    big_p: f64,
    line: Vec<u8>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    pending_bad: Option<(MalformedKind, Event)>,
    bad_seq: u64,
    stats: GenStats,
    started: Instant,
}

impl EventStream {
    /// A stream for `cfg` (validated) with its own roster.
    pub fn new(cfg: &GenConfig) -> Result<Self, String> {
        Ok(Self::with_roster(cfg, Arc::new(Roster::new(cfg)?)))
    }

    /// A stream over an existing roster (which must come from the same
    /// configuration).
    pub fn with_roster(cfg: &GenConfig, roster: Arc<Roster>) -> Self {
        let stats = GenStats {
            schools: roster.schools().len() as u64,
            teachers: roster.teacher_count(),
            unlisted_teachers: roster.unlisted_teacher_count(),
            students: roster.student_count(),
            ..GenStats::default()
        };
        let per_line = |share: f64| {
            if share > 0.0 {
                share / (1.0 - share)
            } else {
                0.0
            }
        };
        EventStream {
            sim: Simulator::new(cfg),
            roster,
            arena: Vec::new(),
            keys: Vec::new(),
            pos: 0,
            spare_arena: Vec::new(),
            spare_keys: Vec::new(),
            dups: BinaryHeap::new(),
            day_buf: Vec::new(),
            next_day: 0,
            cutoff: i64::MIN,
            rng: Rng::derive(&[cfg.seed, 0x6f75_7470_7574]),
            disorder_us: (cfg.disorder_hours * 3600.0 * US_PER_SEC as f64) as i64,
            dup_p: cfg.duplicate_share,
            bad_p: per_line(cfg.malformed_share),
            big_p: per_line(cfg.oversize_share),
            line: Vec::with_capacity(512),
            key: Vec::with_capacity(32),
            scratch: Vec::with_capacity(128),
            pending_bad: None,
            bad_seq: 1,
            stats,
            started: Instant::now(),
        }
    }

    /// The roster the events refer to.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The counts so far (complete once [`next_line`](Self::next_line) has
    /// returned `None`).
    pub fn stats(&self) -> &GenStats {
        &self.stats
    }

    /// A delay between an event's instant and its arrival: mostly seconds,
    /// some up to an hour, a few up to the configured disorder.
    fn delay(&mut self) -> i64 {
        let u = self.rng.f64();
        let d = if u < 0.85 {
            self.rng.below(120 * US_PER_SEC as u64) as i64
        } else if u < 0.97 {
            self.rng.below(3600 * US_PER_SEC as u64) as i64
        } else {
            self.rng.below(self.disorder_us as u64 + 1) as i64
        };
        d.min(self.disorder_us)
    }

    /// The next line, or `None` at the end.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            if let Some((kind, template)) = self.pending_bad.take() {
                return Some(self.emit_bad(kind, template));
            }
            let open = self.next_day >= self.sim.days();
            let cutoff = if open { i64::MAX } else { self.cutoff };
            let next = self.keys.get(self.pos).filter(|k| k.0 < cutoff).copied();
            let dup = self
                .dups
                .peek()
                .filter(|Reverse(p)| p.arrival < cutoff)
                .map(|Reverse(p)| (p.arrival, p.order));
            let take_dup = match (next, dup) {
                (Some(k), Some(d)) => d < (k.0, k.1),
                (None, Some(_)) => true,
                _ => false,
            };
            if take_dup {
                let Reverse(p) = self.dups.pop().expect("peeked");
                return Some(self.emit(p));
            }
            if let Some(k) = next {
                self.pos += 1;
                let ev = self.arena[k.2 as usize];
                return Some(self.emit(Pending {
                    arrival: k.0,
                    order: k.1,
                    dup: false,
                    ev,
                }));
            }
            if self.next_day < self.sim.days() {
                self.generate_day();
                continue;
            }
            self.stats.seconds = self.started.elapsed().as_secs_f64();
            return None;
        }
    }

    fn generate_day(&mut self) {
        let wi = self.next_day;
        self.next_day += 1;
        self.day_buf.clear();
        self.sim.day(&self.roster, wi, &mut self.day_buf);
        // Rebuild the open set: what is left, then the new day.
        let mut arena = std::mem::take(&mut self.spare_arena);
        let mut keys = std::mem::take(&mut self.spare_keys);
        arena.clear();
        keys.clear();
        for k in &self.keys[self.pos..] {
            keys.push((k.0, k.1, arena.len() as u32));
            arena.push(self.arena[k.2 as usize]);
        }
        for i in 0..self.day_buf.len() {
            let ev = self.day_buf[i];
            let arrival = ev.ts_us + self.delay();
            keys.push((arrival, ev.seq, arena.len() as u32));
            arena.push(ev);
        }
        keys.sort_unstable();
        self.spare_arena = std::mem::replace(&mut self.arena, arena);
        self.spare_keys = std::mem::replace(&mut self.keys, keys);
        self.pos = 0;
        // Every later event has ts ≥ the end of this day.
        self.cutoff = china_day_start_us(self.sim.day_of(wi)) + SECS_PER_DAY * US_PER_SEC;
    }

    fn emit(&mut self, p: Pending) -> Line<'_> {
        self.line.clear();
        self.key.clear();
        p.ev.write_json(&self.roster, &mut self.line);
        p.ev.write_key(&self.roster, &mut self.key);
        let kind = if p.dup {
            self.stats.duplicates += 1;
            LineKind::Duplicate
        } else {
            self.stats.events += 1;
            if self.dup_p > 0.0 && self.rng.chance(self.dup_p) {
                let later = self.rng.range(US_PER_SEC as u64, 1800 * US_PER_SEC as u64) as i64;
                self.dups.push(Reverse(Pending {
                    arrival: p.arrival + later,
                    order: DUP_ORDER | p.ev.seq,
                    dup: true,
                    ev: p.ev,
                }));
            }
            LineKind::Event
        };
        if self.bad_p > 0.0 && self.rng.chance(self.bad_p) {
            let k = MalformedKind::REGULAR
                [self.rng.below(MalformedKind::REGULAR.len() as u64) as usize];
            self.pending_bad = Some((k, p.ev));
        } else if self.big_p > 0.0 && self.rng.chance(self.big_p) {
            self.pending_bad = Some((MalformedKind::TooLarge, p.ev));
        }
        self.stats.lines += 1;
        self.stats.bytes += self.line.len() as u64 + 1;
        Line {
            bytes: &self.line,
            key: &self.key,
            kind,
            ts_us: p.ev.ts_us,
        }
    }

    fn emit_bad(&mut self, kind: MalformedKind, mut template: Event) -> Line<'_> {
        template.seq = BAD_SEQ | self.bad_seq;
        self.bad_seq += 1;
        self.line.clear();
        self.key.clear();
        malformed::write(
            kind,
            &template,
            &self.roster,
            &mut self.rng,
            &mut self.line,
            &mut self.scratch,
        );
        if kind != MalformedKind::GarbageBytes {
            template.write_key(&self.roster, &mut self.key);
        }
        self.stats.malformed += 1;
        *self
            .stats
            .malformed_by_reason
            .entry(kind.reason())
            .or_insert(0) += 1;
        self.stats.lines += 1;
        self.stats.bytes += self.line.len() as u64 + 1;
        Line {
            bytes: &self.line,
            key: &self.key,
            kind: LineKind::Malformed(kind),
            ts_us: template.ts_us,
        }
    }
}
