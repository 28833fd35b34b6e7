//! Who may open a session: the client's credentials, then the session limit. A refused
//! client reads one line (see [`crate::protocol`]) and EOF.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::SystemTime;

use super::{Server, SessionEntry, lock};
use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::stderr_tee::StderrSink;
use crate::{protocol, session, sys};

/// Whether a client of uid `peer_uid` may be served by a process of effective uid `euid`:
/// the same user, or root.
fn may_connect(peer_uid: u32, euid: u32) -> bool {
    peer_uid == euid || peer_uid == 0
}

/// Whether another session fits beside `open` ones.
fn has_room(open: usize, max: usize) -> bool {
    open < max
}

impl Server {
    /// Checks who connected and starts a session, or refuses with one line and EOF.
    pub(crate) fn admit(self: &Arc<Self>, stream: UnixStream) {
        let stream = Registered::new(stream);
        let fd = stream.as_raw_fd();
        let refuse = |line: &str| {
            // One line into an empty socket buffer: never blocks, and never raises SIGPIPE.
            let _ = sys::send_all(&stream, line.as_bytes(), true);
            // Closing with unread input would reset the connection, and the client could lose
            // the line: drop what it sent already, then close.
            let _ = stream.set_nonblocking(true);
            let mut sink = [0u8; 4096];
            while matches!((&*stream).read(&mut sink), Ok(n) if n > 0) {}
        };
        if let Err(e) = stream
            .set_nonblocking(false)
            .and_then(|()| sys::no_sigpipe(&stream))
        {
            mlog!("Dropped connection on fd:{fd}: {e}");
            return;
        }
        let peer = match sys::peer_credentials(&stream) {
            Ok(peer) => peer,
            Err(e) => {
                mlog!("Dropped connection on fd:{fd}: cannot read peer credentials: {e}");
                refuse(&protocol::denied_unreadable_credentials());
                return;
            }
        };
        let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        let euid = nix::unistd::geteuid().as_raw();
        if !may_connect(peer.uid, euid) {
            mlog!(
                "Refused connection on fd:{fd} from PID:{pid} UID:{} GID:{}: not EUID:{euid} or ROOT",
                peer.uid,
                peer.gid
            );
            refuse(&protocol::denied_uid(peer.uid, euid));
            return;
        }
        let machine = Arc::new(AtomicBool::new(false));
        let id = {
            let mut sessions = lock(&self.sessions);
            if !has_room(sessions.open.len(), self.config.max_sessions) {
                drop(sessions);
                mlog!(
                    "Refused connection on fd:{fd} from PID:{pid}: {} sessions already open",
                    self.config.max_sessions
                );
                refuse(&protocol::too_many_sessions(self.config.max_sessions));
                return;
            }
            let Ok(shadow) = stream.try_clone().map(Registered::new) else {
                drop(sessions);
                refuse(protocol::OUT_OF_FDS);
                return;
            };
            sessions.next_id += 1;
            let id = sessions.next_id;
            // Under the sessions lock, so the last session's end cannot stop it right after.
            if let Some(tee) = &self.tee {
                let sink: Weak<dyn StderrSink> = Arc::downgrade(self) as Weak<Server>;
                tee.start(&self.spawner, &sink);
            }
            sessions.open.insert(
                id,
                SessionEntry {
                    stream: shadow,
                    fd,
                    machine: Arc::clone(&machine),
                    peer,
                    opened: SystemTime::now(),
                    thread: None,
                },
            );
            id
        };
        mlog!(
            "Accepted connection on fd:{fd} from PID:{pid} UID:{} GID:{}",
            peer.uid,
            peer.gid
        );
        let server = Arc::clone(self);
        let spawned = self.spawner.spawn("manhole-session", move || {
            crate::session_thread::mark();
            let _in_use = crate::stacks::InUse::new();
            lock(&server.sessions)
                .open
                .entry(id)
                .and_modify(|e| e.thread = Some(thread::current().id()));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session::serve(&*server, stream, peer, &machine, server.config.idle_timeout)
            }));
            if outcome.is_err() {
                mlog!("Session from PID:{pid} ended by an internal error; the service goes on");
            }
            server.forget(id);
        });
        if let Err(e) = spawned {
            mlog!("Cannot start a session thread: {e}");
            if let Some(entry) = lock(&self.sessions).open.get(&id) {
                let _ = sys::send_all(&entry.stream, protocol::CANNOT_START.as_bytes(), true);
            }
            self.forget(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal a test can only reach as root with a second user, decided here for any uid.
    #[test]
    fn only_the_same_user_and_root_get_in() {
        assert!(may_connect(1000, 1000));
        assert!(may_connect(0, 1000), "root may attach to anyone's");
        assert!(!may_connect(1001, 1000));
        assert!(!may_connect(1000, 0), "a user may not attach to root's");
        assert!(may_connect(0, 0));
    }

    #[test]
    fn the_session_limit_counts_the_open_ones() {
        assert!(has_room(0, 1));
        assert!(!has_room(1, 1));
        assert!(has_room(31, 32));
        assert!(!has_room(40, 32));
    }
}
