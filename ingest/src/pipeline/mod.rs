//! The one pipeline every source feeds: decoded chunks in, the engine scores them,
//! the lake writer writes them. File mode and the Kafka service differ only in
//! where chunks come from and when they flush and checkpoint.

pub mod decode;
pub mod file;

use std::collections::BTreeMap;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;

use huoyue_schemas::columns::{EventRows, Lineage};
use huoyue_schemas::reason::Reason;
use huoyue_schemas::time::day_of;

use crate::engine::{ActivityRow, DeltaSink, Engine, Outcome};
use crate::lake_writer::{LakeError, LakeWriter, WrittenFile};
pub use decode::{DecodedChunk, Span, decode_chunk, sub_chunk};

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

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Rows buffered in the writer since the last flush.
    pub fn buffered_rows(&self) -> usize {
        self.writer.buffered_rows()
    }

    /// Scores a decoded chunk and buffers its rows.
    pub fn apply(&mut self, chunk: DecodedChunk) {
        let off = self.engine.offset_seconds();
        let ingest_day = day_of(chunk.decoded_at, off);
        let rows = EventRows::new(&chunk.batch).expect("decoded chunks have the events schema");
        let mut per_day: Vec<(i32, Vec<u32>)> = Vec::new();
        self.counts.read += chunk.messages() as u64;
        let spans = &chunk.spans;
        let counts = &mut self.counts;
        let writer = &mut self.writer;
        let on_reject = &mut self.on_reject;
        self.engine.process_rows(
            &rows,
            &chunk.keys,
            |i| spans[i].partition.unwrap_or(-1),
            |engine, i, outcome| match outcome {
                Outcome::Accepted { day } => {
                    counts.valid += 1;
                    match per_day.iter_mut().find(|(d, _)| *d == day) {
                        Some((_, v)) => v.push(i as u32),
                        None => per_day.push((day, vec![i as u32])),
                    }
                }
                Outcome::Duplicate => counts.duplicates += 1,
                Outcome::Late => {
                    let span = spans[i];
                    let newest = engine
                        .newest_day()
                        .map(huoyue_schemas::time::format_day)
                        .unwrap_or_default();
                    let detail = format!(
                        "older than the allowed lateness of {} days before {newest}",
                        engine.config().lateness_days
                    );
                    *counts.rejected.entry(Reason::Late).or_default() += 1;
                    writer.add_rejected(
                        ingest_day,
                        chunk.decoded_at,
                        Reason::Late.as_str(),
                        Some(&detail),
                        &chunk.data[span.start..span.end],
                        Lineage {
                            source: &chunk.source,
                            partition: span.partition,
                            offset: span.offset,
                        },
                    );
                    if let Some(hook) = on_reject {
                        hook(RejectedMessage {
                            reason: Reason::Late,
                            detail: Some(&detail),
                            raw: &chunk.data[span.start..span.end],
                            source: &chunk.source,
                            partition: span.partition,
                            offset: span.offset,
                        });
                    }
                }
            },
        );
        for (day, idx) in per_day {
            let batch = if idx.len() == chunk.batch.num_rows() {
                chunk.batch.clone()
            } else {
                take_record_batch(&chunk.batch, &UInt32Array::from(idx))
                    .expect("take rows of a batch")
            };
            self.writer.add_events(day, batch);
        }
        for r in &chunk.rejected {
            *self.counts.rejected.entry(r.reason).or_default() += 1;
            let s = r.span;
            self.writer.add_rejected(
                ingest_day,
                chunk.decoded_at,
                r.reason.as_str(),
                r.detail.as_deref(),
                &chunk.data[s.start..s.end],
                Lineage {
                    source: &chunk.source,
                    partition: s.partition,
                    offset: s.offset,
                },
            );
            if let Some(hook) = &mut self.on_reject {
                hook(RejectedMessage {
                    reason: r.reason,
                    detail: r.detail.as_deref(),
                    raw: &chunk.data[s.start..s.end],
                    source: &chunk.source,
                    partition: s.partition,
                    offset: s.offset,
                });
            }
        }
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
