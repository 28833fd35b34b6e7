//! What runs in a child created by `fork()`, and in which order.
//!
//! One `pthread_atfork` child handler, registered once, runs the hooks that the owners of
//! process-global state registered with [`on_child`], in [`Phase`] order. No module reaches
//! "up" to be reset in a child: each owner hands in a plain `fn()`, and this module, which
//! imports nothing of manhole's, calls them.
//!
//! # The rules for a hook
//! It runs in the child before `fork()` returns there, also in children that
//! `std::process::Command` is about to `exec`, and with only the forking thread alive: any lock
//! another thread of the parent held at that moment stays held for ever. So a hook must never
//! block, never take a lock other than with `try_lock`, never log (a logger's lock may be held),
//! and never allocate (malloc's arena lock likewise). Atomic loads and stores, close(2) and
//! dup2(2) are fine (async-signal-safe). Reading a hook slot is a lock-free atomic load
//! (`OnceLock::get`).

use std::sync::{Once, OnceLock};

/// When a hook runs in the child, first to last.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    /// Forget the thread ids `sync` caches per thread: the forking thread has a new one here.
    ThreadIds,
    /// Make the stack-dump state usable (a dump in progress at the fork is abandoned).
    Stacks,
    /// Put the program's own stderr back if the tee had replaced it (before the saved copy's
    /// descriptor is closed by the next phase).
    RestoreStderr,
    /// Close the child's copies of manhole's descriptors.
    CloseFds,
    /// Forget counters that belong to the parent's threads (calls running).
    ForgetInherited,
    /// Forget the parent's manhole and maybe start the child's own.
    Lifecycle,
}

const PHASES: usize = Phase::Lifecycle as usize + 1;

static HOOKS: [OnceLock<fn()>; PHASES] = [const { OnceLock::new() }; PHASES];

/// Registers `hook` for `phase` (once per phase; a second registration of a phase is ignored)
/// and, the first time, the `pthread_atfork` handler. Returns false if the handler could not
/// be registered: forked children then keep manhole's descriptors.
pub(crate) fn on_child(phase: Phase, hook: fn()) -> bool {
    static HANDLER: Once = Once::new();
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let _ = HOOKS[phase as usize].set(hook);
    HANDLER.call_once(|| {
        // SAFETY: registers a plain function pointer; `in_child` follows the rules above (it
        // only reads the hook slots and calls hooks that follow them).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        let _ = REGISTERED.set(rc == 0);
    });
    REGISTERED.get().copied().unwrap_or(false)
}

/// The `pthread_atfork` child handler.
extern "C" fn in_child() {
    for slot in &HOOKS {
        if let Some(hook) = slot.get() {
            hook();
        }
    }
}
