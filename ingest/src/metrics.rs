//! Every metric of the ingest, in one place, and the `/metrics` endpoint.
//!
//! Names start with `huoyue_`; labels are low-cardinality only (reason codes,
//! rule ids, table names, partition numbers), never a user id. The dashboard in
//! `deploy/grafana/` and the alert rules in `deploy/prometheus/` use exactly
//! these names; a test checks that they exist.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use huoyue_schemas::lake;
use huoyue_schemas::reason::Reason;

use crate::engine::EngineStats;
use crate::lake_writer::WrittenFile;
use crate::pipeline::Counts;

/// The ingest's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub events_read: IntCounter,
    pub events_valid: IntCounter,
    pub events_duplicate: IntCounter,
    pub events_rejected: IntCounterVec,
    pub points_written: IntGaugeVec,
    pub files_written: IntCounterVec,
    pub bytes_written: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub flush_duration: Histogram,
    pub checkpoint_duration: Histogram,
    pub flush_failures: IntCounter,
    pub checkpoint_failures: IntCounter,
    pub last_checkpoint: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub newest_event: IntGauge,
    pub end_to_end_latency: Histogram,
    pub engine_state_bytes: IntGauge,
    pub engine_users: IntGauge,
    pub engine_remembered_ids: IntGauge,
    pub checkpoint_bytes: IntGauge,
    pub resident_memory: IntGauge,
    pub memory_limit: IntGauge,
    pub assigned_partitions: IntGauge,
    pub dlq_messages: IntCounter,
    pub kafka_errors: IntCounter,
    /// The counts already reported, so that [`Metrics::observe`] adds differences.
    seen: Arc<std::sync::Mutex<Counts>>,
    /// The partitions assigned here ([`Metrics::assigned`]), the only ones
    /// with a lag series.
    assigned: Arc<std::sync::Mutex<BTreeSet<i32>>>,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Durations of a flush or a checkpoint: milliseconds to a minute.
fn duration_buckets() -> Vec<f64> {
    vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
}

/// End-to-end latency: a second to an hour (a flush interval is 10 s).
fn latency_buckets() -> Vec<f64> {
    vec![
        0.5, 1.0, 2.0, 5.0, 10.0, 12.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            events_read: counter(
                &r,
                "huoyue_events_read_total",
                "Messages read (valid, duplicate or rejected).",
            ),
            events_valid: counter(
                &r,
                "huoyue_events_valid_total",
                "Valid, non-duplicate events accepted.",
            ),
            events_duplicate: counter(
                &r,
                "huoyue_events_duplicate_total",
                "Events whose event_id was seen before.",
            ),
            events_rejected: counter_vec(
                &r,
                "huoyue_events_rejected_total",
                "Messages rejected, by reason code.",
                "reason",
            ),
            points_written: gauge_vec(
                &r,
                "huoyue_points_written",
                "Net points written to daily_scores since start, by rule (corrections can lower it).",
                "rule",
            ),
            files_written: counter_vec(
                &r,
                "huoyue_files_written_total",
                "Parquet files published, by table.",
                "table",
            ),
            bytes_written: counter_vec(
                &r,
                "huoyue_bytes_written_total",
                "Parquet bytes published, by table.",
                "table",
            ),
            rows_written: counter_vec(
                &r,
                "huoyue_rows_written_total",
                "Rows published, by table.",
                "table",
            ),
            flush_duration: histogram(
                &r,
                "huoyue_flush_duration_seconds",
                "Time to encode and make durable one flush's files.",
                duration_buckets(),
            ),
            checkpoint_duration: histogram(
                &r,
                "huoyue_checkpoint_duration_seconds",
                "Time to write a checkpoint and publish its files.",
                duration_buckets(),
            ),
            flush_failures: counter(
                &r,
                "huoyue_flush_failures_total",
                "Flushes that failed (the lake could not be written).",
            ),
            checkpoint_failures: counter(
                &r,
                "huoyue_checkpoint_failures_total",
                "Checkpoints that failed.",
            ),
            last_checkpoint: gauge(
                &r,
                "huoyue_last_checkpoint_timestamp_seconds",
                "Unix time of the last successful checkpoint, or of the last flush interval with nothing new to checkpoint.",
            ),
            consumer_lag: gauge_vec(
                &r,
                "huoyue_consumer_lag",
                "Messages behind the high watermark, by assigned partition.",
                "partition",
            ),
            newest_event: gauge(
                &r,
                "huoyue_newest_event_timestamp_seconds",
                "The newest event ts seen (unix seconds).",
            ),
            end_to_end_latency: histogram(
                &r,
                "huoyue_end_to_end_latency_seconds",
                "From an event's ts to its file being visible in the lake.",
                latency_buckets(),
            ),
            engine_state_bytes: gauge(
                &r,
                "huoyue_engine_state_bytes",
                "Estimated heap bytes of the scoring state.",
            ),
            engine_users: gauge(
                &r,
                "huoyue_engine_users",
                "Scored users with state in the engine.",
            ),
            engine_remembered_ids: gauge(
                &r,
                "huoyue_engine_remembered_ids",
                "Event ids remembered to catch duplicates (about 8 days of events: most of the state).",
            ),
            checkpoint_bytes: gauge(
                &r,
                "huoyue_checkpoint_bytes",
                "Bytes the last checkpoint wrote: its file and its segment (the remembered event ids, users and daily_activity rows changed since the checkpoint before; all of them at a base).",
            ),
            resident_memory: gauge(
                &r,
                "huoyue_resident_memory_bytes",
                "Resident memory of the process (read at each scrape; Linux).",
            ),
            memory_limit: gauge(
                &r,
                "huoyue_memory_limit_bytes",
                "Memory the process may use: the lowest limit of its cgroups (a container's), else the machine's memory (read at each scrape; Linux).",
            ),
            assigned_partitions: gauge(
                &r,
                "huoyue_assigned_partitions",
                "Kafka partitions assigned to this instance.",
            ),
            dlq_messages: counter(
                &r,
                "huoyue_dlq_messages_total",
                "Rejected messages sent to the dead-letter topic.",
            ),
            kafka_errors: counter(
                &r,
                "huoyue_kafka_errors_total",
                "Errors reported by the Kafka client (broker down, timeouts).",
            ),
            seen: Arc::default(),
            assigned: Arc::default(),
            registry: r,
        };
        for reason in Reason::ALL {
            m.events_rejected.with_label_values(&[reason.as_str()]);
        }
        for table in lake::INGEST_TABLES {
            m.files_written.with_label_values(&[table]);
            m.bytes_written.with_label_values(&[table]);
            m.rows_written.with_label_values(&[table]);
        }
        m
    }

    /// Adds what `counts` gained since the last call.
    pub fn observe(&self, counts: &Counts) {
        let mut seen = self.seen.lock().expect("metrics counts");
        self.events_read.inc_by(counts.read - seen.read);
        self.events_valid.inc_by(counts.valid - seen.valid);
        self.events_duplicate
            .inc_by(counts.duplicates - seen.duplicates);
        for (reason, n) in &counts.rejected {
            let before = seen.rejected.get(reason).copied().unwrap_or(0);
            self.events_rejected
                .with_label_values(&[reason.as_str()])
                .inc_by(n - before);
        }
        for (rule, p) in &counts.points {
            self.points_written.with_label_values(&[rule]).set(*p);
        }
        *seen = counts.clone();
    }

    /// A checkpoint of `bytes` that took `secs` published `files` at `at`
    /// (µs since the epoch).
    pub fn checkpointed(&self, files: &[WrittenFile], secs: f64, bytes: u64, at: i64) {
        for (table, (n, bytes, rows)) in files_by_table(files) {
            self.files_written.with_label_values(&[table]).inc_by(n);
            self.bytes_written.with_label_values(&[table]).inc_by(bytes);
            self.rows_written.with_label_values(&[table]).inc_by(rows);
        }
        self.checkpoint_duration.observe(secs);
        self.checkpoint_bytes.set(bytes as i64);
        self.last_checkpoint.set(at / 1_000_000);
    }

    /// The partitions this instance reads now: their number, and lag series
    /// for them only. A partition that moved to another instance would
    /// otherwise keep the lag last seen here, beside its new owner's (and a
    /// stale lag above 0 makes the ingest look stalled).
    pub fn assigned(&self, partitions: impl IntoIterator<Item = i32>) {
        let mut assigned = self.assigned.lock().expect("assigned partitions");
        let now: BTreeSet<i32> = partitions.into_iter().collect();
        for gone in assigned.difference(&now) {
            let _ = self.consumer_lag.remove_label_values(&[&gone.to_string()]);
        }
        self.assigned_partitions.set(now.len() as i64);
        *assigned = now;
    }

    /// The lag of partition `p`, if it is assigned here ([`Metrics::assigned`]):
    /// the client's statistics can still name a partition just revoked.
    pub fn lag(&self, p: i32, lag: i64) {
        if self
            .assigned
            .lock()
            .expect("assigned partitions")
            .contains(&p)
        {
            self.consumer_lag
                .with_label_values(&[&p.to_string()])
                .set(lag.max(0));
        }
    }

    /// The engine's size now.
    pub fn engine(&self, stats: &EngineStats) {
        self.engine_state_bytes.set(stats.state_bytes as i64);
        self.engine_users.set(stats.users as i64);
        self.engine_remembered_ids.set(stats.remembered_ids as i64);
    }

    /// Events with these times (µs since the epoch) were read: the newest
    /// event time goes up to theirs.
    pub fn event_times(&self, times: &[i64]) {
        if let Some(max) = times.iter().max() {
            let secs = max / 1_000_000;
            if secs > self.newest_event.get() {
                self.newest_event.set(secs);
            }
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(n) = memory::resident_bytes() {
            self.resident_memory.set(n as i64);
        }
        if let Some(n) = memory::limit_bytes() {
            self.memory_limit.set(n as i64);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }

    /// Every metric name registered, labelled series or not yet (for the
    /// dashboard check).
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let all: [&dyn Collector; 25] = [
            &self.events_read,
            &self.events_valid,
            &self.events_duplicate,
            &self.events_rejected,
            &self.points_written,
            &self.files_written,
            &self.bytes_written,
            &self.rows_written,
            &self.flush_duration,
            &self.checkpoint_duration,
            &self.flush_failures,
            &self.checkpoint_failures,
            &self.last_checkpoint,
            &self.consumer_lag,
            &self.newest_event,
            &self.end_to_end_latency,
            &self.engine_state_bytes,
            &self.engine_users,
            &self.engine_remembered_ids,
            &self.checkpoint_bytes,
            &self.resident_memory,
            &self.memory_limit,
            &self.assigned_partitions,
            &self.dlq_messages,
            &self.kafka_errors,
        ];
        all.iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect()
    }

    /// Serves `GET /metrics` (and `GET /health`) on `addr` from a background
    /// thread; fails if the address cannot be bound. Each connection gets a
    /// thread of its own (at most [`MAX_CONNECTIONS`] at once; more are
    /// closed at once), so that a client that connects and sends nothing
    /// holds up nobody else: a scrape, or a liveness probe with its 1 s
    /// timeout, would otherwise wait out its 5 s.
    pub fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let metrics = self.clone();
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                        open.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    let (metrics, done) = (metrics.clone(), Arc::clone(&open));
                    let served = std::thread::Builder::new()
                        .name("metrics-conn".into())
                        .spawn(move || {
                            let _ = answer(&metrics, stream);
                            done.fetch_sub(1, Ordering::Relaxed);
                        });
                    if served.is_err() {
                        open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(local)
    }
}

/// Connections of the metrics endpoint served at once.
pub const MAX_CONNECTIONS: usize = 8;

fn answer(metrics: &Metrics, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // drain the headers
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/health" => ("200 OK", "text/plain", "ok\n".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The process's memory and the memory it may use, from `/proc` and the
/// cgroup file system (Linux; `None` elsewhere or when unreadable).
mod memory {
    use std::path::Path;

    /// Resident memory, from `/proc/self/status`.
    pub fn resident_bytes() -> Option<u64> {
        kib_field(
            &std::fs::read_to_string("/proc/self/status").ok()?,
            "VmRSS:",
        )
    }

    /// The lowest of the memory limits of the process's cgroups (v2 or v1)
    /// and of the machine's memory.
    pub fn limit_bytes() -> Option<u64> {
        let machine = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| kib_field(&m, "MemTotal:"));
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let limits = limit_files(&cgroups)
            .into_iter()
            .filter_map(|f| std::fs::read_to_string(Path::new(&f)).ok())
            .filter_map(|text| parse_limit(&text));
        limits.chain(machine).min()
    }

    /// A `Name:   1234 kB` line's value in bytes.
    pub(super) fn kib_field(text: &str, name: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// A cgroup memory limit file's value; `None` for no limit (v2 `max`,
    /// v1's page-rounded 2⁶³).
    pub(super) fn parse_limit(text: &str) -> Option<u64> {
        let n: u64 = text.trim().parse().ok()?;
        (n < 1 << 62).then_some(n)
    }

    /// The memory limit files of the cgroups in `/proc/self/cgroup`'s
    /// `text` and of their ancestors (a limit anywhere above applies). A
    /// container sees its own cgroup as the root of the mount, whatever
    /// path the file names, so the mount's root is always looked at.
    pub(super) fn limit_files(text: &str) -> Vec<String> {
        let mut files = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (root, file) = if controllers.is_empty() {
                ("/sys/fs/cgroup", "memory.max")
            } else if controllers.split(',').any(|c| c == "memory") {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            } else {
                continue;
            };
            let mut dir = path.trim_end_matches('/');
            loop {
                files.push(format!("{root}{dir}/{file}"));
                match dir.rfind('/') {
                    Some(i) => dir = &dir[..i],
                    None => break,
                }
            }
        }
        files
    }
}

/// Per-table figures of published files, for the metrics.
fn files_by_table(files: &[WrittenFile]) -> BTreeMap<&'static str, (u64, u64, u64)> {
    let mut out: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    for f in files {
        let e = out.entry(f.table).or_default();
        e.0 += 1;
        e.1 += f.bytes;
        e.2 += f.rows;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_and_registered() {
        let m = Metrics::new();
        let names = m.names();
        assert_eq!(names.len(), 25);
        let text = m.render();
        for n in &names {
            assert!(n.starts_with("huoyue_"), "{n}");
            // unlabelled and pre-initialised series are exposed from the start
            if !matches!(n.as_str(), "huoyue_points_written" | "huoyue_consumer_lag") {
                assert!(text.contains(&format!("# TYPE {n} ")), "{n} not exposed");
            }
        }
    }

    #[test]
    fn memory_figures_are_read_from_proc_and_cgroups() {
        let status = "Name:\thuoyue-ingest\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\n";
        assert_eq!(memory::kib_field(status, "VmRSS:"), Some(123_456 * 1024));
        assert_eq!(memory::kib_field(status, "VmSwap:"), None);
        assert_eq!(memory::parse_limit("4294967296\n"), Some(4 << 30));
        assert_eq!(memory::parse_limit("max\n"), None);
        assert_eq!(memory::parse_limit("9223372036854771712\n"), None);
        // v2: the process's cgroup and every ancestor, up to the mount's root
        assert_eq!(
            memory::limit_files("0::/kubepods/pod1/c2\n"),
            [
                "/sys/fs/cgroup/kubepods/pod1/c2/memory.max",
                "/sys/fs/cgroup/kubepods/pod1/memory.max",
                "/sys/fs/cgroup/kubepods/memory.max",
                "/sys/fs/cgroup/memory.max",
            ]
        );
        assert_eq!(memory::limit_files("0::/\n"), ["/sys/fs/cgroup/memory.max"]);
        // v1: only the memory controller's line
        assert_eq!(
            memory::limit_files("5:cpu,cpuacct:/a\n4:memory:/docker/x\n"),
            [
                "/sys/fs/cgroup/memory/docker/x/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ]
        );
        // this process, on Linux: some memory, under a limit above it
        if cfg!(target_os = "linux") {
            let m = Metrics::new();
            let text = m.render();
            let resident = m.resident_memory.get();
            let limit = m.memory_limit.get();
            assert!(resident > 1 << 20, "{resident}\n{text}");
            assert!(limit > resident, "{limit} vs {resident}");
        }
    }

    #[test]
    fn only_assigned_partitions_have_a_lag() {
        let m = Metrics::new();
        m.assigned([0, 1, 2, 3]);
        for p in 0..4 {
            m.lag(p, 100 * i64::from(p));
        }
        // partitions 2 and 3 move to another instance
        m.assigned([0, 1]);
        // statistics made before the revocation still name them
        m.lag(3, 500);
        m.lag(1, 7);
        let text = m.render();
        let lags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("huoyue_consumer_lag{"))
            .collect();
        assert_eq!(
            lags,
            [
                r#"huoyue_consumer_lag{partition="0"} 0"#,
                r#"huoyue_consumer_lag{partition="1"} 7"#
            ]
        );
        assert!(text.contains("huoyue_assigned_partitions 2"), "{text}");
    }

    #[test]
    fn observe_adds_differences() {
        let m = Metrics::new();
        let mut c = Counts {
            read: 10,
            valid: 7,
            duplicates: 1,
            ..Counts::default()
        };
        c.rejected.insert(Reason::BadJson, 2);
        m.observe(&c);
        c.read = 15;
        c.rejected.insert(Reason::BadJson, 3);
        m.observe(&c);
        assert_eq!(m.events_read.get(), 15);
        assert_eq!(m.events_valid.get(), 7);
        assert_eq!(m.events_rejected.with_label_values(&["bad_json"]).get(), 3);
    }

    /// The endpoint's whole answer to `GET path`.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut s, &mut body).unwrap();
        body
    }

    #[test]
    fn the_endpoint_serves_metrics() {
        let m = Metrics::new();
        m.events_read.inc_by(42);
        let addr = m.serve("127.0.0.1:0".parse().unwrap()).unwrap();
        let body = get(addr, "/metrics");
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("huoyue_events_read_total 42"), "{body}");
    }

    #[test]
    fn a_silent_client_holds_up_nobody() {
        let m = Metrics::new();
        let addr = m.serve("127.0.0.1:0".parse().unwrap()).unwrap();
        // connected, sending nothing: the endpoint waits 5 s for its request
        let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let body = get(addr, "/health");
        assert!(body.ends_with("ok\n"), "{body}");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2500), "{took:?}");
        drop(silent);
    }
}
