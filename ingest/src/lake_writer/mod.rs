//! The lake writer: writes the rows of each (table, day) as one Parquet file per
//! flush, atomically (temporary name, fsync, rename), on background encoder
//! threads so that scoring goes on while files are encoded. `events` rows are
//! encoded as they arrive (streamed into the flush's open file); the small
//! tables are buffered and encoded at the flush.

mod encoder;
pub mod publish;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use huoyue_schemas::columns::Lineage;
use huoyue_schemas::lake;
use huoyue_schemas::time::format_day;

use crate::engine::{ActivityRow, DeltaSink};
pub use encoder::Keep;
pub use encoder::WrittenFile;
use encoder::{Encoder, FileId, Job};
use tables::{ActivityRows, RejectedRows, ScoreRows};

/// A lake that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake {path} is not writable: {source}")]
    NotWritable {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Parquet {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("the lake writer's encoder thread stopped")]
    EncoderGone,
}

/// The days a flush keeps an `events` file open for at once: well under the
/// usual limit of 1,024 open files, with the previous flush's files still
/// being encoded beside them.
const MAX_OPEN_DAYS: usize = 256;

/// Buffers and writes the ingest's tables.
pub struct LakeWriter {
    root: PathBuf,
    prefix: String,
    /// The number of the flush being filled (in its files' names).
    seq: u64,
    /// The flush's open `events` file of each day.
    events: BTreeMap<i32, FileId>,
    /// How many times this flush closed its `events` files early (at
    /// [`MAX_OPEN_DAYS`]); numbers the files opened after.
    events_part: u32,
    scores: BTreeMap<i32, ScoreRows>,
    activity: BTreeMap<i32, ActivityRows>,
    rejected: BTreeMap<i32, RejectedRows>,
    buffered_rows: usize,
    encoder: Encoder,
    publish: bool,
}

impl LakeWriter {
    /// Opens `root` for writing (creating it), failing early if it is not writable.
    /// `prefix` starts every file name this writer writes and must be unique to it.
    pub fn open(root: &Path, prefix: &str) -> Result<LakeWriter, LakeError> {
        let not_writable = |source| LakeError::NotWritable {
            path: root.display().to_string(),
            source,
        };
        if root.exists() && !root.is_dir() {
            return Err(not_writable(std::io::Error::other(
                "it is a file, not a folder",
            )));
        }
        std::fs::create_dir_all(root).map_err(not_writable)?;
        let probe = root.join(format!(".{prefix}.probe"));
        std::fs::write(&probe, b"").map_err(not_writable)?;
        std::fs::remove_file(&probe).map_err(not_writable)?;
        Ok(LakeWriter {
            root: root.to_owned(),
            prefix: prefix.to_owned(),
            seq: 1,
            events: BTreeMap::new(),
            events_part: 0,
            scores: BTreeMap::new(),
            activity: BTreeMap::new(),
            rejected: BTreeMap::new(),
            buffered_rows: 0,
            encoder: Encoder::start(),
            publish: true,
        })
    }

    /// Leaves written files staged under their temporary names: [`LakeWriter::sync`]
    /// returns them with [`WrittenFile::staged`] set, and the caller publishes
    /// them with [`publish::publish_staged`] once it has recorded them (the
    /// Kafka service's checkpoint).
    pub fn stage_only(mut self) -> LakeWriter {
        self.publish = false;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What starts the name of every file this writer writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Adds `events` rows of one day: to the day's open file of this flush,
    /// opened if need be. Waits while the encoders are far behind.
    /// Only the rows `keep` selects are added; the selection is made on an
    /// encoder thread.
    pub fn add_events(&mut self, day: i32, batch: RecordBatch, keep: Keep) {
        self.buffered_rows += match &keep {
            Keep::All => batch.num_rows(),
            Keep::Mask(m) => m.true_count(),
            Keep::Rows(i) => i.len(),
        };
        let file = match self.events.get(&day) {
            Some(&file) => file,
            None => {
                let mut job = self.job(lake::EVENTS, day, Vec::new());
                if self.events.len() >= MAX_OPEN_DAYS {
                    // a history file can span more days in one flush than
                    // a process may open files: the open ones are finished
                    // now, and what comes later for their days goes to
                    // further files of this flush
                    for (_, file) in std::mem::take(&mut self.events) {
                        self.encoder.close(file);
                    }
                    self.events_part += 1;
                }
                if self.events_part > 0 {
                    job.name = format!(
                        "{}-{:08}-{}.parquet",
                        self.prefix, self.seq, self.events_part
                    );
                }
                let file = self.encoder.open(job);
                self.events.insert(day, file);
                file
            }
        };
        self.encoder.write(file, batch, keep);
    }

    /// A file of this flush.
    fn job(&self, table: &'static str, day: i32, batches: Vec<RecordBatch>) -> Job {
        Job {
            table,
            day,
            dir: self
                .root
                .join(table)
                .join(format!("{}={}", lake::DAY, format_day(day))),
            name: format!("{}-{:08}.parquet", self.prefix, self.seq),
            schema: lake::schema_of(table).expect("ingest table"),
            batches,
            publish: self.publish,
        }
    }

    /// Buffers a `rejected` row; `day` is the ingest day of `ingested_at`.
    pub fn add_rejected(
        &mut self,
        day: i32,
        ingested_at: i64,
        reason: &str,
        detail: Option<&str>,
        raw: &[u8],
        lineage: Lineage<'_>,
    ) {
        self.buffered_rows += 1;
        self.rejected
            .entry(day)
            .or_default()
            .push(ingested_at, reason, detail, raw, lineage);
    }

    /// Rows buffered since the last flush (a size bound for the caller).
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// Closes the flush's `events` files and hands every buffered (table, day)
    /// of the small tables to the encoder as one file each; returns without
    /// waiting for them (see [`LakeWriter::sync`]). First waits for the files
    /// of the previous flush (backpressure: one flush is encoded while the
    /// next one fills).
    pub fn flush(&mut self) -> Result<(), LakeError> {
        self.encoder.drain()?;
        self.buffered_rows = 0;
        for (_, file) in std::mem::take(&mut self.events) {
            self.encoder.close(file);
        }
        self.events_part = 0;
        let mut jobs = Vec::new();
        for (day, rows) in std::mem::take(&mut self.scores) {
            jobs.push(self.job(lake::DAILY_SCORES, day, vec![rows.finish()]));
        }
        for (day, rows) in std::mem::take(&mut self.activity) {
            jobs.push(self.job(lake::DAILY_ACTIVITY, day, vec![rows.finish()]));
        }
        for (day, rows) in std::mem::take(&mut self.rejected) {
            jobs.push(self.job(lake::REJECTED, day, vec![rows.finish()]));
        }
        for job in jobs {
            self.encoder.submit(job);
        }
        self.seq += 1;
        Ok(())
    }

    /// Waits until every file handed over so far is durable under its final name,
    /// and returns them (or the first error).
    pub fn sync(&mut self) -> Result<Vec<WrittenFile>, LakeError> {
        self.encoder.sync()
    }

    /// [`LakeWriter::sync`] without waiting: `None` while a file handed over is
    /// still being written.
    pub fn try_sync(&mut self) -> Option<Result<Vec<WrittenFile>, LakeError>> {
        self.encoder.try_sync()
    }
}

impl DeltaSink for LakeWriter {
    fn score(
        &mut self,
        day: i32,
        user_id: &str,
        school_id: &str,
        rule: &str,
        points: i64,
        events: i64,
    ) {
        self.buffered_rows += 1;
        self.scores
            .entry(day)
            .or_default()
            .push(user_id, school_id, rule, points, events);
    }

    fn activity(&mut self, row: &ActivityRow<'_>) {
        self.buffered_rows += 1;
        self.activity.entry(row.day).or_default().push(row);
    }
}
