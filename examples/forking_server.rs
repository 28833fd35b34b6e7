//! A pre-fork server: the parent installs manhole, then forks worker processes with `fork()`
//! and no `exec` (as pre-fork HTTP servers do). Each worker gets its own manhole at
//! `/tmp/manhole-<workerpid>` once `reinstall_delay` (500 ms) has passed, showing that worker's
//! own threads and its own copy of every exposed static; the parent keeps
//! `/tmp/manhole-<parentpid>`.
//!
//! ```text
//! cargo run --example forking_server          # 2 workers
//! cargo run --example forking_server -- 4     # 4 workers
//! ```
//!
//! It prints the parent's pid and socket, then one line per worker, for example:
//!
//! ```text
//! forking_server: pid 4242, manhole listening at /tmp/manhole-4242
//! worker 0: pid 4250, manhole at /tmp/manhole-4250 after 500 ms
//! worker 1: pid 4251, manhole at /tmp/manhole-4251 after 500 ms
//! ```
//!
//! Connect to the parent or to any worker:
//!
//! ```text
//! socat readline unix-connect:/tmp/manhole-4250      # worker 0
//! nc -U /tmp/manhole-4251                             # worker 1
//! cargo run -p manhole-cli -- 4242                    # the parent
//! ```
//!
//! In a worker, `print WORKER` says which one it is (`-1` in the parent) and `print REQUESTS`
//! counts only that worker's requests; `info` shows its parent. `manhole-cli list` lists them
//! all.
//!
//! Press Enter (or close its stdin) to stop it: the parent sends SIGTERM to every worker (manhole
//! removes a worker's socket on its way out, and the worker dies of SIGTERM as it would have),
//! reaps them, and exits, removing its own socket. A worker whose parent is gone stops by itself.

use std::io::BufRead;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Which worker this process is: 0, 1, … in a worker, -1 in the parent.
#[manhole::expose]
static WORKER: AtomicI64 = AtomicI64::new(-1);

/// Requests this process served (each worker has its own copy, from the fork).
#[manhole::expose]
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// How long a worker waits before its manhole appears: children that `exec` sooner get none.
const REINSTALL_DELAY: Duration = Duration::from_millis(500);

/// The worker's life, in the forked child. It never returns: it ends the process.
fn worker(index: usize, parent: libc::pid_t) -> ! {
    WORKER.store(index as i64, Ordering::Relaxed);
    loop {
        // Serve a pretend request.
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: getppid has no preconditions and cannot fail.
        if unsafe { libc::getppid() } != parent {
            // Orphaned (the parent was killed): a normal exit, which removes our socket.
            std::process::exit(0);
        }
    }
}

/// Forks one worker and returns its pid in the parent.
fn spawn_worker(index: usize) -> std::io::Result<libc::pid_t> {
    // SAFETY: getpid has no preconditions and cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only runs `worker`, which sleeps, updates atomics and exits; it touches
    // no lock another thread of the parent could have held at the fork (stdout is flushed, and
    // nothing is printed in the child). Manhole's own fork handler gives it its manhole.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => worker(index, parent),
        child => Ok(child),
    }
}

/// Sends SIGTERM to each worker and waits for it; says how each one ended.
fn stop_workers(workers: &[libc::pid_t]) {
    for &pid in workers {
        // SAFETY: signals a child this process forked and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for &pid in workers {
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid place for its exit status.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        if reaped != pid {
            println!("worker pid {pid}: {}", std::io::Error::last_os_error());
        } else if libc::WIFSIGNALED(status) {
            println!("worker pid {pid}: stopped by signal {}", libc::WTERMSIG(status));
        } else {
            println!("worker pid {pid}: exited with {}", libc::WEXITSTATUS(status));
        }
    }
}

fn main() {
    let count = match std::env::args().nth(1).map(|n| n.parse::<usize>()) {
        None => 2,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: forking_server [WORKERS]   (a number above 0, 2 by default)");
            std::process::exit(2);
        }
    };
    let options = manhole::Options::new()
        .verbose(false)
        // The default: forked children get their own manhole…
        .patch_fork(true)
        // …once this has passed.
        .reinstall_delay(REINSTALL_DELAY);
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("forking_server: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let pid = std::process::id();
    let path = handle
        .socket_path()
        .unwrap_or_else(|| manhole::default_socket_path(pid));
    println!(
        "forking_server: pid {pid}, manhole listening at {}",
        path.display()
    );

    let mut workers = Vec::new();
    for index in 0..count {
        match spawn_worker(index) {
            Ok(child) => {
                let child_path = manhole::default_socket_path(child as u32);
                println!(
                    "worker {index}: pid {child}, manhole at {} after {} ms",
                    child_path.display(),
                    REINSTALL_DELAY.as_millis()
                );
                workers.push(child);
            }
            Err(e) => eprintln!("forking_server: cannot fork worker {index}: {e}"),
        }
    }
    println!("connect to the parent or a worker with any of:");
    println!("  socat readline unix-connect:/tmp/manhole-PID");
    println!("  nc -U /tmp/manhole-PID");
    println!("  cargo run -p manhole-cli -- PID");
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop_workers(&workers);
    println!("forking_server: bye");
}
