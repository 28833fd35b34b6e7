//! [`Options`]: everything [`install`](crate::install) can be told, as a builder.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::logging::VerboseDestination;
use crate::registry::Local;
use crate::signal::{Signal, SignalSpec};
use crate::sys::SignalSet;

/// How manhole is installed. Start from [`Options::new`] (the same as `Default`) and chain.
///
/// ```
/// use std::time::Duration;
///
/// let options = manhole::Options::new()
///     .socket_path("/tmp/my-service.manhole")
///     .verbose(false)
///     .max_sessions(8)
///     .idle_timeout(Duration::from_secs(600));
/// # let _ = options;
/// ```
///
/// Every option is checked by [`install`](crate::install), before anything is installed: a
/// builder call never fails and never panics.
#[derive(Clone)]
pub struct Options {
    pub(crate) socket_path: Option<PathBuf>,
    pub(crate) activate_on: Option<SignalSpec>,
    pub(crate) oneshot_on: Option<SignalSpec>,
    pub(crate) thread: bool,
    pub(crate) patch_fork: bool,
    pub(crate) reinstall_delay: Duration,
    pub(crate) strict: bool,
    pub(crate) verbose: bool,
    pub(crate) verbose_destination: VerboseDestination,
    pub(crate) sigmask: SigMask,
    pub(crate) daemon_connection: bool,
    pub(crate) redirect_stderr: bool,
    pub(crate) locals: Vec<Local>,
    pub(crate) max_sessions: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) stack_signal: Option<SignalSpec>,
    pub(crate) oneshot_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket_path: None,
            activate_on: None,
            oneshot_on: None,
            thread: true,
            patch_fork: true,
            reinstall_delay: Duration::from_millis(500),
            strict: true,
            verbose: true,
            verbose_destination: VerboseDestination::Stderr,
            sigmask: SigMask::all(),
            daemon_connection: false,
            redirect_stderr: false,
            locals: Vec::new(),
            max_sessions: 32,
            idle_timeout: Duration::from_secs(3600),
            stack_signal: None,
            oneshot_timeout: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// The defaults: always on, listening at `/tmp/manhole-<pid>`, strict, verbose to fd 2.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen at this path instead of `/tmp/manhole-<pid>`.
    ///
    /// Use a directory only your service's user can enter (`/run/<app>/`) when the host shares
    /// `/tmp` with untrusted users. An existing socket at the path is replaced only when it
    /// belongs to this user and nothing listens on it any more; anything else makes `install`
    /// fail with [`Error::SocketPathInUse`].
    pub fn socket_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket_path = Some(path.into());
        self
    }

    /// Listen only after this signal arrives (`"USR1"`, `"SIGUSR1"`, `10` or a [`Signal`]).
    ///
    /// Until then there is no socket and no listener; a dormant thread sleeps until the
    /// signal. The signal is registered with `signal-hook`, so a handler the application had
    /// for it still runs; the same signal again is harmless.
    pub fn activate_on(mut self, signal: impl Into<SignalSpec>) -> Self {
        self.activate_on = Some(signal.into());
        self
    }

    /// Serve exactly one session each time this signal arrives, then remove the socket.
    ///
    /// On the signal the socket is created; the first client within
    /// [`oneshot_timeout`](Options::oneshot_timeout) (30 s by default) is served, and the socket
    /// is removed as soon as it is in (or when the time is up). The application's threads never
    /// wait: a dormant manhole thread does all of it. Combine with
    /// [`Handle::handle_oneshot`](crate::Handle::handle_oneshot) to trigger it from code too.
    pub fn oneshot_on(mut self, signal: impl Into<SignalSpec>) -> Self {
        self.oneshot_on = Some(signal.into());
        self
    }

    /// Whether manhole listens on its own (the default). `false` is manual mode: nothing
    /// listens until [`Handle::handle_oneshot`](crate::Handle::handle_oneshot) asks for one
    /// session (as with `oneshot_on`). It cannot be combined with `activate_on`.
    pub fn thread(mut self, thread: bool) -> Self {
        self.thread = thread;
        self
    }

    /// Give a child created by `fork` (without `exec`) its own manhole at
    /// `/tmp/manhole-<childpid>` after [`reinstall_delay`](Options::reinstall_delay). On by
    /// default; it does nothing with `socket_path` (a child cannot share the path),
    /// `activate_on` or `oneshot_on`.
    ///
    /// Whatever this option says, a forked child closes its copies of manhole's descriptors
    /// (so a parent's session still ends when it should) and never removes its parent's socket.
    pub fn patch_fork(mut self, patch_fork: bool) -> Self {
        self.patch_fork = patch_fork;
        self
    }

    /// How long a forked child waits before it creates its manhole, so that `fork` + `exec`
    /// children never create one (default 500 ms). Only meaningful with `patch_fork`.
    pub fn reinstall_delay(mut self, delay: Duration) -> Self {
        self.reinstall_delay = delay;
        self
    }

    /// With `true` (the default) a second `install` fails with [`Error::AlreadyInstalled`];
    /// with `false` it stops the running manhole (its thread, sessions, socket) and replaces it.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Log what manhole does (`Manhole[<pid>:<time>]: <message>` lines). On by default.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Where the verbose log goes: fd 2 by default, any fd, a file, or the `log` crate.
    ///
    /// Log lines are written with raw write(2), never through a lock a fork could leave held; a
    /// closed destination loses the line and never makes `install` fail.
    pub fn verbose_destination(mut self, destination: impl Into<VerboseDestination>) -> Self {
        self.verbose_destination = destination.into();
        self
    }

    /// Which signals manhole's own threads block (by default [`SigMask::all`]).
    ///
    /// A thread that blocks a signal never receives it, so an application that waits for
    /// signals with signalfd or sigwait keeps every one of them.
    pub fn sigmask(mut self, mask: SigMask) -> Self {
        self.sigmask = mask;
        self
    }

    /// With `false` (the default), when the program exits normally while sessions are open,
    /// those sessions are told and the exit waits until they end; with `true` they are cut off.
    pub fn daemon_connection(mut self, daemon: bool) -> Self {
        self.daemon_connection = daemon;
        self
    }

    /// While a session is open, also show what the process writes to fd 2 in the sessions
    /// (it still reaches the original stderr). Off by default.
    ///
    /// fd 2 is swapped for a pipe that a manhole thread empties at once, so the program never
    /// waits for a client: a client that does not read misses output. The original fd 2 is
    /// put back when the last session ends, and at once in a forked child.
    pub fn redirect_stderr(mut self, redirect: bool) -> Self {
        self.redirect_stderr = redirect;
        self
    }

    /// Make a value of the running program visible in the console under `name`: `vars` lists
    /// it and `print NAME` shows it with `Debug`, like an exposed static (it cannot be `set`).
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    ///
    /// let sessions = Arc::new(Mutex::new(vec!["alice", "bob"]));
    /// manhole::install(manhole::Options::new().local("sessions", sessions.clone()))?;
    /// # Ok::<(), manhole::Error>(())
    /// ```
    pub fn local<T>(mut self, name: impl Into<String>, value: Arc<T>) -> Self
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        self.locals.push(Local {
            name: name.into(),
            type_name: std::any::type_name::<T>(),
            value: std::panic::AssertUnwindSafe(value),
        });
        self
    }

    /// How many sessions may be open at once (default 32). One more gets a one-line refusal.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// How long a session may stay silent before it is closed (default one hour).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a one-shot socket waits for its client before it is removed (default 30 s).
    pub fn oneshot_timeout(mut self, timeout: Duration) -> Self {
        self.oneshot_timeout = timeout;
        self
    }

    /// The signal each thread is sent so that it records its own stack (by default the highest
    /// real-time signal that nothing in the process handles yet).
    ///
    /// Choose another one if the application starts using real-time signals after `install`.
    /// The signal must be free when manhole is installed; it stays manhole's for the life of
    /// the process.
    pub fn stack_signal(mut self, signal: impl Into<SignalSpec>) -> Self {
        self.stack_signal = Some(signal.into());
        self
    }

    /// Applies the `MANHOLE` environment variable's text (DESIGN.md §8): `0`, `off` or
    /// `false` mean "do not install" (`Ok(None)`); otherwise a comma-separated list of
    /// `key=value` with the keys of `#[manhole::main]` overrides these options. Parsed strictly:
    /// an unknown key or a bad value is an error, never guessed at.
    pub(crate) fn with_overrides(mut self, text: &str) -> Result<Option<Options>, Error> {
        let text = text.trim();
        if ["0", "off", "false", "no"]
            .iter()
            .any(|off| text.eq_ignore_ascii_case(off))
        {
            return Ok(None);
        }
        if text.is_empty()
            || ["1", "on", "true", "yes"]
                .iter()
                .any(|on| text.eq_ignore_ascii_case(on))
        {
            return Ok(Some(self));
        }
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(bad_env(pair, "expected key=value"));
            };
            let (key, value) = (key.trim(), value.trim());
            let flag = || parse_bool(value).ok_or_else(|| bad_env(pair, "expected true or false"));
            let number = || {
                value
                    .parse::<usize>()
                    .map_err(|_| bad_env(pair, "expected a whole number"))
            };
            let duration = || parse_duration(value).map_err(|e| bad_env(pair, &e));
            self = match key {
                "socket_path" => self.socket_path(value),
                "activate_on" => self.activate_on(value),
                "oneshot_on" => self.oneshot_on(value),
                "stack_signal" => self.stack_signal(value),
                "thread" => self.thread(flag()?),
                "patch_fork" => self.patch_fork(flag()?),
                "strict" => self.strict(flag()?),
                "verbose" => self.verbose(flag()?),
                "daemon_connection" => self.daemon_connection(flag()?),
                "redirect_stderr" => self.redirect_stderr(flag()?),
                "max_sessions" => self.max_sessions(number()?),
                "reinstall_delay" => self.reinstall_delay(duration()?),
                "idle_timeout" => self.idle_timeout(duration()?),
                "oneshot_timeout" => self.oneshot_timeout(duration()?),
                "verbose_destination" => self.verbose_destination(parse_destination(value)),
                "sigmask" => self.sigmask(SigMask::parse(value)),
                _ => {
                    return Err(bad_env(
                        pair,
                        &format!("unknown key; expected one of: {}", KEYS.join(", ")),
                    ));
                }
            };
        }
        Ok(Some(self))
    }

    /// Checks every option and resolves signals, so nothing is installed on a bad configuration.
    pub(crate) fn validate(&self) -> Result<Validated, Error> {
        let activate_on = self.activate_on.as_ref().map(SignalSpec::resolve).transpose()?;
        let oneshot_on = self.oneshot_on.as_ref().map(SignalSpec::resolve).transpose()?;
        if let (Some(a), Some(o)) = (activate_on, oneshot_on)
            && a == o
        {
            return Err(Error::ConfigurationConflict {
                message: format!(
                    "activate_on and oneshot_on are both {a}; one signal cannot both start the \
                     listener and serve a single session"
                ),
            });
        }
        for signal in [activate_on, oneshot_on].into_iter().flatten() {
            if signal.is_one_of(manhole_spec::SHUTDOWN_SIGNALS) {
                return Err(Error::InvalidSignal {
                    value: signal.name(),
                    reason: "it must keep ending the process; use USR1, USR2 or a real-time signal"
                        .to_owned(),
                });
            }
            if !signal.is_catchable() || signal.is_synchronous_fault() {
                return Err(Error::InvalidSignal {
                    value: signal.name(),
                    reason: "it cannot be caught or is raised by faults; use USR1, USR2 or a \
                             real-time signal"
                        .to_owned(),
                });
            }
        }
        let stack_signal = self.stack_signal.as_ref().map(SignalSpec::resolve).transpose()?;
        if let Some(signal) = stack_signal {
            if !signal.is_catchable() || signal.is_synchronous_fault() {
                return Err(Error::InvalidSignal {
                    value: signal.name(),
                    reason: "it cannot be caught or is raised by faults; use a real-time signal".to_owned(),
                });
            }
            if [activate_on, oneshot_on].contains(&Some(signal)) {
                return Err(Error::ConfigurationConflict {
                    message: format!("stack_signal {signal} is also used to activate manhole"),
                });
            }
        }
        let sigmask = self.sigmask.resolve()?;
        let mode = match (activate_on, oneshot_on, self.thread) {
            (Some(_), Some(_), _) => {
                return Err(Error::ConfigurationConflict {
                    message: "activate_on and oneshot_on cannot be combined: one listens for good once \
                              activated, the other serves one session per signal"
                        .to_owned(),
                });
            }
            (Some(_), None, false) => {
                return Err(Error::ConfigurationConflict {
                    message: "thread(false) is manual mode (handle_oneshot); it cannot wait for activate_on"
                        .to_owned(),
                });
            }
            (Some(signal), None, true) => Mode::ActivateOn(signal),
            (None, Some(signal), _) => Mode::Oneshot(signal),
            (None, None, false) => Mode::Manual,
            (None, None, true) => Mode::Always,
        };
        if self.oneshot_timeout.is_zero() {
            return Err(Error::ConfigurationConflict {
                message: "oneshot_timeout is 0, so no client could ever connect".to_owned(),
            });
        }
        for (i, local) in self.locals.iter().enumerate() {
            if local.name.is_empty() || local.name.chars().any(char::is_whitespace) {
                return Err(Error::ConfigurationConflict {
                    message: format!("local name {:?} must be a non-empty word", local.name),
                });
            }
            if self.locals[..i].iter().any(|other| other.name == local.name) {
                return Err(Error::ConfigurationConflict {
                    message: format!("two locals are named {:?}", local.name),
                });
            }
        }
        if self.max_sessions == 0 {
            return Err(Error::ConfigurationConflict {
                message: "max_sessions is 0, so no one could ever connect".to_owned(),
            });
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::ConfigurationConflict {
                message: "idle_timeout is 0, so every session would close at once".to_owned(),
            });
        }
        Ok(Validated {
            sigmask,
            stack_signal,
            mode,
        })
    }
}

/// The option keys of `#[manhole::main]` and of the `MANHOLE` environment variable.
pub(crate) const KEYS: &[&str] = &manhole_spec::KEYS;

fn bad_env(pair: &str, why: &str) -> Error {
    Error::ConfigurationConflict {
        message: format!("MANHOLE entry {pair:?}: {why}"),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`: a whole number and a unit (the grammar of
/// `#[manhole::main]` too, from `manhole_spec`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    manhole_spec::parse_duration(text).map_err(|e| e.to_string())
}

/// `"stderr"`, `"log"`, a file descriptor number, or a file path.
pub(crate) fn parse_destination(text: &str) -> VerboseDestination {
    match text {
        "stderr" => VerboseDestination::Stderr,
        "log" => VerboseDestination::Log,
        _ => match text.parse::<i32>() {
            Ok(fd) => VerboseDestination::Fd(fd),
            Err(_) => VerboseDestination::File(text.into()),
        },
    }
}

/// When the manhole listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From install on.
    Always,
    /// From the first time this signal arrives on.
    ActivateOn(Signal),
    /// One session each time the signal arrives or `handle_oneshot` is called.
    Oneshot(Signal),
    /// One session each time `handle_oneshot` is called (`thread(false)`): no signal.
    Manual,
}

/// What [`Options::validate`] derived from the options.
#[derive(Debug)]
pub(crate) struct Validated {
    /// What manhole's threads block (never the stack signal: they are dumped like any other).
    pub(crate) sigmask: SignalSet,
    pub(crate) stack_signal: Option<Signal>,
    pub(crate) mode: Mode,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locals: Vec<&str> = self.locals.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("Options")
            .field("socket_path", &self.socket_path)
            .field("activate_on", &self.activate_on)
            .field("oneshot_on", &self.oneshot_on)
            .field("thread", &self.thread)
            .field("patch_fork", &self.patch_fork)
            .field("reinstall_delay", &self.reinstall_delay)
            .field("strict", &self.strict)
            .field("verbose", &self.verbose)
            .field("verbose_destination", &self.verbose_destination)
            .field("sigmask", &self.sigmask)
            .field("daemon_connection", &self.daemon_connection)
            .field("redirect_stderr", &self.redirect_stderr)
            .field("locals", &locals)
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .field("stack_signal", &self.stack_signal)
            .field("oneshot_timeout", &self.oneshot_timeout)
            .finish()
    }
}

/// The signals manhole's threads block (see [`Options::sigmask`]).
///
/// Faults the kernel raises on a thread itself (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`,
/// `SIGTRAP`, `SIGSYS`) are never blocked: blocking them would turn a crash report into a
/// silent kill.
///
/// ```
/// use manhole::SigMask;
///
/// SigMask::all();                          // the default
/// SigMask::none();                         // manhole threads accept any signal
/// SigMask::only(["TERM", "INT", "HUP"]);   // just these
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigMask(MaskKind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum MaskKind {
    All,
    Only(Vec<SignalSpec>),
}

impl SigMask {
    /// Every signal but the fault signals: manhole threads never take a signal meant for the app.
    pub fn all() -> SigMask {
        SigMask(MaskKind::All)
    }

    /// No signal is blocked.
    pub fn none() -> SigMask {
        SigMask(MaskKind::Only(Vec::new()))
    }

    /// Exactly these signals (names, numbers or [`Signal`]s; checked at install).
    pub fn only<S: Into<SignalSpec>>(signals: impl IntoIterator<Item = S>) -> SigMask {
        SigMask(MaskKind::Only(signals.into_iter().map(Into::into).collect()))
    }

    /// `"all"`, `"none"`, or signals separated by `|` or spaces (`"TERM|INT"`): the form used
    /// by `#[manhole::main(sigmask = "…")]` and the `MANHOLE` variable.
    pub(crate) fn parse(text: &str) -> SigMask {
        match manhole_spec::parse_sigmask(text) {
            manhole_spec::Mask::All => SigMask::all(),
            manhole_spec::Mask::None => SigMask::none(),
            manhole_spec::Mask::Only(names) => SigMask::only(names.into_iter().map(str::to_owned)),
        }
    }

    fn resolve(&self) -> Result<SignalSet, Error> {
        match &self.0 {
            MaskKind::All => Ok(SignalSet::all_but_faults(None)),
            MaskKind::Only(specs) => {
                let mut set = SignalSet::empty();
                for signal in specs.iter().map(SignalSpec::resolve) {
                    let signal = signal?;
                    if signal.is_catchable() && !signal.is_synchronous_fault() {
                        set.add(signal.as_raw());
                    }
                }
                Ok(set)
            }
        }
    }
}

impl Default for SigMask {
    fn default() -> Self {
        SigMask::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(options: Options, needle: &str) {
        match options.validate() {
            Ok(_) => panic!("{needle}: options were accepted"),
            Err(err) => assert!(err.to_string().contains(needle), "{err}"),
        }
    }

    #[test]
    fn defaults_validate() {
        let validated = Options::new().validate().unwrap();
        assert!(validated.sigmask.contains(libc::SIGTERM));
        assert!(validated.sigmask.contains(libc::SIGUSR1));
        assert!(
            !validated.sigmask.contains(libc::SIGSEGV),
            "faults must stay deliverable"
        );
        assert!(!validated.sigmask.contains(libc::SIGBUS));
    }

    #[test]
    fn same_signal_twice_is_a_conflict_before_anything_else() {
        let err = Options::new()
            .activate_on("USR1")
            .oneshot_on("SIGUSR1")
            .validate()
            .unwrap_err();
        assert!(matches!(err, Error::ConfigurationConflict { .. }), "{err}");
    }

    #[test]
    fn later_features_say_so() {
        rejects(
            Options::new().activate_on("USR1").oneshot_on("USR2"),
            "cannot be combined",
        );
        rejects(
            Options::new().activate_on("USR1").thread(false),
            "thread(false) is manual mode",
        );
        rejects(
            Options::new().oneshot_on("USR2").oneshot_timeout(Duration::ZERO),
            "oneshot_timeout is 0",
        );
        assert_eq!(
            Options::new().activate_on("USR1").validate().unwrap().mode,
            Mode::ActivateOn(Signal::USR1)
        );
        assert_eq!(
            Options::new().oneshot_on(12).validate().unwrap().mode,
            Mode::Oneshot(Signal::USR2)
        );
        assert_eq!(
            Options::new().thread(false).validate().unwrap().mode,
            Mode::Manual
        );
        assert_eq!(Options::new().validate().unwrap().mode, Mode::Always);
        rejects(
            Options::new().local("x", Arc::new(1)).local("x", Arc::new(2)),
            "two locals are named \"x\"",
        );
        rejects(
            Options::new().local("a b", Arc::new(1)),
            "must be a non-empty word",
        );
    }

    #[test]
    fn bad_values_are_named() {
        rejects(Options::new().activate_on("USR9"), "invalid signal \"USR9\"");
        rejects(Options::new().activate_on("KILL"), "cannot be caught");
        rejects(Options::new().oneshot_on("SEGV"), "raised by faults");
        rejects(
            Options::new().activate_on("TERM"),
            "it must keep ending the process",
        );
        rejects(
            Options::new().oneshot_on("HUP"),
            "it must keep ending the process",
        );
        rejects(
            Options::new().sigmask(SigMask::only(["TERM", "BOGUS"])),
            "\"BOGUS\"",
        );
        rejects(Options::new().max_sessions(0), "max_sessions is 0");
        rejects(Options::new().idle_timeout(Duration::ZERO), "idle_timeout is 0");
        rejects(Options::new().stack_signal("SEGV"), "raised by faults");
        rejects(Options::new().stack_signal("nope"), "invalid signal \"nope\"");
    }

    #[test]
    fn the_environment_variable_overrides_strictly() {
        let off = Options::new().with_overrides(" Off ").unwrap();
        assert!(off.is_none());
        let same = Options::new().with_overrides("1").unwrap().unwrap();
        assert!(same.verbose);
        let o = Options::new()
            .with_overrides(
                "socket_path=/tmp/x.sock, verbose=false,max_sessions=4,idle_timeout=90s,sigmask=TERM|INT",
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            o.socket_path.as_deref(),
            Some(std::path::Path::new("/tmp/x.sock"))
        );
        assert!(!o.verbose);
        assert_eq!(o.max_sessions, 4);
        assert_eq!(o.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.sigmask, SigMask::only(["TERM", "INT"]));
        for bad in [
            "verbose",
            "verbose=maybe",
            "max_sessions=-1",
            "idle_timeout=5",
            "colour=blue",
        ] {
            let err = Options::new().with_overrides(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("MANHOLE entry {bad:?}")), "{err}");
        }
        assert!(
            Options::new()
                .with_overrides("colour=blue")
                .unwrap_err()
                .to_string()
                .contains("socket_path")
        );
    }

    #[test]
    fn the_environment_variable_takes_every_key_of_the_macro() {
        for key in manhole_spec::Key::ALL {
            use manhole_spec::Key;
            let value = match key {
                Key::SocketPath | Key::VerboseDestination => "/tmp/x",
                Key::ActivateOn | Key::OneshotOn | Key::StackSignal => "USR1",
                Key::Thread
                | Key::PatchFork
                | Key::Strict
                | Key::Verbose
                | Key::DaemonConnection
                | Key::RedirectStderr => "true",
                Key::MaxSessions => "3",
                Key::ReinstallDelay | Key::IdleTimeout | Key::OneshotTimeout => "2s",
                Key::Sigmask => "TERM|INT",
            };
            let entry = format!("{key}={value}");
            if let Err(e) = Options::new().with_overrides(&entry) {
                panic!("{entry}: {e}");
            }
        }
    }

    #[test]
    fn sigmask_text() {
        assert_eq!(SigMask::parse(" all "), SigMask::all());
        assert_eq!(SigMask::parse("none"), SigMask::none());
        assert_eq!(SigMask::parse(""), SigMask::none());
        assert_eq!(
            SigMask::parse("TERM INT|sigusr1"),
            SigMask::only(["TERM", "INT", "sigusr1"])
        );
    }

    #[test]
    fn durations_and_destinations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(
            parse_duration("1.5s").is_err() && parse_duration("s").is_err() && parse_duration("3d").is_err()
        );
        assert_eq!(
            parse_duration("soon"),
            Err("\"soon\" is not a duration like 500ms, 30s, 5m or 1h".to_owned())
        );
        assert_eq!(parse_destination("3"), VerboseDestination::Fd(3));
        assert_eq!(parse_destination("log"), VerboseDestination::Log);
        assert_eq!(
            parse_destination("/var/log/m.log"),
            VerboseDestination::File("/var/log/m.log".into())
        );
    }

    #[test]
    fn explicit_masks() {
        let only = Options::new()
            .sigmask(SigMask::only(["TERM", "SEGV"]))
            .validate()
            .unwrap();
        assert!(only.sigmask.contains(libc::SIGTERM));
        assert!(!only.sigmask.contains(libc::SIGINT));
        assert!(!only.sigmask.contains(libc::SIGSEGV), "faults are never blocked");
        let none = Options::new().sigmask(SigMask::none()).validate().unwrap();
        assert!(!none.sigmask.contains(libc::SIGTERM));
    }
}
