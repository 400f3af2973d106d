//! Re-scoring: recompute one month's `daily_scores` and `daily_activity` from
//! the bronze `events` (plus the `late` rows of `rejected`) with the ingest's
//! own scoring engine, and replace the month's day partitions of both tables
//! atomically.
//!
//! # What is fed to the engine
//!
//! Rules with lifetime memory (`profile` once, the pairs and caps of
//! `resource_spread`, the reviews of `resource_submit`, unqualified tasks, the
//! login streak) depend on earlier months, so the engine is fed every event of
//! the lake from its first day, in event order (`ts`, then `event_id`), one
//! day after the other. Days before the month only prime the state: their
//! deltas are dropped. Feeding continues after the month's last day for the
//! longest `window_days` of the profile's threshold rules (`task`: 30 days)
//! plus one, because a task published in the month earns its points on its
//! publish day when it qualifies, up to that many days later (scoring.md);
//! deltas of those later days are dropped too. So a month without events of
//! its own can have scores (a late first event of a task can move its
//! publish day into it): it is refused as having no data only when nothing
//! fed gives it a row and it has none to replace. The result for a closed month
//! therefore equals what the stream wrote, with the `late` events counted;
//! so does its `daily_activity` (one row per (day, user), with the role and
//! school of the user's first event of the day in order).
//!
//! Since events arrive in order, none is late; a `late` row of `rejected`
//! (any ingest day) is decoded again from its raw bytes and fed on its event
//! day. A `late` row that repeats an event already in `events` is a duplicate
//! for the engine and counts once.
//!
//! # How the month is replaced
//!
//! 1. Everything is computed before anything is written. The day folders'
//!    data files are noted (the snapshot).
//! 2. Under the tables' swap locks (`daily_scores/.compact.lock` and
//!    `daily_activity/.compact.lock`, shared with compaction), each day's new
//!    file is written into a scratch folder
//!    `LAKE/.scratch/<table>/rescore-day=D/` (outside the table; those a
//!    crashed run left are removed first) and the scratch folders are fsynced.
//! 3. The partition lock of every day of the month is taken, table by table
//!    in day order. If
//!    a day's data files differ from the snapshot, a writer's temporary file
//!    is waiting in it, or the `events` files fed are no longer exactly the
//!    files of those days (an ingest is still writing into the month), the
//!    run gives up: scratch folders removed, nothing replaced. This is meant
//!    for months the ingest no longer writes to (its newest day past the
//!    month's end and the task window); the check catches a running ingest
//!    in all but a narrow window (an events file published before the check
//!    whose score file is neither published nor staged yet).
//! 4. Each day folder is exchanged with its scratch folder
//!    (`renameat2(RENAME_EXCHANGE)`, the partition's `.lock` hard-linked over,
//!    see [`crate::swap`]). If an exchange fails, the days already exchanged
//!    are exchanged back. Then the locks are released and the old folders
//!    deleted.
//!
//! A reader sees each day either entirely old or entirely new. The exchanges
//! of the month's days follow each other within milliseconds while every
//! lock is held, but they are separate renames: a query that lists the whole
//! month in that window may see some days old and others new (each one
//! complete). A reader that listed a day just before its exchange and opens a
//! file after gets "not found" and must retry, as with compaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use huoyue_ingest::checkpoint::Checkpoint;
use huoyue_ingest::engine::{ActivityRow, DeltaSink, Engine, EngineConfig, FILE_SOURCE, Outcome};
use huoyue_ingest::lake_writer::tables::{ActivityRows, ScoreRows};
use huoyue_schemas::columns::{EventBatchBuilder, EventRows, Lineage};
use huoyue_schemas::event::Role;
use huoyue_schemas::lake::{DAILY_ACTIVITY, DAILY_SCORES};
use huoyue_schemas::time::{day_of, format_day, parse_day};
use huoyue_schemas::{Profile, Reason, RuleKind};
use indicatif::ProgressBar;

use crate::compact::{SWAP_GRACE, compacted_name, link_others, parquet_files};
use crate::error::{AggregateError, IoContext, Result};
use crate::month::Month;
use crate::monthly::write::writer_properties;
use crate::swap::{
    PartitionLock, SCRATCH, exchange, fsync_tree, link_lock, lock_table, parent_dir,
    remove_leftovers, scratch_root, sync_dir,
};

/// What `huoyue-aggregate rescore` does.
#[derive(Debug, Clone)]
pub struct RescoreOptions {
    /// The lake directory.
    pub lake: PathBuf,
    /// The month whose `daily_scores` are replaced.
    pub month: Month,
    /// The rule profile to score with (the one the ingest used, normally).
    pub profile: Profile,
    /// Engine settings (lateness, duplicate memory), as the ingest's; the
    /// lateness the lake's checkpoints keep overrides this one's.
    pub engine: EngineConfig,
}

/// What a rescore run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescoreSummary {
    /// Rows of `events` fed to the engine (priming days included).
    pub events: u64,
    /// `late` rows of `rejected` fed to the engine.
    pub late: u64,
    /// Fed events the engine found to be duplicates (a `late` row repeating a
    /// stored event).
    pub duplicates: u64,
    /// Days of the lake fed, priming and trailing days included.
    pub days_fed: usize,
    /// Day partitions of the month replaced (of both tables).
    pub days_replaced: usize,
    /// `daily_scores` rows written.
    pub rows: usize,
    /// `daily_activity` rows written.
    pub activity_rows: usize,
    /// The month's total points.
    pub points: i64,
}

/// The sums of one (day, user, rule).
#[derive(Debug)]
struct Sum {
    school_id: Box<str>,
    points: i64,
    events: i64,
}

/// The counts of one (day, user) of `daily_activity`, with the role and
/// school of the actor's first event of the day in order.
#[derive(Debug)]
struct ActivitySum {
    role: Role,
    school_id: Box<str>,
    /// logins, deep_actions, registers, events
    counts: [i64; 4],
}

/// Collects the deltas of the month's days, summed per (day, user, rule) and
/// per (day, user); the school is the one of the first delta, as the ingest
/// keeps it (events are fed in order, so the first delta's is the first
/// event's).
struct MonthSink {
    first: i32,
    last: i32,
    sums: HashMap<Key, Sum>,
    activity: HashMap<(i32, Box<str>), ActivitySum>,
}

impl DeltaSink for MonthSink {
    fn score(
        &mut self,
        day: i32,
        user_id: &str,
        school_id: &str,
        rule: &str,
        points: i64,
        events: i64,
    ) {
        if day < self.first || day > self.last {
            return;
        }
        let sum = self
            .sums
            .entry((day, user_id.into(), rule.into()))
            .or_insert_with(|| Sum {
                school_id: school_id.into(),
                points: 0,
                events: 0,
            });
        sum.points += points;
        sum.events += events;
    }

    fn activity(&mut self, row: &ActivityRow<'_>) {
        if row.day < self.first || row.day > self.last {
            return;
        }
        let sum = self
            .activity
            .entry((row.day, row.user_id.into()))
            .or_insert_with(|| ActivitySum {
                role: row.role,
                school_id: row.school_id.into(),
                counts: [0; 4],
            });
        let counts = [row.logins, row.deep_actions, row.registers, row.events];
        for (sum, n) in sum.counts.iter_mut().zip(counts) {
            *sum += n;
        }
    }
}

impl MonthSink {
    /// The month's new `daily_scores` and `daily_activity` day batches,
    /// rows sorted by key; (day, user, rule)s that sum to 0 points and 0
    /// events are left out.
    fn into_batches(self) -> (BTreeMap<i32, RecordBatch>, BTreeMap<i32, RecordBatch>) {
        let mut sums = self.sums;
        sums.retain(|_, s| s.points != 0 || s.events != 0);
        let scores = by_day(sums, |k| k.0)
            .into_iter()
            .map(|(day, rows)| {
                let mut batch = ScoreRows::default();
                for ((_, user, rule), s) in &rows {
                    batch.push(user, &s.school_id, rule, s.points, s.events);
                }
                (day, batch.finish())
            })
            .collect();
        let activity = by_day(self.activity, |k| k.0)
            .into_iter()
            .map(|(day, rows)| {
                let mut batch = ActivityRows::default();
                for ((_, user_id), s) in &rows {
                    let [logins, deep_actions, registers, events] = s.counts;
                    batch.push(&ActivityRow {
                        day,
                        user_id,
                        role: s.role,
                        school_id: &s.school_id,
                        logins,
                        deep_actions,
                        registers,
                        events,
                    });
                }
                (day, batch.finish())
            })
            .collect();
        (scores, activity)
    }
}

/// The entries of `map` grouped by `day` of their key, sorted by key.
fn by_day<K: Ord, V>(map: HashMap<K, V>, day: impl Fn(&K) -> i32) -> BTreeMap<i32, Vec<(K, V)>> {
    let mut out: BTreeMap<i32, Vec<(K, V)>> = BTreeMap::new();
    for (k, v) in map {
        out.entry(day(&k)).or_default().push((k, v));
    }
    for rows in out.values_mut() {
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

/// A (day, user_id, rule).
type Key = (i32, Box<str>, Box<str>);

/// One day of input, sorted: the batches and the order of their rows.
struct DayInput {
    day: i32,
    batches: Vec<RecordBatch>,
    order: Vec<(u32, u32)>,
    /// Rows that came from `events` (the rest are `late` rows).
    events: u64,
}

/// Days after the month that can still change its scores: the longest window
/// of a threshold rule (a task qualifies up to `window_days` after it was
/// published and earns on its publish day), plus a day for the time zone.
pub fn trailing_days(profile: &Profile) -> i32 {
    profile
        .rules
        .iter()
        .filter_map(|r| match r.kind {
            RuleKind::ThresholdDistinct { window_days, .. } => {
                Some(i32::try_from(window_days).unwrap_or(i32::MAX - 1) + 1)
            }
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Recomputes the month's `daily_scores` and replaces its day partitions (see
/// the module documentation). `progress` counts days fed and days written; it
/// may be hidden.
pub fn run(opts: &RescoreOptions, progress: &ProgressBar) -> Result<RescoreSummary> {
    let lake = &opts.lake;
    if !lake.is_dir() {
        return Err(AggregateError::LakeNotFound(lake.clone()));
    }
    // the lateness the lake was ingested with: it decides when an
    // unqualified task is forgotten (the ingest's engine, in order, is the
    // stream's result only under the stream's settings)
    let cfg = match check_profile(lake, &opts.profile)? {
        Some(lateness_days) => EngineConfig {
            lateness_days,
            ..opts.engine
        },
        None => opts.engine,
    };
    let first = day_number(&opts.month.first_day().to_string())?;
    let last = day_number(&opts.month.last_day().to_string())?;
    let feed_end = last.saturating_add(trailing_days(&opts.profile));
    let mut engine = Engine::new(&opts.profile, cfg);
    let offset = engine.offset_seconds();

    let event_days: BTreeMap<i32, Vec<PathBuf>> = day_partitions(&lake.join("events"))?
        .into_iter()
        .filter(|(d, _)| *d <= feed_end)
        .collect();
    let late = late_rows(&lake.join("rejected"), offset, feed_end)?;
    let no_data = || AggregateError::NoData {
        month: opts.month.to_string(),
        lake: lake.clone(),
    };
    // The month's day folders as they are before anything is computed: a
    // change to them meanwhile makes the run give up (step 3).
    let mut tables = [
        Replacement::of(lake, DAILY_SCORES, (first, last))?,
        Replacement::of(lake, DAILY_ACTIVITY, (first, last))?,
    ];
    // A month without events of its own may still have scores: a task
    // published in it earns on its publish day from events of the days
    // after (also when a late event moved its publish day into the month).
    // Nothing to score and nothing to replace is a month the lake does not
    // have (a mistyped --month).
    let had_rows = tables.iter().any(|t| !t.snapshot.is_empty());
    let feeds_month = event_days.range(first..=feed_end).next().is_some()
        || late.range(first..=feed_end).next().is_some();
    if !had_rows && !feeds_month {
        return Err(no_data());
    }

    // the days written, twice (both tables); `feed_days` adds the days fed
    progress.set_length(2 * u64::from(opts.month.days()));
    progress.set_message(format!("scoring {}", opts.month));
    let mut sink = MonthSink {
        first,
        last,
        sums: HashMap::new(),
        activity: HashMap::new(),
    };
    let fed = feed_days(
        &mut engine,
        &event_days,
        late,
        Rows::All,
        &mut sink,
        progress,
    )?;
    let mut summary = RescoreSummary {
        events: fed.events,
        late: fed.late,
        duplicates: fed.duplicates,
        days_fed: fed.days,
        ..RescoreSummary::default()
    };

    summary.points = sink.sums.values().map(|s| s.points).sum();
    let (scores, activity) = sink.into_batches();
    summary.rows = scores.values().map(RecordBatch::num_rows).sum();
    summary.activity_rows = activity.values().map(RecordBatch::num_rows).sum();
    if !had_rows && summary.rows == 0 && summary.activity_rows == 0 {
        return Err(no_data());
    }
    let [scores_table, activity_table] = &mut tables;
    scores_table.new = scores;
    activity_table.new = activity;

    progress.set_message(format!("replacing {}", opts.month));
    let events_dir = lake.join("events");
    let events_unchanged = || -> Result<()> {
        let now: BTreeMap<i32, Vec<PathBuf>> = day_partitions(&events_dir)?
            .into_iter()
            .filter(|(d, _)| *d <= feed_end)
            .collect();
        if now == event_days {
            Ok(())
        } else {
            Err(AggregateError::Changed(format!(
                "events of the lake changed while rescoring {} (is an ingest still writing?); nothing was replaced",
                opts.month
            )))
        }
    };
    summary.days_replaced = replace_month(
        &tables,
        &interrupted_marker(&opts.lake, &opts.month.to_string()),
        (first, last),
        &events_unchanged,
        progress,
    )?;
    progress.finish_and_clear();
    if summary.duplicates > 0 {
        tracing::info!(
            duplicates = summary.duplicates,
            "late rows repeating stored events were counted once"
        );
    }
    Ok(summary)
}

/// Which rows of `events` [`feed_days`] feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows<'a> {
    /// Every row.
    All,
    /// The rows file runs wrote (those without a Kafka partition).
    OfFileRuns,
    /// The rows read from these partitions of this topic, each scored as
    /// read from its partition (the lateness window is per partition).
    OfPartitions {
        topic: &'a str,
        partitions: &'a BTreeSet<i32>,
    },
}

/// What [`feed_days`] fed.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    /// Rows of `events`.
    pub events: u64,
    /// `late` rows of `rejected`.
    pub late: u64,
    /// Rows the engine found to be duplicates.
    pub duplicates: u64,
    /// Days fed.
    pub days: usize,
}

/// Feeds `engine` the `rows` of `event_days` (each day's `events` files)
/// and the `late` rows, one day after the other in event order (`ts`, then
/// `event_id`), and flushes it into `sink` after each day; `progress` gets
/// the days to feed added to its length and counts them. A loader thread
/// reads and sorts the next day while the engine scores this one. In order,
/// no event is late: one that is is an internal error.
pub(crate) fn feed_days(
    engine: &mut Engine,
    event_days: &BTreeMap<i32, Vec<PathBuf>>,
    mut late: BTreeMap<i32, RecordBatch>,
    rows: Rows<'_>,
    sink: &mut impl DeltaSink,
    progress: &ProgressBar,
) -> Result<Fed> {
    let days: BTreeSet<i32> = event_days.keys().chain(late.keys()).copied().collect();
    progress.inc_length(days.len() as u64);
    let mut fed = Fed::default();
    let (tx, rx) = sync_channel::<Result<DayInput>>(1);
    std::thread::scope(|s| -> Result<()> {
        let days = &days;
        s.spawn(move || {
            for &day in days {
                let files = event_days.get(&day).map_or(&[][..], Vec::as_slice);
                let loaded = load_day(day, files, late.remove(&day), rows);
                let failed = loaded.is_err();
                if tx.send(loaded).is_err() || failed {
                    return;
                }
            }
        });
        for input in rx {
            let input = input?;
            let batches = input
                .batches
                .iter()
                .map(EventRows::new)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            // each row's Kafka partition, where rows are scored as read from it
            let partitions: Vec<Option<&Int32Array>> = input
                .batches
                .iter()
                .map(|b| match rows {
                    Rows::OfPartitions { .. } => LineageColumns::of(b).map(|l| l.partition),
                    _ => None,
                })
                .collect();
            for &(b, r) in &input.order {
                let event = batches[b as usize].get(r as usize).ok_or_else(|| {
                    AggregateError::InvalidLake(format!(
                        "events of {} hold a value that is not in events.md (row {r})",
                        format_day(input.day)
                    ))
                })?;
                let source = partitions[b as usize]
                    .filter(|p| p.is_valid(r as usize))
                    .map_or(FILE_SOURCE, |p| p.value(r as usize));
                match engine.process_from(&event, source) {
                    Outcome::Accepted { .. } => {}
                    Outcome::Duplicate => fed.duplicates += 1,
                    Outcome::Late => {
                        return Err(AggregateError::Internal(format!(
                            "an event of {} was late although events are fed in order",
                            format_day(input.day)
                        )));
                    }
                }
            }
            engine.flush(sink);
            fed.events += input.events;
            fed.late += input.order.len() as u64 - input.events;
            fed.days += 1;
            progress.inc(1);
        }
        Ok(())
    })?;
    engine.flush(sink);
    Ok(fed)
}

/// Refuses a profile the lake's ingest state was not built under (another
/// name, time zone, scored role or set of rules), as the ingest would refuse
/// it: each checkpoint of the lake is checked. Gives the longest allowed
/// lateness the checkpoints keep, if there are any.
fn check_profile(lake: &Path, profile: &Profile) -> Result<Option<i32>> {
    let checkpoints = Checkpoint::load_lake(lake)
        .map_err(|e| AggregateError::InvalidLake(format!("reading the checkpoints: {e}")))?;
    let mut lateness = None;
    for (path, ckpt) in checkpoints {
        let cfg = Engine::check_profile(profile, &ckpt.engine).map_err(|e| {
            AggregateError::Profile(format!(
                "{}: {e}; rescore with the profile the lake was scored under (--profile)",
                path.display()
            ))
        })?;
        lateness = lateness.max(Some(cfg.lateness_days));
    }
    Ok(lateness)
}

/// `YYYY-MM-DD` to a day number (days since 1970-01-01).
fn day_number(s: &str) -> Result<i32> {
    parse_day(s).ok_or_else(|| AggregateError::Internal(format!("day {s} out of range")))
}

/// The `day=YYYY-MM-DD` folders of a table with their data files; a missing
/// table has none.
pub(crate) fn day_partitions(table_dir: &Path) -> Result<BTreeMap<i32, Vec<PathBuf>>> {
    let mut out = BTreeMap::new();
    if !table_dir.is_dir() {
        return Ok(out);
    }
    for entry in fs::read_dir(table_dir).context(|| format!("listing {}", table_dir.display()))? {
        let entry = entry.context(|| format!("listing {}", table_dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(day) = name.strip_prefix("day=").and_then(parse_day) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files: Vec<PathBuf> = parquet_files(&entry.path())?
            .into_iter()
            .map(|f| entry.path().join(f))
            .collect();
        if !files.is_empty() {
            out.insert(day, files);
        }
    }
    Ok(out)
}

/// One table's month as rescore replaces it.
struct Replacement {
    /// The table's name (`daily_scores`, `daily_activity`).
    name: &'static str,
    /// The table's folder.
    dir: PathBuf,
    /// The data files of each existing day folder of the month, as they were
    /// before the month was computed.
    snapshot: BTreeMap<i32, BTreeSet<String>>,
    /// The new content of each day with rows (a day left out is emptied).
    new: BTreeMap<i32, RecordBatch>,
}

impl Replacement {
    /// Table `name` of `lake` with its month's data files noted, nothing new yet.
    fn of(lake: &Path, name: &'static str, (first, last): (i32, i32)) -> Result<Replacement> {
        let dir = lake.join(name);
        let mut snapshot = BTreeMap::new();
        for day in first..=last {
            let day_dir = dir.join(format!("day={}", format_day(day)));
            if day_dir.is_dir() {
                snapshot.insert(day, parquet_files(&day_dir)?);
            }
        }
        Ok(Replacement {
            name,
            dir,
            snapshot,
            new: BTreeMap::new(),
        })
    }

    /// Days that get a new content: every day of the month with rows or
    /// with a folder.
    fn days(&self, (first, last): (i32, i32)) -> impl Iterator<Item = i32> + '_ {
        (first..=last).filter(|d| self.new.contains_key(d) || self.snapshot.contains_key(d))
    }
}

/// Reads the `late` rows of `rejected` (every ingest day), decodes their raw
/// bytes again and groups them by event day, up to `feed_end`, as batches of
/// the `events` schema.
fn late_rows(
    rejected_dir: &Path,
    offset: i32,
    feed_end: i32,
) -> Result<BTreeMap<i32, RecordBatch>> {
    let mut builders: BTreeMap<i32, EventBatchBuilder> = BTreeMap::new();
    let late = Reason::Late.as_str();
    for files in day_partitions(rejected_dir)?.into_values() {
        for path in files {
            for batch in read_parquet(&path)? {
                let reason = column(&batch, &path, "reason")?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| bad_type(&path, "reason"))?;
                let raw = column(&batch, &path, "raw")?
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| bad_type(&path, "raw"))?;
                let at = column(&batch, &path, "ingested_at")?
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(|| bad_type(&path, "ingested_at"))?;
                let source = column(&batch, &path, "source")?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| bad_type(&path, "source"))?;
                let partition = column(&batch, &path, "partition")?
                    .as_primitive_opt::<Int32Type>()
                    .ok_or_else(|| bad_type(&path, "partition"))?;
                let offsets = column(&batch, &path, "offset")?
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| bad_type(&path, "offset"))?;
                for i in 0..batch.num_rows() {
                    if reason.is_null(i) || reason.value(i) != late {
                        continue;
                    }
                    // A late row passed validation when it arrived; decode it
                    // with the clock of that moment.
                    let event = huoyue_schemas::decode(raw.value(i), at.value(i)).map_err(|r| {
                        AggregateError::InvalidLake(format!(
                            "{}: a late row does not decode ({})",
                            path.display(),
                            r.reason.as_str()
                        ))
                    })?;
                    let day = day_of(event.ts, offset);
                    if day > feed_end {
                        continue;
                    }
                    builders
                        .entry(day)
                        .or_insert_with(|| EventBatchBuilder::with_capacity(256))
                        .append(
                            &event,
                            Lineage {
                                source: source.value(i),
                                partition: partition.is_valid(i).then(|| partition.value(i)),
                                offset: offsets.is_valid(i).then(|| offsets.value(i)),
                            },
                        );
                }
            }
        }
    }
    Ok(builders
        .into_iter()
        .map(|(day, mut b)| (day, b.finish()))
        .collect())
}

/// A column of a `rejected` batch, by name.
fn column<'a>(batch: &'a RecordBatch, path: &Path, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        AggregateError::InvalidLake(format!("{} has no column {name}", path.display()))
    })
}

fn bad_type(path: &Path, name: &str) -> AggregateError {
    AggregateError::InvalidLake(format!(
        "{}: column {name} has an unexpected type",
        path.display()
    ))
}

/// All batches of a Parquet file; an error names the file.
fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).context(|| format!("opening {}", path.display()))?;
    let read = || -> Result<Vec<RecordBatch>> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(64 * 1024)
            .build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    };
    read().map_err(|e| AggregateError::During {
        context: format!("reading {} (nothing was replaced)", path.display()),
        source: Box::new(e),
    })
}

/// Reads a day's `events` files (and its `late` rows) and sorts the rows in
/// event order: `ts`, then `event_id` as bytes; the `events` rows that
/// `rows` does not select are left out.
fn load_day(
    day: i32,
    files: &[PathBuf],
    late: Option<RecordBatch>,
    rows: Rows<'_>,
) -> Result<DayInput> {
    let mut batches = Vec::new();
    for path in files {
        batches.extend(read_parquet(path)?);
    }
    let of_events = batches.len();
    batches.extend(late);
    let mut keys: Vec<(&TimestampMicrosecondArray, &StringArray)> =
        Vec::with_capacity(batches.len());
    for b in &batches {
        let ts = b
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        let id = b
            .column_by_name("event_id")
            .and_then(|c| c.as_string_opt::<i32>());
        let (Some(ts), Some(id)) = (ts, id) else {
            return Err(AggregateError::InvalidLake(format!(
                "events of {} lack a ts or event_id column of the lake's types",
                format_day(day)
            )));
        };
        keys.push((ts, id));
    }
    let mut order: Vec<(u32, u32)> = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for (b, batch) in batches.iter().enumerate() {
        let all = (0..batch.num_rows()).map(|r| (b as u32, r as u32));
        match rows {
            _ if b >= of_events => order.extend(all),
            Rows::All => order.extend(all),
            Rows::OfFileRuns => match batch.column_by_name("partition") {
                Some(kafka) => order.extend(all.filter(|&(_, r)| kafka.is_null(r as usize))),
                None => order.extend(all),
            },
            Rows::OfPartitions { topic, partitions } => {
                let Some(LineageColumns {
                    source, partition, ..
                }) = LineageColumns::of(batch)
                else {
                    return Err(AggregateError::InvalidLake(format!(
                        "events of {} lack the lineage columns of the lake's types",
                        format_day(day)
                    )));
                };
                order.extend(all.filter(|&(_, r)| {
                    let r = r as usize;
                    partition.is_valid(r)
                        && partitions.contains(&partition.value(r))
                        && source.value(r) == topic
                }));
            }
        }
    }
    let events = order
        .iter()
        .filter(|(b, _)| (*b as usize) < of_events)
        .count() as u64;
    order.sort_unstable_by(|&(ba, ra), &(bb, rb)| {
        let (ta, ia) = keys[ba as usize];
        let (tb, ib) = keys[bb as usize];
        ta.value(ra as usize)
            .cmp(&tb.value(rb as usize))
            .then_with(|| {
                ia.value(ra as usize)
                    .as_bytes()
                    .cmp(ib.value(rb as usize).as_bytes())
            })
    });
    drop(keys);
    Ok(DayInput {
        day,
        batches,
        order,
        events,
    })
}

/// The lineage columns of a lake batch (`events` or `rejected`).
pub(crate) struct LineageColumns<'a> {
    pub source: &'a StringArray,
    pub partition: &'a Int32Array,
    pub offset: &'a Int64Array,
}

impl<'a> LineageColumns<'a> {
    /// Their names: source, partition, offset.
    pub(crate) const NAMES: [&'static str; 3] = ["source", "partition", "offset"];

    /// `batch`'s, if it has them with the lake's types.
    pub(crate) fn of(batch: &'a RecordBatch) -> Option<Self> {
        let [source, partition, offset] = Self::NAMES.map(|c| batch.column_by_name(c));
        Some(LineageColumns {
            source: source?.as_string_opt::<i32>()?,
            partition: partition?.as_primitive_opt::<Int32Type>()?,
            offset: offset?.as_primitive_opt::<Int64Type>()?,
        })
    }
}

/// The file that says a rescore of `month` was interrupted while it swapped
/// the month's days (some re-scored, some not), until a rescore of the month
/// completes: `LAKE/.scratch/rescore-YYYY-MM.interrupted`. The monthly job
/// refuses such a month.
pub fn interrupted_marker(lake: &Path, month: &str) -> PathBuf {
    lake.join(SCRATCH)
        .join(format!("rescore-{month}.interrupted"))
}

/// Writes the new day folders of every table into scratch folders and swaps
/// them in (steps 2–4 of the module documentation). Returns the number of
/// day folders replaced.
fn replace_month(
    tables: &[Replacement],
    marker: &Path,
    month: (i32, i32),
    events_unchanged: &dyn Fn() -> Result<()>,
    progress: &ProgressBar,
) -> Result<usize> {
    let mut table_locks = Vec::with_capacity(tables.len());
    for t in tables {
        fs::create_dir_all(&t.dir).context(|| format!("creating {}", t.dir.display()))?;
        table_locks.push(lock_table(&t.dir).context(|| format!("locking {}", t.dir.display()))?);
        remove_leftovers(&t.dir)
            .context(|| format!("removing the scratch folders of {}", t.dir.display()))?;
    }
    let mut staged: Vec<Staged> = Vec::new();
    let result = stage_and_swap(
        tables,
        marker,
        month,
        events_unchanged,
        progress,
        &mut staged,
    );
    for s in &staged {
        if s.scratch.exists()
            && let Err(e) = fs::remove_dir_all(&s.scratch)
        {
            tracing::warn!(folder = %s.scratch.display(), error = %e, "cannot remove a rescore scratch folder");
        }
    }
    result.map(|()| staged.len())
}

/// A day folder whose replacement is written.
struct Staged<'a> {
    table: &'a Replacement,
    day: i32,
    dir: PathBuf,
    scratch: PathBuf,
}

/// `marker`: [`interrupted_marker`], present while the swaps run.
fn stage_and_swap<'a>(
    tables: &'a [Replacement],
    marker: &Path,
    month: (i32, i32),
    events_unchanged: &dyn Fn() -> Result<()>,
    progress: &ProgressBar,
    staged: &mut Vec<Staged<'a>>,
) -> Result<()> {
    let empty = BTreeSet::new();
    // Step 2: every new file, fsynced, in hidden scratch folders.
    for table in tables {
        for day in table.days(month) {
            let name = format!("day={}", format_day(day));
            let scratch = scratch_root(&table.dir)
                .context(|| format!("creating the scratch folder of {}", table.dir.display()))?
                .join(format!("rescore-{name}"));
            fs::create_dir(&scratch).context(|| format!("creating {}", scratch.display()))?;
            staged.push(Staged {
                table,
                day,
                dir: table.dir.join(&name),
                scratch: scratch.clone(),
            });
            if let Some(batch) = table.new.get(&day) {
                let old = table.snapshot.get(&day).unwrap_or(&empty);
                let file_name = compacted_name(old).replacen("compacted-", "rescore-", 1);
                let path = scratch.join(file_name);
                let written = (|| {
                    let file = File::create(&path).context(|| "creating".into())?;
                    let mut writer =
                        ArrowWriter::try_new(file, batch.schema(), Some(writer_properties()))?;
                    writer.write(batch)?;
                    writer.into_inner()?.sync_all().context(|| "syncing".into())
                })();
                written.map_err(|e: AggregateError| AggregateError::During {
                    context: format!("writing {} (nothing was replaced)", path.display()),
                    source: Box::new(e),
                })?;
            }
            fsync_tree(&scratch).context(|| format!("syncing {}", scratch.display()))?;
            progress.inc(1);
        }
    }
    // Step 3: every day's lock, table by table in day order, and the check
    // that nobody changed the month meanwhile.
    let mut locks = Vec::with_capacity(staged.len());
    // the tables given a day folder, each synced once
    let mut created: Vec<&Path> = Vec::new();
    for s in staged.iter() {
        if !s.dir.is_dir() {
            fs::create_dir_all(&s.dir).context(|| format!("creating {}", s.dir.display()))?;
            if !created.contains(&s.table.dir.as_path()) {
                created.push(&s.table.dir);
            }
        }
        locks.push(
            PartitionLock::acquire(&s.dir).context(|| format!("locking {}", s.dir.display()))?,
        );
    }
    for dir in created {
        sync_dir(dir).context(|| format!("syncing {}", dir.display()))?;
    }
    for s in staged.iter() {
        let now = parquet_files(&s.dir)?;
        let before = s.table.snapshot.get(&s.day).unwrap_or(&empty);
        let writing = has_temporary_files(&s.dir)?;
        if &now != before || writing {
            return Err(AggregateError::Changed(format!(
                "{} of {} changed while rescoring (is an ingest still writing into the month?); nothing was replaced",
                s.table.name,
                format_day(s.day)
            )));
        }
    }
    // The events read must still be all there is: an events file published
    // after the listing would have its deltas replaced without being counted.
    events_unchanged()?;
    // Step 4: the swaps, undone if one fails. The marker stays if they are
    // neither all done nor all undone (a crash, a failed undo).
    let mark = |create: bool| -> Result<()> {
        let done = if create {
            File::create(marker).and_then(|f| f.sync_all())
        } else {
            match fs::remove_file(marker) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        done.and_then(|()| sync_dir(parent_dir(marker)))
            .context(|| {
                format!(
                    "{} {}",
                    if create { "creating" } else { "removing" },
                    marker.display()
                )
            })
    };
    mark(true)?;
    for (i, s) in staged.iter().enumerate() {
        let swapped = link_lock(&s.dir, &s.scratch).and_then(|()| {
            sync_dir(&s.scratch)?;
            exchange(&s.dir, &s.scratch)
        });
        if let Err(e) = swapped {
            let mut undone = true;
            for done in staged[..i].iter().rev() {
                if let Err(undo) = exchange(&done.dir, &done.scratch) {
                    tracing::error!(day = %format_day(done.day), error = %undo, "cannot swap a rescored day back");
                    undone = false;
                }
            }
            for t in tables {
                let _ = sync_dir(&t.dir);
            }
            if undone {
                let _ = mark(false);
            }
            return Err(AggregateError::Io {
                context: format!(
                    "swapping {} (days swapped before were swapped back)",
                    s.dir.display()
                ),
                source: e,
            });
        }
    }
    for t in tables {
        sync_dir(&t.dir).context(|| format!("syncing {}", t.dir.display()))?;
        scratch_root(&t.dir)
            .and_then(|root| sync_dir(&root))
            .context(|| format!("syncing the scratch folder of {}", t.dir.display()))?;
    }
    mark(false)?;
    // Temporary files that a writer created in an old folder around its swap
    // move over before the locks are released (see compaction).
    std::thread::sleep(SWAP_GRACE);
    for s in staged.iter() {
        let old = s.table.snapshot.get(&s.day).unwrap_or(&empty);
        link_others(&s.scratch, &s.dir, old)?;
        sync_dir(&s.dir).context(|| format!("syncing {}", s.dir.display()))?;
    }
    drop(locks);
    Ok(())
}

/// Whether a partition folder holds a writer's temporary file (`.*.tmp`).
fn has_temporary_files(dir: &Path) -> Result<bool> {
    for e in fs::read_dir(dir).context(|| format!("listing {}", dir.display()))? {
        let e = e.context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_window_sets_the_trailing_days() {
        let p = Profile::builtin(huoyue_schemas::DEFAULT_PROFILE).unwrap();
        assert_eq!(trailing_days(&p), 31);
        let mut no_tasks = p.clone();
        no_tasks
            .rules
            .retain(|r| !matches!(r.kind, RuleKind::ThresholdDistinct { .. }));
        assert_eq!(trailing_days(&no_tasks), 0);
    }

    #[test]
    fn the_sink_keeps_the_month_and_the_first_school() {
        let mut sink = MonthSink {
            first: 10,
            last: 12,
            sums: HashMap::new(),
            activity: HashMap::new(),
        };
        sink.score(9, "t1", "s1", "login", 1, 1);
        sink.score(10, "t1", "s1", "login", 1, 1);
        sink.score(10, "t1", "s2", "login", 1, 1);
        sink.score(12, "t1", "s2", "task", 5, 0);
        sink.score(13, "t1", "s2", "task", 5, 0);
        assert_eq!(sink.sums.len(), 2);
        let s = &sink.sums[&(10, "t1".into(), "login".into())];
        assert_eq!((&*s.school_id, s.points, s.events), ("s1", 2, 2));

        let row = |day, school_id, logins| ActivityRow {
            day,
            user_id: "t1",
            role: Role::Teacher,
            school_id,
            logins,
            deep_actions: 1,
            registers: 0,
            events: logins + 1,
        };
        sink.activity(&row(9, "s1", 1));
        sink.activity(&row(10, "s1", 2));
        sink.activity(&row(10, "s2", 1));
        sink.activity(&row(13, "s2", 1));
        let (scores, activity) = sink.into_batches();
        assert_eq!(scores.keys().copied().collect::<Vec<_>>(), [10, 12]);
        assert_eq!(activity.keys().copied().collect::<Vec<_>>(), [10]);
        let a = &activity[&10];
        assert_eq!(a.num_rows(), 1);
        let col = |name: &str| a.column_by_name(name).unwrap().clone();
        assert_eq!(col("school_id").as_string::<i32>().value(0), "s1");
        assert_eq!(col("role").as_string::<i32>().value(0), "teacher");
        let ints = |name: &str| col(name).as_primitive::<Int64Type>().value(0);
        assert_eq!(
            [ints("logins"), ints("deep_actions"), ints("events")],
            [3, 2, 5]
        );
    }
}
