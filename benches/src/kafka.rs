//! Producing generated events to Kafka (`huoyue-gen --brokers`): one message per
//! line, keyed by the scored user as events.md asks.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::r#gen::Roster;
use crate::r#gen::{GenConfig, for_each_line};

/// What a produce run did.
#[derive(Clone, Copy, Debug)]
pub struct Produced {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Produced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "produced {} messages ({:.1} MB) in {:.2} s ({:.0} messages/s)",
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.messages as f64 / self.seconds.max(1e-9)
        )
    }
}

/// How long to wait for the brokers to answer before producing.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// A producer tuned for throughput; `settings` (librdkafka names) apply last.
pub fn producer(
    brokers: &str,
    settings: &[(String, String)],
) -> Result<ThreadedProducer<DefaultProducerContext>> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.max.bytes", "2000000")
        .set("compression.type", "lz4");
    for (k, v) in settings {
        cfg.set(k, v);
    }
    cfg.create().map_err(|e| anyhow!("bad Kafka setting: {e}"))
}

/// Sends one message, waiting while the producer's queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<()> {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
    if !key.is_empty() {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(anyhow!("cannot produce to {topic}: {e}")),
        }
    }
}

/// Produces the events of `cfg` to `topic`; writes the rosters to
/// `dims_dir/dims/` when given.
pub fn produce(
    cfg: &GenConfig,
    brokers: &str,
    topic: &str,
    settings: &[(String, String)],
    dims_dir: Option<&Path>,
) -> Result<Produced> {
    if let Some(out) = dims_dir {
        let roster = Roster::new(cfg).map_err(|e| anyhow!(e))?;
        let dims = out.join("dims");
        fs::create_dir_all(&dims).with_context(|| format!("cannot create {}", dims.display()))?;
        let mut w = BufWriter::new(File::create(dims.join("schools.csv"))?);
        roster.write_schools_csv(&mut w)?;
        let mut w = BufWriter::new(File::create(dims.join("users.csv"))?);
        roster.write_users_csv(&mut w)?;
    }
    let p = producer(brokers, settings)?;
    // an unreachable broker or a missing topic is said at once, not after
    // the delivery timeout of the first messages
    let md = p
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| {
            anyhow!(
                "cannot reach the brokers at {brokers} within {} s: {e}",
                METADATA_TIMEOUT.as_secs()
            )
        })?;
    if md
        .topics()
        .iter()
        .any(|t| t.name() == topic && (t.error().is_some() || t.partitions().is_empty()))
    {
        return Err(anyhow!(
            "topic {topic} does not exist on {brokers}: create it first"
        ));
    }
    let started = Instant::now();
    let mut out = Produced {
        messages: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let mut failed = None;
    for_each_line(cfg, |line| {
        if let Err(e) = send(&p, topic, line.key, line.bytes) {
            failed = Some(e);
            return Err(std::io::Error::other("produce failed"));
        }
        out.messages += 1;
        out.bytes += line.bytes.len() as u64;
        Ok(())
    })
    .map_err(|e| failed.take().unwrap_or(e))?;
    p.flush(Duration::from_secs(120))
        .map_err(|e| anyhow!("messages not delivered to {topic}: {e}"))?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
