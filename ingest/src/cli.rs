//! Command-line values (durations like `10s` and `3d`) and the one-line
//! form of a command-line error, shared by the binaries.

use std::time::Duration;

/// Parses the command line into `T`: `Ok(None)` when help or the version
/// was asked for (and printed, exit status 0), `Err` with a one-line message
/// naming the problem (clap's first paragraph: the error and, for missing
/// arguments, their names) otherwise.
pub fn parse_args<T: clap::Parser>() -> Result<Option<T>, String> {
    use clap::error::ErrorKind;
    match T::try_parse() {
        Ok(args) => Ok(Some(args)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Ok(None)
        }
        // no subcommand given: the help, on stderr, exit status 2
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => Err(error_line(&e.render().to_string())),
    }
}

/// The first paragraph of a rendered clap error on one line, without its
/// `error: ` prefix, with a pointer to `--help`.
fn error_line(rendered: &str) -> String {
    let paragraph = rendered.split("\n\n").next().unwrap_or(rendered);
    let words = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = words.strip_prefix("error: ").unwrap_or(&words);
    format!("{message} (see --help)")
}

/// Writes a command's result line to standard output. A reader that went
/// away (a closed pipe: `| head -0`) is not an error; any other failure (a
/// full disk) is, and its message says that the work itself is done, so
/// that nobody runs it again to get the line.
pub fn print_result(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!(
            "done and written to the lake, but the summary could not be written to standard output: {e}"
        )),
        _ => Ok(()),
    }
}

/// Parses `500ms`, `10s`, `5m`, `2h`, `3d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    if unit.starts_with('.') {
        return Err(format!(
            "{s:?}: durations are whole numbers of a unit (1500ms, not 1.5s)"
        ));
    }
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 5m or 3d"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Parses a duration that must be more than zero (how often to flush).
pub fn parse_period(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err(format!("{s:?}: must be more than zero")),
        d => Ok(d),
    }
}

/// Where to serve metrics: `--metrics-addr ADDR`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    At(std::net::SocketAddr),
    Off,
}

/// The metrics address of the service (Kafka mode) when `--metrics-addr`
/// is not given (interface.md); a file run serves none unless given one.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9187";

/// Parses `--metrics-addr`: a socket address (`127.0.0.1:9187`,
/// `0.0.0.0:9187`, `[::1]:9187`) or `off`.
pub fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr::Off);
    }
    s.trim()
        .parse()
        .map(MetricsAddr::At)
        .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:9187, or off"))
}

/// Parses a count that must be 1 or more.
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(format!("{s:?}: must be 1 or more")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Parses a lateness, which must be whole days.
pub fn parse_days(s: &str) -> Result<i32, String> {
    let d = parse_duration(s)?;
    if d.as_secs() % 86_400 != 0 {
        return Err(format!(
            "{s:?}: lateness is counted in whole days (e.g. 3d)"
        ));
    }
    i32::try_from(d.as_secs() / 86_400).map_err(|_| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_days("3d"), Ok(3));
        assert!(parse_days("36h").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(
            super::error_line(
                "error: the following required arguments were not provided:\n  --month <YYYY-MM>\n\nUsage: x --month <YYYY-MM>\n\nFor more information, try '--help'.\n"
            ),
            "the following required arguments were not provided: --month <YYYY-MM> (see --help)"
        );
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("1.5s").unwrap_err().contains("1500ms"));
        assert!(parse_period("0s").is_err());
        assert_eq!(parse_period("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-5").is_err());
        assert_eq!(parse_count("500000"), Ok(500_000));
    }
}
