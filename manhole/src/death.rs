//! Removing the socket when the process dies from SIGTERM, SIGINT, SIGHUP or SIGQUIT, without
//! changing how it dies.
//!
//! For each of those signals whose disposition is still the default when manhole is installed,
//! a one-shot handler (`SA_RESETHAND`) removes the socket file (only the inode manhole created,
//! only in the process that created it) and raises the signal again, which the now-default
//! disposition turns into the same death: same exit status, same core dump for SIGQUIT.
//!
//! If the application installs its own handler for one of them, before or after manhole, that
//! handler decides: manhole's is not installed, or is replaced, and if something chains to it
//! anyway it does nothing (the application may be shutting down gracefully, and the manhole is
//! most useful precisely then). Normal exit is handled by the exit hook instead.
//!
//! Everything the handler reads is in atomics written before it is armed: it allocates nothing,
//! takes no lock, and uses only async-signal-safe calls (sigaction, getpid, lstat, unlink, raise).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// The signals whose default action kills the process and after which a socket would stay.
const DEATH_SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Longest path kept (sun_path is 108 bytes on Linux, 104 on macOS), plus the NUL.
const PATH_CAP: usize = 110;

static ARMED: AtomicBool = AtomicBool::new(false);
static PATH: [AtomicU8; PATH_CAP] = [const { AtomicU8::new(0) }; PATH_CAP];
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Remembers the socket to remove if the process is killed, and makes sure the handlers are in
/// place for the signals nobody else handles.
pub(crate) fn arm(path: &Path, dev: u64, ino: u64) {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= PATH_CAP {
        return; // cannot be a socket path anyway
    }
    ARMED.store(false, Ordering::SeqCst);
    for (slot, byte) in PATH.iter().zip(bytes.iter().chain(std::iter::repeat(&0))) {
        slot.store(*byte, Ordering::Relaxed);
    }
    DEV.store(dev, Ordering::Relaxed);
    INO.store(ino, Ordering::Relaxed);
    OWNER.store(std::process::id(), Ordering::Relaxed);
    ARMED.store(true, Ordering::SeqCst);
    static HANDLERS: Once = Once::new();
    HANDLERS.call_once(install_handlers);
}

/// Forgets the socket (it was removed, or is about to be).
pub(crate) fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
}

fn install_handlers() {
    for signal in DEATH_SIGNALS {
        // SAFETY: sigaction is plain data; with a null new action the call only reads.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `current` is a valid, writable sigaction.
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0
            || current.sa_sigaction != libc::SIG_DFL
        {
            continue; // ignored or handled by the application: not ours to change
        }
        // SAFETY: sigaction is plain data; every field the kernel reads is set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_death as *const () as usize;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK;
        // SAFETY: `action.sa_mask` is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is initialised and `on_death` only makes async-signal-safe calls.
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }
}

extern "C" fn on_death(signal: libc::c_int) {
    // SAFETY: only async-signal-safe calls follow; errno is not preserved because the process
    // is about to die of this very signal (and when it is not, nothing here sets it).
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current);
        if current.sa_sigaction != libc::SIG_DFL {
            // Another handler was installed after ours and chained to it: it decides.
            return;
        }
        remove_socket();
        libc::raise(signal);
    }
}

/// Unlinks the armed socket if it is still the inode this process created.
fn remove_socket() {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    if !ARMED.load(Ordering::SeqCst) || OWNER.load(Ordering::Relaxed) != unsafe { libc::getpid() } as u32 {
        return;
    }
    let mut path = [0u8; PATH_CAP];
    for (byte, slot) in path.iter_mut().zip(PATH.iter()) {
        *byte = slot.load(Ordering::Relaxed);
    }
    path[PATH_CAP - 1] = 0;
    // SAFETY: stat is plain data, filled by lstat.
    let mut meta: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (its last byte is 0) and `meta` is writable.
    if unsafe { libc::lstat(path.as_ptr().cast(), &mut meta) } != 0 {
        return;
    }
    if meta.st_dev as u64 == DEV.load(Ordering::Relaxed) && meta.st_ino as u64 == INO.load(Ordering::Relaxed)
    {
        // SAFETY: as above, a NUL-terminated path.
        unsafe { libc::unlink(path.as_ptr().cast()) };
    }
}
