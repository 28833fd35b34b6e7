//! One session per signal: with `oneshot_on("USR2")` each SIGUSR2 opens the socket for exactly
//! one client, which must arrive within `oneshot_timeout` (10 s here, 30 s by default); the
//! socket is removed as soon as that client is in, or when the time is up. The program's own
//! threads never wait for any of it.
//!
//! ```text
//! cargo run --example oneshot
//! ```
//!
//! It prints its pid and where the socket will appear. Let manhole-cli send the signal and wait
//! for the socket:
//!
//! ```text
//! cargo run -p manhole-cli -- -2 4242
//! ```
//!
//! or send it yourself and connect within 10 s:
//!
//! ```text
//! kill -USR2 4242 && sleep 0.2 && socat readline unix-connect:/tmp/manhole-4242
//! kill -USR2 4242 && sleep 0.2 && nc -U /tmp/manhole-4242
//! ```
//!
//! While your session is open, `ls /tmp/manhole-4242` finds nothing: a second client needs a
//! second signal. Try `print JOBS_DONE`. Press Enter (or close its stdin) to stop it.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Jobs the worker finished since start.
#[manhole::expose]
static JOBS_DONE: AtomicU64 = AtomicU64::new(0);

fn main() {
    let options = manhole::Options::new()
        .oneshot_on("USR2")
        .oneshot_timeout(Duration::from_secs(10))
        .verbose(false);
    if let Err(e) = manhole::install(options) {
        eprintln!("oneshot: manhole not installed: {e}");
        std::process::exit(1);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let working = Arc::clone(&stop);
    let worker = thread::Builder::new().name("worker".to_owned()).spawn(move || {
        while !working.load(Ordering::Relaxed) {
            JOBS_DONE.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(50));
        }
    });

    let pid = std::process::id();
    let path = manhole::default_socket_path(pid);
    println!(
        "oneshot: pid {pid}, manhole opens {} for one session on each SIGUSR2",
        path.display()
    );
    println!("connect with:");
    println!("  cargo run -p manhole-cli -- -2 {pid}");
    println!("or, within 10 s of the signal:");
    println!(
        "  kill -USR2 {pid} && sleep 0.2 && socat readline unix-connect:{}",
        path.display()
    );
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    if let Ok(worker) = worker {
        let _ = worker.join();
    }
    println!("oneshot: {} jobs done; bye", JOBS_DONE.load(Ordering::Relaxed));
}
