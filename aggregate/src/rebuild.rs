//! Rebuilding the state of a lake's file runs
//! (`LAKE/_checkpoints/file/state.ckpt`), or of a Kafka group's instances
//! (`LAKE/_checkpoints/<group>/<topic>/<instance>.ckpt`), from the lake
//! itself, when a checkpoint is corrupt (a disk error, a truncated copy of
//! the lake).
//!
//! Without the state, no file run can go on: a run that started from
//! nothing would restart streaks, pay lifetime caps and the once-only
//! `profile` again and count a file given twice twice. The state is a
//! function of the events the runs accepted (scoring.md, ground rule 3), and
//! those are the lake's `events` rows that file runs wrote (the rows without
//! a Kafka partition): they are fed to a new engine in event order, one day
//! after the other, as `rescore` feeds them, and the engine's state becomes
//! the file runs' checkpoint. The `late` rows of `rejected` are not fed: the
//! runs never counted them, and the lake's `daily_scores` do not hold them.
//! So the next file run writes exactly the deltas it would have written
//! after the lost checkpoint.
//!
//! The unreadable checkpoint is kept beside it (`state.ckpt.corrupt-<time>`)
//! and replaced only once the new state is written (a rebuild that fails
//! leaves it, so file runs still stop at it); a sound one is left alone and
//! the rebuild refused. Files a run staged and
//! the lost checkpoint listed but had not published yet cannot be told from
//! those of a failed run: the next file run deletes them, and the summary
//! says how many there are (that run's input must be given again).
//!
//! A Kafka instance's checkpoint holds the state of the partitions it read,
//! and where it was in each. Which partitions those were is lost with it,
//! but the lake says it: every `events` and `rejected` row names its topic,
//! partition and offset, and a checkpoint lists its files before they are
//! published, so the published rows of a partition are exactly the messages
//! its last sound owner read before its next offset. A partition is thus the
//! lost instance's when no sound checkpoint of the group holds it, or when
//! the lake has a row of it at or after the offset of the newest sound one
//! that does (a later owner read on from there). Those partitions' `events`
//! rows are fed to a new engine, each as read from its partition, and the
//! state becomes the instance's checkpoint, at the offset after the last row
//! of each partition in the lake and at a generation above the newest sound
//! holder's, so that whichever instance is assigned a partition takes its
//! state from there. Messages the lost instance read after its last
//! published row (duplicates, or a flush whose files it had not published)
//! are read again: the files it had staged are deleted when the instance
//! starts again, and a duplicate is caught again, its first copy being
//! remembered. Every instance of the group must be stopped: their locks are
//! taken while the state is rebuilt. Several corrupt checkpoints of one
//! group are rebuilt as one, under the first one's instance; the others are
//! set aside.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use huoyue_ingest::checkpoint::{self, Checkpoint, CheckpointError, Mark};
use huoyue_ingest::engine::{ActivityRow, DeltaSink, Engine, EngineConfig};
use huoyue_ingest::pipeline::file::{FILE_PREFIX, STATE, now_micros, state_dir};
use huoyue_schemas::Profile;
use huoyue_schemas::lake::INGEST_TABLES;
use indicatif::ProgressBar;

use crate::error::{AggregateError, IoContext, Result};
use crate::rescore::{LineageColumns, Rows, day_partitions, feed_days};

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The lake directory.
    pub lake: PathBuf,
    /// The rule profile the file runs (or the group's instances) scored under.
    pub profile: Profile,
    /// Engine settings, as the file runs' (`--lateness`).
    pub engine: EngineConfig,
    /// The Kafka group and topic whose corrupt checkpoints to rebuild;
    /// `None`: the file runs' state.
    pub kafka: Option<KafkaGroup>,
}

/// A Kafka consumer group reading a topic into the lake.
#[derive(Debug, Clone)]
pub struct KafkaGroup {
    pub group: String,
    pub topic: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Rows of `events` fed (those of file runs).
    pub events: u64,
    /// Fed rows the engine found to be duplicates (the same event id in two
    /// runs further apart than the id memory).
    pub duplicates: u64,
    /// Days fed.
    pub days: usize,
    /// Where the unreadable checkpoint was kept.
    pub kept_as: Option<PathBuf>,
    /// Files staged by file runs and not published, which the next file run
    /// deletes.
    pub staged: usize,
    /// The new checkpoint's size.
    pub checkpoint_bytes: u64,
    /// What a rebuild of a Kafka group's checkpoint wrote; `None`: the file
    /// runs' state.
    pub kafka: Option<KafkaRebuilt>,
}

/// A Kafka instance's rebuilt checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaRebuilt {
    /// The instance whose checkpoint was written.
    pub instance: String,
    /// The partitions it holds, with the offsets they go on from.
    pub partitions: BTreeMap<i32, i64>,
    /// The group's other corrupt checkpoints, set aside.
    pub set_aside: Vec<PathBuf>,
}

/// Drops every delta: the lake holds them already.
struct Discard;

impl DeltaSink for Discard {
    fn score(&mut self, _: i32, _: &str, _: &str, _: &str, _: i64, _: i64) {}
    fn activity(&mut self, _: &ActivityRow<'_>) {}
}

/// Rebuilds the file runs' state of `opts.lake` from its `events` (see the
/// module documentation); refused while a file run holds the lake and when
/// the checkpoint can be used as it is.
pub fn run(opts: &RebuildOptions, progress: &ProgressBar) -> Result<RebuildSummary> {
    let lake = &opts.lake;
    if !lake.is_dir() {
        return Err(AggregateError::LakeNotFound(lake.clone()));
    }
    if let Some(kafka) = &opts.kafka {
        return run_kafka(opts, kafka, progress);
    }
    let dir = state_dir(lake);
    let lock_path = checkpoint::instance_lock(&dir, STATE);
    let _lock = checkpoint::lock_instance(&dir, STATE)
        .context(|| format!("locking {}", lock_path.display()))?
        .ok_or_else(|| {
            AggregateError::Refused(format!(
                "a file run is writing to this lake (it holds {}); nothing was rebuilt",
                lock_path.display()
            ))
        })?;
    let corrupt = corrupt_state(&dir, &opts.profile)?;
    let mut summary = RebuildSummary::default();

    let mut engine = Engine::new(&opts.profile, opts.engine);
    let days = day_partitions(&lake.join("events"))?;
    progress.set_message("feeding events");
    let fed = feed_days(
        &mut engine,
        &days,
        Default::default(),
        Rows::OfFileRuns,
        &mut Discard,
        progress,
    )?;
    summary.events = fed.events;
    summary.duplicates = fed.duplicates;
    summary.days = fed.days;

    // the damaged file is kept under another name, and replaced only once
    // the new state is written: until then file runs still stop at it
    if let Some(path) = corrupt {
        summary.kept_as = Some(keep_aside(&path)?);
    }
    let begun = Checkpoint::begin(&dir, STATE, |w| engine.snapshot_to(w)).map_err(state_error)?;
    let ckpt = Checkpoint {
        seq: 1,
        written_at: now_micros(),
        ..Checkpoint::new(STATE, "rebuild-state")
    };
    summary.checkpoint_bytes = begun.finish(&ckpt).map_err(state_error)?;
    // the new state lists none: the next file run deletes them
    summary.staged = checkpoint::unlisted_staged(lake, INGEST_TABLES, FILE_PREFIX, &[]).len();
    progress.finish_and_clear();
    Ok(summary)
}

/// `path` (a corrupt checkpoint) hard-linked (else copied) as
/// `<name>.ckpt.corrupt-<unix time>`, which no instance reads.
fn keep_aside(path: &Path) -> Result<PathBuf> {
    let aside = aside_name(path);
    std::fs::hard_link(path, &aside)
        .or_else(|_| std::fs::copy(path, &aside).map(|_| ()))
        .context(|| format!("keeping {} as {}", path.display(), aside.display()))?;
    Ok(aside)
}

fn aside_name(path: &Path) -> PathBuf {
    path.with_extension(format!("ckpt.corrupt-{}", now_micros() / 1_000_000))
}

/// Rebuilds the corrupt checkpoints of a Kafka group's instances (see the
/// module documentation).
fn run_kafka(
    opts: &RebuildOptions,
    kafka: &KafkaGroup,
    progress: &ProgressBar,
) -> Result<RebuildSummary> {
    let lake = &opts.lake;
    let dir = checkpoint::dir(lake, &kafka.group, &kafka.topic);
    let files = Checkpoint::files(&dir).map_err(state_error)?;
    if files.is_empty() {
        return Err(AggregateError::Refused(format!(
            "group {} has no checkpoints of topic {} in {}; nothing was rebuilt",
            kafka.group,
            kafka.topic,
            dir.display()
        )));
    }
    // every instance of the group stays stopped until the state is written
    let mut locks = Vec::with_capacity(files.len());
    let mut sound = Vec::new();
    let mut corrupt = Vec::new();
    for path in files {
        let instance = checkpoint::instance_of(&path);
        let lock_path = checkpoint::instance_lock(&dir, &instance);
        let lock = checkpoint::lock_instance(&dir, &instance)
            .context(|| format!("locking {}", lock_path.display()))?
            .ok_or_else(|| {
                AggregateError::Refused(format!(
                    "instance {instance} of group {} is running (it holds {}): stop the group's \
                     instances first; nothing was rebuilt",
                    kafka.group,
                    lock_path.display()
                ))
            })?;
        locks.push(lock);
        match Checkpoint::load(&path).and_then(|c| {
            // every instance lock is held: a segment gone is damage
            let lateness = c.restore_held(&dir, &opts.profile)?.config().lateness_days;
            Ok((c, lateness))
        }) {
            Ok((c, lateness)) if lateness != opts.engine.lateness_days => {
                return Err(AggregateError::Refused(format!(
                    "instance {} of group {} scores with an allowed lateness of {lateness} days: \
                     rebuild with --lateness {lateness}d; nothing was rebuilt",
                    c.instance, kafka.group
                )));
            }
            Ok((c, _)) => sound.push(c),
            Err(e) if e.is_corrupt() => corrupt.push((path, instance)),
            Err(e @ CheckpointError::Restore { .. }) => {
                return Err(AggregateError::Profile(format!(
                    "{e}; rebuild with the profile the group's instances score under (--profile)"
                )));
            }
            Err(e) => return Err(state_error(e)),
        }
    }
    let Some((path, instance)) = corrupt.first().cloned() else {
        return Err(AggregateError::Refused(format!(
            "every checkpoint of group {} and topic {} is sound: its instances go on from them; \
             nothing was rebuilt",
            kafka.group, kafka.topic
        )));
    };

    progress.set_message("finding the partitions");
    let marks = lost_partitions(&partitions_read(lake, &kafka.topic)?, &sound);
    let lost: BTreeSet<i32> = marks.keys().copied().collect();
    drop(sound);

    let mut engine = Engine::new(&opts.profile, opts.engine);
    let days = day_partitions(&lake.join("events"))?;
    progress.set_message("feeding events");
    let rows = Rows::OfPartitions {
        topic: &kafka.topic,
        partitions: &lost,
    };
    let fed = feed_days(
        &mut engine,
        &days,
        Default::default(),
        rows,
        &mut Discard,
        progress,
    )?;
    let mut summary = RebuildSummary {
        events: fed.events,
        duplicates: fed.duplicates,
        days: fed.days,
        kept_as: Some(keep_aside(&path)?),
        ..RebuildSummary::default()
    };
    let mut rebuilt = KafkaRebuilt {
        instance: instance.clone(),
        partitions: marks.iter().map(|(&p, m)| (p, m.offset)).collect(),
        set_aside: Vec::new(),
    };
    // it lists no segments: those of the lost one go when the instance
    // starts again, before it writes its own
    let begun =
        Checkpoint::begin(&dir, &instance, |w| engine.snapshot_to(w)).map_err(state_error)?;
    let ckpt = Checkpoint {
        seq: 1,
        written_at: now_micros(),
        partitions: marks,
        ..Checkpoint::new(&instance, &kafka.topic)
    };
    summary.checkpoint_bytes = begun.finish(&ckpt).map_err(state_error)?;
    for (path, _) in &corrupt[1..] {
        let aside = aside_name(path);
        std::fs::rename(path, &aside)
            .context(|| format!("setting {} aside as {}", path.display(), aside.display()))?;
        rebuilt.set_aside.push(aside);
    }
    summary.kafka = Some(rebuilt);
    // the files the lost instances staged and did not publish: their next
    // start deletes them (the messages are read again)
    summary.staged = corrupt
        .iter()
        .map(|(_, i)| {
            checkpoint::unlisted_staged(lake, INGEST_TABLES, &checkpoint::kafka_prefix(i), &[])
                .len()
        })
        .sum();
    drop(locks);
    progress.finish_and_clear();
    Ok(summary)
}

/// The partitions of a lost checkpoint and where they go on, given the last
/// offset of each partition with a row in the lake (`read`) and the group's
/// `sound` checkpoints: those no sound checkpoint holds, or whose newest
/// sound holder (read or handed over: the highest generation) is at or
/// before a row of the lake (a later owner read on from there). Each goes on
/// after its last row, at a generation above the newest sound holder's.
fn lost_partitions(read: &BTreeMap<i32, i64>, sound: &[Checkpoint]) -> BTreeMap<i32, Mark> {
    let mut lost = BTreeMap::new();
    for (&p, &last) in read {
        let newest = checkpoint::newest_holder(sound, p).map(|(_, m)| m);
        if newest.is_none_or(|m| m.offset <= last) {
            let mark = Mark {
                offset: last + 1,
                generation: newest.map_or(0, |m| m.generation) + 1,
            };
            lost.insert(p, mark);
        }
    }
    lost
}

/// Per partition of `topic`, the last offset with a row in the lake's
/// `events` or `rejected`.
fn partitions_read(lake: &Path, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for table in ["events", "rejected"] {
        for path in day_partitions(&lake.join(table))?.values().flatten() {
            for batch in read_lineage(path)? {
                let Some(LineageColumns {
                    source,
                    partition,
                    offset,
                }) = LineageColumns::of(&batch)
                else {
                    return Err(AggregateError::InvalidLake(format!(
                        "{} lacks the lineage columns source, partition and offset of the lake's types",
                        path.display()
                    )));
                };
                for r in 0..batch.num_rows() {
                    if partition.is_valid(r) && offset.is_valid(r) && source.value(r) == topic {
                        let at = last.entry(partition.value(r)).or_insert(i64::MIN);
                        *at = (*at).max(offset.value(r));
                    }
                }
            }
        }
    }
    Ok(last)
}

/// The lineage columns of a lake file.
fn read_lineage(path: &Path) -> Result<Vec<RecordBatch>> {
    let read = || -> Result<Vec<RecordBatch>> {
        let file = File::open(path).context(|| format!("opening {}", path.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), LineageColumns::NAMES);
        let reader = builder.with_projection(mask).build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    };
    read().map_err(|e| AggregateError::During {
        context: format!("reading {} (nothing was rebuilt)", path.display()),
        source: Box::new(e),
    })
}

/// The file runs' checkpoint if it is corrupt; `None` if there is none, and
/// an error if it is sound, unreadable for another reason (permissions), or
/// taken under another profile.
fn corrupt_state(dir: &Path, profile: &Profile) -> Result<Option<PathBuf>> {
    let path = checkpoint::file(dir, STATE);
    if !path.exists() {
        return Ok(None);
    }
    let restored = Checkpoint::load_all(dir).and_then(|all| {
        match all.into_iter().find(|c| c.instance == STATE) {
            Some(c) => c.restore_held(dir, profile).map(Some),
            None => Ok(None),
        }
    });
    match restored {
        Ok(_) => Err(AggregateError::Refused(format!(
            "{} is sound: the file runs go on from it; nothing was rebuilt",
            path.display()
        ))),
        Err(e) if e.is_corrupt() => Ok(Some(path)),
        Err(e @ CheckpointError::Restore { .. }) => Err(AggregateError::Profile(format!(
            "{e}; rebuild with the profile the file runs scored under (--profile)"
        ))),
        Err(e) => Err(state_error(e)),
    }
}

fn state_error(e: CheckpointError) -> AggregateError {
    AggregateError::InvalidLake(format!("{e}; nothing was rebuilt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(offset: i64, generation: u64) -> Mark {
        Mark { offset, generation }
    }

    #[test]
    fn the_lost_partitions_are_those_read_past_every_sound_checkpoint() {
        let mut b = Checkpoint::new("b", "events");
        // b reads 2 and 3; it handed 4 over, and holds 5 at an older
        // generation than c, which read it on
        b.partitions = BTreeMap::from([(2, mark(100, 3)), (3, mark(50, 1))]);
        b.handed = BTreeMap::from([(4, mark(70, 2))]);
        b.partitions.insert(5, mark(10, 1));
        let mut c = Checkpoint::new("c", "events");
        c.handed = BTreeMap::from([(5, mark(40, 2))]);
        let read = BTreeMap::from([
            // no sound checkpoint holds 0 and 1
            (0, 9),
            (1, 0),
            // b is where its rows end: b's
            (2, 99),
            // a row at b's offset: read on by the lost checkpoint
            (3, 50),
            // rows past the handed mark: the new owner was the lost one
            (4, 80),
            // c's mark (the newest) is past the rows: c's
            (5, 39),
        ]);
        let lost = lost_partitions(&read, &[b, c]);
        assert_eq!(
            lost,
            BTreeMap::from([
                (0, mark(10, 1)),
                (1, mark(1, 1)),
                (3, mark(51, 2)),
                (4, mark(81, 3)),
            ])
        );
    }
}
