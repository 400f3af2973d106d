//! Kafka mode: the long-running service. A consumer-group member reads the
//! topic, the same [`Pipeline`] as file mode scores and writes, and every flush
//! ends in a checkpoint (see [`checkpoint`]) that makes the flush's files
//! visible together with the offsets and the engine state that produced them.
//!
//! The poll thread owns the consumer and hands batches of messages to the
//! scoring thread, which decodes them (one thread per core), scores them and
//! checkpoints; the lake writer encodes on its own threads, a checkpoint
//! thread stores each checkpoint, and the dead-letter producer sends from
//! librdkafka's. A checkpoint is pipelined: the flush hands its rows to the
//! encoders and takes the engine snapshot and offsets at once, reading and
//! scoring go on while the files are encoded, and the checkpoint is stored
//! (and the files published) once they are durable. At most one checkpoint is
//! in flight; a revocation or a shutdown waits for it. Rebalances run inside
//! `poll`, on the poll thread, under the lock the scoring thread holds while
//! it works: a revoked partition is flushed and checkpointed before it is
//! released, and batches read before the rebalance are dropped; an assigned
//! partition starts at the offset of the newest checkpoint that holds it, and
//! if another instance wrote that checkpoint, the users of that partition are
//! taken over from its engine state ([`crate::engine::Engine::absorb`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use huoyue_schemas::profile::Profile;

use crate::checkpoint::{self, Checkpoint, Mark, SegmentFile};
use crate::engine::{Engine, EngineConfig};
use crate::lake_writer::publish::PartitionLock;
use crate::lake_writer::{LakeWriter, WrittenFile};
use crate::metrics::Metrics;
use crate::pipeline::decode::append_spans;
use crate::pipeline::file::now_micros;
use crate::pipeline::{Counts, DecodedChunk, Pipeline, Span, decode_chunk, sub_chunk};

/// How the service reads, flushes and identifies itself.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub dlq_topic: String,
    /// Stable per replica and unique in the group (checkpoint and file names).
    pub instance: String,
    pub flush_interval: Duration,
    pub flush_rows: usize,
    /// librdkafka settings (`-X key=value`), applied last.
    pub settings: Vec<(String, String)>,
    /// How long to keep trying to reach the brokers at start.
    pub connect_timeout: Duration,
    /// Read these partitions (empty: all of the topic's) without consumer-group
    /// coordination, instead of joining the group; `None`: join the group.
    pub partitions: Option<Vec<i32>>,
}

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("bad Kafka setting: {0}")]
    Config(String),
    #[error("brokers {brokers} unreachable after {secs} s: {error}")]
    Unreachable {
        brokers: String,
        secs: u64,
        error: String,
    },
    #[error("topic {0:?} does not exist (create it first)")]
    NoTopic(String),
    #[error("dead-letter topic {0:?} does not exist (create it, or name another with --dlq-topic)")]
    NoDlqTopic(String),
    #[error("instance id {0:?} must be letters, digits, '.' and '-' only")]
    BadInstance(String),
    #[error(
        "{what} {name:?} names a folder of the lake's checkpoints: it must be letters, digits, '.', '_' and '-' only, and not . or .."
    )]
    BadName { what: &'static str, name: String },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A checkpoint of the group cannot be read: no instance can take its
    /// partitions until it is rebuilt from the lake.
    #[error(
        "{error}; stop the group's instances and rebuild it from the lake with `huoyue-aggregate rebuild-state --lake {lake} --group {group} --topic {topic}`"
    )]
    CorruptCheckpoint {
        error: Box<checkpoint::CheckpointError>,
        lake: String,
        group: String,
        topic: String,
    },
    #[error(transparent)]
    Lake(#[from] crate::lake_writer::LakeError),
    #[error(
        "another process with --instance-id {instance} is consuming into this lake (it holds {path}); each instance needs its own id"
    )]
    Busy { instance: String, path: String },
    #[error(
        "partition {partition} of topic {topic:?} is being read into this lake by another instance (it holds {path}): two readers of one partition would write its events twice; give the instances' --partitions no partition in common, or let the consumer group split them"
    )]
    PartitionBusy {
        partition: i32,
        topic: String,
        path: String,
    },
    /// Told to stop while it waited for a partition ([`Service::lock_partitions`]):
    /// not an error, the service stops as it would otherwise.
    #[error("stopped while waiting for a partition")]
    Stopped,
    #[error(
        "Kafka client stopped for good: {reason} (is another instance running with --instance-id {instance}? each needs its own)"
    )]
    Fatal { reason: String, instance: String },
    #[error("{0}")]
    Other(String),
}

impl ServiceError {
    /// This error, a corrupt checkpoint of the group `group` reading
    /// `topic` into `lake` made [`ServiceError::CorruptCheckpoint`], which
    /// names the command that rebuilds it.
    pub fn naming_the_rebuild(self, lake: &Path, group: &str, topic: &str) -> ServiceError {
        match self {
            ServiceError::Checkpoint(error) if error.is_corrupt() => {
                ServiceError::CorruptCheckpoint {
                    error: Box::new(error),
                    lake: lake.display().to_string(),
                    group: group.to_owned(),
                    topic: topic.to_owned(),
                }
            }
            e => e,
        }
    }
}

/// Dead letters carry at most this many bytes of the rejected message (brokers
/// refuse messages over about 1 MB by default); the header
/// `huoyue-truncated-from` then gives the original length. The lake's
/// `rejected.raw` always keeps the whole message.
pub const DLQ_MAX_PAYLOAD: usize = 900 << 10;

/// Rate-limits a repeated log line: at most one per `every`.
struct Throttle {
    last: Mutex<Option<Instant>>,
    every: Duration,
}

impl Throttle {
    fn new(every: Duration) -> Throttle {
        Throttle {
            last: Mutex::new(None),
            every,
        }
    }

    fn ready(&self) -> bool {
        let mut last = self.last.lock().expect("throttle");
        if last.is_none_or(|t| t.elapsed() >= self.every) {
            *last = Some(Instant::now());
            true
        } else {
            false
        }
    }
}

/// Messages read but not yet scored: their bytes back to back.
#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl Pending {
    fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
    }

    /// Appends the messages of `other` (one copy per batch).
    fn append(&mut self, other: &Pending) {
        append_spans(&other.data, &other.spans, &mut self.data, &mut self.spans);
    }
}

/// Messages being decoded on other threads, and the next offset per
/// partition once they are scored.
struct Decoding {
    parts: Vec<std::thread::JoinHandle<DecodedChunk>>,
    marks: BTreeMap<i32, i64>,
}

/// A checkpoint begun (flushed, its snapshot taken) and not yet durable.
struct InFlight {
    /// The checkpoint, until its files are durable.
    ckpt: Option<Checkpoint>,
    /// Then the thread that stores it and publishes the files.
    storing: Option<std::thread::JoinHandle<Result<Stored, ServiceError>>>,
    /// Event times (µs) of the flush, for the latency histogram.
    times: Vec<i64>,
    /// Dead letters queued before the flush: all must be settled first.
    dead_letters: u64,
    started: Instant,
    /// From the flush until its files were durable.
    flush_secs: f64,
}

/// A checkpoint stored, its files published.
struct Stored {
    ckpt: Checkpoint,
    published: Vec<WrittenFile>,
    secs: f64,
    /// The checkpoint file's size.
    bytes: u64,
}

/// Everything the consumer thread and the rebalance callback share.
struct Service {
    opts: KafkaOptions,
    lake: PathBuf,
    profile: Profile,
    pipeline: Pipeline,
    /// Next offset to read, per assigned partition (after what was scored).
    positions: BTreeMap<i32, Mark>,
    /// Partitions read before and handed over (revoked, or not assigned at
    /// this start), whose state this instance keeps until their new owner's
    /// checkpoint holds them ([`Service::settle_handed`]), with where they
    /// were.
    handed: BTreeMap<i32, Mark>,
    pending: Pending,
    /// Messages read before `pending`, being decoded.
    decoding: Option<Decoding>,
    /// Event times (µs) accepted since the last checkpoint, for the latency histogram.
    times: Vec<i64>,
    /// The checkpoint whose files are being encoded.
    in_flight: Option<InFlight>,
    seq: u64,
    last_checkpoint: Instant,
    /// Whether anything was read since the last checkpoint.
    dirty: bool,
    producer: Arc<ThreadedProducer<DlqContext>>,
    /// Dead-letter delivery failures already reported.
    dlq_failures: u64,
    /// The last stored checkpoint's snapshot buffer, for the next snapshot.
    spare_snapshot: Vec<u8>,
    /// The segments of the last checkpoint: the last base, then those after it.
    segments: Vec<SegmentFile>,
    /// Segments the last base left out, removed once the next checkpoint
    /// is durable.
    retiring: Vec<String>,
    /// The lock of each partition read ([`Service::lock_partitions`]).
    partition_locks: BTreeMap<i32, PartitionLock>,
    /// Set to stop the service (a signal).
    stop: Arc<AtomicBool>,
    /// Buffers of scored chunks, for the next ones ([`decode_parallel`]).
    spare_bytes: Vec<Vec<u8>>,
    metrics: Metrics,
    /// An error raised inside a rebalance callback, for the main loop.
    failed: Option<ServiceError>,
}

/// The consumer's context: rebalances, errors and statistics.
struct Ctx {
    service: Mutex<Option<Service>>,
    metrics: Metrics,
    topic: String,
    errors: Throttle,
    /// For the warning of a partition read past its end.
    past_end: Throttle,
    /// The partitions the last statistics found read past their end.
    past_end_seen: Mutex<BTreeSet<i32>>,
    broker_down: AtomicBool,
    /// Grows at every rebalance: messages polled before one are dropped (the
    /// new assignment reads them again from the checkpointed offsets).
    rebalances: AtomicU64,
    /// A fatal client error's reason: the service stops without another
    /// checkpoint.
    fatal: Mutex<Option<String>>,
}

impl Ctx {
    /// Whether the client met a fatal error (it can do nothing more).
    fn is_fatal(&self) -> bool {
        self.fatal.lock().expect("fatal error").is_some()
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.kafka_errors.inc();
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId)
        ) {
            // the client is unusable (a static member fenced by another
            // with the same group.instance.id): the service stops
            tracing::error!("Kafka: {reason}");
            let mut fatal = self.fatal.lock().expect("fatal error");
            fatal.get_or_insert_with(|| reason.to_owned());
            return;
        }
        self.broker_down.store(true, Ordering::Relaxed);
        if self.errors.ready() {
            tracing::warn!(
                "Kafka: {error}: {reason} (librdkafka keeps retrying; scoring resumes when the brokers answer)"
            );
        }
    }

    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.topic) else {
            return;
        };
        for (p, part) in &topic.partitions {
            if *p < 0 || !part.desired {
                continue;
            }
            let position = read_position(part.app_offset, part.next_offset);
            // a broker that lost its data (a topic recreated or truncated) has
            // its end behind where this instance reads: nothing before that
            // offset would ever be read, and lag says 0
            let mut seen = self.past_end_seen.lock().expect("past-end partitions");
            if past_end(&mut seen, *p, position, part.hi_offset) && self.past_end.ready() {
                tracing::warn!(
                    "partition {p}: the next offset to read, {position}, is past the partition's end, {}: was the topic recreated or truncated? Its messages before offset {position} are not read (the checkpoint holds the old offsets)",
                    part.hi_offset,
                );
            }
            // lag behind the high watermark from what was fetched, not what was
            // committed (offsets commit only at checkpoints)
            let lag = if part.hi_offset >= 0 && position >= 0 {
                part.hi_offset - position
            } else {
                part.consumer_lag.max(0)
            };
            self.metrics.lag(*p, lag);
        }
    }
}

/// Whether partition `p`, read at `position`, is past its end `hi` (-1: not
/// known) in two statistics reports in a row (`seen` holds the partitions the
/// last report found so): the first report after the partition is assigned
/// may still show the end it had when this instance last read it.
fn past_end(seen: &mut BTreeSet<i32>, p: i32, position: i64, hi: i64) -> bool {
    if hi >= 0 && position > hi {
        !seen.insert(p)
    } else {
        seen.remove(&p);
        false
    }
}

/// Where a partition is read, from its statistics: past the last message
/// handed over (`app_offset`), or, before any since the start (a restart:
/// `app_offset` is -1001 then), where the client fetches (`next_offset`).
fn read_position(app_offset: i64, next_offset: i64) -> i64 {
    if app_offset >= 0 {
        app_offset
    } else {
        next_offset
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.service.lock().expect("service");
        let Some(svc) = guard.as_mut() else {
            // shutting down: let librdkafka's close proceed
            let _ = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                consumer.assign(tpl)
            } else {
                consumer.unassign()
            };
            return;
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = svc.assign(tpl) {
                    tracing::error!("cannot take the assigned partitions: {e}");
                    svc.failed.get_or_insert(e);
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("assign: {e}");
                }
                self.metrics.assigned(svc.positions.keys().copied());
                tracing::info!(
                    partitions = ?svc.positions.keys().collect::<Vec<_>>(),
                    "partitions assigned"
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?revoked, "partitions revoked: flushing them first");
                if let Err(e) = svc.checkpoint(Some(consumer), true) {
                    tracing::error!("checkpoint before revocation failed: {e}");
                    svc.failed.get_or_insert(e);
                }
                for p in &revoked {
                    // its state stays, and goes in the checkpoints, until
                    // its next owner's checkpoint holds it
                    if let Some(m) = svc.positions.remove(p) {
                        svc.handed.insert(*p, m);
                    }
                    // checkpointed: the next owner may read it
                    svc.partition_locks.remove(p);
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!("unassign: {e}");
                }
                self.metrics.assigned(svc.positions.keys().copied());
            }
            other => {
                tracing::error!("rebalance error: {other:?}");
                let _ = consumer.unassign();
            }
        }
    }
}

/// The dead-letter producer's context: counts dead letters queued, settled
/// (delivered or failed) and failed.
struct DlqContext {
    queued: AtomicU64,
    settled: AtomicU64,
    failures: AtomicU64,
}

impl ClientContext for DlqContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        ) {
            tracing::warn!(target: "librdkafka", "dlq {fac}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("dlq producer: {error}: {reason}");
    }
}

impl ProducerContext for DlqContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("a dead letter was not delivered: {e}");
        }
        self.settled.fetch_add(1, Ordering::Release);
    }
}

impl Service {
    fn checkpoint_dir(&self) -> PathBuf {
        checkpoint::dir(&self.lake, &self.opts.group, &self.opts.topic)
    }

    /// Starts decoding what was read since the last call and scores what was
    /// decoded before: decoding runs on other threads while this one scores.
    fn score_pending(&mut self) {
        let before = self.decoding.take();
        self.start_decoding();
        if let Some(d) = before {
            self.score_decoded(d);
        }
    }

    /// Scores everything read so far (before a checkpoint, or when reading
    /// is idle).
    fn apply_pending(&mut self) {
        if let Some(d) = self.decoding.take() {
            self.score_decoded(d);
        }
        self.start_decoding();
        if let Some(d) = self.decoding.take() {
            self.score_decoded(d);
        }
    }

    fn start_decoding(&mut self) {
        if self.pending.spans.is_empty() {
            return;
        }
        let mut marks: BTreeMap<i32, i64> = BTreeMap::new();
        for s in &self.pending.spans {
            if let (Some(p), Some(o)) = (s.partition, s.offset) {
                let m = marks.entry(p).or_insert(o + 1);
                *m = (*m).max(o + 1);
            }
        }
        self.decoding = Some(Decoding {
            parts: decode_parallel(
                &mut self.pending,
                &mut self.spare_bytes,
                &self.opts.topic,
                now_micros(),
                self.pipeline.engine().offset_seconds(),
            ),
            marks,
        });
    }

    fn score_decoded(&mut self, d: Decoding) {
        for (p, next) in d.marks {
            let mark = self.positions.entry(p).or_insert(Mark {
                offset: 0,
                generation: 1,
            });
            mark.offset = mark.offset.max(next);
        }
        for part in d.parts {
            let chunk = part.join().expect("a decoder thread");
            self.times.extend_from_slice(chunk.times());
            self.metrics.event_times(chunk.times());
            let bytes = self.pipeline.apply(chunk);
            if self.spare_bytes.len() < SPARE_BUFFERS {
                self.spare_bytes.push(bytes);
            }
        }
        self.dirty = true;
        self.metrics.observe(self.pipeline.counts());
    }

    /// Flushes, writes the checkpoint, publishes the files and commits the
    /// offsets to the group (for lag tools), waiting for all of it. `force`
    /// checkpoints even when nothing was read (a revocation).
    fn checkpoint(
        &mut self,
        consumer: Option<&BaseConsumer<Ctx>>,
        force: bool,
    ) -> Result<(), ServiceError> {
        self.begin_checkpoint(consumer, force)?;
        self.finish_checkpoint(consumer, true)
    }

    /// Flushes: hands the buffered rows to the lake writer's encoders and takes
    /// the engine snapshot and the offsets that go with them, then returns
    /// while the files are encoded; [`Service::finish_checkpoint`] makes the
    /// checkpoint durable once they are. Reading and scoring go on meanwhile
    /// (the next flush waits for this one). An earlier checkpoint still in
    /// flight is finished first.
    fn begin_checkpoint(
        &mut self,
        consumer: Option<&BaseConsumer<Ctx>>,
        force: bool,
    ) -> Result<(), ServiceError> {
        self.apply_pending();
        self.finish_checkpoint(consumer, true)?;
        // partitions handed over whose new owner has checkpointed them since
        // (a checkpoint that cannot be read only keeps them here longer)
        if !self.handed.is_empty() {
            match Checkpoint::load_all(&self.checkpoint_dir()) {
                Ok(all) => self.dirty |= self.settle_handed(&all),
                Err(e) => tracing::warn!(
                    "cannot tell whether the partitions handed over are checkpointed by their new owners: {e}"
                ),
            }
        }
        if !self.dirty && !force {
            // nothing new since the last checkpoint: the state is as durable
            // as if one had been written now (an idle night is not a replica
            // falling behind on its checkpoints)
            self.last_checkpoint = Instant::now();
            self.metrics.last_checkpoint.set(now_micros() / 1_000_000);
            return Ok(());
        }
        let flush_span = tracing::info_span!("flush", seq = self.seq + 1).entered();
        let started = Instant::now();
        if let Err(e) = self.pipeline.flush() {
            self.metrics.flush_failures.inc();
            return Err(e.into());
        }
        self.seq += 1;
        // the snapshot without its bulk (the remembered ids, the users, the
        // (day, actor)s written), which goes to a segment: what changed since
        // the last checkpoint, or all of it (a base) when the segments listed
        // hold too much that is gone or changed since, or are too many
        let engine = self.pipeline.engine_mut();
        let snapshot =
            engine.snapshot_without_segments_into(std::mem::take(&mut self.spare_snapshot));
        let base = needs_base(&self.segments, engine.segment_records());
        let segment = engine.take_segment(base);
        let retire = std::mem::take(&mut self.retiring);
        if segment.base {
            self.retiring = self.segments.drain(..).map(|f| f.name).collect();
        }
        self.segments.push(SegmentFile {
            name: checkpoint::segment_file(&self.opts.instance, self.seq),
            records: segment.records,
        });
        let ckpt = Checkpoint {
            seq: self.seq,
            partitions: self.positions.clone(),
            handed: self.handed.clone(),
            engine: snapshot,
            segments: self.segments.clone(),
            new_segment: Some(segment.bytes),
            retire,
            ..Checkpoint::new(&self.opts.instance, &self.opts.topic)
        };
        drop(flush_span);
        self.in_flight = Some(InFlight {
            ckpt: Some(ckpt),
            storing: None,
            flush_secs: 0.0,
            times: std::mem::take(&mut self.times),
            dead_letters: self.producer.context().queued.load(Ordering::Relaxed),
            started,
        });
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Completes the checkpoint in flight once its files are durable (at once
    /// with `wait`): once the dead letters are delivered, a thread stores the
    /// checkpoint and publishes the files; then the offsets are committed to
    /// the group.
    fn finish_checkpoint(
        &mut self,
        consumer: Option<&BaseConsumer<Ctx>>,
        wait: bool,
    ) -> Result<(), ServiceError> {
        if self.in_flight.as_ref().is_some_and(|f| f.storing.is_none()) {
            self.store_when_durable(wait)?;
        }
        let Some(f) = &self.in_flight else {
            return Ok(());
        };
        match &f.storing {
            Some(h) if wait || h.is_finished() => {}
            _ => return Ok(()),
        }
        let InFlight {
            times,
            storing,
            flush_secs,
            ..
        } = self.in_flight.take().expect("a checkpoint in flight");
        let stored = storing
            .expect("a checkpoint being stored")
            .join()
            .unwrap_or_else(|_| Err(ServiceError::Other("the checkpoint thread panicked".into())));
        let Stored {
            ckpt,
            published,
            secs: ckpt_secs,
            bytes: ckpt_bytes,
        } = match stored {
            Ok(s) => s,
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                return Err(e);
            }
        };
        let visible = now_micros();
        self.metrics
            .checkpointed(&published, ckpt_secs, ckpt_bytes, visible);
        for ts in times {
            self.metrics
                .end_to_end_latency
                .observe((visible - ts).max(0) as f64 / 1e6);
        }
        self.metrics.engine(&self.pipeline.engine().stats());
        self.metrics.observe(self.pipeline.counts());
        tracing::info!(
            files = published.len(),
            rows = published.iter().map(|f| f.rows).sum::<u64>(),
            flush_ms = (flush_secs * 1e3) as u64,
            checkpoint_ms = (ckpt_secs * 1e3) as u64,
            snapshot_bytes = ckpt.engine.len(),
            "checkpoint {}",
            ckpt.seq
        );

        if let Some(consumer) = consumer {
            let mut tpl = TopicPartitionList::new();
            for (p, m) in &ckpt.partitions {
                let _ = tpl.add_partition_offset(&self.opts.topic, *p, Offset::Offset(m.offset));
            }
            if tpl.count() > 0
                && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
            {
                tracing::debug!("group offset commit: {e}");
            }
        }
        // the next snapshot is written into this one's buffer
        self.spare_snapshot = ckpt.engine;
        Ok(())
    }

    /// Once the flush's files and the dead letters before it are durable (at
    /// once with `wait`), starts the thread that stores the checkpoint and
    /// publishes the files.
    fn store_when_durable(&mut self, wait: bool) -> Result<(), ServiceError> {
        let dead_letters = self.in_flight.as_ref().map_or(0, |f| f.dead_letters);
        // dead letters are delivered before the checkpoint that passes them
        let since = Instant::now();
        let dlq = self.producer.context();
        let mut warned = 0;
        while dlq.settled.load(Ordering::Acquire) < dead_letters {
            if !wait {
                return Ok(());
            }
            let waited = since.elapsed().as_secs();
            if waited >= 30 {
                return Err(ServiceError::Other(format!(
                    "dead-letter topic {:?} unreachable: dead letters undelivered after {waited} s",
                    self.opts.dlq_topic
                )));
            }
            if waited >= warned + 5 {
                warned = waited;
                self.metrics.checkpoint_failures.inc();
                tracing::warn!(
                    "dead letters not yet delivered after {waited} s; the checkpoint waits"
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let failures = dlq.failures.load(Ordering::Relaxed);
        if failures != self.dlq_failures {
            self.dlq_failures = failures;
            self.metrics.checkpoint_failures.inc();
            return Err(ServiceError::Other(format!(
                "dead letters could not be delivered to {:?}",
                self.opts.dlq_topic
            )));
        }
        let synced = if wait {
            Some(self.pipeline.sync())
        } else {
            self.pipeline.try_sync()
        };
        let Some(synced) = synced else {
            return Ok(());
        };
        let files = match synced {
            Ok(f) => f,
            Err(e) => {
                self.in_flight = None;
                self.metrics.flush_failures.inc();
                return Err(e.into());
            }
        };
        let f = self.in_flight.as_mut().expect("a checkpoint in flight");
        f.flush_secs = f.started.elapsed().as_secs_f64();
        self.metrics.flush_duration.observe(f.flush_secs);
        tracing::debug!(
            files = files.len(),
            rows = files.iter().map(|f| f.rows).sum::<u64>(),
            bytes = files.iter().map(|f| f.bytes).sum::<u64>(),
            ms = (f.flush_secs * 1e3) as u64,
            "files staged"
        );
        let mut ckpt = f.ckpt.take().expect("a checkpoint to store");
        let lake = self.lake.clone();
        let dir = checkpoint::dir(&self.lake, &self.opts.group, &self.opts.topic);
        let span = tracing::info_span!("checkpoint", seq = ckpt.seq);
        f.storing = Some(
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || {
                    let _span = span.entered();
                    let t = Instant::now();
                    ckpt.written_at = now_micros();
                    ckpt.staged = checkpoint::staged(&lake, &files);
                    let bytes = ckpt.store(&dir)?;
                    let stored_ms = t.elapsed().as_millis() as u64;
                    ckpt.roll_forward(&lake)?;
                    tracing::debug!(
                        stored_ms,
                        published_ms = t.elapsed().as_millis() as u64 - stored_ms,
                        "checkpoint stored, files published"
                    );
                    Ok(Stored {
                        ckpt,
                        published: files,
                        secs: t.elapsed().as_secs_f64(),
                        bytes,
                    })
                })
                .expect("spawn the checkpoint thread"),
        );
        Ok(())
    }

    /// Takes the lock of each partition of `assigned` ([`checkpoint::partition_lock`]),
    /// and lets the others go: two instances reading one partition into a lake
    /// (a `--partitions` given twice, an instance beside a consumer group, or
    /// two groups) would write its events twice. In a group the
    /// last owner lets a partition go once the checkpoint of its revocation is
    /// durable, before the group hands it out again, so a lock still held is
    /// waited for a while (an owner stalled past its session, not yet gone);
    /// with `--partitions` it is refused at once.
    fn lock_partitions(&mut self, assigned: &[i32]) -> Result<(), ServiceError> {
        self.partition_locks.retain(|p, _| assigned.contains(p));
        let patience = match self.opts.partitions {
            Some(_) => Duration::ZERO,
            None => Duration::from_secs(30),
        };
        let started = Instant::now();
        for &p in assigned {
            if self.partition_locks.contains_key(&p) {
                continue;
            }
            let path = checkpoint::partition_lock(&self.lake, &self.opts.topic, p);
            let mut warned = false;
            let lock = loop {
                let lock = PartitionLock::try_acquire_file(&path).map_err(|e| {
                    ServiceError::Other(format!("cannot lock {}: {e}", path.display()))
                })?;
                if let Some(lock) = lock {
                    break lock;
                }
                if self.stop.load(Ordering::Relaxed) {
                    return Err(ServiceError::Stopped);
                }
                if started.elapsed() >= patience {
                    return Err(ServiceError::PartitionBusy {
                        partition: p,
                        topic: self.opts.topic.clone(),
                        path: path.display().to_string(),
                    });
                }
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(
                        partition = p,
                        "another instance still holds the assigned partition; waiting for it to let go"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            self.partition_locks.insert(p, lock);
        }
        Ok(())
    }

    /// Decides where each assigned partition starts, taking state over from
    /// another instance's checkpoint where that one is the newest. Nothing
    /// changes unless all of it can be done: a partition is not claimed
    /// without its state.
    fn assign(&mut self, tpl: &mut TopicPartitionList) -> Result<(), ServiceError> {
        // the checkpoints on disk must include this instance's own
        self.finish_checkpoint(None, true)?;
        let assigned: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        self.lock_partitions(&assigned)?;
        let dir = self.checkpoint_dir();
        let TakeOver { all, marks, theirs } = take_over(
            &assigned,
            &self.opts.instance,
            || Checkpoint::load_all(&dir),
            |c| {
                c.roll_forward(&self.lake)?;
                c.restore(&dir, &self.profile)
            },
        )?;
        for (&p, mark) in &marks {
            let offset = match mark.offset {
                o if o >= 0 => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            tpl.set_partition_offset(&self.opts.topic, p, offset)
                .map_err(|e| ServiceError::Other(e.to_string()))?;
        }
        // from here on nothing fails
        for (p, mark) in marks {
            self.handed.remove(&p);
            self.positions.insert(
                p,
                Mark {
                    offset: mark.offset.max(0),
                    generation: mark.generation,
                },
            );
        }
        self.settle_handed(&all);
        for (from, parts, engine) in theirs {
            tracing::info!(
                %from,
                partitions = ?parts,
                "taking over the state of partitions from another instance's checkpoint"
            );
            // a copy of their state held here since they were handed over
            // is older than the one taken
            let engine_here = self.pipeline.engine_mut();
            engine_here.release(|p| parts.contains(&p));
            engine_here.absorb(engine, &parts);
        }
        // the partitions taken are checkpointed at the next round, read or not
        self.dirty = true;
        // the state released and taken over, shown before the next checkpoint
        self.metrics.engine(&self.pipeline.engine().stats());
        Ok(())
    }

    /// Lets go of the state of the partitions handed over whose new owner's
    /// checkpoint (one of `all`) holds them now, at a newer generation; until
    /// then this instance's checkpoints keep their state and where they were,
    /// so that a new owner that stops before its first checkpoint loses
    /// nothing. Returns whether any went.
    fn settle_handed(&mut self, all: &[Checkpoint]) -> bool {
        let gone: BTreeSet<i32> = self
            .handed
            .iter()
            .filter(|&(&p, mine)| {
                all.iter().any(|c| {
                    c.instance != self.opts.instance
                        && c.partitions
                            .get(&p)
                            .or(c.handed.get(&p))
                            .is_some_and(|m| m.generation > mine.generation)
                })
            })
            .map(|(&p, _)| p)
            .collect();
        if gone.is_empty() {
            return false;
        }
        for p in &gone {
            self.handed.remove(p);
        }
        let released = self.pipeline.engine_mut().release(|p| gone.contains(&p));
        tracing::info!(
            partitions = ?gone,
            users = released,
            "released the state of partitions their new owner has checkpointed"
        );
        true
    }
}

/// Where an assignment starts from ([`take_over`]).
struct TakeOver {
    /// Every checkpoint of the group's instances, as read.
    all: Vec<Checkpoint>,
    /// Per partition assigned, where it starts: the newest holder's mark at
    /// the next generation, or the topic's start at the first.
    marks: BTreeMap<i32, Mark>,
    /// The state of other instances' checkpoints that are the newest holders
    /// of some of the partitions: their instance, those partitions, their
    /// engine.
    theirs: Vec<(String, BTreeSet<i32>, Engine)>,
}

/// How many times [`take_over`] reads the checkpoints when another
/// instance's lists a segment that is gone.
const TAKE_OVER_READS: usize = 3;

/// Plans the take-over of the partitions `assigned` to `instance` from the
/// checkpoints `load` reads, the engines of other instances' restored by
/// `restore`. Another instance can retire a segment its checkpoint lists
/// between the read of that checkpoint and of the segment (it writes a base,
/// then a checkpoint that retires the segments before it), so a segment gone
/// means reading the checkpoints again; one still gone after
/// [`TAKE_OVER_READS`] reads is damage, as for the instance itself
/// ([`Checkpoint::restore_held`]).
fn take_over(
    assigned: &[i32],
    instance: &str,
    mut load: impl FnMut() -> Result<Vec<Checkpoint>, checkpoint::CheckpointError>,
    mut restore: impl FnMut(&Checkpoint) -> Result<Engine, checkpoint::CheckpointError>,
) -> Result<TakeOver, checkpoint::CheckpointError> {
    let mut reads = 0;
    'read: loop {
        reads += 1;
        let all = load()?;
        let mut marks = BTreeMap::new();
        // per other instance's checkpoint, the partitions taken from it
        let mut take: BTreeMap<usize, BTreeSet<i32>> = BTreeMap::new();
        for &p in assigned {
            let mark = match checkpoint::newest_holder(&all, p) {
                Some((i, m)) => {
                    if all[i].instance != instance {
                        take.entry(i).or_default().insert(p);
                    }
                    Mark {
                        offset: m.offset,
                        generation: m.generation + 1,
                    }
                }
                None => Mark {
                    offset: -1,
                    generation: 1,
                },
            };
            marks.insert(p, mark);
        }
        let mut theirs = Vec::new();
        for (i, parts) in take {
            match restore(&all[i]) {
                Ok(engine) => theirs.push((all[i].instance.clone(), parts, engine)),
                Err(e) if e.is_missing() && reads < TAKE_OVER_READS => {
                    tracing::info!(
                        "{e}: its owner has written a newer checkpoint since; reading the checkpoints again"
                    );
                    continue 'read;
                }
                Err(e) => return Err(e.missing_as_damage()),
            }
        }
        return Ok(TakeOver { all, marks, theirs });
    }
}

/// Segments a checkpoint lists at most: the next is a base. (At one
/// checkpoint every 10 s, a base every three hours at least.)
const MAX_SEGMENTS: usize = 1024;

/// Whether the next checkpoint writes a base rather than what changed, its
/// last one listing `listed`, the state now holding `live` records
/// ([`crate::engine::Engine::segment_records`]): when the list is long, or holds more than
/// twice what a base would (records forgotten or written again since).
fn needs_base(listed: &[SegmentFile], live: usize) -> bool {
    let records: u64 = listed.iter().map(|f| f.records).sum();
    listed.len() >= MAX_SEGMENTS || records > 2 * live as u64 + (1 << 16)
}

/// Messages polled per batch handed to the scoring thread, at most.
const MAX_BATCH: usize = 20_000;
/// How long a poll waits for the first message of a batch: also how soon an
/// idle service notices a stop and scores what it holds.
const IDLE_POLL: Duration = Duration::from_millis(20);
const MAX_BYTES: usize = 8 << 20;

/// Polls batches of messages, each tagged with the rebalance count it was read
/// under, and hands them to the scoring thread (an empty one after every
/// `IDLE_POLL` without messages, so that checkpoints come on time), until
/// `stop` or until the scoring thread ends.
fn poll_batches(
    consumer: &BaseConsumer<Ctx>,
    stop: &AtomicBool,
    to_worker: &std::sync::mpsc::SyncSender<(u64, Pending)>,
    spare: &std::sync::mpsc::Receiver<Pending>,
    worker: &std::thread::ScopedJoinHandle<'_, Result<(), ServiceError>>,
) {
    while !stop.load(Ordering::Relaxed) && !worker.is_finished() {
        if consumer.context().is_fatal() {
            return;
        }
        let mut batch = spare.try_recv().unwrap_or_default();
        batch.clear();
        let mut timeout = IDLE_POLL;
        let mut epoch = consumer.context().rebalances.load(Ordering::SeqCst);
        while batch.spans.len() < MAX_BATCH && batch.data.len() < MAX_BYTES {
            let polled = consumer.poll(timeout);
            let now = consumer.context().rebalances.load(Ordering::SeqCst);
            if now != epoch {
                // polled under the previous assignment: read again from the checkpoint
                batch.clear();
                epoch = now;
            }
            match polled {
                None => break,
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or(&[]);
                    let start = batch.data.len();
                    batch.data.extend_from_slice(payload);
                    batch.spans.push(Span {
                        start,
                        end: batch.data.len(),
                        partition: Some(m.partition()),
                        offset: Some(m.offset()),
                    });
                }
                Some(Err(e)) => {
                    consumer.context().metrics.kafka_errors.inc();
                    if !consumer.context().is_fatal() && consumer.context().errors.ready() {
                        tracing::warn!("Kafka: {e} (retrying)");
                    }
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if !batch.spans.is_empty()
            && consumer
                .context()
                .broker_down
                .swap(false, Ordering::Relaxed)
        {
            tracing::info!("brokers answering again");
        }
        if to_worker.send((epoch, batch)).is_err() {
            return;
        }
    }
}

/// The scoring thread: takes the polled batches, scores them and checkpoints
/// every flush interval, until the batches end or an error.
fn score_batches(
    consumer: &BaseConsumer<Ctx>,
    opts: &KafkaOptions,
    batches: std::sync::mpsc::Receiver<(u64, Pending)>,
    recycle: std::sync::mpsc::Sender<Pending>,
) -> Result<(), ServiceError> {
    for (epoch, mut batch) in batches {
        // the poll thread found nothing for its whole timeout
        let idle = batch.spans.is_empty();
        let mut guard = consumer.context().service.lock().expect("service");
        let svc = guard.as_mut().expect("service present while running");
        match svc.failed.take() {
            // the poll thread stops too: what was scored is checkpointed
            Some(ServiceError::Stopped) => return Ok(()),
            Some(e) => return Err(e),
            None => {}
        }
        // a batch read before a rebalance is dropped: the partitions it holds
        // are read again from the checkpoint (checked under the lock the
        // rebalance callback takes)
        if epoch == consumer.context().rebalances.load(Ordering::SeqCst) {
            // a message before the partition's position was scored already
            batch.spans.retain(|s| match (s.partition, s.offset) {
                (Some(p), Some(o)) => svc.positions.get(&p).is_some_and(|m| o >= m.offset),
                _ => false,
            });
            if svc.pending.spans.is_empty() {
                // the whole batch becomes the pending one: no copy
                std::mem::swap(&mut svc.pending, &mut batch);
            } else {
                svc.pending.append(&batch);
            }
        }
        let _ = recycle.send(batch);
        if idle {
            // nothing more to overlap with: score what is read and decoded
            // now rather than at the next batch or checkpoint
            svc.apply_pending();
        } else if svc.pending.spans.len() >= MAX_BATCH || svc.pending.data.len() >= MAX_BYTES {
            svc.score_pending();
        }
        svc.finish_checkpoint(Some(consumer), false)?;
        let due = svc.last_checkpoint.elapsed() >= opts.flush_interval
            || svc.pipeline.buffered_rows() >= opts.flush_rows;
        if due {
            svc.begin_checkpoint(Some(consumer), false)?;
        }
    }
    Ok(())
}

/// Chunk buffers kept for reuse: the parts of a batch being decoded and
/// those of the batch before.
const SPARE_BUFFERS: usize = 8;

/// Starts decoding the messages of `pending` in parts on one thread per core
/// (decoding is the costliest step before the engine); join the parts in
/// order. The parts are copied into `spares` (buffers of chunks already
/// scored) where there are any: fresh ones cost a page fault per 4 KiB.
/// `pending` is left empty, with buffers to be filled again.
fn decode_parallel(
    pending: &mut Pending,
    spares: &mut Vec<Vec<u8>>,
    source: &str,
    now: i64,
    offset: i32,
) -> Vec<std::thread::JoinHandle<DecodedChunk>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let spawn = |bytes: Vec<u8>, spans: Vec<Span>| {
        let source = source.to_owned();
        std::thread::Builder::new()
            .name("decoder".into())
            .spawn(move || decode_chunk(bytes, &spans, source, now).grouped(offset))
            .expect("spawn a decoder thread")
    };
    if workers < 2 || pending.spans.len() < 4096 {
        let Pending { data, spans } = std::mem::take(pending);
        pending.data = spares.pop().unwrap_or_default();
        pending.data.clear();
        return vec![spawn(data, spans)];
    }
    let per = pending.spans.len().div_ceil(workers);
    let parts = pending
        .spans
        .chunks(per)
        .map(|part| {
            let (bytes, rebased) = sub_chunk(&pending.data, part, spares.pop().unwrap_or_default());
            spawn(bytes, rebased)
        })
        .collect();
    pending.clear();
    parts
}

/// How long a stopping service waits for the brokers to take its goodbye.
const GOODBYE_GRACE: Duration = Duration::from_secs(5);

/// Checks the instance id: it names files and checkpoints.
pub fn check_instance(id: &str) -> Result<(), ServiceError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ServiceError::BadInstance(id.to_owned()));
    }
    Ok(())
}

/// Checks a name that becomes a folder of the lake (the group, the topic):
/// no way out of the lake.
fn check_folder_name(what: &'static str, name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

/// The brokers, then `defaults`, then the user's `-X` settings (last, so they
/// can override the defaults).
fn client_config(opts: &KafkaOptions, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.brokers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in &opts.settings {
        cfg.set(k, v);
    }
    cfg
}

/// Waits for the brokers to answer and checks that the topics exist; `false`
/// when `stop` was set while it waited.
fn check_topics(opts: &KafkaOptions, stop: &AtomicBool) -> Result<bool, ServiceError> {
    let probe: BaseConsumer = client_config(opts, &[])
        .create()
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        // an attempt takes at most 5 s, and no longer than the time left
        let left = opts.connect_timeout.saturating_sub(started.elapsed());
        let attempt = left.clamp(Duration::from_millis(100), Duration::from_secs(5));
        match probe.fetch_metadata(None, attempt) {
            Ok(md) => {
                let has = |name: &str| {
                    md.topics().iter().any(|t| {
                        t.name() == name && t.error().is_none() && !t.partitions().is_empty()
                    })
                };
                if !has(&opts.topic) {
                    return Err(ServiceError::NoTopic(opts.topic.clone()));
                }
                if !has(&opts.dlq_topic) {
                    return Err(ServiceError::NoDlqTopic(opts.dlq_topic.clone()));
                }
                return Ok(true);
            }
            Err(e) => {
                if started.elapsed() >= opts.connect_timeout {
                    return Err(ServiceError::Unreachable {
                        brokers: opts.brokers.clone(),
                        secs: opts.connect_timeout.as_secs(),
                        error: e.to_string(),
                    });
                }
                tracing::warn!(
                    "brokers {} not answering ({e}); retrying in {} ms",
                    opts.brokers,
                    delay.as_millis()
                );
                let until = Instant::now() + delay.min(left);
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs the service until `stop` is set: then flushes, checkpoints, commits
/// and returns the counts of this run.
pub fn run(
    opts: KafkaOptions,
    profile: Profile,
    engine_cfg: EngineConfig,
    lake: &Path,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> Result<Counts, ServiceError> {
    check_instance(&opts.instance)?;
    check_folder_name("group", &opts.group)?;
    check_folder_name("topic", &opts.topic)?;
    // one process per instance id: a second would share the checkpoint
    let ckpt_dir = checkpoint::dir(lake, &opts.group, &opts.topic);
    let lock_path = checkpoint::instance_lock(&ckpt_dir, &opts.instance);
    let _instance_lock = checkpoint::lock_instance(&ckpt_dir, &opts.instance)
        .map_err(|e| ServiceError::Other(format!("cannot lock {}: {e}", lock_path.display())))?
        .ok_or_else(|| ServiceError::Busy {
            instance: opts.instance.clone(),
            path: lock_path.display().to_string(),
        })?;

    let consumer_id = format!("huoyue-ingest-{}", opts.instance);
    let mut defaults = vec![
        ("group.id", opts.group.as_str()),
        ("client.id", &consumer_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "5000"),
        ("fetch.max.bytes", "52428800"),
        ("max.partition.fetch.bytes", "4194304"),
        // a full prefetch queue postpones the next fetch by this much
        // (librdkafka's 1 s default starves a consumer catching up)
        ("fetch.queue.backoff.ms", "20"),
    ];
    if opts.partitions.is_none() {
        // a static member of the group: restarted (after a crash too), the
        // instance gets its partitions back at once instead of after the
        // broker expires its old session, and a second instance with the
        // same id is fenced instead of sharing its checkpoint
        defaults.push(("group.instance.id", &opts.instance));
    }
    let cfg = client_config(&opts, &defaults);
    let producer_id = format!("huoyue-ingest-{}-dlq", opts.instance);
    let pcfg = client_config(&opts, &[("client.id", &producer_id), ("linger.ms", "20")]);
    let producer: ThreadedProducer<DlqContext> = pcfg
        .create_with_context(DlqContext {
            queued: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    let producer = Arc::new(producer);
    if !check_topics(&opts, &stop)? {
        // nothing read, nothing to checkpoint
        tracing::info!("stopped before the brokers answered");
        return Ok(Counts::default());
    }

    // this instance's last checkpoint: roll forward, restore, clean up
    let prefix = checkpoint::kafka_prefix(&opts.instance);
    let resumed = checkpoint::resume(
        lake,
        &ckpt_dir,
        &opts.instance,
        &prefix,
        &profile,
        engine_cfg,
    )?;
    if let Some(c) = &resumed.last {
        tracing::info!(
            seq = c.seq,
            partitions = ?c.partitions.keys().collect::<Vec<_>>(),
            published = resumed.published,
            "restored checkpoint"
        );
    }
    if resumed.removed > 0 {
        tracing::info!(
            removed = resumed.removed,
            "removed files written after the last checkpoint"
        );
    }
    let seq = resumed.last.as_ref().map_or(0, |c| c.seq);
    // what the last checkpoint read or held is held until assigned or
    // checkpointed by another instance
    let handed = resumed.last.as_ref().map_or_else(BTreeMap::new, |c| {
        let mut held = c.handed.clone();
        held.extend(c.partitions.iter().map(|(p, m)| (*p, *m)));
        held
    });
    let segments = resumed
        .last
        .as_ref()
        .map(|c| c.segments.clone())
        .unwrap_or_default();
    let mut engine = resumed.engine;
    // what changes from now on goes to the next checkpoint's segment
    engine.log_changes();
    // the state as restored, before any event comes (a quiet restart would
    // show none until its first checkpoint)
    metrics.engine(&engine.stats());
    // what the last checkpoint wrote: its file and its segment
    if let Some(c) = &resumed.last {
        let size = |path: PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
        let file = size(checkpoint::file(&ckpt_dir, &opts.instance));
        let segment = c
            .segments
            .last()
            .map_or(0, |f| size(ckpt_dir.join(&f.name)));
        metrics.checkpoint_bytes.set((file + segment) as i64);
    }
    let run_id = now_micros();
    let writer = LakeWriter::open(lake, &format!("{prefix}{run_id}"))?.stage_only();
    let mut pipeline = Pipeline::new(engine, writer);
    {
        let producer = Arc::clone(&producer);
        let dlq = opts.dlq_topic.clone();
        let m = metrics.clone();
        pipeline.on_reject(Box::new(move |r| {
            let partition = r.partition.map(|p| p.to_string()).unwrap_or_default();
            let offset = r.offset.map(|o| o.to_string()).unwrap_or_default();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "huoyue-reason",
                    value: Some(r.reason.as_str()),
                })
                .insert(Header {
                    key: "huoyue-detail",
                    value: r.detail,
                })
                .insert(Header {
                    key: "huoyue-source-topic",
                    value: Some(r.source),
                })
                .insert(Header {
                    key: "huoyue-source-partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "huoyue-source-offset",
                    value: Some(&offset),
                });
            // the lake keeps every byte; the dead letter is capped below the
            // brokers' default message size limit
            let (payload, headers) = if r.raw.len() > DLQ_MAX_PAYLOAD {
                let len = r.raw.len().to_string();
                (
                    &r.raw[..DLQ_MAX_PAYLOAD],
                    headers.insert(Header {
                        key: "huoyue-truncated-from",
                        value: Some(&len),
                    }),
                )
            } else {
                (r.raw, headers)
            };
            let mut record = BaseRecord::<[u8], [u8]>::to(&dlq)
                .payload(payload)
                .headers(headers);
            loop {
                match producer.send(record) {
                    Ok(()) => {
                        producer.context().queued.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                        record = rec;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        tracing::error!("cannot queue a dead letter: {e}");
                        producer.context().failures.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            m.dlq_messages.inc();
        }));
    }
    let service = Service {
        opts: opts.clone(),
        lake: lake.to_owned(),
        profile: profile.clone(),
        pipeline,
        positions: BTreeMap::new(),
        handed,
        pending: Pending::default(),
        decoding: None,
        times: Vec::new(),
        in_flight: None,
        seq,
        last_checkpoint: Instant::now(),
        dirty: false,
        producer: Arc::clone(&producer),
        dlq_failures: 0,
        spare_snapshot: Vec::new(),
        segments,
        retiring: Vec::new(),
        partition_locks: BTreeMap::new(),
        stop: Arc::clone(&stop),
        spare_bytes: Vec::new(),
        metrics: metrics.clone(),
        failed: None,
    };
    let ctx = Ctx {
        service: Mutex::new(Some(service)),
        metrics: metrics.clone(),
        topic: opts.topic.clone(),
        errors: Throttle::new(Duration::from_secs(10)),
        past_end: Throttle::new(Duration::from_secs(60)),
        past_end_seen: Mutex::new(BTreeSet::new()),
        broker_down: AtomicBool::new(false),
        rebalances: AtomicU64::new(0),
        fatal: Mutex::new(None),
    };
    let consumer: BaseConsumer<Ctx> = cfg
        .create_with_context(ctx)
        .map_err(|e| ServiceError::Config(e.to_string()))?;
    match &opts.partitions {
        None => consumer
            .subscribe(&[&opts.topic])
            .map_err(|e| ServiceError::Config(e.to_string()))?,
        Some(wanted) => {
            let md = consumer
                .fetch_metadata(Some(&opts.topic), Duration::from_secs(10))
                .map_err(|e| ServiceError::Other(format!("topic metadata: {e}")))?;
            let all: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == opts.topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let chosen: Vec<i32> = if wanted.is_empty() {
                all.clone()
            } else {
                wanted.clone()
            };
            if let Some(p) = chosen.iter().find(|p| !all.contains(p)) {
                return Err(ServiceError::Other(format!(
                    "topic {:?} has no partition {p} (it has {})",
                    opts.topic,
                    all.len()
                )));
            }
            let mut tpl = TopicPartitionList::new();
            for p in &chosen {
                tpl.add_partition(&opts.topic, *p);
            }
            let mut guard = consumer.context().service.lock().expect("service");
            let svc = guard.as_mut().expect("service present");
            match svc.assign(&mut tpl) {
                Ok(()) => {}
                // nothing read, nothing to checkpoint
                Err(ServiceError::Stopped) => return Ok(Counts::default()),
                Err(e) => return Err(e),
            }
            consumer
                .assign(&tpl)
                .map_err(|e| ServiceError::Other(format!("assign: {e}")))?;
            metrics.assigned(chosen.iter().copied());
            tracing::info!(partitions = ?chosen, "partitions assigned (no group coordination)");
        }
    }
    tracing::info!(
        topic = %opts.topic,
        group = %opts.group,
        instance = %opts.instance,
        "consuming"
    );

    // This thread polls (rebalances run inside `poll`, here); a worker scores
    // and checkpoints, so that reading the next batch overlaps with scoring
    // this one.
    let (to_worker, batches) = std::sync::mpsc::sync_channel::<(u64, Pending)>(2);
    let (recycle, spare) = std::sync::mpsc::channel::<Pending>();
    let result = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("scorer".into())
            .spawn_scoped(s, || score_batches(&consumer, &opts, batches, recycle))
            .expect("spawn the scoring thread");
        poll_batches(&consumer, &stop, &to_worker, &spare, &worker);
        drop(to_worker);
        worker
            .join()
            .unwrap_or_else(|_| Err(ServiceError::Other("the scoring thread panicked".into())))
    });
    if let Some(reason) = consumer.context().fatal.lock().expect("fatal error").take() {
        // like a crash: the next start (or the instance that fenced this
        // one) goes on from the last checkpoint
        return Err(ServiceError::Fatal {
            reason,
            instance: opts.instance.clone(),
        });
    }
    let (counts, offsets) = {
        let mut guard = consumer.context().service.lock().expect("service");
        let svc = guard.as_mut().expect("service present");
        match result {
            Ok(()) => {
                tracing::info!("stopping: flushing and checkpointing");
                // nothing read since the last round: that round (finished
                // here) is the final checkpoint, not a copy of it
                svc.checkpoint(Some(&consumer), false)?;
                let mut tpl = TopicPartitionList::new();
                for (p, m) in &svc.positions {
                    let _ = tpl.add_partition_offset(&opts.topic, *p, Offset::Offset(m.offset));
                }
                (svc.pipeline.counts().clone(), tpl)
            }
            Err(e) => return Err(e),
        }
    };
    // leave the group without another checkpoint round in the revoke callback
    consumer.context().service.lock().expect("service").take();
    // The goodbye (the group offsets, for lag tools, and leaving the group)
    // waits for the group coordinator: with the brokers away or frozen, 45 s
    // and more, past any orchestrator's stop grace. The state is checkpointed:
    // the goodbye gets a few seconds, then the process ends without it.
    let (said, goodbye) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("goodbye".into())
        .spawn(move || {
            if offsets.count() > 0
                && let Err(e) = consumer.commit(&offsets, CommitMode::Sync)
            {
                tracing::warn!("final group offset commit failed: {e}");
            }
            consumer.unsubscribe();
            drop(consumer);
            let _ = said.send(());
        })
        .expect("spawn the goodbye thread");
    match goodbye.recv_timeout(GOODBYE_GRACE) {
        Ok(()) => tracing::debug!("group offsets committed, consumer closed"),
        Err(_) => tracing::warn!(
            "the brokers did not answer within {} s: stopping without committing the group offsets or leaving the group (the checkpoint holds the offsets)",
            GOODBYE_GRACE.as_secs()
        ),
    }
    drop(producer);
    tracing::debug!("producer closed");
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_when_the_segments_are_many_or_mostly_gone() {
        let files = |n: usize, records: u64| -> Vec<SegmentFile> {
            (0..n)
                .map(|i| SegmentFile {
                    name: checkpoint::segment_file("a", i as u64),
                    records,
                })
                .collect()
        };
        assert!(!needs_base(&files(3, 1000), 2000));
        assert!(!needs_base(&files(MAX_SEGMENTS - 1, 10), 10));
        assert!(needs_base(&files(MAX_SEGMENTS, 10), 10));
        // 2,200,000 records listed for 1,000,000 live: mostly gone
        assert!(needs_base(&files(22, 100_000), 1_000_000));
        assert!(!needs_base(&files(20, 100_000), 1_000_000));
    }

    /// A partition past its end in one statistics report only (the first
    /// after a takeover, showing the end this instance saw when it last read
    /// it) is not said; in two in a row it is.
    #[test]
    fn past_its_end_is_said_on_the_second_report() {
        let mut seen = BTreeSet::new();
        assert!(!past_end(&mut seen, 1, 34_074, 31_112));
        assert!(!past_end(&mut seen, 1, 34_074, 35_000));
        assert!(!past_end(&mut seen, 1, 34_074, 31_112));
        assert!(!past_end(&mut seen, 2, 10, 5));
        assert!(past_end(&mut seen, 1, 34_074, 31_112));
        assert!(past_end(&mut seen, 2, 10, 5));
        assert!(!past_end(&mut seen, 2, 10, -1));
    }

    /// The statistics of nisshi, measured after a restart on a topic
    /// recreated with 12,939 messages under a checkpoint at 38,567: nothing
    /// handed over yet (`app_offset` -1001), fetching at 38,567. Read from
    /// `app_offset` alone, the partition looked neither behind nor past its
    /// end, and the warning never came.
    #[test]
    fn a_restarted_instance_is_where_it_fetches() {
        assert_eq!(read_position(-1001, 38_567), 38_567);
        assert_eq!(read_position(12_939, 12_939), 12_939);
        assert_eq!(read_position(12_000, 12_939), 12_000);
    }

    /// Another instance's checkpoint read just before its owner writes a
    /// base and retires the segments before it lists a segment that is gone
    /// when the state is read: the checkpoints are read again, and the
    /// partition is taken from the newer one. A segment still gone after as
    /// many reads as the take-over allows is damage.
    #[test]
    fn a_segment_retired_during_a_take_over_means_reading_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let profile = Profile::builtin("zhejiang-2018").unwrap();
        let mut engine = Engine::new(&profile, EngineConfig::default());
        let mut store = |seq: u64, offset: i64, segments: &[u64], retire: &[u64]| {
            let segment = engine.take_segment(true);
            Checkpoint {
                seq,
                partitions: [(
                    0,
                    Mark {
                        offset,
                        generation: 4,
                    },
                )]
                .into(),
                engine: engine.snapshot_without_segments_into(Vec::new()),
                segments: (segments.iter())
                    .map(|&s| SegmentFile {
                        name: checkpoint::segment_file("b", s),
                        records: segment.records,
                    })
                    .collect(),
                new_segment: Some(segment.bytes),
                retire: retire
                    .iter()
                    .map(|&s| checkpoint::segment_file("b", s))
                    .collect(),
                ..Checkpoint::new("b", "events")
            }
            .store(d)
            .unwrap();
        };
        store(1, 10, &[1], &[]);
        let stale = Checkpoint::load_all(d).unwrap();
        // a base, then the checkpoint that retires the segment before it
        store(2, 20, &[2], &[]);
        store(3, 30, &[3], &[1]);
        assert!(!d.join(checkpoint::segment_file("b", 1)).exists());

        let mut reads = 0;
        let mut load = || {
            reads += 1;
            if reads == 1 {
                Ok(stale.clone())
            } else {
                Checkpoint::load_all(d)
            }
        };
        let plan = take_over(&[0, 1], "a", &mut load, |c| c.restore(d, &profile)).unwrap();
        assert_eq!(reads, 2);
        assert_eq!(plan.all[0].seq, 3);
        let mark = |offset, generation| Mark { offset, generation };
        assert_eq!(plan.marks[&0], mark(30, 5));
        assert_eq!(plan.marks[&1], mark(-1, 1), "held by no one");
        assert_eq!(plan.theirs.len(), 1);
        assert_eq!(
            (plan.theirs[0].0.as_str(), &plan.theirs[0].1),
            ("b", &BTreeSet::from([0]))
        );

        std::fs::remove_file(d.join(checkpoint::segment_file("b", 3))).unwrap();
        let mut reads = 0;
        let err = take_over(
            &[0],
            "a",
            || {
                reads += 1;
                Checkpoint::load_all(d)
            },
            |c| c.restore(d, &profile),
        )
        .err()
        .expect("a segment gone for good");
        assert_eq!(reads, TAKE_OVER_READS);
        assert!(err.is_corrupt(), "{err}");
        assert!(err.to_string().contains("b.0000000003.seg"), "{err}");
        // this instance's own checkpoint is not taken over: not read
        assert!(take_over(&[0], "b", || Checkpoint::load_all(d), |_| unreachable!()).is_ok());
    }
}
