//! `huoyue-ingest` as a user runs it: summaries, bad input, bad flags, and the lake
//! read back by an independent reader (DuckDB).

mod common;

use std::process::{Command, Output};

use common::*;

fn ingest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .args(args)
        .output()
        .unwrap()
}

/// `huoyue-ingest --lake LAKE --file INPUT EXTRA…`, which must succeed.
fn ingest_ok(lake: &std::path::Path, input: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--lake",
        lake.to_str().unwrap(),
        "--file",
        input.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = ingest(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `huoyue-ingest` run by `sh -c SCRIPT` (a limit, a redirection), the
/// binary as `$0`, `lake` as `$1` and `input` as `$2`.
fn ingest_in_shell(script: &str, lake: &std::path::Path, input: &std::path::Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .arg(lake)
        .arg(input)
        .output()
        .unwrap()
}

fn stderr_line(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stderr).trim_end().to_owned();
    assert_eq!(s.lines().count(), 1, "one line on stderr: {s:?}");
    s
}

#[test]
fn conformance_through_the_binary_read_back_by_duckdb() {
    let lake = tempfile::tempdir().unwrap();
    let lake_s = lake.path().to_str().unwrap();
    let events = conformance().join("events.ndjson");
    let o = ingest_ok(lake.path(), &events, &[]);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.starts_with("read 12474, valid 12309, duplicates 116, rejected 49"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 1);

    let check = script("lake_check.py", &[lake_s]);
    assert!(
        check.status.success(),
        "lake_check.py (needs DuckDB: scripts/test installs it): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(v["events"], 12309);
    assert_eq!(v["rejected"], 49);
    assert_eq!(scores_of(&v), expected_scores());
}

/// The `scores` of the JSON that `scripts/lake_check.py` and
/// `scripts/duckdb_peer.py` print: `[day, user_id, rule, points]` rows.
fn scores_of(v: &serde_json::Value) -> std::collections::BTreeMap<(String, String, String), i64> {
    v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let s = |i: usize| r[i].as_str().unwrap().to_owned();
            ((s(0), s(1), s(2)), r[3].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn bad_input_is_rejected_and_kept_never_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.ndjson");
    let good = r#"{"event_id":"e-1","ts":"2026-11-03T08:15:30+08:00","user_id":"t-1","role":"teacher","school_id":"3333000001","action":"login"}"#;
    let mut data = Vec::new();
    data.extend_from_slice(good.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(b"\x00\xff\xfe garbage \x80\n");
    data.extend_from_slice(b"[1,2,3]\n");
    data.extend_from_slice(b"\n");
    data.extend_from_slice(&vec![b'x'; 1 << 20]);
    data.push(b'\n');
    data.extend_from_slice(br#"{"event_id": "bad-1", "ts": "#); // truncated last line, no newline
    std::fs::write(&input, &data).unwrap();
    let lake = dir.path().join("lake");
    let o = ingest_ok(&lake, &input, &[]);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.starts_with(
            "read 6, valid 1, duplicates 0, rejected 5 (too_large 1, bad_utf8 1, bad_json 3)"
        ),
        "{summary}"
    );
    let raws: Vec<Vec<u8>> = read_table(&lake, "rejected")
        .iter()
        .flat_map(|(_, b)| {
            use arrow::array::{Array, AsArray};
            let a = b.column_by_name("raw").unwrap().as_binary::<i32>().clone();
            (0..a.len()).map(move |i| a.value(i).to_vec())
        })
        .collect();
    assert_eq!(raws.len(), 5);
    assert!(
        raws.iter().any(|r| r.len() == 1 << 20),
        "the 1 MiB line is kept whole"
    );
    assert!(raws.iter().any(|r| r == br#"{"event_id": "bad-1", "ts": "#));
}

#[test]
fn an_empty_file_is_a_run_with_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.ndjson");
    std::fs::write(&input, b"").unwrap();
    let o = ingest(&[
        "--lake",
        dir.path().join("lake").to_str().unwrap(),
        "--file",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("read 0, valid 0, duplicates 0, rejected 0")
    );
}

#[test]
fn standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut child = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .args(["--lake", lake.to_str().unwrap(), "--file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(conformance().join("events.ndjson")).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(score_sums(&lake), expected_scores());
}

#[test]
fn bad_flags_and_setups_get_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let events = conformance().join("events.ndjson");
    let events = events.to_str().unwrap();

    let o = ingest(&["--lake", lake, "--file", events, "--frobnicate"]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("--frobnicate"));

    // a flag of the other mode, or a value out of range, is named
    for (flag, value, named) in [
        ("--topic", "t", "--topic"),
        ("-X", "a=b", "-X"),
        ("--flush-rows", "0", "must be 1 or more"),
        ("--flush-interval", "0s", "must be more than zero"),
        ("--flush-interval", "1.5s", "1500ms"),
        (
            "--metrics-addr",
            "9187",
            "not an address like 127.0.0.1:9187, or off",
        ),
    ] {
        let o = ingest(&["--lake", lake, "--file", events, flag, value]);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}");
        let line = stderr_line(&o);
        assert!(line.contains(named), "{flag} {value}: {line}");
    }
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let o = ingest(&["--lake", a_file.to_str().unwrap(), "--file", events]);
    assert!(stderr_line(&o).contains("it is a file, not a folder"));

    // a missing argument is named
    let o = ingest(&["--file", events]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(line.contains("not provided: --lake <DIR>"), "{line}");

    let o = ingest(&[
        "--lake",
        lake,
        "--file",
        events,
        "--profile",
        "/nonexistent/profile.toml",
    ]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(line.contains("/nonexistent/profile.toml"), "{line}");
    assert_eq!(
        line.matches("os error").count(),
        1,
        "the cause once: {line}"
    );

    let o = ingest(&[
        "--lake",
        lake,
        "--file",
        events,
        "--profile",
        "no-such-name",
    ]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("no-such-name"));

    let bad_profile = dir.path().join("p.toml");
    std::fs::write(&bad_profile, "name = \"x\"\n[[rule]]\nid = \"t\"\nkind = \"per_event\"\naction = \"teach\"\npoints = 5\ndaily_cap = -1\n").unwrap();
    let o = ingest(&[
        "--lake",
        lake,
        "--file",
        events,
        "--profile",
        bad_profile.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(
        line.contains("rule \"t\"") && line.contains("daily_cap"),
        "{line}"
    );

    let o = ingest(&["--lake", lake, "--file", "/nonexistent/events.ndjson"]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("/nonexistent/events.ndjson"));
    // a folder as the input, named as such; the lake is not touched
    let folder = dir.path().to_str().unwrap();
    let o = ingest(&["--lake", lake, "--file", folder]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(
        line.contains(folder) && line.contains("is a folder"),
        "{line}"
    );
    assert!(!std::path::Path::new(lake).exists());

    let o = ingest(&["--lake", lake, "--file", events, "--lateness", "36h"]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("whole days"));

    // a lake that is a file, and one under a read-only folder
    let file_lake = dir.path().join("not-a-dir");
    std::fs::write(&file_lake, b"").unwrap();
    let o = ingest(&["--lake", file_lake.to_str().unwrap(), "--file", events]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("not writable"));
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    perms.set_mode(0o500);
    std::fs::set_permissions(&ro, perms).unwrap();
    let o = ingest(&[
        "--lake",
        ro.join("lake").to_str().unwrap(),
        "--file",
        events,
    ]);
    let writable_anyway = o.status.success(); // root ignores folder permissions
    if !writable_anyway {
        assert!(stderr_line(&o).contains("not writable"));
    }
}

/// The engine against `scripts/reference_scores.py` on events crowded onto a
/// few users, resources and tasks (`scripts/fuzz_events.py`): in any order
/// under a lateness that admits everything, and nearly in order under the
/// default lateness with small flushes (windows folding, late events
/// rejected: the reference scores what the lake accepted). The reference
/// agrees with the conformance case too.
#[test]
fn the_engine_agrees_with_a_plain_reference_on_crowded_random_events() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conformance");
    let events = conformance().join("events.ndjson");
    ingest_ok(&conf, &events, &[]);
    assert_reference_agrees(&conf);

    // (scripts/fuzz_events.py's seed and arguments, huoyue-ingest's flags)
    let cases: [(&[&str], &[&str]); 4] = [
        (&["41", "7000"], &["--lateness", "400d"]),
        (
            &["42", "4000"],
            &["--lateness", "400d", "--flush-rows", "300"],
        ),
        (
            &["43", "7000", "--jitter-hours", "30"],
            &["--flush-rows", "500"],
        ),
        (
            &["44", "5000", "--jitter-hours", "100"],
            &["--flush-rows", "200"],
        ),
    ];
    for (fuzz, flags) in cases {
        let seed = fuzz[0];
        let input = dir.path().join(format!("fuzz-{seed}.ndjson"));
        std::fs::write(&input, fuzz_events(fuzz)).unwrap();
        let lake = dir.path().join(format!("lake-{seed}"));
        ingest_ok(&lake, &input, flags);
        let lateness = flags.iter().position(|f| *f == "--lateness");
        assert_reference_agrees_with(&lake, lateness.map_or(&[][..], |i| &flags[i..i + 2]));
    }
}

/// `scripts/duckdb_peer.py`, the DuckDB side of `benches/e2e.py`, is a third
/// implementation of the rules, in batch SQL: it gives the conformance case's
/// scores, and the engine's on crowded random events (under a lateness that
/// admits them all, so that both sides keep every valid event). The
/// benchmark's ratio means something only while the peer does the same work.
#[test]
fn the_benchmarks_duckdb_peer_scores_as_the_spec_and_the_engine_do() {
    let dir = tempfile::tempdir().unwrap();
    let peer = |input: &std::path::Path, out: &std::path::Path| {
        let o = script("duckdb_peer.py", &[input, out]);
        assert!(
            o.status.success(),
            "duckdb_peer.py (needs DuckDB: scripts/test installs it): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["events"].as_u64().unwrap() as usize, scores_of(&v))
    };
    let (events, scores) = peer(
        &conformance().join("events.ndjson"),
        &dir.path().join("peer-conformance"),
    );
    assert_eq!(events, 12309);
    assert_scores_eq(&scores, &expected_scores());

    // (scripts/fuzz_events.py's seed and count)
    for fuzz in [["41", "7000"], ["45", "20000"]] {
        let seed = fuzz[0];
        let input = dir.path().join(format!("fuzz-{seed}.ndjson"));
        std::fs::write(&input, fuzz_events(&fuzz)).unwrap();
        let lake = dir.path().join(format!("lake-{seed}"));
        ingest_ok(&lake, &input, &["--lateness", "400d"]);
        let (events, scores) = peer(&input, &dir.path().join(format!("peer-{seed}")));
        assert_eq!(events, row_count(&lake, "events"), "seed {seed}");
        assert_scores_eq(&scores, &score_sums(&lake));
    }
}

/// The published Parquet files of a lake's ingest tables, relative to it.
fn published(lake: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for table in huoyue_schemas::lake::INGEST_TABLES {
        let Ok(days) = std::fs::read_dir(lake.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            for f in std::fs::read_dir(day.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".parquet") {
                    out.insert(format!(
                        "{table}/{}/{name}",
                        day.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    out
}

/// Staged files (`.….tmp`) left in a lake's ingest tables.
fn staged(lake: &std::path::Path) -> usize {
    huoyue_schemas::lake::INGEST_TABLES
        .iter()
        .filter_map(|t| std::fs::read_dir(lake.join(t)).ok())
        .flat_map(|days| days.flatten())
        .flat_map(|day| std::fs::read_dir(day.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

/// The lines of `bytes` cut into `parts` consecutive pieces.
fn split_lines(bytes: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    lines
        .chunks(lines.len().div_ceil(parts))
        .map(|c| c.concat())
        .collect()
}

/// The file runs of a lake are one stream: a month's events given as three
/// files one after another score exactly as in one run (streaks, caps and the
/// resources' lifetime caps go on across the files), and the reference
/// agrees. Without the state carried over, the second and third runs start
/// from nothing and thousands of sums differ.
#[test]
fn consecutive_file_runs_are_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let all = fuzz_events(&["51", "6000", "--jitter-hours", "20"]);
    let whole = dir.path().join("whole.ndjson");
    std::fs::write(&whole, &all).unwrap();
    let one = dir.path().join("one-run");
    ingest_ok(&one, &whole, &[]);

    let three = dir.path().join("three-runs");
    for (i, part) in split_lines(&all, 3).iter().enumerate() {
        let input = dir.path().join(format!("part-{i}.ndjson"));
        std::fs::write(&input, part).unwrap();
        ingest_ok(&three, &input, &[]);
    }
    assert_scores_eq(&score_sums(&three), &score_sums(&one));
    assert_eq!(
        string_column(&three, "events", "event_id"),
        string_column(&one, "events", "event_id")
    );
    assert_reference_agrees(&three);
}

/// `zhejiang-2018` is the built-in profile even run where a file of that name
/// is (a changed copy): the file is read only as `./zhejiang-2018`.
#[test]
fn a_file_named_like_the_builtin_profile_does_not_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = manifest_dir().join("../schemas/profiles/zhejiang-2018.toml");
    let changed = std::fs::read_to_string(shipped)
        .unwrap()
        .replace("points = 5\ndaily_cap = 10", "points = 5\ndaily_cap = 0");
    assert!(
        changed.contains("daily_cap = 0"),
        "the teach rule is where it was"
    );
    std::fs::write(dir.path().join("zhejiang-2018"), changed).unwrap();
    let events = conformance().join("events.ndjson");
    let run = |lake: &str, profile: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
            .current_dir(dir.path())
            .args(["--lake", lake, "--file", events.to_str().unwrap()])
            .args(profile)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        score_sums(&dir.path().join(lake))
    };
    assert_eq!(run("default", &[]), expected_scores());
    assert_eq!(
        run("named", &["--profile", "zhejiang-2018"]),
        expected_scores()
    );
    let file = run("file", &["--profile", "./zhejiang-2018"]);
    assert!(
        file.iter()
            .all(|((_, _, rule), p)| rule != "teach" || *p == 0)
    );
    assert!(
        expected_scores()
            .iter()
            .any(|((_, _, rule), p)| rule == "teach" && *p > 0)
    );
}

/// A summary that cannot be written (a full disk) is a one-line error saying
/// the run is done (its lake is published); a reader that closed its end of
/// the pipe is no error at all.
#[test]
fn a_summary_that_cannot_be_written_says_the_run_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let events = conformance().join("events.ndjson");
    let run = |lake: &str, stdout: std::process::Stdio| {
        Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
            .args(["--lake", dir.path().join(lake).to_str().unwrap()])
            .args(["--file", events.to_str().unwrap()])
            .stdout(stdout)
            .output()
            .unwrap()
    };
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = run("full", full.into());
    assert_eq!(o.status.code(), Some(1));
    let line = stderr_line(&o);
    assert!(
        line.contains("done and written to the lake") && line.contains("No space"),
        "{line}"
    );
    assert_is_the_whole_case(&dir.path().join("full"));

    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = run("closed", writer.into());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_is_the_whole_case(&dir.path().join("closed"));
}

/// The value of metric `name` (exactly, labels included) in a text exposition.
/// A file run with `--metrics-addr` keeps its metrics current while it reads:
/// the counts after each chunk, and at each flush its duration, the engine's
/// size and the newest event time, not only the Kafka service's.
#[test]
fn a_file_run_serves_its_metrics_while_it_reads() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .args(["--lake", dir.path().join("lake").to_str().unwrap()])
        .args(["--file", "-", "--flush-interval", "1ms"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // more than a 4 MiB chunk, and the input left open: the first chunk is
    // scored while the run waits for the rest
    let one = std::fs::read(conformance().join("events.ndjson")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&one.repeat(2)).unwrap();
    let text = scrape_until(
        port,
        "a flush",
        std::time::Duration::from_secs(60),
        |text| metric(text, "huoyue_flush_duration_seconds_count").is_some_and(|n| n > 0.0),
        String::new,
    );
    let read = metric(&text, "huoyue_events_read_total").unwrap();
    assert!(read > 0.0 && read < 2.0 * 12474.0, "{read}");
    assert!(metric(&text, "huoyue_engine_users").unwrap() > 0.0);
    assert!(metric(&text, "huoyue_engine_state_bytes").unwrap() > 0.0);
    // the conformance case is September 2026 (and a retry in October)
    let newest = metric(&text, "huoyue_newest_event_timestamp_seconds").unwrap();
    assert!(
        (1_788_220_800.0..1_793_491_200.0).contains(&newest),
        "{newest}"
    );
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("read 24948, valid 12309"));
}

/// Ingesting a file again counts nothing twice: its events are duplicates
/// of the first run's. Its malformed lines are rejected again (each reading
/// of them is kept).
#[test]
fn a_file_ingested_again_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let events = conformance().join("events.ndjson");
    ingest_ok(&lake, &events, &[]);
    let o = ingest_ok(&lake, &events, &[]);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.starts_with("read 12474, valid 0, duplicates 12425, rejected 49"),
        "{summary}"
    );
    assert_eq!(score_sums(&lake), expected_scores());
    assert_eq!(row_count(&lake, "events"), 12309);
    assert_eq!(row_count(&lake, "rejected"), 98);
}

/// A run says how far it is at each flush (every `--flush-interval`): bytes
/// scored of the file's size and the counts so far, on standard error; the
/// summary alone stays on standard output.
#[test]
fn a_long_run_reports_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("three.ndjson");
    let one = std::fs::read(conformance().join("events.ndjson")).unwrap();
    // three chunks (4 MiB each, the last shorter): a flush after the first
    // two at least, with a 1 ms interval
    std::fs::write(&input, one.repeat(3)).unwrap();
    let o = ingest_ok(
        &dir.path().join("lake"),
        &input,
        &["--flush-interval", "1ms"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("read 37422, valid 12309, duplicates 24966, rejected 147"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<(f64, u64)> = stderr
        .lines()
        .filter(|l| l.contains(" scored: "))
        .map(|l| {
            // "… 4.2 MB of 8.9 MB (47%) scored: 16875 lines, …"
            let mb = l.split(" MB of ").next().unwrap();
            let mb: f64 = mb.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(l.contains(" of 8.9 MB ("), "{l}");
            let read = l.split(" scored: ").nth(1).unwrap();
            let read: u64 = read.split(' ').next().unwrap().parse().unwrap();
            (mb, read)
        })
        .collect();
    assert!(lines.len() >= 2, "progress lines: {stderr}");
    assert!(
        lines.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "{lines:?}"
    );
    // the last chunk may come within the interval of the flush before it
    assert!(lines.iter().all(|&(_, read)| read <= 37422), "{lines:?}");
}

/// A run killed before its end leaves the lake and the state as they were:
/// its staged files are never published and the next run removes them; run
/// again, the file gives the lake of an uninterrupted run.
#[test]
fn a_killed_file_run_leaves_the_lake_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, second) = first_half_ingested(dir.path());
    let before = published_and_state(&lake);

    let (mut child, stdin) = staging_run(&lake, &second, &dir.path().join("killed.log"));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(
        published_and_state(&lake),
        before,
        "a killed run published files or changed the state"
    );

    let second_file = dir.path().join("second.ndjson");
    std::fs::write(&second_file, &second).unwrap();
    ingest_ok(&lake, &second_file, &[]);
    assert_eq!(
        staged(&lake),
        0,
        "the killed run's staged files are removed"
    );
    assert_is_the_whole_case(&lake);
}

/// A lake's published files and its file-mode state: what a run that
/// publishes nothing leaves as it was.
fn published_and_state(lake: &std::path::Path) -> (std::collections::BTreeSet<String>, Vec<u8>) {
    (published(lake), std::fs::read(file_state(lake)).unwrap())
}

/// The lake holds the whole conformance case: its scores, events and
/// rejections.
fn assert_is_the_whole_case(lake: &std::path::Path) {
    assert_eq!(score_sums(lake), expected_scores());
    assert_eq!(row_count(lake, "events"), 12309);
    assert_eq!(row_count(lake, "rejected"), 49);
}

/// `dir/lake` with the first half of the conformance case ingested; the
/// second half's lines.
fn first_half_ingested(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let lake = dir.join("lake");
    let all = std::fs::read(conformance().join("events.ndjson")).unwrap();
    let mut parts = split_lines(&all, 2);
    let first = dir.join("first.ndjson");
    std::fs::write(&first, &parts[0]).unwrap();
    ingest_ok(&lake, &first, &[]);
    (lake, parts.pop().unwrap())
}

/// Compaction (or a rescore) may merge the files the last run published
/// while its checkpoint still lists them: the next run, which rolls that
/// checkpoint forward first, goes on. (It failed, for good, naming a file
/// compaction had merged.)
#[test]
fn a_run_after_compaction_merged_the_last_runs_files_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, second) = first_half_ingested(dir.path());
    // what compaction does to the published files of each partition: the
    // same rows under another name
    let files = published(&lake);
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let (day, name) = f.rsplit_once('/').unwrap();
        std::fs::rename(
            lake.join(f),
            lake.join(day).join(format!("compacted-{name}")),
        )
        .unwrap();
    }
    let input = dir.path().join("second.ndjson");
    std::fs::write(&input, second).unwrap();
    ingest_ok(&lake, &input, &[]);
    assert_is_the_whole_case(&lake);
}

/// `huoyue-ingest --file -` on `lake`, fed `input` then empty lines to
/// fill the reader's first chunk, with small flushes, its stderr to `log`;
/// returned once it has staged files, its input still open.
fn staging_run(
    lake: &std::path::Path,
    input: &[u8],
    log: &std::path::Path,
) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write;
    assert_eq!(staged(lake), 0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .arg("--lake")
        .arg(lake)
        .args([
            "--file",
            "-",
            "--flush-rows",
            "200",
            "--flush-interval",
            "50ms",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    stdin.write_all(&vec![b'\n'; 5 << 20]).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while staged(lake) == 0 {
        assert!(std::time::Instant::now() < deadline, "no file staged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, stdin)
}

/// A run stopped by SIGINT while it reads says so in one line, exits 130
/// and removes what it staged: the lake and the state are as they were.
#[test]
fn an_interrupted_file_run_says_so_and_leaves_the_lake_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, second) = first_half_ingested(dir.path());
    let before = published_and_state(&lake);

    let log = dir.path().join("interrupted.log");
    let (mut child, stdin) = staging_run(&lake, &second, &log);
    let ok = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // it stops although its input is still open
    let status = child.wait().unwrap();
    drop(stdin);
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err.trim_end().lines().last().unwrap_or_default(),
        "interrupted: nothing of this run was published; the lake and its state are as they were before it"
    );
    assert_eq!(staged(&lake), 0, "its staged files are removed");
    assert_eq!(published_and_state(&lake), before);
}

/// A run that fails before its checkpoint is in place removes what it staged
/// and says that nothing of it was published: here the checkpoint's
/// temporary name is taken by a folder (a full disk fails the same way, with
/// "No space left on device"). Once that is mended, the same file gives the
/// lake of an uninterrupted run.
#[test]
fn a_run_that_cannot_write_its_checkpoint_publishes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, second) = first_half_ingested(dir.path());
    let before = published_and_state(&lake);
    let obstacle = file_state(&lake).with_file_name(".state.ckpt.tmp");
    std::fs::create_dir(&obstacle).unwrap();

    let second_file = dir.path().join("second.ndjson");
    std::fs::write(&second_file, &second).unwrap();
    let (lake_s, second_s) = (lake.to_str().unwrap(), second_file.to_str().unwrap());
    // small flushes: files are staged all along the run
    let o = ingest(&["--lake", lake_s, "--file", second_s, "--flush-rows", "200"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot write checkpoint ")
            && last.ends_with(
                "; nothing of this run was published: the lake and its state are as they were before it"
            ),
        "{err}"
    );
    assert_eq!(staged(&lake), 0, "its staged files are removed");
    assert_eq!(published_and_state(&lake), before);

    std::fs::remove_dir(&obstacle).unwrap();
    ingest_ok(&lake, &second_file, &[]);
    assert_is_the_whole_case(&lake);
}

/// The file-mode checkpoint of a lake.
fn file_state(lake: &std::path::Path) -> std::path::PathBuf {
    huoyue_ingest::pipeline::file::state_dir(lake).join("state.ckpt")
}

/// One file run at a time per lake; a lake's state is kept under one profile.
#[test]
fn a_second_run_or_another_profile_gets_one_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let events = conformance().join("events.ndjson");
    let events = events.to_str().unwrap();

    let mut running = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        .args(["--lake", lake_s, "--file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = running.stdin.take().unwrap();
    stdin.write_all(b"{\"not\": \"an event\"}\n").unwrap();
    stdin.flush().unwrap();
    // wait until the first run holds the lake's file-mode lock
    let lock = huoyue_ingest::checkpoint::instance_lock(
        &huoyue_ingest::pipeline::file::state_dir(&lake),
        huoyue_ingest::pipeline::file::STATE,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_ok()) || !lock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run took no lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = ingest(&["--lake", lake_s, "--file", events]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(
        line.contains("another file run is writing to this lake"),
        "{line}"
    );
    drop(stdin);
    let first = running.wait_with_output().unwrap();
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("read 1, valid 0"));

    let renamed = dir.path().join("renamed.toml");
    let builtin =
        std::fs::read_to_string(manifest_dir().join("../schemas/profiles/zhejiang-2018.toml"))
            .unwrap();
    std::fs::write(
        &renamed,
        builtin.replacen("name = \"zhejiang-2018\"", "name = \"renamed\"", 1),
    )
    .unwrap();
    let o = ingest(&[
        "--lake",
        lake_s,
        "--file",
        events,
        "--profile",
        renamed.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let line = stderr_line(&o);
    assert!(
        line.contains("state.ckpt") && line.contains("renamed") && line.contains("zhejiang-2018"),
        "{line}"
    );

    // the same name with a rule taken out: refused in one line, no panic
    let edited = dir.path().join("edited.toml");
    let start = builtin.find("[[rule]]\nid = \"login\"").unwrap();
    let end = start + 8 + builtin[start + 8..].find("[[rule]]").unwrap();
    std::fs::write(&edited, format!("{}{}", &builtin[..start], &builtin[end..])).unwrap();
    let o = ingest(&[
        "--lake",
        lake_s,
        "--file",
        events,
        "--profile",
        edited.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let line = stderr_line(&o);
    assert!(line.contains("another version of profile"), "{line}");
}

/// A history file can span more days in one flush than a process may open
/// files (each day has an `events` file open until the flush): the run flushes
/// early instead, here 1,200 days under a limit of 1,024 open files. The
/// flush's 2,400 small files wait for their fsyncs a bounded number at a
/// time: with the queue unbounded this failed on a disk with slow fsyncs
/// (CI's; here with each fsync delayed by 3 ms under
/// `strace -f -e inject=fsync,fdatasync:delay_exit=3000`), out of file
/// descriptors when the checkpoint was opened.
#[test]
fn a_file_of_more_days_than_open_files_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lake) = (dir.path().join("in.ndjson"), dir.path().join("lake"));
    let start = 19_000; // 2022-01-08
    let mut lines = String::new();
    for i in 0..1200 {
        let day = huoyue_schemas::time::format_day(start + i);
        lines.push_str(&format!(
            r#"{{"event_id":"e{i}","ts":"{day}T08:00:00+08:00","user_id":"t1","role":"teacher","school_id":"3301000001","client":"mobile","action":"login"}}"#
        ));
        lines.push('\n');
    }
    std::fs::write(&input, lines).unwrap();
    let o = ingest_in_shell(
        r#"ulimit -S -n 1024 2>/dev/null; exec "$0" --lake "$1" --file "$2""#,
        &lake,
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.starts_with("read 1200, valid 1200,"), "{summary}");
    assert_eq!(row_count(&lake, "events"), 1200);
    let login_days = score_sums(&lake)
        .keys()
        .filter(|(_, _, rule)| rule == "login")
        .count();
    assert_eq!(login_days, 1200);
}

/// With `--log-format json` every line on standard error is JSON, the last
/// one (why the run stopped) too, for whatever collects the logs.
#[test]
fn with_json_logs_the_last_word_is_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let o = ingest(&[
        "--lake",
        lake.to_str().unwrap(),
        "--file",
        "/nonexistent/events.ndjson",
        "--log-format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let last = lines.last().expect("a line on stderr");
    assert_eq!(last["level"], "ERROR");
    let error = last["fields"]["error"].as_str().unwrap();
    assert!(error.contains("/nonexistent/events.ndjson"), "{last}");
}

/// A compressed dump given as the file is refused with the way to feed it,
/// not read as lines that would all be rejected; the lake is untouched.
#[test]
fn a_compressed_file_is_refused_with_the_way_to_feed_it() {
    let dir = tempfile::tempdir().unwrap();
    let (gz, lake) = (dir.path().join("events.ndjson.gz"), dir.path().join("lake"));
    let o = Command::new("gzip")
        .arg("-c")
        .arg(conformance().join("events.ndjson"))
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(&gz, o.stdout).unwrap();
    let o = ingest(&[
        "--lake",
        lake.to_str().unwrap(),
        "--file",
        gz.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let line = stderr_line(&o);
    assert!(
        line.contains(&format!("{} is gzip-compressed", gz.display()))
            && line.contains("zcat FILE |"),
        "{line}"
    );
    assert!(!lake.exists(), "the lake is not made for a refused input");
    // through standard input, told by the same first bytes
    let o = ingest_in_shell(r#"exec "$0" --lake "$1" --file - < "$2""#, &lake, &gz);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_line(&o).contains("stdin is gzip-compressed"));
    assert!(published(&lake).is_empty());
    assert!(!file_state(&lake).exists());
    // a pipe given as the file (`--file <(zcat …)`) cannot be read ahead:
    // its reader tells it, and one that is not compressed goes in
    let through_a_pipe = r#"cat "$2" | "$0" --lake "$1" --file /dev/stdin"#;
    let o = ingest_in_shell(through_a_pipe, &lake, &gz);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_line(&o).contains("is gzip-compressed"));
    let o = ingest_in_shell(through_a_pipe, &lake, &conformance().join("events.ndjson"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(score_sums(&lake), expected_scores());
}

/// A file that starts with a UTF-8 byte order mark (as Windows tools write
/// them) reads as the same file without it: its first event is not rejected.
#[test]
fn a_byte_order_mark_does_not_cost_the_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lake) = (dir.path().join("bom.ndjson"), dir.path().join("lake"));
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend(std::fs::read(conformance().join("events.ndjson")).unwrap());
    std::fs::write(&input, bytes).unwrap();
    let o = ingest_ok(&lake, &input, &[]);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.starts_with("read 12474, valid 12309, duplicates 116, rejected 49"),
        "{summary}"
    );
    assert_eq!(score_sums(&lake), expected_scores());
}
