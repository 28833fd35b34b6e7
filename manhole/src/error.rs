//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why [`install`](crate::install) or another manhole operation failed.
///
/// Every message names what went wrong and, where there is one, the path involved. New variants
/// may be added in minor releases, so matches need a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A manhole is already installed in this process and [`Options::strict`](crate::Options::strict)
    /// is on (the default). Install with `strict(false)` to replace it instead.
    AlreadyInstalled {
        /// Where the installed manhole listens, if it listens now.
        socket_path: Option<PathBuf>,
    },
    /// Two options contradict each other (for example the same signal for `activate_on` and
    /// `oneshot_on`). Nothing was installed.
    ConfigurationConflict {
        /// What contradicts what.
        message: String,
    },
    /// A signal given as a name or number is not one this system has, or cannot be used for
    /// what it was asked for.
    InvalidSignal {
        /// The signal as it was given.
        value: String,
        /// Why it was refused, with the accepted forms.
        reason: String,
    },
    /// The option is part of the API but this release cannot honour it yet. Nothing was installed.
    NotSupported {
        /// The option, as the builder method is named.
        option: &'static str,
        /// What is missing.
        detail: &'static str,
    },
    /// Something already sits at the socket path and manhole will not remove it: a file that is
    /// not a socket, a socket of another user, or a socket with a live listener.
    SocketPathInUse {
        /// The path that is in use.
        path: PathBuf,
        /// What was found there.
        reason: String,
    },
    /// The socket path does not fit in a Unix socket address.
    SocketPathTooLong {
        /// The path that was given.
        path: PathBuf,
        /// The longest path this system accepts, in bytes.
        max: usize,
    },
    /// An operating system call failed.
    Io {
        /// What manhole was doing, for example "bind the socket".
        action: &'static str,
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The error the OS returned.
        source: io::Error,
    },
}

/// The action of a failed bind(2), which gets a hint about the directory.
pub(crate) const BIND: &str = "bind the socket";

impl Error {
    pub(crate) fn io(action: &'static str, path: Option<PathBuf>, source: io::Error) -> Self {
        Error::Io { action, path, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInstalled {
                socket_path: Some(path),
            } => write!(
                f,
                "manhole is already installed (listening at {}); use strict(false) to replace it",
                path.display()
            ),
            Error::AlreadyInstalled { socket_path: None } => {
                f.write_str("manhole is already installed; use strict(false) to replace it")
            }
            Error::ConfigurationConflict { message } => write!(f, "conflicting options: {message}"),
            Error::InvalidSignal { value, reason } => write!(f, "invalid signal {value:?}: {reason}"),
            Error::NotSupported { option, detail } => {
                write!(f, "option `{option}` is not supported yet: {detail}")
            }
            Error::SocketPathInUse { path, reason } => {
                write!(f, "cannot listen at {}: {reason}", path.display())
            }
            Error::SocketPathTooLong { path, max } => write!(
                f,
                "socket path {} is too long ({} bytes; at most {max})",
                path.display(),
                path.as_os_str().len()
            ),
            Error::Io {
                action,
                path: Some(path),
                source,
            } => {
                write!(f, "cannot {action} at {}: {source}", path.display())?;
                if *action == BIND {
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."));
                    let dir = dir.display();
                    match source.kind() {
                        io::ErrorKind::PermissionDenied => write!(
                            f,
                            "; this user may not create files in {dir}: choose a socket_path in a \
                             directory it owns"
                        )?,
                        io::ErrorKind::NotFound => write!(f, "; the directory {dir} does not exist")?,
                        io::ErrorKind::ReadOnlyFilesystem => {
                            write!(f, "; {dir} is on a read-only file system")?
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Error::Io {
                action,
                path: None,
                source,
            } => write!(f, "cannot {action}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
