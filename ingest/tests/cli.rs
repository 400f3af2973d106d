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
    let o = ingest(&["--lake", lake_s, "--file", events.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
    let duck: std::collections::BTreeMap<(String, String, String), i64> = v["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let s = |i: usize| r[i].as_str().unwrap().to_owned();
            ((s(0), s(1), s(2)), r[3].as_i64().unwrap())
        })
        .collect();
    assert_eq!(duck, expected_scores());
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
    let o = ingest(&[
        "--lake",
        lake.to_str().unwrap(),
        "--file",
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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

    let o = ingest(&[
        "--lake",
        lake,
        "--file",
        events,
        "--profile",
        "/nonexistent/profile.toml",
    ]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("/nonexistent/profile.toml"));

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
    let o = ingest(&[
        "--lake",
        conf.to_str().unwrap(),
        "--file",
        events.to_str().unwrap(),
    ]);
    assert!(o.status.success());
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
        let mut args = vec![
            "--lake",
            lake.to_str().unwrap(),
            "--file",
            input.to_str().unwrap(),
        ];
        args.extend(flags);
        let o = ingest(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_reference_agrees(&lake);
    }
}
