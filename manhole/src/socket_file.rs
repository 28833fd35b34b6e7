//! The socket file: claiming the path, binding with mode 0600 before anyone can connect, and
//! removing exactly the inode manhole created, never anything else.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::{Error, sys};

/// `/tmp/manhole-<pid>`, where a process listens unless told otherwise and where clients look.
pub fn default_socket_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/manhole-{pid}"))
}

/// How many connections may wait to be accepted.
const BACKLOG: i32 = 64;

/// A listening socket and the identity of the file it created.
#[derive(Debug)]
pub(crate) struct BoundSocket {
    pub(crate) listener: UnixListener,
    pub(crate) file: SocketFile,
}

/// The socket's path and the inode created there, so cleanup removes only that inode, and
/// only from the process that created it (a forked child never removes its parent's socket).
///
/// The directory it is in stays open from bind on, and removal is relative to it: a program
/// that `chroot`s or changes its working directory afterwards still removes its socket.
#[derive(Clone, Debug)]
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    /// The directory holding it (None only for a socket that was never created).
    dir: Option<Arc<Registered<OwnedFd>>>,
    /// Its name in that directory.
    name: Vec<u8>,
    dev: u64,
    ino: u64,
    owner_pid: u32,
    /// The effective uid that created it, and so owns the file.
    pub(crate) uid: u32,
}

/// What became of the socket file when manhole tried to remove it.
#[derive(Debug)]
pub(crate) enum Removal {
    Removed,
    /// Nothing was there any more.
    AlreadyGone,
    /// Another file had taken the path: not ours, left alone.
    Replaced,
    /// A forked child: the socket is the parent's.
    NotOurs,
    /// It is still there.
    Failed(io::Error),
}

impl SocketFile {
    /// Arms removal of this socket if the process is killed by a signal (see the `death` module).
    pub(crate) fn arm_death_cleanup(&self) {
        if let Some(dir) = &self.dir {
            crate::death::arm(dir.as_raw_fd(), &self.name, self.dev, self.ino);
        }
    }

    /// The descriptor of the directory it is in, which manhole holds.
    pub(crate) fn dir_fd(&self) -> Option<std::os::fd::RawFd> {
        self.dir.as_ref().map(|dir| dir.as_raw_fd())
    }

    /// Removes the socket file if it is still the one this process created.
    pub(crate) fn remove(&self) -> Removal {
        if std::process::id() != self.owner_pid {
            return Removal::NotOurs;
        }
        crate::death::disarm();
        let Some(dir) = &self.dir else {
            return Removal::AlreadyGone;
        };
        match sys::stat_at(dir.as_raw_fd(), &self.name) {
            Ok((dev, ino, _)) if dev == self.dev && ino == self.ino => {
                match sys::unlink_at(dir.as_raw_fd(), &self.name) {
                    Ok(()) => Removal::Removed,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Removal::AlreadyGone,
                    Err(e) => Removal::Failed(e),
                }
            }
            Ok(_) => Removal::Replaced,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Removal::AlreadyGone,
            Err(e) => Removal::Failed(e),
        }
    }

    /// Why the socket could not be removed, when it could not.
    pub(crate) fn removal_error(&self, removal: &Removal) -> Option<String> {
        let Removal::Failed(e) = removal else {
            return None;
        };
        let euid = nix::unistd::geteuid().as_raw();
        let why = if euid != self.uid && matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
            format!(
                " (the socket is uid {}'s and this process now runs as uid {euid}, which may not \
                 remove it from its directory)",
                self.uid
            )
        } else {
            String::new()
        };
        Some(format!("cannot remove {}: {e}{why}", self.path.display()))
    }

    /// Why the socket stays, in words for the log, when it does.
    pub(crate) fn explain(&self, removal: &Removal) -> Option<String> {
        self.removal_error(removal)
            .map(|why| format!("the socket stays behind: {why}"))
    }
}

/// Claims `path` and listens there: bind → chmod 0600 → listen, so nobody else can connect in
/// between. An existing file is replaced only if it is a socket of this user that no process
/// listens on any more.
pub(crate) fn bind(path: &Path) -> Result<BoundSocket, Error> {
    let addr = UnixAddr::new(path).map_err(|_| Error::SocketPathTooLong {
        path: path.to_owned(),
        max: max_path_len(),
    })?;
    clear_stale(path)?;
    let fd: OwnedFd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create a socket", None, e.into()))?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(|e| match e {
        nix::errno::Errno::EADDRINUSE => Error::SocketPathInUse {
            path: path.to_owned(),
            reason: "another process created it at the same moment".to_owned(),
        },
        e => Error::io(crate::error::BIND, Some(path.to_owned()), e.into()),
    })?;
    // bind → chmod 0600 → listen, with nothing in between: a client that finds the file (and a
    // waiting manhole-cli) must find it listening.
    let finish = || -> Result<UnixListener, Error> {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("restrict the socket to its owner", Some(path.to_owned()), e))?;
        let backlog = Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN);
        socket::listen(&fd, backlog).map_err(|e| Error::io("listen", Some(path.to_owned()), e.into()))?;
        Ok(UnixListener::from(fd))
    };
    let listener = finish().inspect_err(|_| {
        let _ = fs::remove_file(path);
    })?;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Err(Error::io("inspect the new socket", Some(path.to_owned()), e)),
    };
    // After bind, whose errors say best what is wrong with the directory.
    let (dir, name) = match open_parent(path) {
        Ok(opened) => opened,
        Err(e) => {
            let _ = fs::remove_file(path);
            return Err(e);
        }
    };
    let file = SocketFile {
        path: path.to_owned(),
        dir: Some(Arc::new(Registered::new(dir))),
        name,
        dev: meta.dev(),
        ino: meta.ino(),
        owner_pid: std::process::id(),
        uid: meta.uid(),
    };
    match listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("make the socket non-blocking", Some(path.to_owned()), e))
    {
        Ok(()) => Ok(BoundSocket { listener, file }),
        Err(err) => {
            let _ = file.remove();
            Err(err)
        }
    }
}

/// The directory `path` is in, opened to remove the socket from later, and its name there.
fn open_parent(path: &Path) -> Result<(OwnedFd, Vec<u8>), Error> {
    let name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let dir = sys::openat(libc::AT_FDCWD, parent.as_os_str().as_bytes(), flags)
        .map_err(|e| Error::io("open the socket's directory", Some(parent.to_owned()), e))?;
    Ok((dir, name))
}

/// Makes room at `path` when what is there is a stale socket of ours; refuses anything else.
fn clear_stale(path: &Path) -> Result<(), Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("inspect the socket path", Some(path.to_owned()), e)),
    };
    let in_use = |reason: String| Error::SocketPathInUse {
        path: path.to_owned(),
        reason,
    };
    if !meta.file_type().is_socket() {
        return Err(in_use(format!(
            "{} is there, not a socket; manhole leaves it alone",
            describe(&meta)
        )));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(in_use(format!(
            "it is a socket of uid {} (this process runs as uid {euid}); manhole leaves it alone",
            meta.uid()
        )));
    }
    match probe(path) {
        Probe::Live => Err(in_use("a live process is listening there".to_owned())),
        Probe::Stale => {
            // Nobody listens: the socket of a process that died without cleaning up.
            match fs::remove_file(path) {
                Ok(()) => {
                    mlog!("Removed stale socket {}", path.display());
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("remove the stale socket", Some(path.to_owned()), e)),
            }
        }
        Probe::Gone => Ok(()),
        Probe::Failed(e) => Err(Error::io(
            "check whether the socket is live",
            Some(path.to_owned()),
            e,
        )),
    }
}

enum Probe {
    Live,
    Stale,
    Gone,
    Failed(io::Error),
}

/// Whether something listens at `path`, without ever blocking: a listener that is stopped or
/// overwhelmed (its backlog full) answers `EAGAIN`, which counts as live.
fn probe(path: &Path) -> Probe {
    let Ok(addr) = UnixAddr::new(path) else {
        return Probe::Gone;
    };
    let fd = match socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return Probe::Failed(e.into()),
    };
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINPROGRESS) => Probe::Live,
        Err(nix::errno::Errno::ECONNREFUSED) => Probe::Stale,
        Err(nix::errno::Errno::ENOENT) => Probe::Gone,
        Err(e) => Probe::Failed(e.into()),
    }
}

fn describe(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else {
        "a device or other special file"
    }
}

fn max_path_len() -> usize {
    // `sun_path` is the struct's last field, and leaves room for the terminating NUL.
    std::mem::size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// A private directory for one test, removed when the test ends.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("manhole-unit-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn sock(&self) -> PathBuf {
            self.0.join("sock")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn binds_with_mode_0600_and_removes_only_its_inode() {
        let dir = Scratch::new("mode");
        let path = dir.sock();
        let bound = bind(&path).unwrap();
        let mode = fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        UnixStream::connect(&path).unwrap();
        // A different inode at the same path is not ours to remove.
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"someone else's").unwrap();
        assert!(matches!(bound.file.remove(), Removal::Replaced));
        assert_eq!(fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn stale_socket_is_replaced_live_one_is_not() {
        let dir = Scratch::new("stale");
        let path = dir.sock();
        let first = bind(&path).unwrap();
        let err = bind(&path).unwrap_err();
        assert!(
            err.to_string().contains("a live process is listening there"),
            "{err}"
        );
        drop(first.listener); // the file stays, nobody listens: stale
        assert!(path.exists());
        let second = bind(&path).unwrap();
        UnixStream::connect(&path).unwrap();
        assert!(matches!(second.file.remove(), Removal::Removed));
        assert!(!path.exists());
    }

    #[test]
    fn foreign_files_are_left_alone() {
        let dir = Scratch::new("foreign");
        let path = dir.sock();
        fs::write(&path, b"precious").unwrap();
        let err = bind(&path).unwrap_err();
        assert!(matches!(err, Error::SocketPathInUse { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("a regular file"),
            "{text}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"precious");

        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(bind(&path).unwrap_err().to_string().contains("a directory"));
        fs::remove_dir(&path).unwrap();

        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        assert!(bind(&path).unwrap_err().to_string().contains("a symbolic link"));
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    }

    #[test]
    fn overlong_paths_are_refused_clearly() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let err = bind(&long).unwrap_err();
        assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
