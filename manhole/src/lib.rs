//! Attach to a live Rust process over a Unix socket: see the stack of every thread and a
//! console, without a debugger, without ptrace, without restarting it.
//!
//! ```no_run
//! use std::sync::atomic::AtomicUsize;
//!
//! /// Largest batch the workers take.
//! #[manhole::expose(writable)]
//! static BATCH_SIZE: AtomicUsize = AtomicUsize::new(64);
//!
//! #[manhole::main]
//! fn main() {
//!     // … the service runs; an engineer connects with
//!     //     socat readline unix-connect:/tmp/manhole-<pid>
//!     //     nc -U /tmp/manhole-<pid>
//!     //     manhole-cli <pid>
//! }
//! ```
//!
//! The same without macros: `manhole::install(manhole::Options::new())?;` at the start of
//! `main` ([`install`], [`Options`]).
//!
//! A client first receives the stack dump of every thread, then a banner and the `>>> ` prompt:
//!
//! ```text
//! ######### ProcessID=4242, ThreadID=4250 #########
//! Summary: 11 threads: 1 running, 1 idle, 8 waiting for an event (condvar, channel, join, park), 1 sleeping.
//!
//! Thread 4243 "flusher" (sleeping (a 2 s sleep)):
//!    0: __GI___clock_nanosleep
//!         at ./time/../sysdeps/unix/sysv/linux/clock_nanosleep.c:48:7
//!    1: std::thread::functions::sleep
//!         at std/src/thread/functions.rs:289:5
//!    2: app::flush_periodically
//!         at src/main.rs:48:9
//!       … 13 runtime frames (thread start) folded; "stacks --full" shows them
//!
//! Thread 4244 "worker-0" (waiting on Condvar JOBS):
//!   and 7 more with this stack:
//!     4245 "worker-1", 4246 "worker-2", …
//! …
//! #############################################
//! manhole 0.1.0 in /srv/app/bin/app (pid 4242), up 3h 12m
//! Type "help" for commands.
//! >>> info
//! ```
//!
//! Commands: `help [COMMAND]`, `stacks [--full]` (also `threads`, `bt`), `vars [PATTERN]`
//! (also `ls`), `print NAME` (also `p`, or just the name), `set NAME VALUE`, `call NAME ARG…`,
//! `info`, `quit` (also `exit`, Ctrl-D). What `vars`, `print`, `set` and `call` work on is what
//! the program marks with [`expose`].
//!
//! The same dump is available to the program itself with [`dump_stacktraces`], for watchdogs
//! and logs.
//!
//! [`sync::Mutex`] and [`sync::RwLock`] are drop-in replacements for std's that record who holds
//! them, so that `print` of a held one (and a dump) can say which thread took it, when and where.
//!
//! # How stacks are taken
//! Each thread is sent a real-time signal (the highest one nothing else handles, or
//! [`Options::stack_signal`]) and copies its registers and live stack in a few microseconds,
//! then goes on; no thread is ever stopped while others are captured, and no debugger or ptrace
//! is involved. The handler reads memory only through the kernel (`process_vm_readv`), so it
//! cannot fault, takes no lock and needs little stack; the copies are walked afterwards on
//! manhole's own thread, where a stack switched by hand or JIT code only ends a walk early.
//! Threads that block that signal, wait for it with `sigwait`, are stopped, or are in
//! uninterruptible sleep are reported from `/proc` (state, system call, kernel wait, innermost
//! frame) without waiting; a thread that does not answer within 200 ms is reported the same
//! way, and so is every thread if the program has reset or taken over the signal. Names, files
//! and lines are looked up afterwards, only when there is memory for it, and kept until the
//! last session ends.
//!
//! # Security
//! Only the process's effective uid and root may use the console. The socket is created with
//! mode 0600 before it starts listening, and the kernel-reported credentials of every client are
//! checked before a byte is written; anyone else gets one line (`manhole: access denied …`) and
//! EOF, and the refusal is logged. An existing file at the socket path is replaced only if it
//! is a dead socket of the same user; anything else makes [`install`] fail and is left alone.
//!
//! # When it listens
//! - Always (the default): from [`install`] on, at `/tmp/manhole-<pid>` or
//!   [`Options::socket_path`].
//! - [`Options::activate_on`]: nothing listens until that signal arrives, then for good.
//! - [`Options::oneshot_on`]: each signal opens the socket for one session, which must start
//!   within [`Options::oneshot_timeout`]; the socket goes as soon as the client is in.
//! - Manual ([`Options::thread`]`(false)`): one session each time the program calls
//!   [`Handle::handle_oneshot`], for programs that own their signals.
//!
//! A signal handler only wakes a dormant manhole thread; a handler the program had for that
//! signal still runs, and the same signal again is harmless. Manhole's threads block every
//! signal the program could be waiting for (signalfd, sigwait), see [`Options::sigmask`].
//!
//! # Lifecycle
//! - The socket is removed by [`Handle::uninstall`], at normal exit (after open sessions end,
//!   unless [`Options::daemon_connection`]), and when the process dies of any signal whose
//!   default action kills it and that it does not handle itself (SIGTERM, SIGINT, SIGHUP,
//!   SIGQUIT, SIGABRT from `abort()` or `panic = "abort"`, SIGUSR1/2, SIGALRM, SIGXCPU, SIGPIPE
//!   where it is not ignored, …) or of a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, a stack
//!   overflow); it then dies exactly as it would have, with the same status and core dump.
//! - The socket's directory and `/proc` stay open from install: after the program `chroot`s,
//!   dumps still show every thread and the socket is still removed.
//! - After the program changes its effective uid (a daemon dropping root), the socket is
//!   re-created at the same path as the new uid when the directory allows it; when it does not
//!   (root's socket in sticky `/tmp`), the log says so and only root can connect. The log ends
//!   with "Cleaned up." only when the socket was removed, and says what stays otherwise.
//! - A child created by `fork` closes its copies of manhole's descriptors, never touches its
//!   parent's socket, and gets its own manhole at `/tmp/manhole-<childpid>` after
//!   [`Options::reinstall_delay`] (children that `exec` sooner get none); see
//!   [`Options::patch_fork`].
//! - [`Options::redirect_stderr`] shows the program's stderr in open sessions without ever
//!   making the program wait for a client.
//! - The `MANHOLE` environment variable turns installs off or changes options
//!   ([`install_from_env`], `#[manhole::main]`).
//!
//! # Limitations
//! - Linux x86_64 and aarch64 get every thread's stack; macOS compiles and serves sessions with
//!   the calling thread's stack only, and without `/proc` facts.
//! - A dump interrupts each thread once: `read`, `write`, `accept`, futex and `Mutex` waits
//!   resume transparently (`SA_RESTART`), but raw `poll`, `epoll_wait`, `select` and
//!   `nanosleep` calls in C code or `libc` return `EINTR`, as with any signal-based profiler.
//!   Rust's `std` and tokio retry them.
//! - SIGKILL, real-time signals and a crash on a thread without room for a signal frame leave
//!   the socket behind (nothing of manhole runs); the next process to use the path replaces the
//!   stale socket.
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod atfork;
mod console;
mod death;
mod error;
mod fdguard;
mod forklock;
#[cfg(test)]
mod fuzz;
mod headroom;
mod install;
mod json;
mod logging;
mod options;
mod procfs;
mod protocol;
mod redact;
mod registry;
mod server;
mod session;
mod session_thread;
mod signal;
mod socket_file;
mod spawn;
mod stacks;
mod stderr_tee;
pub mod sync;
mod sys;
mod text;
mod trigger;

#[doc(inline)]
pub use manhole_macros::{expose, main};

pub use error::Error;
pub use install::{Handle, install, install_from_env};
pub use logging::VerboseDestination;
pub use options::{Options, SigMask};
pub use signal::{Signal, SignalSpec};
pub use socket_file::default_socket_path;

/// The stack dump a session starts with, as text: every thread of the process, with the
/// calling thread unwound in full.
///
/// Use it from the program itself, for example in a watchdog that logs where everything is
/// when a request takes too long. It does not need [`install`].
///
/// The first dump loads debug info (tens of MiB for a large program); what it loaded is kept
/// for the next dump and given back 10 s after the last one, unless a session is open then
/// (the last session's end gives it back).
///
/// ```
/// let dump = manhole::dump_stacktraces();
/// assert!(dump.starts_with("######### ProcessID="));
/// assert!(dump.contains("\"main\""));
/// ```
pub fn dump_stacktraces() -> String {
    let text = stacks::dump_text(false);
    stacks::release_later();
    text
}

/// Shows the calling thread under its full Rust name in stack dumps.
///
/// The kernel keeps only the first 15 bytes of a thread's name, and that is all a dump can read
/// from another thread. A thread that calls this once is shown with the whole name it was given
/// with [`std::thread::Builder::name`] (or `"main"`); the entry goes away when the thread ends.
/// Threads without a name are left as they are.
///
/// ```
/// std::thread::Builder::new()
///     .name("ingest-partition-0042".into())
///     .spawn(|| {
///         manhole::register_current_thread();
///         assert!(manhole::dump_stacktraces().contains("\"ingest-partition-0042\""));
///     })?
///     .join()
///     .unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn register_current_thread() {
    if let Some(name) = std::thread::current().name() {
        stacks::names::register(name.to_owned());
    }
}

// Not public API. Used by the code that `#[manhole::main]` and `#[manhole::expose]` generate.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{
        CallOutput, Exposed, Kind, Param, Probe, RenderDebug, RenderResult, SetError, SetFn, Settable,
        ShowAny, ShowCellLock, ShowFn, ShowLockOrCell, Shown, parse_arg,
    };
    pub use inventory;

    /// The prompt, line limit, machine-mode version and refusal lines, shared with manhole-cli.
    pub mod protocol {
        pub use crate::protocol::*;
    }

    /// How a word must be written on a console line to reach a command as that same word
    /// (used by manhole-cli to pass its command-line words on).
    pub fn quote_word(word: &str) -> String {
        crate::text::requote(word)
    }

    /// What `#[manhole::main]` runs before the body of `main`: applies the `MANHOLE`
    /// environment variable, installs, and on failure prints one line and lets `main` go on.
    pub fn main_prologue(options: crate::Options) -> Option<crate::Handle> {
        let options = match std::env::var("MANHOLE") {
            Ok(text) => match options.with_overrides(&text) {
                Ok(Some(options)) => options,
                Ok(None) => return None,
                Err(e) => {
                    eprintln!("manhole: not installed: MANHOLE={text:?}: {e}");
                    return None;
                }
            },
            Err(_) => options,
        };
        match crate::install(options) {
            Ok(handle) => Some(handle),
            Err(e) => {
                eprintln!("manhole: not installed: {e}");
                None
            }
        }
    }
}

// Not public API: measurements for the benchmark in `bench/`.
#[doc(hidden)]
pub mod __bench {
    use std::time::{Duration, Instant};

    /// What one dump cost, phase by phase.
    #[derive(Debug, Clone)]
    pub struct DumpTimings {
        /// Threads in the dump.
        pub threads: usize,
        /// Threads that unwound themselves in-process.
        pub captured: usize,
        /// Signalling every thread and collecting raw addresses.
        pub capture: Duration,
        /// Turning addresses into names, files and lines.
        pub symbolize: Duration,
        /// Grouping and formatting the text.
        pub render: Duration,
        /// How long each captured thread spent in the signal handler.
        pub pauses: Vec<Duration>,
        /// Size of the rendered text, in bytes.
        pub text_len: usize,
        /// Of `symbolize`, what telling why each thread waits took (frames, futex words,
        /// descriptors, how long; not the summary, which is part of `render`).
        pub waits: Duration,
    }

    /// Takes one dump and times each phase.
    pub fn measure_dump() -> DumpTimings {
        let start = Instant::now();
        let raw = crate::stacks::capture_raw();
        let captured_at = Instant::now();
        let dump = crate::stacks::symbolize_dump(raw);
        let symbolized_at = Instant::now();
        let mut text = String::new();
        crate::stacks::render(&dump, false, &mut text);
        let rendered_at = Instant::now();
        let pauses: Vec<Duration> = dump.threads.iter().filter_map(|t| t.pause).collect();
        DumpTimings {
            threads: dump.threads.len(),
            captured: pauses.len(),
            capture: captured_at - start,
            symbolize: symbolized_at - captured_at,
            render: rendered_at - symbolized_at,
            pauses,
            text_len: text.len(),
            waits: dump.analysis,
        }
    }

    /// Sets up in-process capture, as `install` does, without a socket.
    pub fn prepare() {
        let _ = crate::stacks::prepare(None);
    }

    /// How long the capture alone takes (no symbols, no text), with or without the records'
    /// "not run for" (two more `/proc` files a thread and a migration of the dumper per CPU).
    pub fn measure_capture(last_ran: bool) -> Duration {
        let start = Instant::now();
        let raw = crate::stacks::capture_raw_with(crate::stacks::record::Want { last_ran });
        let took = start.elapsed();
        drop(raw);
        took
    }

    /// What a stack capture records of one thread besides its frames, for tests (the
    /// crate's own type is `stacks::ThreadRecord`).
    #[derive(Debug, Clone, Default)]
    pub struct ThreadFacts {
        pub tid: i32,
        /// Where the registers were read: `handler`, `proc` or `own`.
        pub regs_from: Option<&'static str>,
        pub pc: Option<usize>,
        pub sp: Option<usize>,
        pub fp: Option<usize>,
        pub lr: Option<usize>,
        /// The system call's number, when in one and known.
        pub syscall: Option<libc::c_long>,
        pub args: [Option<usize>; 6],
        /// `waiting`, `restarting` or `interrupted <errno>`, when in a system call.
        pub phase: Option<String>,
        /// Where its arguments were read: `handler` or `proc`.
        pub syscall_from: Option<&'static str>,
        /// CPU time used, read before the signal.
        pub cpu: Option<Duration>,
        /// How long it had not run at least, read before the signal.
        pub not_run_for: Option<Duration>,
        /// The signal mask the handler saw.
        pub mask: Option<u64>,
    }

    /// Captures every thread (no symbols, no text) and returns each one's record.
    pub fn thread_facts() -> Vec<ThreadFacts> {
        use crate::stacks::record::{Phase, Source};
        let name = |source: Source| match source {
            Source::Handler => "handler",
            Source::Proc => "proc",
            Source::Own => "own",
        };
        let raw = crate::stacks::capture_raw_with(crate::stacks::record::Want { last_ran: true });
        let mut facts: Vec<ThreadFacts> = raw
            .records()
            .map(|(tid, record)| ThreadFacts {
                tid,
                regs_from: record.regs.map(|r| name(r.from)),
                pc: record.regs.map(|r| r.pc),
                sp: record.regs.map(|r| r.sp),
                fp: record.regs.and_then(|r| r.fp),
                lr: record.regs.and_then(|r| r.lr),
                syscall: record.syscall.and_then(|s| s.number),
                args: record.syscall.map_or([None; 6], |s| s.args),
                phase: record.syscall.map(|s| match s.phase {
                    Phase::Waiting => "waiting".to_owned(),
                    Phase::Restarting => "restarting".to_owned(),
                    Phase::Interrupted { errno } => format!("interrupted {errno}"),
                }),
                syscall_from: record.syscall.map(|s| name(s.from)),
                cpu: record.cpu,
                not_run_for: record.not_run_for,
                mask: record.mask,
            })
            .collect();
        facts.sort_by_key(|f| f.tid);
        facts
    }
}
