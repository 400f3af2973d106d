//! The Kafka service against a real Kafka-protocol broker (nisshi): the lake it
//! writes equals file mode's, whatever kills, restarts, outages and rebalances
//! happen on the way.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};

use broker::{Broker, Service, ServiceArgs, keyed_lines, wait_caught_up};
use common::*;
use huoyue_ingest::checkpoint::{self, Checkpoint};
use huoyue_ingest::engine::{Engine, EngineConfig};
use huoyue_ingest::lake_writer::LakeWriter;
use huoyue_ingest::pipeline::Pipeline;
use huoyue_ingest::pipeline::file::{FileOptions, run_file};
use huoyue_schemas::profile::Profile;

const TOPIC: &str = "events";
const DLQ: &str = "events.dlq";

/// File mode over `input` with `lateness_days`: the reference lake.
fn file_mode(lake: &Path, input: &Path, lateness_days: i32) -> Pipeline {
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let engine = Engine::new(
        &profile,
        EngineConfig {
            lateness_days,
            ..EngineConfig::default()
        },
    );
    let writer = LakeWriter::open(lake, "ref").unwrap();
    let mut p = Pipeline::new(engine, writer);
    run_file(
        &mut p,
        Box::new(File::open(input).unwrap()),
        "events.ndjson",
        FileOptions::default(),
    )
    .unwrap();
    p
}

/// `(event_id, partition, offset)` of every `events` row, sorted.
fn event_rows(lake: &Path) -> Vec<(String, Option<i32>, Option<i64>)> {
    let mut out = Vec::new();
    for (_, b) in read_table(lake, "events") {
        let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
        let p = b
            .column_by_name("partition")
            .unwrap()
            .as_primitive::<Int32Type>();
        let o = b
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                id.value(i).to_owned(),
                p.is_valid(i).then(|| p.value(i)),
                o.is_valid(i).then(|| o.value(i)),
            ));
        }
    }
    out.sort();
    out
}

/// A `rejected` row: `(reason, raw, partition, offset)`.
type RejectedRow = (String, Vec<u8>, Option<i32>, Option<i64>);

/// Every `rejected` row, sorted.
fn rejected_rows(lake: &Path) -> Vec<RejectedRow> {
    let mut out = Vec::new();
    for (_, b) in read_table(lake, "rejected") {
        let reason = b.column_by_name("reason").unwrap().as_string::<i32>();
        let raw = b.column_by_name("raw").unwrap().as_binary::<i32>();
        let p = b
            .column_by_name("partition")
            .unwrap()
            .as_primitive::<Int32Type>();
        let o = b
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                reason.value(i).to_owned(),
                raw.value(i).to_vec(),
                p.is_valid(i).then(|| p.value(i)),
                o.is_valid(i).then(|| o.value(i)),
            ));
        }
    }
    out.sort();
    out
}

fn ids(rows: &[(String, Option<i32>, Option<i64>)]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    v.sort();
    v
}

fn reasons(rows: &[RejectedRow]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.0.clone()).or_insert(0) += 1;
    }
    m
}

/// A lake written by Kafka mode has the file-mode lake's sums, events and
/// rejections, and no message twice.
/// Waits until the checkpoints of group `g` hold `messages` messages of `TOPIC`.
fn caught_up(lake: &Path, messages: usize, within: Duration, logs: &dyn Fn() -> String) {
    wait_caught_up(lake, "g", TOPIC, messages, within, logs);
}

/// The lake the service wrote equals file mode's for the same input.
fn assert_same_as_file_mode(lake: &Path, input: &Path) {
    let reference = tempfile::tempdir().unwrap();
    file_mode(reference.path(), input, 3);
    assert_same_lake(lake, reference.path());
}

fn assert_same_lake(kafka: &Path, reference: &Path) {
    assert_scores_eq(&score_sums(kafka), &score_sums(reference));
    let got = event_rows(kafka);
    let mut unique = got.clone();
    unique.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(unique.len(), got.len(), "an event was written twice");
    assert_eq!(ids(&got), ids(&event_rows(reference)), "events rows differ");
    let rej = rejected_rows(kafka);
    let mut positions: Vec<_> = rej.iter().map(|r| (r.2, r.3)).collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), rej.len(), "a message was rejected twice");
    assert_eq!(reasons(&rej), reasons(&rejected_rows(reference)));
}

fn setup(partitions: i32) -> Broker {
    let b = Broker::start();
    b.create_topic(TOPIC, partitions);
    b.create_topic(DLQ, 1);
    b
}

#[test]
fn conformance_case_through_kafka() {
    conformance_case(1);
}

/// Four partitions, read one after another's backlog (as librdkafka hands them
/// over), under the default lateness of 3 days: lateness is measured per
/// partition, so no event is late for having a slower partition than another.
#[test]
fn conformance_case_through_four_partitions_under_the_default_lateness() {
    conformance_case(4);
}

/// Crowded random events (`scripts/fuzz_events.py`, nearly in order) through
/// four partitions, produced in slices, under the default lateness and 200 ms
/// flushes: the lake's
/// scores and activity counts are the plain reference implementation's
/// (`scripts/reference_scores.py`) for the events it accepted, so the
/// per-partition windows fold and forget exactly.
#[test]
fn crowded_random_events_through_four_partitions_match_the_reference() {
    let broker = setup(4);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("fuzz.ndjson");
    std::fs::write(&input, fuzz_events(&["45", "6000", "--jitter-hours", "30"])).unwrap();
    let messages = keyed_lines(&input);
    let total = messages.len();
    // in 40 slices, so that the windows move flush after flush
    let producer = produce_slowly(&broker, messages, 40, Duration::from_millis(100));
    let lake = dir.path().join("lake");
    let log = dir.path().join("ingest.log");
    let args = instance_one(
        &lake,
        &broker,
        ["--flush-interval", "200ms", "--partitions", "all"]
            .map(String::from)
            .to_vec(),
    );
    let svc = Service::start(&args, &log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    producer.join().unwrap();
    caught_up(&lake, total, Duration::from_secs(90), &logs);
    let rounds = logs().matches("checkpoint ").count();
    assert!(
        rounds >= 10,
        "{rounds} checkpoints: the windows hardly moved\n{}",
        logs()
    );
    let status = svc.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}: {}", logs());
    assert_eq!(event_rows(&lake).len(), total, "every event accepted");
    assert_reference_agrees(&lake);
}

/// A message: its key and payload.
type Keyed = (Vec<u8>, Vec<u8>);

/// Waits until the logs say `what` (fails after `within`).
fn wait_said(logs: &dyn Fn() -> String, what: &str, within: Duration) {
    let started = std::time::Instant::now();
    while !logs().contains(what) {
        assert!(started.elapsed() < within, "{what:?} not said: {}", logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Instance `one` of group `g` on [`TOPIC`], writing `lake`, with `extra` arguments.
fn instance_one<'a>(lake: &'a Path, broker: &'a Broker, extra: Vec<String>) -> ServiceArgs<'a> {
    ServiceArgs {
        lake,
        broker,
        topic: TOPIC,
        group: "g",
        instance: "one",
        extra,
    }
}

/// A four-partition broker with the first half (by count) of the
/// conformance case's keyed messages produced; the input and all messages.
fn first_half_produced() -> (Broker, PathBuf, Vec<Keyed>) {
    let broker = setup(4);
    let input = conformance().join("events.ndjson");
    let messages = keyed_lines(&input);
    broker.produce(TOPIC, &messages[..messages.len() / 2]);
    (broker, input, messages)
}

fn conformance_case(partitions: i32) {
    let broker = setup(partitions);
    let input = conformance().join("events.ndjson");
    let messages = keyed_lines(&input);
    broker.produce(TOPIC, &messages);
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let args = instance_one(lake.path(), &broker, vec![]);
    let svc = Service::start(&args, &log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    caught_up(lake.path(), messages.len(), Duration::from_secs(90), &logs);
    let status = svc.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}: {}", logs());

    // the spec's expected daily scores, exactly
    assert_scores_eq(&score_sums(lake.path()), &expected_scores());
    let expected: BTreeMap<String, u64> = serde_json::from_str(
        &std::fs::read_to_string(conformance().join("expected_counts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(event_rows(lake.path()).len() as u64, expected["valid"]);
    let rej = rejected_rows(lake.path());
    let want_rejected: u64 = expected
        .iter()
        .filter(|(k, _)| k.starts_with("rejected:"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(rej.len() as u64, want_rejected);
    // lineage: every rejected row names its partition and offset
    assert!(
        rej.iter()
            .all(|r| r.2.is_some_and(|p| (0..partitions).contains(&p)) && r.3.is_some())
    );

    // every rejection is also a dead letter, with reason and lineage headers
    let dlq = broker.consume_all(DLQ, rej.len());
    assert_eq!(dlq.len(), rej.len(), "dead letters");
    let mut from_dlq: Vec<RejectedRow> = dlq
        .iter()
        .map(|(raw, h)| {
            (
                h["huoyue-reason"].clone(),
                raw.clone(),
                h["huoyue-source-partition"].parse().ok(),
                h["huoyue-source-offset"].parse().ok(),
            )
        })
        .collect();
    from_dlq.sort();
    assert_eq!(from_dlq, rej);
}

#[test]
fn poison_messages_go_to_rejected_and_the_dlq_and_the_partition_flows() {
    let broker = setup(1);
    let valid = |id: &str| {
        format!(
            r#"{{"event_id":"{id}","ts":"2026-09-01T08:00:00+08:00","user_id":"t1","role":"teacher","school_id":"3303810001","action":"login"}}"#
        )
        .into_bytes()
    };
    let mut big = b"{\"event_id\":\"big\",\"pad\":\"".to_vec();
    big.resize(1 << 20, b'x');
    let poison: Vec<Vec<u8>> = vec![
        b"\x00\x13garbage }{ \x7f bytes".to_vec(),
        b"{\"event_id\":\"u\xff\xfe\"}".to_vec(),
        big,
        br#"[{"event_id":"in-an-array"}]"#.to_vec(),
    ];
    let mut msgs = vec![(b"t1".to_vec(), valid("before"))];
    msgs.extend(poison.iter().map(|p| (Vec::new(), p.clone())));
    msgs.push((b"t1".to_vec(), valid("after")));
    broker.produce(TOPIC, &msgs);

    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let args = instance_one(lake.path(), &broker, vec![]);
    let svc = Service::start(&args, &log);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    caught_up(lake.path(), msgs.len(), Duration::from_secs(60), &logs);
    assert!(
        svc.terminate(Duration::from_secs(15)).success(),
        "{}",
        logs()
    );

    let events = event_rows(lake.path());
    assert_eq!(
        ids(&events),
        vec!["after".to_owned(), "before".to_owned()],
        "the valid events on both sides of the poison"
    );
    let rej = rejected_rows(lake.path());
    let got: BTreeMap<i64, String> = rej.iter().map(|r| (r.3.unwrap(), r.0.clone())).collect();
    let want: BTreeMap<i64, String> = [
        (1, "bad_json"),
        (2, "bad_utf8"),
        (3, "too_large"),
        (4, "bad_json"),
    ]
    .into_iter()
    .map(|(o, r)| (o, r.to_owned()))
    .collect();
    assert_eq!(got, want);
    // kept whole
    let raws: Vec<&Vec<u8>> = rej.iter().map(|r| &r.1).collect();
    for p in &poison {
        assert!(raws.contains(&p), "a poison message was not kept whole");
    }
    let dlq = broker.consume_all(DLQ, 4);
    assert_eq!(dlq.len(), 4);
    for (raw, h) in &dlq {
        let offset: i64 = h["huoyue-source-offset"].parse().unwrap();
        assert_eq!(h["huoyue-reason"], want[&offset]);
        assert_eq!(h["huoyue-source-partition"], "0");
        assert_eq!(h["huoyue-source-topic"], TOPIC);
        let original = &poison[(offset - 1) as usize];
        match h.get("huoyue-truncated-from") {
            // the 1 MiB message: capped in the dead letter, whole in the lake
            Some(len) => {
                assert_eq!(len, &original.len().to_string());
                assert_eq!(raw.len(), huoyue_ingest::kafka::DLQ_MAX_PAYLOAD);
                assert!(original.starts_with(raw));
            }
            None => assert_eq!(raw, original),
        }
    }
}

/// A small deterministic generator for the kill moments.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Produces `messages` in slices while the test goes on.
fn produce_slowly(
    broker: &Broker,
    messages: Vec<(Vec<u8>, Vec<u8>)>,
    slices: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    let p = broker.producer();
    std::thread::spawn(move || {
        let per = messages.len().div_ceil(slices);
        for chunk in messages.chunks(per) {
            for (k, v) in chunk {
                let mut r = rdkafka::producer::BaseRecord::<[u8], [u8]>::to(TOPIC).payload(v);
                if !k.is_empty() {
                    r = r.key(k);
                }
                let mut r = r;
                while let Err((_, back)) = p.send(r) {
                    r = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            rdkafka::producer::Producer::flush(&p, Duration::from_secs(60)).unwrap();
            std::thread::sleep(pause);
        }
    })
}

#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let broker = setup(4);
    let input = conformance().join("events.ndjson");
    let messages = keyed_lines(&input);
    let total = messages.len();
    let producer = produce_slowly(&broker, messages, 40, Duration::from_millis(150));
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let args = instance_one(
        lake.path(),
        &broker,
        vec![
            "--flush-interval".into(),
            "200ms".into(),
            "--partitions".into(),
            "all".into(),
        ],
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seed {seed}");
    let mut rng = Lcg(seed);
    for _ in 0..5 {
        let svc = Service::start(&args, &log);
        std::thread::sleep(Duration::from_millis(700 + rng.next(1800)));
        svc.kill();
    }
    producer.join().unwrap();
    let svc = Service::start(&args, &log);
    caught_up(lake.path(), total, Duration::from_secs(90), &logs);
    assert!(
        svc.terminate(Duration::from_secs(15)).success(),
        "{}",
        logs()
    );
    assert!(
        logs().contains("restored checkpoint"),
        "no restart restored a checkpoint: the kills came too early to test anything\n{}",
        logs()
    );

    assert_same_as_file_mode(lake.path(), &input);
    // the bulk of the state went to segments, most of them not a base (a
    // segment per checkpoint holds what changed since the one before), and
    // the folder holds the segments the checkpoint lists and at most those
    // the last base left out
    let dir = checkpoint::dir(lake.path(), "g", TOPIC);
    let ckpt = Checkpoint::load_all(&dir).unwrap().remove(0);
    assert!(ckpt.segments.len() > 1, "{:?}", ckpt.segments);
    let listed: u64 = ckpt.segments.iter().map(|f| f.records).sum();
    let restored = ckpt
        .restore(&dir, &Profile::builtin("zhejiang-2018").unwrap())
        .unwrap();
    let live = restored.segment_records() as u64;
    assert!(
        restored.remembered_ids() > 0 && listed >= live,
        "{listed} records, {live} live"
    );
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert!(on_disk >= ckpt.segments.len(), "{on_disk} segments");
}

/// The first half of the conformance case read by instance `one` of group
/// `g` (with `extra` arguments); then the broker is frozen (SIGSTOP) while
/// `frozen` gets the service (and its arguments and logs) and hands back one
/// running, or started again; then the broker is back and the second half is
/// produced. Nothing may be lost or doubled: the lake ends as file mode's.
fn through_a_frozen_broker(
    extra: Vec<String>,
    frozen: impl FnOnce(Service, &ServiceArgs<'_>, &dyn Fn() -> String) -> Service,
) {
    let (broker, input, messages) = first_half_produced();
    let second = &messages[messages.len() / 2..];
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let args = instance_one(lake.path(), &broker, extra);
    let svc = Service::start(&args, &log);
    caught_up(
        lake.path(),
        messages.len() / 2,
        Duration::from_secs(60),
        &logs,
    );
    broker.pause();
    let svc = frozen(svc, &args, &logs);
    broker.resume();
    broker.produce(TOPIC, second);
    caught_up(lake.path(), messages.len(), Duration::from_secs(90), &logs);
    assert!(
        svc.terminate(Duration::from_secs(15)).success(),
        "{}",
        logs()
    );
    assert_same_as_file_mode(lake.path(), &input);
}

#[test]
fn a_broker_outage_mid_run_loses_and_doubles_nothing() {
    let extra = ["-X", "socket.timeout.ms=2000", "--partitions", "all"];
    through_a_frozen_broker(extra.map(String::from).to_vec(), |mut svc, _, logs| {
        std::thread::sleep(Duration::from_secs(8));
        assert!(
            svc.exited().is_none(),
            "the service died in the outage: {}",
            logs()
        );
        svc
    });
}

/// SIGTERM while the broker is frozen: the service checkpoints and exits 0
/// within seconds, without waiting for the group coordinator to take its
/// goodbye; started again once the broker is back, it goes on exactly.
#[test]
fn a_signal_while_the_broker_is_frozen_stops_in_seconds() {
    through_a_frozen_broker(Vec::new(), |svc, args, logs| {
        let sent = std::time::Instant::now();
        assert!(
            svc.terminate(Duration::from_secs(20)).success(),
            "{}",
            logs()
        );
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "{:?} to stop: {}",
            sent.elapsed(),
            logs()
        );
        Service::start(args, &args.lake.join("ingest.log"))
    });
}

/// A broker that lost its data (restarted empty, the topic created again):
/// the service reads past the new topic's end, which it says, instead of
/// silently reading nothing with a lag of 0.
#[test]
fn a_topic_behind_the_checkpoint_is_said() {
    let (mut broker, _, messages) = first_half_produced();
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let args = instance_one(
        lake.path(),
        &broker,
        vec!["--partitions".into(), "all".into()],
    );
    let svc = Service::start(&args, &log);
    caught_up(
        lake.path(),
        messages.len() / 2,
        Duration::from_secs(60),
        &logs,
    );
    drop(args);
    broker.restart_empty();
    broker.create_topic(TOPIC, 4);
    broker.create_topic(DLQ, 1);
    broker.produce(TOPIC, &messages[..100]);
    let said = |svc: Service, log: &Path| {
        let logs = || std::fs::read_to_string(log).unwrap_or_default();
        wait_said(
            &logs,
            "is past the partition's end",
            Duration::from_secs(60),
        );
        assert!(
            svc.terminate(Duration::from_secs(15)).success(),
            "{}",
            logs()
        );
    };
    said(svc, &log);
    // and so does an instance started again on that checkpoint, which has
    // handed nothing over yet (it is where it fetches: a restart used to
    // read nothing and say nothing)
    let again = lake.path().join("again.log");
    let args = instance_one(
        lake.path(),
        &broker,
        vec!["--partitions".into(), "all".into()],
    );
    said(Service::start(&args, &again), &again);
}

/// The logs of instances A and B in `lake`, for failure messages.
struct TwoLogs {
    a: PathBuf,
    b: PathBuf,
}

impl TwoLogs {
    fn new(lake: &Path) -> TwoLogs {
        TwoLogs {
            a: lake.join("a.log"),
            b: lake.join("b.log"),
        }
    }

    fn text(&self) -> String {
        format!(
            "--- a\n{}\n--- b\n{}",
            std::fs::read_to_string(&self.a).unwrap_or_default(),
            std::fs::read_to_string(&self.b).unwrap_or_default()
        )
    }
}

/// Arguments of an instance of group `g` on [`TOPIC`], with `extra` arguments
/// (the default lateness: measured per partition, how partitions are split
/// between instances and read does not make events late).
fn group_args<'a>(
    lake: &'a Path,
    broker: &'a Broker,
    instance: &'a str,
    extra: &[&str],
) -> ServiceArgs<'a> {
    let args = extra.iter().map(|x| (*x).to_owned()).collect();
    ServiceArgs {
        lake,
        broker,
        topic: TOPIC,
        group: "g",
        instance,
        extra: args,
    }
}

/// Waits until the partitions each instance's checkpoint holds satisfy `ok`.
fn wait_holdings(
    lake: &Path,
    what: &str,
    ok: impl Fn(&BTreeMap<String, usize>) -> bool,
    logs: &TwoLogs,
) {
    let dir = huoyue_ingest::checkpoint::dir(lake, "g", TOPIC);
    let started = Instant::now();
    loop {
        let holdings: BTreeMap<String, usize> =
            huoyue_ingest::checkpoint::Checkpoint::load_all(&dir)
                .unwrap()
                .iter()
                .map(|c| (c.instance.clone(), c.partitions.len()))
                .collect();
        if ok(&holdings) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{what}: {holdings:?}\n{}",
            logs.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two instances, A and B, over a 4-partition topic: with `partitions` as
/// their `--partitions`, or in one consumer group when `None`.
fn two_instances(partitions: Option<(&str, &str)>) {
    let broker = setup(4);
    let input = conformance().join("events.ndjson");
    let messages = keyed_lines(&input);
    let total = messages.len();
    broker.produce(TOPIC, &messages);
    let lake = tempfile::tempdir().unwrap();
    let two = TwoLogs::new(lake.path());
    let logs = || two.text();
    let args = |instance, parts: Option<&str>| match parts {
        Some(p) => group_args(lake.path(), &broker, instance, &["--partitions", p]),
        None => group_args(lake.path(), &broker, instance, &[]),
    };
    let a = Service::start(&args("a", partitions.map(|p| p.0)), &two.a);
    let b = Service::start(&args("b", partitions.map(|p| p.1)), &two.b);
    caught_up(lake.path(), total, Duration::from_secs(120), &logs);
    // both took part: each holds partitions in its checkpoint
    wait_holdings(
        lake.path(),
        "the partitions were not split",
        |h| h.len() == 2 && h.values().all(|n| *n > 0),
        &two,
    );
    wait_none_handed(lake.path(), &logs);
    assert!(a.terminate(Duration::from_secs(20)).success(), "{}", logs());
    assert!(b.terminate(Duration::from_secs(20)).success(), "{}", logs());

    let mut per_partition = BTreeMap::new();
    for r in event_rows(lake.path()) {
        *per_partition.entry(r.1).or_insert(0) += 1;
    }
    eprintln!("events per partition: {per_partition:?}\n{}", logs());
    assert_same_as_file_mode(lake.path(), &input);
}

/// Waits until no checkpoint of group `g` holds a partition handed over: an
/// instance lets a partition's state go once its new owner's checkpoint
/// holds it.
fn wait_none_handed(lake: &Path, logs: &dyn Fn() -> String) {
    let dir = checkpoint::dir(lake, "g", TOPIC);
    let started = Instant::now();
    while Checkpoint::load_all(&dir)
        .unwrap()
        .iter()
        .any(|c| !c.handed.is_empty())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "partitions still held as handed over\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (40 s at most) for `svc`, whose log is `log`, to exit 1; the log's
/// last line.
fn exits_with_error(svc: &mut Service, log: &Path, who: &str, logs: &dyn Fn() -> String) -> String {
    let started = Instant::now();
    let status = loop {
        if let Some(s) = svc.exited() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{who} went on\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "{}", logs());
    let text = std::fs::read_to_string(log).unwrap();
    text.trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Two instances told to read one partition into one lake would write its
/// events twice: the second is refused with a one-line error naming the
/// partition, the first goes on and the lake holds every event once; once
/// the first is gone, the second takes the partition over.
#[test]
fn instances_whose_partitions_overlap_are_refused() {
    let broker = setup(4);
    let input = conformance().join("events.ndjson");
    broker.produce(TOPIC, &keyed_lines(&input));
    let lake = tempfile::tempdir().unwrap();
    let two = TwoLogs::new(lake.path());
    let logs = || two.text();
    let a_args = group_args(lake.path(), &broker, "a", &["--partitions", "0,1,2,3"]);
    let a = Service::start(&a_args, &two.a);
    wait_said(&logs, "partitions assigned", Duration::from_secs(30));
    let refused = |args: &ServiceArgs<'_>| {
        let mut b = Service::start(args, &two.b);
        let last = exits_with_error(&mut b, &two.b, "the second reader", &logs);
        assert!(
            last.starts_with("error: partition 3 of topic ")
                && last.contains("would write its events twice"),
            "{}",
            logs()
        );
    };
    let b_args = group_args(lake.path(), &broker, "b", &["--partitions", "3"]);
    refused(&b_args);
    // another group, the same lake and topic: the same
    refused(&ServiceArgs {
        group: "h",
        ..group_args(lake.path(), &broker, "c", &["--partitions", "3"])
    });
    // a group member given the partitions waits for them (an owner stalled
    // past its session lets go), and stops at once when told to
    let d = Service::start(&group_args(lake.path(), &broker, "d", &[]), &two.b);
    wait_said(&logs, "waiting for it to let go", Duration::from_secs(30));
    let told = Instant::now();
    assert!(d.terminate(Duration::from_secs(20)).success(), "{}", logs());
    assert!(told.elapsed() < Duration::from_secs(10), "{}", logs());
    caught_up(
        lake.path(),
        keyed_lines(&input).len(),
        Duration::from_secs(90),
        &logs,
    );
    assert!(a.terminate(Duration::from_secs(15)).success(), "{}", logs());
    assert_same_as_file_mode(lake.path(), &input);
    // a gone, b may read its partition
    let b = Service::start(&b_args, &two.b);
    wait_said(
        &|| std::fs::read_to_string(&two.b).unwrap_or_default(),
        "partitions assigned",
        Duration::from_secs(30),
    );
    assert!(b.terminate(Duration::from_secs(15)).success(), "{}", logs());
}

/// A partition handed over stays in its last owner's checkpoints, its
/// state and where it was, until its new owner's checkpoint holds it: a new
/// owner killed before its first checkpoint loses and doubles nothing (its
/// partitions went back to A, which used to read them again from the start,
/// no checkpoint holding them any more).
#[test]
fn a_new_owner_killed_before_its_first_checkpoint_loses_and_doubles_nothing() {
    let (broker, input, messages) = first_half_produced();
    let total = messages.len();
    let lake = tempfile::tempdir().unwrap();
    let two = TwoLogs::new(lake.path());
    let logs = || two.text();
    let fast = ["--flush-interval", "200ms"];
    let a = Service::start(&group_args(lake.path(), &broker, "a", &fast), &two.a);
    caught_up(lake.path(), total / 2, Duration::from_secs(90), &logs);
    // B takes partitions over and never checkpoints: A goes on checkpointing
    let slow = ["--flush-interval", "10m"];
    let b = Service::start(&group_args(lake.path(), &broker, "b", &slow), &two.b);
    wait_said(
        &|| std::fs::read_to_string(&two.b).unwrap_or_default(),
        "taking over the state of partitions",
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(1500));
    b.kill();
    // A gets them back once the broker expires B's session
    broker.produce(TOPIC, &messages[total / 2..]);
    caught_up(lake.path(), total, Duration::from_secs(90), &logs);
    assert!(a.terminate(Duration::from_secs(15)).success(), "{}", logs());
    assert_same_as_file_mode(lake.path(), &input);
}

/// Instances A and B of group `g` reading fixed partitions of a 4-partition
/// topic into one lake, the first half of the conformance case produced.
struct FixedPair {
    broker: Broker,
    input: PathBuf,
    messages: Vec<Keyed>,
    lake: tempfile::TempDir,
    logs: TwoLogs,
}

impl FixedPair {
    fn new() -> FixedPair {
        let (broker, input, messages) = first_half_produced();
        let lake = tempfile::tempdir().unwrap();
        let logs = TwoLogs::new(lake.path());
        FixedPair {
            broker,
            input,
            messages,
            lake,
            logs,
        }
    }

    fn lake(&self) -> &Path {
        self.lake.path()
    }

    fn logs(&self) -> String {
        self.logs.text()
    }

    /// Starts instance `a` or `b` reading `parts`.
    fn run(&self, instance: &str, parts: &str) -> Service {
        let log = if instance == "a" {
            &self.logs.a
        } else {
            &self.logs.b
        };
        Service::start(
            &group_args(
                self.lake(),
                &self.broker,
                instance,
                &["--partitions", parts],
            ),
            log,
        )
    }

    /// Stops an instance, which must exit cleanly.
    fn stop(&self, svc: Service) {
        let status = svc.terminate(Duration::from_secs(15));
        assert!(status.success(), "{}", self.logs());
    }

    /// Waits until the group's checkpoints hold the first `n` messages.
    fn caught_up(&self, n: usize) {
        caught_up(self.lake(), n, Duration::from_secs(90), &|| self.logs());
    }

    /// A on 0 and 1, B on 2 and 3, until the first half is read; both stopped.
    fn first_half_read(&self) {
        let (a, b) = (self.run("a", "0,1"), self.run("b", "2,3"));
        self.caught_up(self.messages.len() / 2);
        self.stop(a);
        self.stop(b);
    }

    /// The messages from `from` on produced, A on `a` and B on `b` until
    /// all are read; both stopped, and the lake is the file-mode lake.
    fn read_the_rest(&self, from: usize, a: &str, b: &str) {
        self.broker.produce(TOPIC, &self.messages[from..]);
        let (a, b) = (self.run("a", a), self.run("b", b));
        self.caught_up(self.messages.len());
        self.stop(a);
        self.stop(b);
        assert_same_as_file_mode(self.lake(), &self.input);
    }
}

/// A partition moved from one fixed instance to another while both were
/// stopped, the one letting it go started first: the other takes it over
/// from the first one's checkpoint, which still holds it (it used to be
/// read again from the start).
#[test]
fn a_partition_moved_between_fixed_instances_is_taken_over() {
    let t = FixedPair::new();
    t.first_half_read();
    // partition 2 moves from B to A; B starts first and checkpoints its own
    t.broker.produce(TOPIC, &t.messages[t.messages.len() / 2..]);
    let b = t.run("b", "3");
    std::thread::sleep(Duration::from_secs(2));
    let a = t.run("a", "0,1,2");
    t.caught_up(t.messages.len());
    t.stop(a);
    t.stop(b);
    assert!(
        t.logs().contains("taking over the state of partitions"),
        "{}",
        t.logs()
    );
    assert_same_as_file_mode(t.lake(), &t.input);
}

/// `huoyue-aggregate` (which rebuilds a corrupt checkpoint), built beside
/// `huoyue-ingest` by the README's `cargo test --workspace`.
fn aggregate_command() -> std::process::Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_huoyue-ingest")).with_file_name("huoyue-aggregate");
    assert!(
        bin.exists(),
        "{} is not built: run the tests with --workspace, or build it first",
        bin.display()
    );
    std::process::Command::new(bin)
}

/// `huoyue-aggregate rebuild-state` of group `g` on [`TOPIC`] in `lake`.
fn rebuild_state(lake: &Path) -> std::process::Output {
    aggregate_command()
        .arg("rebuild-state")
        .arg("--lake")
        .arg(lake)
        .args(["--group", "g", "--topic", TOPIC])
        .output()
        .unwrap()
}

/// How [`damage_checkpoint_of_a`] damages it.
enum Damage {
    /// A byte of the checkpoint file flipped, in its middle.
    FlippedByte,
    /// The last segment it lists removed.
    LostSegment,
}

/// Damages the checkpoint of instance `a` of group `g`; what it held.
fn damage_checkpoint_of_a(lake: &Path, damage: Damage) -> BTreeMap<i32, checkpoint::Mark> {
    let dir = checkpoint::dir(lake, "g", TOPIC);
    let file = checkpoint::file(&dir, "a");
    let ckpt = Checkpoint::load(&file).unwrap();
    match damage {
        Damage::FlippedByte => {
            let mut bytes = std::fs::read(&file).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
            std::fs::write(&file, &bytes).unwrap();
        }
        Damage::LostSegment => {
            let last = ckpt
                .segments
                .last()
                .expect("a Kafka checkpoint lists segments");
            std::fs::remove_file(dir.join(&last.name)).unwrap();
        }
    }
    ckpt.partitions
}

/// Rebuilds A's damaged checkpoint, which must succeed and say so; the
/// partitions the new one holds, each at or before where the lost one (which
/// held `held`) was: the end of what A had read, unless that ended with
/// messages that left no row in the lake.
fn rebuild_a(
    lake: &Path,
    held: &BTreeMap<i32, checkpoint::Mark>,
) -> BTreeMap<i32, checkpoint::Mark> {
    let out = rebuild_state(lake);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("checkpoint of instance a written"), "{said}");
    let file = checkpoint::file(&checkpoint::dir(lake, "g", TOPIC), "a");
    let rebuilt = Checkpoint::load(&file).unwrap().partitions;
    for (p, m) in &rebuilt {
        assert!(m.offset <= held[p].offset, "{p}: {m:?} {held:?}");
    }
    rebuilt
}

/// Instance A's checkpoint is damaged while the group is stopped: A refuses
/// to start on it and says how to rebuild it; `rebuild-state` refuses while
/// an instance runs and while every checkpoint is sound, then rebuilds A's
/// partitions (those no sound checkpoint holds) from the lake's rows; A and
/// B go on from there, and the lake ends as file mode's, with no message
/// counted twice or lost.
#[test]
fn a_corrupt_instance_checkpoint_is_rebuilt_from_the_lake() {
    let t = FixedPair::new();
    let (a, b) = (t.run("a", "0,1"), t.run("b", "2,3"));
    t.caught_up(t.messages.len() / 2);
    let refused = |out: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "rebuilt: {err}");
        assert!(err.contains(what), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };
    refused(rebuild_state(t.lake()), "is running");
    t.stop(a);
    t.stop(b);
    refused(rebuild_state(t.lake()), "is sound");

    let held = damage_checkpoint_of_a(t.lake(), Damage::FlippedByte);
    assert_eq!(held.keys().copied().collect::<Vec<_>>(), [0, 1]);
    let mut a = t.run("a", "0,1");
    let said = exits_with_error(&mut a, &t.logs.a, "a", &|| t.logs());
    assert!(said.contains("is corrupt"), "{said}");
    assert!(
        said.contains("rebuild-state --lake") && said.contains("--group g --topic events"),
        "{said}"
    );

    let rebuilt = rebuild_a(t.lake(), &held);
    // A's partitions, each from after its last message in the lake
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        held.keys().collect::<Vec<_>>()
    );
    assert!(rebuilt.values().all(|m| m.offset > 0), "{rebuilt:?}");
    let dir = checkpoint::dir(t.lake(), "g", TOPIC);
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("a.ckpt.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept aside");

    t.read_the_rest(t.messages.len() / 2, "0,1", "2,3");
}

/// As above (a segment of A's state lost this time), after A took
/// partition 2 over from B: A's lost partitions
/// are found by the lake's rows past where B's checkpoint last had partition
/// 2, and the rebuilt state of 2 is the one taken next, not B's older one.
#[test]
fn a_corrupt_checkpoint_of_a_partition_taken_over_is_rebuilt_past_the_old_owner() {
    let t = FixedPair::new();
    t.first_half_read();
    let (half, three_quarters) = (t.messages.len() / 2, t.messages.len() * 3 / 4);
    // B lets go of 2 and stops before A takes it: B's checkpoint keeps
    // 2's state until A's holds it, which B does not see
    t.stop(t.run("b", "3"));
    t.broker.produce(TOPIC, &t.messages[half..three_quarters]);
    let a = t.run("a", "0,1,2");
    let ends = t.broker.end_offsets(TOPIC);
    let dir = checkpoint::dir(t.lake(), "g", TOPIC);
    let file = checkpoint::file(&dir, "a");
    let started = Instant::now();
    while !Checkpoint::load(&file)
        .is_ok_and(|c| (0..3).all(|p| c.partitions.get(&p).map(|m| m.offset) == Some(ends[&p])))
    {
        assert!(started.elapsed() < Duration::from_secs(90), "{}", t.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    t.stop(a);

    // this time a segment of A's state is lost: A says so, as of damage
    let held = damage_checkpoint_of_a(t.lake(), Damage::LostSegment);
    let mut a = t.run("a", "0,1,2");
    let said = exits_with_error(&mut a, &t.logs.a, "a", &|| t.logs());
    assert!(
        said.contains("is corrupt: a segment the checkpoint lists is missing")
            && said.contains("rebuild-state --lake"),
        "{said}"
    );
    // B, stopped before A took 2, still holds 2's older state
    let stale = Checkpoint::load(&checkpoint::file(&dir, "b"))
        .unwrap()
        .handed;
    assert!(stale[&2].offset < held[&2].offset, "{stale:?} {held:?}");
    let rebuilt = rebuild_a(t.lake(), &held);
    assert_eq!(rebuilt.keys().collect::<Vec<_>>(), [&0, &1, &2]);

    t.read_the_rest(three_quarters, "0,1,2", "3");
}

#[test]
fn two_instances_with_a_fixed_split_write_the_same_lake() {
    two_instances(Some(("0,1", "2,3")));
}

/// Both instances join group `g` and the broker's coordinator splits the
/// partitions between them.
#[test]
fn two_instances_in_one_group_split_the_partitions_and_write_the_same_lake() {
    two_instances(None);
}

/// The group at work: A reads alone, B joins mid-stream and takes partitions
/// (and their users' state) over from A, then A is SIGKILLed and B takes the
/// rest over once the broker expires A's session. The lake is file mode's.
#[test]
fn a_member_joining_and_a_member_killed_rebalance_without_loss() {
    let (broker, input, messages) = first_half_produced();
    let total = messages.len();
    let (first, second) = messages.split_at(total / 2);
    let lake = tempfile::tempdir().unwrap();
    let two = TwoLogs::new(lake.path());
    let logs = || two.text();
    let wait_for = |what: &str, ok: &dyn Fn(&BTreeMap<String, usize>) -> bool| {
        wait_holdings(lake.path(), what, ok, &two)
    };

    let a = Service::start(&group_args(lake.path(), &broker, "a", &[]), &two.a);
    caught_up(lake.path(), first.len(), Duration::from_secs(90), &logs);
    wait_for("A alone holds all four partitions", &|h| {
        h.get("a") == Some(&4)
    });

    let b = Service::start(&group_args(lake.path(), &broker, "b", &[]), &two.b);
    let started = Instant::now();
    while !std::fs::read_to_string(&two.b)
        .unwrap_or_default()
        .contains("partitions assigned")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "B never got partitions\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // an instance checkpoints when it has read something new
    broker.produce(TOPIC, &second[..second.len() / 2]);
    wait_for("B joined and took partitions from A", &|h| {
        h.get("b").is_some_and(|n| *n > 0) && h.get("a").is_some_and(|n| *n < 4)
    });
    wait_none_handed(lake.path(), &logs);
    assert!(
        logs().contains("released the state of partitions"),
        "{}",
        logs()
    );
    a.kill();
    broker.produce(TOPIC, &second[second.len() / 2..]);
    wait_for("B took every partition over from the killed A", &|h| {
        h.get("b") == Some(&4)
    });
    caught_up(lake.path(), total, Duration::from_secs(90), &logs);
    assert!(b.terminate(Duration::from_secs(20)).success(), "{}", logs());

    assert_same_as_file_mode(lake.path(), &input);
}

/// An instance is a static member of its group (`group.instance.id` is its
/// `--instance-id`). SIGKILLed and started again, it gets its partitions back
/// at once, not when the broker expires its old session (45 s here); a second
/// process with its id on the same lake is refused in one line; one with its
/// id elsewhere fences it, and the fenced one exits 1 in one line.
#[test]
fn a_restarted_member_takes_its_partitions_back_at_once_and_a_twin_is_stopped() {
    let (broker, input, messages) = first_half_produced();
    let (first, second) = messages.split_at(messages.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let two = TwoLogs::new(dir.path());
    let logs = || two.text();
    // the broker's default session, not the tests' short one
    let long_session = ["-X", "session.timeout.ms=45000"];
    let args = group_args(&lake, &broker, "a", &long_session);
    let a = Service::start(&args, &two.a);
    caught_up(&lake, first.len(), Duration::from_secs(90), &logs);

    // a second process with the same id on the same lake
    let twin = broker::service_command()
        .arg("--lake")
        .arg(&lake)
        .args(["--brokers", &broker.addr(), "--topic", TOPIC])
        .args(["--group", "g", "--instance-id", "a"])
        .output()
        .unwrap();
    assert_eq!(twin.status.code(), Some(1));
    let err = String::from_utf8_lossy(&twin.stderr);
    assert!(
        err.trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: another process with --instance-id a is consuming into this lake"),
        "{err}"
    );

    a.kill();
    broker.produce(TOPIC, second);
    let restarted = Instant::now();
    let a = Service::start(&args, &two.a);
    let assigned = || {
        logs()
            .matches("partitions assigned partitions=[0, 1, 2, 3]")
            .count()
    };
    while assigned() < 2 {
        assert!(
            restarted.elapsed() < Duration::from_secs(40),
            "the restarted member waited for its old session to expire\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    caught_up(&lake, messages.len(), Duration::from_secs(90), &logs);

    // the same id on another lake: the broker fences the first
    let elsewhere = dir.path().join("elsewhere");
    let mut b = Service::start(&group_args(&elsewhere, &broker, "a", &long_session), &two.b);
    let mut a = a;
    let last = exits_with_error(&mut a, &two.a, "the fenced member", &logs);
    assert!(
        last.starts_with("error: Kafka client stopped for good: "),
        "{}",
        logs()
    );
    assert!(b.exited().is_none(), "{}", logs());
    assert!(b.terminate(Duration::from_secs(20)).success(), "{}", logs());

    assert_same_as_file_mode(&lake, &input);
}

#[test]
fn a_missing_topic_is_a_one_line_error() {
    let broker = Broker::start();
    let lake = tempfile::tempdir().unwrap();
    let out = broker::service_command()
        .arg("--lake")
        .arg(lake.path())
        .args(["--brokers", &broker.addr(), "--topic", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("topic \"nope\" does not exist"), "{err}");
}

/// With no broker answering, `--connect-timeout` is kept even when shorter
/// than one attempt's 5 s (it took 5 s, whatever it said): exit 1, one line.
#[test]
fn a_short_connect_timeout_is_kept() {
    let lake = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = broker::service_command()
        .arg("--lake")
        .arg(lake.path())
        .args(["--brokers", &format!("127.0.0.1:{}", broker::free_port())])
        .args(["--topic", "t", "--connect-timeout", "1s"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .contains("unreachable after 1 s"),
        "{err}"
    );
    assert!(took < Duration::from_millis(4000), "{took:?}: {err}");
}

/// Without `--metrics-addr` the service serves its metrics at
/// 127.0.0.1:9187 (interface.md); with that port taken it stops at once,
/// in one line saying the address was the default. The only test that uses
/// the default port (the others pass `--metrics-addr off` or their own).
#[test]
fn the_service_serves_metrics_at_the_default_address() {
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let service = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"));
        command
            .arg("--lake")
            .arg(lake.path())
            .args(["--brokers", &format!("127.0.0.1:{}", broker::free_port())])
            .args(["--topic", "t", "--connect-timeout", "120s"])
            .env("RUST_LOG", "info");
        command
    };
    let mut child = service()
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // it serves while it waits for the brokers
    wait_said(
        &logs,
        "metrics on http://127.0.0.1:9187/metrics",
        Duration::from_secs(30),
    );
    let page = scrape(9187).unwrap();
    assert!(page.contains("huoyue_events_read_total"), "{page}");

    // a second instance on the host, without its own address
    let second = service().output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: cannot serve metrics on 127.0.0.1:9187 (the default --metrics-addr: give each instance on a host its own, or off): "
        ),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Started while no broker answers, the service retries; a SIGTERM then
/// stops it at once, exit 0, instead of after `--connect-timeout`.
#[test]
fn a_signal_while_no_broker_answers_stops_it_cleanly() {
    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let mut child = broker::service_command()
        .arg("--lake")
        .arg(lake.path())
        .args(["--brokers", &format!("127.0.0.1:{}", broker::free_port())])
        .args(["--topic", "t", "--connect-timeout", "120s"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_said(&logs, "not answering", Duration::from_secs(30));
    let sent = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "still retrying 15 s after SIGTERM: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}: {}", logs());
    assert!(
        logs().contains("stopped before the brokers answered"),
        "{}",
        logs()
    );
}

#[test]
fn a_bad_kafka_setting_is_a_one_line_error() {
    let lake = tempfile::tempdir().unwrap();
    let out = broker::service_command()
        .arg("--lake")
        .arg(lake.path())
        .args([
            "--brokers",
            "127.0.0.1:1",
            "--topic",
            "t",
            "-X",
            "no.such.setting=1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no.such.setting"), "{err}");
}

/// A group or topic that would put the checkpoints outside the lake is
/// refused before anything is written (no broker needed).
#[test]
fn a_group_or_topic_that_leaves_the_lake_is_refused() {
    let lake = tempfile::tempdir().unwrap();
    for (flag, name) in [("--group", "../../escape"), ("--topic", "..")] {
        let mut args = vec!["--brokers", "127.0.0.1:1", "--topic", "t", "--group", "g"];
        let i = args.iter().position(|a| *a == flag).unwrap();
        args[i + 1] = name;
        let out = broker::service_command()
            .arg("--lake")
            .arg(lake.path().join("lake"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{name:?} names a folder")), "{err}");
    }
    assert!(!lake.path().join("escape").exists());
}

#[test]
fn an_idle_service_scores_what_it_read_without_waiting_for_a_flush() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use huoyue_ingest::kafka::{KafkaOptions, run};
    use huoyue_ingest::metrics::Metrics;

    let broker = setup(1);
    let messages = keyed_lines(&conformance().join("events.ndjson"));
    broker.produce(TOPIC, &messages);
    let lake = tempfile::tempdir().unwrap();
    let (metrics, stop) = (Metrics::new(), Arc::new(AtomicBool::new(false)));
    let opts = KafkaOptions {
        brokers: broker.addr(),
        topic: TOPIC.to_owned(),
        group: "g".to_owned(),
        dlq_topic: DLQ.to_owned(),
        instance: "one".to_owned(),
        // no checkpoint during the test: only idleness can make it score
        flush_interval: Duration::from_secs(3600),
        flush_rows: 2_000_000,
        settings: Vec::new(),
        connect_timeout: Duration::from_secs(30),
        partitions: Some(Vec::new()),
    };
    let handle = {
        let (lake, metrics, stop) = (lake.path().to_owned(), metrics.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let profile = Profile::builtin("zhejiang-2018").unwrap();
            run(opts, profile, EngineConfig::default(), &lake, metrics, stop)
        })
    };
    let started = Instant::now();
    // fewer messages than fill a batch: read, decoded and scored while idle
    while metrics.events_read.get() < messages.len() as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60) && !handle.is_finished(),
            "scored {} of {} messages while idle",
            metrics.events_read.get(),
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let counts = handle.join().unwrap().unwrap();
    assert_eq!(counts.read, messages.len() as u64);
    assert_scores_eq(&score_sums(lake.path()), &expected_scores());
}
