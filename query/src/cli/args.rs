//! Command-line arguments (clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::format::OutputFormat;
use crate::server::DEFAULT_MAX_ROWS;
use crate::units::{parse_bytes, parse_duration};

/// Read-only SQL (DataFusion) over the huoyue lake.
///
/// With -c, run one statement and print its result; without, start an
/// interactive shell (statements end with `;`, `\q` quits). `serve` answers
/// SQL over HTTP. Tables: events, daily_scores, daily_activity, rejected,
/// teacher_monthly, school_monthly, schools, users and the view daily_totals.
/// Statements that would write or create anything are refused.
#[derive(Debug, Parser)]
#[command(
    name = "huoyue-query",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Serve SQL over HTTP instead.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The lake directory.
    #[arg(long, value_name = "DIR", required = true)]
    pub lake: Option<PathBuf>,

    /// Run this one statement, print its result to stdout and exit.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        allow_hyphen_values = true
    )]
    pub sql: Option<String>,

    /// Output format of results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Engine flags shared by every mode.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Memory the queries may hold at once (sorts and aggregations spill to
    /// disk beyond their share, others fail): 2GiB, 512MiB, bytes.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_bytes)]
    pub memory_limit: usize,

    /// Parallelism of a query (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub target_partitions: Option<usize>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve SQL over HTTP: POST /sql (body: SQL; Accept: application/json,
    /// text/csv or application/vnd.apache.arrow.stream) and GET /health.
    Serve(ServeArgs),
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The lake directory.
    #[arg(long, value_name = "DIR")]
    pub lake: PathBuf,

    /// Address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// File holding the bearer token that /sql requires (trimmed); without
    /// it, /sql is open to anyone who can reach the address.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Cancel a query after this long and answer 504: 30s, 2m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub query_timeout: Duration,

    /// Refuse results with more rows than this (413).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ROWS)]
    pub max_rows: usize,

    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineArgs,
}
