//! Implementation detail of the `manhole` crate: what its macros (`manhole-macros`, run on the
//! host at compile time) and its runtime (`manhole`, on the target) both spell, written once.
//!
//! - [`Key`]: the option keys of `#[manhole::main(…)]` and of the `MANHOLE` variable;
//! - [`parse_duration`]: the duration grammar (`"500ms"`, `"30s"`, `"5m"`, `"1h"`);
//! - [`parse_sigmask`]: the `sigmask` syntax (`"all"`, `"none"`, `"TERM|INT"`);
//! - signal names and the lists that say which signals may play which role ([`SIGNAL_NAMES`],
//!   [`UNCATCHABLE`], [`SYNCHRONOUS_FAULTS`], [`SHUTDOWN_SIGNALS`], [`DEFAULT_DEATHS`]) and the
//!   real-time name grammar ([`parse_realtime`]).
//!
//! Signals are named here, never numbered: numbers differ between targets, and a proc macro runs
//! on the host. The runtime maps names to its target's numbers.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// An option key, in the order of the documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `socket_path`: where to listen.
    SocketPath,
    /// `activate_on`: listen only after this signal.
    ActivateOn,
    /// `oneshot_on`: one session per signal.
    OneshotOn,
    /// `thread`: `false` is manual mode.
    Thread,
    /// `patch_fork`: reinstall in forked children.
    PatchFork,
    /// `reinstall_delay`: how long a forked child waits.
    ReinstallDelay,
    /// `strict`: a second install fails.
    Strict,
    /// `verbose`: log what manhole does.
    Verbose,
    /// `verbose_destination`: where the log goes.
    VerboseDestination,
    /// `sigmask`: what manhole's threads block.
    Sigmask,
    /// `daemon_connection`: exit without waiting for sessions.
    DaemonConnection,
    /// `redirect_stderr`: show fd 2 in sessions.
    RedirectStderr,
    /// `max_sessions`: sessions open at once.
    MaxSessions,
    /// `idle_timeout`: how long a session may stay silent.
    IdleTimeout,
    /// `oneshot_timeout`: how long a one-shot socket waits.
    OneshotTimeout,
    /// `stack_signal`: the signal that records each thread's stack.
    StackSignal,
}

impl Key {
    /// Every key, in the order of the documentation.
    pub const ALL: [Key; 16] = [
        Key::SocketPath,
        Key::ActivateOn,
        Key::OneshotOn,
        Key::Thread,
        Key::PatchFork,
        Key::ReinstallDelay,
        Key::Strict,
        Key::Verbose,
        Key::VerboseDestination,
        Key::Sigmask,
        Key::DaemonConnection,
        Key::RedirectStderr,
        Key::MaxSessions,
        Key::IdleTimeout,
        Key::OneshotTimeout,
        Key::StackSignal,
    ];

    /// The key as users write it (`socket_path`).
    pub const fn name(self) -> &'static str {
        match self {
            Key::SocketPath => "socket_path",
            Key::ActivateOn => "activate_on",
            Key::OneshotOn => "oneshot_on",
            Key::Thread => "thread",
            Key::PatchFork => "patch_fork",
            Key::ReinstallDelay => "reinstall_delay",
            Key::Strict => "strict",
            Key::Verbose => "verbose",
            Key::VerboseDestination => "verbose_destination",
            Key::Sigmask => "sigmask",
            Key::DaemonConnection => "daemon_connection",
            Key::RedirectStderr => "redirect_stderr",
            Key::MaxSessions => "max_sessions",
            Key::IdleTimeout => "idle_timeout",
            Key::OneshotTimeout => "oneshot_timeout",
            Key::StackSignal => "stack_signal",
        }
    }

    /// The key written `name`, exactly (keys are lower case).
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every key's name, in the order of the documentation.
pub const KEYS: [&str; Key::ALL.len()] = {
    let mut names = [""; Key::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Key::ALL[i].name();
        i += 1;
    }
    names
};

/// Why a text is not a duration; shows as `"soon" is not a duration like 500ms, 30s, 5m or 1h`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    text: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a duration like 500ms, 30s, 5m or 1h", self.text)
    }
}

impl std::error::Error for DurationError {}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`: a whole number and a unit, nothing around them. A
/// number too large for a [`Duration`] is refused, not rounded.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        text: text.to_owned(),
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| error())?;
    let seconds = |factor: u64| amount.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(amount)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => None,
    }
    .ok_or_else(error)
}

/// The `sigmask` option as written, before its signal names are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mask<'a> {
    /// `"all"`: every signal but the faults.
    All,
    /// `"none"`: no signal.
    None,
    /// These signals, as written (names or numbers); empty for a blank text.
    Only(Vec<&'a str>),
}

/// `"all"`, `"none"`, or signals separated by `|` or spaces (`"TERM|INT"`).
pub fn parse_sigmask(text: &str) -> Mask<'_> {
    match text.trim() {
        "all" => Mask::All,
        "none" => Mask::None,
        list => Mask::Only(list.split(['|', ' ']).filter(|s| !s.is_empty()).collect()),
    }
}

/// Signal names without the `SIG` prefix, in the order of their Linux numbers. The ones in
/// [`LINUX_ONLY_SIGNALS`] do not exist on other targets.
pub const SIGNAL_NAMES: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
    "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
    "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// Names of [`SIGNAL_NAMES`] that only Linux (and Android) have.
pub const LINUX_ONLY_SIGNALS: &[&str] = &["STKFLT", "PWR"];

/// Signals no handler can be installed for.
pub const UNCATCHABLE: &[&str] = &["KILL", "STOP"];

/// Signals the kernel raises for a fault of the thread itself: never blocked, never borrowed.
pub const SYNCHRONOUS_FAULTS: &[&str] = &["SEGV", "BUS", "ILL", "FPE", "TRAP", "SYS"];

/// Signals that ask a process to end: they must keep doing so, so `activate_on` and
/// `oneshot_on` refuse them.
pub const SHUTDOWN_SIGNALS: &[&str] = &["TERM", "INT", "HUP", "QUIT"];

/// Signals whose default action ends the process and that are not faults: while one still has
/// its default disposition, manhole removes its socket when the signal kills the process.
pub const DEFAULT_DEATHS: &[&str] = &[
    "TERM", "INT", "HUP", "QUIT", "ABRT", "USR1", "USR2", "ALRM", "VTALRM", "PROF", "XCPU", "XFSZ", "PIPE",
    "IO", "PWR", "STKFLT", "SYS", "TRAP",
];

/// `usr1`, ` SIGUSR1 `, `SigUsr1` → `USR1`: trimmed, upper case, without `SIG`.
pub fn bare_name(text: &str) -> String {
    let upper = text.trim().to_ascii_uppercase();
    match upper.strip_prefix("SIG") {
        Some(bare) => bare.to_owned(),
        None => upper,
    }
}

/// The end of the real-time range a real-time signal name counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealtimeBase {
    /// `RTMIN+N`: N above the lowest.
    Min,
    /// `RTMAX-N`: N below the highest.
    Max,
}

/// A real-time signal name (`RTMIN`, `RTMIN+3`, `RTMAX`, `RTMAX-1`, without `SIG`, upper case)
/// as its base and offset; `None` for anything else. Whether the offset stays within the range
/// is the target's to say.
pub fn parse_realtime(bare: &str) -> Option<(RealtimeBase, u32)> {
    for (prefix, sign, base) in [
        ("RTMIN", '+', RealtimeBase::Min),
        ("RTMAX", '-', RealtimeBase::Max),
    ] {
        if let Some(rest) = bare.strip_prefix(prefix) {
            if rest.is_empty() {
                return Some((base, 0));
            }
            let digits = rest.strip_prefix(sign)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return digits.parse().ok().map(|offset| (base, offset));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_unique() {
        for key in Key::ALL {
            assert_eq!(Key::from_name(key.name()), Some(key));
        }
        assert_eq!(KEYS[0], "socket_path");
        assert_eq!(KEYS.len(), Key::ALL.len());
        for (i, name) in KEYS.iter().enumerate() {
            assert!(!KEYS[..i].contains(name), "{name} twice");
        }
        assert_eq!(Key::from_name("local"), None);
        assert_eq!(Key::from_name("Verbose"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "3d",
            " 5s",
            "5s ",
            "-1s",
            "5 s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration(&format!("{}h", u64::MAX / 3600 + 1)).is_err());
        assert_eq!(
            parse_duration("soon").unwrap_err().to_string(),
            "\"soon\" is not a duration like 500ms, 30s, 5m or 1h"
        );
    }

    #[test]
    fn sigmasks() {
        assert_eq!(parse_sigmask(" all "), Mask::All);
        assert_eq!(parse_sigmask("none"), Mask::None);
        assert_eq!(
            parse_sigmask("TERM|INT usr1"),
            Mask::Only(vec!["TERM", "INT", "usr1"])
        );
        assert_eq!(parse_sigmask("  "), Mask::Only(vec![]));
        assert_eq!(parse_sigmask("|"), Mask::Only(vec![]));
    }

    #[test]
    fn names_and_lists() {
        assert_eq!(bare_name(" sigUsr1 "), "USR1");
        assert_eq!(bare_name("TERM"), "TERM");
        let lists = [
            LINUX_ONLY_SIGNALS,
            UNCATCHABLE,
            SYNCHRONOUS_FAULTS,
            SHUTDOWN_SIGNALS,
            DEFAULT_DEATHS,
        ];
        for name in lists.into_iter().flatten() {
            assert!(SIGNAL_NAMES.contains(name), "{name} is not a signal name");
        }
        for name in SHUTDOWN_SIGNALS {
            assert!(
                DEFAULT_DEATHS.contains(name),
                "{name} must end the process by default"
            );
        }
        for name in UNCATCHABLE {
            assert!(!DEFAULT_DEATHS.contains(name), "{name} cannot be caught");
        }
    }

    #[test]
    fn realtime_names() {
        assert_eq!(parse_realtime("RTMIN"), Some((RealtimeBase::Min, 0)));
        assert_eq!(parse_realtime("RTMIN+3"), Some((RealtimeBase::Min, 3)));
        assert_eq!(parse_realtime("RTMAX-12"), Some((RealtimeBase::Max, 12)));
        assert_eq!(parse_realtime("RTMIN+007"), Some((RealtimeBase::Min, 7)));
        for bad in [
            "RTMIN+",
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+x",
            "RTMIN+99999999999",
            "RT",
            "USR1",
        ] {
            assert_eq!(parse_realtime(bad), None, "{bad}");
        }
    }
}
