//! The thin layer over system calls that the safe wrappers of `std` and `nix` do not cover.
//!
//! Every `unsafe` block of the crate outside the stack capture lives here, each with the
//! invariant it relies on. Nothing here allocates, so the write helpers may be used after fork.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// Names the calling thread (at most 15 bytes show).
pub(crate) fn name_this_thread(name: &std::ffi::CStr) {
    // SAFETY: names the calling thread with a NUL-terminated string that outlives the call.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
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
#[derive(Clone)]
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

    /// The signals of a bit mask as `/proc/*/status` shows it (bit n-1 for signal n).
    pub(crate) fn from_bits(bits: u64) -> SignalSet {
        let mut set = SignalSet::empty();
        for signal in (1..=64).filter(|n| bits & (1u64 << (n - 1)) != 0) {
            set.add(signal);
        }
        set
    }

    /// The calling thread's mask (empty if it cannot be read).
    pub(crate) fn current() -> SignalSet {
        let mut set = SignalSet::empty();
        // SAFETY: a null new set only reads the mask into `set.0`, an initialised sigset_t.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set.0) };
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

/// Runs `f` with exactly `set` as the calling thread's mask, then puts the thread's own mask
/// back: how manhole's threads (which block the program's signals) run the program's code.
pub(crate) fn with_mask<R>(set: &SignalSet, f: impl FnOnce() -> R) -> R {
    // SAFETY: zeroed sigset_t is a valid output buffer for pthread_sigmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to initialised sigset_t values that outlive the call.
    let set_ok = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, &mut old) } == 0;
    // Put back even if `f` unwinds: the thread goes on serving sessions.
    struct Restore(Option<libc::sigset_t>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(old) = &self.0 {
                // SAFETY: `old` holds the mask pthread_sigmask returned above.
                unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
            }
        }
    }
    let _restore = Restore(set_ok.then_some(old));
    f()
}

/// glibc's internal signal for applying one thread's setuid/setgid/setgroups to every thread
/// (`SIGSETXID`, `__SIGRTMIN + 1`). `sigaddset` and `pthread_sigmask` refuse it, so it is only
/// ever held through the raw system calls of [`poll_unless_changed`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SIGSETXID: u32 = 33;

/// poll(2) that cannot sleep through a change of the calling thread's ids.
///
/// glibc applies a setuid (setgid, setgroups…) of any thread to all of them by sending each its
/// `SIGSETXID`, whose handler changes that thread's credentials; a poll in progress returns
/// EINTR. But a signal that lands between the caller's look at its ids and its poll is handled
/// before the poll, which then sleeps on stale news, possibly for ever. Here the signal is held
/// while `unchanged()` looks, and let in atomically by ppoll(2): a change after the look
/// interrupts the sleep instead. It is held only across `unchanged()` (which must not block) and
/// the system call's entry, because the program's setuid waits until every thread took it.
///
/// Returns `None` without polling when `unchanged()` says the ids changed, else what poll(2)
/// returns (EINTR as an error, like poll).
pub(crate) fn poll_unless_changed(
    fds: &mut [nix::poll::PollFd<'_>],
    timeout: Option<std::time::Duration>,
    unchanged: impl FnOnce() -> bool,
) -> io::Result<Option<usize>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let hold: u64 = 1 << (SIGSETXID - 1);
        let mut before: u64 = 0;
        let kernel_set = std::mem::size_of::<u64>();
        // SAFETY: rt_sigprocmask reads `hold` and writes the old mask into `before`, both live
        // 8-byte kernel signal sets (the size passed).
        let held = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK,
                &hold,
                &mut before,
                kernel_set,
            )
        } == 0;
        let restore = |before: &u64| {
            // SAFETY: puts back the mask read above; `before` is a live kernel signal set.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigprocmask,
                    libc::SIG_SETMASK,
                    before,
                    std::ptr::null_mut::<u64>(),
                    kernel_set,
                )
            };
        };
        if held {
            if !unchanged() {
                restore(&before);
                return Ok(None);
            }
            // While it sleeps the thread has the mask it had before (SIGSETXID let in, unless
            // it was held already), restored by the kernel when ppoll returns.
            let wait = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let wait_ptr = wait
                .as_ref()
                .map_or(std::ptr::null(), |w| w as *const libc::timespec);
            // SAFETY: nix's PollFd is #[repr(transparent)] over libc::pollfd, so the slice is
            // `fds.len()` valid pollfd structures the kernel may update; `wait_ptr` is null or
            // a live timespec; `before` is a live kernel signal set of the size passed.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_ppoll,
                    fds.as_mut_ptr().cast::<libc::pollfd>(),
                    fds.len() as libc::nfds_t,
                    wait_ptr,
                    &before,
                    kernel_set,
                )
            };
            let result = if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(Some(n as usize))
            };
            restore(&before);
            return result;
        }
    }
    if !unchanged() {
        return Ok(None);
    }
    let timeout = timeout.map_or(nix::poll::PollTimeout::NONE, |t| {
        nix::poll::PollTimeout::try_from(t).unwrap_or(nix::poll::PollTimeout::MAX)
    });
    nix::poll::poll(fds, timeout)
        .map(|n| Some(n as usize))
        .map_err(io::Error::from)
}

/// Adds an action for `signal` (keeping the handler the program had, through
/// signal-hook-registry) that writes one byte to `fd`: the self-pipe of a trigger. The caller
/// keeps `fd` open until it unregisters the returned action. In a forked child the action does
/// nothing, since the descriptor is closed there and its number may be reused.
pub(crate) fn on_signal_write_byte(signal: i32, fd: RawFd) -> io::Result<signal_hook_registry::SigId> {
    let owner = std::process::id() as libc::pid_t;
    // SAFETY: the action only calls getpid(2) and write(2), both async-signal-safe (and
    // signal-hook-registry saves and restores errno around every action), on a descriptor the
    // caller keeps open while the action is registered.
    unsafe {
        signal_hook_registry::register(signal, move || {
            if libc::getpid() == owner {
                let byte = 1u8;
                libc::write(fd, (&byte as *const u8).cast(), 1);
            }
        })
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// A close-on-exec duplicate of `fd`, numbered 3 or above.
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a descriptor, owned below.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just created and is owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Points descriptor `target` at the file of `source`, atomically: other threads using
/// `target` see the old file or the new one, never a closed descriptor. Async-signal-safe.
pub(crate) fn dup_onto(source: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 touches only the descriptor table; the caller owns what `target` means.
    if unsafe { libc::dup2(source, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One read(2) from `fd`.
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Whether `fd` is an open descriptor.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The device and inode of the file open at `fd`. Only fstat(2): async-signal-safe.
pub(crate) fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data, filled by fstat on success.
    let mut meta: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `meta` is writable; an invalid `fd` only fails with EBADF.
    if unsafe { libc::fstat(fd, &mut meta) } != 0 {
        return None;
    }
    Some((meta.st_dev as u64, meta.st_ino as u64))
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

/// A path as the C calls take it; a path with a NUL byte in it names no file.
fn c_path(path: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// openat(2): `path` relative to the directory `dir` (or the working directory for
/// `libc::AT_FDCWD`), always close-on-exec.
pub(crate) fn openat(dir: RawFd, path: &[u8], flags: libc::c_int) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let path = c_path(path)?;
    loop {
        // SAFETY: `path` is NUL-terminated and outlives the call; an invalid `dir` only makes
        // the call fail with EBADF.
        let fd = unsafe { libc::openat(dir, path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: the descriptor was just opened and nothing else owns it.
            return Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The names in the directory open at `dir` (opened for reading), without `.` and `..`.
pub(crate) fn dir_names(dir: std::os::fd::OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    use std::os::fd::IntoRawFd;
    let fd = dir.into_raw_fd();
    // SAFETY: `fd` is an open directory descriptor that we own; on success the stream owns it
    // (closedir closes it), on failure it is closed here.
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: `stream` is a live DIR* used by this thread only; the entry it returns stays
        // valid until the next readdir or closedir on it, and is copied before either.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: d_name is a NUL-terminated array inside the entry returned above.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    // SAFETY: `stream` came from fdopendir and is closed once.
    unsafe { libc::closedir(stream) };
    Ok(names)
}

/// readlinkat(2): the target of the symbolic link `path` relative to `dir`.
pub(crate) fn readlinkat(dir: RawFd, path: &[u8]) -> io::Result<Vec<u8>> {
    let path = c_path(path)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `path` is NUL-terminated; readlinkat writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::readlinkat(dir, path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The file system type (`f_type`) of the file open at `fd` (Linux).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn fs_type(fd: RawFd) -> io::Result<i64> {
    // SAFETY: statfs is plain data, filled by fstatfs on success.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable statfs; an invalid `fd` only fails with EBADF.
    if unsafe { libc::fstatfs(fd, &mut info) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.f_type as i64)
}

/// The device and inode of `name` in the directory `dir`, without following a symbolic link.
pub(crate) fn stat_at(dir: RawFd, name: &[u8]) -> io::Result<(u64, u64, u32)> {
    let name = c_path(name)?;
    // SAFETY: stat is plain data, filled by fstatat on success.
    let mut meta: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `meta` is writable.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &mut meta, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((meta.st_dev as u64, meta.st_ino as u64, meta.st_uid))
}

/// unlinkat(2) of the file `name` in the directory `dir`.
pub(crate) fn unlink_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let name = c_path(name)?;
    // SAFETY: `name` is NUL-terminated; an invalid `dir` only fails with EBADF.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies memory of this process at `address` into `out` through the kernel
/// (`process_vm_readv` on our own pid): memory that is unmapped or was freed and given back
/// is an error (EFAULT), never a fault. Returns the bytes copied (fewer at the end of a
/// mapping). For reading objects that may go away at any moment, such as a lock on the heap.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn read_own_memory(address: usize, out: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: the kernel checks every page of `remote` and fails with EFAULT instead of
    // faulting; `local` is `out`, writable for its whole length and borrowed for the call.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Reading our own memory through the kernel is a Linux call.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn read_own_memory(_address: usize, _out: &mut [u8]) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const COARSE_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const COARSE_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// A cheap monotonic clock in nanoseconds: `CLOCK_MONOTONIC_COARSE` (read from the vDSO
/// without a system call, at the kernel tick's resolution of a few milliseconds) where
/// Linux has it, `CLOCK_MONOTONIC` elsewhere. 0 if the clock cannot be read.
pub(crate) fn coarse_monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; it fails only for a
    // clock the kernel does not know, which leaves `now` zero.
    unsafe { libc::clock_gettime(COARSE_CLOCK, &mut now) };
    timespec_ns(&now)
}

fn timespec_ns(t: &libc::timespec) -> u64 {
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// The resolution of [`coarse_monotonic_ns`], in nanoseconds.
#[cfg(test)]
pub(crate) fn coarse_monotonic_resolution_ns() -> u64 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec through a valid pointer.
    unsafe { libc::clock_getres(COARSE_CLOCK, &mut res) };
    timespec_ns(&res)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
pub(crate) mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// Runs the ignored test `name` of this binary in a child process (its setxid broadcasts
    /// interrupt every thread of its process, so never the test harness's own; `sync`'s fork
    /// test likewise).
    pub(crate) fn in_child(name: &str) {
        if std::env::var_os("MANHOLE_SYS_CHILD").is_some() {
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().expect("own test binary"))
            .args(["--exact", name, "--ignored", "--test-threads", "1", "--nocapture"])
            .env("MANHOLE_SYS_CHILD", "1")
            .output()
            .expect("run the child");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("1 passed"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_setxid_broadcast_landing_before_the_poll_still_wakes_it() {
        in_child("sys::tests::setxid_between_the_look_and_the_poll");
    }

    /// The race of the listener after a setuid: glibc's SIGSETXID arrives after the thread
    /// looked at its ids but before it sleeps. The look here takes 200 ms while another thread
    /// runs setegid (to the same group: a broadcast that changes nothing), so its signal is sure
    /// to land in that window; the poll must then return EINTR instead of sleeping 30 s.
    #[test]
    #[ignore = "run by a_setxid_broadcast_landing_before_the_poll_still_wakes_it in a child"]
    fn setxid_between_the_look_and_the_poll() {
        let (quiet, _keep) = pipe_cloexec().expect("pipe");
        let mut fds = [nix::poll::PollFd::new(
            quiet.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let started = std::time::Instant::now();
        let mut setter = None;
        let result = poll_unless_changed(&mut fds, Some(std::time::Duration::from_secs(30)), || {
            setter = Some(std::thread::spawn(|| {
                // SAFETY: setegid to the current group only makes glibc broadcast SIGSETXID.
                unsafe { libc::setegid(libc::getegid()) }
            }));
            std::thread::sleep(std::time::Duration::from_millis(200));
            true
        });
        let waited = started.elapsed();
        assert_eq!(setter.expect("spawned").join().expect("setter"), 0);
        let e = result.expect_err("the poll was interrupted");
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{e}");
        assert!(
            waited < std::time::Duration::from_secs(20),
            "slept through the broadcast: {waited:?}"
        );
    }
}
