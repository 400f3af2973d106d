//! Conformance: the monthly tables of testdata/conformance/ (computed by an
//! independent implementation) reproduced from a lake built in the test.
//!
//! The monthly job is checked here on a lake derived from the case (so that a
//! fault of the ingest cannot hide in it; tests/spark.rs checks the same tables
//! on the lake the ingest writes, read back by Spark):
//! * `daily_scores` from `expected_daily_scores.csv` (the points), with each
//!   row's school from the events, and the points split into several delta
//!   rows over two files;
//! * `daily_activity` from `events.ndjson`: only valid events (events.md),
//!   de-duplicated by `event_id`, day = date of `ts` in +08:00, role and
//!   school of the user's first event of the day in (ts, event_id) order,
//!   counts split over two files.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use common::*;
use serde_json::Value;

// --- time ---------------------------------------------------------------------

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// RFC 3339 with a UTC offset or Z → (instant in µs since the epoch, year).
fn parse_ts(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 6)];
        micros = frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32);
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':' =>
        {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if rest.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    Some((secs * 1_000_000 + micros, y))
}

fn day_in_china(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000) + 8 * 3600;
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    format!("{y:04}-{m:02}-{d:02}")
}

// --- validation (events.md) ---------------------------------------------------------

fn id_ok(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| (1..=64).contains(&s.chars().count()) && !s.chars().any(char::is_control))
}
fn digits10(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 10 && s.bytes().all(|c| c.is_ascii_digit()))
}
fn short(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| (1..=32).contains(&s.chars().count()))
}
fn one_of(v: &Value, allowed: &[&str]) -> bool {
    v.as_str().is_some_and(|s| allowed.contains(&s))
}

enum Check {
    Ts,
    Pred(fn(&Value) -> bool),
}

/// (field, required, check) per action.
fn extra_fields(action: &str) -> Option<Vec<(&'static str, bool, Check)>> {
    use Check::*;
    Some(match action {
        "register" => vec![(
            "stage",
            false,
            Pred(|v| one_of(v, &["primary", "junior", "senior"])),
        )],
        "login" => vec![],
        "profile_update" => vec![(
            "items",
            true,
            Pred(|v| {
                v.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|x| one_of(x, &["avatar", "contact", "school", "subject"]))
                })
            }),
        )],
        "space_op" => vec![("op", true, Pred(short))],
        "resource_interact" => vec![
            ("resource_id", true, Pred(id_ok)),
            ("owner_id", true, Pred(id_ok)),
            ("owner_school_id", true, Pred(digits10)),
            (
                "op",
                true,
                Pred(|v| one_of(v, &["download", "favorite", "share", "comment", "view"])),
            ),
        ],
        "resource_review" => vec![
            ("resource_id", true, Pred(id_ok)),
            ("owner_id", true, Pred(id_ok)),
            ("owner_school_id", true, Pred(digits10)),
            (
                "level",
                true,
                Pred(|v| one_of(v, &["county", "city", "province"])),
            ),
            (
                "outcome",
                true,
                Pred(|v| one_of(v, &["approved", "deleted"])),
            ),
        ],
        "teach" => vec![
            ("lesson_id", true, Pred(id_ok)),
            (
                "duration_s",
                false,
                Pred(|v| v.as_i64().is_some_and(|n| n >= 0) || v.as_u64().is_some()),
            ),
        ],
        "task_publish" => vec![
            ("task_id", true, Pred(id_ok)),
            ("kind", true, Pred(|v| one_of(v, &["homework", "activity"]))),
        ],
        "task_progress" => vec![
            ("task_id", true, Pred(id_ok)),
            ("owner_id", true, Pred(id_ok)),
            ("owner_school_id", true, Pred(digits10)),
            ("published_at", true, Ts),
            ("status", true, Pred(|v| one_of(v, &["read", "completed"]))),
        ],
        "interaction" => vec![
            ("counterpart_id", true, Pred(id_ok)),
            (
                "counterpart_role",
                true,
                Pred(|v| one_of(v, &["student", "parent"])),
            ),
        ],
        "app_use" => vec![("app_id", true, Pred(short))],
        _ => return None,
    })
}

/// A valid event: (instant µs, event_id, the object).
fn validate(line: &[u8]) -> Result<(i64, String, serde_json::Map<String, Value>), &'static str> {
    if line.len() > 64 * 1024 {
        return Err("too_large");
    }
    let text = std::str::from_utf8(line).map_err(|_| "bad_utf8")?;
    let v: Value = serde_json::from_str(text).map_err(|_| "bad_json")?;
    let Value::Object(o) = v else {
        return Err("bad_json");
    };
    for f in ["event_id", "ts", "user_id", "role", "school_id", "action"] {
        if o.get(f).is_none_or(Value::is_null) {
            return Err("missing_field");
        }
    }
    let id_ok_chars = o["event_id"].as_str().is_some_and(|s| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c))
    });
    if !id_ok_chars {
        return Err("bad_value");
    }
    let Some(ts) = o["ts"].as_str() else {
        return Err("bad_value");
    };
    let (instant, year) = parse_ts(ts).ok_or("bad_timestamp")?;
    if !id_ok(&o["user_id"])
        || !one_of(&o["role"], &["teacher", "student", "parent", "admin"])
        || !digits10(&o["school_id"])
    {
        return Err("bad_value");
    }
    let Some(action) = o["action"].as_str() else {
        return Err("bad_value");
    };
    let fields = extra_fields(action).ok_or("unknown_action")?;
    if o.get("client")
        .is_some_and(|c| !c.is_null() && !one_of(c, &["pc", "mobile"]))
    {
        return Err("bad_value");
    }
    for (f, required, check) in fields {
        match o.get(f).filter(|v| !v.is_null()) {
            None if required => return Err("missing_field"),
            None => {}
            Some(v) => match check {
                Check::Ts => {
                    let s = v.as_str().ok_or("bad_value")?;
                    parse_ts(s).ok_or("bad_timestamp")?;
                }
                Check::Pred(p) => {
                    if !p(v) {
                        return Err("bad_value");
                    }
                }
            },
        }
    }
    // The fixture's future_timestamp lines are dated 2099.
    if year > 2090 {
        return Err("future_timestamp");
    }
    let id = o["event_id"].as_str().unwrap().to_string();
    Ok((instant, id, o))
}

struct Valid {
    instant: i64,
    id: String,
    day: String,
    ev: serde_json::Map<String, Value>,
}

fn s<'a>(ev: &'a serde_json::Map<String, Value>, f: &str) -> &'a str {
    ev.get(f).and_then(Value::as_str).unwrap_or("")
}

fn valid_events() -> Vec<Valid> {
    let text = std::fs::read(conformance_dir().join("events.ndjson")).unwrap();
    let mut seen = HashSet::new();
    let (mut read, mut valid, mut dups, mut rejected) = (0, 0, 0, 0);
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read += 1;
        match validate(line) {
            Err(_) => rejected += 1,
            Ok((instant, id, ev)) => {
                if !seen.insert(id.clone()) {
                    dups += 1;
                    continue;
                }
                valid += 1;
                out.push(Valid {
                    instant,
                    day: day_in_china(instant),
                    id,
                    ev,
                });
            }
        }
    }
    let counts: Value = serde_json::from_slice(
        &std::fs::read(conformance_dir().join("expected_counts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(read, counts["read"].as_i64().unwrap(), "lines read");
    assert_eq!(valid, counts["valid"].as_i64().unwrap(), "valid events");
    assert_eq!(dups, counts["duplicates"].as_i64().unwrap(), "duplicates");
    assert_eq!(rejected + valid + dups, read);
    out.sort_by(|a, b| {
        a.instant
            .cmp(&b.instant)
            .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
    });
    out
}

/// user, role, school, [logins, deep, registers, events].
type ActivityRow = (String, String, String, [i64; 4]);
/// user, school, rule, points, events.
type ScoreRow = (String, String, String, i64, i64);

const DEEP: [&str; 5] = [
    "space_op",
    "teach",
    "task_publish",
    "interaction",
    "app_use",
];

fn build_lake(lake: &Path) {
    copy_conformance_dims(lake);
    let events = valid_events();

    // daily_activity: per (day, user) the first event's role and school, and
    // counts; written as two delta files per day (even and odd events).
    #[derive(Default, Clone)]
    struct Acc {
        role: String,
        school: String,
        c: [[i64; 4]; 2],
    }
    let mut activity: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let acc = activity
            .entry((e.day.clone(), s(&e.ev, "user_id").to_string()))
            .or_insert_with(|| Acc {
                role: s(&e.ev, "role").to_string(),
                school: s(&e.ev, "school_id").to_string(),
                ..Acc::default()
            });
        let action = s(&e.ev, "action");
        let c = &mut acc.c[i % 2];
        c[0] += i64::from(action == "login");
        c[1] += i64::from(DEEP.contains(&action));
        c[2] += i64::from(action == "register");
        c[3] += 1;
    }
    let mut by_day: BTreeMap<String, [Vec<ActivityRow>; 2]> = BTreeMap::new();
    for ((day, user), acc) in &activity {
        let files = by_day.entry(day.clone()).or_default();
        for (f, c) in acc.c.iter().enumerate() {
            if c[3] > 0 {
                files[f].push((user.clone(), acc.role.clone(), acc.school.clone(), *c));
            }
        }
    }
    for (day, files) in &by_day {
        for (f, rows) in files.iter().enumerate() {
            let rows: Vec<Activity<'_>> = rows
                .iter()
                .map(|(u, r, sc, c)| (u.as_str(), r.as_str(), sc.as_str(), c[0], c[1], c[2], c[3]))
                .collect();
            if !rows.is_empty() {
                write_activity(lake, day, &format!("part-{f}"), &rows);
            }
        }
    }

    // The school a scored user's events state, per day (first in order) and
    // overall (first ever), for the school_id of daily_scores rows.
    let mut school_day: HashMap<(String, String), String> = HashMap::new();
    let mut school_any: HashMap<String, String> = HashMap::new();
    for e in &events {
        let action = s(&e.ev, "action");
        let (user, school) = if matches!(
            action,
            "resource_interact" | "resource_review" | "task_progress"
        ) {
            (s(&e.ev, "owner_id"), s(&e.ev, "owner_school_id"))
        } else {
            (s(&e.ev, "user_id"), s(&e.ev, "school_id"))
        };
        school_day
            .entry((e.day.clone(), user.to_string()))
            .or_insert_with(|| school.to_string());
        school_any
            .entry(user.to_string())
            .or_insert_with(|| school.to_string());
    }
    let scores =
        std::fs::read_to_string(conformance_dir().join("expected_daily_scores.csv")).unwrap();
    let mut files: BTreeMap<String, [Vec<ScoreRow>; 2]> = BTreeMap::new();
    for (n, line) in scores.lines().skip(1).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let (day, user, rule, points) = (f[0], f[1], f[2], f[3].parse::<i64>().unwrap());
        let school = school_day
            .get(&(day.to_string(), user.to_string()))
            .or_else(|| school_any.get(user))
            .cloned()
            .unwrap_or_else(|| "0000000000".to_string());
        let entry = files.entry(day.to_string()).or_default();
        // Deltas: a first row, then a correction in a second file; every
        // fifth key also gets a +5/−5 pair.
        let first = if points >= 2 { points - 1 } else { points };
        entry[0].push((user.to_string(), school.clone(), rule.to_string(), first, 1));
        if first != points {
            entry[1].push((
                user.to_string(),
                school.clone(),
                rule.to_string(),
                points - first,
                0,
            ));
        }
        if n % 5 == 0 {
            entry[0].push((user.to_string(), school.clone(), rule.to_string(), 5, 0));
            entry[1].push((user.to_string(), school, rule.to_string(), -5, 0));
        }
    }
    for (day, parts) in &files {
        for (f, rows) in parts.iter().enumerate() {
            let rows: Vec<Score<'_>> = rows
                .iter()
                .map(|(u, sc, r, p, e)| (u.as_str(), sc.as_str(), r.as_str(), *p, *e))
                .collect();
            if !rows.is_empty() {
                write_scores(lake, day, &format!("part-{f}"), &rows);
            }
        }
    }
}

fn compare(lake: &Path, table: &str, expected: &str, key: &str) {
    let got = read_month(lake, table, "2026-09");
    let columns: Vec<String> = got
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let rows: Vec<HashMap<String, String>> = (0..got.num_rows())
        .map(|r| {
            columns
                .iter()
                .map(|c| (c.clone(), cell(&got, c, r)))
                .collect()
        })
        .collect();
    assert_rows_match(table, &rows, &conformance_dir().join(expected), key);
}

/// Random events over rosters with the monthly job's edges
/// (`scripts/fuzz_events.py --dims`: a teacher and students missing from the
/// roster, a school without users, a student base of 0, two counties, users
/// stating another school), ingested, then August and September built: both
/// months' tables equal `scripts/reference_monthly.py`'s.
#[test]
fn monthly_tables_of_random_events_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let dims = lake.join("dims");
    let fuzzed = script(
        "fuzz_events.py",
        &[
            "51",
            "8000",
            "--jitter-hours",
            "30",
            "--dims",
            dims.to_str().unwrap(),
        ],
    );
    assert!(
        fuzzed.status.success(),
        "{}",
        String::from_utf8_lossy(&fuzzed.stderr)
    );
    common::ingest(&lake, fuzzed.stdout);
    for month in ["2026-08", "2026-09"] {
        monthly(&lake, month);
        assert_monthly_reference_agrees(&lake, month);
    }
}

/// `scripts/reference_monthly.py`, a second, plain implementation of the
/// monthly tables, finds the tables the job wrote for `month` in `lake`.
fn assert_monthly_reference_agrees(lake: &Path, month: &str) {
    let o = script("reference_monthly.py", &[lake.to_str().unwrap(), month]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("; 0 differences"),
        "{month}:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn monthly_tables_match_the_independent_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    build_lake(lake);
    monthly(lake, "2026-09");
    compare(
        lake,
        "teacher_monthly",
        "expected_teacher_monthly_2026-09.csv",
        "user_id",
    );
    compare(
        lake,
        "school_monthly",
        "expected_school_monthly_2026-09.csv",
        "school_id",
    );
    // scripts/reference_monthly.py, the second implementation any lake can be
    // checked with, agrees here too (so it stays true to the spec)
    assert_monthly_reference_agrees(lake, "2026-09");

    // The report of the conformance county, against the checked-in snapshot
    // (UPDATE_SNAPSHOTS=1 rewrites it).
    let md = std::fs::read_to_string(lake.join("reports/2026-09/331081/report.md")).unwrap();
    let snapshot = manifest_dir().join("tests/snapshots/conformance_331081_report.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &md).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
        panic!(
            "missing {}; run with UPDATE_SNAPSHOTS=1",
            snapshot.display()
        )
    });
    assert_eq!(
        md, want,
        "report.md differs from the snapshot (UPDATE_SNAPSHOTS=1 to accept)"
    );
    let province =
        std::fs::read_to_string(lake.join("reports/2026-09/province/report.md")).unwrap();
    let psnap = manifest_dir().join("tests/snapshots/conformance_province_report.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&psnap, &province).unwrap();
    }
    assert_eq!(province, std::fs::read_to_string(&psnap).unwrap());

    // The workbook is a zip with one sheet per section.
    let xlsx = std::fs::read(lake.join("reports/2026-09/331081/report.xlsx")).unwrap();
    assert_eq!(&xlsx[..4], b"PK\x03\x04", "report.xlsx is a zip file");
    let has = |name: &str| xlsx.windows(name.len()).any(|w| w == name.as_bytes());
    for n in 1..=6 {
        assert!(has(&format!("xl/worksheets/sheet{n}.xml")), "sheet {n}");
    }
    assert!(!has("xl/worksheets/sheet7.xml"), "exactly six sheets");
}
