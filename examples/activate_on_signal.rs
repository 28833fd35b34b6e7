//! A manhole that sleeps until it is asked for: with `activate_on("USR1")` nothing listens and
//! no socket exists until the process receives SIGUSR1; from then on it listens for good. A
//! handler the program has for SIGUSR1 still runs, and sending the signal again is harmless.
//!
//! ```text
//! cargo run --example activate_on_signal
//! ```
//!
//! It prints its pid and where it will listen. Then either let manhole-cli send the signal and
//! wait for the socket:
//!
//! ```text
//! cargo run -p manhole-cli -- -1 4242
//! ```
//!
//! or send it yourself and connect:
//!
//! ```text
//! kill -USR1 4242
//! socat readline unix-connect:/tmp/manhole-4242
//! nc -U /tmp/manhole-4242
//! ```
//!
//! Before the signal, `ls /tmp/manhole-4242` finds nothing. Try `print HEARTBEATS` in the
//! console. Press Enter (or close its stdin) to stop it; the socket, if any, is removed.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Heartbeats since start, one every 100 ms.
#[manhole::expose]
static HEARTBEATS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let options = manhole::Options::new().activate_on("USR1").verbose(false);
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("activate_on_signal: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let beating = Arc::clone(&stop);
    let heart = thread::Builder::new()
        .name("heartbeat".to_owned())
        .spawn(move || {
            while !beating.load(Ordering::Relaxed) {
                HEARTBEATS.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(100));
            }
        });

    let pid = std::process::id();
    // Dormant: `handle.socket_path()` is None until the signal arrives.
    let path = manhole::default_socket_path(pid);
    println!(
        "activate_on_signal: pid {pid}, manhole dormant until SIGUSR1, then listening at {}",
        path.display()
    );
    println!("wake it and connect with:");
    println!("  cargo run -p manhole-cli -- -1 {pid}");
    println!("or:");
    println!(
        "  kill -USR1 {pid}; socat readline unix-connect:{}",
        path.display()
    );
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    if let Ok(heart) = heart {
        let _ = heart.join();
    }
    println!(
        "activate_on_signal: {} heartbeats, manhole was {}; bye",
        HEARTBEATS.load(Ordering::Relaxed),
        if handle.socket_path().is_some() {
            "listening"
        } else {
            "still dormant"
        }
    );
}
