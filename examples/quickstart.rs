//! A small service with a few busy threads and a manhole to look inside it.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! It prints its pid and how to connect, for example:
//!
//! ```text
//! socat readline unix-connect:/tmp/manhole-4242
//! nc -U /tmp/manhole-4242
//! cargo run -p manhole-cli -- 4242
//! ```
//!
//! Press Enter to stop it (the socket is removed on the way out).

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Primes the cruncher has found so far.
#[manhole::expose]
static PRIMES_FOUND: AtomicU64 = AtomicU64::new(0);

/// Times the pretend cache was flushed.
#[manhole::expose]
static FLUSHES: AtomicU64 = AtomicU64::new(0);

/// Milliseconds between flushes.
#[manhole::expose(writable)]
static FLUSH_EVERY_MS: AtomicU64 = AtomicU64::new(2000);

/// Whether `n` is prime.
#[manhole::expose]
fn is_prime(n: u64) -> bool {
    n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
}

/// Counts primes forever, yielding now and then: the thread you will see "running".
#[inline(never)]
fn crunch_primes() {
    let mut candidate: u64 = 2;
    loop {
        if is_prime(candidate) {
            PRIMES_FOUND.fetch_add(1, Ordering::Relaxed);
        }
        candidate += 1;
        if candidate.is_multiple_of(50_000) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Flushes a pretend cache every FLUSH_EVERY_MS: the thread you will see sleeping.
#[inline(never)]
fn flush_periodically() {
    loop {
        let every = FLUSH_EVERY_MS.load(Ordering::Relaxed).max(10);
        thread::sleep(Duration::from_millis(every));
        FLUSHES.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits for jobs that never come: the thread you will see blocked on a condition variable.
#[inline(never)]
fn wait_for_jobs(queue: Arc<(Mutex<Vec<String>>, Condvar)>) {
    let (jobs, ready) = &*queue;
    let mut jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        jobs = ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
        jobs.clear();
    }
}

/// Reads requests from a pipe nobody writes to: the thread you will see blocked in `read`.
#[inline(never)]
fn ingest_requests(mut pipe: std::io::PipeReader) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Starts a named worker and returns once it runs (a thread names itself when it starts).
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) {
    let started = Arc::new(std::sync::Barrier::new(2));
    let running = Arc::clone(&started);
    let spawned = thread::Builder::new().name(name.to_owned()).spawn(move || {
        running.wait();
        body();
    });
    match spawned {
        Ok(_) => {
            started.wait();
        }
        Err(e) => eprintln!("quickstart: cannot start thread {name}: {e}"),
    }
}

fn main() {
    let handle = match manhole::install(manhole::Options::new().verbose(false)) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("quickstart: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let queue = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("quickstart: cannot create a pipe: {e}");
            std::process::exit(1);
        }
    };
    spawn("cruncher", crunch_primes);
    spawn("flusher", flush_periodically);
    spawn("job-waiter", move || wait_for_jobs(queue));
    spawn("ingest", move || ingest_requests(reader));

    let pid = std::process::id();
    let path = handle
        .socket_path()
        .unwrap_or_else(|| manhole::default_socket_path(pid));
    println!("quickstart: pid {pid}, manhole listening at {}", path.display());
    println!("connect with any of:");
    println!("  socat readline unix-connect:{}", path.display());
    println!("  nc -U {}", path.display());
    println!("  cargo run -p manhole-cli -- {pid}");
    println!("then type \"help\", \"vars\" or \"set FLUSH_EVERY_MS 500\". Press Enter here to stop.");

    // Run until Enter (or end of input on a terminal). With no terminal and no input, run on.
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => loop {
            thread::park();
        },
        _ => {
            println!(
                "quickstart: {} primes found, {} flushes; bye",
                PRIMES_FOUND.load(Ordering::Relaxed),
                FLUSHES.load(Ordering::Relaxed)
            );
            drop(writer);
        }
    }
}
