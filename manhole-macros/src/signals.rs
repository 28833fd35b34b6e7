//! Signal names as `#[manhole::main]` accepts them, checked at compile time against the lists
//! of `manhole-spec`, which the runtime checks them against again with its target's numbers.
//!
//! A number is only checked for range: which signal a number is differs between targets (10 is
//! `SIGUSR1` on Linux and `SIGBUS` on macOS), and a proc macro runs on the host, not the target.
//! The runtime refuses a number that names an unusable signal when it installs.

use manhole_spec::{SIGNAL_NAMES, SYNCHRONOUS_FAULTS, UNCATCHABLE};

/// The canonical `SIGNAME` of a name, or why it is not a usable signal.
pub(crate) fn check_name(text: &str) -> Result<String, String> {
    let bare = manhole_spec::bare_name(text);
    if !is_known(&bare) {
        return Err(format!(
            "unknown signal {text:?}; expected a name with or without SIG ({}, RTMIN+N, RTMAX-N) or a number",
            SIGNAL_NAMES.join(", ")
        ));
    }
    if UNCATCHABLE.contains(&bare.as_str()) || SYNCHRONOUS_FAULTS.contains(&bare.as_str()) {
        return Err(format!(
            "SIG{bare} cannot be used: it cannot be caught or is raised by faults; use USR1, USR2 or RTMIN+N"
        ));
    }
    Ok(format!("SIG{bare}"))
}

/// Whether `bare` (upper case, without `SIG`) names a signal: one of the table, or a real-time
/// offset of at most two digits (no target has a wider real-time range).
pub(crate) fn is_known(bare: &str) -> bool {
    SIGNAL_NAMES.contains(&bare) || manhole_spec::parse_realtime(bare).is_some_and(|(_, offset)| offset < 100)
}

/// Numbers that are the same unusable signal on every Unix target: SIGILL, SIGTRAP, SIGFPE,
/// SIGKILL, SIGSEGV (raised by faults, or uncatchable).
const UNUSABLE_EVERYWHERE: [(u64, &str); 5] =
    [(4, "ILL"), (5, "TRAP"), (8, "FPE"), (9, "KILL"), (11, "SEGV")];

/// The name of a number that is the same signal on every Unix target (the historical numbers
/// POSIX systems share), without `SIG`.
pub(crate) fn same_everywhere(number: u64) -> Option<&'static str> {
    let shared = [(1, "HUP"), (2, "INT"), (3, "QUIT"), (15, "TERM")];
    shared
        .iter()
        .chain(&UNUSABLE_EVERYWHERE)
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

/// Whether a signal number is plausible on some target (1 to 64) and not one that is unusable
/// on every target.
pub(crate) fn check_number(number: u64) -> Result<(), String> {
    if let Some((_, name)) = UNUSABLE_EVERYWHERE.iter().find(|(n, _)| *n == number) {
        return Err(format!(
            "signal {number} is SIG{name} on every target and cannot be used: it cannot be caught or is raised by faults; use USR1, USR2 or RTMIN+N"
        ));
    }
    match number {
        1..=64 => Ok(()),
        _ => Err(format!(
            "no signal has number {number}; signals are numbered 1 to 64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name("usr1").unwrap(), "SIGUSR1");
        assert_eq!(check_name(" SigUsr2 ").unwrap(), "SIGUSR2");
        assert_eq!(check_name("SIGRTMIN+3").unwrap(), "SIGRTMIN+3");
        assert_eq!(check_name("rtmax").unwrap(), "SIGRTMAX");
        let err = check_name("USR3").unwrap_err();
        assert!(err.contains("USR1") && err.contains("RTMIN+N"), "{err}");
        for bad in ["SIG", "", "RTMIN+100", "RTMAX+1", "RTFOO"] {
            assert!(
                check_name(bad).unwrap_err().starts_with("unknown signal"),
                "{bad:?}"
            );
        }
        for unusable in ["KILL", "STOP", "SEGV", "BUS", "ILL", "FPE", "TRAP", "SYS"] {
            assert!(
                check_name(unusable).unwrap_err().contains("cannot be used"),
                "{unusable}"
            );
        }
    }

    #[test]
    fn numbers() {
        assert!(check_number(1).is_ok() && check_number(10).is_ok() && check_number(64).is_ok());
        assert!(check_number(0).is_err() && check_number(65).is_err());
        assert_eq!(same_everywhere(15), Some("TERM"));
        assert_eq!(same_everywhere(10), None, "USR1 on Linux, BUS on macOS");
        for unusable in [4, 5, 8, 9, 11] {
            assert!(
                check_number(unusable).unwrap_err().contains("on every target"),
                "{unusable}"
            );
        }
    }
}
