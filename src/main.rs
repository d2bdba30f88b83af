//! The `looper` binary: parse the arguments, run, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The original looper.sh's forms (`--ls`, `--tail`, `--interleave`, ...) are aliases.
    let args = looper::compat::translate_args(std::env::args_os().collect());
    let cli = looper::cli::Cli::parse_from(args);
    match looper::main_impl(cli) {
        Ok(code) => code,
        Err(err) => {
            // `looper ls | head` closes the pipe early; that is success, not an error.
            if looper::error::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("looper: {err:#}");
            if let Some(advice) = looper::error::advice(&err) {
                eprintln!("looper: {advice}");
            }
            ExitCode::from(looper::error::exit_code(&err))
        }
    }
}
