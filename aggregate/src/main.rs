//! `huoyue-aggregate`: the monthly job, compaction and re-scoring.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use huoyue_aggregate::compact::{self, CompactScope, CompactTable};
use huoyue_aggregate::error::one_line;
use huoyue_aggregate::month::{Day, Month};
use huoyue_aggregate::monthly::{self, MonthlyOptions};
use huoyue_aggregate::rebuild::{self, KafkaGroup, RebuildOptions};
use huoyue_aggregate::rescore::{self, RescoreOptions};
use huoyue_aggregate::{AggregateError, rules};
use huoyue_ingest::cli::{parse_days, print_result};
use huoyue_ingest::engine::EngineConfig;
use huoyue_schemas::Profile;
use indicatif::{ProgressBar, ProgressStyle};

/// The monthly job (teacher_monthly, school_monthly, the 通报 report),
/// compaction and re-scoring of a huoyue lake.
#[derive(Debug, Parser)]
#[command(name = "huoyue-aggregate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute teacher_monthly and school_monthly of a month from daily_scores,
    /// daily_activity and the rosters, and write the reports (per county and
    /// for the province) to LAKE/reports/YYYY-MM/. Replaces that month's
    /// output atomically; other months are not touched.
    Monthly {
        /// The lake directory.
        #[arg(long, value_name = "DIR")]
        lake: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Rule profile: a built-in name or a TOML file; its rule ids become
        /// the points_<rule> columns, in profile order.
        #[arg(long, value_name = "FILE|NAME", default_value = rules::DEFAULT_PROFILE)]
        profile: String,
        /// Comma-separated rule ids for the points_<rule> columns, overriding
        /// the profile's.
        #[arg(long, value_name = "ID,…")]
        rules: Option<String>,
        /// The platform's name in report titles.
        #[arg(long, value_name = "NAME", default_value = "之江汇教育广场")]
        platform: String,
    },
    /// Replace each selected partition's delta files by one file of summed
    /// rows (daily_scores, daily_activity) or of all rows (events, rejected),
    /// atomically, while the ingest may keep writing. Partitions with one
    /// file are skipped. Without --day or --month, every partition.
    Compact {
        /// The lake directory.
        #[arg(long, value_name = "DIR")]
        lake: PathBuf,
        /// daily_scores, daily_activity, events or rejected.
        #[arg(long, value_name = "TABLE", default_value = "daily_scores")]
        table: String,
        /// Compact this day's partition only.
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "month")]
        day: Option<String>,
        /// Compact each day of this month.
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
    },
    /// Recompute a month's daily_scores and daily_activity from events (and
    /// the rejected rows of reason late) with the ingest's scoring engine, and
    /// replace the month's day partitions atomically. The events of every
    /// earlier day prime the rules' lifetime state; those of the task window
    /// after the month bring its late task points. Other months are not
    /// touched.
    Rescore {
        /// The lake directory.
        #[arg(long, value_name = "DIR")]
        lake: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Rule profile: a built-in name or a TOML file (the one the ingest
        /// used).
        #[arg(long, value_name = "FILE|NAME", default_value = rules::DEFAULT_PROFILE)]
        profile: String,
    },
    /// Rebuild the engine state of the lake's file runs
    /// (LAKE/_checkpoints/file/state.ckpt) from the events they wrote, when
    /// that checkpoint is corrupt: the next `huoyue-ingest --file` run then
    /// goes on as it would have from the lost one. With --group and --topic,
    /// the corrupt checkpoints of that Kafka group's instances instead (stop
    /// them first). The corrupt file is kept beside it; a sound one is left
    /// alone.
    RebuildState {
        /// The lake directory.
        #[arg(long, value_name = "DIR")]
        lake: PathBuf,
        /// The Kafka consumer group whose corrupt checkpoints to rebuild
        /// (huoyue-ingest --group).
        #[arg(long, value_name = "GROUP", requires = "topic")]
        group: Option<String>,
        /// The topic the group reads (huoyue-ingest --topic).
        #[arg(long, value_name = "TOPIC", requires = "group")]
        topic: Option<String>,
        /// Rule profile: a built-in name or a TOML file (the one the file
        /// runs used).
        #[arg(long, value_name = "FILE|NAME", default_value = rules::DEFAULT_PROFILE)]
        profile: String,
        /// The allowed lateness the file runs used (huoyue-ingest --lateness).
        #[arg(long, value_name = "DAYS", default_value = "3d", value_parser = parse_days)]
        lateness: i32,
    },
}

fn main() -> ExitCode {
    let cli = match huoyue_ingest::cli::parse_args::<Cli>() {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huoyue-aggregate: {e}");
            return ExitCode::from(2);
        }
    };
    match try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huoyue-aggregate: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli) -> anyhow::Result<()> {
    // RUST_LOG=huoyue_aggregate=debug shows the phases and their times; quiet
    // otherwise (warnings only)
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Monthly {
            lake,
            month,
            profile,
            rules: rule_list,
            platform,
        } => {
            let month = Month::parse(&month)?;
            let profile_info = rules::profile(&profile)?;
            let rules_of_profile = rule_list.is_none();
            let rule_ids = match rule_list {
                Some(list) => rules::parse_rule_list(&list, &profile_info)?,
                None => profile_info.rule_ids,
            };
            let opts = MonthlyOptions {
                lake: lake.clone(),
                month,
                rules: rule_ids,
                rules_of_profile,
                platform,
                rules_title: profile_info.title,
            };
            let s = runtime.block_on(monthly::run(&opts))?;
            print_result(format_args!(
                "monthly {month}: {} teacher rows, {} school rows, {} county reports and the province report written to {}",
                s.teacher_rows,
                s.school_rows,
                s.county_reports,
                lake.display()
            ))
            .map_err(anyhow::Error::msg)?;
        }
        Command::Compact {
            lake,
            table,
            day,
            month,
        } => {
            let table = CompactTable::parse(&table)?;
            let scope = match (day, month) {
                (Some(d), _) => CompactScope::Day(Day::parse(&d)?),
                (None, Some(m)) => CompactScope::Month(Month::parse(&m)?),
                (None, None) => CompactScope::All,
            };
            let s = runtime.block_on(compact::run(&lake, table, scope))?;
            print_result(format_args!(
                "compact {}: {} partitions compacted ({} files merged), {} skipped, {} changed meanwhile and left alone, {} failed",
                table.name(),
                s.compacted,
                s.files_merged,
                s.skipped,
                s.raced,
                s.failed.len()
            ))
            .map_err(anyhow::Error::msg)?;
            // the error names its partition
            if let Some((_, e)) = s.failed.first() {
                let more = match s.failed.len() - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more partitions, each left as it was)"),
                };
                anyhow::bail!("{e}{more}");
            }
        }
        Command::Rescore {
            lake,
            month,
            profile,
        } => {
            let month = Month::parse(&month)?;
            let profile = Profile::load(&profile)
                .map_err(|e| AggregateError::Profile(one_line(&e.to_string())))?;
            let opts = RescoreOptions {
                lake: lake.clone(),
                month,
                profile,
                engine: EngineConfig::default(),
            };
            let progress = progress_bar();
            let s = rescore::run(&opts, &progress)?;
            print_result(format_args!(
                "rescore {month}: {} events and {} late rows of {} days scored ({} duplicates), {} day partitions of daily_scores and daily_activity replaced with {} and {} rows, {} points",
                s.events,
                s.late,
                s.days_fed,
                s.duplicates,
                s.days_replaced,
                s.rows,
                s.activity_rows,
                s.points
            ))
            .map_err(anyhow::Error::msg)?;
        }
        Command::RebuildState {
            lake,
            group,
            topic,
            profile,
            lateness,
        } => {
            let profile = Profile::load(&profile)
                .map_err(|e| AggregateError::Profile(one_line(&e.to_string())))?;
            let opts = RebuildOptions {
                lake: lake.clone(),
                profile,
                engine: EngineConfig {
                    lateness_days: lateness,
                    ..EngineConfig::default()
                },
                kafka: group
                    .zip(topic)
                    .map(|(group, topic)| KafkaGroup { group, topic }),
            };
            let progress = progress_bar();
            let s = rebuild::run(&opts, &progress)?;
            let kept = match &s.kept_as {
                Some(p) => format!("; the corrupt checkpoint was kept as {}", p.display()),
                None => String::new(),
            };
            match (&opts.kafka, &s.kafka) {
                (Some(kafka), Some(rebuilt)) => {
                    let offsets = rebuilt
                        .partitions
                        .iter()
                        .map(|(p, o)| format!("{p}@{o}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let aside = match rebuilt.set_aside.len() {
                        0 => String::new(),
                        n => format!("; {n} other corrupt checkpoints of the group set aside"),
                    };
                    let staged = match s.staged {
                        0 => String::new(),
                        n => format!(
                            "; {n} files staged and not published will be deleted when their instance starts (their messages are read again)"
                        ),
                    };
                    print_result(format_args!(
                        "rebuild-state: {} events of topic {} on {} days fed ({} duplicates), checkpoint of instance {} written ({} bytes) to {}, going on from partition@offset {}{kept}{aside}{staged}",
                        s.events,
                        kafka.topic,
                        s.days,
                        s.duplicates,
                        rebuilt.instance,
                        s.checkpoint_bytes,
                        huoyue_ingest::checkpoint::dir(&lake, &kafka.group, &kafka.topic).display(),
                        if offsets.is_empty() { "none" } else { &offsets },
                    ))
                }
                _ => {
                    let staged = match s.staged {
                        0 => String::new(),
                        n => format!(
                            "; {n} files staged by a run that did not publish them will be deleted by the next file run (give that run's input again)"
                        ),
                    };
                    print_result(format_args!(
                        "rebuild-state: {} events of file runs on {} days fed ({} duplicates), state written ({} bytes) to {}{kept}{staged}",
                        s.events,
                        s.days,
                        s.duplicates,
                        s.checkpoint_bytes,
                        huoyue_ingest::pipeline::file::state_dir(&lake).display(),
                    ))
                }
            }
            .map_err(anyhow::Error::msg)?;
        }
    }
    Ok(())
}

/// A progress bar on a terminal, hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} days, {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
