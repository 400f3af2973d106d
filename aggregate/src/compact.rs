//! Compaction: replace a partition's many small delta files by one file of
//! summed rows, atomically and safely while the ingest keeps publishing into
//! the same partition.
//!
//! # Protocol (see also [`crate::swap`] and README.md)
//!
//! For a partition folder `P = LAKE/<table>/day=D`:
//!
//! 1. Under the table's swap lock (`<table>/.compact.lock`, so two
//!    compactions or rescores of one table never interleave), list the
//!    `*.parquet` files of `P`: the snapshot `S`. With fewer than two files
//!    there is nothing to do.
//! 2. Without holding the partition lock (this is the long part), write the
//!    summed rows of `S` as one fsynced file into the scratch folder
//!    `LAKE/.scratch/<table>/compact-day=D/` (outside the table: a reader
//!    globbing the table's files never sees it). Scratch folders a crashed
//!    run left there are removed first.
//! 3. Take the partition lock (`P/.lock`): from now on no file can be
//!    published into `P`. List `P` again: files published since step 1 (`N`)
//!    and temporary files of writers in flight are hard-linked into the
//!    scratch folder, and so is `P/.lock` itself: after the swap the
//!    partition's lock is the same inode, still held by us. If a file of `S`
//!    vanished meanwhile, give up on this partition.
//! 4. Swap `P` and the scratch folder with `renameat2(RENAME_EXCHANGE)`. A
//!    reader that lists `P` sees either the old files (`S ∪ N`) or the new
//!    ones (`compacted(S) ∪ N`): the same sums, never both, never neither.
//! 5. Temporary files that writers created in the old folder during the swap
//!    are linked over, then the lock is released (a publisher waiting on it
//!    publishes into the new folder) and the old folder is deleted.
//!
//! A reader that listed the old folder just before the swap and opens a file
//! after it gets "not found" and must retry its read; it can never count a
//! row twice because the compacted file has a name no old file has.
//!
//! Requirement on the ingest: a `*.parquet` file, once published, is final
//! (never rewritten or deleted by the ingest), since compaction may already
//! have merged it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use crate::error::{AggregateError, IoContext, Result};
use crate::month::{Day, Month};
use crate::monthly::tables::conform;
use crate::monthly::write::writer_properties;
use crate::swap::{
    LOCK_FILE, PartitionLock, exchange, link_lock, lock_table, parent_dir, remove_leftovers,
    scratch_root, sync_dir,
};

/// How long compaction waits after the swap, still holding the locks, before
/// carrying over temporary files created in the old folder (a file creation
/// that resolved the partition path just before the swap lands there).
pub(crate) const SWAP_GRACE: std::time::Duration = std::time::Duration::from_millis(5);

/// A table that compaction knows how to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactTable {
    /// Score deltas: rows summed per (user_id, school_id, rule).
    DailyScores,
    /// Activity counts: rows summed per (user_id, role, school_id).
    DailyActivity,
    /// Bronze events: files concatenated.
    Events,
    /// Rejected input: files concatenated.
    Rejected,
}

impl CompactTable {
    /// Parses a table name.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "daily_scores" => Self::DailyScores,
            "daily_activity" => Self::DailyActivity,
            "events" => Self::Events,
            "rejected" => Self::Rejected,
            other => return Err(AggregateError::UnknownTable(other.to_string())),
        })
    }

    /// The table's folder name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DailyScores => "daily_scores",
            Self::DailyActivity => "daily_activity",
            Self::Events => "events",
            Self::Rejected => "rejected",
        }
    }

    /// The SQL that merges the rows of table `parts`, or None to concatenate.
    fn merge_sql(&self) -> Option<&'static str> {
        match self {
            Self::DailyScores => Some(
                "SELECT user_id, school_id, rule, SUM(points) AS points, SUM(events) AS events \
                 FROM parts GROUP BY user_id, school_id, rule ORDER BY user_id, rule, school_id",
            ),
            Self::DailyActivity => Some(
                "SELECT user_id, role, school_id, SUM(logins) AS logins, \
                 SUM(deep_actions) AS deep_actions, SUM(registers) AS registers, \
                 SUM(events) AS events \
                 FROM parts GROUP BY user_id, role, school_id ORDER BY user_id, role, school_id",
            ),
            Self::Events | Self::Rejected => None,
        }
    }
}

/// Which partitions to compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactScope {
    /// Every `day=` partition of the table.
    All,
    /// One day.
    Day(Day),
    /// Each day of a month.
    Month(Month),
}

/// What happened to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// Replaced `files` files by one (plus `carried` files published during
    /// the run, which were kept as they are).
    Compacted {
        /// Files merged.
        files: usize,
        /// Files published meanwhile and carried over unmerged.
        carried: usize,
    },
    /// Nothing to do (the partition has at most one file).
    Skipped,
    /// A file vanished during the run (someone else changed the partition);
    /// nothing was changed.
    Raced,
}

/// The result of a compaction run.
#[derive(Debug, Default)]
pub struct CompactSummary {
    /// Partitions replaced.
    pub compacted: usize,
    /// Partitions with at most one file.
    pub skipped: usize,
    /// Partitions left alone because they changed under us.
    pub raced: usize,
    /// Files merged in total.
    pub files_merged: usize,
    /// Partitions that could not be compacted (a file that does not read,
    /// say), each with its error: left as they were while the others went on.
    pub failed: Vec<(String, AggregateError)>,
}

/// Compacts the partitions of `table` selected by `scope`.
pub async fn run(lake: &Path, table: CompactTable, scope: CompactScope) -> Result<CompactSummary> {
    if !lake.is_dir() {
        return Err(AggregateError::LakeNotFound(lake.to_path_buf()));
    }
    let table_dir = lake.join(table.name());
    let mut summary = CompactSummary::default();
    if !table_dir.is_dir() {
        return Ok(summary);
    }
    let partitions: Vec<String> = match scope {
        CompactScope::Day(d) => vec![format!("day={d}")],
        CompactScope::Month(m) => m.each_day().map(|d| format!("day={d}")).collect(),
        CompactScope::All => {
            let mut v: Vec<String> = fs::read_dir(&table_dir)
                .context(|| format!("listing {}", table_dir.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("day="))
                .collect();
            v.sort();
            v
        }
    };
    for p in partitions {
        if !table_dir.join(&p).is_dir() {
            continue;
        }
        match compact_partition(&table_dir, &p, table).await {
            Ok(PartitionOutcome::Compacted { files, .. }) => {
                summary.compacted += 1;
                summary.files_merged += files;
            }
            Ok(PartitionOutcome::Skipped) => summary.skipped += 1,
            Ok(PartitionOutcome::Raced) => summary.raced += 1,
            // one bad partition does not hold back the others
            Err(e) => summary.failed.push((p, e)),
        }
    }
    Ok(summary)
}

/// Compacts one partition folder `<table_dir>/<partition>` (see the module
/// documentation for the protocol).
pub async fn compact_partition(
    table_dir: &Path,
    partition: &str,
    table: CompactTable,
) -> Result<PartitionOutcome> {
    let _table_lock =
        lock_table(table_dir).context(|| format!("locking {}", table_dir.display()))?;
    let dir = table_dir.join(partition);
    let snapshot = parquet_files(&dir)?;
    if snapshot.len() < 2 {
        return Ok(PartitionOutcome::Skipped);
    }
    remove_leftovers(table_dir)
        .context(|| format!("removing the scratch folders of {}", table_dir.display()))?;
    let scratch = scratch_root(table_dir)
        .context(|| format!("creating the scratch folder of {}", table_dir.display()))?
        .join(format!("compact-{partition}"));
    fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;

    let out_name = compacted_name(&snapshot);
    let inputs: Vec<PathBuf> = snapshot.iter().map(|n| dir.join(n)).collect();
    if let Err(e) = merge(table, &inputs, &scratch.join(&out_name)).await {
        let _ = fs::remove_dir_all(&scratch);
        return Err(AggregateError::During {
            context: format!("compacting {} (left as it was)", dir.display()),
            source: Box::new(AggregateError::InvalidLake(with_full_paths(
                e.to_string(),
                &inputs,
            ))),
        });
    }

    let lock = PartitionLock::acquire(&dir).context(|| format!("locking {}", dir.display()))?;
    let now = parquet_files(&dir)?;
    if !snapshot.is_subset(&now) {
        drop(lock);
        fs::remove_dir_all(&scratch).context(|| format!("removing {}", scratch.display()))?;
        tracing::warn!(partition = %dir.display(), "a file vanished during compaction; partition left alone");
        return Ok(PartitionOutcome::Raced);
    }
    let carried = now.difference(&snapshot).count();
    link_others(&dir, &scratch, &snapshot)?;
    link_lock(&dir, &scratch).context(|| format!("linking the lock of {}", dir.display()))?;
    sync_dir(&scratch).context(|| format!("syncing {}", scratch.display()))?;
    exchange(&dir, &scratch)
        .context(|| format!("swapping {} and {}", dir.display(), scratch.display()))?;
    sync_dir(table_dir).context(|| format!("syncing {}", table_dir.display()))?;
    sync_dir(parent_dir(&scratch)).context(|| format!("syncing {}", scratch.display()))?;
    // `scratch` now holds the old files. Writers' temporary files created
    // there around the swap move over before anyone can publish them; the
    // grace period lets a create that resolved the old folder just before
    // the swap finish first.
    std::thread::sleep(SWAP_GRACE);
    link_others(&scratch, &dir, &snapshot)?;
    sync_dir(&dir).context(|| format!("syncing {}", dir.display()))?;
    drop(lock);
    fs::remove_dir_all(&scratch).context(|| format!("removing {}", scratch.display()))?;
    Ok(PartitionOutcome::Compacted {
        files: snapshot.len(),
        carried,
    })
}

/// The data files of a partition: `*.parquet` not starting with `.` or `_`.
pub(crate) fn parquet_files(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let e = e.context(|| format!("listing {}", dir.display()))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if is_data_file(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
            out.insert(name);
        }
    }
    Ok(out)
}

fn is_data_file(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_')
}

/// Hard-links every regular file of `from` that is neither in `merged`, nor
/// the lock file, nor already present in `to`, into `to`.
pub(crate) fn link_others(from: &Path, to: &Path, merged: &BTreeSet<String>) -> Result<()> {
    for e in fs::read_dir(from).context(|| format!("listing {}", from.display()))? {
        let e = e.context(|| format!("listing {}", from.display()))?;
        let name = e.file_name();
        let Some(s) = name.to_str() else { continue };
        if s == LOCK_FILE || merged.contains(s) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let target = to.join(&name);
        match fs::hard_link(e.path(), &target) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A temporary file renamed or removed by its writer meanwhile.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(AggregateError::Io {
                    context: format!("linking {} to {}", e.path().display(), target.display()),
                    source: err,
                });
            }
        }
    }
    Ok(())
}

/// A name no file of the snapshot has.
pub(crate) fn compacted_name(snapshot: &BTreeSet<String>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = 0u32;
    loop {
        let name = format!("compacted-{nanos}-{n}.parquet");
        if !snapshot.contains(&name) {
            return name;
        }
        n += 1;
    }
}

/// `message` with the files of `inputs` named by their whole paths: DataFusion
/// names a file by its object store path, without the leading `/`.
fn with_full_paths(message: String, inputs: &[PathBuf]) -> String {
    inputs.iter().fold(message, |m, p| {
        let full = p.display().to_string();
        match full.strip_prefix('/') {
            Some(relative) => m.replace(&format!(" {relative}"), &format!(" {full}")),
            None => m,
        }
    })
}

/// Writes the merged rows of `inputs` to `out` (fsynced), with the schema of
/// the first input.
async fn merge(table: CompactTable, inputs: &[PathBuf], out: &Path) -> Result<()> {
    let first = File::open(&inputs[0]).context(|| format!("opening {}", inputs[0].display()))?;
    let schema: SchemaRef = ParquetRecordBatchReaderBuilder::try_new(first)?
        .schema()
        .clone();
    let file = File::create(out).context(|| format!("creating {}", out.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))?;
    match table.merge_sql() {
        Some(sql) => {
            let ctx = SessionContext::new_with_config(
                SessionConfig::new().set_bool("datafusion.execution.collect_statistics", false),
            );
            let urls = inputs
                .iter()
                .map(|p| {
                    let abs =
                        std::path::absolute(p).context(|| format!("resolving {}", p.display()))?;
                    let s = abs.to_str().ok_or_else(|| {
                        AggregateError::Internal(format!("path {} is not UTF-8", abs.display()))
                    })?;
                    Ok(ListingTableUrl::parse(s)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(
                    ListingOptions::new(Arc::new(ParquetFormat::default()))
                        .with_file_extension(".parquet"),
                )
                .with_schema(schema.clone());
            ctx.register_table("parts", Arc::new(ListingTable::try_new(config)?))?;
            let mut stream: SendableRecordBatchStream =
                ctx.sql(sql).await?.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                writer.write(&conform(&[batch?], &schema)?)?;
            }
        }
        None => {
            for input in inputs {
                let f = File::open(input).context(|| format!("opening {}", input.display()))?;
                for batch in ParquetRecordBatchReaderBuilder::try_new(f)?.build()? {
                    writer.write(&conform(&[batch?], &schema)?)?;
                }
            }
        }
    }
    let file = writer.into_inner()?;
    file.sync_all()
        .context(|| format!("syncing {}", out.display()))
}
