//! Checkpoints: the Kafka offsets, the engine's state and the files written,
//! committed together (lake.md, guarantee 2).
//!
//! One file per instance, `LAKE/_checkpoints/<group>/<topic>/<instance>.ckpt`
//! (file mode's: `LAKE/_checkpoints/file/state.ckpt`, without offsets),
//! replaced atomically (temporary name, fsync, rename, fsync the folder). A flush
//! leaves its Parquet files *staged* under hidden temporary names; the checkpoint
//! lists them; only after the checkpoint is durable are they renamed to their
//! final names. A crash before the checkpoint leaves staged files nobody lists
//! (removed at the next start); a crash after it leaves files the checkpoint
//! lists, which the next start publishes (roll forward). Either way the lake
//! and the offsets agree.
//!
//! A Kafka replica keeps the bulk of the engine's state (the remembered
//! event ids, the scored users, the `daily_activity` (day, actor)s written)
//! apart, in *segments* beside its checkpoint, `<instance>.<seq>.seg`: each
//! checkpoint writes one segment, with what changed since the last one, or,
//! from time to time, a base with all of it; a checkpoint lists the last base
//! and the segments after it, which the engine's snapshot is restored with
//! ([`Engine::restore_with_segments`]). A checkpoint thus writes what changed,
//! not the whole state. A segment a base leaves out is removed once the
//! checkpoint after that base is durable (another instance taking partitions
//! over may still be reading the one before); one that no checkpoint lists,
//! at the instance's next start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use huoyue_schemas::lake::INGEST_TABLES;
use huoyue_schemas::profile::Profile;

use crate::engine::{Engine, EngineConfig, RestoreError};
use crate::lake_writer::WrittenFile;
use crate::lake_writer::publish::{PartitionLock, publish_staged, sync_dir};

/// Threads that publish a checkpoint's files (see [`Checkpoint::roll_forward`]).
const PUBLISH_THREADS: usize = 8;

/// The folder of the lake that holds checkpoints.
pub const CHECKPOINTS: &str = "_checkpoints";

const FORMAT: u32 = 1;
/// Layout 1: the whole checkpoint as one postcard body.
const MAGIC_1: &[u8; 8] = b"HYCKPT01";
/// Layout 2: the postcard body without the engine snapshot, then the snapshot's
/// bytes as they are (no per-byte encoding of a large state).
const MAGIC_2: &[u8; 8] = b"HYCKPT02";
/// Layout 3 (written now): the snapshot's bytes, then the postcard body, so
/// that the snapshot (large) can be written and synced before the body (the
/// files of the flush) is known ([`Checkpoint::begin`]).
const MAGIC_3: &[u8; 8] = b"HYCKPT03";
/// Layout 4 (written now): as layout 3, the body followed by the list of
/// segments.
const MAGIC_4: &[u8; 8] = b"HYCKPT04";
/// A segment: magic, the checksum of the rest, the engine's records.
const SEGMENT_MAGIC: &[u8; 8] = b"HYSEG001";
/// Magic, the body's length, the checksum of everything after the header.
const HEADER: usize = 24;

/// Where a partition is: the next offset to read, and the generation of the
/// partition's state (it grows by one each time the partition changes hands,
/// so the newest checkpoint of a partition is the one with the highest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub offset: i64,
    pub generation: u64,
}

/// One checkpoint of one instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub instance: String,
    /// The topic (file mode: the last run's input, as in `events.source`).
    pub topic: String,
    /// Grows by one per checkpoint of this instance.
    pub seq: u64,
    /// When it was written, microseconds since the epoch.
    pub written_at: i64,
    /// The partitions this instance owned, by number.
    pub partitions: BTreeMap<i32, Mark>,
    /// Files to publish: (staged, final), relative to the lake.
    pub staged: Vec<(String, String)>,
    /// The engine snapshot (stored as raw bytes, before the rest).
    #[serde(skip)]
    pub engine: Vec<u8>,
    /// The segments of the snapshot, the last base first (stored after the
    /// body); none when the snapshot holds the whole state.
    #[serde(skip)]
    pub segments: Vec<SegmentFile>,
    /// The bytes of the last of `segments` ([`crate::engine::Segment`]), for
    /// [`Checkpoint::store`] to write first; `None`: written before.
    #[serde(skip)]
    pub new_segment: Option<Vec<u8>>,
    /// Segments to remove once this checkpoint is durable.
    #[serde(skip)]
    pub retire: Vec<String>,
    /// Partitions this instance read before and handed over, whose state
    /// its snapshot still holds until their new owner's checkpoint holds
    /// them, with where they were (stored after the segments).
    #[serde(skip)]
    pub handed: BTreeMap<i32, Mark>,
}

/// A segment a checkpoint lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    /// Its file name in the checkpoint's folder ([`segment_file`]).
    pub name: String,
    /// The records it holds ([`crate::engine::Segment::records`]).
    pub records: u64,
}

/// The name of the segment `instance` writes with its checkpoint `seq`.
pub fn segment_file(instance: &str, seq: u64) -> String {
    format!("{instance}.{seq:010}.seg")
}

/// Whether `name` is the name of a segment of `instance`.
fn is_segment_of(name: &str, instance: &str) -> bool {
    name.strip_prefix(instance)
        .and_then(|n| n.strip_prefix('.'))
        .and_then(|n| n.strip_suffix(".seg"))
        .is_some_and(|seq| seq.len() == 10 && seq.bytes().all(|b| b.is_ascii_digit()))
}

/// The checkpoint of `all` with the newest state of `partition` (read or
/// handed over: the highest generation), and its mark there.
pub fn newest_holder(all: &[Checkpoint], partition: i32) -> Option<(usize, Mark)> {
    all.iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let m = c.partitions.get(&partition).or(c.handed.get(&partition))?;
            Some((i, *m))
        })
        .max_by_key(|(_, m)| m.generation)
}

/// The prefix of the lake files the Kafka instance `instance` writes.
pub fn kafka_prefix(instance: &str) -> String {
    format!("k_{instance}_")
}

/// A checkpoint file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("cannot publish {path}: {source}")]
    Publish {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot use checkpoint {path}: {error}")]
    Restore { path: String, error: RestoreError },
    #[error("cannot remove the files staged after the last checkpoint from {path}: {error}")]
    Clean { path: String, error: std::io::Error },
    /// The checkpoint is in place under its name, but its folder could not be
    /// synced: it holds unless the machine loses power before the folder is
    /// written, so what it lists must stay.
    #[error("checkpoint {path} written, but its folder could not be synced: {source}")]
    SyncDir {
        path: String,
        source: std::io::Error,
    },
}

impl CheckpointError {
    /// Whether the checkpoint itself is damaged (its bytes, or the engine
    /// snapshot they hold), as opposed to unreadable, or taken under another
    /// profile: the state it held is lost.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            CheckpointError::Corrupt { .. }
                | CheckpointError::Restore {
                    error: crate::engine::RestoreError::Corrupt(_),
                    ..
                }
        )
    }

    /// Whether a file the checkpoint lists (a segment) is gone.
    pub fn is_missing(&self) -> bool {
        matches!(self, CheckpointError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// This error, a segment gone ([`CheckpointError::is_missing`]) taken
    /// for damage: where nothing could have retired it.
    pub fn missing_as_damage(self) -> CheckpointError {
        match self {
            e if !e.is_missing() => e,
            CheckpointError::Read { path, .. } => CheckpointError::Corrupt {
                path,
                why: "a segment the checkpoint lists is missing".into(),
            },
            e => e,
        }
    }
}

/// Where an instance (a Kafka service replica, or a lake's file runs) starts
/// again: the engine its last checkpoint holds, or a new one.
pub struct Resumed {
    pub engine: Engine,
    /// That checkpoint, without its snapshot's bytes.
    pub last: Option<Checkpoint>,
    /// Files the checkpoint listed and that were published now.
    pub published: usize,
    /// Files staged after it (by a run that stopped before its next
    /// checkpoint), removed.
    pub removed: usize,
}

/// Resumes the instance `instance` whose checkpoints are in `dir` and whose
/// file names start with `prefix`: publishes the files its last checkpoint
/// lists (a stop between the checkpoint and their publication), restores the
/// engine from it ([`Checkpoint::restore`]), and removes the files it staged after
/// it. With no checkpoint, a new engine under `profile` and `cfg`.
pub fn resume(
    lake: &Path,
    dir: &Path,
    instance: &str,
    prefix: &str,
    profile: &Profile,
    cfg: EngineConfig,
) -> Result<Resumed, CheckpointError> {
    let mut last = Checkpoint::load_all(dir)?
        .into_iter()
        .find(|c| c.instance == instance);
    let (engine, published) = match &mut last {
        Some(c) => {
            let published = c.roll_forward(lake)?;
            let engine = c.restore_held(dir, profile)?;
            // the snapshot is not kept: the engine holds it
            c.engine = Vec::new();
            // its state before the window is final, so a longer lateness
            // could not be honoured, and a changed one is only reported
            let kept = engine.config().lateness_days;
            if kept != cfg.lateness_days {
                tracing::warn!(
                    "the restored state keeps its allowed lateness of {kept} days, not {} (a new lake starts with the new lateness)",
                    cfg.lateness_days
                );
            }
            (engine, published)
        }
        None => (Engine::new(profile, cfg), 0),
    };
    let listed = last
        .as_ref()
        .map(|c| c.segments.as_slice())
        .unwrap_or_default();
    remove_unlisted_segments(dir, instance, listed).map_err(|error| CheckpointError::Clean {
        path: dir.display().to_string(),
        error,
    })?;
    let keep = last
        .as_ref()
        .map(|c| c.staged.as_slice())
        .unwrap_or_default();
    let removed = remove_unlisted(lake, INGEST_TABLES, prefix, keep).map_err(|error| {
        CheckpointError::Clean {
            path: lake.display().to_string(),
            error,
        }
    })?;
    Ok(Resumed {
        engine,
        last,
        published,
        removed,
    })
}

/// The checkpoint file of `instance` in `dir`.
pub fn file(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.ckpt"))
}

/// The instance whose checkpoint [`file`] `path` is.
pub fn instance_of(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.strip_suffix(".ckpt").unwrap_or(name).to_owned()
}

/// The lock file that keeps a second process of `instance` away from its
/// checkpoint in `dir` (a Kafka replica, or a lake's file runs).
pub fn instance_lock(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.lock"))
}

/// Takes [`instance_lock`], creating `dir`: `None` while another process
/// holds it. Held until the value is dropped (or the process ends).
pub fn lock_instance(dir: &Path, instance: &str) -> std::io::Result<Option<PartitionLock>> {
    std::fs::create_dir_all(dir)?;
    PartitionLock::try_acquire_file(&instance_lock(dir, instance))
}

/// The lock file the reader of `partition` of `topic` into `lake` holds,
/// whatever its group: `LAKE/_checkpoints/<topic>@<partition>.lock` (`@` is
/// in no group's name, so it is no group's folder).
pub fn partition_lock(lake: &Path, topic: &str, partition: i32) -> PathBuf {
    lake.join(CHECKPOINTS)
        .join(format!("{topic}@{partition}.lock"))
}

/// The checkpoint folder of a group and topic.
pub fn dir(lake: &Path, group: &str, topic: &str) -> PathBuf {
    lake.join(CHECKPOINTS).join(group).join(topic)
}

impl Checkpoint {
    pub fn new(instance: &str, topic: &str) -> Checkpoint {
        Checkpoint {
            format: FORMAT,
            instance: instance.to_owned(),
            topic: topic.to_owned(),
            seq: 0,
            written_at: 0,
            partitions: BTreeMap::new(),
            staged: Vec::new(),
            engine: Vec::new(),
            segments: Vec::new(),
            new_segment: None,
            retire: Vec::new(),
            handed: BTreeMap::new(),
        }
    }

    /// The engine this checkpoint holds: its snapshot, with the segments it
    /// lists read from `dir` (the checkpoint's folder), under `profile`. It
    /// keeps the engine settings it was built with.
    pub fn restore(&self, dir: &Path, profile: &Profile) -> Result<Engine, CheckpointError> {
        let segments = self.read_segments(dir)?;
        let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        Engine::restore_with_segments(profile, &self.engine, &segments).map_err(|error| {
            CheckpointError::Restore {
                path: file(dir, &self.instance).display().to_string(),
                error,
            }
        })
    }

    /// [`Checkpoint::restore`] by a holder of the instance's lock
    /// ([`lock_instance`]): its segments go only when it says so, so one
    /// the checkpoint lists that is gone is damage, as a bad checksum is.
    /// (Another instance reading this checkpoint may find a segment gone
    /// because the owner has just retired it: it reads the checkpoints
    /// again, a few times, before it takes that for damage.)
    pub fn restore_held(&self, dir: &Path, profile: &Profile) -> Result<Engine, CheckpointError> {
        self.restore(dir, profile)
            .map_err(CheckpointError::missing_as_damage)
    }

    /// The bytes of the segments this checkpoint lists, in order.
    pub fn read_segments(&self, dir: &Path) -> Result<Vec<Vec<u8>>, CheckpointError> {
        self.segments
            .iter()
            .map(|f| {
                let path = dir.join(&f.name);
                let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                let corrupt = |why: &str| CheckpointError::Corrupt {
                    path: path.display().to_string(),
                    why: why.to_owned(),
                };
                let (magic, rest) = bytes
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("not a segment"))?;
                if magic != SEGMENT_MAGIC {
                    return Err(corrupt("not a segment"));
                }
                let (sum, records) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("truncated"))?;
                if xxhash_rust::xxh3::xxh3_64(records) != u64::from_le_bytes(*sum) {
                    return Err(corrupt("checksum mismatch"));
                }
                Ok(records.to_vec())
            })
            .collect()
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |why: &str| CheckpointError::Corrupt {
            path: path.display().to_string(),
            why: why.to_owned(),
        };
        if bytes.len() < HEADER {
            return Err(corrupt("not a huoyue checkpoint"));
        }
        let layout = match &bytes[..8] {
            m if m == MAGIC_1 => 1,
            m if m == MAGIC_2 => 2,
            m if m == MAGIC_3 => 3,
            m if m == MAGIC_4 => 4,
            _ => return Err(corrupt("not a huoyue checkpoint")),
        };
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let sum = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let rest = &bytes[HEADER..];
        if rest.len() < len || (layout == 1 && rest.len() != len) {
            return Err(corrupt("truncated"));
        }
        if xxhash_rust::xxh3::xxh3_64(rest) != sum {
            return Err(corrupt("checksum mismatch"));
        }
        // layout 1: the body, the snapshot postcard-encoded as its last
        // field; layout 2: the body, the snapshot's bytes; layout 3: the
        // snapshot's bytes, the body; layout 4: as 3, the segments after
        // the body
        let (engine, body) = match layout {
            3 | 4 => rest.split_at(rest.len() - len),
            _ => (&[][..], rest),
        };
        let (mut c, mut tail): (Checkpoint, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
        if layout == 4 {
            (c.segments, tail) =
                postcard::take_from_bytes(tail).map_err(|e| corrupt(&e.to_string()))?;
            if !tail.is_empty() {
                (c.handed, tail) =
                    postcard::take_from_bytes(tail).map_err(|e| corrupt(&e.to_string()))?;
            }
        }
        c.engine = match layout {
            1 => postcard::from_bytes(tail).map_err(|e| corrupt(&e.to_string()))?,
            2 => tail.to_vec(),
            _ if tail.is_empty() => engine.to_vec(),
            _ => return Err(corrupt("bytes after the body")),
        };
        if c.format != FORMAT {
            return Err(corrupt(&format!("unknown format {}", c.format)));
        }
        Ok(c)
    }

    /// Writes this checkpoint as `dir/<instance>.ckpt`, atomically and
    /// durably, its new segment first; then removes the segments it
    /// retires. Returns the bytes written (checkpoint and segment).
    pub fn store(&self, dir: &Path) -> Result<u64, CheckpointError> {
        let mut bytes = 0;
        if let (Some(ids), Some(f)) = (&self.new_segment, self.segments.last()) {
            bytes += write_segment(dir, &f.name, ids)?;
        }
        bytes +=
            Checkpoint::write_snapshot(dir, &self.instance, |w| w.write_all(&self.engine), false)?
                .finish(self)?;
        for name in &self.retire {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // the next start removes what no checkpoint lists
                Err(e) => tracing::warn!("cannot remove the segment {name}: {e}"),
            }
        }
        Ok(bytes)
    }

    /// Begins `dir/<instance>.ckpt`: `snapshot` writes the engine snapshot
    /// into its temporary file, which is then synced, so that
    /// [`Begun::finish`], once the rest is known, has only a few bytes left to
    /// write and sync.
    pub fn begin(
        dir: &Path,
        instance: &str,
        snapshot: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<Begun, CheckpointError> {
        Checkpoint::write_snapshot(dir, instance, snapshot, true)
    }

    fn write_snapshot(
        dir: &Path,
        instance: &str,
        snapshot: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
        sync: bool,
    ) -> Result<Begun, CheckpointError> {
        let dest = file(dir, instance);
        let tmp = dir.join(format!(".{instance}.ckpt.tmp"));
        let err = |source| CheckpointError::Write {
            path: dest.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&[0; HEADER])?;
            let mut out = Summed {
                out: std::io::BufWriter::with_capacity(1 << 20, file),
                sum: xxhash_rust::xxh3::Xxh3::new(),
            };
            snapshot(&mut out)?;
            let Summed { out, sum } = out;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            if sync {
                file.sync_data()?;
            }
            Ok((file, sum))
        })();
        match written {
            Ok((file, sum)) => Ok(Begun {
                dir: dir.to_owned(),
                dest,
                tmp,
                file,
                sum,
            }),
            Err(source) => {
                // a full disk stays full of a checkpoint that will never be
                let _ = std::fs::remove_file(&tmp);
                Err(err(source))
            }
        }
    }

    /// Every instance's checkpoint in `dir` (none if the folder does not exist).
    pub fn load_all(dir: &Path) -> Result<Vec<Checkpoint>, CheckpointError> {
        let mut out = Checkpoint::files(dir)?
            .iter()
            .map(|path| Checkpoint::load(path))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.instance.cmp(&b.instance));
        Ok(out)
    }

    /// The checkpoint files in `dir` (`<instance>.ckpt`), sorted; none if
    /// there is no such folder.
    pub fn files(dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
        let read_err = |source| CheckpointError::Read {
            path: dir.display().to_string(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(read_err)?.path();
            let is_ckpt = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".ckpt") && !n.starts_with('.'));
            if is_ckpt {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The checkpoint in the file `path` (its segments are read by
    /// [`Checkpoint::restore`]).
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Checkpoint::decode(path, &bytes)
    }

    /// Every checkpoint of `lake`, with its file: the file runs' (in
    /// `_checkpoints/file/`) and each group's and topic's
    /// (`_checkpoints/<group>/<topic>/`).
    pub fn load_lake(lake: &Path) -> Result<Vec<(PathBuf, Checkpoint)>, CheckpointError> {
        let mut out = Vec::new();
        let mut dirs = vec![(lake.join(CHECKPOINTS), 0)];
        while let Some((dir, depth)) = dirs.pop() {
            for c in Checkpoint::load_all(&dir)? {
                out.push((file(&dir, &c.instance), c));
            }
            if depth == 2 {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push((e.path(), depth + 1));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Publishes the files this checkpoint lists (idempotent); returns how
    /// many were published now (not before, by the run that wrote it).
    pub fn roll_forward(&self, lake: &Path) -> Result<usize, CheckpointError> {
        // each file is renamed in, and its folder fsynced, on one of a few
        // threads: the folders' fsyncs then share the file system's journal
        // commits instead of waiting for one each (a checkpoint of a month
        // publishes over a hundred files, each in its own folder)
        let publish = |files: &[(String, String)]| {
            files.iter().try_fold(0, |now, (staged, dest)| {
                let dest = lake.join(dest);
                let published = publish_staged(&lake.join(staged), &dest).map_err(|source| {
                    CheckpointError::Publish {
                        path: dest.display().to_string(),
                        source,
                    }
                })?;
                Ok(now + usize::from(published))
            })
        };
        let per_thread = self.staged.len().div_ceil(PUBLISH_THREADS).max(8);
        std::thread::scope(|s| {
            let parts: Vec<_> = self
                .staged
                .chunks(per_thread)
                .map(|part| s.spawn(move || publish(part)))
                .collect();
            // (the scope joins the rest after an error)
            parts.into_iter().try_fold(
                0,
                |now, p| Ok(now + p.join().expect("a publishing thread")?),
            )
        })
    }
}

/// Removes staged files whose names start with `.{prefix}` and that `keep` does
/// not list: what a crashed run of this instance wrote after its last
/// checkpoint. Returns how many were removed.
pub fn remove_unlisted(
    lake: &Path,
    tables: &[&str],
    prefix: &str,
    keep: &[(String, String)],
) -> std::io::Result<usize> {
    let unlisted = unlisted_staged(lake, tables, prefix, keep);
    for path in &unlisted {
        std::fs::remove_file(path)?;
    }
    Ok(unlisted.len())
}

/// The staged files of `tables` whose names start with `.{prefix}` and that
/// `keep` does not list: those [`remove_unlisted`] removes.
pub fn unlisted_staged(
    lake: &Path,
    tables: &[&str],
    prefix: &str,
    keep: &[(String, String)],
) -> Vec<PathBuf> {
    let keep: std::collections::HashSet<PathBuf> = keep.iter().map(|(s, _)| lake.join(s)).collect();
    let start = format!(".{prefix}");
    let mut out = Vec::new();
    for table in tables {
        let Ok(days) = std::fs::read_dir(lake.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(&start) && name.ends_with(".tmp") && !keep.contains(&f.path()) {
                    out.push(f.path());
                }
            }
        }
    }
    out
}

/// Writes the segment `name` in `dir` durably (file and folder synced);
/// returns its size. Until a checkpoint lists it, nothing reads it.
fn write_segment(dir: &Path, name: &str, records: &[u8]) -> Result<u64, CheckpointError> {
    let path = dir.join(name);
    let written = (|| {
        std::fs::create_dir_all(dir)?;
        let mut file = File::create(&path)?;
        file.write_all(SEGMENT_MAGIC)?;
        file.write_all(&xxhash_rust::xxh3::xxh3_64(records).to_le_bytes())?;
        file.write_all(records)?;
        file.sync_all()?;
        sync_dir(dir)
    })();
    written.map_err(|source| {
        let _ = std::fs::remove_file(&path);
        CheckpointError::Write {
            path: path.display().to_string(),
            source,
        }
    })?;
    Ok((SEGMENT_MAGIC.len() + 8 + records.len()) as u64)
}

/// Removes the segments of `instance` in `dir` that `keep` does not list:
/// those a base left out, and any a stopped run wrote after its last
/// checkpoint.
fn remove_unlisted_segments(
    dir: &Path,
    instance: &str,
    keep: &[SegmentFile],
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_segment_of(name, instance) && !keep.iter().any(|f| f.name == name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A writer that keeps the checksum of what went through it.
struct Summed<W> {
    out: W,
    sum: xxhash_rust::xxh3::Xxh3,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A checkpoint whose snapshot is written ([`Checkpoint::begin`]).
pub struct Begun {
    dir: PathBuf,
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    /// Of what follows the header so far.
    sum: xxhash_rust::xxh3::Xxh3,
}

impl Begun {
    /// Completes the checkpoint with `ckpt`'s other fields (its `engine` is
    /// the snapshot begun with; it is not written again): appends the body,
    /// writes the header, syncs, and renames the file to its name; returns
    /// its size in bytes. On an
    /// error before the rename, the last checkpoint is still the one in place
    /// and the temporary file is removed; after it, the error is
    /// [`CheckpointError::SyncDir`].
    pub fn finish(mut self, ckpt: &Checkpoint) -> Result<u64, CheckpointError> {
        use std::os::unix::fs::FileExt;
        let path = || self.dest.display().to_string();
        let written = (|| {
            let body = postcard::to_stdvec(ckpt).expect("a checkpoint serializes");
            let body = postcard::to_extend(&ckpt.segments, body).expect("a list serializes");
            let body = postcard::to_extend(&ckpt.handed, body).expect("a map serializes");
            self.file.write_all(&body)?;
            self.sum.update(&body);
            let mut header = Vec::with_capacity(HEADER);
            header.extend_from_slice(MAGIC_4);
            header.extend_from_slice(&(body.len() as u64).to_le_bytes());
            header.extend_from_slice(&self.sum.digest().to_le_bytes());
            self.file.write_all_at(&header, 0)?;
            self.file.sync_all()?;
            let bytes = self.file.metadata()?.len();
            std::fs::rename(&self.tmp, &self.dest)?;
            Ok(bytes)
        })();
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(source) => {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(CheckpointError::Write {
                    path: path(),
                    source,
                });
            }
        };
        sync_dir(&self.dir).map_err(|source| CheckpointError::SyncDir {
            path: path(),
            source,
        })?;
        Ok(bytes)
    }
}

/// The (staged, final) names of `files` that are staged, relative to `lake`,
/// for [`Checkpoint::staged`].
pub fn staged(lake: &Path, files: &[WrittenFile]) -> Vec<(String, String)> {
    files
        .iter()
        .filter_map(|f| {
            f.staged
                .as_ref()
                .map(|s| (relative(lake, s), relative(lake, &f.path)))
        })
        .collect()
}

/// `path` relative to `lake`, as a string for a checkpoint.
pub fn relative(lake: &Path, path: &Path) -> String {
    path.strip_prefix(lake)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::new("a", "events");
        c.seq = 3;
        c.partitions.insert(
            1,
            Mark {
                offset: 42,
                generation: 2,
            },
        );
        c.engine = vec![1, 2, 3];
        c.store(dir.path()).unwrap();
        let all = Checkpoint::load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].seq, 3);
        assert_eq!(all[0].partitions[&1].offset, 42);
        assert_eq!(all[0].engine, vec![1, 2, 3]);

        let path = dir.path().join("a.ckpt");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = Checkpoint::load_all(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn a_layout_1_checkpoint_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Checkpoint::new("a", "events");
        old.seq = 7;
        old.written_at = 1;
        old.partitions.insert(
            0,
            Mark {
                offset: 9,
                generation: 1,
            },
        );
        old.staged = vec![("s".into(), "d".into())];
        // layout 1: one postcard body whose last field is the snapshot
        let mut body = postcard::to_stdvec(&old).unwrap();
        body.extend(postcard::to_stdvec(&vec![4u8, 5, 6]).unwrap());
        let mut bytes = MAGIC_1.to_vec();
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        std::fs::write(dir.path().join("a.ckpt"), &bytes).unwrap();
        let all = Checkpoint::load_all(dir.path()).unwrap();
        assert_eq!(all[0].seq, 7);
        assert_eq!(all[0].partitions[&0].offset, 9);
        assert_eq!(all[0].staged, old.staged);
        assert_eq!(all[0].engine, vec![4, 5, 6]);
    }

    #[test]
    fn a_layout_2_checkpoint_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Checkpoint::new("a", "events");
        old.seq = 8;
        old.staged = vec![("s".into(), "d".into())];
        // layout 2: the body, then the snapshot's bytes
        let mut rest = postcard::to_stdvec(&old).unwrap();
        let body_len = rest.len();
        rest.extend_from_slice(&[4, 5, 6]);
        let mut bytes = MAGIC_2.to_vec();
        bytes.extend_from_slice(&(body_len as u64).to_le_bytes());
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&rest).to_le_bytes());
        bytes.extend_from_slice(&rest);
        std::fs::write(dir.path().join("a.ckpt"), &bytes).unwrap();
        let all = Checkpoint::load_all(dir.path()).unwrap();
        assert_eq!(all[0].seq, 8);
        assert_eq!(all[0].staged, old.staged);
        assert_eq!(all[0].engine, vec![4, 5, 6]);
    }

    /// A checkpoint begun with its snapshot and finished with the rest loads
    /// whole; one begun and never finished is not a checkpoint.
    #[test]
    fn begun_then_finished() {
        let dir = tempfile::tempdir().unwrap();
        let begun = Checkpoint::begin(dir.path(), "a", |w| w.write_all(&[9; 100])).unwrap();
        assert!(Checkpoint::load_all(dir.path()).unwrap().is_empty());
        let mut c = Checkpoint::new("a", "events");
        c.seq = 2;
        c.staged = vec![("x".into(), "y".into())];
        begun.finish(&c).unwrap();
        let all = Checkpoint::load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].seq, &all[0].staged), (2, &c.staged));
        assert_eq!(all[0].engine, vec![9; 100]);
        let bytes = std::fs::read(dir.path().join("a.ckpt")).unwrap();
        assert_eq!(&bytes[..8], MAGIC_4);
    }

    /// A checkpoint writes its new segment before itself and lists its
    /// segments; they read back whole; one damaged is corrupt, one missing is
    /// named; retired segments go once it is durable, and a resume removes
    /// the instance's segments no checkpoint lists, not another instance's.
    #[test]
    fn id_segments_are_written_listed_read_and_retired() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut c = Checkpoint::new("a", "events");
        for seq in 1..=3u64 {
            c.seq = seq;
            c.segments.push(SegmentFile {
                name: segment_file("a", seq),
                records: seq,
            });
            c.new_segment = Some(vec![seq as u8; 10 * seq as usize]);
            c.store(d).unwrap();
        }
        assert_eq!(segment_file("a", 3), "a.0000000003.seg");
        let loaded = Checkpoint::load_all(d).unwrap().remove(0);
        assert_eq!(loaded.segments, c.segments);
        let ids = loaded.read_segments(d).unwrap();
        assert_eq!(ids, vec![vec![1; 10], vec![2; 20], vec![3; 30]]);

        // a base: the earlier segments are retired by the next checkpoint
        c.seq = 4;
        c.segments = vec![SegmentFile {
            name: segment_file("a", 4),
            records: 6,
        }];
        c.new_segment = Some(vec![4; 40]);
        c.store(d).unwrap();
        assert!(
            d.join(segment_file("a", 1)).exists(),
            "kept one checkpoint more"
        );
        c.seq = 5;
        c.new_segment = None;
        c.retire = (1..=3).map(|seq| segment_file("a", seq)).collect();
        c.store(d).unwrap();
        for seq in 1..=3 {
            assert!(!d.join(segment_file("a", seq)).exists());
        }
        let loaded = Checkpoint::load_all(d).unwrap().remove(0);
        assert_eq!(loaded.read_segments(d).unwrap(), vec![vec![4; 40]]);

        // damaged, then missing
        let path = d.join(segment_file("a", 4));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = loaded.read_segments(d).unwrap_err().to_string();
        assert!(
            err.contains("a.0000000004.seg") && err.contains("checksum"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = loaded.read_segments(d).unwrap_err().to_string();
        assert!(err.contains("a.0000000004.seg"), "{err}");

        // at a resume, unlisted segments of the instance go, others stay
        for name in [
            segment_file("a", 9),
            segment_file("a.b", 1),
            segment_file("ab", 1),
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        std::fs::write(&path, b"x").unwrap();
        remove_unlisted_segments(d, "a", &loaded.segments).unwrap();
        assert!(path.exists());
        assert!(!d.join(segment_file("a", 9)).exists());
        assert!(d.join(segment_file("a.b", 1)).exists());
        assert!(d.join(segment_file("ab", 1)).exists());
    }

    #[test]
    fn a_truncated_snapshot_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::new("a", "events");
        c.engine = vec![7; 1000];
        c.store(dir.path()).unwrap();
        let path = dir.path().join("a.ckpt");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = Checkpoint::load_all(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn missing_folder_is_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Checkpoint::load_all(&dir.path().join("nope"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unlisted_staged_files_are_removed() {
        let lake = tempfile::tempdir().unwrap();
        let day = lake.path().join("events/day=2026-09-01");
        std::fs::create_dir_all(&day).unwrap();
        for n in [
            ".k-a-1-00000001.parquet.tmp",
            ".k-a-1-00000002.parquet.tmp",
            ".k-b-1-00000001.parquet.tmp",
            "k-a-0-00000001.parquet",
        ] {
            std::fs::write(day.join(n), b"x").unwrap();
        }
        let keep = vec![(
            "events/day=2026-09-01/.k-a-1-00000001.parquet.tmp".to_owned(),
            "events/day=2026-09-01/k-a-1-00000001.parquet".to_owned(),
        )];
        let removed = remove_unlisted(lake.path(), &["events"], "k-a-", &keep).unwrap();
        assert_eq!(removed, 1);
        assert!(day.join(".k-a-1-00000001.parquet.tmp").exists());
        assert!(!day.join(".k-a-1-00000002.parquet.tmp").exists());
        assert!(day.join(".k-b-1-00000001.parquet.tmp").exists());
        assert!(day.join("k-a-0-00000001.parquet").exists());
    }

    #[test]
    fn roll_forward_publishes_every_staged_file_once() {
        let lake = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::new("a", "events");
        // more files than one publishing thread takes
        for d in 1..=30 {
            let day = format!("events/day=2026-09-{d:02}");
            std::fs::create_dir_all(lake.path().join(&day)).unwrap();
            let (tmp, dest) = (
                format!("{day}/.a-{d}.parquet.tmp"),
                format!("{day}/a-{d}.parquet"),
            );
            std::fs::write(lake.path().join(&tmp), d.to_string()).unwrap();
            c.staged.push((tmp, dest));
        }
        assert_eq!(c.roll_forward(lake.path()).unwrap(), 30);
        for (d, (tmp, dest)) in (1..).zip(&c.staged) {
            assert!(!lake.path().join(tmp).exists());
            assert_eq!(
                std::fs::read_to_string(lake.path().join(dest)).unwrap(),
                d.to_string()
            );
        }
        // a restart rolls the same checkpoint forward again: nothing changes,
        // and nothing is said to be published now
        assert_eq!(c.roll_forward(lake.path()).unwrap(), 0);
        // a file published, then merged by compaction: its staged name and
        // its published name are both gone, and the roll forward goes on
        std::fs::rename(
            lake.path().join(&c.staged[0].1),
            lake.path()
                .join("events/day=2026-09-01/compacted-1.parquet"),
        )
        .unwrap();
        assert_eq!(c.roll_forward(lake.path()).unwrap(), 0);
        // a staged file that cannot be published is an error naming it
        let day = lake.path().join("events/day=2026-09-02");
        std::fs::write(day.join(".a-99.parquet.tmp"), "99").unwrap();
        std::fs::create_dir(day.join("a-99.parquet")).unwrap();
        std::fs::write(day.join("a-99.parquet/x"), "a folder in the way").unwrap();
        c.staged.push((
            "events/day=2026-09-02/.a-99.parquet.tmp".into(),
            "events/day=2026-09-02/a-99.parquet".into(),
        ));
        let err = c.roll_forward(lake.path()).unwrap_err().to_string();
        assert!(err.contains("a-99.parquet"), "{err}");
    }
}
