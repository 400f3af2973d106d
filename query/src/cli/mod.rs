//! The `huoyue-query` command line: one statement (`-c`), the interactive
//! shell, or `serve`. `main` only calls [`try_main`] and prints its error.

mod args;
mod shell;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use tokio::runtime::Runtime;

use crate::config::QueryConfig;
use crate::error::QueryError;
use crate::format::write_output;
use crate::lake::Lake;
use crate::server::{self, ServerConfig};

pub use args::{Cli, Command, EngineArgs, ServeArgs};

/// Why the command failed, with the exit code to return.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command-line arguments (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The query, the lake or the server failed (exit code 1).
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Query(_) => 1,
        }
    }

    /// The message on one line (DataFusion's messages may span several).
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// Collapse a message to one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parse the process arguments and run the command.
pub fn try_main() -> Result<(), CliError> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                // Help and version go to stdout with exit 0.
                let _ = error.print();
                return Ok(());
            }
            _ => return Err(CliError::Usage(first_line_of_clap_error(&error))),
        },
    };
    run(cli)
}

/// A clap error on one line, without its `error: ` prefix.
fn first_line_of_clap_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    // The first paragraph: the message and, for missing arguments, their names.
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = paragraph.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message} (see --help)")
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Some(Command::Serve(args)) => serve(args),
        None => {
            let dir = cli
                .lake
                .ok_or_else(|| CliError::Usage("--lake DIR is required".to_owned()))?;
            let lake = Lake::open(dir, cli.engine.config())?;
            let runtime = runtime()?;
            match cli.sql {
                Some(sql) => one_statement(&lake, &runtime, &sql, cli.format),
                None => shell::run(&lake, &runtime, cli.format),
            }
        }
    }
}

/// Stack of the threads that plan and run statements. DataFusion plans an
/// expression by recursion, so a long `a OR b OR …` or `UNION ALL` chain
/// (1,000 terms, 20 KB of SQL) overflowed tokio's 2 MiB and aborted the
/// server. Address space, not memory: pages are touched only as deep as a
/// statement goes.
const QUERY_STACK_BYTES: usize = 256 << 20;

fn runtime() -> Result<Runtime, CliError> {
    start(tokio::runtime::Builder::new_multi_thread().thread_stack_size(QUERY_STACK_BYTES))
}

fn start(builder: &mut tokio::runtime::Builder) -> Result<Runtime, CliError> {
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::Query(QueryError::Io(format!("cannot start the runtime: {e}"))))
}

/// [`Lake::query`] on one of the runtime's threads (their stacks are
/// [`QUERY_STACK_BYTES`]), not on the caller's.
pub(crate) fn query_on(
    runtime: &Runtime,
    lake: &Lake,
    sql: &str,
) -> Result<crate::run::QueryOutput, QueryError> {
    let (lake, sql) = (lake.clone(), sql.to_owned());
    runtime
        .block_on(runtime.spawn(async move { lake.query(&sql, None).await }))
        .map_err(|e| QueryError::Internal(format!("query task failed: {e}")))?
}

fn one_statement(
    lake: &Lake,
    runtime: &Runtime,
    sql: &str,
    format: crate::format::OutputFormat,
) -> Result<(), CliError> {
    let output = query_on(runtime, lake, sql)?;
    let mut text = Vec::new();
    write_output(&output, format, &mut text)?;
    write_stdout(&text)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(QueryError::Io(format!("cannot write to stdout: {e}")).into()),
    }
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
    let token = match &args.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                QueryError::Io(format!("cannot read token file {}: {e}", path.display()))
            })?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(
                    QueryError::Io(format!("token file {} is empty", path.display())).into(),
                );
            }
            Some(token)
        }
    };
    let lake = Lake::open(&args.lake, args.engine.config())?;
    // the queries on threads of their own, the requests on one thread
    // beside them (ServerConfig::queries)
    let queries = runtime()?;
    let config = ServerConfig {
        token,
        query_timeout: args.query_timeout,
        max_rows: args.max_rows,
        queries: Some(queries.handle().clone()),
    };
    init_logging();
    let requests = start(tokio::runtime::Builder::new_multi_thread().worker_threads(1))?;
    requests.block_on(async move {
        let (listener, addr) = server::bind(args.listen).await?;
        // The bound address on stderr, first line: scripts (and the tests)
        // read the port from it when listening on port 0.
        eprintln!("huoyue-query: listening on http://{addr}");
        tracing::info!(%addr, lake = %lake.root().display(), "serving");
        server::serve(listener, lake, config, shutdown_signal()).await
    })?;
    // a query still running (its request gone) does not hold the exit
    queries.shutdown_background();
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Logs of the server to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

impl EngineArgs {
    /// The engine configuration these flags describe.
    pub fn config(&self) -> QueryConfig {
        let mut config = QueryConfig {
            memory_limit: Some(self.memory_limit),
            ..QueryConfig::default()
        };
        if let Some(n) = self.target_partitions {
            config.target_partitions = n;
        }
        config
    }
}

/// Seconds with milliseconds, for the shell's footer.
pub(crate) fn seconds(elapsed: Duration) -> String {
    format!("{:.3}", elapsed.as_secs_f64())
}
