//! The one pipeline every source feeds: decoded chunks in, the engine scores them,
//! the lake writer writes them. File mode and the Kafka service differ only in
//! where chunks come from and when they flush and checkpoint.

pub mod decode;
pub mod file;

use std::collections::BTreeMap;

use arrow::array::{BooleanArray, UInt32Array};
use arrow::buffer::BooleanBuffer;

use huoyue_schemas::columns::{EventRows, Lineage};
use huoyue_schemas::reason::Reason;
use huoyue_schemas::time::day_of;

use crate::engine::{ActivityRow, DeltaSink, Engine, Outcome};
use crate::lake_writer::{Keep, LakeError, LakeWriter, WrittenFile};
pub use decode::{DecodedChunk, Span, decode_chunk, sub_chunk};

/// The day of a row that is not written to `events` (a duplicate, a late event).
const NOT_KEPT: i32 = i32::MIN;

/// How the rows of a batch go to the `events` files of their days, given each
/// row's day ([`NOT_KEPT`] for rows not written): as (day, offset, length,
/// rows of that slice). The encoder threads make the selections, so the
/// scoring thread copies no rows.
///
/// Events come roughly in time order, so a day's rows are mostly one run,
/// broken only by duplicates and by a few events of other days. Such a run
/// is written as a slice (with a mask when some of its rows are not the
/// day's), which costs a copy of its bytes and no more; the day's rows
/// outside its runs are gathered one by one.
fn day_rows(row_day: &[i32]) -> Vec<(i32, usize, usize, Keep)> {
    /// A run ends where the next row of its day is this far on.
    const GAP: usize = 64;
    /// Shorter runs are gathered row by row with the day's scattered rows.
    const MIN_RUN: usize = 256;
    struct Run {
        day: i32,
        first: usize,
        last: usize,
        rows: usize,
    }
    let mut out = Vec::new();
    let mut scattered: Vec<(i32, Vec<u32>)> = Vec::new();
    let mut close = |r: &Run, out: &mut Vec<(i32, usize, usize, Keep)>| {
        let span = r.last - r.first + 1;
        let of_run = &row_day[r.first..=r.last];
        if r.rows >= MIN_RUN {
            let keep = if r.rows == span {
                Keep::All
            } else if 5 * r.rows >= 4 * span {
                // mostly kept: Arrow's filter copies the kept stretches whole
                Keep::Mask(BooleanArray::new(
                    BooleanBuffer::collect_bool(span, |i| of_run[i] == r.day),
                    None,
                ))
            } else {
                Keep::Rows(UInt32Array::from_iter_values(
                    (0..span as u32).filter(|&i| of_run[i as usize] == r.day),
                ))
            };
            out.push((r.day, r.first, span, keep));
        } else {
            let rows = match scattered.iter_mut().find(|(d, _)| *d == r.day) {
                Some((_, rows)) => rows,
                None => {
                    scattered.push((r.day, Vec::new()));
                    &mut scattered.last_mut().expect("just pushed").1
                }
            };
            rows.extend(
                (r.first..=r.last)
                    .filter(|&i| row_day[i] == r.day)
                    .map(|i| i as u32),
            );
        }
    };
    let mut runs: Vec<Run> = Vec::new();
    for (i, &day) in row_day.iter().enumerate() {
        if day == NOT_KEPT {
            continue;
        }
        match runs.iter_mut().rev().find(|r| r.day == day) {
            Some(r) if i - r.last <= GAP => {
                r.last = i;
                r.rows += 1;
            }
            Some(r) => {
                close(r, &mut out);
                *r = Run {
                    day,
                    first: i,
                    last: i,
                    rows: 1,
                };
            }
            None => runs.push(Run {
                day,
                first: i,
                last: i,
                rows: 1,
            }),
        }
    }
    for r in &runs {
        close(r, &mut out);
    }
    for (day, rows) in scattered {
        out.push((day, 0, row_day.len(), Keep::Rows(UInt32Array::from(rows))));
    }
    out
}

/// What the pipeline has seen (the file-mode summary, the metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub valid: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<Reason, u64>,
    /// Sum of the points deltas written, per rule.
    pub points: BTreeMap<String, i64>,
    pub files: u64,
    pub bytes: u64,
}

impl Counts {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn points_total(&self) -> i64 {
        self.points.values().sum()
    }

    /// The one-line summary of a run.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "read {}, valid {}, duplicates {}, rejected {}",
            self.read,
            self.valid,
            self.duplicates,
            self.rejected_total()
        );
        if !self.rejected.is_empty() {
            let parts: Vec<String> = self
                .rejected
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            s += &format!(" ({})", parts.join(", "));
        }
        s += &format!(
            ", points written {}, files {}",
            self.points_total(),
            self.files
        );
        s
    }
}

/// A rejected message, as handed to a [`Pipeline`]'s reject hook (the Kafka
/// service's dead-letter topic).
pub struct RejectedMessage<'a> {
    pub reason: Reason,
    pub detail: Option<&'a str>,
    pub raw: &'a [u8],
    pub source: &'a str,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

/// Receives every rejected message after it is buffered for `rejected`.
pub type RejectHook = Box<dyn FnMut(RejectedMessage<'_>) + Send>;

/// The engine and the writer, fed chunk by chunk.
pub struct Pipeline {
    engine: Engine,
    writer: LakeWriter,
    counts: Counts,
    on_reject: Option<RejectHook>,
}

/// Forwards deltas to the writer and counts the points.
struct Counting<'a> {
    writer: &'a mut LakeWriter,
    points: &'a mut BTreeMap<String, i64>,
}

impl DeltaSink for Counting<'_> {
    fn score(
        &mut self,
        day: i32,
        user_id: &str,
        school_id: &str,
        rule: &str,
        points: i64,
        events: i64,
    ) {
        match self.points.get_mut(rule) {
            Some(p) => *p += points,
            None => {
                self.points.insert(rule.to_owned(), points);
            }
        }
        self.writer
            .score(day, user_id, school_id, rule, points, events);
    }

    fn activity(&mut self, row: &ActivityRow<'_>) {
        self.writer.activity(row);
    }
}

/// Where a rejected message goes: counted, buffered for `rejected`, and
/// handed to the reject hook.
struct Kept<'a> {
    counts: &'a mut Counts,
    writer: &'a mut LakeWriter,
    on_reject: &'a mut Option<RejectHook>,
}

impl Kept<'_> {
    /// Keeps the message of `chunk` at `span`, rejected for `reason`
    /// (`ingest_day`: the chunk's day by the ingest clock).
    fn reject(
        self,
        chunk: &DecodedChunk,
        ingest_day: i32,
        span: Span,
        reason: Reason,
        detail: Option<&str>,
    ) {
        *self.counts.rejected.entry(reason).or_default() += 1;
        let raw = &chunk.data[span.start..span.end];
        self.writer.add_rejected(
            ingest_day,
            chunk.decoded_at,
            reason.as_str(),
            detail,
            raw,
            Lineage {
                source: &chunk.source,
                partition: span.partition,
                offset: span.offset,
            },
        );
        if let Some(hook) = self.on_reject {
            hook(RejectedMessage {
                reason,
                detail,
                raw,
                source: &chunk.source,
                partition: span.partition,
                offset: span.offset,
            });
        }
    }
}

impl Pipeline {
    pub fn new(engine: Engine, writer: LakeWriter) -> Pipeline {
        Pipeline {
            engine,
            writer,
            counts: Counts::default(),
            on_reject: None,
        }
    }

    /// Calls `hook` for every rejected message (after it is buffered for the
    /// `rejected` table).
    pub fn on_reject(&mut self, hook: RejectHook) {
        self.on_reject = Some(hook);
    }

    /// The engine, to be replaced or merged (Kafka rebalances).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What starts the name of every file this pipeline writes.
    pub fn file_prefix(&self) -> &str {
        self.writer.prefix()
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Rows buffered in the writer since the last flush.
    pub fn buffered_rows(&self) -> usize {
        self.writer.buffered_rows()
    }

    /// Scores a decoded chunk and buffers its rows; gives back the chunk's
    /// bytes (copied where needed), for the caller to reuse.
    pub fn apply(&mut self, chunk: DecodedChunk) -> Vec<u8> {
        let off = self.engine.offset_seconds();
        let ingest_day = day_of(chunk.decoded_at, off);
        let rows = EventRows::new(&chunk.batch).expect("decoded chunks have the events schema");
        // the day of each accepted row (`NOT_KEPT` for the others)
        let mut row_day = vec![NOT_KEPT; chunk.batch.num_rows()];
        self.counts.read += chunk.messages() as u64;
        let spans = &chunk.spans;
        let counts = &mut self.counts;
        let writer = &mut self.writer;
        let on_reject = &mut self.on_reject;
        self.engine
            .process_rows(
                &rows,
                &chunk.keys,
                &chunk.arrival,
                |engine, i, outcome| match outcome {
                    Outcome::Accepted { day } => {
                        counts.valid += 1;
                        row_day[i] = day;
                    }
                    Outcome::Duplicate => counts.duplicates += 1,
                    Outcome::Late => {
                        let span = spans[i];
                        let newest = engine
                            .newest_day_of(span.source())
                            .map(huoyue_schemas::time::format_day)
                            .unwrap_or_default();
                        let mut detail = format!(
                            "older than the allowed lateness of {} days before {newest}",
                            engine.config().lateness_days
                        );
                        if let Some(p) = span.partition {
                            detail.push_str(&format!(", the newest day of partition {p}"));
                        }
                        let kept = Kept {
                            counts,
                            writer,
                            on_reject,
                        };
                        kept.reject(&chunk, ingest_day, span, Reason::Late, Some(&detail));
                    }
                },
            );
        for (day, offset, len, keep) in day_rows(&row_day) {
            self.writer
                .add_events(day, chunk.batch.slice(offset, len), keep);
        }
        for r in &chunk.rejected {
            let kept = Kept {
                counts: &mut self.counts,
                writer: &mut self.writer,
                on_reject: &mut self.on_reject,
            };
            kept.reject(&chunk, ingest_day, r.span, r.reason, r.detail.as_deref());
        }
        chunk.data
    }

    /// Hands the engine's deltas and the buffered rows to the writer's encoder.
    pub fn flush(&mut self) -> Result<(), LakeError> {
        let mut sink = Counting {
            writer: &mut self.writer,
            points: &mut self.counts.points,
        };
        self.engine.flush(&mut sink);
        self.writer.flush()
    }

    /// Waits until everything flushed is durable; returns the files written since
    /// the last sync.
    pub fn sync(&mut self) -> Result<Vec<WrittenFile>, LakeError> {
        let files = self.writer.sync()?;
        Ok(self.count_files(files))
    }

    /// [`Pipeline::sync`] without waiting: `None` while a flushed file is still
    /// being written.
    pub fn try_sync(&mut self) -> Option<Result<Vec<WrittenFile>, LakeError>> {
        Some(self.writer.try_sync()?.map(|files| self.count_files(files)))
    }

    fn count_files(&mut self, files: Vec<WrittenFile>) -> Vec<WrittenFile> {
        self.counts.files += files.len() as u64;
        self.counts.bytes += files.iter().map(|f| f.bytes).sum::<u64>();
        files
    }

    /// The engine, for a snapshot after a sync.
    pub fn into_parts(self) -> (Engine, LakeWriter, Counts) {
        (self.engine, self.writer, self.counts)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Keep, NOT_KEPT, day_rows};

    /// The rows each day's files get, as indices of the whole batch.
    fn selected(row_day: &[i32]) -> Vec<(i32, usize)> {
        let mut got = Vec::new();
        for (day, offset, len, keep) in day_rows(row_day) {
            assert!(offset + len <= row_day.len());
            match keep {
                Keep::All => got.extend((offset..offset + len).map(|i| (day, i))),
                Keep::Mask(m) => {
                    assert_eq!(m.len(), len);
                    got.extend((0..len).filter(|&i| m.value(i)).map(|i| (day, offset + i)));
                }
                Keep::Rows(rows) => {
                    got.extend(rows.values().iter().map(|&i| (day, offset + i as usize)))
                }
            }
        }
        got.sort_unstable();
        got
    }

    proptest! {
        /// Every kept row goes to its own day's file exactly once, and no
        /// other row does, however the days are mixed.
        #[test]
        fn every_kept_row_goes_to_its_day_once(
            runs in prop::collection::vec((0i32..6, 1usize..400), 0..40),
        ) {
            let row_day: Vec<i32> = runs
                .iter()
                .flat_map(|&(d, n)| std::iter::repeat_n(if d == 5 { NOT_KEPT } else { d }, n))
                .collect();
            let mut want: Vec<(i32, usize)> = row_day
                .iter()
                .enumerate()
                .filter(|(_, d)| **d != NOT_KEPT)
                .map(|(i, d)| (*d, i))
                .collect();
            want.sort_unstable();
            prop_assert_eq!(selected(&row_day), want);
        }
    }

    #[test]
    fn a_run_with_duplicates_is_one_masked_slice() {
        let mut row_day = vec![7; 1000];
        row_day[10] = NOT_KEPT;
        row_day[500] = NOT_KEPT;
        let parts = day_rows(&row_day);
        assert_eq!(parts.len(), 1);
        let (day, offset, len, keep) = &parts[0];
        assert_eq!((*day, *offset, *len), (7, 0, 1000));
        assert!(matches!(keep, Keep::Mask(m) if m.true_count() == 998));
    }
}
