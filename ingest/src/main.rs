//! `huoyue-ingest`: score events from Kafka (the service) or from an NDJSON file
//! (or standard input) into the lake.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use huoyue_ingest::cli::{
    DEFAULT_METRICS_ADDR, MetricsAddr, parse_count, parse_days, parse_duration, parse_metrics_addr,
    parse_period,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use huoyue_ingest::engine::EngineConfig;
use huoyue_ingest::kafka::{self, KafkaOptions};
use huoyue_ingest::lake_writer::LakeWriter;
use huoyue_ingest::metrics::Metrics;
use huoyue_ingest::pipeline::Pipeline;
use huoyue_ingest::pipeline::file::{
    FILE_PREFIX, FileError, FileOptions, FileState, Progress, now_micros, refuse_compressed,
};
use huoyue_schemas::profile::{DEFAULT_PROFILE, Profile};

/// Scores education-platform usage events into a Parquet lake.
///
/// Kafka mode (--brokers, --topic) is the long-running service: a consumer-group
/// member that writes files at least every --flush-interval, checkpoints offsets,
/// state and files together (exactly once), sends rejected messages to the
/// dead-letter topic, and on SIGINT/SIGTERM flushes, checkpoints and exits 0.
///
/// File mode (--file) reads NDJSON (one event per line) from PATH, or from
/// standard input with `-`, until its end; writes the lake's events,
/// daily_scores, daily_activity and rejected tables; and prints a one-line summary.
#[derive(Parser, Debug)]
#[command(name = "huoyue-ingest", version)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "brokers"])))]
struct Args {
    /// The lake directory (created if missing).
    #[arg(long, value_name = "DIR")]
    lake: PathBuf,
    /// A rule profile: a built-in name or a TOML file.
    #[arg(long, value_name = "FILE|NAME", default_value = DEFAULT_PROFILE)]
    profile: String,
    /// NDJSON input; `-` reads standard input.
    #[arg(long, value_name = "PATH|-")]
    file: Option<PathBuf>,
    /// Kafka bootstrap servers (Kafka mode).
    #[arg(long, value_name = "HOST:PORT[,…]", requires = "topic")]
    brokers: Option<String>,
    /// The topic to consume (Kafka mode).
    #[arg(
        long,
        value_name = "TOPIC",
        requires = "brokers",
        conflicts_with = "file"
    )]
    topic: Option<String>,
    /// The consumer group; instances in one group split the partitions.
    #[arg(
        long,
        value_name = "GROUP",
        default_value = "huoyue-ingest",
        conflicts_with = "file"
    )]
    group: String,
    /// Where rejected messages also go, with the reason, source partition and
    /// offset in headers. Default: <topic>.dlq.
    #[arg(long, value_name = "TOPIC", conflicts_with = "file")]
    dlq_topic: Option<String>,
    /// This instance's id: stable across restarts and unique in the group (it
    /// names the checkpoint and the files). Default: the host name.
    #[arg(long, value_name = "ID", conflicts_with = "file")]
    instance_id: Option<String>,
    /// Read these partitions (`all`, or a list like `0,1,2`) without consumer-group
    /// coordination instead of joining --group: for a single instance, or a
    /// fixed split between instances. Checkpoints and exactly-once work the same.
    #[arg(long, value_name = "all|N,…", value_parser = parse_partitions, conflicts_with = "file")]
    partitions: Option<PartitionList>,
    /// A librdkafka setting, passed through (security, SASL, TLS, …); repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_setting, conflicts_with = "file")]
    settings: Vec<(String, String)>,
    /// Serve Prometheus metrics at http://ADDR/metrics, or `off`.
    /// Default: 127.0.0.1:9187 in Kafka mode; off for a file.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_metrics_addr)]
    metrics_addr: Option<MetricsAddr>,
    /// How long to keep trying to reach the brokers at start before giving up.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, conflicts_with = "file")]
    connect_timeout: Duration,
    /// Log format on standard error.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// How far before the newest day seen an event may still be scored.
    #[arg(long, value_name = "DAYS", default_value = "3d", value_parser = parse_days)]
    lateness: i32,
    /// Write files at least this often while events flow.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_period)]
    flush_interval: Duration,
    /// Also write files once this many rows are buffered (bounds memory;
    /// checked after each batch read: 4 MiB of a file, up to 20,000 messages
    /// or 8 MiB from Kafka).
    /// Default: 500000 for a file, 2000000 in Kafka mode.
    #[arg(long, value_name = "ROWS", value_parser = parse_count)]
    flush_rows: Option<usize>,
}

/// `--flush-rows` in file mode unless given: smaller flushes keep a run's
/// memory lower (a 1.34M-line month: 440 MB instead of 590 MB) and its last
/// flush shorter, at the cost of more, smaller files until compaction.
const FILE_FLUSH_ROWS: usize = 500_000;

/// `--flush-rows` in Kafka mode unless given: the service flushes every
/// `--flush-interval` anyway, and each flush writes a checkpoint (what
/// changed of the engine state, a whole one from time to time), so the size
/// bound only matters when catching up.
const KAFKA_FLUSH_ROWS: usize = 2_000_000;

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        // a file run stopped by SIGINT or SIGTERM: the shell's status for a
        // program ended by SIGINT
        Err(e) if matches!(e.downcast_ref(), Some(FileError::Interrupted)) => {
            last_word(&e.to_string(), false);
            ExitCode::from(130)
        }
        Err(e) => {
            last_word(&one_line(&e), true);
            ExitCode::FAILURE
        }
    }
}

/// Says why the run stopped, on standard error: one more JSON line when the
/// logs are JSON (whatever collects them parses every line), else plain text.
fn last_word(text: &str, error: bool) {
    match (JSON_LOGS.get() == Some(&true), error) {
        (true, true) => tracing::error!(error = %text, "stopped"),
        (true, false) => tracing::warn!("{text}"),
        (false, true) => eprintln!("error: {text}"),
        (false, false) => eprintln!("{text}"),
    }
}

/// Whether the logs are JSON lines (`--log-format json`), once they are set up.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// The error and its causes on one line, each cause once (an error that
/// names its cause in its own message is not followed by it again).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn try_main() -> Result<()> {
    let Some(args) = huoyue_ingest::cli::parse_args::<Args>().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    init_logs(&args.log_format);
    // the service stops cleanly on a signal from its first moments: a SIGTERM
    // while it loads the profile or connects must not kill it uncheckpointed;
    // a file run stops while it reads, removing what it staged
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop));
    let started = Instant::now();
    let profile = Profile::load(&args.profile)?;
    let cfg = EngineConfig {
        lateness_days: args.lateness,
        ..EngineConfig::default()
    };
    let metrics = Metrics::new();
    let metrics_addr = match args.metrics_addr {
        Some(MetricsAddr::At(addr)) => Some((addr, "")),
        None if args.brokers.is_some() => Some((
            DEFAULT_METRICS_ADDR.parse().expect("a socket address"),
            " (the default --metrics-addr: give each instance on a host its own, or off)",
        )),
        Some(MetricsAddr::Off) | None => None,
    };
    if let Some((addr, default)) = metrics_addr {
        let bound = metrics
            .serve(addr)
            .with_context(|| format!("cannot serve metrics on {addr}{default}"))?;
        tracing::info!("metrics on http://{bound}/metrics");
    }
    if let Some(brokers) = &args.brokers {
        let topic = args
            .topic
            .clone()
            .expect("clap requires --topic with --brokers");
        let opts = KafkaOptions {
            brokers: brokers.clone(),
            dlq_topic: args
                .dlq_topic
                .clone()
                .unwrap_or_else(|| format!("{topic}.dlq")),
            topic,
            group: args.group.clone(),
            instance: args.instance_id.clone().unwrap_or_else(hostname),
            flush_interval: args.flush_interval,
            flush_rows: args.flush_rows.unwrap_or(KAFKA_FLUSH_ROWS),
            settings: args.settings.clone(),
            connect_timeout: args.connect_timeout,
            partitions: args.partitions.clone().map(|p| p.0),
        };
        let (group, topic) = (opts.group.clone(), opts.topic.clone());
        let counts = kafka::run(opts, profile, cfg, &args.lake, metrics, stop)
            .map_err(|e| e.naming_the_rebuild(&args.lake, &group, &topic))?;
        tracing::info!("stopped: {}", counts.summary());
        return Ok(());
    }
    let file = args
        .file
        .clone()
        .expect("clap requires --file or --brokers");
    // the input first: a wrong path fails before the lake is touched
    let (input, source, bytes): (Box<dyn std::io::Read + Send>, String, Option<u64>) =
        if file.as_os_str() == "-" {
            (Box::new(std::io::stdin()), "stdin".to_owned(), None)
        } else {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let meta = f.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                anyhow::bail!("{} is a folder, not an NDJSON file", file.display());
            }
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            // a compressed file too; the reader checks the first bytes of
            // a pipe (`--file <(zcat …)`) or standard input, which cannot be
            // read ahead without blocking a stop
            let size = meta.filter(|m| m.is_file()).map(|m| m.len());
            let f = if size.is_some() {
                // named as given: the error is the user's to act on
                refuse_compressed(f, &file.display().to_string())?
            } else {
                f
            };
            (Box::new(f), name, size)
        };
    let prefix = format!("{FILE_PREFIX}{}-{}", now_micros(), std::process::id());
    let writer = LakeWriter::open(&args.lake, &prefix)?.stage_only();
    let (state, mut engine) = FileState::open(&args.lake, &profile, cfg)?;
    if let Some(bytes) = bytes {
        engine.reserve_ids(expected_ids(bytes, engine.config().dedup_recent));
    }
    let mut pipeline = Pipeline::new(engine, writer);
    let opts = FileOptions {
        flush_interval: args.flush_interval,
        flush_rows: args.flush_rows.unwrap_or(FILE_FLUSH_ROWS),
        ..FileOptions::default()
    };
    // the counts follow each chunk; a long run says how far it is at each
    // flush (every --flush-interval)
    let mut progress = |p: Progress<'_>| {
        metrics.observe(p.counts);
        metrics.event_times(p.newest.as_slice());
        let Some((took, stats)) = p.flushed else {
            return;
        };
        metrics.flush_duration.observe(took.as_secs_f64());
        metrics.engine(&stats);
        let counts = p.counts;
        let share = bytes.map_or_else(String::new, |total| {
            format!(
                " of {:.1} MB ({:.0}%)",
                total as f64 / 1e6,
                100.0 * p.fed as f64 / total.max(1) as f64
            )
        });
        tracing::info!(
            "{:.1} MB{share} scored: {} lines, {} valid, {} duplicates, {} rejected, {:.0} lines/s",
            p.fed as f64 / 1e6,
            counts.read,
            counts.valid,
            counts.duplicates,
            counts.rejected_total(),
            counts.read as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    };
    let published = state.run(&mut pipeline, input, &source, opts, &mut progress, &stop)?;
    // (the endpoint closes with the process: a scrape may miss these)
    metrics.observe(pipeline.counts());
    metrics.checkpointed(
        &published.files,
        published.checkpoint_secs,
        published.checkpoint_bytes,
        published.at,
    );
    metrics.engine(&pipeline.engine().stats());
    let secs = started.elapsed().as_secs_f64();
    let counts = pipeline.counts();
    huoyue_ingest::cli::print_result(format_args!(
        "{}, {:.2} s ({:.0} events/s)",
        counts.summary(),
        secs,
        counts.read as f64 / secs.max(1e-9)
    ))
    .map_err(anyhow::Error::msg)?;
    // everything is written and committed: the process ends now, and freeing
    // the engine's state first (a month's ids and users) would only delay it
    std::mem::forget(pipeline);
    Ok(())
}

/// How many event ids to make room for before reading a file of `bytes`: a
/// guess of one event per 256 bytes, low for events like the generator's
/// (about 185 bytes a line), so that the table is seldom larger than the
/// events need; and no more than the engine keeps whatever their event time
/// (`recent`: the ids of older arrivals are forgotten once past the window).
fn expected_ids(bytes: u64, recent: u64) -> usize {
    usize::try_from((bytes / 256).min(recent)).unwrap_or(usize::MAX)
}

/// `--partitions`: empty for `all`.
#[derive(Clone, Debug)]
struct PartitionList(Vec<i32>);

/// `all` (every partition: an empty list) or `0,1,2`.
fn parse_partitions(s: &str) -> Result<PartitionList, String> {
    if s == "all" {
        return Ok(PartitionList(Vec::new()));
    }
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| {
                    format!("{s:?} is not `all` or a list of partition numbers like 0,1,2")
                })
        })
        .collect::<Result<Vec<i32>, String>>()
        .map(PartitionList)
}

/// `key=value` for `-X`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// The host name, the default instance id.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "huoyue".to_owned())
}

/// Logs to standard error: readable text by default, JSON lines with
/// `--log-format json`; the level from `RUST_LOG` (default `info`).
fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = JSON_LOGS.set(format == "json");
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Sets `stop` on SIGINT or SIGTERM. Returns once the handlers are in place.
fn watch_signals(stop: Arc<AtomicBool>) {
    let (ready, watching) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a signal runtime");
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                let _ = ready.send(());
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = int.recv() => tracing::info!("SIGINT"),
                }
            });
            stop.store(true, Ordering::Relaxed);
        })
        .expect("spawn the signal thread");
    // the thread panics (and the channel closes) if it cannot install them
    watching.recv().expect("the signal handlers are installed");
}
