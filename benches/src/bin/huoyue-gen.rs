//! `huoyue-gen`: writes a month of synthetic platform events and the rosters
//! that go with them. See `huoyue-gen --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Parser;
use clap::error::ErrorKind;
use huoyue_benches::r#gen::{GenConfig, generate, month_end_us, parse_month};
use huoyue_benches::kafka::produce;

/// Synthetic, realistic usage events of a provincial education cloud
/// platform, with school and user rosters.
///
/// Writes OUT/events.ndjson (in arrival order: slightly out of order, with
/// duplicate and malformed lines) and OUT/dims/schools.csv,
/// OUT/dims/users.csv. The same flags and seed give byte-identical files.
/// At the default sizes one school yields about 14,000 events a month
/// (lead days included): 100 schools make a county month of about 1.4M.
#[derive(Parser, Debug)]
#[command(name = "huoyue-gen", version, about, long_about)]
struct Args {
    /// Month to generate, YYYY-MM (plus --lead-days days of the month before).
    #[arg(long, value_name = "YYYY-MM")]
    month: String,
    /// Number of schools.
    #[arg(long, value_name = "N")]
    schools: u32,
    /// Mean roster teachers per school (sizes vary around it).
    #[arg(long, value_name = "N", default_value_t = GenConfig::default().teachers_per_school)]
    teachers_per_school: u32,
    /// Mean roster students per school (sizes vary around it).
    #[arg(long, value_name = "N", default_value_t = GenConfig::default().students_per_school)]
    students_per_school: u32,
    /// Seed of every random choice.
    #[arg(long, value_name = "S", default_value_t = GenConfig::default().seed)]
    seed: u64,
    /// Output directory (created if missing; files in it are replaced). With
    /// --brokers, only the rosters are written there.
    #[arg(long, value_name = "DIR", required_unless_present = "brokers")]
    out: Option<PathBuf>,
    /// Produce the events to Kafka instead of a file, keyed by scored user
    /// (events.md), at the producer's full speed.
    #[arg(long, value_name = "HOST:PORT[,…]", requires = "topic")]
    brokers: Option<String>,
    /// The topic to produce to (with --brokers); it must exist.
    #[arg(long, value_name = "TOPIC", requires = "brokers")]
    topic: Option<String>,
    /// A librdkafka producer setting (KEY=VALUE), repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Counties the schools are spread over (real Zhejiang counties, from
    /// 330381 瑞安市, then across cities).
    #[arg(long, value_name = "N", default_value_t = GenConfig::default().counties)]
    counties: u32,
    /// Days at the end of the previous month to generate too, so that login
    /// streaks and tasks cross the month boundary.
    #[arg(long, value_name = "N", default_value_t = GenConfig::default().lead_days)]
    lead_days: u32,
    /// Share of events re-sent later as an exact duplicate line (0–0.5).
    #[arg(long, value_name = "F", default_value_t = GenConfig::default().duplicate_share)]
    duplicate_share: f64,
    /// Share of malformed lines, of every rejected kind of events.md except
    /// too_large (0–0.5).
    #[arg(long, value_name = "F", default_value_t = GenConfig::default().malformed_share)]
    malformed_share: f64,
    /// Share of lines over 64 KiB (rejected as too_large) (0–0.5).
    #[arg(long, value_name = "F", default_value_t = GenConfig::default().oversize_share)]
    oversize_share: f64,
    /// Longest delay, in hours, between an event's ts and its place in the
    /// file (0–48; most events arrive within two minutes).
    #[arg(long, value_name = "H", default_value_t = GenConfig::default().disorder_hours)]
    disorder_hours: f64,
    /// Scales how many events an active user produces in a day (repeated
    /// logins, lessons, space operations, interactions, app uses, resource
    /// propagation), not who is active.
    #[arg(long, value_name = "F", default_value_t = GenConfig::default().activity)]
    activity: f64,
}

/// Parses the command line; `None` when help or version was printed.
fn parse_args() -> Result<Option<Args>> {
    match Args::try_parse() {
        Ok(a) => Ok(Some(a)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.print()?;
            Ok(None)
        }
        Err(e) => {
            // clap's message on one line: drop the usage and hint, keep
            // what names the problem.
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let text = text.split("\n\n").next().unwrap_or(text);
            Err(anyhow!(
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        }
    }
}

fn try_main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let (year, month) = parse_month(&args.month).map_err(|e| anyhow!(e))?;
    let cfg = GenConfig {
        year: year as i32,
        month,
        schools: args.schools,
        teachers_per_school: args.teachers_per_school,
        students_per_school: args.students_per_school,
        counties: args.counties,
        seed: args.seed,
        lead_days: args.lead_days,
        duplicate_share: args.duplicate_share,
        malformed_share: args.malformed_share,
        oversize_share: args.oversize_share,
        disorder_hours: args.disorder_hours,
        activity: args.activity,
    };
    cfg.validate().map_err(|e| anyhow!(e))?;
    warn_if_future(year, month);
    if let (Some(brokers), Some(topic)) = (&args.brokers, &args.topic) {
        let mut settings = Vec::new();
        for s in &args.settings {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("-X {s:?} is not KEY=VALUE"))?;
            settings.push((k.to_owned(), v.to_owned()));
        }
        let sent = produce(&cfg, brokers, topic, &settings, args.out.as_deref())?;
        eprintln!("huoyue-gen: {sent}");
        return Ok(());
    }
    let out = args
        .out
        .as_deref()
        .expect("clap requires --out without --brokers");
    let stats = generate(&cfg, out)?;
    eprintln!("huoyue-gen: {stats}");
    Ok(())
}

/// Says so when the month ends after tomorrow: an ingest run now rejects
/// events more than a day ahead of its clock (`future_timestamp`, events.md).
fn warn_if_future(year: i64, month: u32) {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let tomorrow_us = now_us + 86_400_000_000;
    if month_end_us(year, month) > tomorrow_us {
        eprintln!(
            "huoyue-gen: note: {year}-{month:02} is not over yet; an ingest run today rejects its events after tomorrow as future_timestamp"
        );
    }
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
