//! The partition lock: the protocol that lets compaction replace a partition's
//! files while the ingest keeps publishing new files into it.
//!
//! This module has no DataFusion dependency so that the ingest can call the very
//! same code ([`publish_file`]).
//!
//! # Protocol
//!
//! * A partition folder (`LAKE/<table>/day=YYYY-MM-DD/`) has a lock file `.lock`
//!   (created on first use). Holding an exclusive `flock` on it is the right to
//!   change the set of `*.parquet` files in the folder.
//! * **Publishing** (ingest): write the file under a temporary `.`-name (in the
//!   partition folder or anywhere on the same file system), fsync it, then call
//!   [`publish_file`]: it takes the lock, renames the file to its final
//!   `*.parquet` name, fsyncs the folder and releases the lock.
//! * **Compaction** takes the same lock, so no file appears while it lists the
//!   folder, builds a replacement folder `.compact-<partition>` next to it and
//!   swaps the two folders with `renameat2(RENAME_EXCHANGE)`
//!   ([`exchange`]): readers see either every old file or the new set, never
//!   both, never neither.
//! * A swapped-out folder carries its `.lock` with it. A publisher that was
//!   waiting on the old lock file would then hold a lock nobody else looks at,
//!   so [`PartitionLock::acquire`] checks after `flock` returns that the
//!   `.lock` at the path is still the file it locked (same device and inode)
//!   and starts over otherwise.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags, renameat_with};

/// Name of the lock file inside a partition folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a partition folder, released on drop.
#[derive(Debug)]
pub struct PartitionLock {
    // Closing the file releases the flock.
    _file: File,
    dir: PathBuf,
}

impl PartitionLock {
    /// Blocks until this process holds the exclusive lock of partition folder
    /// `dir` (which must exist); creates `dir/.lock` if it is missing.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        let path = dir.join(LOCK_FILE);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            file.lock()?;
            // The folder may have been swapped out by a compaction while we
            // waited: then the file we locked is no longer the lock of `dir`.
            let held = file.metadata()?;
            match fs::metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Self {
                        _file: file,
                        dir: dir.to_path_buf(),
                    });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The partition folder this lock guards.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Publishes a finished file: under the exclusive lock of the final name's
/// folder, renames `tmp` (already written and fsynced by the caller, on the
/// same file system) to `final_name`, then fsyncs the folder.
///
/// This is the only way a `*.parquet` file may appear in a partition that
/// compaction may touch. The caller should create `tmp` as a `.`-name in the
/// partition folder itself (`.<name>.tmp`): compaction carries such files over
/// to the replacement folder.
pub fn publish_file(tmp: &Path, final_name: &Path) -> io::Result<()> {
    let dir = parent_dir(final_name);
    let _lock = PartitionLock::acquire(dir)?;
    fs::rename(tmp, final_name)?;
    fsync_dir(dir)
}

/// fsyncs a directory, making the renames and creations in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs a file.
pub fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Atomically exchanges two existing paths (files or folders) on the same file
/// system, with Linux `renameat2(RENAME_EXCHANGE)`.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

/// Moves the finished folder `new` to `target` atomically: if `target` exists
/// the two are exchanged and the old content (now at `new`) is deleted,
/// otherwise `new` is renamed to `target`. The parent folder is fsynced.
///
/// A reader of `target` sees the old content or the new one, never a mixture.
pub fn replace_dir(new: &Path, target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(_) => {
            exchange(new, target)?;
            fsync_dir(parent_dir(target))?;
            fs::remove_dir_all(new)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            renameat_with(CWD, new, CWD, target, RenameFlags::NOREPLACE)
                .map_err(io::Error::from)?;
            fsync_dir(parent_dir(target))
        }
        Err(e) => Err(e),
    }
}

/// fsyncs every regular file under `dir` (recursively) and every folder,
/// deepest first, so that a finished scratch folder is durable before it is
/// swapped in.
pub fn fsync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            fsync_tree(&path)?;
        } else {
            fsync_file(&path)?;
        }
    }
    fsync_dir(dir)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_renames_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("day=2026-09-01");
        fs::create_dir(&part).unwrap();
        let tmp = part.join(".a.tmp");
        fs::write(&tmp, b"x").unwrap();
        publish_file(&tmp, &part.join("a.parquet")).unwrap();
        assert!(part.join("a.parquet").exists());
        assert!(!tmp.exists());
        assert!(part.join(LOCK_FILE).exists());
    }

    #[test]
    fn exchange_swaps_folders_and_lock_follows_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("x"), b"a").unwrap();
        fs::write(b.join("x"), b"b").unwrap();
        let lock = PartitionLock::acquire(&a).unwrap();
        exchange(&a, &b).unwrap();
        assert_eq!(fs::read(a.join("x")).unwrap(), b"b");
        drop(lock);
        // `a` now has no lock file of its own: acquiring creates one.
        let again = PartitionLock::acquire(&a).unwrap();
        assert_eq!(again.dir(), a.as_path());
    }

    #[test]
    fn replace_dir_creates_or_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("month=2026-09");
        let new = dir.path().join(".new");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("f"), b"1").unwrap();
        replace_dir(&new, &target).unwrap();
        assert_eq!(fs::read(target.join("f")).unwrap(), b"1");
        fs::create_dir(&new).unwrap();
        fs::write(new.join("g"), b"2").unwrap();
        replace_dir(&new, &target).unwrap();
        assert!(!target.join("f").exists());
        assert_eq!(fs::read(target.join("g")).unwrap(), b"2");
        assert!(!new.exists());
    }
}
