//! Compaction: sums are kept, one file remains, and a partition can be
//! compacted while a writer keeps publishing into it and a reader keeps
//! summing it.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use huoyue_aggregate::compact::{self, CompactScope, CompactTable, PartitionOutcome};
use huoyue_aggregate::month::Month;
use huoyue_ingest::lake_writer::publish::publish_file;

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.ends_with(".parquet") && !n.starts_with('.')
        })
        .collect();
    v.sort();
    v
}

/// Σ of each Int64 column per key (the string columns joined), over a folder.
fn sums(dir: &Path, keys: &[&str], values: &[&str]) -> BTreeMap<String, Vec<i64>> {
    let b = read_dir_batch(dir);
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in 0..b.num_rows() {
        let key = keys
            .iter()
            .map(|k| cell(&b, k, r))
            .collect::<Vec<_>>()
            .join("|");
        let e = out.entry(key).or_insert_with(|| vec![0; values.len()]);
        for (i, v) in values.iter().enumerate() {
            e[i] += cell(&b, v, r).parse::<i64>().unwrap();
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn compaction_keeps_the_sums_and_leaves_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let scores = lake.join("daily_scores/day=2026-11-05");
    let activity = lake.join("daily_activity/day=2026-11-07");
    let score_keys = ["user_id", "school_id", "rule"];
    let activity_keys = ["user_id", "role", "school_id"];
    let counts = ["logins", "deep_actions", "registers", "events"];
    let before_scores = sums(&scores, &score_keys, &["points", "events"]);
    let before_activity = sums(&activity, &activity_keys, &counts);
    assert!(data_files(&scores).len() > 1 && data_files(&activity).len() > 1);

    // What crashed compactions left: old files swapped out into the lake's
    // scratch folder, and (an older release) a scratch folder inside the
    // table, which a reader globbing `daily_scores/*/*.parquet` counted.
    let left = [
        lake.join(".scratch/daily_scores/compact-day=2026-11-01"),
        lake.join("daily_scores/.compact-day=2026-11-02"),
    ];
    for d in &left {
        fs::create_dir_all(d).unwrap();
        fs::copy(&data_files(&scores)[0], d.join("old.parquet")).unwrap();
    }

    let rt = runtime();
    let s = rt
        .block_on(compact::run(
            lake,
            CompactTable::DailyScores,
            CompactScope::Month(Month::parse("2026-11").unwrap()),
        ))
        .unwrap();
    assert!(s.compacted >= 1, "{s:?}");
    for d in &left {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert_eq!(data_files(&scores).len(), 1);
    assert_eq!(
        sums(&scores, &score_keys, &["points", "events"]),
        before_scores
    );
    // ty's +3 and −3 became one row with 0 points (the sums are kept).
    let b = read_dir_batch(&scores);
    assert_eq!(b.num_rows(), before_scores.len());

    let out = run_bin(&[
        "compact",
        "--lake",
        lake.to_str().unwrap(),
        "--table",
        "daily_activity",
        "--day",
        "2026-11-07",
    ]);
    assert!(out.0, "{}", out.2);
    assert_eq!(data_files(&activity).len(), 1);
    assert_eq!(sums(&activity, &activity_keys, &counts), before_activity);
    // Nothing left behind but the lock file: no scratch folder in the table
    // (where a reader globbing its files would see it) nor in the lake's.
    let leftovers: Vec<_> = fs::read_dir(lake.join("daily_scores"))
        .unwrap()
        .chain(fs::read_dir(lake.join(".scratch/daily_scores")).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("day=") && n != ".compact.lock")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A partition with one file is skipped.
    let again = rt
        .block_on(compact::compact_partition(
            &lake.join("daily_scores"),
            "day=2026-11-05",
            CompactTable::DailyScores,
        ))
        .unwrap();
    assert_eq!(again, PartitionOutcome::Skipped);
}

/// A partition that cannot be compacted (a file that does not read) is left
/// as it was and named, and the others are compacted all the same.
#[test]
fn a_bad_partition_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let bad = lake.join("daily_scores/day=2026-11-02");
    let good = lake.join("daily_scores/day=2026-11-05");
    fs::write(bad.join("b.parquet"), b"not parquet").unwrap();
    let bad_files = data_files(&bad);
    assert!(bad_files.len() > 1);
    assert!(data_files(&good).len() > 1);

    let (ok, stdout, stderr) = run_bin(&[
        "compact",
        "--lake",
        lake.to_str().unwrap(),
        "--month",
        "2026-11",
    ]);
    assert!(!ok);
    assert!(stdout.contains(", 1 failed"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let bad_file = bad.join("b.parquet");
    assert!(
        stderr.contains(&format!("compacting {} (left as it was)", bad.display()))
            && stderr.contains(&format!(" {}", bad_file.display()))
            && !stderr.contains("Parquet error: Parquet error"),
        "{stderr}"
    );
    assert_eq!(data_files(&bad), bad_files);
    assert_eq!(data_files(&good).len(), 1);
}

#[test]
fn monthly_output_is_the_same_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let before = (
        read_month(lake, "teacher_monthly", "2026-11"),
        read_month(lake, "school_monthly", "2026-11"),
    );
    for table in ["daily_scores", "daily_activity"] {
        let out = run_bin(&[
            "compact",
            "--lake",
            lake.to_str().unwrap(),
            "--table",
            table,
        ]);
        assert!(out.0, "{}", out.2);
    }
    monthly(lake, "2026-11");
    assert_eq!(read_month(lake, "teacher_monthly", "2026-11"), before.0);
    assert_eq!(read_month(lake, "school_monthly", "2026-11"), before.1);
}

#[test]
fn events_are_concatenated() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let part = lake.join("events/day=2026-11-01");
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("duration_s", DataType::Int64, true),
    ]));
    for f in 0..3 {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![format!("e{f}a"), format!("e{f}b")])),
                Arc::new(Int64Array::from(vec![Some(f), None])),
            ],
        )
        .unwrap();
        write_file(&part, &format!("f{f}"), &b);
    }
    let out = run_bin(&[
        "compact",
        "--lake",
        lake.to_str().unwrap(),
        "--table",
        "events",
        "--day",
        "2026-11-01",
    ]);
    assert!(out.0, "{}", out.2);
    assert_eq!(data_files(&part).len(), 1);
    let b = read_dir_batch(&part);
    assert_eq!(b.num_rows(), 6);
    let mut ids: Vec<String> = (0..6).map(|r| cell(&b, "event_id", r)).collect();
    ids.sort();
    assert_eq!(ids, ["e0a", "e0b", "e1a", "e1b", "e2a", "e2b"]);
    assert_eq!(b.column(1).null_count(), 3);
}

/// Sum of `points` over the partition as a reader sees it: list the folder,
/// open each file by path. A file that vanished (the folder was swapped
/// between listing and opening) makes the read invalid: None, retry.
fn read_total(dir: &Path) -> Option<i64> {
    let mut total = 0;
    for path in data_files(dir) {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => panic!("{e}"),
        };
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let p = batch
                .column_by_name("points")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            total += p.iter().map(|v| v.unwrap_or(0)).sum::<i64>();
        }
    }
    Some(total)
}

#[test]
fn compaction_races_a_writer_and_a_reader() {
    const FILES: i64 = 250;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_path_buf();
    let table_dir = lake.join("daily_scores");
    let part = table_dir.join("day=2026-11-01");
    fs::create_dir_all(&part).unwrap();

    // Publisher: adds a file's points to `attempted` before publishing it and
    // to `done` after, so that any read satisfies done(start) ≤ total ≤
    // attempted(end).
    let attempted = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicI64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let compactions = Arc::new(AtomicUsize::new(0));

    let writer = {
        let (part, attempted, done, finished) = (
            part.clone(),
            attempted.clone(),
            done.clone(),
            finished.clone(),
        );
        std::thread::spawn(move || {
            let schema = Arc::new(Schema::new(vec![
                Field::new("user_id", DataType::Utf8, false),
                Field::new("school_id", DataType::Utf8, false),
                Field::new("rule", DataType::Utf8, false),
                Field::new("points", DataType::Int64, false),
                Field::new("events", DataType::Int64, false),
            ]));
            for i in 0..FILES {
                let pts = i % 7 + 1;
                let user = format!("t{}", i % 5);
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec![user.as_str(), user.as_str()])),
                        Arc::new(StringArray::from(vec![S1, S1])),
                        Arc::new(StringArray::from(vec!["teach", "login"])),
                        Arc::new(Int64Array::from(vec![pts, 1])),
                        Arc::new(Int64Array::from(vec![1, 1])),
                    ],
                )
                .unwrap();
                // The temporary file lives in the partition folder itself
                // (lake-layout.md), which compaction swaps: it must carry it.
                let tmp = part.join(format!(".f{i:04}.tmp"));
                let file = File::create(&tmp).unwrap();
                let mut w = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
                w.write(&batch).unwrap();
                w.into_inner().unwrap().sync_all().unwrap();
                attempted.fetch_add(pts + 1, Ordering::SeqCst);
                publish_file(&tmp, &part.join(format!("f{i:04}.parquet"))).unwrap();
                done.fetch_add(pts + 1, Ordering::SeqCst);
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            finished.store(true, Ordering::SeqCst);
        })
    };

    let compactor = {
        let (table_dir, finished, compactions) =
            (table_dir.clone(), finished.clone(), compactions.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            while !finished.load(Ordering::SeqCst) {
                let outcome = rt
                    .block_on(compact::compact_partition(
                        &table_dir,
                        "day=2026-11-01",
                        CompactTable::DailyScores,
                    ))
                    .unwrap();
                if matches!(outcome, PartitionOutcome::Compacted { .. }) {
                    compactions.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let reader = {
        let (part, attempted, done, finished) = (
            part.clone(),
            attempted.clone(),
            done.clone(),
            finished.clone(),
        );
        std::thread::spawn(move || {
            let (mut reads, mut retries, mut last) = (0, 0, 0i64);
            while !finished.load(Ordering::SeqCst) {
                let lower = done.load(Ordering::SeqCst);
                let Some(total) = read_total(&part) else {
                    retries += 1;
                    continue;
                };
                let upper = attempted.load(Ordering::SeqCst);
                assert!(
                    total >= lower,
                    "a gap: read {total}, but {lower} was published before the read"
                );
                assert!(
                    total <= upper,
                    "a double count: read {total}, at most {upper} published"
                );
                assert!(total >= last, "went backwards: {last} then {total}");
                last = total;
                reads += 1;
            }
            (reads, retries)
        })
    };

    writer.join().unwrap();
    compactor.join().unwrap();
    let (reads, _retries) = reader.join().unwrap();
    assert!(reads > 0);
    assert!(
        compactions.load(Ordering::SeqCst) > 0,
        "compaction never ran concurrently"
    );

    let total = done.load(Ordering::SeqCst);
    assert_eq!(total, attempted.load(Ordering::SeqCst));
    runtime()
        .block_on(compact::compact_partition(
            &table_dir,
            "day=2026-11-01",
            CompactTable::DailyScores,
        ))
        .unwrap();
    assert_eq!(read_total(&part), Some(total));
    assert_eq!(data_files(&part).len(), 1);
    // No temporary file was lost or left behind.
    let stray: Vec<_> = fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Runs the ingest's file mode (its library, as `huoyue-ingest --file` runs
/// it) over the conformance events into `lake`, flushing often.
fn ingest_conformance(lake: &Path, chunk_bytes: usize, flush_rows: usize) {
    let events = fs::read(manifest_dir().join("../testdata/conformance/events.ndjson")).unwrap();
    ingest_with(lake, events, chunk_bytes, flush_rows, 1);
}

/// Σ per key over every `day=` folder of a table, keyed by "day|key".
fn table_sums(table: &Path, keys: &[&str], values: &[&str]) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    let mut days: Vec<PathBuf> = fs::read_dir(table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("day="))
        .collect();
    days.sort();
    for d in days {
        if data_files(&d).is_empty() {
            continue;
        }
        let day = d.file_name().unwrap().to_str().unwrap().to_string();
        for (k, v) in sums(&d, keys, values) {
            out.insert(format!("{day}|{k}"), v);
        }
    }
    out
}

#[test]
fn compaction_races_a_running_file_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet");
    let raced = dir.path().join("raced");
    // Small chunks and flushes: the ingest keeps publishing into the same
    // day partitions for the whole run.
    ingest_conformance(&quiet, 16 << 10, 300);

    let finished = Arc::new(AtomicBool::new(false));
    let compacted = Arc::new(AtomicUsize::new(0));
    let compactor = {
        let (raced, finished, compacted) = (raced.clone(), finished.clone(), compacted.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            while !finished.load(Ordering::SeqCst) {
                for table in [
                    CompactTable::DailyScores,
                    CompactTable::DailyActivity,
                    CompactTable::Events,
                ] {
                    if !raced.join(table.name()).is_dir() {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let s = rt
                        .block_on(compact::run(&raced, table, CompactScope::All))
                        .unwrap();
                    compacted.fetch_add(s.compacted, Ordering::SeqCst);
                }
            }
        })
    };
    ingest_conformance(&raced, 16 << 10, 300);
    finished.store(true, Ordering::SeqCst);
    compactor.join().unwrap();
    assert!(
        compacted.load(Ordering::SeqCst) > 0,
        "compaction never ran while the ingest wrote"
    );

    let score_keys = ["user_id", "rule"];
    let score_values = ["points", "events"];
    assert_eq!(
        table_sums(&raced.join("daily_scores"), &score_keys, &score_values),
        table_sums(&quiet.join("daily_scores"), &score_keys, &score_values)
    );
    let activity_keys = ["user_id", "role"];
    let activity_values = ["logins", "deep_actions", "registers", "events"];
    assert_eq!(
        table_sums(
            &raced.join("daily_activity"),
            &activity_keys,
            &activity_values
        ),
        table_sums(
            &quiet.join("daily_activity"),
            &activity_keys,
            &activity_values
        )
    );
    let event_count = |lake: &Path| -> usize {
        fs::read_dir(lake.join("events"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|d| d.is_dir() && !data_files(d).is_empty())
            .map(|d| read_dir_batch(&d).num_rows())
            .sum()
    };
    assert_eq!(event_count(&raced), event_count(&quiet));
    // No writer's temporary file was lost or left behind.
    for table in ["daily_scores", "daily_activity", "events"] {
        for d in fs::read_dir(raced.join(table)).unwrap() {
            let d = d.unwrap().path();
            if !d.is_dir() {
                continue;
            }
            assert!(
                !d.file_name().unwrap().to_str().unwrap().starts_with('.'),
                "scratch folder left: {}",
                d.display()
            );
            for f in fs::read_dir(&d).unwrap() {
                let n = f.unwrap().file_name().into_string().unwrap();
                assert!(!n.ends_with(".tmp"), "{}/{n}", d.display());
            }
        }
    }
}

/// The monthly job reads while compaction swaps partitions (a file it listed
/// can vanish before it opens it): it reads again from a fresh listing
/// instead of failing. (Every run failed when compaction ran throughout.)
#[test]
fn monthly_reads_again_when_compaction_swaps_a_file_away() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest_conformance(&lake, 16 << 10, 300);
    common::copy_conformance_dims(&lake);
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let compactor = {
        let (lake, stop, swaps) = (lake.clone(), stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for table in [CompactTable::DailyScores, CompactTable::DailyActivity] {
                    let table_dir = lake.join(table.name());
                    for day in Month::parse("2026-09").unwrap().each_day() {
                        let part = format!("day={day}");
                        let files = data_files(&table_dir.join(&part));
                        let Some(first) = files.first() else { continue };
                        // a new delta file (the same rows again) gives
                        // compaction something to swap
                        n += 1;
                        let tmp = table_dir.join(&part).join(format!(".extra-{n}.tmp"));
                        fs::copy(first, &tmp).unwrap();
                        publish_file(
                            &tmp,
                            &table_dir.join(&part).join(format!("extra-{n}.parquet")),
                        )
                        .unwrap();
                        if let PartitionOutcome::Compacted { .. } = rt
                            .block_on(compact::compact_partition(&table_dir, &part, table))
                            .unwrap()
                        {
                            swaps.fetch_add(1, Ordering::SeqCst);
                        }
                        // a swap every 50 ms or so: a read of the month
                        // meets one, the read again a moment later not
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
    };
    for _ in 0..6 {
        monthly(&lake, "2026-09");
    }
    stop.store(true, Ordering::SeqCst);
    compactor.join().unwrap();
    assert!(swaps.load(Ordering::SeqCst) > 10, "too few swaps to race");
}

/// `deploy/huoyue-compact-recent`, as the CronJob runs it (`sh`, the real
/// `huoyue-aggregate` on the PATH): each table's partitions of the days it
/// covers end with one file and the same sums; the days before are left as
/// they were.
#[test]
fn the_nightly_compaction_script_compacts_the_recent_days() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ingest_conformance(lake, 16 << 10, 300);
    let score_keys = ["user_id", "school_id", "rule"];
    let activity_keys = ["user_id", "role", "school_id"];
    let counts = ["logins", "deep_actions", "registers", "events"];
    let scores = table_sums(
        &lake.join("daily_scores"),
        &score_keys,
        &["points", "events"],
    );
    let activity = table_sums(&lake.join("daily_activity"), &activity_keys, &counts);
    let events = |day: &str| read_dir_batch(&lake.join("events").join(day)).num_rows();
    let files = |table: &str, day: &str| data_files(&lake.join(table).join(day)).len();
    let events_0930 = events("day=2026-09-30");
    assert!(files("events", "day=2026-09-30") > 1);
    assert!(files("daily_scores", "day=2026-09-21") > 1);
    let left_alone = files("daily_scores", "day=2026-09-10");
    assert!(left_alone > 1);

    // the 20 days before 2026-10-01: 2026-09-11 to 2026-09-30
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_huoyue-aggregate"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .arg(manifest_dir().join("../deploy/huoyue-compact-recent"))
        .args([lake.to_str().unwrap(), "20", "2026-10-01"])
        .env("PATH", path)
        .env("TZ", "Asia/Shanghai")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // one line per table and day
    assert_eq!(stdout.lines().count(), 20 * 4, "{stdout}");
    for day in ["day=2026-09-11", "day=2026-09-21", "day=2026-09-30"] {
        for table in ["daily_scores", "daily_activity", "events"] {
            assert_eq!(files(table, day), 1, "{table}/{day}");
        }
    }
    assert_eq!(files("daily_scores", "day=2026-09-10"), left_alone);
    assert_eq!(events("day=2026-09-30"), events_0930);
    assert_eq!(
        table_sums(
            &lake.join("daily_scores"),
            &score_keys,
            &["points", "events"]
        ),
        scores
    );
    assert_eq!(
        table_sums(&lake.join("daily_activity"), &activity_keys, &counts),
        activity
    );
}
