//! The interactive shell (rustyline).
//!
//! A statement may span lines and ends with `;`. `\q` quits (as does
//! Ctrl-D), Ctrl-C discards the statement being typed, `\d` lists the
//! tables, `\d NAME` describes one, `\?` shows help. Errors are printed and
//! the shell goes on. History is kept in `$HUOYUE_HISTORY`, else
//! `~/.huoyue_query_history`.

use std::path::PathBuf;
use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::runtime::Runtime;

use super::{CliError, one_line, seconds, write_stdout};
use crate::error::QueryError;
use crate::format::{OutputFormat, write_output};
use crate::lake::Lake;

const PROMPT: &str = "huoyue> ";
const CONTINUATION: &str = "     -> ";

const HELP: &str = "\
Statements end with ';' and may span several lines. Only reads are allowed.
  \\d          list the tables
  \\d NAME     describe a table
  \\?          this help
  \\q          quit (or Ctrl-D)
";

/// The history file: `$HUOYUE_HISTORY`, else `~/.huoyue_query_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HUOYUE_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".huoyue_query_history"))
}

/// Run the shell until `\q` or end of input.
pub(super) fn run(lake: &Lake, runtime: &Runtime, format: OutputFormat) -> Result<(), CliError> {
    let mut editor =
        DefaultEditor::new().map_err(|e| QueryError::Io(format!("cannot start the shell: {e}")))?;
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() {
                    let command = line.trim();
                    if command.starts_with('\\') {
                        let _ = editor.add_history_entry(command);
                        match backslash(command) {
                            Backslash::Quit => break,
                            Backslash::Print(text) => print!("{text}"),
                            Backslash::Sql(sql) => execute(lake, runtime, &sql, format),
                        }
                        continue;
                    }
                    if command.is_empty() {
                        continue;
                    }
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if buffer.trim_end().ends_with(';') {
                    let statement = buffer.trim().to_owned();
                    buffer.clear();
                    let _ = editor.add_history_entry(statement.as_str());
                    execute(lake, runtime, &statement, format);
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => {
                // Piped input may end without a final ';'.
                if !buffer.trim().is_empty() {
                    execute(lake, runtime, buffer.trim(), format);
                }
                break;
            }
            Err(e) => {
                save(&mut editor, history.as_ref());
                return Err(QueryError::Io(format!("cannot read input: {e}")).into());
            }
        }
    }
    save(&mut editor, history.as_ref());
    Ok(())
}

fn save(editor: &mut DefaultEditor, history: Option<&PathBuf>) {
    if let Some(path) = history {
        // Losing the history is not worth failing the session for.
        let _ = editor.save_history(path);
    }
}

enum Backslash {
    Quit,
    Print(String),
    Sql(String),
}

fn backslash(command: &str) -> Backslash {
    let mut words = command.split_whitespace();
    match (words.next(), words.next()) {
        (Some("\\q"), _) => Backslash::Quit,
        (Some("\\d"), None) => Backslash::Sql("SHOW TABLES".to_owned()),
        (Some("\\d"), Some(table)) => Backslash::Sql(format!("DESCRIBE {table}")),
        (Some("\\?" | "\\h" | "\\help"), _) => Backslash::Print(HELP.to_owned()),
        _ => Backslash::Print(format!("unknown command {command}; \\? for help\n")),
    }
}

/// Run one statement and print its result, or its error on one line.
fn execute(lake: &Lake, runtime: &Runtime, sql: &str, format: OutputFormat) {
    let started = Instant::now();
    let result = super::query_on(runtime, lake, sql).and_then(|output| {
        let mut text = Vec::new();
        write_output(&output, format, &mut text)?;
        Ok((output.num_rows(), text))
    });
    match result {
        Ok((rows, text)) => {
            if let Err(e) = write_stdout(&text) {
                eprintln!("error: {}", e.one_line());
            }
            eprintln!("{rows} row(s) in {} s", seconds(started.elapsed()));
        }
        Err(e) => eprintln!("error: {}", one_line(&e.to_string())),
    }
}
