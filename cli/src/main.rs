//! `kage`: keep Kubernetes Secrets in Git, encrypted with age.
//!
//! Parse, run, map the error to an exit code; nothing else.

mod agesecret;
mod args;
mod cluster;
mod cmd;
mod config;
mod exit;
mod io;
mod keysrc;
mod manifest;
mod progress;
mod raw;
mod signals;
mod sopsdoc;
mod tree;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    signals::install();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version go to stdout with 0; usage errors to stderr with 2.
            let code = if err.use_stderr() {
                exit::Exit::Usage
            } else {
                exit::Exit::Ok
            };
            let _ = err.print();
            return ExitCode::from(code.code());
        }
    };
    let result = cmd::run(cli);
    signals::settle();
    match result {
        Ok(code) => ExitCode::from(code.code()),
        Err(err) => {
            let report = exit::classify(&err);
            if let Some(message) = report.message {
                eprintln!("error: {message}");
                if let Some(hint) = report.hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(report.exit.code())
        }
    }
}
