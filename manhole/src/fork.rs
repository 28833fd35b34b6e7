//! What happens in a child created by `fork()`.
//!
//! The child inherits copies of manhole's descriptors (listening socket, pipes, the sockets of
//! open sessions) but none of its threads. Left alone, those copies would keep a parent's
//! session from ever seeing EOF and could later be closed twice. So a `pthread_atfork` child
//! handler closes every descriptor manhole registered here (close(2) is async-signal-safe), and
//! the inherited state is forgotten, never dropped.
//!
//! With `patch_fork` (the default, unless `socket_path`, `activate_on` or `oneshot_on` is set),
//! the child then gets a manhole of its own at `/tmp/manhole-<childpid>`, bound by a thread that
//! first sleeps `reinstall_delay`: a child that execs within the delay never creates one. The
//! handler itself only closes descriptors and starts that thread; manhole's own state is
//! forgotten with `try_lock`, since a lock held by a parent thread at the moment of the fork
//! stays held for ever in the child, and the child gives up on reinstalling rather than wait.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once, TryLockError};

use crate::Options;
use crate::logging::mlog;

/// Descriptors to close in a child, one per slot; -1 is free.
const SLOTS: usize = 512;
static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

/// Remembers a descriptor manhole owns, so a forked child closes its copy.
fn register_fd(fd: i32) {
    for slot in &FDS {
        if slot
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Forgets a descriptor about to be closed.
fn unregister_fd(fd: i32) {
    for slot in &FDS {
        if slot
            .compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Whether a forked child should get its own manhole.
static REINSTALL: AtomicBool = AtomicBool::new(false);
/// The options a child reinstalls with.
static TEMPLATE: Mutex<Option<Options>> = Mutex::new(None);

/// Sets up fork handling for the options just installed.
pub(crate) fn configure(options: &Options, reinstall: bool) {
    static HANDLER: Once = Once::new();
    HANDLER.call_once(|| {
        // SAFETY: registers a plain function pointer; `in_child` is safe to run in the child.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        if rc != 0 {
            mlog!("Cannot watch for fork (pthread_atfork: {rc}); forked children keep manhole's descriptors");
        }
    });
    if let Ok(mut template) = TEMPLATE.lock() {
        *template = reinstall.then(|| options.clone().strict(false));
    }
    REINSTALL.store(reinstall, Ordering::Release);
}

/// The `pthread_atfork` child handler. It runs in the child before `fork()` returns there,
/// also for children that `std::process::Command` is about to `exec`: it must never block. So
/// it only restores fd 2, closes descriptors, forgets state with `try_lock`, and starts a raw
/// thread; it logs nothing (a logger's lock may be held by a thread that is gone) and
/// allocates nothing.
extern "C" fn in_child() {
    crate::stacks::after_fork_in_child();
    // First the program's own stderr back (before the saved copy is closed below).
    crate::stderr_tee::restore_in_child();
    for slot in &FDS {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: `fd` is the child's copy of a descriptor manhole opened; closing it cannot
            // affect the parent, and nothing in the child uses it (its threads did not survive).
            unsafe { libc::close(fd) };
        }
    }
    // The parent's running calls did not come along: the child's own may use every slot.
    crate::console::forget_inherited_calls();
    let forgotten = crate::install::forget_inherited();
    if forgotten && REINSTALL.load(Ordering::Acquire) {
        // SAFETY: pthread_t and the attributes are plain data; the thread function is an
        // extern "C" fn that catches panics. No Rust allocation happens here.
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
        // SAFETY: names the calling thread; the name is a NUL-terminated literal under 16 bytes.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), c"manhole-fork".as_ptr()) };
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
    if let Err(e) = crate::install(options) {
        mlog!("Cannot reinstall after fork: {e}");
    }
}

/// After uninstall: forked children get no manhole.
pub(crate) fn disable() {
    REINSTALL.store(false, Ordering::Release);
    if let Ok(mut template) = TEMPLATE.lock() {
        *template = None;
    }
}

/// A descriptor-owning value (socket, pipe end) registered for closing in forked children for
/// as long as it lives. It leaves the registry before it is closed, so a fork can never make the
/// child close a descriptor number the parent has reused meanwhile.
#[derive(Debug)]
pub(crate) struct Registered<T: AsRawFd>(T);

impl<T: AsRawFd> Registered<T> {
    pub(crate) fn new(inner: T) -> Registered<T> {
        register_fd(inner.as_raw_fd());
        Registered(inner)
    }
}

impl<T: AsRawFd> Drop for Registered<T> {
    fn drop(&mut self) {
        unregister_fd(self.0.as_raw_fd());
        // The inner value, and its descriptor, are dropped right after this.
    }
}

impl<T: AsRawFd> std::ops::Deref for Registered<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: AsRawFd> std::ops::DerefMut for Registered<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
