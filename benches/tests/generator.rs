//! End-to-end tests of the generator: determinism, validity of every line,
//! rosters, and the edge cases of scoring.md actually occurring.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use common::{china_day, days_from_civil, parse_rfc3339, s, validate};
use huoyue_benches::r#gen::{EventStream, GenConfig, LineKind, generate_to};
use serde_json::{Map, Value};

fn small() -> GenConfig {
    GenConfig {
        year: 2026,
        month: 11,
        schools: 4,
        teachers_per_school: 12,
        students_per_school: 80,
        counties: 2,
        seed: 7,
        // A higher malformed share so every kind shows up in a small run.
        malformed_share: 0.01,
        ..GenConfig::default()
    }
}

fn run(cfg: &GenConfig) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (mut e, mut sc, mut us) = (Vec::new(), Vec::new(), Vec::new());
    generate_to(cfg, &mut e, &mut sc, &mut us).unwrap();
    (e, sc, us)
}

/// 2090-01-01: a wall clock after every generated event, before 2099.
fn now_us() -> i64 {
    days_from_civil(2090, 1, 1) * 86_400 * 1_000_000
}

struct Data {
    /// Valid, de-duplicated events in arrival order.
    events: Vec<Map<String, Value>>,
    /// Their instants.
    ts: Vec<i64>,
    lines: u64,
    duplicates: u64,
    malformed_by_reason: BTreeMap<&'static str, u64>,
}

fn collect(cfg: &GenConfig) -> Data {
    let mut stream = EventStream::new(cfg).unwrap();
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let mut d = Data {
        events: Vec::new(),
        ts: Vec::new(),
        lines: 0,
        duplicates: 0,
        malformed_by_reason: BTreeMap::new(),
    };
    let now = now_us();
    while let Some(line) = stream.next_line() {
        d.lines += 1;
        assert!(line.bytes.len() <= 64 * 1024, "a line over 64 KiB");
        assert!(!line.bytes.contains(&b'\n'));
        let verdict = validate(line.bytes, now);
        match line.kind {
            LineKind::Event | LineKind::Duplicate => {
                let o = verdict
                    .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line.bytes)));
                let id = s(&o, "event_id").to_string();
                assert!(id.starts_with("ev-"));
                // The key is the scored user.
                let scored = match s(&o, "action") {
                    "resource_interact" | "resource_review" | "task_progress" => s(&o, "owner_id"),
                    _ => s(&o, "user_id"),
                };
                assert_eq!(line.key, scored.as_bytes());
                if line.kind == LineKind::Duplicate {
                    d.duplicates += 1;
                    assert_eq!(
                        seen.get(&id).map(Vec::as_slice),
                        Some(line.bytes),
                        "a duplicate is an exact copy of an earlier line"
                    );
                } else {
                    assert!(
                        seen.insert(id, line.bytes.to_vec()).is_none(),
                        "event ids are unique"
                    );
                    d.ts.push(parse_rfc3339(s(&o, "ts")).unwrap());
                    d.events.push(o);
                }
            }
            LineKind::Malformed(kind) => {
                let reason = verdict.err().unwrap_or_else(|| {
                    panic!(
                        "{kind:?} line is valid: {}",
                        String::from_utf8_lossy(line.bytes)
                    )
                });
                assert_eq!(
                    reason,
                    kind.reason(),
                    "{kind:?}: {}",
                    String::from_utf8_lossy(line.bytes)
                );
                *d.malformed_by_reason.entry(reason).or_insert(0) += 1;
            }
        }
    }
    let st = stream.stats();
    assert_eq!(st.lines, d.lines);
    assert_eq!(st.events, d.events.len() as u64);
    assert_eq!(st.duplicates, d.duplicates);
    assert_eq!(st.malformed_by_reason, d.malformed_by_reason);
    d
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = GenConfig {
        schools: 3,
        teachers_per_school: 8,
        students_per_school: 50,
        ..GenConfig::default()
    };
    let a = run(&cfg);
    let b = run(&cfg);
    assert!(
        a.0 == b.0 && a.1 == b.1 && a.2 == b.2,
        "same config, different output"
    );
    assert!(!a.0.is_empty());
    let c = run(&GenConfig {
        seed: cfg.seed + 1,
        ..cfg
    });
    assert_ne!(a.0, c.0);
    assert_ne!(a.2, c.2);
}

/// The months of one county can go into one lake: no event of one month
/// has the `event_id` of an event of another (it would be a duplicate there).
#[test]
fn consecutive_months_share_no_event_id() {
    let ids = |year, month| -> HashSet<String> {
        let cfg = GenConfig {
            year,
            month,
            lead_days: 0,
            ..small()
        };
        collect(&cfg)
            .events
            .iter()
            .map(|o| s(o, "event_id").to_string())
            .collect()
    };
    let december = ids(2025, 12);
    let january = ids(2026, 1);
    assert!(december.len() > 1000 && january.len() > 1000);
    let shared = december.intersection(&january).count();
    assert_eq!(
        shared, 0,
        "event ids of December 2025 again in January 2026"
    );
    assert!(december.iter().all(|id| id.starts_with("ev-202512-")));
}

#[test]
fn every_line_is_valid_or_an_intended_malformed_kind() {
    let cfg = small();
    let d = collect(&cfg);
    let total = d.lines as f64;
    let bad: u64 = d.malformed_by_reason.values().sum();
    let share = bad as f64 / total;
    assert!(
        (share - cfg.malformed_share).abs() < cfg.malformed_share * 0.3,
        "malformed share {share}"
    );
    for reason in [
        "bad_utf8",
        "bad_json",
        "missing_field",
        "bad_value",
        "unknown_action",
        "bad_timestamp",
        "future_timestamp",
    ] {
        assert!(
            d.malformed_by_reason.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} line"
        );
    }
    assert!(!d.malformed_by_reason.contains_key("too_large"));
    let dup_share = d.duplicates as f64 / d.events.len() as f64;
    assert!(
        (dup_share - cfg.duplicate_share).abs() < 0.004,
        "duplicate share {dup_share}"
    );
}

#[test]
fn oversize_lines_only_when_asked() {
    let cfg = GenConfig {
        schools: 1,
        teachers_per_school: 5,
        students_per_school: 20,
        lead_days: 0,
        oversize_share: 0.01,
        ..GenConfig::default()
    };
    let mut stream = EventStream::new(&cfg).unwrap();
    let mut big = 0;
    while let Some(line) = stream.next_line() {
        if line.bytes.len() > 64 * 1024 {
            assert_eq!(validate(line.bytes, now_us()).err(), Some("too_large"));
            big += 1;
        }
    }
    assert!(big > 0);
    assert_eq!(
        stream.stats().malformed_by_reason.get("too_large"),
        Some(&big)
    );
}

#[test]
fn arrival_order_is_nearly_chronological() {
    let cfg = small();
    let d = collect(&cfg);
    let mut newest = i64::MIN;
    let mut worst = 0i64;
    for &t in &d.ts {
        newest = newest.max(t);
        worst = worst.max(newest - t);
    }
    let hour = 3600 * 1_000_000i64;
    assert!(worst > hour, "some disorder expected");
    assert!(
        worst <= (cfg.disorder_hours * hour as f64) as i64,
        "disorder {} h",
        worst / hour
    );
    // Every valid event lies in the window: lead days, then the month.
    let first = days_from_civil(2026, 11, 1) - cfg.lead_days as i64;
    let last = days_from_civil(2026, 11, 30);
    assert!(d.ts.iter().all(|&t| (first..=last).contains(&china_day(t))));
}

#[test]
fn rosters_are_consistent() {
    let cfg = small();
    let (events, schools, users) = run(&cfg);
    let schools = String::from_utf8(schools).unwrap();
    let mut lines = schools.lines();
    assert_eq!(
        lines.next(),
        Some("school_id,name,county_code,county_name,city_code,category,student_base")
    );
    let mut ids = HashSet::new();
    let mut base = HashMap::new();
    let mut counties = HashSet::new();
    let mut demo = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 7, "{l}");
        assert!(
            f[0].len() == 10 && f[0].bytes().all(|c| c.is_ascii_digit()),
            "{l}"
        );
        assert!(f[0].starts_with("33") && f[0][2..6] == f[2][2..6], "{l}");
        assert!(ids.insert(f[0].to_string()), "duplicate school {l}");
        assert!(
            f[2].len() == 6 && f[4].len() == 6 && f[2][..4] == f[4][..4],
            "{l}"
        );
        assert!(!f[1].is_ascii() && !f[3].is_ascii(), "Chinese names {l}");
        assert!(["demo", "regular"].contains(&f[5]));
        demo += usize::from(f[5] == "demo");
        base.insert(f[0].to_string(), f[6].parse::<u64>().unwrap());
        counties.insert(f[2].to_string());
    }
    assert_eq!(ids.len(), cfg.schools as usize);
    assert_eq!(counties.len(), cfg.counties as usize);
    let _ = demo;

    let users = String::from_utf8(users).unwrap();
    let mut lines = users.lines();
    assert_eq!(lines.next(), Some("user_id,school_id,role,name"));
    let mut roster: HashMap<String, String> = HashMap::new();
    let mut students: HashMap<String, u64> = HashMap::new();
    let mut admins = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 4, "{l}");
        assert!(ids.contains(f[1]), "{l}");
        let prefix = match f[2] {
            "teacher" => "t",
            "student" => "s",
            "parent" => "p",
            "admin" => "admin-",
            r => panic!("role {r}"),
        };
        assert!(f[0].starts_with(prefix), "{l}");
        if f[2] == "student" {
            *students.entry(f[1].to_string()).or_insert(0) += 1;
        }
        admins += usize::from(f[2] == "admin");
        assert!(
            roster.insert(f[0].to_string(), f[2].to_string()).is_none(),
            "duplicate user {l}"
        );
    }
    assert_eq!(admins, cfg.counties as usize);
    for (school, n) in &students {
        assert!(
            base[school] >= *n,
            "student_base below roster students at {school}"
        );
    }
    // Some teachers act without being on the roster; every other actor is.
    let mut unlisted = HashSet::new();
    for l in events.split(|&b| b == b'\n') {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(l) else {
            continue;
        };
        if !s(&o, "event_id").starts_with("ev-") {
            continue;
        }
        let (u, role) = (s(&o, "user_id"), s(&o, "role"));
        match roster.get(u) {
            Some(r) => assert_eq!(r, role, "{u}"),
            None if role == "teacher" => {
                unlisted.insert(u.to_string());
            }
            // Students who register before they are on the roster.
            None => assert!(
                role == "student" && s(&o, "action") == "register",
                "{u} {role} not on the roster"
            ),
        }
    }
    assert!(!unlisted.is_empty(), "some unlisted teachers expected");
    // Some roster teachers never appear at all (idle accounts).
    let mut acting = HashSet::new();
    for l in events.split(|&b| b == b'\n') {
        if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(l) {
            acting.insert(s(&o, "user_id").to_string());
        }
    }
    assert!(
        roster
            .iter()
            .any(|(u, r)| r == "teacher" && !acting.contains(u)),
        "an idle teacher expected"
    );
    assert!(unlisted.len() * 10 < roster.values().filter(|r| *r == "teacher").count());
}

/// Valid events in scoring order: `(ts, event_id)`.
fn in_order(d: &Data) -> Vec<(i64, &Map<String, Value>)> {
    let mut v: Vec<(i64, &Map<String, Value>)> =
        d.ts.iter().copied().zip(d.events.iter()).collect();
    v.sort_by(|a, b| (a.0, s(a.1, "event_id")).cmp(&(b.0, s(b.1, "event_id"))));
    v
}

#[test]
fn edge_cases_of_the_rules_occur() {
    check_edge_cases(&small());
}

#[test]
fn edge_cases_occur_for_other_seeds_and_months() {
    for (seed, year, month) in [(11, 2026, 10), (2026, 2027, 2), (99, 2026, 9)] {
        check_edge_cases(&GenConfig {
            seed,
            year,
            month,
            ..small()
        });
    }
}

fn check_edge_cases(cfg: &GenConfig) {
    let d = collect(cfg);
    let ordered = in_order(&d);
    let month_start = days_from_civil(cfg.year as i64, cfg.month, 1);

    // Timestamps: +08:00, Z, fractions; a Z timestamp on a different UTC date.
    let all_ts: Vec<&str> = d.events.iter().map(|o| s(o, "ts")).collect();
    assert!(
        all_ts
            .iter()
            .any(|t| t.ends_with("+08:00") && !t.contains('.'))
    );
    assert!(all_ts.iter().any(|t| t.ends_with('Z')));
    assert!(all_ts.iter().any(|t| t.contains('.')));
    assert!(
        d.events
            .iter()
            .zip(&d.ts)
            .any(|(o, &t)| s(o, "ts").ends_with('Z') && s(o, "ts")[..10] != date(china_day(t)))
    );
    assert!(
        d.ts.iter().any(|&t| {
            let sod = (t / 1_000_000 + 8 * 3600).rem_euclid(86_400);
            !(3600..23 * 3600).contains(&sod)
        }),
        "events near midnight"
    );

    let mut logins: HashMap<&str, BTreeSet<i64>> = HashMap::new();
    let mut counterparts: HashMap<(&str, i64), HashSet<&str>> = HashMap::new();
    let mut teach: HashMap<(&str, i64), u32> = HashMap::new();
    let mut clients = HashSet::new();
    let mut apps = HashSet::new();
    let mut profile: HashMap<&str, (u8, u32, Option<u32>)> = HashMap::new();
    let mut reviews: HashMap<(&str, &str), Vec<(&str, &str)>> = HashMap::new();
    let mut tasks: HashMap<(&str, &str), TaskSeen> = HashMap::new();
    let mut publish_roles = HashSet::new();
    // resource_spread, exactly as scoring.md states it.
    let mut pairs = HashSet::new();
    let mut owner_day: HashMap<(&str, i64), u32> = HashMap::new();
    let mut resource_points: HashMap<(&str, &str), u32> = HashMap::new();
    let mut owner_views = 0;
    let mut repeated_pairs = 0;

    for &(t, o) in &ordered {
        let (u, role, action) = (s(o, "user_id"), s(o, "role"), s(o, "action"));
        let day = china_day(t);
        match action {
            "login" if role == "teacher" => {
                logins.entry(u).or_default().insert(day);
            }
            "interaction" => {
                counterparts
                    .entry((u, day))
                    .or_default()
                    .insert(s(o, "counterpart_id"));
            }
            "teach" if role == "teacher" => *teach.entry((u, day)).or_insert(0) += 1,
            "space_op" if role == "teacher" => {
                clients.insert(s(o, "client"));
            }
            "app_use" if role == "teacher" => {
                apps.insert(s(o, "app_id"));
            }
            "profile_update" => {
                let e = profile.entry(u).or_insert((0, 0, None));
                e.1 += 1;
                for i in o["items"].as_array().unwrap() {
                    let k = ["avatar", "contact", "school", "subject"]
                        .iter()
                        .position(|x| *x == i.as_str().unwrap())
                        .unwrap();
                    e.0 |= 1 << k;
                }
                if e.0 == 0b1111 && e.2.is_none() {
                    e.2 = Some(e.1);
                }
            }
            "resource_review" => {
                reviews
                    .entry((s(o, "owner_id"), s(o, "resource_id")))
                    .or_default()
                    .push((s(o, "level"), s(o, "outcome")));
            }
            "task_progress" => {
                let pubd = parse_rfc3339(s(o, "published_at")).unwrap();
                let e = tasks.entry((s(o, "owner_id"), s(o, "task_id"))).or_insert((
                    pubd,
                    HashSet::new(),
                    None,
                ));
                assert_eq!(
                    e.0, pubd,
                    "published_at is the same instant on every progress event of a task"
                );
                publish_roles.insert(role);
                if role == "student" && t >= e.0 && t <= e.0 + 30 * 86_400_000_000 {
                    e.1.insert(u);
                    if e.1.len() == 10 && e.2.is_none() {
                        e.2 = Some(day);
                    }
                }
            }
            "resource_interact" => {
                let owner = s(o, "owner_id");
                let r = s(o, "resource_id");
                if u == owner {
                    owner_views += 1;
                    continue;
                }
                if !pairs.insert((owner, r, u)) {
                    repeated_pairs += 1;
                    continue;
                }
                let od = owner_day.entry((owner, day)).or_insert(0);
                let rp = resource_points.entry((owner, r)).or_insert(0);
                if *od < 2 && *rp < 50 {
                    *od += 1;
                    *rp += 1;
                }
            }
            _ => {}
        }
    }

    // A login streak of ≥ 7 days across the month start.
    assert!(
        logins
            .values()
            .any(|days| { (0..7).all(|k| days.contains(&(month_start - 3 + k))) }),
        "a streak crossing the month start"
    );
    // Some roster teacher never logs in, most log in on some day.
    assert!(logins.len() > 10);

    // Interaction tiers: days below 5, 5–9 and ≥ 10 distinct counterparts.
    let sizes: Vec<usize> = counterparts.values().map(HashSet::len).collect();
    assert!(sizes.iter().any(|&n| n < 5));
    assert!(sizes.iter().any(|&n| (5..10).contains(&n)));
    assert!(sizes.iter().any(|&n| n >= 10));
    assert!(teach.values().any(|&n| n >= 3), "teach over the daily cap");
    assert!(clients.contains("mobile") && clients.contains("pc"));
    assert!(
        ["mingshi", "jidi", "jiaoyan", "weike", "xueke"]
            .iter()
            .all(|a| apps.contains(a))
    );
    assert!(apps.len() > 5, "unknown app ids too");

    // Profiles: complete over two or more updates; updated but never complete.
    assert!(profile.values().any(|p| p.2.is_some_and(|k| k >= 2)));
    assert!(profile.values().any(|p| p.2.is_none()));

    // Reviews: a deletion after an approval; all three levels.
    assert!(reviews.values().any(|v| {
        v.iter()
            .position(|r| r.1 == "approved")
            .is_some_and(|i| v[i..].iter().any(|r| r.1 == "deleted"))
    }));
    let levels: HashSet<&str> = reviews.values().flatten().map(|r| r.0).collect();
    assert_eq!(levels.len(), 3);

    // Tasks: qualifying on a day after publishing; never qualifying; parents reading.
    assert!(
        tasks
            .values()
            .any(|(p, _, q)| q.is_some_and(|q| q > china_day(*p)))
    );
    assert!(tasks.values().any(|(_, _, q)| q.is_none()));
    assert!(publish_roles.contains("parent"));

    // Resource spread: the 50-point lifetime cap is reached; owners view
    // their own resources; pairs repeat.
    assert!(
        resource_points.values().any(|&p| p == 50),
        "max {:?}",
        resource_points.values().max()
    );
    assert!(owner_views > 0 && repeated_pairs > 0);
    assert!(owner_day.values().any(|&p| p == 2));

    // Registration beyond the base at some school.
    let mut regs: HashMap<&str, HashSet<&str>> = HashMap::new();
    for o in &d.events {
        if s(o, "action") == "register" {
            assert_eq!(s(o, "role"), "student");
            regs.entry(s(o, "school_id"))
                .or_default()
                .insert(s(o, "user_id"));
        }
    }
    let (_, schools, _) = run(cfg);
    let schools = String::from_utf8(schools).unwrap();
    let over = schools.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split(',').collect();
        regs.get(f[0]).map_or(0, HashSet::len) as u64 > f[6].parse::<u64>().unwrap()
    });
    assert!(over, "some school registers more students than its base");
}

/// Publish instant, distinct students within 30 days, day of the 10th.
type TaskSeen<'a> = (i64, HashSet<&'a str>, Option<i64>);

fn date(day: i64) -> String {
    // Inverse of days_from_civil, by search (tests only).
    let mut y = 1970 + day / 366;
    while days_from_civil(y + 1, 1, 1) <= day {
        y += 1;
    }
    let mut m = 1;
    while m < 12 && days_from_civil(y, m + 1, 1) <= day {
        m += 1;
    }
    let d = day - days_from_civil(y, m, 1) + 1;
    format!("{y:04}-{m:02}-{d:02}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The output for a seed must not change by accident: data sets made with a
/// seed are cited in issues and benchmarks. If a change to the model is
/// intended, update these numbers in the same commit and say so.
#[test]
fn output_of_a_seed_is_pinned() {
    let cfg = GenConfig {
        schools: 2,
        teachers_per_school: 6,
        students_per_school: 30,
        seed: 42,
        ..GenConfig::default()
    };
    let (e, sc, us) = run(&cfg);
    let got = (e.len(), fnv1a(&e), fnv1a(&sc), fnv1a(&us));
    assert_eq!(got, PINNED, "generator output changed for seed 42");
}

const PINNED: (usize, u64, u64, u64) = (
    1808833,
    8110994886105909209,
    7809346280045919068,
    8404357097146069405,
);
