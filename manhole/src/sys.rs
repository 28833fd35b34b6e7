//! The thin layer over system calls that the safe wrappers of `std` and `nix` do not cover.
//!
//! Every `unsafe` block of the crate outside the stack capture lives here, each with the
//! invariant it relies on. Nothing here allocates, so the write helpers may be used after fork.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// Writes all of `bytes` to `fd` with raw write(2), retrying on EINTR.
///
/// Errors (a closed fd 2, a full disk) are returned, never raised: callers that log ignore them.
pub(crate) fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write(2) reads at most `bytes.len()` bytes from it and
        // does not keep the pointer. An invalid `fd` only makes the call fail with EBADF.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

/// Sends all of `bytes` on a connected socket without ever raising SIGPIPE in the host.
///
/// Linux uses `MSG_NOSIGNAL`; elsewhere [`no_sigpipe`] must have been called on the socket.
/// With `dont_wait`, a full socket buffer fails with `WouldBlock` instead of blocking.
pub(crate) fn send_all(stream: &UnixStream, mut bytes: &[u8], dont_wait: bool) -> io::Result<()> {
    let flags = SEND_FLAGS | if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    while !bytes.is_empty() {
        // SAFETY: the fd is owned by `stream`, which outlives the call; `bytes` is a live slice
        // that send(2) only reads.
        let n = unsafe { libc::send(stream.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), flags) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Makes writes on `stream` fail with EPIPE instead of raising SIGPIPE, where the OS needs a
/// socket option for that (Linux uses `MSG_NOSIGNAL` per call instead).
pub(crate) fn no_sigpipe(stream: &UnixStream) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(stream, sockopt::NoSigPipe, &true).map_err(io::Error::from)?;
    }
    let _ = stream;
    Ok(())
}

/// The identity of the process at the other end of a Unix socket, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerCred {
    /// The peer's pid, where the OS reports it.
    pub(crate) pid: Option<i32>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Reads the peer's credentials: SO_PEERCRED on Linux, getpeereid elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCred> {
    use nix::sys::socket::{getsockopt, sockopt};
    let cred = getsockopt(stream, sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok(PeerCred {
        pid: Some(cred.pid()),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

/// Reads the peer's credentials: SO_PEERCRED on Linux, getpeereid elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCred> {
    let (uid, gid) = nix::unistd::getpeereid(stream).map_err(io::Error::from)?;
    Ok(PeerCred {
        pid: None,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    })
}

/// The kernel id of the calling thread (equal to the pid on the main thread).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// The kernel id of the calling thread (equal to the pid on the main thread).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn gettid() -> i32 {
    let mut tid: u64 = 0;
    // SAFETY: pthread_threadid_np writes one u64 through the pointer, which is valid; a null
    // thread means the calling thread.
    unsafe { libc::pthread_threadid_np(0, &mut tid) };
    tid as i32
}

/// Runs `f` at normal process exit (after `main` returns or `std::process::exit`).
pub(crate) fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: atexit stores a plain function pointer with static lifetime; the callback itself
    // must not unwind, which `f` guarantees by being `extern "C"` (a panic there aborts).
    let rc = unsafe { libc::atexit(f) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit refused the handler"))
    }
}

/// A set of signals, as sigprocmask(2) takes it.
pub(crate) struct SignalSet(libc::sigset_t);

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSet")
    }
}

impl SignalSet {
    pub(crate) fn empty() -> SignalSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises every bit of the zeroed value.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            SignalSet(set)
        }
    }

    /// Every signal a thread can block without hiding faults from itself, except `keep`.
    /// Faults (`SIGSEGV`…) stay deliverable: blocking one would turn a crash report into a
    /// silent kill; `SIGKILL` and `SIGSTOP` cannot be blocked at all.
    pub(crate) fn all_but_faults(keep: Option<i32>) -> SignalSet {
        let mut set = SignalSet::empty();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let last = libc::SIGRTMAX();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let last = 31;
        for signal in (1..=last).filter_map(|n| crate::Signal::from_raw(n).ok()) {
            if signal.is_catchable() && !signal.is_synchronous_fault() && Some(signal.as_raw()) != keep {
                set.add(signal.as_raw());
            }
        }
        set
    }

    pub(crate) fn add(&mut self, signal: i32) {
        // SAFETY: `self.0` is an initialised sigset_t; an out-of-range number only fails (EINVAL).
        unsafe { libc::sigaddset(&mut self.0, signal) };
    }

    pub(crate) fn remove(&mut self, signal: i32) {
        // SAFETY: `self.0` is an initialised sigset_t; an out-of-range number only fails (EINVAL).
        unsafe { libc::sigdelset(&mut self.0, signal) };
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, signal: i32) -> bool {
        // SAFETY: `self.0` is an initialised sigset_t, only read.
        unsafe { libc::sigismember(&self.0, signal) == 1 }
    }
}

/// Blocks `set` in the calling thread for the rest of its life.
pub(crate) fn block_signals(set: &SignalSet) {
    // SAFETY: the pointer refers to an initialised sigset_t that outlives the call.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
}

/// Runs `f` with `set` blocked in the calling thread, then restores the thread's mask.
///
/// A thread spawned inside `f` inherits the blocked set from its first instruction, so it can
/// never steal a signal that the application waits for with signalfd or sigwait.
pub(crate) fn with_signals_blocked<R>(set: &SignalSet, f: impl FnOnce() -> R) -> R {
    // SAFETY: zeroed sigset_t is a valid output buffer for pthread_sigmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to initialised sigset_t values that outlive the call.
    let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, &mut old) } == 0;
    let result = f();
    if blocked {
        // SAFETY: `old` holds the mask pthread_sigmask returned above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    result
}

/// Clock ticks per second, the unit of times in /proc/<pid>/stat.
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// The soft and hard limits on open file descriptors.
pub(crate) fn fd_limits() -> Option<(u64, u64)> {
    // SAFETY: rlimit is plain data and getrlimit fills it completely on success.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur as u64, limit.rlim_max as u64))
}
