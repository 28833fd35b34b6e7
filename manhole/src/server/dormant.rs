//! The `manhole` thread of the modes that start dormant: after a signal (`activate_on`), one
//! session per signal or per [`Handle::handle_oneshot`](crate::Handle::handle_oneshot)
//! (`oneshot_on`, and manual mode with `thread(false)`). It sleeps in poll(2) on its
//! [`Trigger`] and the wake-up pipe: no timer, no wake-ups while idle.

use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::Server;
use super::accept::AcceptBackoff;
use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::options::Mode;
use crate::trigger::Trigger;

/// What woke a dormant manhole thread.
enum Woken {
    Triggered,
    Stopping,
}

/// Sleeps until the trigger fires or the manhole stops. No timer: no wake-ups while idle.
fn wait(trigger: &Trigger, wake: &UnixStream) -> Woken {
    loop {
        let mut fds = [
            PollFd::new(trigger.reader(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                if ready(&fds[1]) {
                    return Woken::Stopping;
                }
                if ready(&fds[0]) {
                    trigger.drain();
                    return Woken::Triggered;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                mlog!("poll failed: {e}; the manhole stops listening for triggers");
                return Woken::Stopping;
            }
        }
    }
}

/// The body of the `manhole` thread for the modes that start dormant.
pub(super) fn run_dormant(
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
                match wait(&trigger, &wake) {
                    Woken::Triggered => match server.bind() {
                        Ok(listener) => {
                            mlog!("Activated by {signal}");
                            server.listen(listener, wake, Some(trigger));
                            return;
                        }
                        Err(e) => mlog!("Cannot activate on {signal}: {e}; waiting for the next one"),
                    },
                    Woken::Stopping => return,
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
                match wait(&trigger, &wake) {
                    Woken::Triggered => {
                        if !serve_once(&server, &wake, timeout) {
                            return;
                        }
                    }
                    Woken::Stopping => return,
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
