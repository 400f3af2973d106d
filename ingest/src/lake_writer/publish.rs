//! Making a written file visible: the one protocol every writer of a partition
//! folder follows, so that compaction can swap a partition atomically.
//!
//! A file is written as `.<name>.tmp` in its partition folder and fsynced; then,
//! holding a shared lock on the folder's `.lock` file, it is renamed to its
//! final `*.parquet` name and the folder is fsynced. Compaction takes the lock
//! exclusively while it swaps the folder, so no file appears in the middle of a
//! swap. Writers share it: their files have names of their own, and a writer
//! stalled while it publishes (a frozen process, a paused machine) must not
//! stall every other writer of the day.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The lock file of a partition folder.
pub const LOCK_FILE: &str = ".lock";

/// Holds a `flock` until dropped: a partition folder's `.lock`, or another
/// lock file ([`PartitionLock::try_acquire_file`]).
pub struct PartitionLock {
    file: File,
}

impl PartitionLock {
    /// Blocks until the folder's lock is ours alone.
    pub fn acquire(dir: &Path) -> io::Result<PartitionLock> {
        let file = Self::open(&dir.join(LOCK_FILE))?;
        file.lock()?;
        Ok(PartitionLock { file })
    }

    /// Blocks until the folder's lock is ours, shared with other writers
    /// publishing files (not with a swap).
    pub fn acquire_shared(dir: &Path) -> io::Result<PartitionLock> {
        let file = Self::open(&dir.join(LOCK_FILE))?;
        file.lock_shared()?;
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

/// Renames the fsynced `tmp` to `dest` (same folder) under the folder's lock
/// (shared with other writers), then
/// fsyncs the folder so the name survives a crash.
pub fn publish_file(tmp: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("destination has no folder"))?;
    let _lock = PartitionLock::acquire_shared(dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Writers share a folder's lock: one stalled while it publishes (here,
    /// holding the lock) stalls no other writer; a swap's exclusive lock waits
    /// for it, and publishing waits for the swap.
    #[test]
    fn writers_share_the_lock_and_a_swap_has_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().to_owned();
        let waits = |f: Box<dyn FnOnce() + Send>| {
            let (tx, rx) = mpsc::channel();
            let t = std::thread::spawn(move || {
                f();
                tx.send(()).unwrap();
            });
            (rx, t)
        };
        let stalled = PartitionLock::acquire_shared(&part).unwrap();
        std::fs::write(part.join(".a.parquet.tmp"), b"a").unwrap();
        let p = part.clone();
        let (published, t) = waits(Box::new(move || {
            publish_file(&p.join(".a.parquet.tmp"), &p.join("a.parquet")).unwrap();
        }));
        published.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert!(part.join("a.parquet").exists());

        let p = part.clone();
        let (swapped, t) = waits(Box::new(move || {
            let _swap = PartitionLock::acquire(&p).unwrap();
        }));
        assert!(swapped.recv_timeout(Duration::from_millis(200)).is_err());
        drop(stalled);
        swapped.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();

        let swap = PartitionLock::acquire(&part).unwrap();
        std::fs::write(part.join(".b.parquet.tmp"), b"b").unwrap();
        let p = part.clone();
        let (published, t) = waits(Box::new(move || {
            publish_file(&p.join(".b.parquet.tmp"), &p.join("b.parquet")).unwrap();
        }));
        assert!(published.recv_timeout(Duration::from_millis(200)).is_err());
        drop(swap);
        published.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert!(part.join("b.parquet").exists());
    }
}
