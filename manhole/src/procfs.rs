//! Reading this process's facts from `/proc/self` (Linux). Every reader returns `None` or an
//! empty value when the file is missing or unreadable, so a missing `/proc` only thins the output.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The ids of every thread of this process, ascending.
pub(crate) fn task_ids() -> Vec<i32> {
    let mut tids: Vec<i32> = match fs::read_dir("/proc/self/task") {
        Ok(dir) => dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    tids.sort_unstable();
    tids
}

fn task_file(tid: i32, name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/self/task/{tid}/{name}")).ok()
}

/// The fields of a `stat` file after the command name, which may itself hold spaces and parens.
fn stat_fields(text: &str) -> Vec<&str> {
    match text.rfind(')') {
        Some(end) => text[end + 1..].split_whitespace().collect(),
        None => Vec::new(),
    }
}

/// What a dump needs to know of a thread, from one read of `/proc/self/task/<tid>/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskStatus {
    /// The kernel's name of the thread (at most 15 bytes).
    pub(crate) name: String,
    /// The scheduler state letter.
    pub(crate) state: char,
    /// The signals it blocks, as a bit mask (bit n-1 for signal n).
    pub(crate) blocked: u64,
}

/// Reads it with one read(2) into a stack buffer: a dump reads this file for every thread, and
/// the kernel builds the whole text on the first read (about 1.4 KB), so a second read to see
/// EOF and a heap buffer would only add cost.
pub(crate) fn task_status(tid: i32) -> Option<TaskStatus> {
    use std::io::Read;
    let mut file = fs::File::open(format!("/proc/self/task/{tid}/status")).ok()?;
    let mut buf = [0u8; 4096];
    let n = file.read(&mut buf).ok()?;
    if n == buf.len() {
        // Larger than expected: fall back to reading all of it.
        return parse_status(&task_file(tid, "status")?);
    }
    parse_status(std::str::from_utf8(&buf[..n]).ok()?)
}

fn parse_status(text: &str) -> Option<TaskStatus> {
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    Some(TaskStatus {
        name: field("Name:")?.to_owned(),
        state: field("State:")?.chars().next()?,
        blocked: u64::from_str_radix(field("SigBlk:").unwrap_or("0"), 16).unwrap_or(0),
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
    let text = task_file(tid, "wchan")?;
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
    parse_syscall(&task_file(tid, "syscall")?)
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

/// The system call a thread sleeps in and its six arguments, if it sleeps in one.
pub(crate) fn syscall_with_args(tid: i32) -> Option<(libc::c_long, [usize; 6])> {
    parse_syscall_args(&task_file(tid, "syscall")?)
}

fn parse_syscall_args(text: &str) -> Option<(libc::c_long, [usize; 6])> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 9 {
        return None;
    }
    let hex = |s: &str| usize::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let mut args = [0usize; 6];
    for (arg, field) in args.iter_mut().zip(&fields[1..7]) {
        *arg = hex(field)?;
    }
    Some((fields[0].parse().ok()?, args))
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
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
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
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        out.rss_bytes = status_kib(&status, "VmRSS:").map(|k| k * 1024);
        out.vm_bytes = status_kib(&status, "VmSize:").map(|k| k * 1024);
    }
    out
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn seconds_since_boot() -> Option<Duration> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// The command line, one string per argument (lossy for non-UTF-8 bytes).
pub(crate) fn cmdline() -> Vec<String> {
    match fs::read("/proc/self/cmdline") {
        Ok(bytes) => bytes
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
        Err(_) => std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    }
}

/// How many file descriptors are open.
pub(crate) fn open_fd_count() -> Option<usize> {
    let dir = fs::read_dir("/proc/self/fd")
        .or_else(|_| fs::read_dir("/dev/fd"))
        .ok()?;
    // The directory handle itself is one of the entries; do not count it.
    Some(dir.count().saturating_sub(1))
}

pub(crate) fn exe() -> Option<PathBuf> {
    std::env::current_exe().ok()
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
    }

    #[test]
    fn status_files() {
        let text = "Name:\tworker (1)\nUmask:\t0022\nState:\tS (sleeping)\nSigBlk:\t8000000000000001\n";
        let status = parse_status(text).unwrap();
        assert_eq!(
            status,
            TaskStatus {
                name: "worker (1)".into(),
                state: 'S',
                blocked: 0x8000_0000_0000_0001
            }
        );
        assert_eq!(parse_status("garbage"), None);
    }

    #[test]
    fn stat_with_a_hostile_command_name() {
        let stat = "42 (a b) (c)) S 1 42 42 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 5 0 100";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "1");
        assert_eq!(fields[17], "5");
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
    }
}
