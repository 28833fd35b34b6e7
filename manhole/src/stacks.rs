//! The stack dump every session starts with, and [`dump_stacktraces`](crate::dump_stacktraces).
//!
//! Today the calling thread is unwound in full and every other thread is reported from `/proc`:
//! its state, the kernel function it waits in, the system call it is in and the symbolized
//! user-space address of that call (its innermost frame). Capturing the full stacks of the
//! other threads in-process is the next step; the report structure already holds it.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::procfs::{self, SyscallState};
use crate::sys;

/// One symbol at an address; an address inside inlined code yields several, innermost first.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub(crate) name: Option<String>,
    pub(crate) file: Option<PathBuf>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
}

/// What is known of one thread's stack.
#[derive(Clone, Debug)]
pub(crate) enum Stack {
    /// Unwound: every frame's symbols, innermost first.
    Frames(Vec<Symbol>),
    /// Not unwound; what `/proc` shows.
    FromProc {
        syscall: Option<SyscallState>,
        wchan: Option<String>,
        top: Vec<Symbol>,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ThreadReport {
    pub(crate) tid: i32,
    pub(crate) name: String,
    pub(crate) state: Option<char>,
    pub(crate) stack: Stack,
}

/// A dump of every thread of the process.
#[derive(Clone, Debug)]
pub(crate) struct Dump {
    pub(crate) pid: u32,
    pub(crate) dumping_tid: i32,
    pub(crate) threads: Vec<ThreadReport>,
}

/// Captures every thread of the process. The calling thread's own stack starts at its caller.
#[inline(never)]
pub(crate) fn capture() -> Dump {
    let pid = std::process::id();
    let me = sys::gettid();
    let own = own_stack();
    let mut tids = procfs::task_ids();
    if !tids.contains(&me) {
        tids.push(me);
    }
    let threads = tids
        .into_iter()
        .map(|tid| {
            let name = if tid as u32 == pid {
                "main".to_owned()
            } else {
                procfs::thread_name(tid).unwrap_or_else(|| "?".to_owned())
            };
            let state = procfs::thread_state(tid);
            let stack = if tid == me {
                Stack::Frames(own.clone())
            } else {
                from_proc(tid)
            };
            ThreadReport {
                tid,
                name,
                state,
                stack,
            }
        })
        .collect();
    Dump {
        pid,
        dumping_tid: me,
        threads,
    }
}

/// The calling thread's frames, without the frames of the capture itself.
#[inline(never)]
fn own_stack() -> Vec<Symbol> {
    let mut ips = Vec::with_capacity(64);
    backtrace::trace(|frame| {
        let ip = frame.ip() as usize;
        if ip != 0 {
            ips.push(ip);
        }
        ips.len() < 256
    });
    let mut symbols: Vec<Symbol> = ips.into_iter().flat_map(symbolize).collect();
    // Everything up to the outermost frame of the capture itself is manhole's, not the caller's.
    let capture_frames = symbols
        .iter()
        .rposition(|s| s.name.as_deref().is_some_and(is_capture_frame))
        .map_or(0, |last| last + 1);
    symbols.drain(..capture_frames);
    symbols
}

/// Frames of the capture machinery, trimmed from the top of the caller's stack.
fn is_capture_frame(name: &str) -> bool {
    name.starts_with("backtrace::")
        || [
            "manhole::stacks::own_stack",
            "manhole::stacks::capture",
            "manhole::stacks::dump_text",
            "manhole::dump_stacktraces",
        ]
        .iter()
        .any(|f| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

fn from_proc(tid: i32) -> Stack {
    let syscall = procfs::syscall_state(tid);
    let pc = match syscall {
        Some(SyscallState::InSyscall { pc, .. } | SyscallState::Blocked { pc }) => Some(pc),
        _ => None,
    };
    Stack::FromProc {
        syscall,
        wchan: procfs::wchan(tid),
        top: pc.map(symbolize).unwrap_or_default(),
    }
}

/// The symbols at a return address (or the address right after a system call instruction).
fn symbolize(ip: usize) -> Vec<Symbol> {
    let mut out = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        out.push(Symbol {
            name: symbol.name().map(|n| format!("{n:#}")),
            file: symbol.filename().map(PathBuf::from),
            line: symbol.lineno(),
            column: symbol.colno(),
        });
    });
    if out.is_empty() {
        out.push(Symbol {
            name: Some(format!("{ip:#x}")),
            file: None,
            line: None,
            column: None,
        });
    }
    // A function inlined into itself (common in libc) would otherwise print twice in a row.
    out.dedup_by(|outer, inner| outer.name == inner.name);
    out
}

/// The rendered dump of every thread, as a session shows it.
#[inline(never)]
pub(crate) fn dump_text() -> String {
    let mut out = String::new();
    render(&capture(), &mut out);
    out
}

const HEADER_BAR: &str = "#########";
const FOOTER: &str = "#############################################";

/// Renders a dump in the format of DESIGN.md §4.
pub(crate) fn render(dump: &Dump, out: &mut String) {
    let _ = writeln!(
        out,
        "{HEADER_BAR} ProcessID={}, ThreadID={} {HEADER_BAR}",
        dump.pid, dump.dumping_tid
    );
    for thread in &dump.threads {
        let state = thread
            .state
            .map(procfs::describe_state)
            .unwrap_or("state unknown");
        let _ = writeln!(out, "Thread {} \"{}\" ({state}):", thread.tid, thread.name);
        match &thread.stack {
            Stack::Frames(symbols) => render_symbols(symbols, out),
            Stack::FromProc { syscall, wchan, top } => {
                render_symbols(top, out);
                let mut facts = Vec::new();
                match syscall {
                    Some(SyscallState::InSyscall { number, .. }) => {
                        facts.push(format!("in system call {}", syscall_name(*number)));
                    }
                    Some(SyscallState::Running) => facts.push("on a CPU".to_owned()),
                    Some(SyscallState::Blocked { .. }) => facts.push("outside a system call".to_owned()),
                    None => {}
                }
                if let Some(wchan) = wchan {
                    facts.push(format!("kernel wait {wchan}"));
                }
                let known = if top.is_empty() {
                    "no frame known"
                } else {
                    "innermost frame only"
                };
                if facts.is_empty() {
                    let _ = writeln!(out, "     ({known}, from /proc)");
                } else {
                    let _ = writeln!(out, "     ({known}, from /proc: {})", facts.join(", "));
                }
            }
        }
        out.push('\n');
    }
    out.push_str(FOOTER);
    out.push('\n');
}

fn render_symbols(symbols: &[Symbol], out: &mut String) {
    for (index, symbol) in symbols.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {index:>2}: {}",
            symbol.name.as_deref().unwrap_or("<unknown>")
        );
        if let (Some(file), Some(line)) = (&symbol.file, symbol.line) {
            match symbol.column {
                Some(column) => {
                    let _ = writeln!(out, "        at {}:{line}:{column}", file.display());
                }
                None => {
                    let _ = writeln!(out, "        at {}:{line}", file.display());
                }
            }
        }
    }
}

/// The name of a system call by number, for the calls threads usually wait in.
fn syscall_name(number: libc::c_long) -> String {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let known: &[(libc::c_long, &str)] = &[
            (libc::SYS_read, "read"),
            (libc::SYS_write, "write"),
            (libc::SYS_futex, "futex"),
            (libc::SYS_nanosleep, "nanosleep"),
            (libc::SYS_clock_nanosleep, "clock_nanosleep"),
            (libc::SYS_epoll_pwait, "epoll_pwait"),
            (libc::SYS_ppoll, "ppoll"),
            (libc::SYS_pselect6, "pselect6"),
            (libc::SYS_accept, "accept"),
            (libc::SYS_accept4, "accept4"),
            (libc::SYS_connect, "connect"),
            (libc::SYS_recvfrom, "recvfrom"),
            (libc::SYS_recvmsg, "recvmsg"),
            (libc::SYS_sendto, "sendto"),
            (libc::SYS_sendmsg, "sendmsg"),
            (libc::SYS_wait4, "wait4"),
            (libc::SYS_waitid, "waitid"),
            (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
            (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_fsync, "fsync"),
            (libc::SYS_flock, "flock"),
            (libc::SYS_io_uring_enter, "io_uring_enter"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_poll, "poll"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_select, "select"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_epoll_wait, "epoll_wait"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_pause, "pause"),
        ];
        if let Some((_, name)) = known.iter().find(|(n, _)| *n == number) {
            return (*name).to_owned();
        }
    }
    format!("#{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn distinctive_caller_for_the_dump_test() -> String {
        let mut out = String::new();
        render(&capture(), &mut out);
        out
    }

    #[test]
    fn the_dump_has_the_documented_frame() {
        let text = distinctive_caller_for_the_dump_test();
        let pid = std::process::id();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("######### ProcessID={pid}, ThreadID=")),
            "{first}"
        );
        assert!(first.ends_with(" #########"), "{first}");
        assert_eq!(text.lines().last().unwrap(), "#".repeat(45));
        assert!(text.contains(&format!("Thread {pid} \"main\" (")), "{text}");
        assert!(text.contains("distinctive_caller_for_the_dump_test"), "{text}");
        assert!(
            !text.contains("manhole::stacks::own_stack"),
            "capture frames are trimmed:\n{text}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sleeping_thread_is_reported_from_proc() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = std::thread::Builder::new()
            .name("dump-sleeper".into())
            .spawn(move || {
                tx.send(sys::gettid()).unwrap();
                std::thread::sleep(std::time::Duration::from_secs(3));
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        // Wait until it is really asleep in the kernel, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while procfs::thread_state(tid) != Some('S') && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let mut text = String::new();
        render(&capture(), &mut text);
        let block = text
            .split("\n\n")
            .find(|b| b.starts_with(&format!("Thread {tid} \"dump-sleeper\" (sleeping):")))
            .unwrap_or_else(|| panic!("no block for the sleeper:\n{text}"));
        assert!(block.contains("nanosleep"), "{block}");
        assert!(block.contains("from /proc"), "{block}");
        drop(sleeper);
    }

    #[test]
    fn unknown_syscalls_keep_their_number() {
        assert_eq!(syscall_name(-7), "#-7");
        #[cfg(target_os = "linux")]
        assert_eq!(syscall_name(libc::SYS_futex), "futex");
    }
}
