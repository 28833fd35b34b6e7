//! What the server and its clients agree on: the prompt, the longest line, the machine-mode
//! version, and the lines a refused client reads. `manhole-cli` and the tests read these
//! through `manhole::__private::protocol`, so the two sides cannot drift.

/// Ends every text-mode reply; a client reads up to it. Program text never contains it: the
/// server shows `>>> ` inside a value as `>>\x3e `.
pub const PROMPT: &str = ">>> ";

/// The banner's last line, right before the first prompt: a client knows the opening has
/// ended when it reads this line and [`PROMPT`] together (a thread name in the dump can forge
/// a prompt, not this line after it).
pub const BANNER_END: &str = "Type \"help\" for commands.\n";

/// The longest command line accepted, in bytes; longer lines are discarded with an error.
pub const MAX_LINE: usize = 64 * 1024;

/// The version of the machine-mode document shape (see `help machine`).
pub const MACHINE_VERSION: u32 = 1;

/// How every line of a refusal starts: the session never began, and the socket closes after it.
pub const REFUSED_PREFIX: &str = "manhole: ";

/// A client whose uid is neither the process's effective uid nor root.
pub const ACCESS_DENIED: &str = "manhole: access denied";

/// The session limit was reached.
pub const TOO_MANY_SESSIONS: &str = "manhole: too many sessions open";

/// The refusal line for a client whose credentials could not be read.
pub fn denied_unreadable_credentials() -> String {
    format!("{ACCESS_DENIED} (cannot read peer credentials)\n")
}

/// The refusal line for a client of another user.
pub fn denied_uid(uid: u32, euid: u32) -> String {
    format!("{ACCESS_DENIED} (uid {uid} is not {euid} or root)\n")
}

/// The refusal line when `max` sessions are open.
pub fn too_many_sessions(max: usize) -> String {
    format!("{TOO_MANY_SESSIONS} ({max}); try again later\n")
}

/// The refusal line when the server cannot start a session (out of fds, threads).
pub const CANNOT_START: &str = "manhole: cannot start a session now; try again later\n";

/// The refusal line when the server has no descriptor left for the session.
pub const OUT_OF_FDS: &str = "manhole: cannot start a session: out of file descriptors\n";

/// Whether the first line a client reads is a refusal (access or session limit), not a session.
pub fn is_refusal(first_line: &[u8]) -> bool {
    first_line.starts_with(ACCESS_DENIED.as_bytes()) || first_line.starts_with(TOO_MANY_SESSIONS.as_bytes())
}
