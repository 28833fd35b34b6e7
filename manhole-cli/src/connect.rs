//! Finding the socket, signalling the process, and connecting with a clear reason on failure.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Failure, exit};

/// Where to connect, and the pid when it is known (to signal it).
pub(crate) fn resolve(target: &str) -> Result<(PathBuf, Option<i32>), Failure> {
    if target.contains('/') {
        let path = PathBuf::from(target);
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("manhole-"))
            .and_then(|p| p.parse().ok());
        return Ok((path, pid));
    }
    match target.parse::<i32>() {
        Ok(pid) if pid > 0 => Ok((manhole::default_socket_path(pid as u32), Some(pid))),
        _ => Err(Failure::new(
            exit::USAGE,
            format!("{target:?} is neither a PID (like 1234) nor a socket path (like /tmp/manhole-1234)"),
        )),
    }
}

/// Sends `signal` to `pid`.
pub(crate) fn send_signal(pid: i32, signal: manhole::Signal) -> Result<(), Failure> {
    // SAFETY: kill(2) has no memory preconditions.
    if unsafe { libc::kill(pid, signal.as_raw()) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ESRCH) => Failure::new(exit::NO_TARGET, format!("no process {pid}")),
        Some(libc::EPERM) => Failure::new(
            exit::REFUSED,
            format!("not allowed to signal process {pid}; run as its user or root"),
        ),
        _ => Failure::new(exit::FAILED, format!("cannot send {signal} to {pid}: {err}")),
    })
}

/// Connects without ever blocking: a listener that is stopped or overwhelmed (its backlog
/// full) answers `WouldBlock` instead of hanging the client.
pub(crate) fn try_connect(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; it is zeroed, then the path (shorter than sun_path,
    // checked) is copied in, leaving a NUL terminator.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket creation; the descriptor is owned by the UnixStream right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket owned by nobody else.
    let stream = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    if unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Connects to `path`. After a signal (`waiting`), a missing or not yet listening socket is
/// retried with growing pauses until `timeout`, and so is a listener too busy to accept; no
/// busy loop.
pub(crate) fn connect(path: &Path, timeout: Duration, waiting: bool) -> Result<UnixStream, Failure> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let err = match try_connect(path) {
            Ok(stream) => return Ok(stream),
            Err(err) => err,
        };
        let transient = err.kind() == io::ErrorKind::WouldBlock
            || (waiting
                && matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ));
        let retry = transient && Instant::now() + pause < deadline;
        if retry {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
            continue;
        }
        return Err(explain(path, &err, waiting, timeout));
    }
}

/// Makes sure the process at the other end is the one asked for: by PID, that very process;
/// in any case, one of this user's (or root's, whom every user's client trusts). Anyone can
/// create `/tmp/manhole-PID` before that process does; a client that trusted it would show a
/// stranger's output as the process's and could hand them what is typed.
pub(crate) fn verify_peer(stream: &UnixStream, path: &Path, pid: Option<i32>) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred of `len` bytes, as SO_PEERCRED expects.
    let got = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if got != 0 {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "cannot tell who listens at {}: {}",
                path.display(),
                io::Error::last_os_error()
            ),
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let shown = path.display();
    if let Some(pid) = pid.filter(|pid| *pid != cred.pid) {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "{shown} is served by process {} (uid {}), not by process {pid}: someone else may have \
                 put it there; not connecting",
                cred.pid, cred.uid
            ),
        ));
    }
    if me != 0 && cred.uid != me && cred.uid != 0 {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "{shown} is served by process {} of uid {}, not by you (uid {me}) or root; not connecting",
                cred.pid, cred.uid
            ),
        ));
    }
    Ok(())
}

fn explain(path: &Path, err: &io::Error, waiting: bool, timeout: Duration) -> Failure {
    let shown = path.display();
    match err.kind() {
        io::ErrorKind::NotFound if waiting => Failure::new(
            exit::TIMEOUT,
            format!(
                "no socket appeared at {shown} within {} s; is manhole installed with that trigger?",
                timeout.as_secs_f64()
            ),
        ),
        io::ErrorKind::NotFound => Failure::new(
            exit::NO_TARGET,
            format!(
                "no such socket {shown}; is the process running with manhole installed (or does it need a signal, -1 or -2)?"
            ),
        ),
        io::ErrorKind::ConnectionRefused if waiting => Failure::new(
            exit::TIMEOUT,
            format!(
                "{shown} did not start listening within {} s",
                timeout.as_secs_f64()
            ),
        ),
        io::ErrorKind::ConnectionRefused => Failure::new(
            exit::NO_TARGET,
            format!(
                "nothing listens at {shown}: the process that created it is gone (a stale socket; `manhole-cli list --clean` removes it)"
            ),
        ),
        io::ErrorKind::WouldBlock => Failure::new(
            exit::TIMEOUT,
            format!(
                "{shown} accepts no connections (the process is stopped or overwhelmed); waited {} s",
                timeout.as_secs_f64()
            ),
        ),
        io::ErrorKind::PermissionDenied => Failure::new(
            exit::REFUSED,
            format!("permission denied at {shown}; connect as the process's user or root"),
        ),
        _ => Failure::new(exit::FAILED, format!("cannot connect to {shown}: {err}")),
    }
}
