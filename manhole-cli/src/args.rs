//! The command line.

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  manhole-cli 4242                       a session with process 4242 (/tmp/manhole-4242)
  manhole-cli /run/app/manhole.sock      a session at that socket, as given
  manhole-cli 4242 info                  run one command and exit with its status
  echo 'print REQUESTS' | manhole-cli -q 4242
  manhole-cli -2 -t 5 4242               send SIGUSR2 (oneshot_on), wait up to 5 s, connect
  touch /tmp/trigger && manhole-cli -w -t 5 4242
                                         wait up to 5 s for the socket to appear, connect
  manhole-cli list --clean               this user's manholes; remove the stale ones

Exit status:
  0  the session or every command went well
  1  a command failed, the connection broke, or the process sent more than the
     client takes (an opening of 32 MiB without its prompt, an answer of 64 MiB
     without its end: not a manhole, or a broken one)
  2  usage error
  3  no such process, or no socket (or only a stale one) where it should be
  4  access refused (not the process's user or root), too many sessions, the
     socket is served by another process or user than asked for (not trusted),
     or the signal to send would kill the process (it has no handler; --force)
  5  timed out: waiting for the socket after the signal (or -w), for a listener
     too busy to accept, or for the opening (--opening-timeout)";

/// Connect to the manhole of a running Rust process.
#[derive(Debug, Parser)]
#[command(name = "manhole-cli", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Sub>,

    /// Seconds to wait for the socket after sending a signal (and to connect)
    #[arg(short = 't', long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    pub(crate) timeout: Duration,

    /// Send SIGUSR1 to the process before connecting (activate_on = "USR1")
    #[arg(short = '1', long = "usr1", conflicts_with_all = ["usr2", "signal"])]
    pub(crate) usr1: bool,

    /// Send SIGUSR2 to the process before connecting (oneshot_on = "USR2")
    #[arg(short = '2', long = "usr2", conflicts_with = "signal")]
    pub(crate) usr2: bool,

    /// Send this signal before connecting: a name with or without SIG, or a number
    #[arg(short = 's', long, value_name = "SIGNAL", value_parser = parse_signal)]
    pub(crate) signal: Option<manhole::Signal>,

    /// Also trust a listener of this uid (as root, to connect by path to a service that runs
    /// as another user; by PID, the process's own uid is checked instead)
    #[arg(long, value_name = "UID")]
    pub(crate) trust_uid: Option<u32>,

    /// Seconds to wait for the opening (stack dump and banner) after connecting
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    pub(crate) opening_timeout: Duration,

    /// Send the signal even if the process does not handle it (its default action may kill
    /// or stop it)
    #[arg(long)]
    pub(crate) force: bool,

    /// Wait up to the timeout for the socket to appear (opened by something other than a
    /// signal sent here: a trigger file, an admin endpoint)
    #[arg(short = 'w', long)]
    pub(crate) wait: bool,

    /// Print each command's machine-mode JSON document instead of text
    #[arg(long)]
    pub(crate) json: bool,

    /// Leave out the stack dump and banner sent on connect
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// The process id, or the socket path (anything with a '/')
    #[arg(value_name = "PID|PATH", required = true)]
    pub(crate) target: Option<String>,

    /// A command to run instead of a session, then exit with its status
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) words: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Sub {
    /// This user's manholes under /tmp (everyone's, for root): pid, uid, program, whether it
    /// is live or stale, socket
    List {
        /// Remove the stale sockets (nothing listens: the process is gone) this user owns (any
        /// user's, for root); only sockets, never files, directories or symlinks
        #[arg(long)]
        clean: bool,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
}

impl Cli {
    /// The signal to send before connecting, if any.
    pub(crate) fn signal_to_send(&self) -> Option<manhole::Signal> {
        match (self.usr1, self.usr2, self.signal) {
            (true, _, _) => Some(manhole::Signal::USR1),
            (_, true, _) => Some(manhole::Signal::USR2),
            (_, _, signal) => signal,
        }
    }
}

impl Cli {
    /// The manhole option that would make the process handle `signal`, as the user asked.
    pub(crate) fn trigger_option(&self, signal: manhole::Signal) -> String {
        let short = signal.name().trim_start_matches("SIG").to_owned();
        if self.usr1 {
            format!("activate_on={short}")
        } else if self.usr2 {
            format!("oneshot_on={short}")
        } else {
            format!("activate_on={short} or oneshot_on={short}")
        }
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a number of seconds greater than 0, like 1 or 0.5"))
}

fn parse_signal(text: &str) -> Result<manhole::Signal, String> {
    text.parse::<manhole::Signal>().map_err(|e| e.to_string())
}

/// Prints a completion script for `shell`. It is made whole first: the generator panics on a
/// failed write, a `Vec` never fails.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<(), crate::Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "manhole-cli", &mut script);
    crate::write_out(&script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("manhole-cli").chain(args.iter().copied()))
    }

    #[test]
    fn signals_by_flag_name_or_number() {
        let sent = |args: &[&str]| parse(args).expect("valid").signal_to_send();
        assert_eq!(sent(&["-1", "42"]), Some(manhole::Signal::USR1));
        assert_eq!(sent(&["--usr2", "42"]), Some(manhole::Signal::USR2));
        for name in ["USR2", "SIGUSR2", "12"] {
            assert_eq!(sent(&["-s", name, "42"]), Some(manhole::Signal::USR2), "{name}");
        }
        assert_eq!(sent(&["42"]), None);
        let err = parse(&["-s", "SIGFOO", "42"]).unwrap_err().to_string();
        assert!(err.contains("SIGFOO"), "{err}");
        let err = parse(&["-1", "-2", "42"]).unwrap_err().to_string();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        let cli = parse(&["-t", "0.25", "42"]).expect("valid");
        assert_eq!(cli.timeout, Duration::from_millis(250));
        assert_eq!(parse(&["42"]).expect("valid").timeout, Duration::from_secs(1));
        for bad in ["0", "-1", "soon", "inf"] {
            let err = parse(&[&format!("--timeout={bad}"), "42"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("greater than 0"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_command_keeps_its_own_flags() {
        let cli = parse(&["-q", "--json", "42", "stacks", "--full", "-n"]).expect("valid");
        assert!(cli.quiet && cli.json);
        assert_eq!(cli.target.as_deref(), Some("42"));
        assert_eq!(cli.words, ["stacks", "--full", "-n"]);
        assert!(parse(&[]).is_err(), "a target is required");
        assert!(matches!(
            parse(&["list", "--clean", "--json"]).expect("valid").command,
            Some(Sub::List {
                clean: true,
                json: true
            })
        ));
    }
}
