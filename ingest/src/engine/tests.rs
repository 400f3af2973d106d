//! The worked examples of scoring.md and the edges of issue 2, as data.

use std::collections::BTreeMap;

use super::user::legacy;
use super::*;
use huoyue_schemas::decode;
use huoyue_schemas::time::{day_of, format_day, parse_rfc3339};

/// A `daily_scores` row's key: day, user, school, rule.
type RowKey = (String, String, String, String);

/// Sums deltas per (day, user, rule) and activity per (day, user).
#[derive(Default, Debug)]
pub(crate) struct Sums {
    pub scores: BTreeMap<(String, String, String), i64>,
    /// `events` per (day, user, rule), summed.
    pub events: BTreeMap<(String, String, String), i64>,
    pub rows: usize,
    pub activity: BTreeMap<(String, String), [i64; 4]>,
    /// (points, events) per (day, user, school, rule), summed.
    pub by_school: BTreeMap<RowKey, (i64, i64)>,
}

impl DeltaSink for Sums {
    fn score(&mut self, day: i32, user: &str, school: &str, rule: &str, points: i64, events: i64) {
        let row = (
            format_day(day),
            user.to_owned(),
            school.to_owned(),
            rule.to_owned(),
        );
        let sums = self.by_school.entry(row).or_default();
        (sums.0, sums.1) = (sums.0 + points, sums.1 + events);
        let key = (format_day(day), user.to_owned(), rule.to_owned());
        *self.events.entry(key.clone()).or_default() += events;
        *self.scores.entry(key).or_default() += points;
        self.rows += 1;
    }
    fn activity(&mut self, r: &ActivityRow<'_>) {
        let key = (format_day(r.day), r.user_id.to_string());
        add_counts(self.activity.entry(key).or_default(), r);
    }
}

/// Adds the counts of an activity row to `sums` (logins, deep actions,
/// registers, events).
fn add_counts(sums: &mut [i64; 4], r: &ActivityRow<'_>) {
    for (x, y) in sums
        .iter_mut()
        .zip([r.logins, r.deep_actions, r.registers, r.events])
    {
        *x += y;
    }
}

impl Sums {
    /// The (day, user, school, rule)s whose rows do not sum to nothing, with
    /// their (points, events).
    pub fn net_by_school(&self) -> Vec<(RowKey, (i64, i64))> {
        self.by_school
            .iter()
            .filter(|(_, v)| **v != (0, 0))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Non-zero sums as `day user rule points` lines.
    pub fn lines(&self) -> Vec<String> {
        self.scores
            .iter()
            .filter(|(_, p)| **p != 0)
            .map(|((d, u, r), p)| format!("{d} {u} {r} {p}"))
            .collect()
    }
}

const NOW: i64 = 4_000_000_000 * 1_000_000;

/// The start of a snapshot of `engine` as format `format` wrote it: the
/// header, then the rule shape `shape` (formats 7 on).
fn header_as(engine: &Engine, format: u32, shape: Option<&[String]>) -> Vec<u8> {
    let header = SnapshotHeader {
        format,
        profile: engine.profile_name.clone(),
        cfg: engine.cfg,
    };
    let bytes = postcard::to_stdvec(&header).unwrap();
    match shape {
        Some(shape) => postcard::to_extend(&shape, bytes).unwrap(),
        None => bytes,
    }
}

fn zhejiang() -> Profile {
    Profile::builtin("zhejiang-2018").unwrap()
}

/// A compact event: `<ts> <user> <action> [key=value ...]`, role teacher and school
/// 3333000001 unless given; `items=a,b`.
fn ev(n: usize, spec: &str) -> String {
    let mut parts = spec.split_whitespace();
    let ts = parts.next().unwrap();
    let ts = if ts.len() == 10 {
        format!("{ts}T10:00:00+08:00")
    } else {
        ts.to_owned()
    };
    let user = parts.next().unwrap();
    let action = parts.next().unwrap();
    let mut fields = BTreeMap::new();
    fields.insert(
        "event_id".to_owned(),
        serde_json::json!(format!("e-{n:06}")),
    );
    fields.insert("ts".to_owned(), serde_json::json!(ts));
    fields.insert("user_id".to_owned(), serde_json::json!(user));
    fields.insert("role".to_owned(), serde_json::json!("teacher"));
    fields.insert("school_id".to_owned(), serde_json::json!("3333000001"));
    fields.insert("action".to_owned(), serde_json::json!(action));
    for kv in parts {
        let (k, v) = kv.split_once('=').unwrap();
        let v = if k == "items" {
            serde_json::json!(v.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>())
        } else {
            serde_json::json!(v)
        };
        fields.insert(k.to_owned(), v);
    }
    serde_json::to_string(&fields).unwrap()
}

fn lines(specs: &[&str]) -> Vec<String> {
    specs.iter().enumerate().map(|(i, s)| ev(i, s)).collect()
}

/// Runs `events` through a fresh engine, flushing every `batch` events.
pub(crate) fn run(profile: &Profile, events: &[String], batch: usize) -> Sums {
    let mut engine = Engine::new(profile, EngineConfig::default());
    let mut sums = Sums::default();
    for (i, line) in events.iter().enumerate() {
        let e = decode(line.as_bytes(), NOW).unwrap_or_else(|r| panic!("{line}: {r:?}"));
        engine.process(&e);
        if (i + 1) % batch == 0 {
            engine.flush(&mut sums);
        }
    }
    engine.flush(&mut sums);
    sums
}

/// The data-driven check: events in, the non-zero sums expected out.
fn check(specs: &[&str], expected: &[&str]) {
    let events = lines(specs);
    let sums = run(&zhejiang(), &events, usize::MAX);
    assert_eq!(sums.lines(), expected, "in one batch");
    assert_eq!(
        run(&zhejiang(), &events, 1).lines(),
        expected,
        "flushed after each event"
    );
    let days: Vec<i32> = events
        .iter()
        .map(|l| day_of(decode(l.as_bytes(), NOW).unwrap().ts, 8 * 3600))
        .collect();
    if days.iter().max().unwrap() - days.iter().min().unwrap() <= 3 {
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(
            run(&zhejiang(), &reversed, 1).lines(),
            expected,
            "reversed, flushed after each event"
        );
    }
}

fn day_range(from: u32, to: u32, month: &str) -> Vec<String> {
    (from..=to)
        .map(|d| format!("2026-{month}-{d:02}"))
        .collect()
}

#[test]
fn login_streak_example() {
    let mut specs: Vec<String> = day_range(1, 10, "11")
        .iter()
        .map(|d| format!("{d} t1 login"))
        .collect();
    specs.push("2026-11-12 t1 login".into());
    specs.push("2026-11-12T11:00:00+08:00 t1 login".into());
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let sums = run(&zhejiang(), &lines(&specs), 3);
    let total: i64 = sums.scores.values().sum();
    assert_eq!(total, 15);
    assert_eq!(
        sums.scores[&("2026-11-06".into(), "t1".into(), "login".into())],
        1
    );
    assert_eq!(
        sums.scores[&("2026-11-07".into(), "t1".into(), "login".into())],
        2
    );
    assert_eq!(
        sums.scores[&("2026-11-12".into(), "t1".into(), "login".into())],
        1
    );
}

#[test]
fn login_streak_crosses_the_month() {
    let mut days = day_range(25, 31, "10");
    days.extend(day_range(1, 10, "11"));
    let specs: Vec<String> = days.iter().map(|d| format!("{d} t1 login")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let sums = run(&zhejiang(), &lines(&specs), 2);
    assert_eq!(
        sums.scores[&("2026-11-01".into(), "t1".into(), "login".into())],
        2
    );
    assert_eq!(
        sums.scores[&("2026-10-30".into(), "t1".into(), "login".into())],
        1
    );
    assert_eq!(
        sums.scores[&("2026-10-31".into(), "t1".into(), "login".into())],
        2
    );
}

#[test]
fn a_late_login_corrects_later_days() {
    // 1..=6 and 8..=9 Nov, then the 7th arrives: 8 and 9 become streak days.
    let mut specs: Vec<String> = [1, 2, 3, 4, 5, 6, 8, 9]
        .iter()
        .map(|d| format!("2026-11-{d:02} t1 login"))
        .collect();
    specs.push("2026-11-07 t1 login".into());
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let sums = run(&zhejiang(), &lines(&specs), 1);
    assert_eq!(
        sums.scores[&("2026-11-08".into(), "t1".into(), "login".into())],
        2
    );
    assert_eq!(
        sums.scores[&("2026-11-09".into(), "t1".into(), "login".into())],
        2
    );
    assert!(sums.rows > 9, "corrections were written as extra rows");
}

#[test]
fn resource_spread_example() {
    check(
        &[
            "2026-11-01T09:00:00+08:00 A resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=download",
            "2026-11-01T09:01:00+08:00 A resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=favorite",
            "2026-11-01T09:02:00+08:00 T resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=view",
            "2026-11-01T09:03:00+08:00 B resource_interact resource_id=R2 owner_id=T owner_school_id=3333000001 op=view",
            "2026-11-01T09:04:00+08:00 C resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=share",
            "2026-11-02T09:00:00+08:00 C resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=view",
            "2026-11-02T09:01:00+08:00 D resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=comment",
        ],
        &[
            "2026-11-01 T resource_spread 2",
            "2026-11-02 T resource_spread 1",
        ],
    );
}

#[test]
fn resource_spread_lifetime_cap_is_per_resource() {
    // 60 days of 3 new users a day on R1: 2 a day (daily cap) until the resource has
    // 50 in its life, on day 25; nothing after.
    let mut specs = Vec::new();
    for day in 0..60 {
        for k in 0..3 {
            let ts = 1_790_000_000 + day * 86_400 + k * 60;
            specs.push(format!(
                "{} u{day}-{k} resource_interact resource_id=R1 owner_id=T owner_school_id=3333000001 op=view",
                format_ts(ts)
            ));
        }
    }
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let sums = run(&zhejiang(), &lines(&specs), 7);
    let total: i64 = sums.scores.values().sum();
    assert_eq!(total, 50);
    assert_eq!(sums.scores.values().filter(|p| **p == 2).count(), 25);
}

fn format_ts(unix: i64) -> String {
    let day = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_day(day as i32),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn resource_submit_example() {
    let r = "resource_id=R owner_id=T owner_school_id=3333000001";
    check(
        &[
            &format!(
                "2026-11-03 admin resource_review {r} level=county outcome=approved role=admin"
            ),
            &format!(
                "2026-11-04 admin resource_review {r} level=county outcome=approved role=admin"
            ),
            &format!("2026-11-09 admin resource_review {r} level=city outcome=approved role=admin"),
            &format!(
                "2026-11-20 admin resource_review {r} level=province outcome=deleted role=admin"
            ),
            &format!(
                "2026-11-21 admin resource_review {r} level=province outcome=approved role=admin"
            ),
        ],
        &[
            "2026-11-03 T resource_submit 3",
            "2026-11-09 T resource_submit 7",
            "2026-11-20 T resource_submit -10",
        ],
    );
}

#[test]
fn a_deletion_takes_back_points_of_any_age() {
    let r = "resource_id=R owner_id=T owner_school_id=3333000001";
    let a = "resource_id=R2 owner_id=T owner_school_id=3333000001";
    let events = lines(&[
        &format!("2026-09-03 admin resource_review {r} level=county outcome=approved role=admin"),
        &format!("2026-09-04 admin resource_review {a} level=province outcome=approved role=admin"),
        &format!("2026-10-09 admin resource_review {r} level=province outcome=approved role=admin"),
        &format!("2026-11-20 admin resource_review {r} level=city outcome=deleted role=admin"),
    ]);
    let sums = run(&zhejiang(), &events, 1);
    assert_eq!(
        sums.lines(),
        [
            "2026-09-03 T resource_submit 3",
            "2026-09-04 T resource_submit 10",
            "2026-10-09 T resource_submit 10",
            "2026-11-20 T resource_submit -13",
        ]
    );
}

fn progress(task: &str, student: usize, ts: &str, published: &str) -> String {
    format!(
        "{ts} s{student} task_progress task_id={task} owner_id=T owner_school_id=3333000001 published_at={published} status=read role=student"
    )
}

#[test]
fn a_task_qualifies_days_after_its_publish_day() {
    let published = "2026-11-03T10:00:00+08:00";
    let mut specs = vec![format!(
        "{published} T task_publish task_id=K1 kind=homework"
    )];
    for s in 0..9 {
        specs.push(progress("K1", s, "2026-11-04T10:00:00+08:00", published));
    }
    specs.push(progress("K1", 3, "2026-11-04T11:00:00+08:00", published)); // same student again
    specs.push(progress("K1", 9, "2026-11-05T10:00:00+08:00", published)); // the 10th
    // a second task of the same day that also qualifies adds nothing
    for s in 0..10 {
        specs.push(progress(
            "K2",
            s,
            "2026-11-05T12:00:00+08:00",
            "2026-11-03T15:00:00+08:00",
        ));
    }
    // a task whose 10th student came after 30 days does not qualify
    for s in 0..10 {
        let ts = if s == 9 {
            "2026-12-04T10:00:00+08:00"
        } else {
            "2026-11-06T10:00:00+08:00"
        };
        specs.push(progress("K3", s, ts, "2026-11-04T09:00:00+08:00"));
    }
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let events = lines(&specs);
    for batch in [1, 5, usize::MAX] {
        assert_eq!(
            run(&zhejiang(), &events, batch).lines(),
            ["2026-11-03 T task 5"]
        );
    }
}

#[test]
fn a_task_correction_lands_on_an_old_publish_day() {
    // Published 1 Nov; the 10th student reads it on 25 Nov, far beyond the lateness.
    let published = "2026-11-01T10:00:00+08:00";
    let mut specs = Vec::new();
    for s in 0..9 {
        specs.push(progress("K1", s, "2026-11-02T10:00:00+08:00", published));
    }
    for d in 3..25 {
        specs.push(format!("2026-11-{d:02} T login"));
    }
    specs.push(progress("K1", 9, "2026-11-25T10:00:00+08:00", published));
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let sums = run(&zhejiang(), &lines(&specs), 1);
    assert_eq!(
        sums.scores[&("2026-11-01".into(), "T".into(), "task".into())],
        5
    );
}

/// A task's events count on its publish day, where its points go, even when
/// one states another `published_at` (a far one made a row, and a partition,
/// on its own day).
#[test]
fn a_tasks_events_count_on_its_publish_day() {
    let published = "2026-11-01T10:00:00+08:00";
    let mut specs = Vec::new();
    for s in 0..9 {
        specs.push(progress("K1", s, "2026-11-02T10:00:00+08:00", published));
    }
    specs.push(progress(
        "K1",
        9,
        "2026-11-03T10:00:00+08:00",
        "9999-12-30T10:00:00+08:00",
    ));
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    for batch in [1, usize::MAX] {
        let sums = run(&zhejiang(), &lines(&specs), batch);
        let task_rows: Vec<_> = sums.events.keys().filter(|k| k.2 == "task").collect();
        assert_eq!(
            task_rows,
            [&("2026-11-01".into(), "T".into(), "task".into())]
        );
        assert_eq!(sums.events[task_rows[0]], 10);
        assert_eq!(sums.lines(), ["2026-11-01 T task 5"]);
    }
}

#[test]
fn a_whole_day_worked() {
    let d = "2026-11-03T";
    let mut specs = vec![
        format!("{d}08:00:00+08:00 T login"),
        format!("{d}09:00:00+08:00 T login"),
        format!("{d}10:00:00+08:00 T login"),
        format!("{d}08:10:00+08:00 T profile_update items=avatar,contact"),
        format!("{d}08:20:00+08:00 T profile_update items=school,subject"),
        format!("{d}11:00:00+08:00 T space_op op=message client=mobile"),
        format!("{d}11:01:00+08:00 T space_op op=message client=mobile"),
        format!("{d}11:02:00+08:00 T space_op op=upload client=mobile"),
        format!("{d}11:03:00+08:00 T space_op op=upload client=pc"),
        format!("{d}12:00:00+08:00 T teach lesson_id=L1"),
        format!("{d}13:00:00+08:00 T teach lesson_id=L2"),
        format!("{d}14:00:00+08:00 T teach lesson_id=L3"),
        format!("{d}15:00:00+08:00 T app_use app_id=jiaoyan"),
        format!("{d}15:01:00+08:00 T app_use app_id=jiaoyan"),
        format!("{d}15:02:00+08:00 T app_use app_id=weike"),
        format!("{d}15:03:00+08:00 T app_use app_id=foo"),
    ];
    for (i, s) in [1, 2, 3, 4, 5, 6, 1, 2].iter().enumerate() {
        specs.push(format!(
            "{d}16:{i:02}:00+08:00 T interaction counterpart_id=s{s} counterpart_role=student"
        ));
    }
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    check(
        &specs,
        &[
            "2026-11-03 T app 4",
            "2026-11-03 T interaction 3",
            "2026-11-03 T login 1",
            "2026-11-03 T profile 5",
            "2026-11-03 T space_use 2",
            "2026-11-03 T teach 10",
        ],
    );
    let sums = run(&zhejiang(), &lines(&specs), 4);
    assert_eq!(sums.scores.values().sum::<i64>(), 25);
}

#[test]
fn interaction_tiers() {
    let mut specs = Vec::new();
    for s in 0..12 {
        specs.push(format!(
            "2026-11-03 T interaction counterpart_id=s{s} counterpart_role=student"
        ));
    }
    for s in 0..4 {
        specs.push(format!(
            "2026-11-04 T interaction counterpart_id=p{s} counterpart_role=parent"
        ));
    }
    for s in 0..9 {
        specs.push(format!(
            "2026-11-05 T interaction counterpart_id=p{s} counterpart_role=parent"
        ));
    }
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    check(
        &specs,
        &["2026-11-03 T interaction 5", "2026-11-05 T interaction 3"],
    );
}

#[test]
fn profile_completes_on_the_first_event_in_order_that_covers_all_four() {
    check(
        &[
            "2026-11-05 T profile_update items=subject",
            "2026-11-03 T profile_update items=avatar,contact",
            "2026-11-04 T profile_update items=school",
            "2026-11-06 T profile_update items=avatar,contact,school,subject",
        ],
        &["2026-11-05 T profile 5"],
    );
    check(
        &["2026-11-05 T profile_update items=avatar,contact,school"],
        &[],
    );
}

#[test]
fn only_teachers_are_scored_but_owners_always() {
    check(
        &[
            "2026-11-03 S login role=student",
            "2026-11-03 S teach lesson_id=L role=student",
            "2026-11-03 S resource_interact resource_id=R owner_id=T owner_school_id=3333000002 op=view role=student",
        ],
        &["2026-11-03 T resource_spread 1"],
    );
}

#[test]
fn the_day_is_china_time() {
    check(&["2026-11-02T16:30:00Z T login"], &["2026-11-03 T login 1"]);
}

#[test]
fn duplicates_and_late_events() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    let a = ev(1, "2026-11-10 T login");
    let e = decode(a.as_bytes(), NOW).unwrap();
    assert!(matches!(engine.process(&e), Outcome::Accepted { .. }));
    assert_eq!(engine.process(&e), Outcome::Duplicate);
    let on_time = ev(2, "2026-11-07 T login");
    let late = ev(3, "2026-11-06 T login");
    assert!(matches!(
        engine.process(&decode(on_time.as_bytes(), NOW).unwrap()),
        Outcome::Accepted { .. }
    ));
    let late = decode(late.as_bytes(), NOW).unwrap();
    assert_eq!(engine.process(&late), Outcome::Late);
    // a re-sent copy of the late event is a duplicate: the late one was seen
    assert_eq!(engine.process(&late), Outcome::Duplicate);
    let mut sums = Sums::default();
    engine.flush(&mut sums);
    assert_eq!(
        sums.lines(),
        ["2026-11-07 T login 1", "2026-11-10 T login 1"]
    );
    assert_eq!(
        sums.activity[&("2026-11-10".to_owned(), "T".to_owned())],
        [1, 0, 0, 1]
    );
}

/// A task's publish instant is the `published_at` of its first event in
/// order, even when later events state another, long after its window ended:
/// whether the state was folded between them changes nothing.
#[test]
fn a_task_past_its_window_does_not_start_again() {
    let mut specs = vec![progress(
        "K1",
        0,
        "2026-10-01T10:00:00+08:00",
        "2026-10-01T09:00:00+08:00",
    )];
    // the window moves on past 31 Oct, the end of K1's
    for d in 2..=31 {
        specs.push(format!("2026-10-{d:02} T login"));
    }
    // 12 students read K1 on 6 Nov, stating it was published on 5 Nov
    let (ts, published) = ("2026-11-06T10:00:00+08:00", "2026-11-05T10:00:00+08:00");
    specs.extend((1..=12).map(|s| progress("K1", s, ts, published)));
    assert_task_lines(&specs, &[]);
}

/// The `task` lines of the sums of `specs`, flushed every `batch` events.
fn task_lines(specs: &[String], batch: usize) -> Vec<String> {
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    run(&zhejiang(), &lines(&specs), batch)
        .lines()
        .into_iter()
        .filter(|l| l.contains(" task "))
        .collect()
}

/// Asserts the `task` lines of `specs`, flushed every 1, 2, 5 or 7 events
/// and once at the end: the same whatever the flushes.
fn assert_task_lines(specs: &[String], expected: &[&str]) {
    for batch in [1, 2, 5, 7, usize::MAX] {
        assert_eq!(task_lines(specs, batch), expected, "flushed every {batch}");
    }
}

/// Progress events of `task` by `students` on `day`, one an hour from 11:00,
/// stating `published`.
fn reads(task: &str, students: std::ops::Range<usize>, day: &str, published: &str) -> Vec<String> {
    students
        .enumerate()
        .map(|(i, s)| {
            progress(
                task,
                s,
                &format!("{day}T{:02}:00:00+08:00", 11 + i),
                published,
            )
        })
        .collect()
}

/// An unqualified task is forgotten two windows and the lateness after its
/// publish instant (K1: 1 Jul, so after 2 Sep): ten students reading it
/// later, stating another `published_at`, start it anew and it qualifies on
/// that day, whether the state was folded between (K1 forgotten) or not
/// (still held, as in one flush).
#[test]
fn an_unqualified_task_starts_anew_after_it_is_forgotten_whatever_the_flushes() {
    let first = |task| reads(task, 20..21, "2026-07-01", "2026-07-01T10:00:00+08:00");
    let mut specs = first("K1");
    specs.push("2026-09-07T12:00:00+08:00 T login".to_owned());
    specs.extend(reads(
        "K1",
        0..10,
        "2026-09-14",
        "2026-09-14T09:00:00+08:00",
    ));
    assert_task_lines(&specs, &["2026-09-14 T task 5"]);
    // Started anew on 3 Sep, the day after; an event of 1 Sep that comes
    // after, within the lateness, is the old task's and counts for nothing
    // (it does not become the new one's first and move its publish day).
    let mut specs = first("K2");
    specs.extend(reads(
        "K2",
        0..10,
        "2026-09-03",
        "2026-09-03T09:00:00+08:00",
    ));
    specs.extend(reads(
        "K2",
        21..22,
        "2026-09-01",
        "2026-09-01T09:00:00+08:00",
    ));
    assert_task_lines(&specs, &["2026-09-03 T task 5"]);
}

/// A task is not sealed while its first event can still change: ten
/// students state a publish instant whose window ended weeks ago, then the
/// task's first event in order comes (within the lateness) stating the day's;
/// the students count, however the state was folded between.
#[test]
fn a_task_is_not_sealed_before_its_first_event_is_final() {
    let mut specs = reads("K1", 0..10, "2026-09-10", "2026-08-01T09:00:00+08:00");
    specs.push(progress(
        "K1",
        20,
        "2026-09-10T10:00:00+08:00",
        "2026-09-10T09:00:00+08:00",
    ));
    assert_task_lines(&specs, &["2026-09-10 T task 5"]);
}

/// Whether an event starts an unqualified task anew does not depend on
/// which came first: K1's first event in order (15 Sep) states a publish
/// instant two months back, the next (the same day) another; that day is
/// not past the first event's day plus the lateness, so the second joins the
/// task whichever arrives first. Nine students on 19 Sep start it anew, and
/// are one short.
#[test]
fn a_task_starts_anew_alike_whatever_arrives_first() {
    let then = "2026-08-29T10:00:00+08:00";
    let first = progress(
        "K1",
        20,
        "2026-09-15T08:00:00+08:00",
        "2026-07-13T10:00:00+08:00",
    );
    let second = progress("K1", 21, "2026-09-15T09:00:00+08:00", then);
    for pair in [[&first, &second], [&second, &first]] {
        let mut specs: Vec<String> = pair.into_iter().cloned().collect();
        specs.extend(reads("K1", 0..9, "2026-09-19", then));
        assert_task_lines(&specs, &[]);
    }
}

/// An event that comes after the one that started a task anew, of a day the
/// old task still takes (not past its first event's day plus the lateness),
/// is the old task's: it does not become the new one's first and start it
/// anew again later. K1 is first read on 11 Sep stating 9 Jul, read again on
/// 15 Sep (starting it anew), then a read of 14 Sep comes; the students of
/// 18 Sep join the task started on 15 Sep, whose window ended long ago.
#[test]
fn an_event_of_the_old_tasks_days_stays_with_it() {
    let old = "2026-07-09T10:00:00+08:00";
    let mut specs = reads("K1", 20..21, "2026-09-11", old);
    specs.extend(reads("K1", 21..22, "2026-09-15", old));
    specs.extend(reads("K1", 22..23, "2026-09-14", old));
    specs.extend(reads(
        "K1",
        0..11,
        "2026-09-18",
        "2026-09-18T09:00:00+08:00",
    ));
    assert_task_lines(&specs, &[]);
}

/// A qualified task is kept as that fact for good (lake.md, guarantee 5):
/// students reading it months later, stating another `published_at`, do not
/// make it qualify again, however long the state has been folded past it.
#[test]
fn a_qualified_task_does_not_earn_again_months_later() {
    let published = "2026-10-01T09:00:00+08:00";
    let mut specs: Vec<String> = (0..10)
        .map(|s| progress("K1", s, "2026-10-02T10:00:00+08:00", published))
        .collect();
    // the window moves on past 1 Oct + 60 days, when an unqualified task is forgotten
    for m in 10..=12 {
        for d in 1..=28 {
            specs.push(format!("2026-{m:02}-{d:02} T login"));
        }
    }
    let (ts, published) = ("2027-01-06T10:00:00+08:00", "2027-01-05T10:00:00+08:00");
    specs.extend((10..22).map(|s| progress("K1", s, ts, published)));
    assert_task_lines(&specs, &["2026-10-01 T task 5"]);
}

/// An engine that forgets remembered ids by event time only (no count of
/// recent arrivals kept), so that tests see the forgetting.
fn forgetting_by_event_time(profile: &Profile) -> Engine {
    let cfg = EngineConfig {
        dedup_recent: 0,
        ..EngineConfig::default()
    };
    Engine::new(profile, cfg)
}

/// Feeds the compact event `spec` (numbered `n`) as read from `partition`.
fn feed(engine: &mut Engine, n: usize, spec: &str, partition: i32) -> Outcome {
    let line = ev(n, spec);
    engine.process_from(&decode(line.as_bytes(), NOW).unwrap(), partition)
}

/// Feeds `user`'s login on each of `days` from `partition` (event ids from
/// `first_id` on), flushing after each day; each must be accepted.
fn login_daily(
    engine: &mut Engine,
    sums: &mut Sums,
    first_id: usize,
    days: &[String],
    user: &str,
    partition: i32,
) {
    for (i, d) in days.iter().enumerate() {
        let outcome = feed(
            engine,
            first_id + i,
            &format!("{d} {user} login"),
            partition,
        );
        assert!(
            matches!(outcome, Outcome::Accepted { .. }),
            "{d}: {outcome:?}"
        );
        engine.flush(sums);
    }
}

/// The sum of all of `user`'s points.
fn points_of(sums: &Sums, user: &str) -> i64 {
    sums.scores
        .iter()
        .filter(|((_, u, _), _)| u == user)
        .map(|(_, p)| p)
        .sum()
}

/// A task's points on a publish day without a scoring event of the teacher
/// are written under the teacher's latest school; a scoring event of that
/// day that comes later (a login) makes its school the day's, and the task
/// rows move to it, as in one flush of every event.
#[test]
fn rows_written_before_their_day_had_a_scoring_event_move_to_its_school() {
    let profile = zhejiang();
    let published = "2026-09-20T09:00:00+08:00";
    let progress: Vec<String> = (0..10)
        .map(|s| {
            format!(
                "2026-09-21T10:{s:02}:00+08:00 s{s} task_progress task_id=K owner_id=T owner_school_id=3333000002 published_at={published} status=read role=student"
            )
        })
        .collect();
    let login = "2026-09-20T08:00:00+08:00 T login school_id=3333000004";
    let mut two = Engine::new(&profile, EngineConfig::default());
    let mut moved = Sums::default();
    for (n, spec) in progress.iter().enumerate() {
        feed(&mut two, n, spec, FILE_SOURCE);
    }
    two.flush(&mut moved);
    feed(&mut two, 99, login, FILE_SOURCE);
    two.flush(&mut moved);

    let mut one = Engine::new(&profile, EngineConfig::default());
    let mut in_one = Sums::default();
    for (n, spec) in progress.iter().enumerate() {
        feed(&mut one, n, spec, FILE_SOURCE);
    }
    feed(&mut one, 99, login, FILE_SOURCE);
    one.flush(&mut in_one);

    assert_eq!(moved.net_by_school(), in_one.net_by_school());
    let task = (
        "2026-09-20".into(),
        "T".into(),
        "3333000004".into(),
        "task".into(),
    );
    assert_eq!(in_one.by_school[&task].0, 5);
}

/// A checkpoint of format 9 (a user's written (day, rule)s without their
/// events and school), its users in a segment, restores: the rows written
/// get their day's school, scoring goes on like the engine it came from,
/// and the next segment is a base (of the new layout).
#[test]
fn a_format_9_checkpoint_with_segments_restores() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    engine.log_changes();
    feed(
        &mut engine,
        1,
        "2026-11-03T10:00:00+08:00 t1 teach lesson_id=L1",
        FILE_SOURCE,
    );
    feed(
        &mut engine,
        2,
        "2026-11-04 t1 login school_id=3333000002",
        FILE_SOURCE,
    );
    engine.flush(&mut Sums::default());
    let (snapshot, segment) = legacy::with(true, || {
        let snapshot = engine.snapshot_without_segments_into(Vec::new());
        (snapshot, engine.take_segment(true))
    });
    let (_, rest) = Engine::check_snapshot(&profile, &snapshot).unwrap();
    let mut old = header_as(&engine, 9, Some(&engine.rule_shape));
    old.extend_from_slice(rest);
    let mut restored = Engine::restore_with_segments(&profile, &old, &[&segment.bytes]).unwrap();
    let user = |e: &Engine| {
        e.state.users[0]
            .emitted
            .iter()
            .map(|w| (w.day, w.rule, w.points, w.school.as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(user(&restored), user(&engine));
    // an earlier event of the 3rd at another school moves its rows alike
    // (the points: the events written before format 10 are not known)
    let mut after = (Sums::default(), Sums::default());
    for (e, sums) in [(&mut engine, &mut after.0), (&mut restored, &mut after.1)] {
        feed(
            e,
            3,
            "2026-11-03T09:00:00+08:00 t1 login school_id=3333000003",
            FILE_SOURCE,
        );
        e.flush(sums);
    }
    let points = |s: &Sums| -> BTreeMap<_, _> {
        s.by_school.iter().map(|(k, v)| (k.clone(), v.0)).collect()
    };
    assert_eq!(points(&after.0), points(&after.1));
    let teach = |school: &str| {
        (
            "2026-11-03".into(),
            "t1".into(),
            school.into(),
            "teach".into(),
        )
    };
    assert_eq!(points(&after.1)[&teach("3333000001")], -5);
    assert_eq!(points(&after.1)[&teach("3333000003")], 5);
    restored.log_changes();
    assert!(restored.take_segment(false).base);
}

/// lake.md: a (day, user)'s rows keep the school of its first scoring event
/// in order. An earlier event stating another school that comes after the
/// day's rows were written moves what was written, points and events, to
/// its school: the rows then sum by school as if it had come first.
#[test]
fn rows_move_to_the_school_of_an_earlier_event_that_comes_later() {
    let profile = zhejiang();
    let a = "2026-11-03T10:00:00+08:00 t1 teach lesson_id=L1 school_id=3333000001";
    let login = "2026-11-03T11:00:00+08:00 t1 login school_id=3333000001";
    let b = "2026-11-03T09:00:00+08:00 t1 teach lesson_id=L2 school_id=3333000002";
    let mut late = Engine::new(&profile, EngineConfig::default());
    let mut moved = Sums::default();
    feed(&mut late, 1, a, FILE_SOURCE);
    feed(&mut late, 2, login, FILE_SOURCE);
    late.flush(&mut moved);
    // a snapshot between: the written school is part of the state
    let mut late = Engine::restore(&profile, &late.snapshot()).unwrap();
    // only the teach rule gets an event; the login's row moves too
    feed(&mut late, 3, b, FILE_SOURCE);
    late.flush(&mut moved);

    let mut first = Engine::new(&profile, EngineConfig::default());
    let mut in_order = Sums::default();
    for (n, spec) in [(3, b), (1, a), (2, login)] {
        feed(&mut first, n, spec, FILE_SOURCE);
    }
    first.flush(&mut in_order);

    assert_eq!(moved.net_by_school(), in_order.net_by_school());
    let day = |school: &str, rule: &str| {
        let key = ("2026-11-03".into(), "t1".into(), school.into(), rule.into());
        moved.by_school.get(&key).copied()
    };
    assert_eq!(day("3333000002", "teach"), Some((10, 2)));
    assert_eq!(day("3333000002", "login"), Some((1, 1)));
    assert_eq!(day("3333000001", "teach"), Some((0, 0)));
    assert_eq!(day("3333000001", "login"), Some((0, 0)));
}

/// Lateness, folding and forgetting go by each source partition's own newest
/// day: a partition read a month behind another loses nothing, its own late
/// events are still late, and its remembered ids outlive the other's progress.
#[test]
fn lateness_is_per_source_partition() {
    let profile = zhejiang();
    let mut engine = forgetting_by_event_time(&profile);
    let mut sums = Sums::default();
    // partition 1: a month of t1's logins, flushed (folded) as it goes
    login_daily(
        &mut engine,
        &mut sums,
        100,
        &day_range(1, 30, "11"),
        "t1",
        1,
    );
    // an event for t1 from another partition (keys not by scored user) is
    // late before the window t1's state was folded to, not scored into it
    assert_eq!(
        feed(&mut engine, 150, "2026-11-05 t1 login", 2),
        Outcome::Late
    );
    assert!(matches!(
        feed(&mut engine, 151, "2026-11-28 t1 login", 2),
        Outcome::Accepted { .. }
    ));
    // partition 0 starts at the beginning of the month: nothing is late
    let first = ev(1, "2026-11-01 t0 login");
    let first = decode(first.as_bytes(), NOW).unwrap();
    assert!(matches!(
        engine.process_from(&first, 0),
        Outcome::Accepted { .. }
    ));
    login_daily(&mut engine, &mut sums, 200, &day_range(2, 6, "11"), "t0", 0);
    let sixth = parse_rfc3339("2026-11-06T10:00:00+08:00").unwrap();
    assert_eq!(
        engine.newest_day_of(0),
        Some(day_of(sixth, profile.offset_seconds))
    );
    // its own late events are late, by its own newest day (the 6th)
    assert_eq!(
        feed(&mut engine, 300, "2026-11-02 t0 login", 0),
        Outcome::Late
    );
    assert!(matches!(
        feed(&mut engine, 301, "2026-11-03 t0 login", 0),
        Outcome::Accepted { .. }
    ));
    // the 1st's id is still remembered within partition 0's 7 days of
    // de-duplication (partition 1 is 29 days past it), across a restore...
    let snap = engine.snapshot();
    let mut engine = Engine::restore(&profile, &snap).unwrap();
    assert_eq!(engine.process_from(&first, 0), Outcome::Duplicate);
    // ...and forgotten once partition 0 itself has moved on
    login_daily(
        &mut engine,
        &mut sums,
        400,
        &day_range(7, 20, "11"),
        "t0",
        0,
    );
    assert_eq!(engine.process_from(&first, 0), Outcome::Late);
    engine.flush(&mut sums);
    // every login scored, streaks included, as if each partition were alone
    let alone = |user: &str, to: u32| {
        let specs: Vec<String> = day_range(1, to, "11")
            .iter()
            .map(|d| format!("{d} {user} login"))
            .collect();
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        points_of(&run(&profile, &lines(&specs), 1), user)
    };
    assert_eq!(points_of(&sums, "t1"), alone("t1", 30));
    assert_eq!(points_of(&sums, "t0"), alone("t0", 20));
}

/// A checkpoint written before sources had a newest day each (format 5)
/// restores: an upgrade keeps its state, and scoring goes on as if it had not
/// stopped.
#[test]
fn a_format_5_snapshot_restores() {
    let profile = zhejiang();
    // so that forgetting is compared too
    let mut engine = forgetting_by_event_time(&profile);
    let login = |engine: &mut Engine, n: usize, day: u32| {
        feed(engine, n, &format!("2026-11-{day:02} t1 login"), 1)
    };
    let mut sums = Sums::default();
    for day in 1..=10 {
        login(&mut engine, day as usize, day);
        engine.flush(&mut sums);
    }
    // the same state as format 5 wrote it: no sources, one window, 28-byte ids
    let st = &engine.state;
    let (newest_day, folded_to) = (engine.newest_day(), st.sources[0].folded_to);
    let mut old = header_as(&engine, 5, None);
    let fields = (
        &newest_day,
        &folded_to,
        &st.arrivals,
        &st.users,
        &st.dirty,
        &st.activity,
    );
    // the users as formats before 10 laid them out
    old = legacy::with(true, || postcard::to_extend(&fields, old)).unwrap();
    packed_ids::write(st.seen.iter(), &mut old, packed_ids::Layout::NoPartition).unwrap();
    let mut restored = Engine::restore(&profile, &old).unwrap();
    assert_eq!(restored.newest_day_of(1), engine.newest_day_of(1));
    assert_eq!(login(&mut restored, 9, 9), Outcome::Duplicate);
    assert_eq!(login(&mut restored, 99, 2), Outcome::Late);
    let mut after = (Sums::default(), Sums::default());
    for day in 11..=20 {
        login(&mut engine, day as usize, day);
        login(&mut restored, day as usize, day);
        engine.flush(&mut after.0);
        restored.flush(&mut after.1);
    }
    assert_eq!(after.0.scores, after.1.scores);
    // days 1 to 12 forgotten by both (7 days before the 20th)
    assert_eq!(engine.stats().remembered_ids, 8);
    assert_eq!(restored.stats().remembered_ids, 8);
    // and it is written back in the current format
    let again = Engine::restore(&profile, &restored.snapshot()).unwrap();
    assert_eq!(again.stats().remembered_ids, engine.stats().remembered_ids);
}

/// A profile that keeps its name may change its rules' parameters under a
/// kept state, not the rules themselves, its time zone or its scored role: a
/// state is refused by a profile whose rules differ, with both lists named. A
/// format-6 snapshot (no rules recorded) still restores.
#[test]
fn a_state_is_restored_only_under_rules_of_its_shape() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    engine.process(&decode(ev(1, "2026-11-03 T teach lesson_id=L1").as_bytes(), NOW).unwrap());
    let snap = engine.snapshot();

    let mut fewer = profile.clone();
    fewer.rules.remove(0);
    let err = Engine::restore(&fewer, &snap)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("login:daily_streak:login, profile:") && err.contains("now profile:"),
        "{err}"
    );

    let mut cap = profile.clone();
    for r in &mut cap.rules {
        if let huoyue_schemas::profile::RuleKind::PerEvent { daily_cap, .. } = &mut r.kind {
            *daily_cap = Some(15);
        }
    }
    assert!(Engine::restore(&cap, &snap).is_ok());

    // the days are counted in the profile's time zone, and only its scored
    // role earns: neither may change under a kept state
    let mut west = profile.clone();
    west.timezone = "-03:00".into();
    west.offset_seconds = -3 * 3600;
    let err = Engine::restore(&west, &snap)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("timezone +08:00, scored_role teacher, now")
            && err.contains("timezone -03:00"),
        "{err}"
    );
    let mut students = profile.clone();
    students.scored_role = huoyue_schemas::event::Role::Student;
    let err = Engine::restore(&students, &snap)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("scored_role student"), "{err}");
    assert!(Engine::check_profile(&students, &snap).is_err());
    assert!(Engine::check_profile(&cap, &snap).is_ok());

    // until session 19 a snapshot recorded the rules alone
    let shape = &engine.rule_shape[..profile.rules.len()];
    let mut before = header_as(&engine, SNAPSHOT_FORMAT, Some(shape));
    let (_, rest) = Engine::check_snapshot(&profile, &snap).unwrap();
    before.extend_from_slice(rest);
    let restored = Engine::restore(&profile, &before).unwrap();
    assert_eq!(restored.stats().users, engine.stats().users);

    // format 6: the header, then the state, without the rules
    let mut old = header_as(&engine, 6, None);
    old = legacy::with(true, || postcard::to_extend(&engine.state, old)).unwrap();
    packed_ids::write(
        engine.state.seen.iter(),
        &mut old,
        packed_ids::Layout::WithPartition,
    )
    .unwrap();
    let restored = Engine::restore(&profile, &old).unwrap();
    assert_eq!(restored.stats().remembered_ids, 1);
}

#[test]
fn snapshot_restore_round_trips() {
    let specs: Vec<String> = day_range(1, 12, "11")
        .iter()
        .map(|d| format!("{d} t1 login"))
        .collect();
    let events = lines(&specs.iter().map(String::as_str).collect::<Vec<_>>());
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    let mut sums = Sums::default();
    for (i, line) in events.iter().enumerate() {
        engine.process(&decode(line.as_bytes(), NOW).unwrap());
        if i == 5 {
            let snap = engine.snapshot();
            engine = Engine::restore(&profile, &snap).unwrap();
        }
    }
    engine.flush(&mut sums);
    assert_eq!(sums.scores.values().sum::<i64>(), 6 + 12);
    assert!(Engine::restore(&profile, b"garbage").is_err());
}

/// A snapshot written into a used buffer is the same as one written fresh.
#[test]
fn a_snapshot_into_a_used_buffer_is_the_same_snapshot() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    for line in lines(&["2026-11-02 t1 login", "2026-11-03 t2 login"]) {
        engine.process(&decode(line.as_bytes(), NOW).unwrap());
    }
    let fresh = engine.snapshot();
    let used = vec![0xAB; fresh.len() * 3];
    assert_eq!(engine.snapshot_into(used), fresh);
}

/// A snapshot whose school id bytes are not UTF-8 is refused as corrupt, not
/// restored to panic at the next flush that writes the school.
#[test]
fn a_snapshot_with_a_broken_school_id_is_corrupt() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    for line in lines(&["2026-11-02 t1 login"]) {
        engine.process(&decode(line.as_bytes(), NOW).unwrap());
    }
    let snap = engine.snapshot();
    assert!(Engine::restore(&profile, &snap).is_ok());
    let school = b"3333000001";
    let at = snap
        .windows(school.len())
        .position(|w| w == school)
        .expect("the snapshot holds the school id");
    let mut broken = snap.clone();
    broken[at + 4] = 0xFF;
    match Engine::restore(&profile, &broken) {
        Err(RestoreError::Corrupt(_)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("restored a school id that is not UTF-8"),
    }
}

#[test]
fn timestamps_parse_in_tests() {
    assert!(parse_rfc3339("2026-11-03T10:00:00+08:00").is_some());
}

#[test]
fn absorb_moves_a_partitions_users_to_their_new_owner() {
    // t1 on partition 0, t2 on partition 1; resources so that lifetime state matters
    let specs: Vec<String> = day_range(1, 10, "11")
        .iter()
        .flat_map(|d| {
            [
                format!("{d} t1 login"),
                format!("{d} t2 login"),
                format!(
                    "{d} s{d} resource_interact resource_id=R1 owner_id=t2 owner_school_id=3333000001 op=download"
                ),
            ]
        })
        .collect();
    let events = lines(&specs.iter().map(String::as_str).collect::<Vec<_>>());
    let part = |line: &str| {
        i32::from(line.contains("\"owner_id\":\"t2\"") || line.contains("\"user_id\":\"t2\""))
    };
    let profile = zhejiang();
    let whole = run(&profile, &events, usize::MAX);

    // instance A has both partitions for the first half, then partition 1 moves to B
    let half = events.len() / 2;
    let mut a = Engine::new(&profile, EngineConfig::default());
    let mut sums = Sums::default();
    for line in &events[..half] {
        a.process_from(&decode(line.as_bytes(), NOW).unwrap(), part(line));
    }
    a.flush(&mut sums);
    let checkpoint = a.snapshot();
    let mut b = Engine::new(&profile, EngineConfig::default());
    b.absorb(
        Engine::restore(&profile, &checkpoint).unwrap(),
        &[1].into_iter().collect(),
    );
    for line in &events[half..] {
        let e = decode(line.as_bytes(), NOW).unwrap();
        if part(line) == 1 {
            b.process_from(&e, 1);
        } else {
            a.process_from(&e, 0);
        }
    }
    a.flush(&mut sums);
    b.flush(&mut sums);
    // activity rows of partition-1 actors (students) are per day and per flush:
    // the sums of scores and activity are what must agree
    assert_eq!(sums.lines(), whole.lines());
    assert_eq!(sums.activity, whole.activity);
    // B took partition 1's remembered ids only; A lets partition 1 go
    let ids_of = |e: &Engine, p: i32| e.state.seen.values().filter(|s| s.partition == p).count();
    assert_eq!(ids_of(&b, 0), 0);
    assert!(ids_of(&a, 1) > 0);
    assert_eq!(
        a.release(|p| p != 0),
        1,
        "t2, the one scored user of partition 1"
    );
    assert_eq!(ids_of(&a, 1), 0);
    assert!(ids_of(&a, 0) > 0);
    assert_eq!(a.newest_day_of(1), None);
    assert_eq!(a.release(|p| p != 0), 0);

    // without the state, B would score t2's resource again
    let mut fresh = Engine::new(&profile, EngineConfig::default());
    let mut wrong = Sums::default();
    let mut a2 = Engine::restore(&profile, &checkpoint).unwrap();
    for line in &events[half..] {
        let e = decode(line.as_bytes(), NOW).unwrap();
        if part(line) == 1 {
            fresh.process_from(&e, 1);
        } else {
            a2.process_from(&e, 0);
        }
    }
    let mut first = Sums::default();
    let mut a3 = Engine::new(&profile, EngineConfig::default());
    for line in &events[..half] {
        a3.process_from(&decode(line.as_bytes(), NOW).unwrap(), part(line));
    }
    a3.flush(&mut first);
    fresh.flush(&mut wrong);
    a2.flush(&mut wrong);
    for ((d, u, r), p) in first.scores {
        *wrong.scores.entry((d, u, r)).or_default() += p;
    }
    assert_ne!(
        wrong.lines(),
        whole.lines(),
        "the test data need the lifetime state"
    );
}

/// A snapshot written to a full disk reports the disk's error (postcard alone
/// reports any writer's error as "the serialize buffer is full").
#[test]
fn a_snapshot_to_a_full_disk_says_so() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let engine = Engine::new(&zhejiang(), EngineConfig::default());
    let e = engine.snapshot_to(&mut Full).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
}

/// `daily_activity` summed by (day, actor, role, school), zero sums left out.
#[derive(Default)]
struct ActivityBySchool(BTreeMap<(String, String, String, String), [i64; 4]>);

impl DeltaSink for ActivityBySchool {
    fn score(&mut self, _: i32, _: &str, _: &str, _: &str, _: i64, _: i64) {}
    fn activity(&mut self, r: &ActivityRow<'_>) {
        let key = (
            format_day(r.day),
            r.user_id.to_owned(),
            r.role.as_str().to_owned(),
            r.school_id.to_owned(),
        );
        add_counts(self.0.entry(key).or_default(), r);
    }
}

impl ActivityBySchool {
    fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, c)| c.iter().any(|n| *n != 0))
            .map(|((d, u, role, s), c)| format!("{d} {u} {role} {s} {c:?}"))
            .collect()
    }
}

/// Every order of `items`.
fn orders<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut o in orders(&rest) {
            o.insert(0, first.clone());
            out.push(o);
        }
    }
    out
}

/// A day's `daily_activity` role and school are those its first event in
/// order stated (lake.md), whatever the flushes between its events, their
/// arrival order and a snapshot/restore between flushes: a later flush's
/// counts go under the earlier flush's school, and an earlier event arriving
/// later moves what was written to its school and role.
#[test]
fn a_days_activity_goes_to_its_first_events_school_whatever_the_flushes() {
    let profile = zhejiang();
    let events = lines(&[
        "2026-11-10T09:00:00+08:00 T teach lesson_id=l1 school_id=3333000002",
        "2026-11-10T08:00:00+08:00 T login",
        "2026-11-10T10:00:00+08:00 T space_op op=upload school_id=3333000002 role=admin",
        "2026-11-11T10:00:00+08:00 T login school_id=3333000002",
    ]);
    let expected = [
        "2026-11-10 T teacher 3333000001 [1, 2, 0, 3]",
        "2026-11-11 T teacher 3333000002 [1, 0, 0, 1]",
    ];
    for order in orders(&events) {
        for batch in 1..=order.len() {
            for restore in [false, true] {
                let mut engine = Engine::new(&profile, EngineConfig::default());
                let mut sums = ActivityBySchool::default();
                for (i, line) in order.iter().enumerate() {
                    engine.process(&decode(line.as_bytes(), NOW).unwrap());
                    if (i + 1) % batch == 0 {
                        engine.flush(&mut sums);
                        if restore {
                            engine = Engine::restore(&profile, &engine.snapshot()).unwrap();
                        }
                    }
                }
                engine.flush(&mut sums);
                assert_eq!(
                    sums.lines(),
                    expected,
                    "batch {batch}, restore {restore}: {order:#?}"
                );
            }
        }
    }
}

/// A format-7 snapshot (before the written `daily_activity` section) still
/// restores: an upgraded service goes on from its checkpoint, with nothing
/// written kept; bytes after its remembered ids are refused as corrupt.
#[test]
fn a_format_7_snapshot_restores() {
    let profile = zhejiang();
    let events = lines(&[
        "2026-11-10 T login",
        "2026-11-10 T teach lesson_id=l1",
        "2026-11-11 U login",
    ]);
    let mut engine = Engine::new(&profile, EngineConfig::default());
    for line in &events {
        engine.process(&decode(line.as_bytes(), NOW).unwrap());
    }
    // format 7: the state and the remembered ids, no [`SegmentsSection`] before
    // them nor written activity after them
    let mut bytes = header_as(&engine, 7, Some(&engine.rule_shape));
    bytes = legacy::with(true, || postcard::to_extend(&engine.state, bytes)).unwrap();
    let layout = packed_ids::Layout::WithPartition;
    packed_ids::write(engine.state.seen.iter(), &mut bytes, layout).unwrap();
    let mut restored = Engine::restore(&profile, &bytes).unwrap();
    let (mut a, mut b) = (Sums::default(), Sums::default());
    engine.flush(&mut a);
    restored.flush(&mut b);
    assert_eq!(a.lines(), b.lines());
    assert_eq!(a.activity, b.activity);
    assert!(!a.lines().is_empty());
    bytes.push(0);
    assert!(matches!(
        Engine::restore(&profile, &bytes),
        Err(RestoreError::Corrupt(_))
    ));
}

/// The remembered ids, the users (each as its snapshot bytes) and the
/// written `daily_activity` records of `e`, to compare engines by.
type Parts = (FxHashMap<u128, Seen>, BTreeMap<u128, Vec<u8>>, Vec<Vec<u8>>);

fn parts(e: &Engine) -> Parts {
    let users = e
        .state
        .users
        .iter()
        .map(|u| (u.key, postcard::to_stdvec(u).unwrap()))
        .collect();
    let mut written = Vec::new();
    e.state.activity.written.write(&mut written).unwrap();
    let mut records: Vec<Vec<u8>> = written[8..].chunks(91).map(<[u8]>::to_vec).collect();
    records.sort();
    (e.state.seen.clone(), users, records)
}

/// A checkpoint that keeps its bulk apart, in segments (a base, then what
/// changed since each checkpoint), rebuilds exactly the ids the engine
/// remembers, its users and the `daily_activity` it wrote, though ids,
/// users and (day, actor)s were forgotten between the segments (by event
/// time, by arrival, and when a partition leaves), whatever the checkpoints
/// that are bases, and across restores and a rebalance.
#[test]
fn segments_rebuild_the_state_exactly() {
    let profile = zhejiang();
    let cfg = EngineConfig {
        dedup_recent: 30,
        ..EngineConfig::default()
    };
    // 40 days of three users on two partitions, each day's events arriving
    // after some of the next day's, and re-sent copies
    let mut events: Vec<(usize, String, i32)> = Vec::new();
    for day in 0..40 {
        let d = format_day(day_of(parse_rfc3339("2026-09-01T10:00:00+08:00").unwrap(), 0) + day);
        // t4 is active for a few days only: its state empties and goes
        let t4 = if day < 4 { &[("t4", 0)][..] } else { &[] };
        for &(u, p) in [("t1", 0), ("t2", 1), ("t3", 1)].iter().chain(t4) {
            for k in 0..3 {
                let n = events.len();
                events.push((n, format!("{d} {u} login k={k}"), p));
            }
        }
        let n = events.len() - 5;
        events.push((n, events[n].1.clone(), events[n].2));
    }
    for i in (1..events.len()).step_by(7) {
        events.swap(i - 1, i);
    }

    for base_every in [1, 3, usize::MAX] {
        let mut engine = Engine::new(&profile, cfg);
        engine.log_changes();
        let mut sums = Sums::default();
        let mut segments: Vec<Vec<u8>> = Vec::new();
        let mut checkpoints = 0;
        for (i, (n, spec, p)) in events.iter().enumerate() {
            feed(&mut engine, *n, spec, *p);
            if i % 10 != 9 {
                continue;
            }
            engine.flush(&mut sums);
            if i == 300 {
                // a rebalance: partition 1 leaves, then comes back with the
                // state another instance kept of it
                let other = Engine::restore(&profile, &engine.snapshot()).unwrap();
                assert!(engine.release(|p| p == 1) > 0);
                engine.absorb(other, &[1].into_iter().collect());
            }
            checkpoints += 1;
            let snapshot = engine.snapshot_without_segments_into(Vec::new());
            let segment = engine.take_segment(checkpoints % base_every == 0);
            if segment.base {
                segments.clear();
            }
            segments.push(segment.bytes);
            let given: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
            let restored = Engine::restore_with_segments(&profile, &snapshot, &given).unwrap();
            assert!(
                parts(&restored) == parts(&engine),
                "checkpoint {checkpoints}, a base every {base_every}"
            );
            if checkpoints % 4 == 0 {
                // the restored engine goes on from the same segments
                engine = restored;
                engine.log_changes();
            }
        }
        // ids, a user and (day, actor)s were forgotten along the way, and
        // segments were kept apart
        assert!(engine.stats().remembered_ids < events.len() / 2);
        assert_eq!(engine.stats().users, 3);
        assert!(parts(&engine).2.len() < 3 * 40);
        if base_every == usize::MAX {
            assert!(segments.len() > 10, "{}", segments.len());
        }
        // the restored and the live engine score the same from here
        let mut sums = (Sums::default(), Sums::default());
        let snapshot = engine.snapshot_without_segments_into(Vec::new());
        segments.push(engine.take_segment(false).bytes);
        let given: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let mut restored = Engine::restore_with_segments(&profile, &snapshot, &given).unwrap();
        for (n, spec) in [
            (9000, "2026-10-11 t1 teach lesson_id=l9"),
            (9001, "2026-10-10 t9 login"),
        ] {
            feed(&mut engine, n, spec, 0);
            feed(&mut restored, n, spec, 0);
        }
        engine.flush(&mut sums.0);
        restored.flush(&mut sums.1);
        assert_eq!(sums.0.lines(), sums.1.lines());
        assert_eq!(sums.0.activity, sums.1.activity);
        assert!(!sums.0.lines().is_empty());
    }

    // a snapshot without its segments is not restored without them
    let engine = Engine::new(&profile, cfg);
    let snapshot = engine.snapshot_without_segments_into(Vec::new());
    let err = Engine::restore(&profile, &snapshot)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("in segments"), "{err}");
    assert!(Engine::restore_with_segments(&profile, &engine.snapshot(), &[&[0; 8]]).is_err());
}

/// A day's `daily_activity` row goes under its first event's school also
/// when the actor's events of the day come from two partitions (an event on
/// someone else's resource is keyed by its owner) and one of them arrives
/// after the other partition's window has passed the day: what was written
/// is kept until every partition's window has passed it.
#[test]
fn a_days_activity_keeps_its_school_across_partitions() {
    let profile = zhejiang();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    let mut sums = ActivityBySchool::default();
    let t_at = |d: &str, t: &str, more: &str| format!("{d}T{t}+08:00 t1 login {more}");
    // partition 0: t1's day, its first event stating 3333000001
    feed(&mut engine, 1, &t_at("2026-11-10", "08:00:00", ""), 0);
    // partition 1: o1's events, up to the 13th
    let o1 = "2026-11-13T10:00:00+08:00 o1 login school_id=3333000002";
    feed(&mut engine, 2, o1, 1);
    engine.flush(&mut sums);
    // partition 0 moves on: its window passes the 10th
    feed(&mut engine, 3, &t_at("2026-11-15", "08:00:00", ""), 0);
    engine.flush(&mut sums);
    // t1's event of the 10th on o1's resource, stating another school, comes
    // from partition 1, whose window still holds the 10th
    let late = "2026-11-10T09:00:00+08:00 t1 resource_interact resource_id=R1 owner_id=o1 \
                owner_school_id=3333000002 op=download school_id=3333000002";
    assert_eq!(
        feed(&mut engine, 4, late, 1),
        Outcome::Accepted {
            day: day_of(
                parse_rfc3339("2026-11-10T09:00:00+08:00").unwrap(),
                8 * 3600
            )
        }
    );
    engine.flush(&mut sums);
    let lines = sums.lines();
    let t1_10th: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("2026-11-10 t1 "))
        .collect();
    assert_eq!(
        t1_10th,
        ["2026-11-10 t1 teacher 3333000001 [1, 0, 0, 2]"],
        "{lines:#?}"
    );
}

/// A batch counted grouped by day ([`Engine::process_rows`]) leaves a user's
/// latest school as the latest event to arrive stated it, not the latest
/// counted: here the later day's event arrives first, and the earlier day's,
/// of another school, last.
#[test]
fn a_grouped_batch_keeps_the_school_of_the_latest_arrival() {
    let events = lines(&[
        "2026-11-04 t-1 login school_id=3333000002",
        "2026-11-03 t-1 login school_id=3333000003",
    ]);
    let data = events.join("\n").into_bytes();
    let mut spans = Vec::new();
    crate::pipeline::decode::line_spans(&data, true, &mut spans);
    let mut engine = Engine::new(&zhejiang(), EngineConfig::default());
    let chunk = crate::pipeline::decode_chunk(data, &spans, "test".into(), NOW)
        .grouped(engine.offset_seconds());
    let rows = EventRows::new(&chunk.batch).unwrap();
    // the rows are counted day by day: the row of 11-03 first
    assert_eq!(
        chunk.arrival.iter().map(|a| a.row).collect::<Vec<_>>(),
        [1, 0]
    );
    engine.process_rows(&rows, &chunk.keys, &chunk.arrival, |_, _, _| {});
    assert_eq!(engine.state.users[0].school.as_str(), "3333000003");
}
