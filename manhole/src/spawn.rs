//! Manhole's own threads: named, blocking the program's signals from their first instruction,
//! and started only when the process has room for them.
//!
//! Under an address-space limit (`ulimit -v`) or a cgroup memory limit, a thread's stack can be
//! the mapping that leaves the program nothing: the next allocation anywhere then aborts the
//! process ("memory allocation of 41 bytes failed"), and a thread whose stack fits but whose
//! signal stack does not aborts as it starts (std's "failed to allocate an alternative stack").
//! So before each spawn the room for its stack plus a margin is probed, and a session or call
//! that does not fit is refused instead.

use std::io;

use crate::sys::{self, SignalSet};

/// What a new thread needs: std's 2 MiB stack and its signal stack, plus a margin for the
/// program and for what the thread allocates.
const THREAD_ROOM: usize = (2 << 20) + (16 << 20);

/// Whether the process has room for one more thread now; an error of kind `OutOfMemory` says
/// why not. For the threads started without a [`Spawner`] (the dump's own helpers).
pub(crate) fn room_for_a_thread() -> io::Result<()> {
    crate::headroom::check(THREAD_ROOM).map_err(|why| io::Error::new(io::ErrorKind::OutOfMemory, why))
}

/// Starts manhole's named threads, each blocking `mask` (the program's signals) from its first
/// instruction, so none of them can take a signal the program waits for.
#[derive(Clone)]
pub(crate) struct Spawner {
    mask: SignalSet,
}

impl Spawner {
    pub(crate) fn new(mask: SignalSet) -> Spawner {
        Spawner { mask }
    }

    /// Spawns a thread named `name` running `body`, if the process has room for it (see the
    /// module docs); an error of kind `OutOfMemory` says why not.
    pub(crate) fn spawn(
        &self,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        room_for_a_thread()?;
        sys::with_signals_blocked(&self.mask, || {
            std::thread::Builder::new().name(name.to_owned()).spawn(body)
        })
    }
}
