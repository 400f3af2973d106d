//! The interactive shell (rustyline).
//!
//! A statement may span lines and ends with `;`. `\q` quits (as does
//! Ctrl-D), Ctrl-C discards the statement being typed, `\d` lists the
//! tables, `\d NAME` describes one, `\?` shows help. Errors are printed and
//! the shell goes on. History is kept in `$HUOYUE_HISTORY`, else
//! `~/.huoyue_query_history`.

use std::path::PathBuf;
use std::time::Instant;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
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
                let (statements, rest) = split_statements(&buffer);
                buffer = rest;
                for statement in statements {
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

/// The complete statements of `buffer` (each up to a `;` outside strings,
/// quoted names and comments, with its `;`) and the incomplete rest (kept
/// for the next line; leading blank lines dropped). The `;`s are found by the
/// SQL tokenizer of the dialect statements are parsed in, so whatever it
/// reads as a string (`'…'`, `E'…'`, `$$…$$`) or a comment (nested `/* */`)
/// hides a `;` as it does when the statement runs. A string or comment not
/// closed yet stops the tokenizer: the statements before it are complete,
/// the rest waits for more lines.
fn split_statements(buffer: &str) -> (Vec<String>, String) {
    let dialect = GenericDialect {};
    let mut tokens = Vec::new();
    // on an error, `tokens` holds those before it
    let _ = Tokenizer::new(&dialect, buffer).tokenize_with_location_into_buf(&mut tokens);
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(buffer.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // a token's (line, column), both from 1, columns in characters, as a byte offset
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts[(line as usize).saturating_sub(1).min(line_starts.len() - 1)];
        buffer[start..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(buffer.len(), |(i, _)| start + i)
    };
    let mut statements = Vec::new();
    let mut start = 0;
    for t in tokens.iter().filter(|t| t.token == Token::SemiColon) {
        let end = offset(t.span.start.line, t.span.start.column) + 1;
        let statement = buffer[start..end].trim();
        if statement != ";" {
            statements.push(statement.to_owned());
        }
        start = end;
    }
    let rest = buffer[start..].trim_start();
    (statements, rest.to_owned())
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

#[cfg(test)]
mod tests {
    use super::split_statements;

    fn split(s: &str) -> (Vec<String>, String) {
        split_statements(s)
    }

    #[test]
    fn statements_end_at_semicolons_outside_strings_and_comments() {
        assert_eq!(
            split("select 1 as x; select 2 as y;\n"),
            (
                vec!["select 1 as x;".into(), "select 2 as y;".into()],
                "".into()
            )
        );
        assert_eq!(split("select 'a;\n"), (vec![], "select 'a;\n".into()));
        assert_eq!(
            split("select 'a;\nb' as s;\n"),
            (vec!["select 'a;\nb' as s;".into()], "".into())
        );
        assert_eq!(
            split("select 'it''s;' as s; select"),
            (vec!["select 'it''s;' as s;".into()], "select".into())
        );
        assert_eq!(
            split("select 1 as x /* ;\n */;\n"),
            (vec!["select 1 as x /* ;\n */;".into()], "".into())
        );
        assert_eq!(
            split("select 1 -- not the end;\n"),
            (vec![], "select 1 -- not the end;\n".into())
        );
        assert_eq!(
            split("select \"a;b\" from t;"),
            (vec!["select \"a;b\" from t;".into()], "".into())
        );
        assert_eq!(split(";;\n"), (vec![], "".into()));
    }

    /// What the tokenizer reads as one string or comment hides a `;` (the
    /// shell split these where the statement itself would not, found by a
    /// probe): dollar quotes, escape strings, nested comments; and a
    /// statement before an unclosed string still runs.
    #[test]
    fn strings_and_comments_of_the_dialect_hide_semicolons() {
        assert_eq!(
            split("select $$a;b$$ as d;\nselect 9;\n"),
            (
                vec!["select $$a;b$$ as d;".into(), "select 9;".into()],
                "".into()
            )
        );
        assert_eq!(
            split("select E'q\\';r' as e; select 9;\n"),
            (
                vec!["select E'q\\';r' as e;".into(), "select 9;".into()],
                "".into()
            )
        );
        assert_eq!(
            split("select /* a /* b */ ; */ 2 as n;\n"),
            (vec!["select /* a /* b */ ; */ 2 as n;".into()], "".into())
        );
        assert_eq!(
            split("select 'é;ü' as s; select 1;"),
            (
                vec!["select 'é;ü' as s;".into(), "select 1;".into()],
                "".into()
            )
        );
        assert_eq!(
            split("select 1;\nselect $$open;\n"),
            (vec!["select 1;".into()], "select $$open;\n".into())
        );
    }
}
