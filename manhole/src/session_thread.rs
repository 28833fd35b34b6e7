//! Which threads work for a session, and what a panic on one of them does.
//!
//! A session thread (and a thread running a call or a `Debug` for one) carries a thread-local
//! mark. Two things read it: a process exit started from such a thread (an exposed function
//! calling `exit`) does not wait for that session to end, and a panic there is the session's,
//! not the program's (see [`keep_panics_to_sessions`]).

use crate::logging::mlog;
use crate::text::panic_message;

thread_local! {
    /// Set on session threads, so that a session that ends the process does not wait for itself.
    static IN_SESSION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as working for a session: a process exit started from it (an
/// exposed function calling `exit`) does not wait for that session to end.
pub(crate) fn mark() {
    IN_SESSION.with(|flag| flag.set(true));
}

/// Whether the calling thread works for a session.
pub(crate) fn is_session_thread() -> bool {
    IN_SESSION.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// A panic on a session thread (a `Debug` impl or an exposed function of the program's) is
/// caught and shown to the client who caused it. The program's panic hook, which may print a
/// backtrace to its stderr or page someone, is not told: it is not the program's panic. The
/// manhole log gets one line. Wraps whatever hook is set when manhole is first installed; a
/// hook the program sets later replaces this one, and then it sees those panics too. Built with
/// `panic = "abort"`, no panic is caught, so every one goes to the program's hook as before.
pub(crate) fn keep_panics_to_sessions() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        return; // set_hook would panic; the next install wraps it
    }
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if cfg!(panic = "unwind") && is_session_thread() {
                let at = info
                    .location()
                    .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
                mlog!(
                    "Caught a panic in a session{at}: {}",
                    panic_message(info.payload())
                );
                return;
            }
            previous(info);
        }));
    });
}
