//! Installing, replacing and uninstalling the one manhole of the process, and what a forked
//! child does with it.
//!
//! With `patch_fork` (the default, unless `socket_path`, `activate_on` or `oneshot_on` is set),
//! a child gets a manhole of its own at `/tmp/manhole-<childpid>`, bound by a thread that first
//! sleeps `reinstall_delay`: a child that execs within the delay never creates one. The child's
//! fork hooks (see [`crate::atfork`], registered here in one place) close manhole's descriptors
//! and forget the parent's state with `try_lock`, since a lock held by a parent thread at the
//! moment of the fork stays held for ever in the child, and the child gives up on reinstalling
//! rather than wait.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, TryLockError, Weak};

use crate::atfork::{self, Phase};
use crate::logging::{self, mlog};
use crate::options::Mode;
use crate::server::Server;
use crate::{Error, Options, sys};

/// The installed manhole, if any.
static INSTALLED: Mutex<Option<Arc<Server>>> = Mutex::new(None);
/// The pid that installed it: exit handlers in a forked child must leave the parent's alone.
static INSTALLED_BY: AtomicU32 = AtomicU32::new(0);
static EXIT_HOOK: Once = Once::new();

fn installed() -> MutexGuard<'static, Option<Arc<Server>>> {
    INSTALLED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the manhole: binds the socket and starts the listener thread.
///
/// ```no_run
/// let handle = manhole::install(manhole::Options::new())?;
/// println!("connect with: socat - unix-connect:{}", handle.socket_path().unwrap().display());
/// # Ok::<(), manhole::Error>(())
/// ```
///
/// Dropping the returned [`Handle`] leaves the manhole running for the life of the process,
/// so `manhole::install(options)?;` is fine. The socket is removed by [`Handle::uninstall`] and
/// when the process exits normally.
///
/// # Errors
/// - [`Error::AlreadyInstalled`] if a manhole runs and `strict` is on (the default). With
///   `strict(false)` the running one is stopped and replaced instead.
/// - [`Error::ConfigurationConflict`], [`Error::InvalidSignal`], [`Error::NotSupported`] for
///   options that cannot be honoured; nothing is installed then.
/// - [`Error::SocketPathInUse`], [`Error::SocketPathTooLong`], [`Error::Io`] when the socket
///   cannot be created.
///
/// # Security
/// The socket is created with mode 0600 before it listens, and every client's credentials are
/// checked before a byte is written: only this process's effective uid and root are served.
pub fn install(options: Options) -> Result<Handle, Error> {
    // Before the program can chroot away from /proc.
    crate::procfs::prepare();
    let mut validated = options.validate()?;
    if let Some(signal) = crate::stacks::prepare(validated.stack_signal)? {
        // Manhole's own threads block the app's signals, but answer the stack signal.
        validated.sigmask.remove(signal.as_raw());
    }
    let mut slot = installed();
    // A manhole inherited through fork runs in the parent, not here: it does not count. Its
    // descriptors were closed in the child already; dropping it would close them twice.
    if slot.as_ref().is_some_and(|running| !running.runs_here()) {
        std::mem::forget(slot.take());
    }
    let mut every_session_ended = true;
    if let Some(running) = slot.as_ref() {
        if options.strict {
            return Err(Error::AlreadyInstalled {
                socket_path: running.socket_path(),
            });
        }
        if let Some(previous) = slot.take() {
            disable_reinstall();
            every_session_ended = previous.stop();
        }
    }
    logging::configure(options.verbose, &options.verbose_destination, every_session_ended)?;
    let mode = validated.mode;
    let reinstall_in_children = options.patch_fork && mode == Mode::Always && options.socket_path.is_none();
    let server = Server::start(&options, validated, mode)?;
    if options.patch_fork && !reinstall_in_children {
        let why = match mode {
            Mode::ActivateOn(s) => format!("activation is done by {s}"),
            Mode::Oneshot(s) => format!("one-shot sessions are started by {s}"),
            Mode::Manual => "manual mode".to_owned(),
            Mode::Always => "a socket_path is set and children cannot share it".to_owned(),
        };
        mlog!("Not giving forked children a manhole: {why}");
    }
    configure_children(&options, reinstall_in_children);
    INSTALLED_BY.store(std::process::id(), Ordering::Release);
    EXIT_HOOK.call_once(|| {
        if let Err(e) = sys::at_exit(at_exit) {
            mlog!("Cannot register the exit hook ({e}); the socket will stay after exit");
        }
    });
    crate::session_thread::keep_panics_to_sessions();
    let handle = Handle {
        server: Arc::downgrade(&server),
    };
    *slot = Some(server);
    Ok(handle)
}

/// Installs manhole only if the `MANHOLE` environment variable asks for it: the switch for
/// programs that should carry manhole but not always run it (like Python's `PYTHONMANHOLE`).
///
/// - unset, `0`, `off`, `false` or `no`: nothing is installed, `Ok(None)`;
/// - `1`, `on`, `true`, `yes` or empty: installed with the default options;
/// - `key=value,…` with the keys of `#[manhole::main]`: installed with those options, for
///   example `MANHOLE='socket_path=/run/app/manhole.sock,verbose=false'`.
///
/// ```no_run
/// if let Some(handle) = manhole::install_from_env()? {
///     eprintln!("manhole at {:?}", handle.socket_path());
/// }
/// # Ok::<(), manhole::Error>(())
/// ```
///
/// # Errors
/// A malformed `MANHOLE` value (unknown key, bad value) is an error, never guessed at; and
/// every error of [`install`].
pub fn install_from_env() -> Result<Option<Handle>, Error> {
    match std::env::var("MANHOLE") {
        Ok(text) => match Options::new().with_overrides(&text)? {
            Some(options) => install(options).map(Some),
            None => Ok(None),
        },
        Err(_) => Ok(None),
    }
}

/// In a forked child (from the fork hook): forgets the parent's manhole without
/// dropping it. Returns false if the state was locked at the moment of the fork (by a thread
/// that does not exist in the child), in which case the child must not touch it.
fn forget_inherited() -> bool {
    match INSTALLED.try_lock() {
        Ok(mut slot) => {
            std::mem::forget(slot.take());
            true
        }
        Err(std::sync::TryLockError::Poisoned(poisoned)) => {
            std::mem::forget(poisoned.into_inner().take());
            true
        }
        Err(std::sync::TryLockError::WouldBlock) => false,
    }
}

/// Whether a forked child should get its own manhole.
static REINSTALL: AtomicBool = AtomicBool::new(false);
/// The options a child reinstalls with.
static TEMPLATE: Mutex<Option<Options>> = Mutex::new(None);

/// Registers the child's fork hooks (once) and what a child reinstalls with.
fn configure_children(options: &Options, reinstall: bool) {
    let hooks: [(Phase, fn()); 5] = [
        (Phase::Stacks, crate::stacks::after_fork_in_child),
        (Phase::RestoreStderr, crate::stderr_tee::restore_in_child),
        (Phase::CloseFds, crate::fdguard::close_all_in_child),
        (Phase::ForgetInherited, crate::console::forget_inherited_calls),
        (Phase::Lifecycle, in_child),
    ];
    let mut watching = true;
    for (phase, hook) in hooks {
        watching &= atfork::on_child(phase, hook);
    }
    if !watching {
        mlog!("Cannot watch for fork (pthread_atfork failed); forked children keep manhole's descriptors");
    }
    if let Ok(mut template) = TEMPLATE.lock() {
        *template = reinstall.then(|| options.clone().strict(false));
    }
    REINSTALL.store(reinstall, Ordering::Release);
}

/// After uninstall: forked children get no manhole.
fn disable_reinstall() {
    REINSTALL.store(false, Ordering::Release);
    if let Ok(mut template) = TEMPLATE.lock() {
        *template = None;
    }
}

/// The child's `Lifecycle` hook (see [`crate::atfork`] for its rules): forgets the parent's
/// manhole, then starts a raw thread that reinstalls. `pthread_create` is not on POSIX's list
/// of async-signal-safe calls; it is sound here because glibc (and musl) reset their thread
/// list and stack-cache locks in the child before the handlers run, and the new thread's stack
/// is mmap'd, not malloc'd. No Rust allocation happens here.
fn in_child() {
    if forget_inherited() && REINSTALL.load(Ordering::Acquire) {
        // SAFETY: pthread_t and the attributes are plain data; the thread function is an
        // extern "C" fn that catches panics.
        unsafe {
            let mut thread: libc::pthread_t = std::mem::zeroed();
            if libc::pthread_create(
                &mut thread,
                std::ptr::null(),
                reinstall_thread,
                std::ptr::null_mut(),
            ) == 0
            {
                libc::pthread_detach(thread);
            }
        }
    }
}

/// The child's `manhole-fork` thread: waits `reinstall_delay`, then installs. A child that
/// execs meanwhile never gets this far.
extern "C" fn reinstall_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    let _ = std::panic::catch_unwind(|| {
        // Like every manhole thread, it never takes a signal meant for the program.
        let mask = crate::sys::SignalSet::all_but_faults(crate::stacks::stack_signal());
        crate::sys::block_signals(&mask);
        crate::sys::name_this_thread(c"manhole-fork");
        reinstall();
    });
    std::ptr::null_mut()
}

/// Gives the child its own manhole after the delay, with the parent's options.
fn reinstall() {
    let template = match TEMPLATE.try_lock() {
        Ok(template) => template.clone(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().clone(),
        Err(TryLockError::WouldBlock) => None,
    };
    let Some(options) = template else {
        mlog!("Fork detected, but manhole's settings were busy at that moment: no manhole in this child");
        return;
    };
    let delay = options.reinstall_delay;
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    mlog!("Fork detected. Reinstalling Manhole.");
    if let Err(e) = install(options) {
        mlog!("Cannot reinstall after fork: {e}");
    }
}

/// Runs at normal process exit, in the process that installed manhole only.
extern "C" fn at_exit() {
    if INSTALLED_BY.load(Ordering::Acquire) != std::process::id() {
        return;
    }
    // A panic must not unwind out of an extern "C" function (that aborts the process).
    let _ = std::panic::catch_unwind(|| {
        let server = installed().take();
        if let Some(server) = server {
            server.stop_for_exit();
        }
    });
}

/// The installed manhole, as [`install`] returns it.
///
/// Dropping it changes nothing: the manhole keeps running until [`Handle::uninstall`] or exit.
#[derive(Debug, Clone)]
pub struct Handle {
    server: Weak<Server>,
}

impl Handle {
    fn live(&self) -> Option<Arc<Server>> {
        let server = self.server.upgrade().filter(|s| s.runs_here())?;
        let slot = installed();
        slot.as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &server))
            .then_some(server)
    }

    /// Where the manhole listens now, or `None` once it was uninstalled or replaced.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.live().and_then(|server| server.socket_path())
    }

    /// Opens the socket for one session now, as the `oneshot_on` signal would: for
    /// applications that own their signals or trigger manhole from something else (a file that
    /// appears, an admin endpoint; `examples/file_trigger.rs` is a whole program doing it).
    ///
    /// It returns at once: the `manhole` thread binds the socket, waits up to
    /// [`Options::oneshot_timeout`] for one client, serves it and removes the socket. A call
    /// while a session is being served is remembered and served next.
    ///
    /// A file trigger, for programs that own their signals (the uWSGI recipe of Python's
    /// manhole): `touch /run/my-service/manhole-please`, then connect within 30 s.
    ///
    /// ```no_run
    /// let handle = manhole::install(manhole::Options::new().thread(false))?;
    /// std::thread::spawn(move || loop {
    ///     if std::fs::remove_file("/run/my-service/manhole-please").is_ok() {
    ///         let _ = handle.handle_oneshot(); // the socket appears for one session
    ///     }
    ///     std::thread::sleep(std::time::Duration::from_secs(1));
    /// });
    /// # Ok::<(), manhole::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ConfigurationConflict`] unless installed with `oneshot_on` or `thread(false)`;
    /// [`Error::AlreadyInstalled`]-free: a handle of an uninstalled manhole fails with
    /// [`Error::NotSupported`].
    pub fn handle_oneshot(&self) -> Result<(), Error> {
        match self.live() {
            Some(server) => server.fire_oneshot(),
            None => Err(Error::NotSupported {
                option: "handle_oneshot",
                detail: "this manhole was uninstalled or replaced",
            }),
        }
    }

    /// Stops the manhole: the listener thread ends, open sessions are closed, and the socket
    /// file is removed. Does nothing if this manhole was already uninstalled or replaced.
    pub fn uninstall(self) {
        let server = {
            let mut slot = installed();
            match slot.as_ref() {
                Some(current) if Weak::ptr_eq(&self.server, &Arc::downgrade(current)) => slot.take(),
                _ => None,
            }
        };
        if let Some(server) = server
            && server.runs_here()
        {
            disable_reinstall();
            let every_session_ended = server.stop();
            logging::close(every_session_ended);
        }
    }
}
