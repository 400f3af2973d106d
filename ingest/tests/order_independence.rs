//! Ground rule 3: any arrival order within the lateness, any batch split, and a
//! snapshot/restore anywhere give the same sums.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;

use huoyue_ingest::engine::{ActivityRow, DeltaSink, Engine, EngineConfig, FILE_SOURCE, Outcome};
use huoyue_ingest::pipeline::decode::line_spans;
use huoyue_ingest::pipeline::decode_chunk;
use huoyue_schemas::columns::EventRows;
use huoyue_schemas::decode;
use huoyue_schemas::profile::Profile;
use huoyue_schemas::time::MICROS_PER_DAY;

/// The ingest clock of the tests: the 2099 lines of the case are in its future.
const NOW: i64 = 1_795_000_000_000_000;

/// Sums by row key: a score by (day, user, school, rule), `daily_activity`
/// by (day, user, role, school), so that the school and role of a day's
/// first event in order are compared too (lake.md).
#[derive(Default, PartialEq, Debug)]
struct Sums {
    scores: BTreeMap<(i32, String, String, String), i64>,
    activity: BTreeMap<(i32, String, String, String), [i64; 4]>,
}

impl DeltaSink for Sums {
    fn score(&mut self, day: i32, user: &str, school: &str, rule: &str, points: i64, _events: i64) {
        *self
            .scores
            .entry((day, user.to_owned(), school.to_owned(), rule.to_owned()))
            .or_default() += points;
    }
    fn activity(&mut self, r: &ActivityRow<'_>) {
        let key = (
            r.day,
            r.user_id.to_string(),
            r.role.as_str().to_owned(),
            r.school_id.to_string(),
        );
        let a = self.activity.entry(key).or_default();
        for (x, y) in a
            .iter_mut()
            .zip([r.logins, r.deep_actions, r.registers, r.events])
        {
            *x += y;
        }
    }
}

impl Sums {
    fn nonzero(mut self) -> Self {
        self.scores.retain(|_, p| *p != 0);
        self.activity.retain(|_, a| *a != [0; 4]);
        self
    }
}

/// The valid lines of the conformance case with their `ts`, about a fifth of
/// them stating another school (and school of the owner), so that many
/// users' days have events of two schools whose first in order decides the
/// rows'. Chosen by event id, so that the copies of a re-sent event stay alike.
fn lines() -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(common::conformance().join("events.ndjson")).unwrap();
    text.lines()
        .filter_map(|l| {
            let e = decode(l.as_bytes(), NOW).ok()?;
            let id_sum: u32 = e.event_id.bytes().map(u32::from).sum();
            let line = match id_sum % 5 {
                0 => other_school(l),
                _ => l.to_owned(),
            };
            Some((e.ts, line))
        })
        .collect()
}

/// `line` with its `school_id` and `owner_school_id` (if any) another school's.
fn other_school(line: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    for field in ["school_id", "owner_school_id"] {
        if v.get(field).is_some() {
            v[field] = "3399999999".into();
        }
    }
    v.to_string()
}

fn run(order: &[&String], batch_ends: &[usize], snapshot_at: &[usize]) -> Sums {
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    let mut sums = Sums::default();
    for (i, line) in order.iter().enumerate() {
        let e = decode(line.as_bytes(), NOW).unwrap();
        let outcome = engine.process(&e);
        assert_ne!(
            outcome,
            huoyue_ingest::engine::Outcome::Late,
            "the test's disorder stays within the lateness: {line} (newest {:?})",
            engine.newest_day()
        );
        if batch_ends.contains(&i) {
            engine.flush(&mut sums);
        }
        if snapshot_at.contains(&i) {
            engine.flush(&mut sums);
            let snap = engine.snapshot();
            engine = Engine::restore(&profile, &snap).unwrap();
        }
    }
    engine.flush(&mut sums);
    sums.nonzero()
}

/// The first keys whose sums differ between `got` and `want`, with both.
fn differences<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&K> = got.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .take(10)
        .map(|k| format!("{k:?}: got {:?}, want {:?}", got.get(k), want.get(k)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn same_sums_whatever_the_order_batches_and_restarts(
        seed in any::<u64>(),
        batches in proptest::collection::vec(0usize..13_000, 0..40),
        snapshots in proptest::collection::vec(0usize..13_000, 0..4),
    ) {
        let all = lines();
        let in_order: Vec<&String> = {
            let mut v: Vec<_> = all.iter().collect();
            v.sort_by_key(|(ts, _)| *ts);
            v.into_iter().map(|(_, l)| l).collect()
        };
        let reference = run(&in_order, &[], &[]);
        // arrival = ts + a pseudo-random delay of up to two days: never late
        let mut x = seed | 1;
        let mut shuffled: Vec<(i64, &String)> = all
            .iter()
            .map(|(ts, l)| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (ts + (x % (2 * MICROS_PER_DAY as u64)) as i64, l)
            })
            .collect();
        shuffled.sort_by_key(|(t, _)| *t);
        let order: Vec<&String> = shuffled.into_iter().map(|(_, l)| l).collect();
        let got = run(&order, &batches, &snapshots);
        let scores = differences(&got.scores, &reference.scores);
        prop_assert!(scores.is_empty(), "scores: {:#?}", scores);
        let activity = differences(&got.activity, &reference.activity);
        prop_assert!(activity.is_empty(), "activity: {:#?}", activity);
    }
}

#[test]
fn the_conformance_file_in_its_own_order_matches_the_sorted_order() {
    let all = lines();
    let as_given: Vec<&String> = all.iter().map(|(_, l)| l).collect();
    let mut sorted = as_given.clone();
    sorted.sort_by_key(|l| decode(l.as_bytes(), NOW).unwrap().ts);
    let every_100: Vec<usize> = (0..all.len()).step_by(100).collect();
    assert_eq!(run(&as_given, &every_100, &[5000]), run(&sorted, &[], &[]));
}

#[test]
fn flushing_every_100_events_changes_no_sum() {
    let all = lines();
    let mut sorted: Vec<&String> = all.iter().map(|(_, l)| l).collect();
    sorted.sort_by_key(|l| decode(l.as_bytes(), NOW).unwrap().ts);
    let every_100: Vec<usize> = (0..all.len()).step_by(100).collect();
    let a = run(&sorted, &every_100, &[]);
    let b = run(&sorted, &[], &[]);
    let diff: Vec<_> = b
        .scores
        .iter()
        .filter(|(k, v)| a.scores.get(*k) != Some(v))
        .map(|(k, v)| format!("{k:?} want {v} got {:?}", a.scores.get(k)))
        .collect();
    let extra: Vec<_> = a
        .scores
        .iter()
        .filter(|(k, _)| !b.scores.contains_key(*k))
        .map(|(k, v)| format!("{k:?} extra {v}"))
        .collect();
    assert!(
        diff.is_empty() && extra.is_empty(),
        "{:#?} {:#?}",
        &diff[..diff.len().min(10)],
        &extra[..extra.len().min(10)]
    );
}

#[test]
fn a_snapshot_and_restore_midway_changes_no_sum() {
    let all = lines();
    let mut sorted: Vec<&String> = all.iter().map(|(_, l)| l).collect();
    sorted.sort_by_key(|l| decode(l.as_bytes(), NOW).unwrap().ts);
    let a = run(&sorted, &[], &[5000]);
    let b = run(&sorted, &[], &[]);
    let diff: Vec<_> = b
        .scores
        .iter()
        .filter(|(k, v)| a.scores.get(*k) != Some(v))
        .map(|(k, v)| format!("{k:?} want {v} got {:?}", a.scores.get(k)))
        .collect();
    assert!(diff.is_empty(), "{:#?}", &diff[..diff.len().min(10)]);
}

/// `lines` through the engine in chunks ending after the indices `ends`,
/// each line read from its partition (`None`: a file): one event at a time
/// ([`Engine::process_from`]), or, `grouped`, as the service does, each
/// chunk decoded, grouped by day and user ([`DecodedChunk::grouped`]) and
/// counted by [`Engine::process_rows`]. The sums and each event's outcome,
/// in arrival order.
fn run_chunks(
    lines: &[(Option<i32>, &String)],
    ends: &[usize],
    grouped: bool,
) -> (Sums, Vec<Outcome>) {
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let mut engine = Engine::new(&profile, EngineConfig::default());
    let (mut sums, mut outcomes) = (Sums::default(), Vec::new());
    let mut cuts: Vec<usize> = ends
        .iter()
        .map(|e| e + 1)
        .filter(|&e| e < lines.len())
        .collect();
    cuts.push(lines.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut start = 0;
    for end in cuts {
        let part = &lines[start..end];
        start = end;
        if !grouped {
            for (p, line) in part {
                let e = decode(line.as_bytes(), NOW).unwrap();
                outcomes.push(engine.process_from(&e, p.unwrap_or(FILE_SOURCE)));
            }
        } else {
            let data = part
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let mut spans = Vec::new();
            line_spans(data.as_bytes(), true, &mut spans);
            for (span, (p, _)) in spans.iter_mut().zip(part) {
                span.partition = *p;
            }
            let chunk = decode_chunk(data.into_bytes(), &spans, "test".into(), NOW)
                .grouped(engine.offset_seconds());
            let rows = EventRows::new(&chunk.batch).unwrap();
            engine.process_rows(&rows, &chunk.keys, &chunk.arrival, |_, _, outcome| {
                outcomes.push(outcome)
            });
        }
        engine.flush(&mut sums);
    }
    (sums.nonzero(), outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// Counting a chunk grouped by day and user changes no outcome and no
    /// sum, also with late events, re-sent copies, and events of one user
    /// read from several partitions whose windows differ (where the engine
    /// must take the chunk one event at a time).
    #[test]
    fn grouped_chunks_score_as_one_event_at_a_time(
        seed in any::<u64>(),
        partitions in 1u64..4,
        runs in any::<bool>(),
        ends in proptest::collection::vec(0usize..14_000, 0..12),
    ) {
        let all = lines();
        // arrival = ts + a pseudo-random delay of up to five days (some
        // events late), one line in 30 sent again a little later; read from
        // one partition, or several: in runs of up to 2,000 lines, each run
        // a chunk of its own (the engine counts those grouped), or each line
        // from a pseudo-random one (it takes those one at a time)
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut arrivals: Vec<(i64, &String)> = Vec::new();
        for (ts, line) in &all {
            let delay = (next() % (5 * MICROS_PER_DAY as u64)) as i64;
            arrivals.push((ts + delay, line));
            if next() % 30 == 0 {
                arrivals.push((ts + delay + (next() % MICROS_PER_DAY as u64) as i64, line));
            }
        }
        arrivals.sort_by_key(|(t, _)| *t);
        let (mut ends, mut run_end, mut p) = (ends, 0, 0);
        let mut order: Vec<(Option<i32>, &String)> = Vec::new();
        for (i, (_, line)) in arrivals.iter().enumerate() {
            if partitions == 1 {
                order.push((None, line));
                continue;
            }
            if runs && i == run_end {
                run_end = i + 1 + (next() % 2000) as usize;
                p = (p + 1 + next() % (partitions - 1)) % partitions;
                ends.push(run_end - 1);
            }
            if !runs {
                p = next() % partitions;
            }
            order.push((Some(p as i32), line));
        }
        let (want, want_outcomes) = run_chunks(&order, &ends, false);
        let (got, got_outcomes) = run_chunks(&order, &ends, true);
        let late = want_outcomes.iter().filter(|o| **o == Outcome::Late).count();
        prop_assert!(late > 0, "the test's disorder makes some events late");
        prop_assert_eq!(got_outcomes.len(), want_outcomes.len());
        let first = (0..want_outcomes.len()).find(|&i| got_outcomes[i] != want_outcomes[i]);
        prop_assert!(
            first.is_none(),
            "event {:?}: got {:?}, want {:?}; {} differ; line {:?}",
            first,
            first.map(|i| got_outcomes[i]),
            first.map(|i| want_outcomes[i]),
            (0..want_outcomes.len()).filter(|&i| got_outcomes[i] != want_outcomes[i]).count(),
            first.map(|i| order[i]),
        );
        let scores = differences(&got.scores, &want.scores);
        prop_assert!(scores.is_empty(), "scores: {:#?}", scores);
        let activity = differences(&got.activity, &want.activity);
        prop_assert!(activity.is_empty(), "activity: {:#?}", activity);
    }
}
