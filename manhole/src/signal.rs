//! Signal names and numbers, as users write them in options, the `MANHOLE` variable and the client.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A signal of this system, validated.
///
/// Parse one from a name with or without the `SIG` prefix, in any case (`"USR1"`, `"SIGUSR1"`,
/// `"usr1"`), from a real-time offset (`"RTMIN+3"`, `"SIGRTMAX-1"`) or from its number (`"10"`).
///
/// ```
/// use manhole::Signal;
///
/// let usr1: Signal = "SIGUSR1".parse()?;
/// assert_eq!(usr1, "usr1".parse()?);
/// assert_eq!(usr1, Signal::from_raw(libc::SIGUSR1)?);
/// assert_eq!(usr1.to_string(), "SIGUSR1");
/// assert!("USR3".parse::<Signal>().is_err());
/// # Ok::<(), manhole::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

/// Names without the `SIG` prefix, and their numbers on this platform: the names of
/// `manhole_spec::SIGNAL_NAMES` that this target has (a test holds the two together).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

impl Signal {
    /// `SIGUSR1`, the usual choice for `activate_on`.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`, the usual choice for `oneshot_on`.
    pub const USR2: Signal = Signal(libc::SIGUSR2);

    /// The signal with this number.
    ///
    /// # Errors
    /// [`Error::InvalidSignal`] when the number is not a signal of this system.
    pub fn from_raw(number: i32) -> Result<Signal, Error> {
        if (1..=max_signal()).contains(&number) {
            Ok(Signal(number))
        } else {
            Err(invalid(
                number.to_string(),
                format!("no such signal number (1 to {})", max_signal()),
            ))
        }
    }

    /// The signal's number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal's name with its `SIG` prefix, such as `SIGUSR1` or `SIGRTMIN+2`.
    pub fn name(self) -> String {
        if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == self.0) {
            return format!("SIG{name}");
        }
        match realtime_range() {
            Some((min, _)) if self.0 == min => "SIGRTMIN".to_owned(),
            Some((min, max)) if self.0 > min && self.0 <= max => format!("SIGRTMIN+{}", self.0 - min),
            _ => format!("signal {}", self.0),
        }
    }

    /// Whether a handler can be installed for it (false for `SIGKILL` and `SIGSTOP`).
    pub fn is_catchable(self) -> bool {
        !self.is_one_of(manhole_spec::UNCATCHABLE)
    }

    /// Whether the kernel raises it for a fault of the thread itself (`SIGSEGV`, `SIGBUS`,
    /// `SIGILL`, `SIGFPE`, `SIGTRAP`, `SIGSYS`). Such signals must never be blocked or borrowed.
    pub fn is_synchronous_fault(self) -> bool {
        self.is_one_of(manhole_spec::SYNCHRONOUS_FAULTS)
    }

    /// Whether it is one of these signals, named as in `manhole_spec` (without `SIG`).
    pub(crate) fn is_one_of(self, names: &[&str]) -> bool {
        names.iter().any(|name| number_of(name) == Some(self.0))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl FromStr for Signal {
    type Err = Error;

    fn from_str(text: &str) -> Result<Signal, Error> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(text.to_owned(), expected_forms()));
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return match trimmed.parse::<i32>() {
                Ok(number) => Signal::from_raw(number).map_err(|_| {
                    invalid(
                        text.to_owned(),
                        format!("no such signal number (1 to {})", max_signal()),
                    )
                }),
                Err(_) => Err(invalid(text.to_owned(), "number out of range".to_owned())),
            };
        }
        let bare = manhole_spec::bare_name(trimmed);
        if let Some(number) = number_of(&bare) {
            return Ok(Signal(number));
        }
        if let Some(signal) = parse_realtime(&bare) {
            return Ok(signal);
        }
        Err(invalid(text.to_owned(), expected_forms()))
    }
}

/// The number of a signal named as in `manhole_spec` (upper case, without `SIG`) on this
/// target, if it has it.
pub(crate) fn number_of(bare: &str) -> Option<i32> {
    NAMES
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, number)| *number)
}

fn parse_realtime(bare: &str) -> Option<Signal> {
    let (min, max) = realtime_range()?;
    let (base, offset) = manhole_spec::parse_realtime(bare)?;
    let offset = i32::try_from(offset).ok()?;
    let number = match base {
        manhole_spec::RealtimeBase::Min => min.checked_add(offset)?,
        manhole_spec::RealtimeBase::Max => max.checked_sub(offset)?,
    };
    (min..=max).contains(&number).then_some(Signal(number))
}

fn expected_forms() -> String {
    let mut names: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
    if realtime_range().is_some() {
        names.push("RTMIN+N");
        names.push("RTMAX-N");
    }
    format!(
        "expected a name with or without SIG ({}) or a number from 1 to {}",
        names.join(", "),
        max_signal()
    )
}

fn invalid(value: String, reason: String) -> Error {
    Error::InvalidSignal { value, reason }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn realtime_range() -> Option<(i32, i32)> {
    Some((libc::SIGRTMIN(), libc::SIGRTMAX()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn realtime_range() -> Option<(i32, i32)> {
    None
}

fn max_signal() -> i32 {
    match realtime_range() {
        Some((_, max)) => max,
        None => NAMES.iter().map(|(_, n)| *n).max().unwrap_or(31),
    }
}

/// A signal as an option receives it: a [`Signal`], a name, or a number.
///
/// It is checked when the options are installed, so a builder call never fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalSpec {
    /// An already validated signal.
    Signal(Signal),
    /// A name or a number written as text, such as `"USR1"`, `"SIGUSR1"` or `"10"`.
    Text(String),
    /// A signal number.
    Number(i32),
}

impl SignalSpec {
    pub(crate) fn resolve(&self) -> Result<Signal, Error> {
        match self {
            SignalSpec::Signal(signal) => Ok(*signal),
            SignalSpec::Text(text) => text.parse(),
            SignalSpec::Number(number) => Signal::from_raw(*number),
        }
    }
}

impl From<Signal> for SignalSpec {
    fn from(signal: Signal) -> Self {
        SignalSpec::Signal(signal)
    }
}

impl From<&str> for SignalSpec {
    fn from(text: &str) -> Self {
        SignalSpec::Text(text.to_owned())
    }
}

impl From<String> for SignalSpec {
    fn from(text: String) -> Self {
        SignalSpec::Text(text)
    }
}

impl From<i32> for SignalSpec {
    fn from(number: i32) -> Self {
        SignalSpec::Number(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_sig_and_in_any_case() {
        for text in ["USR1", "SIGUSR1", "usr1", "SigUsr1", " USR1 "] {
            assert_eq!(text.parse::<Signal>().unwrap(), Signal::USR1, "{text}");
        }
        assert_eq!("10".parse::<Signal>().unwrap().as_raw(), 10);
        assert_eq!("TERM".parse::<Signal>().unwrap().as_raw(), libc::SIGTERM);
    }

    #[test]
    fn bad_names_list_the_valid_ones() {
        let err = "USR3".parse::<Signal>().unwrap_err().to_string();
        assert!(err.contains("invalid signal \"USR3\""), "{err}");
        assert!(err.contains("USR1") && err.contains("TERM"), "{err}");
        for bad in [
            "",
            "0",
            "-1",
            "99999999999",
            "SIG",
            "RTMIN+",
            "RTMIN+x",
            "RTMAX+1",
            "12341234",
        ] {
            assert!(bad.parse::<Signal>().is_err(), "{bad:?} should be refused");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn realtime_offsets_round_trip() {
        let min = libc::SIGRTMIN();
        let sig: Signal = "SIGRTMIN+2".parse().unwrap();
        assert_eq!(sig.as_raw(), min + 2);
        assert_eq!(sig.name(), "SIGRTMIN+2");
        assert_eq!(sig.name().parse::<Signal>().unwrap(), sig);
        assert_eq!(
            "rtmax-1".parse::<Signal>().unwrap().as_raw(),
            libc::SIGRTMAX() - 1
        );
    }

    #[test]
    fn every_named_signal_round_trips() {
        for (name, number) in NAMES {
            let sig = Signal::from_raw(*number).unwrap();
            assert_eq!(sig.name(), format!("SIG{name}"));
            assert_eq!(sig.name().parse::<Signal>().unwrap(), sig);
        }
    }

    #[test]
    fn the_names_are_the_specs() {
        let here: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
        let spec: Vec<&str> = manhole_spec::SIGNAL_NAMES
            .iter()
            .copied()
            .filter(|name| {
                cfg!(any(target_os = "linux", target_os = "android"))
                    || !manhole_spec::LINUX_ONLY_SIGNALS.contains(name)
            })
            .collect();
        assert_eq!(here, spec);
    }

    #[test]
    fn roles_come_from_the_spec_lists() {
        let kill = Signal::from_raw(libc::SIGKILL).unwrap();
        let stop = Signal::from_raw(libc::SIGSTOP).unwrap();
        assert!(!kill.is_catchable() && !stop.is_catchable());
        assert!(Signal::USR1.is_catchable() && !Signal::USR1.is_synchronous_fault());
        for fault in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            assert!(Signal::from_raw(fault).unwrap().is_synchronous_fault(), "{fault}");
        }
        let term = Signal::from_raw(libc::SIGTERM).unwrap();
        assert!(term.is_one_of(manhole_spec::SHUTDOWN_SIGNALS));
        assert!(!Signal::USR2.is_one_of(manhole_spec::SHUTDOWN_SIGNALS));
    }

    #[test]
    fn specs_resolve_lazily() {
        assert_eq!(SignalSpec::from("USR2").resolve().unwrap(), Signal::USR2);
        assert_eq!(SignalSpec::from(libc::SIGUSR2).resolve().unwrap(), Signal::USR2);
        assert!(SignalSpec::from(0).resolve().is_err());
        assert!(SignalSpec::from("nope").resolve().is_err());
    }
}
