//! Rebuilding the state of a lake's file runs
//! (`LAKE/_checkpoints/file/state.ckpt`) from the lake itself, when that
//! checkpoint is corrupt (a disk error, a truncated copy of the lake).
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

use std::path::{Path, PathBuf};

use huoyue_ingest::checkpoint::{self, Checkpoint, CheckpointError};
use huoyue_ingest::engine::{ActivityRow, DeltaSink, Engine, EngineConfig};
use huoyue_ingest::pipeline::file::{FILE_PREFIX, STATE, now_micros, state_dir};
use huoyue_schemas::Profile;
use huoyue_schemas::lake::INGEST_TABLES;
use indicatif::ProgressBar;

use crate::error::{AggregateError, IoContext, Result};
use crate::rescore::{Rows, day_partitions, feed_days};

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The lake directory.
    pub lake: PathBuf,
    /// The rule profile the file runs scored under.
    pub profile: Profile,
    /// Engine settings, as the file runs' (`--lateness`).
    pub engine: EngineConfig,
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
        let aside = path.with_extension(format!("ckpt.corrupt-{}", now_micros() / 1_000_000));
        std::fs::hard_link(&path, &aside)
            .or_else(|_| std::fs::copy(&path, &aside).map(|_| ()))
            .context(|| format!("keeping {} as {}", path.display(), aside.display()))?;
        summary.kept_as = Some(aside);
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
            Some(c) => c.restore(dir, profile).map(Some),
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
