//! The verbose log: `Manhole[<pid>:<unix time>]: <message>` lines, the vocabulary of the original.
//!
//! Lines go out with one raw write(2) each (no std lock that a fork could leave held, no buffer
//! that could interleave), or to the `log` crate when the application asks for it. Failure to
//! log is never an error: a closed fd 2 simply loses the line.

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, sys};

/// Where the verbose log goes (see [`Options::verbose_destination`](crate::Options::verbose_destination)).
///
/// ```
/// use manhole::{Options, VerboseDestination};
///
/// Options::new().verbose_destination(2);                          // a file descriptor
/// Options::new().verbose_destination("/var/log/app/manhole.log"); // a file, appended to
/// Options::new().verbose_destination(VerboseDestination::Log);    // the `log` crate
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerboseDestination {
    /// File descriptor 2, the default.
    #[default]
    Stderr,
    /// Any open file descriptor. It is borrowed, never closed.
    Fd(RawFd),
    /// A file opened for appending (created with mode 0600 if missing) when manhole is installed.
    File(PathBuf),
    /// The `log` crate, at level `info` and target `manhole`.
    Log,
}

impl From<RawFd> for VerboseDestination {
    fn from(fd: RawFd) -> Self {
        VerboseDestination::Fd(fd)
    }
}

impl From<PathBuf> for VerboseDestination {
    fn from(path: PathBuf) -> Self {
        VerboseDestination::File(path)
    }
}

impl From<&std::path::Path> for VerboseDestination {
    fn from(path: &std::path::Path) -> Self {
        VerboseDestination::File(path.to_owned())
    }
}

impl From<&str> for VerboseDestination {
    fn from(path: &str) -> Self {
        VerboseDestination::File(path.into())
    }
}

const OFF: u8 = 0;
const TO_FD: u8 = 1;
const TO_LOG: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(OFF);
static FD: AtomicI32 = AtomicI32::new(2);
/// A file descriptor manhole opened itself for a `File` destination, or -1.
static OWNED_FD: AtomicI32 = AtomicI32::new(-1);

/// Points the log at `destination`, or turns it off when `verbose` is false. A file opened
/// for an earlier configuration is closed, unless `previous_quiet` is false (a session of the
/// previous manhole may still be logging to it; it is then left open rather than risk a
/// reused fd number).
///
/// # Errors
/// Only a `File` destination that cannot be opened fails; fds are used as given, and a closed
/// fd 2 turns logging off instead of writing into whatever file later takes that number.
pub(crate) fn configure(
    verbose: bool,
    destination: &VerboseDestination,
    previous_quiet: bool,
) -> Result<(), Error> {
    let (mode, fd, owned) = match (verbose, destination) {
        (false, _) => (OFF, 2, None),
        (true, VerboseDestination::Stderr) if !crate::sys::is_open(2) => (OFF, 2, None),
        (true, VerboseDestination::Stderr) => (TO_FD, 2, None),
        (true, VerboseDestination::Fd(fd)) => (TO_FD, *fd, None),
        (true, VerboseDestination::Log) => (TO_LOG, 2, None),
        (true, VerboseDestination::File(path)) => {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io("open the verbose log file", Some(path.clone()), e))?;
            let fd = file.into_raw_fd();
            (TO_FD, fd, Some(fd))
        }
    };
    FD.store(fd, Ordering::Release);
    MODE.store(mode, Ordering::Release);
    let previous = OWNED_FD.swap(owned.unwrap_or(-1), Ordering::AcqRel);
    if previous >= 0 && previous_quiet {
        let _ = nix::unistd::close(previous);
    }
    Ok(())
}

/// Turns logging off after uninstall, closing a log file manhole opened (unless a session that
/// outlived the uninstall may still write to it).
pub(crate) fn close(quiet: bool) {
    MODE.store(OFF, Ordering::Release);
    let previous = OWNED_FD.swap(-1, Ordering::AcqRel);
    if previous >= 0 && quiet {
        let _ = nix::unistd::close(previous);
    }
}

/// The log file manhole opened, if any.
pub(crate) fn owned_fd() -> Option<RawFd> {
    let fd = OWNED_FD.load(Ordering::Acquire);
    (fd >= 0).then_some(fd)
}

/// Whether log lines are written anywhere.
pub(crate) fn enabled() -> bool {
    MODE.load(Ordering::Acquire) != OFF
}

/// Writes one log line. Use the `mlog!` macro.
pub(crate) fn write(args: fmt::Arguments<'_>) {
    match MODE.load(Ordering::Acquire) {
        TO_FD => {
            let line = format_line(std::process::id(), SystemTime::now(), args);
            let _ = sys::write_all_fd(FD.load(Ordering::Acquire), line.as_bytes());
        }
        TO_LOG => log::info!(target: "manhole", "{args}"),
        _ => {}
    }
}

fn format_line(pid: u32, now: SystemTime, args: fmt::Arguments<'_>) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ten_thousandths = since_epoch.subsec_micros() / 100;
    format!(
        "Manhole[{pid}:{}.{ten_thousandths:04}]: {args}\n",
        since_epoch.as_secs()
    )
}

/// Logs one line to the verbose destination, if verbose logging is on.
macro_rules! mlog {
    ($($arg:tt)*) => {
        if $crate::logging::enabled() {
            $crate::logging::write(::core::format_args!($($arg)*));
        }
    };
}
pub(crate) use mlog;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn line_format_matches_the_original() {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let line = format_line(42, at, format_args!("Manhole UDS path: {}", "/tmp/manhole-42"));
        assert_eq!(
            line,
            "Manhole[42:1700000000.1234]: Manhole UDS path: /tmp/manhole-42\n"
        );
    }

    #[test]
    fn small_fractions_keep_four_digits() {
        let at = UNIX_EPOCH + Duration::from_micros(5_000_700);
        assert_eq!(format_line(1, at, format_args!("x")), "Manhole[1:5.0007]: x\n");
    }
}
