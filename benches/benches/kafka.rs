//! Kafka mode against a bare librdkafka consumer on the same topic, and the
//! end-to-end latency at a steady rate. Needs the nisshi broker (scripts/install-tools).
//!
//! Run: `cargo bench -p huoyue-benches --bench kafka [-- SCHOOLS [RATE SECONDS]]`
//!
//! 1. Starts a nisshi broker on a free port; produces a generated month
//!    (`huoyue-gen`'s stream, keyed by scored user) to a 4-partition topic.
//! 2. The peer: a bare `BaseConsumer` loop assigned every partition reads
//!    every message (payloads touched, nothing else). Its clock starts once
//!    it has the topic's metadata: without it, librdkafka took about 0.5 s
//!    to its first fetch against nisshi, which counted in the peer's time.
//! 3. The service (`huoyue_ingest::kafka::run`, the code the binary runs) in
//!    another group reads, scores and writes the same topic into a lake,
//!    checkpointing every second; once it has scored every message it is
//!    stopped, and its time into the lake ends when the last checkpoint holds
//!    the end offsets and every file is visible (the time until it returns,
//!    after closing its Kafka clients, is printed beside it; the peer's time
//!    excludes its setup and close likewise).
//! 4. Latency: a second topic gets login events stamped with the current time at
//!    RATE events/s for SECONDS while the service runs with the default 10 s
//!    flush interval; p50/p99 of `huoyue_end_to_end_latency_seconds`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use huoyue_benches::r#gen::GenConfig;
use huoyue_benches::kafka::{produce, producer, send};
use huoyue_ingest::checkpoint::{self, Checkpoint};
use huoyue_ingest::engine::EngineConfig;
use huoyue_ingest::kafka::{KafkaOptions, run};
use huoyue_ingest::metrics::Metrics;
use huoyue_schemas::profile::Profile;
use huoyue_schemas::reason::Reason;

fn broker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HUOYUE_BROKER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    Path::new(&home).join(".cache/huoyue/tools/bin/nisshi")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn create_topic(port: u16, name: &str, partitions: u32) {
    let ok = Command::new(broker_bin())
        .args(["topic", "create"])
        .arg(format!("--broker=tcp://127.0.0.1:{port}"))
        .arg(format!("--partitions={partitions}"))
        .arg(name)
        .status()
        .expect("nisshi topic create")
        .success();
    assert!(ok, "nisshi topic create {name}");
}

/// Whether the checkpoints of `group` hold `total` messages of `topic`.
fn caught_up(lake: &Path, group: &str, topic: &str, total: i64) -> bool {
    let mut at: BTreeMap<i32, i64> = BTreeMap::new();
    for c in Checkpoint::load_all(&checkpoint::dir(lake, group, topic)).unwrap_or_default() {
        for (p, m) in c.partitions {
            let e = at.entry(p).or_insert(0);
            *e = (*e).max(m.offset);
        }
    }
    at.values().sum::<i64>() >= total
}

/// The names, modification times and sizes of a folder's files: changes when
/// a file in it is written or renamed.
type Stamp = Vec<(std::ffi::OsString, Option<std::time::SystemTime>, u64)>;

fn folder_stamp(dir: &Path) -> Stamp {
    let mut stamp: Stamp = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.file_name(), m.modified().ok(), m.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    stamp.sort();
    stamp
}

/// Whether no file of the lake is still staged (`.<name>.tmp`, written but not
/// yet published by a checkpoint).
fn no_staged_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().all(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        match e.file_type() {
            Ok(t) if t.is_dir() => name == "_checkpoints" || no_staged_files(&e.path()),
            _ => !(name.starts_with('.') && name.ends_with(".tmp")),
        }
    })
}

/// Waits until the lake holds `total` messages of `topic`: the checkpoints of
/// `group` hold them and no file is left staged. Gives up after `limit` or
/// once `gave_up()`. A checkpoint is read only when its folder changed, and
/// the lake's folders are walked only once it holds every message: a
/// checkpoint holds the whole engine state, and reading or walking at every
/// probe would take CPU from the service.
fn wait_in_lake(
    lake: &Path,
    group: &str,
    topic: &str,
    total: i64,
    limit: Duration,
    gave_up: impl Fn() -> bool,
) -> bool {
    let dir = checkpoint::dir(lake, group, topic);
    let started = Instant::now();
    let (mut stamp, mut held) = (None, false);
    while started.elapsed() < limit && !gave_up() {
        let now = folder_stamp(&dir);
        if stamp.as_ref() != Some(&now) {
            held = caught_up(lake, group, topic, total);
            stamp = Some(now);
        }
        if held && no_staged_files(lake) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn options(brokers: &str, topic: &str, group: &str, flush: Duration) -> KafkaOptions {
    KafkaOptions {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        group: group.to_owned(),
        dlq_topic: format!("{topic}.dlq"),
        instance: "bench".to_owned(),
        flush_interval: flush,
        flush_rows: 2_000_000,
        settings: Vec::new(),
        connect_timeout: Duration::from_secs(30),
        partitions: Some(Vec::new()),
    }
}

/// The `q` quantile of a Prometheus histogram in text format, interpolated
/// within its bucket as `histogram_quantile` does.
fn quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) else {
            continue;
        };
        let (le, count) = rest.split_once("\"} ")?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        buckets.push((le, count.trim().parse().ok()?));
    }
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / (c - prev.1).max(1e-9));
        }
        prev = (le, c);
    }
    None
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let schools: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(40);
    let rate: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(40);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let brokers = format!("127.0.0.1:{port}");
    let _broker = Killed(
        Command::new(broker_bin())
            .arg("broker")
            .arg("--storage-engine=memory://huoyue/")
            .arg(format!("--listener-url={url}"))
            .arg(format!("--advertised-listener-url={url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nisshi (scripts/install-tools builds it)"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    for t in ["bench", "bench.dlq", "live", "live.dlq"] {
        create_topic(port, t, if t.ends_with("dlq") { 1 } else { 4 });
    }

    let mut cfg = GenConfig::default();
    cfg.set_month("2026-09").unwrap();
    cfg.schools = schools;
    let produced = produce(&cfg, &brokers, "bench", &[], None).unwrap();
    println!("huoyue-gen --brokers: {produced}");
    // offsets of a fresh topic count from 0: the messages produced are the end
    let total = produced.messages as i64;

    // the peer: a bare consumer loop, assigned every partition from the start
    // as the service below is (no group coordination in either's time)
    let bare: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bare")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304")
        // the service's fetch settings, so that the peer is at its best too
        .set("fetch.queue.backoff.ms", "20")
        .create()
        .unwrap();
    let mut all = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        all.add_partition_offset("bench", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    // connected, with the topic's leaders known, before its clock starts (the
    // service's clock includes its own connecting)
    bare.fetch_metadata(Some("bench"), Duration::from_secs(10))
        .unwrap();
    bare.assign(&all).unwrap();
    let started = Instant::now();
    let mut n = 0i64;
    let mut bytes = 0usize;
    let mut bare_first = None;
    while n < total {
        if let Some(Ok(m)) = bare.poll(Duration::from_millis(100)) {
            bytes += m.payload().map_or(0, |p| p.len());
            n += 1;
            bare_first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "bare consumer stuck at {n}"
        );
    }
    let bare_secs = started.elapsed().as_secs_f64();
    drop(bare);
    println!(
        "bare librdkafka consumer: {n} messages ({:.1} MB) in {bare_secs:.2} s = {:.0} messages/s (first after {:.2} s)",
        bytes as f64 / 1e6,
        n as f64 / bare_secs,
        bare_first.unwrap_or_default()
    );

    // the service, same topic, into a lake: checkpoints every second (ten
    // times the default rate, so that their cost is in the figure); once it has
    // scored every message it is stopped, and its time ends when the last
    // checkpoint holds every message and has made every file visible
    let lake = tempfile::tempdir().unwrap();
    let profile = Profile::builtin("zhejiang-2018").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Metrics::new();
    let started = Instant::now();
    let handle = {
        let (opts, lake, stop, metrics) = (
            options(&brokers, "bench", "svc", Duration::from_secs(1)),
            lake.path().to_owned(),
            Arc::clone(&stop),
            metrics.clone(),
        );
        let profile = profile.clone();
        std::thread::spawn(move || {
            // the default lateness: measured per partition, it rejects
            // nothing for the order partitions are read in
            run(opts, profile, EngineConfig::default(), &lake, metrics, stop)
        })
    };
    let mut svc_first = None;
    while metrics.events_read.get() < total as u64 {
        if metrics.events_read.get() > 0 {
            svc_first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "service stuck at {} messages",
            metrics.events_read.get()
        );
    }
    let scored_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    wait_in_lake(
        lake.path(),
        "svc",
        "bench",
        total,
        Duration::from_secs(900),
        || handle.is_finished(),
    );
    // (if the service returned first, its time is the time until it returned)
    let svc_secs = started.elapsed().as_secs_f64();
    let counts = handle.join().unwrap().unwrap();
    let returned_secs = started.elapsed().as_secs_f64();
    assert!(
        caught_up(lake.path(), "svc", "bench", total),
        "the last checkpoint does not hold every message"
    );
    assert!(
        !counts.rejected.contains_key(&Reason::Late),
        "events rejected as late: {}",
        counts.summary()
    );
    println!(
        "huoyue-ingest (Kafka mode): {} messages into the lake in {svc_secs:.2} s = {:.0} messages/s (first scored after {:.2} s, all after {scored_secs:.2} s, returned after {returned_secs:.2} s; {})",
        counts.read,
        counts.read as f64 / svc_secs,
        svc_first.unwrap_or_default(),
        counts.summary()
    );
    println!(
        "ratio service / bare consumer: {:.0}% (from each one's first message: {:.0}%)",
        100.0 * (counts.read as f64 / svc_secs) / (n as f64 / bare_secs),
        100.0 * (bare_secs - bare_first.unwrap_or_default())
            / (svc_secs - svc_first.unwrap_or_default())
    );

    // latency at a steady rate with the default flush interval
    let lake2 = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (opts, lake, stop, metrics) = (
            options(&brokers, "live", "live", Duration::from_secs(10)),
            lake2.path().to_owned(),
            Arc::clone(&stop),
            metrics.clone(),
        );
        std::thread::spawn(move || {
            run(opts, profile, EngineConfig::default(), &lake, metrics, stop)
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    let p = producer(&brokers, &[]).unwrap();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            let user = format!("t{}", sent % 50_000);
            let line = format!(
                r#"{{"event_id":"live-{sent}","ts":"{}","user_id":"{user}","role":"teacher","school_id":"3303810001","action":"space_op","op":"upload"}}"#,
                rfc3339(now)
            );
            send(&p, "live", user.as_bytes(), line.as_bytes()).unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).unwrap();
    wait_in_lake(
        lake2.path(),
        "live",
        "live",
        sent as i64,
        Duration::from_secs(60),
        || false,
    );
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    let text = metrics.render();
    let name = "huoyue_end_to_end_latency_seconds";
    println!(
        "end-to-end latency at {rate} events/s for {seconds} s, flush interval 10 s: p50 {:.1} s, p99 {:.1} s ({sent} events)",
        quantile(&text, name, 0.5).unwrap_or(f64::NAN),
        quantile(&text, name, 0.99).unwrap_or(f64::NAN)
    );
}

/// `SystemTime` as RFC 3339 UTC with milliseconds.
fn rfc3339(d: Duration) -> String {
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d_ = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d_:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}
