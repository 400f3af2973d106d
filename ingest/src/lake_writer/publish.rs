//! Making a written file visible: the one protocol every writer of a partition
//! folder follows, so that compaction can swap a partition atomically.
//!
//! A file is written as `.<name>.tmp` in its partition folder and fsynced; then,
//! holding an exclusive lock on the folder's `.lock` file, it is renamed to its
//! final `*.parquet` name and the folder is fsynced. Compaction takes the same lock
//! while it swaps the folder, so no file appears in the middle of a swap.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The lock file of a partition folder.
pub const LOCK_FILE: &str = ".lock";

/// Holds an exclusive `flock` until dropped: a partition folder's `.lock`, or
/// another lock file ([`PartitionLock::try_acquire_file`]).
pub struct PartitionLock {
    file: File,
}

impl PartitionLock {
    /// Blocks until the folder's lock is ours.
    pub fn acquire(dir: &Path) -> io::Result<PartitionLock> {
        let file = Self::open(&dir.join(LOCK_FILE))?;
        file.lock()?;
        Ok(PartitionLock { file })
    }

    /// The lock of the file `path` (created if missing) if nobody holds it,
    /// else `None`.
    pub fn try_acquire_file(path: &Path) -> io::Result<Option<PartitionLock>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PartitionLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Renames the fsynced `tmp` to `dest` (same folder) under the folder's lock, then
/// fsyncs the folder so the name survives a crash.
pub fn publish_file(tmp: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("destination has no folder"))?;
    let _lock = PartitionLock::acquire(dir)?;
    std::fs::rename(tmp, dest)?;
    sync_dir(dir)
}

/// fsyncs a folder (its entries).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Publishes a staged file: renames `tmp` to `dest` under the folder's lock.
/// Idempotent: when `tmp` is gone, it was published before (a restart rolling
/// a checkpoint forward). `dest` may be gone too: compaction merges published
/// files and a rescore replaces them. (A staged file is fsynced before a
/// checkpoint lists it, and only publishing takes it away: compaction carries
/// writers' temporary files over to the folder it swaps in, and a rescore
/// gives up while one waits.) Says whether it published the file now.
pub fn publish_staged(tmp: &Path, dest: &Path) -> io::Result<bool> {
    match publish_file(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !tmp.exists() => Ok(false),
        Err(e) => Err(e),
    }
}
