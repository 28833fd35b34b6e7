//! The host of the reliability suite (tests/reliability.rs): a busy program whose own code does
//! everything wrong that user code can, with manhole installed.
//!
//! `manhole-reliability-host [--socket PATH] [--threads N] [--max-sessions N] [--idle-ms N]`
//! prints `ready <socket path>`, then obeys commands on stdin, one per line:
//! `progress` prints the heartbeat counter; `rss` prints the resident set in KiB; `heap` the
//! bytes in use from malloc, in KiB;
//! `fork` forks a child that sleeps 20 s and says `child <pid>`; `exec` forks a child that execs
//! `sleep 20` at once and says `child <pid>`. It exits when stdin closes.

#[path = "host_parts.rs"]
mod host_parts;

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use host_parts::Trap;

/// Ticks of the heartbeat thread, about one a millisecond: proof the program makes progress.
#[manhole::expose]
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Two MiB of text, for clients that do not read what they asked for.
#[manhole::expose]
static BIG: LazyLock<String> = LazyLock::new(|| "0123456789abcdef".repeat(128 * 1024));

/// A value whose Debug implementation panics.
#[manhole::expose]
static TRAP: Trap = Trap;

/// A value whose lock a thread of the program holds forever.
#[manhole::expose(writable)]
static STUCK: Mutex<u64> = Mutex::new(0);

/// Always panics.
#[manhole::expose]
fn explode() -> u64 {
    panic!("exposed fn exploded")
}

/// Never returns.
#[manhole::expose]
fn hang() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[inline(never)]
fn reliability_worker_sleeps() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    // SIGPIPE kills this host, as it would a C program: a write to a vanished client that is not
    // MSG_NOSIGNAL shows up as a dead process.
    // SAFETY: setting a signal disposition to SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = manhole::Options::new().verbose(true);
    if let Some(path) = value(&args, "--socket") {
        options = options.socket_path(path);
    }
    if let Some(n) = value(&args, "--max-sessions") {
        options = options.max_sessions(n.parse().expect("--max-sessions N"));
    }
    if let Some(ms) = value(&args, "--idle-ms") {
        options = options.idle_timeout(Duration::from_millis(ms.parse().expect("--idle-ms N")));
    }
    for i in 0..value(&args, "--threads").map_or(0, |n| n.parse().expect("--threads N")) {
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(reliability_worker_sleeps)
            .expect("spawn a worker");
    }
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(|| {
            loop {
                PROGRESS.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("spawn the heartbeat");
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("lock-holder".into())
        .spawn(move || {
            let _guard = STUCK.lock();
            let _ = held_tx.send(());
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        })
        .expect("spawn the lock holder");
    held_rx.recv().expect("the lock is held");
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            say(&format!("error: {e}"));
            return;
        }
    };
    let socket = handle
        .socket_path()
        .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
    say(&format!("ready {socket}"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "progress" => say(&PROGRESS.load(Ordering::Relaxed).to_string()),
            "rss" => {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0);
                say(&kib.to_string());
            }
            // Bytes malloc has handed out and not had back, in KiB: unlike the resident set,
            // blind to what the allocator keeps cached.
            "heap" => {
                // SAFETY: mallinfo2 only reads the allocator's counters.
                let info = unsafe { libc::mallinfo2() };
                say(&((info.uordblks + info.hblkhd) / 1024).to_string());
            }
            "fork" => say(&host_parts::fork_sleeper(20)),
            "exec" => say(&host_parts::fork_exec_sleep(c"20")),
            other => say(&format!("unknown: {other}")),
        }
    }
}
