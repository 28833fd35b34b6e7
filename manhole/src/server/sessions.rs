//! The table of open sessions: who is connected, the end of each session, what every session
//! is sent (the program's stderr, the exit notice), and waiting for them to end.
//!
//! Lock order: `Server::sessions` before the tee's own lock (`admit` and `forget` start and
//! stop the tee while holding the table).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::{Server, lock};
use crate::console::SessionInfo;
use crate::stderr_tee::StderrSink;
use crate::sys;

impl Server {
    /// Waits until no session is open, or the manhole stops; false when it stops.
    pub(crate) fn wait_until_no_session_or_stopping(&self) -> bool {
        let mut sessions = lock(&self.sessions);
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return false;
            }
            if sessions.open.is_empty() {
                return true;
            }
            sessions = self
                .sessions_changed
                .wait(sessions)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(super) fn forget(&self, id: u64) {
        // A session's end is a moment manhole runs: if the program changed its uid meanwhile,
        // the accept loop re-creates the socket.
        let euid = nix::unistd::geteuid().as_raw();
        if self.listening.load(Ordering::Acquire)
            && lock(&self.socket).as_ref().is_some_and(|file| file.uid != euid)
            && let Some(wake) = lock(&self.wake).as_ref()
        {
            let _ = sys::send_all(wake, b"u", true);
        }
        let mut sessions = lock(&self.sessions);
        sessions.open.remove(&id);
        let last = sessions.open.is_empty();
        if last && let Some(tee) = &self.tee {
            tee.stop();
        }
        drop(sessions);
        self.sessions_changed.notify_all();
        if last {
            // Nobody is looking: give back what dumps keep for the next one.
            crate::stacks::release_caches();
        }
    }

    /// The open sessions, oldest first.
    pub(crate) fn sessions(&self) -> Vec<SessionInfo> {
        let me = thread::current().id();
        lock(&self.sessions)
            .open
            .iter()
            .map(|(id, e)| SessionInfo {
                id: *id,
                peer: e.peer,
                opened: e.opened,
                is_current: e.thread == Some(me),
            })
            .collect()
    }

    /// Waits until no session is open (other than the caller's own), or until the deadline.
    pub(super) fn wait_for_sessions(&self, deadline: Option<Instant>) -> usize {
        let me = thread::current().id();
        let mut sessions = lock(&self.sessions);
        loop {
            let others = sessions.open.values().filter(|e| e.thread != Some(me)).count();
            if others == 0 {
                return 0;
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => return others,
                },
                None => Duration::from_secs(3600),
            };
            sessions = self
                .sessions_changed
                .wait_timeout(sessions, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn broadcast(&self, line: &str) {
        let me = thread::current().id();
        for entry in lock(&self.sessions)
            .open
            .values()
            .filter(|e| e.thread != Some(me))
        {
            let _ = sys::send_all(&entry.stream, line.as_bytes(), true);
        }
    }
}

impl StderrSink for Server {
    /// Sends a chunk of the program's stderr to every open session, dropping it for any client
    /// whose socket is full.
    fn offer(&self, chunk: &[u8]) {
        // Machine mode promises exactly one JSON document per command: no raw text there.
        for entry in lock(&self.sessions)
            .open
            .values()
            .filter(|e| !e.machine.load(Ordering::Acquire))
        {
            let _ = sys::send_all(&entry.stream, chunk, true);
        }
    }
}
