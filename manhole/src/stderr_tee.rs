//! `redirect_stderr`: while a session is open, what the process writes to fd 2 also reaches the
//! open sessions, and still reaches the original stderr.
//!
//! On the first session, fd 2 is replaced (dup2) by the write end of a pipe, and the original
//! kept; a `manhole-stderr` thread drains the pipe at once, writes each chunk to the original
//! stderr exactly as the program would have, then offers it to every session without waiting
//! (`MSG_DONTWAIT`): a client that does not read loses output, the program never waits for it.
//! The pipe stays blocking, as fd 2 was (std's `eprintln!` panics on `EAGAIN`), and the thread
//! keeps it empty.
//!
//! When the last session ends, the original fd 2 is put back, unless the program itself pointed
//! fd 2 elsewhere meanwhile (log rotation, daemonizing): then its choice stands. Manhole drops
//! its write end, and the thread ends once the pipe is drained and nobody else writes to it. A
//! child the program started during a session inherited the pipe as its stderr: the thread
//! goes on copying what the child writes to the original stderr for as long as the child
//! holds it, and the next session re-attaches fd 2 to that same pipe and thread (through
//! `/proc/self/fd`), so there is never more than one of each. A forked child gets its original
//! fd 2 back at once, again only if fd 2 is still the pipe.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::fdguard::Registered;
use crate::logging::mlog;
use crate::spawn::Spawner;
use crate::sys;

/// The original fd 2 while the tee is on (for forked children), or -1.
static ORIGINAL: AtomicI32 = AtomicI32::new(-1);
/// The device and inode of the tee's pipe while the tee is on (for forked children).
static PIPE_DEV: AtomicU64 = AtomicU64::new(0);
static PIPE_INO: AtomicU64 = AtomicU64::new(0);

/// In a forked child: puts the original stderr back if fd 2 is still the tee's pipe (fstat
/// and dup2 are async-signal-safe).
pub(crate) fn restore_in_child() {
    let original = ORIGINAL.load(Ordering::Acquire);
    let pipe = (PIPE_DEV.load(Ordering::Acquire), PIPE_INO.load(Ordering::Acquire));
    if original >= 0 && sys::fd_identity(2) == Some(pipe) {
        // The child's copy of the saved descriptor, as the parent does when the tee ends.
        let _ = sys::dup_onto(original, 2);
    }
}

/// Where the tee offers what the program writes to fd 2: the open sessions.
pub(crate) trait StderrSink: Send + Sync {
    /// Offers a chunk to every text-mode session without waiting (MSG_DONTWAIT).
    fn offer(&self, chunk: &[u8]);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tee while a session is open.
struct Running {
    original: Registered<OwnedFd>,
    /// The pipe's write end manhole holds besides fd 2 (closed to let the thread finish).
    writer: Registered<OwnedFd>,
    /// The pipe's device and inode: fd 2 is put back only if it is still this pipe.
    pipe: (u64, u64),
}

/// What the `manhole-stderr` thread and the sessions share.
struct PumpState {
    /// Where the thread copies to: fd 2 as it was when the tee was last switched on (closed by
    /// the thread as it ends).
    original: Option<Arc<Registered<OwnedFd>>>,
    /// Whether manhole holds a write end (a session is open).
    attached: bool,
    /// Counts re-attachments, so a thread that saw EOF just before one reads on.
    generation: u64,
    /// Cleared by the thread as it ends, under this lock, before it closes the read end.
    alive: bool,
}

/// The pipe and its thread, possibly outliving the sessions while a child holds the pipe.
struct Pump {
    state: Mutex<PumpState>,
    /// The read end, owned by the thread; open while `alive`.
    reader: RawFd,
}

impl Pump {
    /// A new write end on the pipe of a pump that still runs, for the next session.
    fn reattach(&self, original: &Arc<Registered<OwnedFd>>) -> Option<Registered<OwnedFd>> {
        let mut state = lock(&self.state);
        if !state.alive {
            return None;
        }
        // The read end is open: the thread closes it only after clearing `alive` under this
        // lock. Opening a pipe's /proc link for writing gives a new write end of that pipe, and
        // does not block, since a reader exists.
        let path = format!("self/fd/{}", self.reader);
        let opened = match crate::procfs::own_fd() {
            Some(proc) => sys::openat(proc, path.as_bytes(), libc::O_WRONLY),
            None => sys::openat(libc::AT_FDCWD, format!("/proc/{path}").as_bytes(), libc::O_WRONLY),
        };
        match opened {
            Ok(writer) => {
                state.original = Some(Arc::clone(original));
                state.attached = true;
                state.generation += 1;
                Some(Registered::new(writer))
            }
            Err(e) => {
                mlog!("Cannot re-attach to the stderr pipe a child still holds: {e}; using a new one");
                None
            }
        }
    }

    fn detach(&self) {
        lock(&self.state).attached = false;
    }
}

#[derive(Default)]
struct Inner {
    running: Option<Running>,
    /// The last pump started, while it may still run.
    pump: Option<Arc<Pump>>,
}

#[derive(Default)]
pub(crate) struct Tee {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tee")
    }
}

impl Tee {
    /// Starts the tee if it is not running.
    pub(crate) fn start(&self, spawner: &Spawner, sink: &Weak<dyn StderrSink>) {
        let mut inner = lock(&self.inner);
        if inner.running.is_some() {
            return;
        }
        match Self::swap_in(&mut inner, spawner, sink) {
            Ok(tee) => {
                ORIGINAL.store(tee.original.as_raw_fd(), Ordering::Release);
                PIPE_DEV.store(tee.pipe.0, Ordering::Release);
                PIPE_INO.store(tee.pipe.1, Ordering::Release);
                inner.running = Some(tee);
                mlog!("Redirecting stderr into sessions");
            }
            Err(e) => mlog!("Cannot redirect stderr: {e}; sessions will not show it"),
        }
    }

    fn swap_in(inner: &mut Inner, spawner: &Spawner, sink: &Weak<dyn StderrSink>) -> io::Result<Running> {
        let original = Registered::new(sys::dup_cloexec(2)?);
        let copy = Arc::new(Registered::new(original.try_clone()?));
        let reused = inner.pump.as_ref().and_then(|pump| pump.reattach(&copy));
        let writer = match reused {
            Some(writer) => writer,
            None => {
                let (pump, writer) = Self::new_pump(copy, spawner, sink)?;
                inner.pump = Some(pump);
                writer
            }
        };
        let pipe = sys::fd_identity(writer.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
        // Other threads writing to fd 2 see either the old or the new file, never a closed one.
        if let Err(e) = sys::dup_onto(writer.as_raw_fd(), 2) {
            if let Some(pump) = &inner.pump {
                pump.detach();
            }
            return Err(e);
        }
        Ok(Running {
            original,
            writer,
            pipe,
        })
    }

    /// A new pipe and the thread that drains it; returns the pipe's write end.
    fn new_pump(
        original: Arc<Registered<OwnedFd>>,
        spawner: &Spawner,
        sink: &Weak<dyn StderrSink>,
    ) -> io::Result<(Arc<Pump>, Registered<OwnedFd>)> {
        let (reader, writer) = sys::pipe_cloexec()?;
        // Registered, so a forked child closes its copies (see the `fdguard` module).
        let (reader, writer) = (Registered::new(reader), Registered::new(writer));
        let pump = Arc::new(Pump {
            state: Mutex::new(PumpState {
                original: Some(original),
                attached: true,
                generation: 0,
                alive: true,
            }),
            reader: reader.as_raw_fd(),
        });
        let shared = Arc::clone(&pump);
        let sink = Weak::clone(sink);
        spawner.spawn("manhole-stderr", move || run_pump(&shared, reader, &sink))?;
        Ok((pump, writer))
    }

    /// Puts the original stderr back if the tee is running and fd 2 is still its pipe.
    pub(crate) fn stop(&self) {
        let mut inner = lock(&self.inner);
        let Some(Running {
            original,
            writer,
            pipe,
        }) = inner.running.take()
        else {
            return;
        };
        ORIGINAL.store(-1, Ordering::Release);
        // The program may have pointed fd 2 elsewhere during the session (log rotation,
        // daemonizing): putting the old stderr back would undo that. (A dup2 of the program's
        // between this check and the one below is not seen: there is no atomic compare-and-dup2.)
        if sys::fd_identity(2) == Some(pipe) {
            // As in `swap_in`: an atomic switch of fd 2 back to the original file.
            let _ = sys::dup_onto(original.as_raw_fd(), 2);
            mlog!("Stderr restored");
        } else {
            mlog!("The program replaced stderr during the session; not restoring it");
        }
        if let Some(pump) = &inner.pump {
            pump.detach();
        }
        // With fd 2 switched away, the thread sees EOF once drained and no child holds the pipe.
        drop(writer);
    }
}

/// Copies the pipe to the original stderr and to every open session, until EOF with no session
/// open.
fn run_pump(pump: &Pump, reader: Registered<OwnedFd>, sink: &Weak<dyn StderrSink>) {
    let mut generation = lock(&pump.state).generation;
    let mut buf = [0u8; 8192];
    loop {
        match sys::read_fd(reader.as_raw_fd(), &mut buf) {
            Ok(0) => {
                let mut state = lock(&pump.state);
                if state.attached || state.generation != generation {
                    // A session re-attached after that EOF: there is a writer again.
                    generation = state.generation;
                    continue;
                }
                state.alive = false;
                state.original = None;
                return; // the guard goes first, then the read end
            }
            Ok(n) => {
                let chunk = &buf[..n];
                if let Some(original) = lock(&pump.state).original.clone() {
                    let _ = sys::write_all_fd(original.as_raw_fd(), chunk);
                }
                if let Some(sink) = sink.upgrade() {
                    sink.offer(chunk);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                let mut state = lock(&pump.state);
                state.alive = false;
                state.original = None;
                return;
            }
        }
    }
}
