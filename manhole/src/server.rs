//! A running manhole: the listener thread `manhole`, the admission of each client (peer
//! credentials, session limit) and the registry of open sessions, one `manhole-session` thread each.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::activation::{self, Trigger};
use crate::fork::Registered;
use crate::listener::{self, SocketFile};
use crate::logging::mlog;
use crate::options::{Mode, Options, Validated};
use crate::registry::Local;
use crate::stderr_tee::Tee;
use crate::sys::{self, PeerCred, SignalSet};
use crate::{Error, protocol, session};

/// The settings a running manhole keeps from its [`Options`].
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) max_sessions: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) daemon_connection: bool,
}

/// An open session, as `info` and shutdown see it.
#[derive(Debug)]
pub(crate) struct SessionEntry {
    /// A second handle on the client socket, to cut the session off at shutdown.
    stream: Registered<UnixStream>,
    /// The session thread's own descriptor for the client socket.
    fd: RawFd,
    /// Whether the session is in machine mode (then raw stderr must not be mixed in).
    machine: Arc<AtomicBool>,
    pub(crate) peer: PeerCred,
    pub(crate) opened: SystemTime,
    thread: Option<thread::ThreadId>,
}

#[derive(Debug, Default)]
struct Sessions {
    next_id: u64,
    open: BTreeMap<u64, SessionEntry>,
}

/// What `clients` shows of one session.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    pub(crate) id: u64,
    pub(crate) peer: PeerCred,
    pub(crate) opened: SystemTime,
    /// Whether it is the session asking.
    pub(crate) is_current: bool,
}

pub(crate) struct Server {
    pub(crate) config: Config,
    /// Values given to `Options::local`.
    locals: Vec<Local>,
    /// Descriptors manhole holds besides the sessions': the listening socket and the pipes.
    own_fds: Mutex<Vec<RawFd>>,
    /// When it listens, and what makes it listen.
    mode: Mode,
    /// The stderr tee, with `redirect_stderr`.
    tee: Option<Tee>,
    trigger: Option<Arc<Trigger>>,
    /// Where it listens when it listens.
    path: PathBuf,
    pub(crate) started: Instant,
    /// The process that runs this manhole. In a forked child the threads do not exist and the
    /// sockets are shared with the parent, so a child must never act on them.
    owner_pid: u32,
    /// The socket file while one exists.
    socket: Mutex<Option<SocketFile>>,
    /// What could not be cleaned up (a socket that could not be removed), for the last line.
    left_behind: Mutex<Option<String>>,
    /// The last effective uid the socket was re-created for (u32::MAX before any).
    euid_tried: AtomicU32,
    /// Whether the `manhole` thread is in its accept loop (and so reads the wake-up pipe
    /// without stopping).
    listening: AtomicBool,
    sigmask: SignalSet,
    /// The mask of the thread that installed manhole: what the program's code runs with when
    /// the main thread's own cannot be read.
    program_mask: SignalSet,
    sessions: Mutex<Sessions>,
    sessions_changed: Condvar,
    stopping: AtomicBool,
    wake: Mutex<Option<Registered<UnixStream>>>,
    listener_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a manhole lock was held must not take the service down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Set on session threads, so that a session that ends the process does not wait for itself.
    static IN_SESSION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as working for a session: a process exit started from it (an
/// exposed function calling `exit`) does not wait for that session to end.
pub(crate) fn mark_session_thread() {
    IN_SESSION.with(|flag| flag.set(true));
}

/// A panic on a session thread (a `Debug` impl or an exposed function of the program's) is
/// caught and shown to the client who caused it. The program's panic hook, which may print a
/// backtrace to its stderr or page someone, is not told: it is not the program's panic. The
/// manhole log gets one line. Wraps whatever hook is set when manhole is first installed; a
/// hook the program sets later replaces this one, and then it sees those panics too. Built with
/// `panic = "abort"`, no panic is caught, so every one goes to the program's hook as before.
pub(crate) fn keep_session_panics_to_sessions() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    if thread::panicking() {
        return; // set_hook would panic; the next install wraps it
    }
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if cfg!(panic = "unwind") && IN_SESSION.try_with(std::cell::Cell::get).unwrap_or(false) {
                let at = info
                    .location()
                    .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
                mlog!(
                    "Caught a panic in a session{at}: {}",
                    crate::text::panic_message(info.payload())
                );
                return;
            }
            previous(info);
        }));
    });
}

/// Spawns a named manhole thread that blocks `mask` from its first instruction.
/// The listener thread's name, which says what opens it: `manhole` (always on, or
/// `handle_oneshot` only), `manhole-on-N` (`activate_on` signal N), `manhole-1x-N` (`oneshot_on`
/// signal N). `manhole-cli -1/-2/-s` reads it before sending a signal: manhole's own handlers for
/// fatal signals (which remove the socket) make every such signal look caught.
fn listener_name(mode: Mode) -> String {
    match mode {
        Mode::ActivateOn(signal) => format!("manhole-on-{}", signal.as_raw()),
        Mode::Oneshot(signal) => format!("manhole-1x-{}", signal.as_raw()),
        Mode::Always | Mode::Manual => "manhole".to_owned(),
    }
}

fn spawn(name: &str, mask: &SignalSet, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    sys::with_signals_blocked(mask, || thread::Builder::new().name(name.to_owned()).spawn(body))
}

/// How an accept loop waits after accept(2) or poll(2) failed with an error that does not pass
/// by itself (EMFILE, ENFILE, ENOBUFS, ENOMEM…). The client waiting in the backlog keeps the
/// listener readable, so polling it again at once would spin a core: the loop watches only its
/// wake-up pipe for the delay (50 ms, doubling up to 2 s), then tries again. A client that gave
/// up (ECONNABORTED), a spurious wake-up (EAGAIN) or a signal (EINTR) is retried at once.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: Duration,
}

impl AcceptBackoff {
    /// How long to leave the listener alone, while backing off.
    pub(crate) fn delay(&self) -> Option<Duration> {
        (!self.delay.is_zero()).then_some(self.delay)
    }

    /// A client was accepted.
    pub(crate) fn accepted(&mut self) {
        if !self.delay.is_zero() {
            mlog!("Accepting connections again");
        }
        self.delay = Duration::ZERO;
    }

    pub(crate) fn accept_failed(&mut self, e: &io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
        ) {
            self.delay = Duration::ZERO;
        } else {
            self.grow(&format!("Accept failed: {e}"));
        }
    }

    pub(crate) fn poll_failed(&mut self, e: nix::errno::Errno) {
        if e != nix::errno::Errno::EINTR {
            self.grow(&format!("poll failed: {e}"));
        }
    }

    fn grow(&mut self, what: &str) {
        let next = (self.delay * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
        // One line per new delay: a handful per outage, then silence at the 2 s cap.
        if next != self.delay {
            mlog!("{what}; retrying in {} ms", next.as_millis());
        }
        self.delay = next;
    }
}

impl Server {
    /// Starts the `manhole` thread: listening at once (always-on mode, where a bad socket path
    /// fails the install), or dormant until its trigger fires.
    pub(crate) fn start(options: &Options, validated: Validated, mode: Mode) -> Result<Arc<Server>, Error> {
        let path = options
            .socket_path
            .clone()
            .unwrap_or_else(|| listener::default_socket_path(std::process::id()));
        let (wake_rx, wake_tx) =
            UnixStream::pair().map_err(|e| Error::io("create the wake-up pipe", None, e))?;
        let (wake_rx, wake_tx) = (Registered::new(wake_rx), Registered::new(wake_tx));
        let trigger = match mode {
            Mode::Always => None,
            Mode::ActivateOn(signal) => Some(Trigger::new(Some(signal))),
            Mode::Oneshot(signal) => Some(Trigger::new(Some(signal))),
            Mode::Manual => Some(Trigger::new(None)),
        }
        .transpose()
        .map_err(|e| Error::io("register the activation signal", None, e))?
        .map(Arc::new);
        let mut own_fds = vec![wake_rx.as_raw_fd(), wake_tx.as_raw_fd()];
        own_fds.extend(trigger.iter().flat_map(|t| t.fds()));
        let server = Arc::new(Server {
            locals: options.locals.clone(),
            own_fds: Mutex::new(own_fds),
            mode,
            tee: options.redirect_stderr.then(Tee::default),
            trigger,
            path,
            config: Config {
                max_sessions: options.max_sessions,
                idle_timeout: options.idle_timeout,
                daemon_connection: options.daemon_connection,
            },
            started: Instant::now(),
            owner_pid: std::process::id(),
            socket: Mutex::new(None),
            left_behind: Mutex::new(None),
            euid_tried: AtomicU32::new(u32::MAX),
            listening: AtomicBool::new(false),
            sigmask: validated.sigmask,
            program_mask: SignalSet::current(),
            sessions: Mutex::default(),
            sessions_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            wake: Mutex::new(Some(wake_tx)),
            listener_thread: Mutex::new(None),
        });
        let worker = Arc::clone(&server);
        // install() returns once the listener thread runs under its name: manhole-cli reads that
        // name to decide whether a signal would open the manhole or kill the process.
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = match (mode, server.trigger.clone()) {
            (Mode::Always, _) | (_, None) => {
                let listener = server.bind()?;
                spawn("manhole", &server.sigmask, move || {
                    let _ = started_tx.send(());
                    worker.listen(listener, wake_rx, None)
                })
            }
            (_, Some(trigger)) => {
                let timeout = options.oneshot_timeout;
                spawn(&listener_name(mode), &server.sigmask, move || {
                    let _ = started_tx.send(());
                    activation::run_dormant(worker, trigger, wake_rx, timeout)
                })
            }
        };
        if spawned.is_ok() {
            let _ = started_rx.recv_timeout(Duration::from_secs(1));
        }
        match spawned {
            Ok(handle) => *lock(&server.listener_thread) = Some(handle),
            Err(e) => {
                server.unbind();
                return Err(Error::io("start the listener thread", None, e));
            }
        }
        Ok(server)
    }

    /// When this manhole listens.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Claims the socket path and listens there.
    pub(crate) fn bind(&self) -> Result<Registered<UnixListener>, Error> {
        let bound = listener::bind(&self.path)?;
        bound.file.arm_death_cleanup();
        mlog!("Manhole UDS path: {}", self.path.display());
        lock(&self.own_fds).push(bound.listener.as_raw_fd());
        *lock(&self.socket) = Some(bound.file);
        Ok(Registered::new(bound.listener))
    }

    /// Removes the socket file (the listening socket itself is closed by its owner). When it
    /// cannot be removed, the log says why, and so does the last line at shutdown.
    pub(crate) fn unbind(&self) {
        if let Some(file) = lock(&self.socket).take() {
            let removal = file.remove();
            if let Some(why) = file.explain(&removal) {
                mlog!("{why}");
                *lock(&self.left_behind) = Some(why);
            }
        }
        let trigger_fds: Vec<RawFd> = self.trigger.iter().flat_map(|t| t.fds()).collect();
        let wake_fds = 2;
        lock(&self.own_fds).truncate(wake_fds + trigger_fds.len());
    }

    /// Makes a one-shot manhole serve one session now.
    pub(crate) fn fire_oneshot(&self) -> Result<(), Error> {
        match (&self.mode, &self.trigger) {
            (Mode::Oneshot(_) | Mode::Manual, Some(trigger)) => trigger
                .fire()
                .map_err(|e| Error::io("trigger a one-shot session", None, e)),
            _ => Err(Error::ConfigurationConflict {
                message:
                    "handle_oneshot() works with oneshot_on or thread(false); this manhole listens on its own"
                        .to_owned(),
            }),
        }
    }

    /// Waits until no session is open, or the manhole stops; false when it stops.
    pub(crate) fn wait_until_no_session_or_stopping(&self) -> bool {
        let mut sessions = lock(&self.sessions);
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return false;
            }
            if sessions.open.is_empty() {
                return true;
            }
            sessions = self
                .sessions_changed
                .wait(sessions)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A server that listens nowhere and has no threads: the console's unit tests run commands
    /// against it.
    #[cfg(test)]
    pub(crate) fn for_tests(locals: Vec<Local>) -> Server {
        Server {
            config: Config {
                max_sessions: 32,
                idle_timeout: Duration::from_secs(60),
                daemon_connection: true,
            },
            locals,
            own_fds: Mutex::new(Vec::new()),
            mode: Mode::Always,
            tee: None,
            trigger: None,
            path: PathBuf::from("/tmp/manhole-unit-test"),
            started: Instant::now(),
            owner_pid: std::process::id(),
            socket: Mutex::new(Some(SocketFile::detached(std::path::Path::new(
                "/tmp/manhole-unit-test",
            )))),
            left_behind: Mutex::new(None),
            euid_tried: AtomicU32::new(u32::MAX),
            listening: AtomicBool::new(false),
            sigmask: SignalSet::empty(),
            program_mask: SignalSet::empty(),
            sessions: Mutex::default(),
            sessions_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            wake: Mutex::new(None),
            listener_thread: Mutex::new(None),
        }
    }

    /// Where this manhole listens, until it is stopped (never in a forked child).
    pub(crate) fn socket_path(&self) -> Option<PathBuf> {
        if self.stopping.load(Ordering::Acquire) || !self.runs_here() {
            return None;
        }
        lock(&self.socket).as_ref().map(|file| file.path.clone())
    }

    /// Whether this process is the one whose threads serve this manhole (false after fork).
    pub(crate) fn runs_here(&self) -> bool {
        std::process::id() == self.owner_pid
    }

    /// The accept loop of the `manhole` thread. It sleeps in poll(2) until a client or the
    /// wake-up pipe makes it runnable: no timer, no wake-ups while idle.
    pub(crate) fn listen(
        self: Arc<Self>,
        mut listener: Registered<UnixListener>,
        mut wake: Registered<UnixStream>,
        trigger: Option<Arc<Trigger>>,
    ) {
        let pid = std::process::id();
        self.listening.store(true, Ordering::Release);
        let mut backoff = AcceptBackoff::default();
        loop {
            // Every time this thread runs (a client, a signal, a session's end), and never on a
            // timer: glibc's setuid interrupts every thread, this poll included.
            self.follow_euid(&mut listener);
            let backing_off = backoff.delay().is_some();
            if !backing_off {
                mlog!("Waiting for new connection (in pid:{pid}) ...");
            }
            let (client_ready, woken) = {
                let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
                if !backing_off {
                    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
                }
                // Once activated, a repeated activation signal is read away and ignored.
                if let Some(trigger) = &trigger {
                    fds.push(PollFd::new(trigger.reader(), PollFlags::POLLIN));
                }
                let timeout = backoff.delay().map_or(PollTimeout::NONE, |delay| {
                    PollTimeout::try_from(delay).unwrap_or(PollTimeout::MAX)
                });
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                match poll(&mut fds, timeout) {
                    Ok(_) => {
                        if let Some(trigger) = &trigger {
                            trigger.drain();
                        }
                        (!backing_off && fds.get(1).is_some_and(ready), ready(&fds[0]))
                    }
                    Err(nix::errno::Errno::EINTR) => (false, false),
                    Err(e) => {
                        backoff.poll_failed(e);
                        (false, false)
                    }
                }
            };
            if woken {
                let _ = wake.read(&mut [0u8; 16]);
            }
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            if woken {
                continue; // asked to look at the euid again
            }
            if !client_ready && !backing_off {
                continue;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    backoff.accepted();
                    self.admit(stream);
                }
                Err(e) => backoff.accept_failed(&e),
            }
        }
        self.listening.store(false, Ordering::Release);
        mlog!("Listener stopped.");
    }

    /// After the program changed its effective uid (a daemon dropping root after install), the
    /// socket is still the old uid's, mode 0600: the program's new user could not connect.
    /// Re-creates it at the same path as the new uid, or says in the log why it cannot. Tried
    /// once per new uid.
    fn follow_euid(self: &Arc<Self>, listener: &mut Registered<UnixListener>) {
        let euid = nix::unistd::geteuid().as_raw();
        let Some(file_uid) = lock(&self.socket).as_ref().map(|file| file.uid) else {
            return;
        };
        if euid == file_uid || self.euid_tried.swap(euid, Ordering::AcqRel) == euid {
            return;
        }
        let path = self.path.display();
        mlog!(
            "The process now runs as uid {euid}, but uid {file_uid} created the socket {path}: re-creating it"
        );
        // Who waits in the old socket's backlog is served before that socket goes.
        while let Ok((stream, _)) = listener.accept() {
            self.admit(stream);
        }
        let Some(old) = lock(&self.socket).take() else {
            return;
        };
        let removal = old.remove();
        if let Some(why) = old.removal_error(&removal) {
            old.arm_death_cleanup();
            *lock(&self.socket) = Some(old);
            mlog!(
                "Cannot re-create the socket as uid {euid}: {why}. It stays uid {file_uid}'s (mode 0600): \
                 only root can connect until the process runs as uid {file_uid} again"
            );
            return;
        }
        let old_fd = listener.as_raw_fd();
        match listener::bind(&self.path) {
            Ok(bound) => {
                bound.file.arm_death_cleanup();
                let mut own_fds = lock(&self.own_fds);
                own_fds.retain(|fd| *fd != old_fd);
                own_fds.push(bound.listener.as_raw_fd());
                drop(own_fds);
                *lock(&self.socket) = Some(bound.file);
                *listener = Registered::new(bound.listener);
                mlog!("Manhole UDS path: {path} (re-created as uid {euid})");
            }
            Err(e) => {
                lock(&self.own_fds).retain(|fd| *fd != old_fd);
                mlog!("Cannot re-create the socket as uid {euid}: {e}. No socket now: nobody can connect");
            }
        }
    }

    /// Checks who connected and starts a session, or refuses with one line and EOF.
    pub(crate) fn admit(self: &Arc<Self>, stream: UnixStream) {
        let stream = Registered::new(stream);
        let fd = stream.as_raw_fd();
        let refuse = |line: &str| {
            // One line into an empty socket buffer: never blocks, and never raises SIGPIPE.
            let _ = sys::send_all(&stream, line.as_bytes(), true);
            // Closing with unread input would reset the connection, and the client could lose
            // the line: drop what it sent already, then close.
            let _ = stream.set_nonblocking(true);
            let mut sink = [0u8; 4096];
            while matches!((&*stream).read(&mut sink), Ok(n) if n > 0) {}
        };
        if let Err(e) = stream
            .set_nonblocking(false)
            .and_then(|()| sys::no_sigpipe(&stream))
        {
            mlog!("Dropped connection on fd:{fd}: {e}");
            return;
        }
        let peer = match sys::peer_credentials(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                mlog!("Dropped connection on fd:{fd}: cannot read peer credentials: {e}");
                refuse(&protocol::denied_unreadable_credentials());
                return;
            }
        };
        let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        let euid = nix::unistd::geteuid().as_raw();
        if peer.uid != euid && peer.uid != 0 {
            mlog!(
                "Refused connection on fd:{fd} from PID:{pid} UID:{} GID:{}: not EUID:{euid} or ROOT",
                peer.uid,
                peer.gid
            );
            refuse(&protocol::denied_uid(peer.uid, euid));
            return;
        }
        let machine = Arc::new(AtomicBool::new(false));
        let id = {
            let mut sessions = lock(&self.sessions);
            if sessions.open.len() >= self.config.max_sessions {
                drop(sessions);
                mlog!(
                    "Refused connection on fd:{fd} from PID:{pid}: {} sessions already open",
                    self.config.max_sessions
                );
                refuse(&protocol::too_many_sessions(self.config.max_sessions));
                return;
            }
            let Ok(shadow) = stream.try_clone().map(Registered::new) else {
                drop(sessions);
                refuse(protocol::OUT_OF_FDS);
                return;
            };
            sessions.next_id += 1;
            let id = sessions.next_id;
            // Under the sessions lock, so the last session's end cannot stop it right after.
            if let Some(tee) = &self.tee {
                tee.start(self);
            }
            sessions.open.insert(
                id,
                SessionEntry {
                    stream: shadow,
                    fd,
                    machine: Arc::clone(&machine),
                    peer,
                    opened: SystemTime::now(),
                    thread: None,
                },
            );
            id
        };
        mlog!(
            "Accepted connection on fd:{fd} from PID:{pid} UID:{} GID:{}",
            peer.uid,
            peer.gid
        );
        let server = Arc::clone(self);
        let spawned = spawn("manhole-session", &self.sigmask, move || {
            IN_SESSION.with(|flag| flag.set(true));
            let _in_use = crate::stacks::InUse::new();
            lock(&server.sessions)
                .open
                .entry(id)
                .and_modify(|e| e.thread = Some(thread::current().id()));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session::serve(&server, stream, peer, &machine)
            }));
            if outcome.is_err() {
                mlog!("Session from PID:{pid} ended by an internal error; the service goes on");
            }
            server.forget(id);
        });
        if let Err(e) = spawned {
            mlog!("Cannot start a session thread: {e}");
            if let Some(entry) = lock(&self.sessions).open.get(&id) {
                let _ = sys::send_all(&entry.stream, protocol::CANNOT_START.as_bytes(), true);
            }
            self.forget(id);
        }
    }

    fn forget(&self, id: u64) {
        // A session's end is a moment manhole runs: if the program changed its uid meanwhile,
        // the accept loop re-creates the socket.
        let euid = nix::unistd::geteuid().as_raw();
        if self.listening.load(Ordering::Acquire)
            && lock(&self.socket).as_ref().is_some_and(|file| file.uid != euid)
            && let Some(wake) = lock(&self.wake).as_ref()
        {
            let _ = sys::send_all(wake, b"u", true);
        }
        let mut sessions = lock(&self.sessions);
        sessions.open.remove(&id);
        let last = sessions.open.is_empty();
        if last && let Some(tee) = &self.tee {
            tee.stop();
        }
        drop(sessions);
        self.sessions_changed.notify_all();
        if last {
            // Nobody is looking: give back what dumps keep for the next one.
            crate::stacks::release_caches();
        }
    }

    /// Sends a chunk of the program's stderr to every open session, dropping it for any client
    /// whose socket is full.
    pub(crate) fn offer_to_sessions(&self, chunk: &[u8]) {
        // Machine mode promises exactly one JSON document per command: no raw text there.
        for entry in lock(&self.sessions)
            .open
            .values()
            .filter(|e| !e.machine.load(Ordering::Acquire))
        {
            let _ = sys::send_all(&entry.stream, chunk, true);
        }
    }

    /// The open sessions, oldest first.
    pub(crate) fn sessions(&self) -> Vec<SessionInfo> {
        let me = thread::current().id();
        lock(&self.sessions)
            .open
            .iter()
            .map(|(id, e)| SessionInfo {
                id: *id,
                peer: e.peer,
                opened: e.opened,
                is_current: e.thread == Some(me),
            })
            .collect()
    }

    /// The values given to `Options::local`.
    pub(crate) fn locals(&self) -> &[Local] {
        &self.locals
    }

    /// Every descriptor manhole holds: listening socket, wake pipe, sessions, log file.
    pub(crate) fn own_fds(&self) -> Vec<RawFd> {
        let mut fds = lock(&self.own_fds).clone();
        for entry in lock(&self.sessions).open.values() {
            fds.push(entry.fd);
            fds.push(entry.stream.as_raw_fd());
        }
        fds.extend(crate::logging::owned_fd());
        fds.extend(lock(&self.socket).as_ref().and_then(SocketFile::dir_fd));
        fds.extend(crate::procfs::own_fd());
        fds
    }

    /// The signal mask the program's own code (an exposed function, a value's `Debug`) runs
    /// with on a manhole thread, through [`sys::with_mask`]: the main thread's mask as it is
    /// now, or the installing thread's when that cannot be read. A thread the program starts
    /// from there inherits that mask, not manhole's block-everything one; manhole's mask is back
    /// as soon as the program's code returns. (The thread's name stays manhole's: a thread
    /// started from there without a name of its own inherits it.)
    pub(crate) fn program_mask(&self) -> SignalSet {
        let main = i32::try_from(self.owner_pid)
            .ok()
            .and_then(crate::procfs::task_status);
        main.map_or_else(|| self.program_mask.clone(), |s| SignalSet::from_bits(s.blocked))
    }

    /// Starts a named manhole thread that blocks the application's signals.
    pub(crate) fn spawn_thread(&self, name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
        spawn(name, &self.sigmask, body).map(drop)
    }

    /// Stops accepting, removes the socket file and wakes the listener thread. In a forked
    /// child it only forgets: the threads are the parent's, and so is the socket.
    fn stop_listening(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) || !self.runs_here() {
            return;
        }
        self.unbind();
        if let Some(tee) = &self.tee {
            tee.stop();
        }
        if let Some(wake) = lock(&self.wake).take() {
            let _ = sys::send_all(&wake, b"x", true);
        }
        // A one-shot thread may be waiting for its session: take the lock so the wake-up
        // cannot fall between its check of `stopping` and its wait.
        let _sessions = lock(&self.sessions);
        self.sessions_changed.notify_all();
    }

    /// Waits for the `manhole` thread to finish (after `stop_listening`).
    fn join_listener(&self) {
        let handle = lock(&self.listener_thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }

    /// Waits until no session is open (other than the caller's own), or until the deadline.
    fn wait_for_sessions(&self, deadline: Option<Instant>) -> usize {
        let me = thread::current().id();
        let mut sessions = lock(&self.sessions);
        loop {
            let others = sessions.open.values().filter(|e| e.thread != Some(me)).count();
            if others == 0 {
                return 0;
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => return others,
                },
                None => Duration::from_secs(3600),
            };
            sessions = self
                .sessions_changed
                .wait_timeout(sessions, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn broadcast(&self, line: &str) {
        let me = thread::current().id();
        for entry in lock(&self.sessions)
            .open
            .values()
            .filter(|e| e.thread != Some(me))
        {
            let _ = sys::send_all(&entry.stream, line.as_bytes(), true);
        }
    }

    /// Uninstall: stop listening, cut every session off, wait for their threads, remove the
    /// socket. Returns whether every session ended (a session that did not may still log).
    pub(crate) fn stop(&self) -> bool {
        self.stop_listening();
        if !self.runs_here() {
            return true;
        }
        let me = thread::current().id();
        for entry in lock(&self.sessions)
            .open
            .values()
            .filter(|e| e.thread != Some(me))
        {
            let _ = entry.stream.shutdown(std::net::Shutdown::Both);
        }
        self.join_listener();
        let left = self.wait_for_sessions(Some(Instant::now() + Duration::from_secs(5)));
        if left > 0 {
            mlog!("{left} session(s) did not end within 5 s; they will end on their own");
        }
        self.log_cleanup();
        left == 0
    }

    /// The last line of a manhole's log: "Cleaned up." only when it is true.
    fn log_cleanup(&self) {
        match lock(&self.left_behind).take() {
            None => mlog!("Cleaned up."),
            Some(why) => mlog!("Not cleaned up: {why}"),
        }
    }

    /// Normal process exit: stop listening and, unless `daemon_connection`, let open sessions
    /// finish first (telling them so).
    pub(crate) fn stop_for_exit(&self) {
        if !self.runs_here() {
            return;
        }
        self.stop_listening();
        self.join_listener();
        if !self.config.daemon_connection && !IN_SESSION.with(std::cell::Cell::get) {
            let open = self.sessions().len();
            if open > 0 {
                mlog!("Process is exiting; waiting for {open} open session(s) to end");
                self.broadcast(
                    "\nmanhole: the process is exiting and waits for this session to end; type quit to let it go\n",
                );
                self.wait_for_sessions(None);
            }
        }
        self.log_cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_threads_block_the_mask_from_birth() {
        let mut mask = SignalSet::empty();
        mask.add(libc::SIGUSR2);
        let handle = spawn("mask-probe", &mask, || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
            let blocked = status
                .lines()
                .find(|l| l.starts_with("SigBlk:"))
                .unwrap_or("")
                .to_owned();
            let bits = u64::from_str_radix(blocked.trim_start_matches("SigBlk:").trim(), 16).unwrap_or(0);
            assert_ne!(bits & (1 << (libc::SIGUSR2 - 1)), 0, "{blocked}");
        })
        .unwrap();
        handle.join().unwrap();
        // The spawning thread got its own mask back.
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        let line = status
            .lines()
            .find(|l| l.starts_with("SigBlk:"))
            .unwrap_or("SigBlk: 0")
            .to_owned();
        let bits = u64::from_str_radix(line.trim_start_matches("SigBlk:").trim(), 16).unwrap_or(0);
        assert_eq!(bits & (1 << (libc::SIGUSR2 - 1)), 0, "{line}");
    }
}
