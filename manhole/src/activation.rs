//! How a manhole comes to listen: always (from install), after a signal (`activate_on`), one
//! session per signal or per [`Handle::handle_oneshot`](crate::Handle::handle_oneshot)
//! (`oneshot_on`, and manual mode with `thread(false)`).
//!
//! A signal never does the work itself: the action registered with signal-hook-registry (which
//! keeps calling any handler the application had) writes one byte to a non-blocking pipe, and
//! the dormant `manhole` thread, asleep in poll(2), does the rest. A repeated signal only adds a
//! byte, or nothing once the pipe is full. The byte written is drained before acting, so a
//! signal arriving while a one-shot session runs is not lost but also not counted twice.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::Signal;
use crate::fork::Registered;
use crate::logging::mlog;
use crate::options::Mode;
use crate::server::{AcceptBackoff, Server};

/// The pipe a signal or `handle_oneshot` writes to, and the signal action that writes it.
pub(crate) struct Trigger {
    reader: Registered<UnixStream>,
    writer: Registered<UnixStream>,
    action: Option<signal_hook_registry::SigId>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("signal_action", &self.action.is_some())
            .finish()
    }
}

impl Trigger {
    /// A trigger, fired by `signal` if one is given.
    pub(crate) fn new(signal: Option<Signal>) -> io::Result<Trigger> {
        let (reader, writer) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        let (reader, writer) = (Registered::new(reader), Registered::new(writer));
        let action = match signal {
            Some(signal) => {
                let fd: RawFd = writer.as_raw_fd();
                let owner = std::process::id() as libc::pid_t;
                // SAFETY: the action only calls getpid(2) and write(2), both async-signal-safe,
                // on a descriptor that stays open until the action is unregistered (see
                // `Drop`). In a forked child the descriptor is closed and its number may be
                // reused, so the action does nothing there.
                let id = unsafe {
                    signal_hook_registry::register(signal.as_raw(), move || {
                        if libc::getpid() == owner {
                            let byte = 1u8;
                            libc::write(fd, (&byte as *const u8).cast(), 1);
                        }
                    })
                }?;
                Some(id)
            }
            None => None,
        };
        Ok(Trigger {
            reader,
            writer,
            action,
        })
    }

    /// Fires the trigger from ordinary code.
    pub(crate) fn fire(&self) -> io::Result<()> {
        match (&*self.writer).write_byte() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()), // already pending
            other => other,
        }
    }

    /// Descriptors it holds, for `fds`.
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.reader.as_raw_fd(), self.writer.as_raw_fd()]
    }

    /// The end the dormant thread watches.
    pub(crate) fn reader(&self) -> std::os::fd::BorrowedFd<'_> {
        self.reader.as_fd()
    }

    /// Reads away pending trigger bytes.
    pub(crate) fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&*self.reader).read(&mut sink), Ok(n) if n > 0) {}
    }
}

trait WriteByte {
    fn write_byte(self) -> io::Result<()>;
}

impl WriteByte for &UnixStream {
    fn write_byte(self) -> io::Result<()> {
        use std::io::Write;
        let mut stream = self;
        stream.write_all(&[1])
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        // The action goes before the pipe it writes to.
        if let Some(action) = self.action.take() {
            signal_hook_registry::unregister(action);
        }
    }
}

/// What woke a dormant manhole thread.
enum Woken {
    Triggered,
    Stopping,
}

/// Sleeps until the trigger fires or the manhole stops. No timer: no wake-ups while idle.
fn wait(trigger: &Trigger, wake: &UnixStream, timeout: Option<Duration>) -> Option<Woken> {
    loop {
        let mut fds = [
            PollFd::new(trigger.reader.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        let limit = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut fds, limit) {
            Ok(0) => return None,
            Ok(_) => {
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                if ready(&fds[1]) {
                    return Some(Woken::Stopping);
                }
                if ready(&fds[0]) {
                    trigger.drain();
                    return Some(Woken::Triggered);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                mlog!("poll failed: {e}; the manhole stops listening for triggers");
                return Some(Woken::Stopping);
            }
        }
    }
}

/// The body of the `manhole` thread for the modes that start dormant.
pub(crate) fn run_dormant(
    server: Arc<Server>,
    trigger: Arc<Trigger>,
    wake: Registered<UnixStream>,
    timeout: Duration,
) {
    let pid = std::process::id();
    match server.mode() {
        Mode::ActivateOn(signal) => {
            mlog!("Waiting for {signal} to start listening (in pid:{pid}) ...");
            loop {
                match wait(&trigger, &wake, None) {
                    Some(Woken::Triggered) => match server.bind() {
                        Ok(listener) => {
                            mlog!("Activated by {signal}");
                            server.listen(listener, wake, Some(trigger));
                            return;
                        }
                        Err(e) => mlog!("Cannot activate on {signal}: {e}; waiting for the next one"),
                    },
                    _ => return,
                }
            }
        }
        Mode::Oneshot(_) | Mode::Manual => {
            let cause = match server.mode() {
                Mode::Oneshot(s) => format!("{s} or handle_oneshot()"),
                _ => "handle_oneshot()".to_owned(),
            };
            loop {
                mlog!("Waiting for {cause} to serve one session (in pid:{pid}) ...");
                match wait(&trigger, &wake, None) {
                    Some(Woken::Triggered) => {
                        if !serve_once(&server, &wake, timeout) {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }
        Mode::Always => {}
    }
}

/// Binds, waits up to `timeout` for one client, serves it, and removes the socket as soon as
/// the client is in. Returns false when the manhole is stopping.
fn serve_once(server: &Arc<Server>, wake: &UnixStream, timeout: Duration) -> bool {
    let listener: Registered<UnixListener> = match server.bind() {
        Ok(listener) => listener,
        Err(e) => {
            mlog!("Cannot serve a one-shot session: {e}");
            return true;
        }
    };
    // Wait out the whole window: a stack dump's signal interrupts poll (EINTR), which is not
    // the end of the window. After a failed accept (EMFILE…) the waiting client keeps the
    // listener readable: as in the always-on loop, only the wake-up pipe is watched until the
    // back-off has passed.
    let deadline = std::time::Instant::now() + timeout;
    let mut backoff = AcceptBackoff::default();
    let client = loop {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            break None;
        };
        let backing_off = backoff.delay();
        let wait = backing_off.map_or(left, |delay| delay.min(left));
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        if backing_off.is_none() {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        let outcome = poll(&mut fds, PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX));
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[0]) {
            server.unbind();
            return false;
        }
        let try_accept = match outcome {
            Ok(0) => backing_off.is_some(), // the back-off passed (or the window ended)
            Ok(_) => true,
            Err(e) => {
                backoff.poll_failed(e);
                false
            }
        };
        if try_accept {
            match listener.accept() {
                Ok((stream, _)) => {
                    backoff.accepted();
                    break Some(stream);
                }
                // A client that left already is retried at once; EMFILE and the like back off.
                Err(e) => backoff.accept_failed(&e),
            }
        }
    };
    // Exactly one session: nobody else gets in from here on.
    drop(listener);
    server.unbind();
    match client {
        None if backoff.delay().is_some() => {
            mlog!(
                "The one-shot window of {} s ended while accept kept failing; socket removed, \
                 a client waiting in it was not served",
                timeout.as_secs()
            );
            true
        }
        None => {
            mlog!("No client within {} s; socket removed", timeout.as_secs());
            true
        }
        Some(stream) => {
            server.admit(stream);
            server.wait_until_no_session_or_stopping()
        }
    }
}
