//! A running manhole: the listener thread `manhole` (`accept.rs`, or `dormant.rs` for the modes
//! that wait for a trigger), the admission of each client (`admission.rs`: peer credentials,
//! session limit) and the table of open sessions (`sessions.rs`), one `manhole-session` thread
//! each. The server is the console's [`Host`] and the stderr tee's sink.

mod accept;
mod admission;
mod dormant;
mod sessions;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::Error;
use crate::console::{Host, SessionInfo};
use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::options::{Mode, Options, Validated};
use crate::registry::Local;
use crate::socket_file::{self, SocketFile};
use crate::spawn::Spawner;
use crate::stderr_tee::Tee;
use crate::sys::{self, PeerCred, SignalSet};
use crate::trigger::Trigger;

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

pub(crate) struct Server {
    pub(crate) config: Config,
    /// Values given to `Options::local`.
    locals: Vec<Local>,
    /// The pipes manhole holds for as long as it runs (wake-up pipe, trigger).
    pipe_fds: Vec<RawFd>,
    /// The listening socket, while there is one.
    listener_fd: Mutex<Option<RawFd>>,
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
    /// Starts manhole's threads with the program's signals blocked.
    spawner: Spawner,
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

impl Server {
    /// Starts the `manhole` thread: listening at once (always-on mode, where a bad socket path
    /// fails the install), or dormant until its trigger fires.
    pub(crate) fn start(options: &Options, validated: Validated, mode: Mode) -> Result<Arc<Server>, Error> {
        let path = options
            .socket_path
            .clone()
            .unwrap_or_else(|| socket_file::default_socket_path(std::process::id()));
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
        let mut pipe_fds = vec![wake_rx.as_raw_fd(), wake_tx.as_raw_fd()];
        pipe_fds.extend(trigger.iter().flat_map(|t| t.fds()));
        let server = Arc::new(Server {
            locals: options.locals.clone(),
            pipe_fds,
            listener_fd: Mutex::new(None),
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
            spawner: Spawner::new(validated.sigmask),
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
                server.spawner.spawn("manhole", move || {
                    let _ = started_tx.send(());
                    worker.listen(listener, wake_rx, None)
                })
            }
            (_, Some(trigger)) => {
                let timeout = options.oneshot_timeout;
                server.spawner.spawn(&listener_name(mode), move || {
                    let _ = started_tx.send(());
                    dormant::run_dormant(worker, trigger, wake_rx, timeout)
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
        let bound = socket_file::bind(&self.path)?;
        bound.file.arm_death_cleanup();
        mlog!("Manhole UDS path: {}", self.path.display());
        *lock(&self.listener_fd) = Some(bound.listener.as_raw_fd());
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
        *lock(&self.listener_fd) = None;
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
}

impl Server {
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
        if !self.config.daemon_connection && !crate::session_thread::is_session_thread() {
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

impl Host for Server {
    fn sessions(&self) -> Vec<SessionInfo> {
        Server::sessions(self)
    }

    fn max_sessions(&self) -> usize {
        self.config.max_sessions
    }

    fn socket_path(&self) -> Option<PathBuf> {
        Server::socket_path(self)
    }

    fn started(&self) -> Instant {
        self.started
    }

    /// Every descriptor manhole holds: listening socket, wake pipe, sessions, log file.
    fn own_fds(&self) -> Vec<RawFd> {
        let mut fds = self.pipe_fds.clone();
        fds.extend(*lock(&self.listener_fd));
        for entry in lock(&self.sessions).open.values() {
            fds.push(entry.fd);
            fds.push(entry.stream.as_raw_fd());
        }
        fds.extend(crate::logging::owned_fd());
        fds.extend(lock(&self.socket).as_ref().and_then(SocketFile::dir_fd));
        fds.extend(crate::procfs::own_fd());
        fds
    }

    fn locals(&self) -> &[Local] {
        &self.locals
    }

    /// The signal mask the program's own code (an exposed function, a value's `Debug`) runs
    /// with on a manhole thread, through [`sys::with_mask`]: the main thread's mask as it is
    /// now, or the installing thread's when that cannot be read. A thread the program starts
    /// from there inherits that mask, not manhole's block-everything one; manhole's mask is back
    /// as soon as the program's code returns. (The thread's name stays manhole's: a thread
    /// started from there without a name of its own inherits it.)
    fn program_mask(&self) -> SignalSet {
        let main = i32::try_from(self.owner_pid)
            .ok()
            .and_then(crate::procfs::task_status);
        main.map_or_else(|| self.program_mask.clone(), |s| SignalSet::from_bits(s.blocked))
    }

    fn spawner(&self) -> &Spawner {
        &self.spawner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked_now() -> u64 {
        let tid = nix::unistd::gettid().as_raw();
        crate::procfs::task_status(tid)
            .map(|s| s.blocked)
            .expect("this thread's /proc status")
    }

    #[test]
    fn spawned_threads_block_the_mask_from_birth() {
        let mut mask = SignalSet::empty();
        mask.add(libc::SIGUSR2);
        let bit = 1 << (libc::SIGUSR2 - 1);
        let handle = Spawner::new(mask)
            .spawn("mask-probe", move || assert_ne!(blocked_now() & bit, 0))
            .unwrap();
        handle.join().unwrap();
        // The spawning thread got its own mask back.
        assert_eq!(blocked_now() & bit, 0);
    }
}
