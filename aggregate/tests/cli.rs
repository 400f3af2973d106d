//! The binary: idempotent monthly runs that leave other months alone, and
//! one-line errors that write nothing on bad input.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

/// Every file under `dir` with its bytes, inode and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let m = fs::metadata(&p).unwrap();
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    (
                        fs::read(&p).unwrap(),
                        m.ino(),
                        m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    ),
                );
            }
        }
    }
    out
}

fn contents(s: &BTreeMap<String, (Vec<u8>, u64, i64)>) -> BTreeMap<String, Vec<u8>> {
    s.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

#[test]
fn monthly_is_idempotent_and_leaves_other_months_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-10");
    monthly(lake, "2026-11");
    let october = [
        snapshot(&lake.join("teacher_monthly/month=2026-10")),
        snapshot(&lake.join("school_monthly/month=2026-10")),
        snapshot(&lake.join("reports/2026-10")),
    ];
    let november = [
        snapshot(&lake.join("teacher_monthly/month=2026-11")),
        snapshot(&lake.join("school_monthly/month=2026-11")),
        snapshot(&lake.join("reports/2026-11")),
    ];
    monthly(lake, "2026-11");
    let october_after = [
        snapshot(&lake.join("teacher_monthly/month=2026-10")),
        snapshot(&lake.join("school_monthly/month=2026-10")),
        snapshot(&lake.join("reports/2026-10")),
    ];
    for (a, b) in october.iter().zip(&october_after) {
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, v) in a {
            assert!(v == &b[name], "October's {name} was touched");
        }
    }
    let november_after = [
        snapshot(&lake.join("teacher_monthly/month=2026-11")),
        snapshot(&lake.join("school_monthly/month=2026-11")),
        snapshot(&lake.join("reports/2026-11")),
    ];
    for (a, b) in november.iter().zip(&november_after) {
        let (a, b) = (contents(a), contents(b));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, bytes) in &a {
            assert!(bytes == &b[name], "{name} differs on a second run");
        }
    }
    // Only the month folders and no scratch left behind.
    for table in ["teacher_monthly", "school_monthly", "reports"] {
        let mut names: Vec<String> = fs::read_dir(lake.join(table))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let want: Vec<String> = if table == "reports" {
            vec!["2026-10".into(), "2026-11".into()]
        } else {
            vec!["month=2026-10".into(), "month=2026-11".into()]
        };
        assert_eq!(names, want, "{table}");
        let scratch = lake.join(".scratch").join(table);
        assert!(!scratch.exists(), "{} left", scratch.display());
    }
    // October: t5's 10 points of 10-31.
    let t = read_month(lake, "teacher_monthly", "2026-10");
    let t5 = (0..t.num_rows())
        .find(|&r| cell(&t, "user_id", r) == "t5")
        .unwrap();
    assert_eq!(cell(&t, "points", t5), "10");
}

/// A run that fails while writing its outputs (here `reports` is a file; a
/// full disk fails the same way, on any of them) leaves the month's published
/// tables as they were and removes the ones it had written.
#[test]
fn a_monthly_run_that_fails_writing_leaves_the_month_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    monthly(lake, "2026-11");
    let tables = ["teacher_monthly", "school_monthly"];
    let before: Vec<_> = tables.iter().map(|t| snapshot(&lake.join(t))).collect();
    fs::remove_dir_all(lake.join("reports")).unwrap();
    fs::write(lake.join("reports"), b"").unwrap();

    let err = monthly_fails(lake, "2026-11");
    assert!(err.contains("reports"), "{err}");
    for (t, before) in tables.iter().zip(&before) {
        assert!(&snapshot(&lake.join(t)) == before, "{t} changed");
    }
}

/// `monthly --lake LAKE --month MONTH`, expected to fail: its one line.
fn monthly_fails(lake: &Path, month: &str) -> String {
    fails(&[
        "monthly",
        "--lake",
        lake.to_str().unwrap(),
        "--month",
        month,
    ])
}

/// Runs the binary expecting failure; checks the message is one line and
/// returns it.
fn fails(args: &[&str]) -> String {
    let (ok, out, err) = run_bin(args);
    assert!(!ok, "expected failure of {args:?}, got success: {out}");
    let err = err.trim_end().to_string();
    assert_eq!(err.lines().count(), 1, "one-line error, got: {err}");
    err
}

fn assert_nothing_written(lake: &Path) {
    for table in ["teacher_monthly", "school_monthly", "reports"] {
        assert!(!lake.join(table).exists(), "{table} was written");
    }
}

/// A month scored under another profile than the one given: its rules'
/// points would be in `points` and in no `points_<rule>` column, so the
/// job refuses in one line naming them, and writes nothing. With `--rules`
/// (a choice of columns) the other rules only count in `points`.
#[test]
fn a_month_scored_under_rules_the_profile_lacks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let lake_s = lake.to_str().unwrap();
    let profile = dir.path().join("logins-only.toml");
    fs::write(
        &profile,
        "name = \"logins-only\"\ntitle = \"t\"\ntimezone = \"+08:00\"\nscored_role = \"teacher\"\n\n\
         [[rule]]\nid = \"login\"\nkind = \"daily_streak\"\naction = \"login\"\npoints = 1\n\
         streak_days = 7\nstreak_points = 2\n",
    )
    .unwrap();
    let err = fails(&[
        "monthly",
        "--lake",
        lake_s,
        "--month",
        "2026-11",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert!(
        err.starts_with(
            "huoyue-aggregate: daily_scores of 2026-11 has points of rules the profile does not list: app, interaction, profile, resource_spread, resource_submit, space_use, task, teach (its rules: login); the month was scored under another profile"
        ),
        "{err}"
    );
    assert_nothing_written(lake);
    let (ok, _, err) = run_bin(&[
        "monthly", "--lake", lake_s, "--month", "2026-11", "--rules", "login",
    ]);
    assert!(ok, "{err}");
}

/// A bad or missing flag is one line naming it (`fails` checks the one line).
#[test]
fn bad_flags_get_one_line_naming_them() {
    let err = fails(&["monthly", "--lake", "x"]);
    assert_eq!(
        err,
        "huoyue-aggregate: the following required arguments were not provided: --month <YYYY-MM> (see --help)"
    );
    let err = fails(&["compact", "--lake", "x", "--frobnicate"]);
    assert!(err.contains("'--frobnicate'"), "{err}");
    // a rule the profile lacks would be a column of zeros
    let err = fails(&[
        "monthly",
        "--lake",
        "x",
        "--month",
        "2026-11",
        "--rules",
        "login,logins",
    ]);
    assert!(
        err.starts_with("huoyue-aggregate: --rules: \"logins\" is not a rule of the profile"),
        "{err}"
    );
}

/// `rebuild-state` of a Kafka group needs both the group and the topic,
/// and a group with no checkpoints of the topic has nothing to rebuild.
#[test]
fn rebuild_state_of_a_kafka_group_names_what_is_missing() {
    let err = fails(&["rebuild-state", "--lake", "x", "--group", "g"]);
    assert!(err.contains("--topic"), "{err}");
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let err = fails(&[
        "rebuild-state",
        "--lake",
        lake_arg,
        "--group",
        "g",
        "--topic",
        "events",
    ]);
    assert!(
        err.contains("group g has no checkpoints of topic events")
            && err.ends_with("nothing was rebuilt"),
        "{err}"
    );
}

/// A 0-byte data file (a damaged disk, a copy cut short) read as a file
/// without rows gave the month without them: the job names it instead. One
/// in a later month does not matter to this one.
#[test]
fn an_empty_data_file_up_to_the_month_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let later = lake.join("daily_scores/day=2026-12-01/empty.parquet");
    std::fs::create_dir_all(later.parent().unwrap()).unwrap();
    std::fs::File::create(&later).unwrap();
    let day = lake.join("daily_activity/day=2026-11-07");
    let damaged = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::File::create(&damaged).unwrap();
    let err = monthly_fails(lake, "2026-11");
    assert_eq!(
        err,
        format!(
            "huoyue-aggregate: {} is empty (0 bytes), not a Parquet file: restore or remove it (the month would be computed without its rows)",
            damaged.display()
        )
    );
    assert_nothing_written(lake);
    std::fs::remove_file(&damaged).unwrap();
    monthly(lake, "2026-11");
}

#[test]
fn a_stray_folder_that_is_not_a_day_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let day = lake.join("daily_scores/day=2026-11-07");
    let copy = lake.join("daily_scores/day=2026-11-07 (copy)");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(&day).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    let err = monthly_fails(lake, "2026-11");
    assert_eq!(
        err,
        format!(
            "huoyue-aggregate: {}/daily_scores/day=2026-11-07 (copy): not a day folder (day=YYYY-MM-DD); move it out of the lake",
            lake.display()
        )
    );
    assert_nothing_written(lake);
    std::fs::remove_dir_all(&copy).unwrap();
    monthly(lake, "2026-11");
}

#[test]
fn a_month_without_data_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let err = monthly_fails(lake, "2026-08");
    assert_eq!(
        err,
        format!(
            "huoyue-aggregate: no data for month 2026-08 in {}",
            lake.display()
        )
    );
    assert_nothing_written(lake);
}

#[test]
fn a_roster_missing_a_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    fs::write(
        lake.join("dims/users.csv"),
        "user_id,school_id,name\nt1,3300000001,张一\n",
    )
    .unwrap();
    let err = monthly_fails(lake, "2026-11");
    assert!(err.contains("users.csv: missing column role"), "{err}");
    assert_nothing_written(lake);

    golden_lake(lake);
    let schools = fs::read_to_string(lake.join("dims/schools.csv")).unwrap();
    fs::write(
        lake.join("dims/schools.csv"),
        schools.replace("student_base", "students"),
    )
    .unwrap();
    let err = monthly_fails(lake, "2026-11");
    assert!(
        err.contains("schools.csv: missing column student_base"),
        "{err}"
    );
    assert_nothing_written(lake);
}

#[test]
fn a_school_id_that_is_not_ten_digits_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    golden_lake(lake);
    let schools = fs::read_to_string(lake.join("dims/schools.csv")).unwrap();
    fs::write(
        lake.join("dims/schools.csv"),
        schools.replace("3300000002,乙校", "330000002,乙校"),
    )
    .unwrap();
    let err = monthly_fails(lake, "2026-11");
    assert!(
        err.contains("schools.csv line 3: school_id \"330000002\" is not 10 digits"),
        "{err}"
    );
    assert_nothing_written(lake);

    golden_lake(lake);
    let users = fs::read_to_string(lake.join("dims/users.csv")).unwrap();
    fs::write(
        lake.join("dims/users.csv"),
        users.replace("t4,3300000002", "t4,33000000AB"),
    )
    .unwrap();
    let err = monthly_fails(lake, "2026-11");
    assert!(
        err.contains("users.csv line 7: school_id \"33000000AB\" is not 10 digits"),
        "{err}"
    );
    assert_nothing_written(lake);
}

#[test]
fn a_missing_lake_and_a_bad_month_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-lake");
    let err = monthly_fails(&missing, "2026-11");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists());

    golden_lake(dir.path());
    let err = monthly_fails(dir.path(), "2026-13");
    assert!(err.contains("invalid month \"2026-13\""), "{err}");
    assert_nothing_written(dir.path());

    let err = fails(&[
        "compact",
        "--lake",
        dir.path().to_str().unwrap(),
        "--day",
        "2026-02-30",
    ]);
    assert!(err.contains("invalid day \"2026-02-30\""), "{err}");
    let err = fails(&[
        "compact",
        "--lake",
        dir.path().to_str().unwrap(),
        "--table",
        "schools",
    ]);
    assert!(err.contains("cannot compact table \"schools\""), "{err}");
    let err = fails(&["compact", "--lake", missing.to_str().unwrap()]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn help_lists_both_commands() {
    let (ok, out, _) = run_bin(&["--help"]);
    assert!(ok);
    assert!(out.contains("monthly") && out.contains("compact"), "{out}");
    let (ok, out, _) = run_bin(&["monthly", "--help"]);
    assert!(ok);
    for opt in ["--lake", "--month", "--profile", "--rules"] {
        assert!(out.contains(opt), "{out}");
    }
}
