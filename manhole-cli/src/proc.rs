//! What the client reads about a target process from `/proc`: its identity (start time,
//! effective uid), to know it is still the process asked for, and its signal dispositions,
//! to know whether a signal would kill it.

use std::io;

/// The process's start time in clock ticks after boot (`/proc/PID/stat`, field 22): with the
/// pid, it names one process; a pid reused by a later process has a later start time.
pub(crate) fn start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    // The name (field 2) is in parentheses and may hold anything, ")" and spaces included:
    // the fields after it start after the last ")".
    let after = stat
        .iter()
        .rposition(|b| *b == b')')
        .map(|at| &stat[at + 1..])
        .ok_or_else(|| malformed("stat"))?;
    let text = std::str::from_utf8(after).map_err(|_| malformed("stat"))?;
    // `after` starts with field 3 (state); the start time is field 22.
    text.split_whitespace()
        .nth(22 - 3)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| malformed("stat"))
}

/// A line of `/proc/PID/status`, without its `Name:` and surrounding blanks.
fn status_field(pid: i32, name: &str) -> io::Result<String> {
    let status = std::fs::read(format!("/proc/{pid}/status"))?;
    // Read as bytes: the Name line may not be UTF-8; the fields asked for are.
    status
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(name.as_bytes())?.strip_prefix(b":"))
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(|value| value.trim().to_owned())
        .ok_or_else(|| malformed("status"))
}

/// The process's effective uid (the second of the four on the `Uid:` line).
pub(crate) fn euid(pid: i32) -> io::Result<u32> {
    status_field(pid, "Uid")?
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| malformed("status"))
}

/// What the process does with a signal sent to it, as far as `/proc` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// A handler of its own runs (`SigCgt`).
    Caught,
    /// It is ignored (`SigIgn`).
    Ignored,
    /// The default action.
    Default,
}

/// What process `pid` does with signal number `signal` (1..=64).
pub(crate) fn disposition(pid: i32, signal: i32) -> io::Result<Disposition> {
    let has = |field: &str| -> io::Result<bool> {
        let mask = u64::from_str_radix(&status_field(pid, field)?, 16).map_err(|_| malformed("status"))?;
        Ok((1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0)
    };
    Ok(if has("SigCgt")? {
        Disposition::Caught
    } else if has("SigIgn")? {
        Disposition::Ignored
    } else {
        Disposition::Default
    })
}

fn malformed(file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected contents of /proc/PID/{file}"),
    )
}

/// The names of the threads of `pid` (their `comm`), as text.
pub(crate) fn thread_names(pid: i32) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(entry) = entry else { continue };
        if let Ok(name) = std::fs::read(entry.path().join("comm")) {
            names.push(String::from_utf8_lossy(name.trim_ascii_end()).into_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let started = start_time(me).expect("stat");
        assert_eq!(
            start_time(me).expect("stat"),
            started,
            "one process, one start time"
        );
        // SAFETY: geteuid has no preconditions.
        assert_eq!(euid(me).expect("status"), unsafe { libc::geteuid() });
        // The test harness leaves SIGKILL to the default and cannot do otherwise.
        assert_eq!(
            disposition(me, libc::SIGKILL).expect("status"),
            Disposition::Default
        );
        assert!(start_time(i32::MAX).is_err(), "no such process");
    }
}
