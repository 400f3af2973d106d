//! `huoyue-query`: see the crate documentation and `huoyue-query --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match huoyue_query::cli::try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.one_line());
            ExitCode::from(error.exit_code())
        }
    }
}
