//! `huoyue-ingest`: score NDJSON from a file (or standard input) into the lake.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use huoyue_ingest::cli::{parse_days, parse_duration};
use huoyue_ingest::engine::{Engine, EngineConfig};
use huoyue_ingest::lake_writer::LakeWriter;
use huoyue_ingest::pipeline::Pipeline;
use huoyue_ingest::pipeline::file::{FileOptions, now_micros, run_file};
use huoyue_schemas::profile::{DEFAULT_PROFILE, Profile};

/// Scores education-platform usage events into a Parquet lake.
///
/// File mode reads NDJSON (one event per line) from PATH, or from standard input
/// with `-`, until its end; writes the lake's events, daily_scores, daily_activity
/// and rejected tables; and prints a one-line summary.
#[derive(Parser, Debug)]
#[command(name = "huoyue-ingest", version)]
struct Args {
    /// The lake directory (created if missing).
    #[arg(long, value_name = "DIR")]
    lake: PathBuf,
    /// A rule profile: a built-in name or a TOML file.
    #[arg(long, value_name = "FILE|NAME", default_value = DEFAULT_PROFILE)]
    profile: String,
    /// NDJSON input; `-` reads standard input.
    #[arg(long, value_name = "PATH|-")]
    file: PathBuf,
    /// How far before the newest day seen an event may still be scored.
    #[arg(long, value_name = "DAYS", default_value = "3d", value_parser = parse_days)]
    lateness: i32,
    /// Write files at least this often while events flow.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    flush_interval: Duration,
    /// Also write files once this many rows are buffered.
    #[arg(long, value_name = "ROWS", default_value_t = 2_000_000)]
    flush_rows: usize,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

fn try_main() -> Result<()> {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            let msg = e.render().to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ")
                .to_owned();
            anyhow::bail!("{first} (see --help)");
        }
    };
    let started = Instant::now();
    let profile = Profile::load(&args.profile)?;
    let cfg = EngineConfig {
        lateness_days: args.lateness,
        ..EngineConfig::default()
    };
    let engine = Engine::new(&profile, cfg);
    let prefix = format!("file-{}-{}", now_micros(), std::process::id());
    let writer = LakeWriter::open(&args.lake, &prefix)?;
    let (input, source): (Box<dyn std::io::Read + Send>, String) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), "stdin".to_owned())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let name = args.file.file_name().map_or_else(
            || args.file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        (Box::new(f), name)
    };
    let mut pipeline = Pipeline::new(engine, writer);
    let opts = FileOptions {
        flush_interval: args.flush_interval,
        flush_rows: args.flush_rows,
        ..FileOptions::default()
    };
    run_file(&mut pipeline, input, &source, opts)?;
    let secs = started.elapsed().as_secs_f64();
    let counts = pipeline.counts();
    println!(
        "{}, {:.2} s ({:.0} events/s)",
        counts.summary(),
        secs,
        counts.read as f64 / secs.max(1e-9)
    );
    Ok(())
}
