//! The `huoyue-gen` binary: flags, errors, files.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huoyue-gen"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("huoyue-gen-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fails_with(args: &[&str], needle: &str) {
    let out = bin().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_flags_are_named() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    fails_with(
        &["--month", "2026-13", "--schools", "2", "--out", o],
        "month 13",
    );
    fails_with(
        &["--month", "2026/11", "--schools", "2", "--out", o],
        "--month",
    );
    fails_with(
        &["--month", "2026-11", "--schools", "0", "--out", o],
        "--schools",
    );
    fails_with(
        &[
            "--month",
            "2026-11",
            "--schools",
            "2",
            "--disorder-hours",
            "72",
            "--out",
            o,
        ],
        "--disorder-hours",
    );
    fails_with(
        &[
            "--month",
            "2026-11",
            "--schools",
            "2",
            "--counties",
            "3",
            "--out",
            o,
        ],
        "--counties",
    );
    fails_with(&["--month", "2026-11", "--out", o], "--schools");
    let out = bin()
        .args(["--month", "2026-13", "--schools", "2", "--out", o])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "));
}

#[test]
fn writes_the_three_files_and_a_summary() {
    let out = tmp("ok");
    let r = bin()
        .args([
            "--month",
            "2026-09",
            "--schools",
            "2",
            "--teachers-per-school",
            "6",
            "--students-per-school",
            "30",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let err = String::from_utf8(r.stderr).unwrap();
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.contains("events")
            && err.contains("duplicates")
            && err.contains("malformed")
            && err.contains("events/s"),
        "{err}"
    );
    let events = std::fs::read(out.join("events.ndjson")).unwrap();
    assert!(events.ends_with(b"\n"));
    let schools = std::fs::read_to_string(out.join("dims/schools.csv")).unwrap();
    assert_eq!(schools.lines().count(), 3);
    let users = std::fs::read_to_string(out.join("dims/users.csv")).unwrap();
    assert!(users.starts_with("user_id,school_id,role,name\n"));
    let help = bin().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--month",
        "--schools",
        "--teachers-per-school",
        "--students-per-school",
        "--seed",
        "--out",
        "--counties",
        "--lead-days",
        "--duplicate-share",
        "--malformed-share",
        "--disorder-hours",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// A month not over yet is generated, with a note that an ingest run now
/// rejects its events after tomorrow (`future_timestamp`); a past one is not.
#[test]
fn a_month_not_over_yet_gets_a_note() {
    let note = "is not over yet";
    for (month, expected) in [("2099-01", true), ("2025-01", false)] {
        let out = tmp(month);
        let o = bin()
            .args([
                "--month",
                month,
                "--schools",
                "1",
                "--teachers-per-school",
                "3",
            ])
            .args([
                "--students-per-school",
                "10",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{month}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.contains(note), expected, "{month}: {err}");
        assert!(out.join("events.ndjson").exists());
        let _ = std::fs::remove_dir_all(&out);
    }
}
