//! The `looper` binary: parse the arguments, run, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = looper::cli::Cli::parse();
    match looper::main_impl(cli) {
        Ok(code) => code,
        Err(err) => {
            // `looper ls | head` closes the pipe early; that is success, not an error.
            if looper::error::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("looper: {err:#}");
            ExitCode::from(looper::error::exit_code(&err))
        }
    }
}
