//! `redirect_stderr`: while a session is open, what the process writes to fd 2 also reaches the
//! open sessions, and still reaches the original stderr.
//!
//! On the first session, fd 2 is replaced (dup2) by the write end of a pipe, and the original
//! kept; a `manhole-stderr` thread drains the pipe at once, writes each chunk to the original
//! stderr exactly as the program would have, then offers it to every session without waiting
//! (`MSG_DONTWAIT`): a client that does not read loses output, the program never waits for it.
//! The pipe stays blocking, as fd 2 was (std's `eprintln!` panics on `EAGAIN`), and the thread
//! keeps it empty. When the last session ends, the original fd 2 is put back and the thread
//! ends once the pipe is drained. A forked child gets its original fd 2 back at once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::fork::Registered;
use crate::logging::mlog;
use crate::server::Server;
use crate::sys;

/// The original fd 2 while the tee is on (for forked children), or -1.
static ORIGINAL: AtomicI32 = AtomicI32::new(-1);

/// In a forked child: puts the original stderr back (dup2 is async-signal-safe).
pub(crate) fn restore_in_child() {
    let original = ORIGINAL.load(Ordering::Acquire);
    if original >= 0 {
        // SAFETY: `original` is the child's copy of the saved descriptor; dup2 onto 2 is what
        // the parent does when the tee ends.
        unsafe { libc::dup2(original, 2) };
    }
}

/// The tee while it runs.
struct Running {
    original: Registered<OwnedFd>,
    /// The pipe's write end manhole holds besides fd 2 (closed to let the thread finish).
    writer: Registered<OwnedFd>,
}

#[derive(Default)]
pub(crate) struct Tee {
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tee")
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Tee {
    /// Starts the tee if it is not running.
    pub(crate) fn start(&self, server: &Arc<Server>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.is_some() {
            return;
        }
        match Self::swap_in(server) {
            Ok(tee) => {
                ORIGINAL.store(tee.original.as_raw_fd(), Ordering::Release);
                *running = Some(tee);
                mlog!("Redirecting stderr into sessions");
            }
            Err(e) => mlog!("Cannot redirect stderr: {e}; sessions will not show it"),
        }
    }

    fn swap_in(server: &Arc<Server>) -> io::Result<Running> {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors pipe2 writes.
        check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: both descriptors were just created and are owned here alone.
        let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
        // Registered, so a forked child closes its copies (see the `fork` module).
        let (reader, writer) = (Registered::new(reader), Registered::new(writer));
        // SAFETY: F_DUPFD_CLOEXEC duplicates fd 2 into a new descriptor owned below.
        let original = check(unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) })?;
        // SAFETY: `original` was just created and is owned here alone.
        let original = Registered::new(unsafe { OwnedFd::from_raw_fd(original) });
        let copy = Registered::new(original.try_clone()?);
        let weak = Arc::downgrade(server);
        server.spawn_thread("manhole-stderr", move || pump(reader, copy, weak))?;
        // SAFETY: dup2 atomically points fd 2 at the pipe; other threads writing to fd 2 see
        // either the old or the new file, never a closed descriptor.
        check(unsafe { libc::dup2(writer.as_raw_fd(), 2) })?;
        Ok(Running { original, writer })
    }

    /// Puts the original stderr back if the tee is running.
    pub(crate) fn stop(&self) {
        let taken = self.running.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(Running { original, writer }) = taken {
            ORIGINAL.store(-1, Ordering::Release);
            // SAFETY: as in `swap_in`: an atomic switch of fd 2 back to the original file.
            unsafe { libc::dup2(original.as_raw_fd(), 2) };
            drop(writer); // with fd 2 switched back, the pump now sees EOF once drained
            mlog!("Stderr restored");
        }
    }
}

/// Copies the pipe to the original stderr and to every open session, until EOF.
fn pump(reader: Registered<OwnedFd>, original: Registered<OwnedFd>, server: Weak<Server>) {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: `reader` is an open pipe end owned by this thread; the buffer is valid.
        let n = unsafe { libc::read(reader.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let read = if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
        match read {
            Ok(0) => return,
            Ok(n) => {
                let chunk = &buf[..n];
                let _ = sys::write_all_fd(original.as_raw_fd(), chunk);
                if let Some(server) = server.upgrade() {
                    server.offer_to_sessions(chunk);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
