//! What a command is, and what it may ask of the running manhole.

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::reply::Outcome;
use crate::registry::Local;
use crate::spawn::Spawner;
use crate::sys::{PeerCred, SignalSet};

/// One console command: its documentation (from which `help` and the CLI's completion are
/// made) and the function that runs it. Each command family is a module of `console` ending
/// in a `COMMANDS` table; `console::ALL` lists the tables.
pub(crate) struct Command {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) usage: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) details: &'static str,
    pub(crate) group: Group,
    pub(crate) effect: Effect,
    /// Whether `watch` may run it again and again (not the commands that steer the session).
    pub(crate) watchable: bool,
    pub(crate) run: fn(&[&str], &Context<'_>) -> Outcome,
}

/// Where a command is listed in `help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Look,
    Values,
    Session,
}

impl Group {
    pub(crate) const ALL: [Group; 3] = [Group::Look, Group::Values, Group::Session];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Group::Look => "Look at the process",
            Group::Values => "What the program exposes",
            Group::Session => "This session",
        }
    }
}

/// What running a command does to the process.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Effect {
    ReadsOnly,
    PausesThreads,
    ChangesState,
    RunsCode,
}

impl Effect {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Effect::ReadsOnly => "reads only; changes nothing in the process",
            Effect::PausesThreads => "reads only; pauses each thread for a few microseconds",
            Effect::ChangesState => "changes the program's state (logged with your pid and uid)",
            Effect::RunsCode => "runs the program's code, with its effects (logged with your pid and uid)",
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Effect::ReadsOnly => "reads",
            Effect::PausesThreads => "pauses_threads",
            Effect::ChangesState => "changes_state",
            Effect::RunsCode => "runs_code",
        }
    }
}

/// What a command may ask of the running manhole: implemented by the server, and by a fake in
/// the console's tests. Commands never see the server, its sockets or its locks.
pub(crate) trait Host: Sync {
    /// The open sessions, oldest first.
    fn sessions(&self) -> Vec<SessionInfo>;
    /// How many sessions may be open at once.
    fn max_sessions(&self) -> usize;
    /// Where the manhole listens now, if it does.
    fn socket_path(&self) -> Option<PathBuf>;
    /// When the manhole was installed.
    fn started(&self) -> Instant;
    /// Every descriptor manhole holds.
    fn own_fds(&self) -> Vec<RawFd>;
    /// The values given to `Options::local`.
    fn locals(&self) -> &[Local];
    /// The signal mask the program's own code runs with on a manhole thread.
    fn program_mask(&self) -> SignalSet;
    /// Starts named manhole threads that block the program's signals.
    fn spawner(&self) -> &Spawner;
}

/// What `clients` shows of one session.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    pub(crate) id: u64,
    pub(crate) peer: PeerCred,
    pub(crate) opened: SystemTime,
    /// Whether it is the session asking.
    pub(crate) is_current: bool,
}

/// What a command gets: the running manhole, and who asks in which session.
pub(crate) struct Context<'a> {
    pub(crate) host: &'a dyn Host,
    /// Who is asking: `set` and `call` are logged with it.
    pub(crate) peer: PeerCred,
    /// The client's socket, to notice it leaving during a long `call`.
    pub(crate) client: Option<&'a UnixStream>,
    /// Whether the session is in machine mode.
    pub(crate) machine: bool,
}
