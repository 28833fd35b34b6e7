//! Reading this process's facts from `/proc/self` (Linux). Every reader returns `None` or an
//! empty value when the file is missing or unreadable, so a missing `/proc` only thins the output,
//! and [`blind`] says why.
//!
//! Everything is read relative to a descriptor of `/proc` opened once (at install, or at the first
//! read) and kept for the life of the process: a program that later `chroot`s into a directory
//! without `/proc`, as daemons do, is still seen whole. `self` is resolved by the kernel for the
//! reading process, so a forked child reads its own files through the inherited descriptor.
//!
//! The files are parsed as bytes: a thread name cut in the middle of a UTF-8 character (the kernel
//! keeps 15 bytes) is shown with the odd bytes escaped (`\xd0`), and never loses its thread.

use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::sys;

/// The descriptor of `/proc`, once opened; -1 before.
static PROC: AtomicI32 = AtomicI32::new(-1);
/// Why `/proc` could not be opened the last time it was tried: 0 (it was not tried or it
/// worked), [`NOT_PROCFS`], or an errno.
static PROC_FAILURE: AtomicI32 = AtomicI32::new(0);
/// Why the thread list could not be read the last time (an errno), or 0.
static TASKS_FAILURE: AtomicI32 = AtomicI32::new(0);
/// `/proc` exists but is not a proc file system (an empty directory in a chroot).
const NOT_PROCFS: i32 = -1;

/// Opens `/proc` now, if it is not open yet: call it before the program can `chroot`.
pub(crate) fn prepare() {
    let _ = proc_dir();
}

/// The descriptor of `/proc` manhole holds, once opened.
pub(crate) fn own_fd() -> Option<RawFd> {
    let fd = PROC.load(Ordering::Acquire);
    (fd >= 0).then_some(fd)
}

fn proc_dir() -> Option<RawFd> {
    let fd = PROC.load(Ordering::Acquire);
    if fd >= 0 {
        return Some(fd);
    }
    match open_proc() {
        Ok(owned) => {
            PROC_FAILURE.store(0, Ordering::Relaxed);
            let raw = owned.into_raw_fd();
            match PROC.compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Some(raw),
                Err(first) => {
                    // Another thread opened it at the same moment: keep one.
                    let _ = nix::unistd::close(raw);
                    Some(first)
                }
            }
        }
        Err(code) => {
            PROC_FAILURE.store(code, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_proc() -> Result<OwnedFd, i32> {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let fd = sys::openat(libc::AT_FDCWD, b"/proc", libc::O_PATH | libc::O_DIRECTORY).map_err(errno)?;
    match sys::fs_type(fd.as_raw_fd()) {
        Ok(PROC_SUPER_MAGIC) => Ok(fd),
        Ok(_) => Err(NOT_PROCFS),
        Err(e) => Err(errno(e)),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_proc() -> Result<OwnedFd, i32> {
    Err(libc::ENOENT)
}

/// Why this process cannot see its own threads and facts in `/proc`, when it cannot; `None`
/// when `/proc` is readable. For the dump to say, instead of listing only the calling thread.
#[allow(
    dead_code,
    reason = "for the stack dump to say why it cannot list the threads"
)]
pub(crate) fn blind() -> Option<String> {
    if proc_dir().is_none() {
        return Some(match PROC_FAILURE.load(Ordering::Relaxed) {
            libc::ENOENT | NOT_PROCFS => {
                "/proc is not mounted in this process's root directory (a chroot or container without it)"
                    .to_owned()
            }
            code => format!(
                "/proc cannot be opened: {}",
                std::io::Error::from_raw_os_error(code)
            ),
        });
    }
    match TASKS_FAILURE.load(Ordering::Relaxed) {
        0 => None,
        code => Some(format!(
            "/proc/self/task cannot be read: {}",
            std::io::Error::from_raw_os_error(code)
        )),
    }
}

/// Opens `self/<path>` under `/proc`.
fn open_self(path: &str, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let dir = proc_dir().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    sys::openat(dir, format!("self/{path}").as_bytes(), libc::O_RDONLY | flags)
}

/// The memory map of this process (`/proc/self/maps`), read through the descriptor kept open.
pub(crate) fn maps() -> Option<Vec<u8>> {
    read_self("maps")
}

/// The whole of `/proc/self/<path>`, as bytes.
fn read_self(path: &str) -> Option<Vec<u8>> {
    let mut file = std::fs::File::from(open_self(path, 0).ok()?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The names in the directory `/proc/self/<path>`.
fn list_self(path: &str) -> std::io::Result<Vec<Vec<u8>>> {
    sys::dir_names(open_self(path, libc::O_DIRECTORY)?)
}

/// The ids of every thread of this process, ascending.
pub(crate) fn task_ids() -> Vec<i32> {
    let mut tids: Vec<i32> = match list_self("task") {
        Ok(names) => {
            TASKS_FAILURE.store(0, Ordering::Relaxed);
            names
                .iter()
                .filter_map(|name| std::str::from_utf8(name).ok()?.parse().ok())
                .collect()
        }
        Err(e) => {
            if proc_dir().is_some() {
                TASKS_FAILURE.store(e.raw_os_error().unwrap_or(libc::EIO), Ordering::Relaxed);
            }
            Vec::new()
        }
    };
    tids.sort_unstable();
    tids
}

fn task_file(tid: i32, name: &str) -> Option<Vec<u8>> {
    read_self(&format!("task/{tid}/{name}"))
}

/// Text for bytes that should be UTF-8 and may not be: valid parts as they are, every byte
/// that is not part of a valid character as `\xNN`.
pub(crate) fn escape_invalid_utf8(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// The fields of a `stat` file after the command name, which may itself hold spaces, parens
/// and bytes that are not UTF-8.
fn stat_fields(bytes: &[u8]) -> Vec<String> {
    match bytes.iter().rposition(|b| *b == b')') {
        Some(end) => String::from_utf8_lossy(&bytes[end + 1..])
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    }
}

/// The value of the `key` line of a `status` file, without the tab that follows the colon.
fn status_field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let value = line.strip_prefix(key)?;
        Some(value.strip_prefix(b"\t").unwrap_or(value))
    })
}

/// What a dump needs to know of a thread, from one read of `/proc/self/task/<tid>/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskStatus {
    /// The kernel's name of the thread (at most 15 bytes), bytes that are not UTF-8 escaped.
    pub(crate) name: String,
    /// The scheduler state letter (`?` if the kernel did not say).
    pub(crate) state: char,
    /// The signals it blocks, as a bit mask (bit n-1 for signal n).
    pub(crate) blocked: u64,
    /// Its seccomp mode: 0 none, 1 strict, 2 filter.
    pub(crate) seccomp: u8,
    /// How many times it gave up the CPU by blocking (`voluntary_ctxt_switches`; being
    /// preempted is not counted). `None` on kernels that do not say.
    pub(crate) switches: Option<u64>,
}

/// Reads it with one read(2) into a stack buffer: a dump reads this file for every thread, and
/// the kernel builds the whole text on the first read (about 1.4 KB), so a second read to see
/// EOF and a heap buffer would only add cost.
pub(crate) fn task_status(tid: i32) -> Option<TaskStatus> {
    let mut file = std::fs::File::from(open_self(&format!("task/{tid}/status"), 0).ok()?);
    let mut buf = [0u8; 4096];
    let n = file.read(&mut buf).ok()?;
    if n == buf.len() {
        // Larger than expected: fall back to reading all of it.
        return parse_status(&task_file(tid, "status")?);
    }
    parse_status(&buf[..n])
}

/// `None` only for text that is no status file at all; an odd field never loses the thread.
fn parse_status(text: &[u8]) -> Option<TaskStatus> {
    let name = status_field(text, b"Name:");
    let state = status_field(text, b"State:");
    if name.is_none() && state.is_none() {
        return None;
    }
    let blocked = status_field(text, b"SigBlk:")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let seccomp = status_field(text, b"Seccomp:")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let count = |key: &[u8]| {
        status_field(text, key)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let switches = count(b"voluntary_ctxt_switches:");
    Some(TaskStatus {
        seccomp,
        switches,
        name: escape_invalid_utf8(name.unwrap_or(b"?")),
        state: state
            .and_then(|v| v.trim_ascii().first())
            .filter(|b| b.is_ascii_graphic())
            .map_or('?', |b| char::from(*b)),
        blocked,
    })
}

/// What a state letter means, in the words of `ps`.
pub(crate) fn describe_state(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "uninterruptible sleep",
        'T' => "stopped",
        't' => "stopped by a tracer",
        'Z' => "zombie",
        'X' => "dead",
        'I' => "idle",
        'P' => "parked",
        _ => "unknown state",
    }
}

/// The kernel function a sleeping thread waits in, if the kernel shows it.
pub(crate) fn wchan(tid: i32) -> Option<String> {
    let text = escape_invalid_utf8(&task_file(tid, "wchan")?);
    let text = text.trim();
    (!text.is_empty() && text != "0").then(|| text.to_owned())
}

/// What `/proc/<pid>/task/<tid>/syscall` says about a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SyscallState {
    /// On a CPU: no registers to show.
    Running,
    /// Stopped in user space, outside a system call.
    Blocked { pc: usize },
    /// Inside system call `number`.
    InSyscall { number: libc::c_long, pc: usize },
}

pub(crate) fn syscall_state(tid: i32) -> Option<SyscallState> {
    parse_syscall(&String::from_utf8_lossy(&task_file(tid, "syscall")?))
}

fn parse_syscall(text: &str) -> Option<SyscallState> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    match fields.as_slice() {
        ["running"] => Some(SyscallState::Running),
        ["-1", _sp, pc] => Some(SyscallState::Blocked { pc: hex(pc)? }),
        [number, .., pc] if fields.len() == 9 => Some(SyscallState::InSyscall {
            number: number.parse().ok()?,
            pc: hex(pc)?,
        }),
        _ => None,
    }
}

/// All of `/proc/self/task/<tid>/syscall`: the call, its six arguments, and the user-space
/// stack pointer and program counter (the address just after the system call instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProcSyscall {
    /// On a CPU: the kernel shows no registers.
    Running,
    /// Stopped in user space, outside a system call.
    Outside { sp: usize, pc: usize },
    /// Inside system call `number`.
    In {
        number: libc::c_long,
        args: [usize; 6],
        sp: usize,
        pc: usize,
    },
}

/// Reads `/proc/self/task/<tid>/syscall` once, with one read into a stack buffer (the line is
/// under 200 bytes).
pub(crate) fn syscall(tid: i32) -> Option<ProcSyscall> {
    let mut file = std::fs::File::from(open_self(&format!("task/{tid}/syscall"), 0).ok()?);
    let mut buf = [0u8; 256];
    let n = file.read(&mut buf).ok()?;
    parse_syscall_line(std::str::from_utf8(&buf[..n]).ok()?)
}

fn parse_syscall_line(text: &str) -> Option<ProcSyscall> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    match fields.as_slice() {
        ["running"] => Some(ProcSyscall::Running),
        ["-1", sp, pc] => Some(ProcSyscall::Outside {
            sp: hex(sp)?,
            pc: hex(pc)?,
        }),
        [number, a0, a1, a2, a3, a4, a5, sp, pc] => Some(ProcSyscall::In {
            number: number.parse().ok()?,
            args: [hex(a0)?, hex(a1)?, hex(a2)?, hex(a3)?, hex(a4)?, hex(a5)?],
            sp: hex(sp)?,
            pc: hex(pc)?,
        }),
        _ => None,
    }
}

/// `se.exec_start` of `/proc/self/task/<tid>/sched`, in ns: when the scheduler last updated the
/// thread's runtime, which for a thread off the CPU is when it stopped running. On the task clock
/// of the CPU it ran on (see `stacks::record`). `None` where the kernel has no such file
/// (it depends on `CONFIG_SCHED_DEBUG`).
pub(crate) fn exec_start_ns(tid: i32) -> Option<u64> {
    let mut file = std::fs::File::from(open_self(&format!("task/{tid}/sched"), 0).ok()?);
    // The line is on the third line; the whole file is about 2 KB.
    let mut buf = [0u8; 512];
    let n = file.read(&mut buf).ok()?;
    parse_exec_start(&buf[..n])
}

fn parse_exec_start(text: &[u8]) -> Option<u64> {
    let line = text
        .split(|b| *b == b'\n')
        .find(|line| line.starts_with(b"se.exec_start"))?;
    let value = std::str::from_utf8(line).ok()?.split(':').nth(1)?.trim();
    // Printed as milliseconds with six decimals (`%Ld.%06ld` of ns / 1e6).
    let (ms, frac) = value.split_once('.')?;
    if frac.len() != 6 {
        return None;
    }
    // 0 is no time: the kernel zeroes it when it moves a waking thread to another CPU, until
    // the thread runs there (as a time it would read as "not run since boot").
    ms.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(frac.parse().ok()?)
        .filter(|ns| *ns != 0)
}

/// The CPU thread `tid` last ran on (field 39 of its `stat`).
pub(crate) fn last_cpu(tid: i32) -> Option<usize> {
    let mut file = std::fs::File::from(open_self(&format!("task/{tid}/stat"), 0).ok()?);
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    // Fields after the name: state is 3, so 39 is at 36.
    stat_fields(&buf[..n]).get(36)?.parse().ok()
}

/// Facts from `/proc/self/stat` and `/proc/self/status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProcessStat {
    pub(crate) ppid: Option<i32>,
    pub(crate) threads: Option<u64>,
    pub(crate) user_cpu: Option<Duration>,
    pub(crate) system_cpu: Option<Duration>,
    pub(crate) uptime: Option<Duration>,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) vm_bytes: Option<u64>,
}

pub(crate) fn process_stat() -> ProcessStat {
    let mut out = ProcessStat::default();
    let ticks = crate::sys::clock_ticks_per_second();
    let from_ticks = |t: u64| Duration::from_millis(t.saturating_mul(1000) / ticks);
    if let Some(stat) = read_self("stat") {
        // Fields after the name: state(0) ppid(1) … utime(11) stime(12) … num_threads(17) … starttime(19)
        let fields = stat_fields(&stat);
        let num = |i: usize| fields.get(i).and_then(|s| s.parse::<u64>().ok());
        out.ppid = fields.get(1).and_then(|s| s.parse().ok());
        out.user_cpu = num(11).map(from_ticks);
        out.system_cpu = num(12).map(from_ticks);
        out.threads = num(17);
        if let (Some(start), Some(since_boot)) = (num(19), seconds_since_boot()) {
            out.uptime = since_boot.checked_sub(from_ticks(start));
        }
    }
    if let Some(status) = read_self("status") {
        out.rss_bytes = status_kib(&status, b"VmRSS:").map(|k| k * 1024);
        out.vm_bytes = status_kib(&status, b"VmSize:").map(|k| k * 1024);
    }
    out
}

fn status_kib(status: &[u8], key: &[u8]) -> Option<u64> {
    let value = std::str::from_utf8(status_field(status, key)?).ok()?;
    value.split_whitespace().next()?.parse().ok()
}

fn seconds_since_boot() -> Option<Duration> {
    let dir = proc_dir()?;
    let mut text = String::new();
    std::fs::File::from(sys::openat(dir, b"uptime", libc::O_RDONLY).ok()?)
        .read_to_string(&mut text)
        .ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// The command line, one string per argument (lossy for non-UTF-8 bytes).
pub(crate) fn cmdline() -> Vec<String> {
    match read_self("cmdline") {
        Some(bytes) => bytes
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
        None => std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    }
}

/// How many file descriptors are open.
pub(crate) fn open_fd_count() -> Option<usize> {
    let names = list_self("fd")
        .or_else(|_| {
            sys::dir_names(sys::openat(
                libc::AT_FDCWD,
                b"/dev/fd",
                libc::O_RDONLY | libc::O_DIRECTORY,
            )?)
        })
        .ok()?;
    // The directory handle itself is one of the entries; do not count it.
    Some(names.len().saturating_sub(1))
}

pub(crate) fn exe() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    match proc_dir().map(|dir| sys::readlinkat(dir, b"self/exe")) {
        Some(Ok(target)) => Some(PathBuf::from(std::ffi::OsString::from_vec(target))),
        _ => std::env::current_exe().ok(),
    }
}

/// What descriptor `fd` of this process is open on, as `/proc/self/fd/N` shows it
/// (`pipe:[161869]`, `socket:[2087]`, `/var/lib/app/data.db`), escaped for a terminal.
pub(crate) fn fd_target(fd: i32) -> Option<String> {
    let dir = proc_dir()?;
    let target = sys::readlinkat(dir, format!("self/fd/{fd}").as_bytes()).ok()?;
    Some(escape_invalid_utf8(&target))
}

/// Whether the executable on disk is no longer the one this process runs (a deploy replaced or
/// deleted it): then debug info read from its path describes another build. The reason, naming
/// the path, if so; `None` when it is the same file or that cannot be told (no `/proc`, the
/// path not reachable after a chroot).
pub(crate) fn exe_replaced() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = proc_dir()?;
    let path = exe()?;
    let shown = path.display().to_string();
    if let Some(gone) = shown.strip_suffix(" (deleted)") {
        let what = if std::path::Path::new(gone).exists() {
            "replaced on disk"
        } else {
            "deleted"
        };
        return Some(format!(
            "the executable {gone} was {what} since this process started"
        ));
    }
    // The link opens the very file the process runs, whatever is at its path now.
    let running = sys::openat(dir, b"self/exe", libc::O_RDONLY)
        .ok()
        .and_then(|fd| sys::fd_identity(std::os::fd::AsRawFd::as_raw_fd(&fd)))?;
    let on_disk = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()))?;
    (running != on_disk)
        .then(|| format!("the executable {shown} was replaced on disk since this process started"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines() {
        assert_eq!(parse_syscall("running\n"), Some(SyscallState::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffd1000 0x7f00dead\n"),
            Some(SyscallState::Blocked { pc: 0x7f00_dead })
        );
        assert_eq!(
            parse_syscall("230 0x1 0x0 0x7ffc 0x0 0x0 0x0 0x7ffcaaaa 0x7f71366d8545\n"),
            Some(SyscallState::InSyscall {
                number: 230,
                pc: 0x7f71_366d_8545
            })
        );
        assert_eq!(parse_syscall("garbage"), None);
        assert_eq!(parse_syscall(""), None);
        assert_eq!(
            parse_syscall_line("202 0x55e0 0x89 0x2 0x0 0x0 0xffffffff 0x7ffcaaaa 0x7f71366d8545\n"),
            Some(ProcSyscall::In {
                number: 202,
                args: [0x55e0, 0x89, 2, 0, 0, 0xffff_ffff],
                sp: 0x7ffc_aaaa,
                pc: 0x7f71_366d_8545
            })
        );
        assert_eq!(
            parse_syscall_line("-1 0x7ffd1000 0x7f00dead\n"),
            Some(ProcSyscall::Outside {
                sp: 0x7ffd_1000,
                pc: 0x7f00_dead
            })
        );
        assert_eq!(parse_syscall_line("running\n"), Some(ProcSyscall::Running));
        assert_eq!(parse_syscall_line("202 0x1 0x2\n"), None);
    }

    #[test]
    fn status_files() {
        let text = "Name:\tworker (1)\nUmask:\t0022\nState:\tS (sleeping)\nSigBlk:\t8000000000000001\nSeccomp:\t2\n\
                    voluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t2\n";
        let status = parse_status(text.as_bytes()).unwrap();
        assert_eq!(
            status,
            TaskStatus {
                name: "worker (1)".into(),
                state: 'S',
                blocked: 0x8000_0000_0000_0001,
                seccomp: 2,
                switches: Some(40),
            }
        );
        assert_eq!(parse_status(b"garbage"), None);
    }

    /// `работник-1` cut to the kernel's 15 bytes ends in half a `к`; the thread is still there.
    #[test]
    fn names_that_are_not_utf8_are_escaped_not_dropped() {
        let cut = &"работник-1".as_bytes()[..15];
        assert!(std::str::from_utf8(cut).is_err());
        let mut text = b"Name:\t".to_vec();
        text.extend_from_slice(cut);
        text.extend_from_slice(b"\nUmask:\t0022\nState:\tS (sleeping)\nSigBlk:\t0000000000000004\n");
        assert_eq!(
            parse_status(&text),
            Some(TaskStatus {
                name: "работни\\xd0".into(),
                state: 'S',
                blocked: 4,
                seccomp: 0,
                switches: None,
            })
        );
        // Invalid bytes anywhere, and other fields that are odd or missing.
        let odd = b"Name:\t\xff\xfeab\xc3\nState:\t\nSigBlk:\tzz\n";
        assert_eq!(
            parse_status(odd),
            Some(TaskStatus {
                name: "\\xff\\xfeab\\xc3".into(),
                state: '?',
                blocked: 0,
                seccomp: 0,
                switches: None,
            })
        );
        assert_eq!(
            parse_status(b"State:\tR (running)\n").map(|s| (s.name, s.state)),
            Some(("?".to_owned(), 'R'))
        );
        assert_eq!(escape_invalid_utf8("ok ✓".as_bytes()), "ok ✓");
    }

    #[test]
    fn sched_exec_start_is_read_in_nanoseconds() {
        let text = b"cat (3377, #threads: 1)\n-------------------\nse.exec_start                                :       9784883.587045\nse.vruntime  :  58742.280799\n";
        assert_eq!(parse_exec_start(text), Some(9_784_883_587_045));
        assert_eq!(parse_exec_start(b"se.exec_start : 12.5\n"), None);
        assert_eq!(parse_exec_start(b"nothing here\n"), None);
        // Zeroed by a migration: not a time.
        assert_eq!(
            parse_exec_start(b"se.exec_start                                :             0.000000\n"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_calling_thread_has_a_last_cpu() {
        let me = nix::unistd::gettid().as_raw();
        // SAFETY: sched_getcpu has no preconditions.
        let now = unsafe { libc::sched_getcpu() };
        assert!(last_cpu(me).is_some_and(|cpu| cpu < 4096), "{now}");
    }

    #[test]
    fn stat_with_a_hostile_command_name() {
        let stat = "42 (a b) (c)) S 1 42 42 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 5 0 100";
        let fields = stat_fields(stat.as_bytes());
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "1");
        assert_eq!(fields[17], "5");
        let mut stat = b"42 (\xd0\xb0\xd0) S 7".to_vec();
        stat.extend_from_slice(b" 42");
        assert_eq!(stat_fields(&stat)[..2], ["S", "7"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_described() {
        let me = nix::unistd::gettid().as_raw();
        assert!(task_ids().contains(&me));
        assert_eq!(task_status(me).map(|s| s.state), Some('R'));
        let stat = process_stat();
        assert!(stat.threads.unwrap_or(0) >= 1);
        assert!(stat.rss_bytes.unwrap_or(0) > 0);
        assert!(open_fd_count().unwrap_or(0) >= 3);
        assert!(!cmdline().is_empty());
        assert!(exe().is_some());
        assert_eq!(blind(), None);
    }
}
