//! `manhole-cli`: connect to the manhole of a running Rust process.
//!
//! ```text
//! manhole-cli 4242                      # a session (text, like socat)
//! manhole-cli 4242 info                 # one command, then exit with its status
//! echo 'print REQUESTS' | manhole-cli /run/app/manhole.sock
//! manhole-cli -2 4242                   # send SIGUSR2 (oneshot_on), wait for the socket
//! manhole-cli list                      # this user's manholes, live and stale
//! ```

use std::process::ExitCode;

use clap::Parser;

mod args;
mod completion;
mod connect;
mod interactive;
mod list;
mod proc;
mod run;
mod sanitize;
mod wire;

/// The documented exit codes (see `--help`).
pub(crate) mod exit {
    pub(crate) const OK: u8 = 0;
    pub(crate) const FAILED: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const NO_TARGET: u8 = 3;
    pub(crate) const REFUSED: u8 = 4;
    pub(crate) const TIMEOUT: u8 = 5;
}

/// An error with its exit code and a message that says what to do.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let outcome = match &cli.command {
        Some(args::Sub::List { clean, json }) => list::run(*clean, *json),
        Some(args::Sub::Completions { shell }) => {
            args::completions(*shell);
            Ok(exit::OK)
        }
        None => run::run(&cli),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("manhole-cli: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
