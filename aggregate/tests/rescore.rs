//! `rescore` against the stream: the conformance events ingested by the
//! ingest's file mode (its library, as `huoyue-ingest --file` runs it), then a
//! month re-scored from the lake must give the same sums per (day, user,
//! rule); events that were `late` in the stream are counted by the rescore.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use huoyue_aggregate::month::Month;
use huoyue_aggregate::rescore::{self, RescoreOptions};
use huoyue_ingest::engine::EngineConfig;
use huoyue_ingest::pipeline::file::{FileState, STATE, state_dir};
use huoyue_schemas::{DEFAULT_PROFILE, Profile};
use indicatif::ProgressBar;

use common::{ingest, manifest_dir, run_bin};

/// (day, user_id, rule) → (points, events), summed over the delta rows.
type Sums = BTreeMap<(String, String, String), (i64, i64)>;

fn conformance_events() -> Vec<u8> {
    fs::read(manifest_dir().join("../testdata/conformance/events.ndjson")).unwrap()
}

/// Runs the ingest's file mode over `ndjson` into `lake`, with small chunks
/// and flushes so that the stream writes many delta files and corrections.
fn rescore(lake: &Path, month: &str) -> rescore::RescoreSummary {
    let opts = RescoreOptions {
        lake: lake.to_path_buf(),
        month: Month::parse(month).unwrap(),
        profile: Profile::builtin(DEFAULT_PROFILE).unwrap(),
        engine: EngineConfig::default(),
    };
    rescore::run(&opts, &ProgressBar::hidden()).unwrap()
}

/// `huoyue-aggregate COMMAND --lake LAKE --month 2026-09`: whether it
/// succeeded, its standard output and its standard error.
fn september(command: &str, lake: &Path) -> (bool, String, String) {
    run_bin(&[
        command,
        "--lake",
        lake.to_str().unwrap(),
        "--month",
        "2026-09",
    ])
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.ends_with(".parquet") && !n.starts_with('.') && !n.starts_with('_')
            })
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{e}"),
    };
    v.sort();
    v
}

fn day_folders(table: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fs::read_dir(table)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let n = e.file_name().into_string().unwrap();
            n.strip_prefix("day=").map(|d| (d.to_string(), e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Column `name` of `batch`, of strings.
fn strings(batch: &RecordBatch, name: &str) -> StringArray {
    batch
        .column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .clone()
}

/// Column `name` of `batch`, of Int64s.
fn ints(batch: &RecordBatch, name: &str) -> Int64Array {
    let column = batch.column_by_name(name).unwrap();
    column
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .clone()
}

/// Sums of one day folder, or None when a listed file vanished (a swap
/// between listing and opening: the read must be retried).
fn day_sums(day: &str, dir: &Path, into: &mut Sums) -> Option<()> {
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
            let (s, i) = (|n| strings(&batch, n), |n| ints(&batch, n));
            let (user, rule, points, events) = (s("user_id"), s("rule"), i("points"), i("events"));
            for r in 0..batch.num_rows() {
                let e = into
                    .entry((
                        day.to_string(),
                        user.value(r).to_string(),
                        rule.value(r).to_string(),
                    ))
                    .or_default();
                e.0 += points.value(r);
                e.1 += events.value(r);
            }
        }
    }
    Some(())
}

/// The sums of every (day, user, rule) of `daily_scores` whose day starts
/// with `prefix`, without the ones that sum to nothing.
fn sums(lake: &Path, prefix: &str) -> Sums {
    let mut out = Sums::new();
    for (day, dir) in day_folders(&lake.join("daily_scores")) {
        if day.starts_with(prefix) {
            day_sums(&day, &dir, &mut out).expect("no concurrent swap");
        }
    }
    out.retain(|_, v| *v != (0, 0));
    out
}

/// (day, user_id, role, school_id) → (logins, deep_actions, registers,
/// events), summed over the `daily_activity` rows.
type Activity = BTreeMap<(String, String, String, String), [i64; 4]>;

/// The `daily_activity` sums of the days starting with `prefix`, without
/// the ones that sum to nothing.
fn activity(lake: &Path, prefix: &str) -> Activity {
    let mut out = Activity::new();
    for (day, batch) in batches(lake, "daily_activity", prefix) {
        let (s, i) = (|n| strings(&batch, n), |n| ints(&batch, n));
        let (user, role, school) = (s("user_id"), s("role"), s("school_id"));
        let counts = ["logins", "deep_actions", "registers", "events"].map(i);
        for r in 0..batch.num_rows() {
            let sum = out
                .entry((
                    day.clone(),
                    user.value(r).into(),
                    role.value(r).into(),
                    school.value(r).into(),
                ))
                .or_default();
            for (v, c) in sum.iter_mut().zip(&counts) {
                *v += c.value(r);
            }
        }
    }
    out.retain(|_, v| *v != [0; 4]);
    out
}

/// Every batch of `table`'s files of the days starting with `prefix`, with
/// its day.
fn batches(lake: &Path, table: &str, prefix: &str) -> Vec<(String, RecordBatch)> {
    let mut out = Vec::new();
    for (day, dir) in day_folders(&lake.join(table)) {
        if !day.starts_with(prefix) {
            continue;
        }
        for path in data_files(&dir) {
            for batch in ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap()
            {
                out.push((day.clone(), batch.unwrap()));
            }
        }
    }
    out
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// The conformance case's expected scores of September (non-zero sums).
fn expected_september() -> BTreeMap<(String, String, String), i64> {
    let text = fs::read_to_string(
        manifest_dir().join("../testdata/conformance/expected_daily_scores.csv"),
    )
    .unwrap();
    text.lines()
        .skip(1)
        .filter(|l| l.starts_with("2026-09"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].into(), f[1].into(), f[2].into()),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

fn points_only(s: &Sums) -> BTreeMap<(String, String, String), i64> {
    s.iter()
        .filter(|(_, v)| v.0 != 0)
        .map(|(k, v)| (k.clone(), v.0))
        .collect()
}

#[test]
fn rescore_equals_the_streamed_result() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ingest(lake, conformance_events());
    let streamed = sums(lake, "");
    let streamed_activity = activity(lake, "");
    assert_eq!(points_only(&sums(lake, "2026-09")), expected_september());
    let august_before = tree(&lake.join("daily_scores"))
        .into_iter()
        .filter(|(p, _)| p.to_str().unwrap().contains("day=2026-08"))
        .collect::<BTreeMap<_, _>>();
    let files_before: usize = day_folders(&lake.join("daily_scores"))
        .iter()
        .filter(|(d, _)| d.starts_with("2026-09"))
        .map(|(_, p)| data_files(p).len())
        .sum();

    let s = rescore(lake, "2026-09");
    assert_eq!(
        sums(lake, ""),
        streamed,
        "rescored sums differ from the stream's"
    );
    assert_eq!(
        activity(lake, ""),
        streamed_activity,
        "rescored activity differs from the stream's"
    );
    // one row per (day, user) of the month's activity
    assert_eq!(
        s.activity_rows,
        streamed_activity
            .keys()
            .filter(|k| k.0.starts_with("2026-09"))
            .count(),
        "{s:?}"
    );
    assert_eq!(points_only(&sums(lake, "2026-09")), expected_september());
    assert!(s.events > 12_000 && s.late == 0, "{s:?}");
    assert_eq!(s.days_replaced, 60, "30 days of two tables");
    assert_eq!(
        s.points,
        expected_september().values().sum::<i64>(),
        "{s:?}"
    );
    // One file per day now, and the stream had written more.
    let mut files_after = 0;
    for (day, p) in day_folders(&lake.join("daily_scores")) {
        if day.starts_with("2026-09") {
            let n = data_files(&p).len();
            assert!(n <= 1, "{day}: {n} files");
            files_after += n;
        }
    }
    assert!(files_before > files_after, "{files_before} → {files_after}");
    // August is untouched, no scratch folder is left.
    let august_after = tree(&lake.join("daily_scores"))
        .into_iter()
        .filter(|(p, _)| p.to_str().unwrap().contains("day=2026-08"))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(august_before, august_after);
    let hidden: Vec<String> = fs::read_dir(lake.join("daily_scores"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".rescore"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // Idempotent.
    rescore(lake, "2026-09");
    assert_eq!(sums(lake, ""), streamed);
    assert_eq!(activity(lake, ""), streamed_activity);
    // August can be re-scored too (it only has its second half).
    rescore(lake, "2026-08");
    assert_eq!(sums(lake, ""), streamed);
    assert_eq!(activity(lake, ""), streamed_activity);
}

/// Moves the `login` events of teachers on 1–9 September to the end of the
/// input: the stream has seen the end of the month by then, so they are late.
fn with_late_logins(ndjson: &[u8]) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut moved = Vec::new();
    for line in ndjson.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let late = serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| {
            v["action"] == "login"
                && v["role"] == "teacher"
                && v["ts"].as_str().is_some_and(|t| t.starts_with("2026-09-0"))
        });
        let to = if late { &mut moved } else { &mut kept };
        to.extend_from_slice(line);
        to.push(b'\n');
    }
    let n = moved.iter().filter(|&&b| b == b'\n').count();
    kept.extend_from_slice(&moved);
    (kept, n)
}

fn late_rows(lake: &Path) -> usize {
    batches(lake, "rejected", "")
        .iter()
        .map(|(_, batch)| {
            let reason = batch.column_by_name("reason").unwrap().as_string::<i32>();
            (0..batch.num_rows())
                .filter(|&i| reason.value(i) == "late")
                .count()
        })
        .sum()
}

/// A rescore interrupted among its swaps leaves the month part re-scored: its
/// marker makes `monthly` refuse the month, naming the command to run, until
/// a rescore of the month completes. A completed rescore leaves no scratch.
#[test]
fn monthly_refuses_a_month_whose_rescore_was_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, conformance_events());
    common::copy_conformance_dims(&lake);
    // what a crash among the swaps leaves
    let marker = rescore::interrupted_marker(&lake, "2026-09");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    File::create(&marker).unwrap();
    let (ok, _, err) = september("monthly", &lake);
    assert!(!ok);
    assert!(
        err.contains("a rescore of 2026-09 was interrupted")
            && err.contains("run `huoyue-aggregate rescore --month 2026-09` again"),
        "{err}"
    );
    assert!(!lake.join("teacher_monthly").exists());

    rescore(&lake, "2026-09");
    assert!(!marker.exists());
    for table in ["daily_scores", "daily_activity"] {
        let scratch: Vec<_> = fs::read_dir(lake.join(".scratch").join(table))
            .unwrap()
            .collect();
        assert!(scratch.is_empty(), "{table}: {scratch:?}");
    }
    common::monthly(&lake, "2026-09");
}

#[test]
fn rescore_counts_events_that_were_late_in_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let in_order = dir.path().join("in-order");
    let shuffled = dir.path().join("shuffled");
    ingest(&in_order, conformance_events());
    let (input, moved) = with_late_logins(&conformance_events());
    assert!(moved > 20, "only {moved} logins moved");
    ingest(&shuffled, input);

    let late = late_rows(&shuffled);
    assert!(late > 20, "only {late} late rows of {moved} moved logins");
    assert_eq!(late_rows(&in_order), 0);
    let expected = sums(&in_order, "2026-09");
    assert_ne!(
        sums(&shuffled, "2026-09"),
        expected,
        "the late logins changed nothing in the stream"
    );

    let expected_activity = activity(&in_order, "2026-09");
    assert_ne!(
        activity(&shuffled, "2026-09"),
        expected_activity,
        "the late logins are in the stream's daily_activity"
    );

    let s = rescore(&shuffled, "2026-09");
    assert_eq!(s.late as usize, late, "{s:?}");
    assert_eq!(sums(&shuffled, "2026-09"), expected);
    // the late logins count in the activity too: the monthly job's login
    // days and daily active rates are the in-order run's
    assert_eq!(activity(&shuffled, "2026-09"), expected_activity);
    assert_eq!(points_only(&expected), expected_september());
    // The late rows stay in `rejected` (they are the audit trail).
    assert_eq!(late_rows(&shuffled), late);
}

/// A `task_progress` line: `student` reads task k of teacher t0 at `ts`,
/// stating `published`.
fn task_read(id: &str, ts: &str, student: &str, published: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ts":"{ts}","user_id":"{student}","role":"student","school_id":"3310810001","action":"task_progress","task_id":"k","owner_id":"t0","owner_school_id":"3310810001","published_at":"{published}","status":"read"}}"#
    ) + "\n"
}

/// The points per day of `lake`'s `daily_scores`, all of them t0's `task`.
fn task_points(lake: &Path) -> Vec<(String, i64)> {
    let mut days: Vec<(String, i64)> = points_only(&sums(lake, "2026-"))
        .into_iter()
        .map(|((day, user, rule), points)| {
            assert_eq!((user.as_str(), rule.as_str()), ("t0", "task"));
            (day, points)
        })
        .collect();
    days.sort();
    days
}

/// A task earns on its publish day, from the events of the days after: a
/// month can have scores and no events of its own. Here the task's first
/// event in order comes late and states a publish instant in September,
/// where the lake has no event: rescoring October takes the points off 1
/// October, and rescoring September (not refused for having no events)
/// puts them on 30 September. A month nothing scores into and nothing was
/// written to is still refused.
#[test]
fn rescore_scores_a_month_whose_points_come_from_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let reads: String = (0..10)
        .map(|i| {
            let ts = format!("2026-10-{:02}T09:00:00+08:00", i + 2);
            task_read(
                &format!("r{i}"),
                &ts,
                &format!("s{i}"),
                "2026-10-01T00:30:00+08:00",
            )
        })
        .collect();
    common::ingest_run(lake, reads.into_bytes());
    let first = task_read(
        "r-first",
        "2026-10-01T09:00:00+08:00",
        "s0",
        "2026-09-30T23:00:00+08:00",
    );
    common::ingest_run(lake, first.into_bytes());
    assert_eq!(late_rows(lake), 1);
    assert_eq!(task_points(lake), [("2026-10-01".to_string(), 5)]);

    rescore(lake, "2026-10");
    assert_eq!(task_points(lake), []);
    let s = rescore(lake, "2026-09");
    assert_eq!((s.rows, s.points, s.late), (1, 5, 1), "{s:?}");
    assert_eq!(task_points(lake), [("2026-09-30".to_string(), 5)]);

    // August: the feed after it reaches 1 and 2 October, which score nothing in it
    let (ok, _, err) = run_bin(&[
        "rescore",
        "--lake",
        lake.to_str().unwrap(),
        "--month",
        "2026-08",
    ]);
    assert!(!ok);
    assert!(err.contains("no data for month 2026-08"), "{err}");
}

/// The allowed lateness decides when an unqualified task is forgotten (two
/// windows and the lateness after its publish instant): a rescore scores
/// under the lateness the lake was ingested with, as the stream did. K, first
/// read on 1 Jul, is read by ten students on 14 Sep stating another
/// publish instant: with the default lateness K was forgotten and starts
/// anew (5 points on 14 Sep); with 400 days it was not, and earns nothing.
#[test]
fn rescore_keeps_the_lakes_lateness() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = task_read(
        "r-first",
        "2026-07-01T10:00:00+08:00",
        "s0",
        "2026-07-01T10:00:00+08:00",
    );
    for i in 0..10 {
        let ts = format!("2026-09-14T10:{i:02}:00+08:00");
        input += &task_read(
            &format!("r{i}"),
            &ts,
            &format!("s{i}"),
            "2026-09-14T09:00:00+08:00",
        );
    }
    for (lateness_days, expected) in [(3, &[("2026-09-14".to_string(), 5)][..]), (400, &[])] {
        let lake = dir.path().join(format!("lateness-{lateness_days}"));
        let cfg = EngineConfig {
            lateness_days,
            ..EngineConfig::default()
        };
        common::ingest_run_with(&lake, input.clone().into_bytes(), cfg);
        assert_eq!(
            task_points(&lake),
            expected,
            "streamed, lateness {lateness_days}"
        );
        rescore(&lake, "2026-09");
        assert_eq!(
            task_points(&lake),
            expected,
            "rescored, lateness {lateness_days}"
        );
    }
}

#[test]
fn readers_see_each_day_whole_while_rescore_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_path_buf();
    ingest(&lake, conformance_events());
    // Per day, the sums the stream wrote; the rescore writes the same sums,
    // so any consistent read of a day sees exactly them.
    let days: Vec<(String, PathBuf)> = day_folders(&lake.join("daily_scores"))
        .into_iter()
        .filter(|(d, _)| d.starts_with("2026-09"))
        .collect();
    let per_day: BTreeMap<String, Sums> = days
        .iter()
        .map(|(d, p)| {
            let mut s = Sums::new();
            day_sums(d, p, &mut s).unwrap();
            s.retain(|_, v| *v != (0, 0));
            (d.clone(), s)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut retries) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                for (day, dir) in &days {
                    let mut s = Sums::new();
                    if day_sums(day, dir, &mut s).is_none() {
                        retries += 1;
                        continue;
                    }
                    s.retain(|_, v| *v != (0, 0));
                    assert_eq!(&s, &per_day[day], "{day} read half-replaced");
                    reads += 1;
                }
            }
            (reads, retries)
        })
    };
    for _ in 0..3 {
        rescore(&lake, "2026-09");
    }
    stop.store(true, Ordering::SeqCst);
    let (reads, _retries) = reader.join().unwrap();
    assert!(reads > 0);
}

#[test]
fn a_writer_in_flight_makes_rescore_give_up_without_writing() {
    for table in ["daily_scores", "daily_activity"] {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path();
        ingest(lake, conformance_events());
        // A file being written by an ingest into a day of the month.
        fs::write(
            lake.join(format!("{table}/day=2026-09-17/.ingest-0001.parquet.tmp")),
            b"partial",
        )
        .unwrap();
        let before = tree(lake);
        let (ok, _out, err) = september("rescore", lake);
        assert!(!ok);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{table} of 2026-09-17 changed while rescoring")),
            "{err}"
        );
        let after = tree(lake);
        let table_locks = [
            lake.join("daily_scores/.compact.lock"),
            lake.join("daily_activity/.compact.lock"),
        ];
        let changed: Vec<&PathBuf> = after
            .keys()
            .filter(|p| before.get(*p) != after.get(*p) && !table_locks.contains(p))
            .chain(before.keys().filter(|p| !after.contains_key(*p)))
            .collect();
        assert!(changed.is_empty(), "{table}: {changed:?}");
    }
}

#[test]
fn rescore_input_errors_are_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    // as the ingest's command does it: its state checkpointed in the lake
    common::ingest_run(lake, conformance_events());
    assert!(lake.join("_checkpoints/file/state.ckpt").is_file());
    let before = tree(lake);
    let lake_s = lake.to_str().unwrap();
    // the built-in profile under another time zone, and under another name
    let builtin =
        fs::read_to_string(manifest_dir().join("../schemas/profiles/zhejiang-2018.toml")).unwrap();
    let west_dir = tempfile::tempdir().unwrap();
    let west = west_dir.path().join("west.toml");
    fs::write(&west, builtin.replace("+08:00", "-03:00")).unwrap();
    let renamed = west_dir.path().join("renamed.toml");
    fs::write(
        &renamed,
        builtin.replace("name = \"zhejiang-2018\"", "name = \"renamed\""),
    )
    .unwrap();
    let with_profile = |p| {
        vec![
            "rescore",
            "--lake",
            lake_s,
            "--month",
            "2026-09",
            "--profile",
            p,
        ]
    };
    for (args, message) in [
        (
            with_profile(west.to_str().unwrap()),
            "timezone +08:00, scored_role teacher, now",
        ),
        (
            with_profile(renamed.to_str().unwrap()),
            "taken under profile \"zhejiang-2018\", not \"renamed\"; rescore with the profile",
        ),
        (
            vec!["rescore", "--lake", lake_s, "--month", "2026-12"],
            "no data for month 2026-12",
        ),
        (
            vec!["rescore", "--lake", "/no/such/lake", "--month", "2026-09"],
            "does not exist",
        ),
        (
            vec!["rescore", "--lake", lake_s, "--month", "2026-9"],
            "invalid month",
        ),
        (with_profile("no-such-profile"), "no-such-profile"),
    ] {
        let (ok, _out, err) = run_bin(&args);
        assert!(!ok, "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(tree(lake), before);
    // an unreadable `events` file is named
    let damaged = lake.join("events/day=2026-09-10/damaged.parquet");
    fs::write(&damaged, b"PAR").unwrap();
    let (ok, _out, err) = september("rescore", lake);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "reading {} (nothing was replaced)",
            damaged.display()
        )),
        "{err}"
    );
    fs::remove_file(&damaged).unwrap();
    assert_eq!(tree(lake), before);

    let (ok, out, err) = september("rescore", lake);
    assert!(ok, "{err}");
    assert!(out.starts_with("rescore 2026-09: "), "{out}");
    assert!(
        out.contains("60 day partitions of daily_scores and daily_activity replaced"),
        "{out}"
    );
}

/// How many keys two maps of sums disagree on (in one and not the other, or
/// with other values).
fn differing<K: Ord, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> usize {
    a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).count()
        + b.keys().filter(|k| !a.contains_key(*k)).count()
}

/// The first `n` lines of `ndjson` and the rest.
fn split_lines(ndjson: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let at = ndjson
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(ndjson.len(), |(i, _)| i + 1);
    (ndjson[..at].to_vec(), ndjson[at..].to_vec())
}

#[test]
fn a_rebuilt_file_state_goes_on_as_the_lost_one_would_have() {
    let (first, second) = split_lines(&conformance_events(), 6_000);
    let lakes = tempfile::tempdir().unwrap();
    let lake = |name: &str| {
        let l = lakes.path().join(name);
        common::ingest_run(&l, first.clone());
        l
    };
    let state = |l: &Path| l.join("_checkpoints/file/state.ckpt");
    // the stream as it went: both runs on the first run's state
    let kept = lake("kept");
    common::ingest_run(&kept, second.clone());
    // the first run's checkpoint damaged, then rebuilt from the lake
    let rebuilt = lake("rebuilt");
    let mut bytes = fs::read(state(&rebuilt)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(state(&rebuilt), &bytes).unwrap();
    // file runs stop at it, and say how to go on
    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let opened = FileState::open(&rebuilt, &profile, EngineConfig::default());
    let err = opened
        .err()
        .expect("a corrupt state is refused")
        .to_string();
    assert!(
        err.contains("checksum mismatch; rebuild it from the lake's events with `huoyue-aggregate rebuild-state --lake"),
        "{err}"
    );
    let args = ["rebuild-state", "--lake", rebuilt.to_str().unwrap()];
    // a rebuild that fails leaves the damaged state where it was
    let unreadable = rebuilt.join("events/day=2026-09-10/unreadable.parquet");
    fs::write(&unreadable, b"PAR").unwrap();
    let (ok, _, err) = run_bin(&args);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unreadable.parquet"), "{err}");
    assert_eq!(fs::read(state(&rebuilt)).unwrap(), bytes);
    assert_eq!(
        fs::read_dir(rebuilt.join("_checkpoints/file"))
            .unwrap()
            .count(),
        2
    );
    fs::remove_file(&unreadable).unwrap();
    let (ok, out, err) = run_bin(&args);
    assert!(ok, "{err}");
    assert!(out.contains("the corrupt checkpoint was kept as"), "{out}");
    let aside: Vec<_> = fs::read_dir(rebuilt.join("_checkpoints/file"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state.ckpt.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    common::ingest_run(&rebuilt, second.clone());
    let want = sums(&kept, "");
    assert_eq!(differing(&sums(&rebuilt, ""), &want), 0);
    assert_eq!(differing(&activity(&rebuilt, ""), &activity(&kept, "")), 0);
    // starting the second run from nothing instead scores otherwise (the
    // comparison above can tell)
    let fresh = lake("fresh");
    fs::remove_file(state(&fresh)).unwrap();
    common::ingest_run(&fresh, second);
    assert!(differing(&sums(&fresh, ""), &want) > 0);

    // a sound state, or one of another profile, is left alone
    let before = tree(&kept);
    let (ok, _, err) = run_bin(&["rebuild-state", "--lake", kept.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is sound"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let builtin =
        fs::read_to_string(manifest_dir().join("../schemas/profiles/zhejiang-2018.toml")).unwrap();
    let renamed = lakes.path().join("renamed.toml");
    fs::write(
        &renamed,
        builtin.replace("name = \"zhejiang-2018\"", "name = \"renamed\""),
    )
    .unwrap();
    let (ok, _, err) = run_bin(&[
        "rebuild-state",
        "--lake",
        kept.to_str().unwrap(),
        "--profile",
        renamed.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("rebuild with the profile"), "{err}");
    // nor while a file run holds the lake
    let held = huoyue_ingest::checkpoint::lock_instance(&state_dir(&kept), STATE)
        .unwrap()
        .expect("nothing else holds it");
    let (ok, _, err) = run_bin(&["rebuild-state", "--lake", kept.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("a file run is writing to this lake"), "{err}");
    drop(held);
    assert_eq!(tree(&kept), before);
}
