//! A real Kafka-protocol broker for the tests: `nisshi` (the tansu broker under
//! its new name), one per test, on a free port of 127.0.0.1; and the
//! `huoyue-ingest` service as a child process.
//!
//! The broker binary is `$HUOYUE_BROKER`, else
//! `$HOME/.cache/huoyue/tools/bin/nisshi` (where `scripts/install-tools` puts
//! it), else `nisshi` on `PATH`. A missing broker fails the test: it is never
//! skipped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use huoyue_ingest::checkpoint::Checkpoint;

/// The broker binary.
pub fn broker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HUOYUE_BROKER") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/huoyue/tools/bin/nisshi");
        if p.exists() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nisshi");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "the nisshi broker is not installed: run scripts/install-tools (as .ci/run does) or set \
         HUOYUE_BROKER"
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Records failed deliveries, so a test never runs on fewer messages than it
/// produced.
#[derive(Default)]
pub struct Deliveries {
    failed: std::sync::Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let detail = format!("{e} ({} bytes)", m.payload().map_or(0, <[u8]>::len));
            self.failed.lock().unwrap().push(detail);
        }
    }
}

/// A running broker; killed on drop.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("broker.log");
        let mut b = Broker {
            port,
            child: None,
            log,
            _dir: dir,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(broker_bin())
            .arg("broker")
            .arg("--storage-engine=memory://huoyue/")
            .arg(format!("--listener-url={url}"))
            .arg(format!("--advertised-listener-url={url}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Kills the broker and starts a new one at the same address: its memory
    /// storage is gone (no topics, every partition empty).
    pub fn restart_empty(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", self.addr())
                    .create()
                    .unwrap();
                if c.fetch_metadata(None, Duration::from_secs(2)).is_ok() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a topic (the broker does not create topics on first use).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let out = Command::new(broker_bin())
            .args(["topic", "create"])
            .arg(format!("--broker=tcp://127.0.0.1:{}", self.port))
            .arg(format!("--partitions={partitions}"))
            // room for the 1 MiB poison message (Kafka's default limit is
            // 1 MiB including the batch overhead)
            .arg("--config=max.message.bytes=4194304")
            .arg(name)
            .output()
            .expect("run the broker's topic create");
        assert!(
            out.status.success(),
            "topic create {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // wait until the metadata shows every partition
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(md) = c.fetch_metadata(Some(name), Duration::from_secs(2))
                && md
                    .topics()
                    .iter()
                    .any(|t| t.name() == name && t.partitions().len() == partitions as usize)
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "topic {name} never appeared"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the broker process (SIGSTOP): clients see it go silent, connections
    /// time out, nothing is lost; [`Broker::resume`] brings it back.
    pub fn pause(&self) {
        signal(self.child.as_ref().unwrap().id(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.child.as_ref().unwrap().id(), "CONT");
    }

    pub fn producer(&self) -> ThreadedProducer<Deliveries> {
        ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000")
            .create_with_context(Deliveries::default())
            .unwrap()
    }

    /// Produces `(key, payload)` messages and waits for their delivery.
    pub fn produce(&self, topic: &str, messages: &[(Vec<u8>, Vec<u8>)]) {
        let p = self.producer();
        for (k, v) in messages {
            let mut r = BaseRecord::<[u8], [u8]>::to(topic).payload(v);
            if !k.is_empty() {
                r = r.key(k);
            }
            let mut r = r;
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60)).expect("delivery");
        let failed = p.context().failed.lock().unwrap();
        assert!(failed.is_empty(), "the broker refused messages: {failed:?}");
    }

    /// The high watermark of every partition of `topic`.
    pub fn end_offsets(&self, topic: &str) -> BTreeMap<i32, i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap();
        let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
        t.partitions()
            .iter()
            .map(|p| {
                let (_, hi) = c
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                    .unwrap();
                (p.id(), hi)
            })
            .collect()
    }

    /// Every message of `topic` (payload, headers), reading until `expected`
    /// arrived or 30 s passed.
    pub fn consume_all(
        &self,
        topic: &str,
        expected: usize,
    ) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let mut out = Vec::new();
        let started = Instant::now();
        while out.len() < expected && started.elapsed() < Duration::from_secs(30) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for i in 0..h.count() {
                        let hd = h.get(i);
                        headers.insert(
                            hd.key.to_owned(),
                            String::from_utf8_lossy(hd.value.unwrap_or(&[])).into_owned(),
                        );
                    }
                }
                out.push((m.payload().unwrap_or(&[]).to_vec(), headers));
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The Kafka key of an event line: the scored user (events.md).
pub fn key_of(line: &[u8]) -> Vec<u8> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return Vec::new();
    };
    let owner = matches!(
        v.get("action").and_then(|a| a.as_str()),
        Some("resource_interact" | "resource_review" | "task_progress")
    );
    let field = if owner { "owner_id" } else { "user_id" };
    v.get(field)
        .and_then(|u| u.as_str())
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default()
}

/// The lines of an NDJSON file as keyed messages.
pub fn keyed_lines(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    std::fs::read(path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| (key_of(l), l.to_vec()))
        .collect()
}

/// `huoyue-ingest` in Kafka mode without its default metrics address: tests
/// run side by side, and none may take the default port.
pub fn service_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"));
    command.args(["--metrics-addr", "off"]);
    command
}

/// A `huoyue-ingest` service process.
pub struct Service {
    pub child: Child,
    pub log: PathBuf,
    /// The length of the log when this instance started: its lines follow.
    log_from: u64,
}

pub struct ServiceArgs<'a> {
    pub lake: &'a Path,
    pub broker: &'a Broker,
    pub topic: &'a str,
    pub group: &'a str,
    pub instance: &'a str,
    pub extra: Vec<String>,
}

impl Service {
    pub fn start(a: &ServiceArgs<'_>, log: &Path) -> Service {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let log_from = out.metadata().unwrap().len();
        let mut command = if a.extra.iter().any(|x| x == "--metrics-addr") {
            Command::new(env!("CARGO_BIN_EXE_huoyue-ingest"))
        } else {
            service_command()
        };
        let child = command
            .arg("--lake")
            .arg(a.lake)
            .args(["--brokers", &a.broker.addr()])
            .args(["--topic", a.topic])
            .args(["--group", a.group])
            .args(["--instance-id", a.instance])
            .args(if a.extra.iter().any(|x| x == "--flush-interval") {
                vec![]
            } else {
                vec!["--flush-interval", "500ms"]
            })
            .args(["-X", "session.timeout.ms=6000"])
            .args(&a.extra)
            .env(
                "RUST_LOG",
                std::env::var("HUOYUE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start huoyue-ingest");
        Service {
            child,
            log: log.to_owned(),
            log_from,
        }
    }

    /// Waits (up to `within`) until this instance says it is consuming, or has
    /// exited: a process signalled in its first milliseconds, before it
    /// installs its handlers, dies of the signal, as any program does.
    fn wait_running(&mut self, within: Duration) {
        let started = Instant::now();
        while started.elapsed() < within && self.exited().is_none() {
            let log = std::fs::read(&self.log).unwrap_or_default();
            let own = log.get(self.log_from as usize..).unwrap_or_default();
            let said = b"consuming";
            if own.windows(said.len()).any(|w| w == said) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM once the instance is running, then the exit status (fails after
    /// `within`).
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        self.wait_running(within);
        signal(self.child.id(), "TERM");
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "huoyue-ingest did not stop within {within:?} of SIGTERM: {}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no flush, no checkpoint.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A service a failing test leaves behind is killed, not left running.
impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the checkpoints of `group` in `lake` together have read
/// `messages` messages of `topic` (offsets of a fresh topic count from 0).
pub fn wait_caught_up(
    lake: &Path,
    group: &str,
    topic: &str,
    messages: usize,
    within: Duration,
    logs: &dyn Fn() -> String,
) {
    let dir = huoyue_ingest::checkpoint::dir(lake, group, topic);
    let started = Instant::now();
    loop {
        let mut at: BTreeMap<i32, (u64, i64)> = BTreeMap::new();
        for c in Checkpoint::load_all(&dir).unwrap_or_default() {
            for (p, m) in c.partitions {
                let e = at.entry(p).or_insert((0, 0));
                if m.generation >= e.0 {
                    *e = (m.generation, m.offset);
                }
            }
        }
        let read: i64 = at.values().map(|(_, o)| o).sum();
        if read >= messages as i64 {
            return;
        }
        assert!(
            started.elapsed() < within,
            "not caught up after {within:?}: at {at:?} of {messages} messages\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
