//! Folder swaps: how compaction, rescore and the monthly job replace a folder
//! of the lake atomically, and the locks they take.
//!
//! The partition lock itself is the ingest's
//! ([`huoyue_ingest::lake_writer::publish`]): a partition folder
//! (`LAKE/<table>/day=YYYY-MM-DD/`) has a lock file `.lock`, and holding an
//! exclusive `flock` on it is the right to change the set of `*.parquet` files
//! in the folder. The ingest publishes every file with `publish_file` (rename
//! of a fsynced `.<name>.tmp` under that lock).
//!
//! # Swapping a partition folder
//!
//! Compaction and rescore build a replacement folder next to the partition,
//! take the partition's lock, and exchange the two folders with
//! `renameat2(RENAME_EXCHANGE)` ([`exchange`]): a reader that lists the
//! partition sees either every old file or the new set, never both, never
//! neither. Before the exchange the replacement folder gets a **hard link of
//! the partition's `.lock`** ([`link_lock`]), so after the swap the partition's
//! `.lock` is still the very inode the swapper holds and every publisher
//! waiting on it keeps waiting on the right lock. (A fresh lock file in the
//! replacement would leave a publisher that opened the old one holding a lock
//! nobody else looks at.)
//!
//! Only holders of a table's swap lock ([`lock_table`], `<table>/.compact.lock`)
//! exchange that table's partition folders, so swaps never interleave.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags, renameat_with};

pub use huoyue_ingest::lake_writer::publish::{LOCK_FILE, PartitionLock, publish_file, sync_dir};

/// Name of the per-table lock that serialises the folder swaps of a table
/// (compaction, rescore).
pub const TABLE_LOCK: &str = ".compact.lock";

/// Blocks until this process holds the swap lock of table folder `table_dir`
/// (which must exist); released when the returned file is dropped.
pub fn lock_table(table_dir: &Path) -> io::Result<File> {
    lock_file(&table_dir.join(TABLE_LOCK))
}

/// Opens (creating it) and exclusively locks `path`; the lock is released when
/// the file is dropped.
pub fn lock_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

/// Hard-links the `.lock` of `partition` into `replacement`, so that the
/// partition's lock stays the same inode across an [`exchange`] of the two.
/// The caller holds the partition's lock (which created the file).
pub fn link_lock(partition: &Path, replacement: &Path) -> io::Result<()> {
    let target = replacement.join(LOCK_FILE);
    match fs::remove_file(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::hard_link(partition.join(LOCK_FILE), target)
}

/// The folder of the lake, beside the tables, under which compaction, rescore
/// and the monthly job build the folders they swap into a table:
/// `LAKE/.scratch/`.
pub const SCRATCH: &str = ".scratch";

/// The scratch folder of the table folder `table_dir` (`LAKE/.scratch/<table>/`),
/// created if missing. Replacements are built there, outside every table, so a
/// reader globbing `<table>/*/*.parquet` (DuckDB) sees neither a replacement
/// being built nor the old files being deleted after a swap (a glob's `*`
/// matches dot-folders too). It is on the lake's file system, so a swap is a
/// rename.
pub fn scratch_root(table_dir: &Path) -> io::Result<PathBuf> {
    let table = table_dir.file_name().ok_or_else(|| {
        io::Error::other(format!("{} is not a table folder", table_dir.display()))
    })?;
    let root = parent_dir(table_dir).join(SCRATCH).join(table);
    fs::create_dir_all(&root)?;
    Ok(root)
}

/// Removes what crashed runs left in `table_dir`'s scratch folder (an
/// unfinished replacement, or old files already swapped out: both garbage),
/// and the `.`-named scratch folders that releases before `LAKE/.scratch/`
/// built inside the table. The caller holds the lock that serialises the runs
/// building there (the table's swap lock; the monthly job's lake lock).
/// Returns how many folders were removed.
pub fn remove_leftovers(table_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let root = scratch_root(table_dir)?;
    for e in fs::read_dir(&root)? {
        let path = e?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed += 1;
    }
    if let Ok(entries) = fs::read_dir(table_dir) {
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let old = name.to_str().is_some_and(|n| {
                [".compact-", ".rescore-", ".tmp-"]
                    .iter()
                    .any(|p| n.starts_with(p))
            });
            if old && e.file_type()?.is_dir() {
                fs::remove_dir_all(e.path())?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(table = %table_dir.display(), removed, "removed the scratch folders of a crashed run");
    }
    Ok(removed)
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
/// For folders nobody publishes into (the monthly job's outputs).
pub fn replace_dir(new: &Path, target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(_) => {
            exchange(new, target)?;
            sync_dir(parent_dir(target))?;
            sync_dir(parent_dir(new))?;
            fs::remove_dir_all(new)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            renameat_with(CWD, new, CWD, target, RenameFlags::NOREPLACE)
                .map_err(io::Error::from)?;
            sync_dir(parent_dir(target))
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
    sync_dir(dir)
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_lock_inode_survives_an_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("day=2026-09-01");
        let new = dir.path().join(".compact-day=2026-09-01");
        fs::create_dir(&part).unwrap();
        fs::create_dir(&new).unwrap();
        fs::write(part.join("old.parquet"), b"a").unwrap();
        fs::write(new.join("new.parquet"), b"b").unwrap();
        let lock = PartitionLock::acquire(&part).unwrap();
        let inode = fs::metadata(part.join(LOCK_FILE)).unwrap().ino();
        link_lock(&part, &new).unwrap();
        exchange(&part, &new).unwrap();
        assert!(part.join("new.parquet").exists());
        assert!(!part.join("old.parquet").exists());
        assert_eq!(fs::metadata(part.join(LOCK_FILE)).unwrap().ino(), inode);
        // A publisher opening the partition's lock now waits for us.
        let part2 = part.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = PartitionLock::acquire(&part2).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        drop(lock);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }

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
