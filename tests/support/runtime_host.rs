//! The host of tests/stderr_children.rs and tests/program_signal_mask.rs: a program that starts
//! children, points its stderr elsewhere and starts threads from exposed functions and `Debug`
//! impls, with manhole installed.
//!
//! `manhole-runtime-host [--socket PATH] [--redirect-stderr]` prints `ready <socket path>`, then
//! obeys commands on stdin, one per line, answering one line each:
//! - `spawn-child`: starts `sh` with its stdin a pipe of the host's and its stderr inherited
//!   (fd 2 as it is now); the child copies each line of its stdin to its stderr. Says
//!   `child <n>`;
//! - `child-say N TEXT`: child number N writes TEXT to its stderr; says `sent`;
//! - `reap`: closes every child's stdin and waits for them; says `reaped <count>`;
//! - `stderr TEXT`: writes TEXT to stderr; `fd2`: where fd 2 points;
//! - `replace-stderr PATH`: opens PATH (appending) and dup2s it onto fd 2, as a program rotating
//!   its log does; says `replaced`;
//! - `fork-say TEXT`: forks a child that writes TEXT to its fd 2 and exits; says `forked`;
//! - `block-usr2`: blocks SIGUSR2 in the main thread (as a program reading it from a signalfd
//!   does); says `blocked`;
//! - `main-mask`: the main thread's `SigBlk`; `worker`: what the thread `start_worker` started
//!   saw of itself (`mask <SigBlk> name <comm>`), or `none`.
//!
//! Exposed: `start_worker()` starts an unnamed program thread that records its mask and name,
//! then sleeps; `call_mask()` returns the mask of the thread running it; `MASK_IN_DEBUG`'s
//! `Debug` shows the mask of the thread formatting it.

#[path = "host_parts.rs"]
mod host_parts;

use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A field of `/proc/thread-self/status` (or of the task `tid` of this process).
fn status_field(tid: Option<u32>, key: &str) -> String {
    let path = tid.map_or_else(
        || "/proc/thread-self/status".to_owned(),
        |tid| format!("/proc/self/task/{tid}/status"),
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| "?".to_owned())
}

fn own_mask() -> String {
    status_field(None, "SigBlk:")
}

/// What the thread started by `start_worker` saw of itself.
static WORKER: Mutex<Option<String>> = Mutex::new(None);

/// Starts a thread of the program's own (unnamed, as most are) and waits until it has looked
/// at itself.
#[manhole::expose]
fn start_worker() -> String {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().spawn(move || {
        let seen = format!("mask {} name {}", own_mask(), status_field(None, "Name:"));
        *WORKER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(seen);
        let _ = tx.send(());
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    });
    match spawned {
        Ok(_) => match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => "started".to_owned(),
            Err(e) => format!("worker did not report: {e}"),
        },
        Err(e) => format!("cannot spawn: {e}"),
    }
}

/// The signal mask of the thread that runs this call.
#[manhole::expose]
fn call_mask() -> String {
    format!("mask {}", own_mask())
}

/// A value whose `Debug` shows the mask of the thread formatting it.
pub struct MaskProbe;

impl std::fmt::Debug for MaskProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mask {}", own_mask())
    }
}

/// Shows the mask its reader runs with.
#[manhole::expose]
static MASK_IN_DEBUG: MaskProbe = MaskProbe;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = manhole::Options::new().verbose(true);
    if let Some(path) = value(&args, "--socket") {
        options = options.socket_path(path);
    }
    if args.iter().any(|a| a == "--redirect-stderr") {
        options = options.redirect_stderr(true);
    }
    let Some(_handle) = host_parts::install_and_say_ready(options) else {
        return;
    };
    let mut children: Vec<Child> = Vec::new();
    let main_tid = std::process::id();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (command, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match command {
            "spawn-child" => {
                let child = Command::new("/bin/sh")
                    .arg("-c")
                    .arg("while read -r line; do echo \"$line\" >&2; done")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn();
                match child {
                    Ok(child) => {
                        children.push(child);
                        say(&format!("child {}", children.len() - 1));
                    }
                    Err(e) => say(&format!("cannot spawn: {e}")),
                }
            }
            "child-say" => {
                let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let stdin = n
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| children.get_mut(n))
                    .and_then(|c| c.stdin.as_mut());
                match stdin.map(|s| writeln!(s, "{text}").and_then(|()| s.flush())) {
                    Some(Ok(())) => say("sent"),
                    Some(Err(e)) => say(&format!("cannot send: {e}")),
                    None => say("no such child"),
                }
            }
            "reap" => {
                let count = children.len();
                for mut child in children.drain(..) {
                    drop(child.stdin.take());
                    let _ = child.wait();
                }
                say(&format!("reaped {count}"));
            }
            "stderr" => {
                eprintln!("{rest}");
                say("written");
            }
            "fd2" => say(&std::fs::read_link("/proc/self/fd/2")
                .map_or_else(|e| e.to_string(), |p| p.display().to_string())),
            "replace-stderr" => {
                let opened = std::fs::OpenOptions::new().create(true).append(true).open(rest);
                match opened {
                    Ok(file) => {
                        // SAFETY: points fd 2 at a file that stays open (fd 2 keeps it), as a
                        // program rotating its log does.
                        let rc = unsafe { libc::dup2(file.as_raw_fd(), 2) };
                        say(if rc == 2 { "replaced" } else { "dup2 failed" });
                    }
                    Err(e) => say(&format!("cannot open: {e}")),
                }
            }
            "fork-say" => {
                let text = format!("{rest}\n");
                // SAFETY: the child only writes a buffer prepared before the fork and _exits;
                // the parent waits for it.
                match unsafe { libc::fork() } {
                    // SAFETY: as above.
                    0 => unsafe {
                        libc::write(2, text.as_ptr().cast(), text.len());
                        libc::_exit(0);
                    },
                    child if child > 0 => {
                        let mut status = 0;
                        // SAFETY: waits for the child just created.
                        unsafe { libc::waitpid(child, &mut status, 0) };
                        say("forked");
                    }
                    _ => say("fork failed"),
                }
            }
            "block-usr2" => {
                // SAFETY: sigset_t is plain data initialised by sigemptyset/sigaddset; changing
                // the main thread's mask is the point.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGUSR2);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                }
                say("blocked");
            }
            "main-mask" => say(&format!("mask {}", status_field(Some(main_tid), "SigBlk:"))),
            "worker" => say(&WORKER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "none".to_owned())),
            "exit" => break,
            other => say(&format!("unknown: {other}")),
        }
    }
    for mut child in children {
        drop(child.stdin.take());
        let _ = child.wait();
    }
}
