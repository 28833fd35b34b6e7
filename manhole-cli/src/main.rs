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

    /// Whether this is what [`write_out`] returns when stdout's reader left.
    pub(crate) fn reader_left(&self) -> bool {
        self.code == exit::OK && self.message.is_empty()
    }
}

/// Writes `bytes` to stdout, flushed. A reader that left (`| head`, a closed pipe) is not an
/// error of the client's: it gets a [`Failure`] with status 0 and no message (see
/// [`Failure::reader_left`]), so the run stops quietly instead of panicking as `println!`
/// does; any other failure to write is said, with status 1.
pub(crate) fn write_out(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::new(exit::OK, "")),
        Err(e) => Err(Failure::new(exit::FAILED, format!("cannot write to stdout: {e}"))),
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
        Some(args::Sub::Completions { shell }) => args::completions(*shell).map(|()| exit::OK),
        None => run::run(&cli),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) if failure.reader_left() => ExitCode::from(exit::OK),
        Err(failure) => {
            eprintln!("manhole-cli: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
