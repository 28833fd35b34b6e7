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

/// Refuses to send `signal` to a process whose default action for it would kill or stop it:
/// a manhole configured with `activate_on`/`oneshot_on` for that signal has a handler for it
/// (`SigCgt` in `/proc/PID/status`); a process without one is the wrong process, or manhole
/// is not configured that way, and the signal would take it down. Signals whose default is to
/// do nothing (CHLD, CONT, URG, WINCH) and ignored ones are harmless and let through.
pub(crate) fn check_signal(pid: i32, signal: manhole::Signal, trigger: &str) -> Result<(), Failure> {
    use crate::proc::Disposition;
    let raw = signal.as_raw();
    if [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH].contains(&raw) {
        return Ok(());
    }
    let effect = if [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&raw) {
        "stop (freeze) it"
    } else {
        "kill it"
    };
    // A manhole names its listener thread after what opens it (see manhole's server.rs); its
    // handlers for fatal signals (which remove the socket on death) make every such signal look
    // caught, so where manhole runs, the thread's name decides.
    let threads = crate::proc::thread_names(pid).unwrap_or_default();
    let listeners: Vec<&String> = threads
        .iter()
        .filter(|n| n.as_str() == "manhole" || n.starts_with("manhole-on-") || n.starts_with("manhole-1x-"))
        .collect();
    if listeners
        .iter()
        .any(|n| **n == format!("manhole-on-{raw}") || **n == format!("manhole-1x-{raw}"))
    {
        return Ok(());
    }
    if !listeners.is_empty() {
        let opens_on: Vec<String> = listeners
            .iter()
            .filter_map(|n| {
                let number: i32 = n
                    .strip_prefix("manhole-on-")
                    .or_else(|| n.strip_prefix("manhole-1x-"))?
                    .parse()
                    .ok()?;
                manhole::Signal::from_raw(number).ok().map(|s| s.name())
            })
            .collect();
        let how = if opens_on.is_empty() {
            format!("it is not opened by a signal (connect without -1/-2/-s: manhole-cli {pid})")
        } else {
            format!("it opens on {} instead", opens_on.join(", "))
        };
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "process {pid} runs manhole, but not with {trigger}: {how}; sending {signal} would {effect} \
                 (use --force to send anyway)"
            ),
        ));
    }
    let disposition = match crate::proc::disposition(pid, raw) {
        Ok(disposition) => disposition,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::new(exit::NO_TARGET, format!("no process {pid}")));
        }
        Err(err) => {
            return Err(Failure::new(
                exit::REFUSED,
                format!(
                    "cannot tell whether process {pid} handles {signal} (/proc/{pid}/status: {err}); \
                     sending it could {effect}; use --force to send anyway"
                ),
            ));
        }
    };
    match disposition {
        Disposition::Caught | Disposition::Ignored => Ok(()),
        Disposition::Default => Err(Failure::new(
            exit::REFUSED,
            format!(
                "process {pid} does not handle {signal}: sending it would {effect}; manhole is probably \
                 not configured with {trigger}; use --force to send anyway"
            ),
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

/// The process a PID target names: its pid and its start time, read before connecting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) pid: i32,
    started: u64,
}

impl Target {
    /// Reads who `pid` is now, before anything is sent to it or read from its socket.
    pub(crate) fn identify(pid: i32, path: &Path) -> Result<Target, Failure> {
        match crate::proc::start_time(pid) {
            Ok(started) => Ok(Target { pid, started }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Failure::new(
                exit::NO_TARGET,
                format!(
                    "no process {pid}; not connecting to {}, whoever listens there",
                    path.display()
                ),
            )),
            Err(err) => Err(Failure::new(
                exit::REFUSED,
                format!("cannot tell who process {pid} is (/proc/{pid}/stat: {err}); not connecting"),
            )),
        }
    }
}

/// The kernel's record of who listens at the other end of `stream` (`SO_PEERCRED`: the
/// process that called `listen()` and its effective uid then).
fn peer_credentials(stream: &UnixStream, path: &Path) -> Result<libc::ucred, Failure> {
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
    Ok(cred)
}

/// Makes sure the process at the other end is one to trust, before a byte is read or sent.
///
/// Always: the listener is of the caller's uid or root's (or `trusted`, as the user said),
/// whoever the caller is (root too:
/// anyone can create `/tmp/manhole-PID` before that process does, and a root client that
/// believed it would hand a stranger what root types).
///
/// Given a PID (`target`), also: that process called `listen()` (`SO_PEERCRED`'s pid), it
/// runs as the listener's uid (or the listener is root's), and it is still the same process
/// (its start time unchanged since before connecting). The pid alone is not enough: it names
/// whoever called `listen()`, even after that process exited and the number was reused, and a
/// listening socket outlives its creator in any child it was passed to.
pub(crate) fn verify_peer(
    stream: &UnixStream,
    path: &Path,
    target: Option<Target>,
    trusted: Option<u32>,
) -> Result<crate::wire::Peer, Failure> {
    let cred = peer_credentials(stream, path)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let shown = path.display();
    let refuse = |why: String| Err(Failure::new(exit::REFUSED, format!("{why}; not connecting")));
    if let Some(Target { pid, started }) = target {
        if cred.pid != pid {
            return refuse(format!(
                "{shown} is served by process {} (uid {}), not by process {pid}: someone else may have \
                 put it there",
                cred.pid, cred.uid
            ));
        }
        let gone = || {
            refuse(format!(
                "process {pid} exited or was replaced while connecting: its pid now names another \
                 process, and {shown} is served by whoever inherited its socket"
            ))
        };
        let euid = match crate::proc::euid(pid) {
            Ok(euid) => euid,
            Err(_) => return gone(),
        };
        if cred.uid != euid && cred.uid != 0 {
            return refuse(format!(
                "{shown} is served by uid {}, but process {pid} runs as uid {euid}: the process that \
                 listened there is gone and its pid was reused, or someone else put it there",
                cred.uid
            ));
        }
        if crate::proc::start_time(pid).ok() != Some(started) {
            return gone();
        }
    }
    if cred.uid != me && cred.uid != 0 && Some(cred.uid) != trusted {
        return refuse(format!(
            "{shown} is served by process {} of uid {}, not by you (uid {me}) or root (if that \
             user's service is expected there, --trust-uid {} connects)",
            cred.pid, cred.uid, cred.uid
        ));
    }
    Ok(crate::wire::Peer { pid: cred.pid })
}

/// Why a connect was refused by the socket's permissions, as precisely as can be told: the
/// socket's owner, and (for `/tmp/manhole-<pid>`) whether that process now runs as someone else,
/// which is what happens when a daemon drops privileges after installing manhole as root.
fn permission_denied(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return format!("permission denied at {shown}; connect as the process's user or root");
    };
    let owner = meta.uid();
    let pid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("manhole-"))
        .and_then(|p| p.parse::<i32>().ok());
    if let Some(pid) = pid
        && let Ok(now) = crate::proc::euid(pid)
        && now != owner
    {
        return format!(
            "cannot connect to {shown}: the socket belongs to uid {owner} but process {pid} now runs as uid {now} \
             (it dropped privileges after installing manhole, and the socket could not be re-created); \
             connect as root (sudo manhole-cli {pid}), or give the program a socket_path in a directory uid {now} owns"
        );
    }
    format!(
        "permission denied at {shown}: the socket belongs to uid {owner} and you are uid {me}; connect as uid \
         {owner} or root"
    )
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
        io::ErrorKind::PermissionDenied => Failure::new(exit::REFUSED, permission_denied(path)),
        io::ErrorKind::InvalidInput => Failure::new(
            exit::USAGE,
            format!(
                "the socket path {shown} is too long ({} bytes; a Unix socket path takes at most 107)",
                path.as_os_str().len()
            ),
        ),
        _ => match err.raw_os_error() {
            Some(libc::ENOTDIR) => Failure::new(
                exit::NO_TARGET,
                format!("no such socket {shown}: a part of the path is not a directory"),
            ),
            Some(libc::ELOOP) => Failure::new(
                exit::NO_TARGET,
                format!("no such socket {shown}: too many symbolic links on the way"),
            ),
            Some(libc::EPROTOTYPE) => Failure::new(
                exit::NO_TARGET,
                format!("{shown} is a datagram socket, not a stream socket like a manhole's"),
            ),
            Some(libc::EMFILE | libc::ENFILE) => Failure::new(
                exit::FAILED,
                format!("cannot connect to {shown}: no file descriptors left ({err})"),
            ),
            _ => Failure::new(exit::FAILED, format!("cannot connect to {shown}: {err}")),
        },
    }
}
