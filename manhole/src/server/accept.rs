//! The accept loop of the `manhole` thread, and how it backs off when accept(2) fails.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};

use super::{Server, lock};
use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::socket_file;
use crate::sys;
use crate::trigger::Trigger;

/// How an accept loop waits after accept(2) or poll(2) failed with an error that does not pass
/// by itself (EMFILE, ENFILE, ENOBUFS, ENOMEM…). The client waiting in the backlog keeps the
/// listener readable, so polling it again at once would spin a core: the loop watches only its
/// wake-up pipe for the delay (50 ms, doubling up to 2 s), then tries again. A client that gave
/// up (ECONNABORTED), a spurious wake-up (EAGAIN) or a signal (EINTR) is retried at once.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: Duration,
}

impl AcceptBackoff {
    /// How long to leave the listener alone, while backing off.
    pub(crate) fn delay(&self) -> Option<Duration> {
        (!self.delay.is_zero()).then_some(self.delay)
    }

    /// A client was accepted.
    pub(crate) fn accepted(&mut self) {
        if !self.delay.is_zero() {
            mlog!("Accepting connections again");
        }
        self.delay = Duration::ZERO;
    }

    pub(crate) fn accept_failed(&mut self, e: &io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
        ) {
            self.delay = Duration::ZERO;
        } else {
            self.grow(&format!("Accept failed: {e}"));
        }
    }

    pub(crate) fn poll_failed(&mut self, e: nix::errno::Errno) {
        if e != nix::errno::Errno::EINTR {
            self.grow(&format!("poll failed: {e}"));
        }
    }

    fn grow(&mut self, what: &str) {
        let next = (self.delay * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
        // One line per new delay: a handful per outage, then silence at the 2 s cap.
        if next != self.delay {
            mlog!("{what}; retrying in {} ms", next.as_millis());
        }
        self.delay = next;
    }
}

impl Server {
    /// The accept loop of the `manhole` thread. It sleeps in poll(2) until a client or the
    /// wake-up pipe makes it runnable: no timer, no wake-ups while idle.
    pub(crate) fn listen(
        self: Arc<Self>,
        mut listener: Registered<UnixListener>,
        mut wake: Registered<UnixStream>,
        trigger: Option<Arc<Trigger>>,
    ) {
        let pid = std::process::id();
        self.listening.store(true, Ordering::Release);
        let mut backoff = AcceptBackoff::default();
        loop {
            // Every time this thread runs (a client, a signal, a session's end), and never on a
            // timer: glibc's setuid interrupts every thread, this poll included, and the poll
            // below cannot miss one that lands after this look (see `poll_unless_changed`).
            let seen = nix::unistd::geteuid();
            self.follow_euid(&mut listener);
            let backing_off = backoff.delay().is_some();
            if !backing_off {
                mlog!("Waiting for new connection (in pid:{pid}) ...");
            }
            let (client_ready, woken) = {
                let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
                if !backing_off {
                    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
                }
                // Once activated, a repeated activation signal is read away and ignored.
                if let Some(trigger) = &trigger {
                    fds.push(PollFd::new(trigger.reader(), PollFlags::POLLIN));
                }
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                match sys::poll_unless_changed(&mut fds, backoff.delay(), || nix::unistd::geteuid() == seen) {
                    Ok(None) => (false, false), // the ids changed since the look: look again
                    Ok(Some(_)) => {
                        if let Some(trigger) = &trigger {
                            trigger.drain();
                        }
                        (!backing_off && fds.get(1).is_some_and(ready), ready(&fds[0]))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (false, false),
                    Err(e) => {
                        backoff.poll_failed(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)));
                        (false, false)
                    }
                }
            };
            if woken {
                let _ = wake.read(&mut [0u8; 16]);
            }
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            if woken {
                continue; // asked to look at the euid again
            }
            if !client_ready && !backing_off {
                continue;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    backoff.accepted();
                    self.admit(stream);
                }
                Err(e) => backoff.accept_failed(&e),
            }
        }
        self.listening.store(false, Ordering::Release);
        mlog!("Listener stopped.");
    }

    /// After the program changed its effective uid (a daemon dropping root after install), the
    /// socket is still the old uid's, mode 0600: the program's new user could not connect.
    /// Re-creates it at the same path as the new uid, or says in the log why it cannot. Tried
    /// once per new uid.
    pub(super) fn follow_euid(self: &Arc<Self>, listener: &mut Registered<UnixListener>) {
        let euid = nix::unistd::geteuid().as_raw();
        let Some(file_uid) = lock(&self.socket).as_ref().map(|file| file.uid) else {
            return;
        };
        if euid == file_uid || self.euid_tried.swap(euid, Ordering::AcqRel) == euid {
            return;
        }
        let path = self.path.display();
        mlog!(
            "The process now runs as uid {euid}, but uid {file_uid} created the socket {path}: re-creating it"
        );
        // Who waits in the old socket's backlog is served before that socket goes.
        while let Ok((stream, _)) = listener.accept() {
            self.admit(stream);
        }
        let Some(old) = lock(&self.socket).take() else {
            return;
        };
        let removal = old.remove();
        if let Some(why) = old.removal_error(&removal) {
            old.arm_death_cleanup();
            *lock(&self.socket) = Some(old);
            mlog!(
                "Cannot re-create the socket as uid {euid}: {why}. It stays uid {file_uid}'s (mode 0600): \
                 only root can connect until the process runs as uid {file_uid} again"
            );
            return;
        }
        match socket_file::bind(&self.path) {
            Ok(bound) => {
                bound.file.arm_death_cleanup();
                *lock(&self.listener_fd) = Some(bound.listener.as_raw_fd());
                *lock(&self.socket) = Some(bound.file);
                *listener = Registered::new(bound.listener);
                mlog!("Manhole UDS path: {path} (re-created as uid {euid})");
            }
            Err(e) => {
                *lock(&self.listener_fd) = None;
                mlog!("Cannot re-create the socket as uid {euid}: {e}. No socket now: nobody can connect");
            }
        }
    }
}
