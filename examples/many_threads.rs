//! A process with many threads, for trying the stack dump at scale: 1000 threads by default,
//! or as many as the first argument says. Most wait on a condition variable, one in ten is
//! blocked reading a pipe, and a few sleep in a loop, so the dump groups them into a handful of
//! distinct stacks ("and 899 more with this stack").
//!
//! ```text
//! cargo run --release --example many_threads            # 1000 threads
//! cargo run --release --example many_threads -- 5000    # 5000 threads
//! ```
//!
//! It prints its pid, the thread count and its socket; connect with any of:
//!
//! ```text
//! socat readline unix-connect:/tmp/manhole-4242
//! nc -U /tmp/manhole-4242
//! cargo run -p manhole-cli -- 4242
//! time (echo quit | socat - unix-connect:/tmp/manhole-4242 > /dev/null)   # one full dump
//! ```
//!
//! In the console, `stacks` dumps again, `stacks reader-*` shows only the readers, `info` counts
//! the threads. (More than a few thousand threads may need a higher `ulimit -u` or
//! `/proc/sys/kernel/threads-max`.)
//!
//! Press Enter (or close its stdin) to stop it: every thread is woken and joined, and the socket
//! is removed.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// How each thread spends its life.
#[derive(Clone, Copy)]
enum Kind {
    /// Waits on a condition variable until told to stop.
    Idle,
    /// Blocked in `read` on a pipe nobody writes to, until it is closed.
    Reader,
    /// Sleeps in a loop.
    Ticker,
}

fn kind_of(index: usize) -> Kind {
    if index.is_multiple_of(100) {
        Kind::Ticker
    } else if index.is_multiple_of(10) {
        Kind::Reader
    } else {
        Kind::Idle
    }
}

/// What the threads share: the stop flag and the condition variable the idle ones wait on,
/// and how many threads have started.
struct Shared {
    stopping: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
    started: Mutex<usize>,
    all_started: Condvar,
}

impl Shared {
    /// Called first by every thread: counts it as running.
    fn started(&self) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.all_started.notify_one();
    }

    /// Waits until `count` threads run.
    fn wait_for_start(&self, count: usize) {
        let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let _running = self
            .all_started
            .wait_while(started, |started| *started < count)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[inline(never)]
fn idle(shared: &Shared) {
    let stopping = shared.stopping.lock().unwrap_or_else(PoisonError::into_inner);
    let _stopped = shared
        .wake
        .wait_while(stopping, |stopping| !*stopping)
        .unwrap_or_else(PoisonError::into_inner);
}

#[inline(never)]
fn read_until_closed(mut pipe: std::io::PipeReader) {
    let mut buf = [0u8; 64];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[inline(never)]
fn tick(shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let count = match std::env::args().nth(1).map(|n| n.parse::<usize>()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: many_threads [THREADS]   (1000 by default)");
            std::process::exit(2);
        }
    };
    let handle = match manhole::install(manhole::Options::new().verbose(false)) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("many_threads: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("many_threads: cannot create a pipe: {e}");
            std::process::exit(1);
        }
    };
    let shared = Arc::new(Shared {
        stopping: Mutex::new(false),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        started: Mutex::new(0),
        all_started: Condvar::new(),
    });

    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let kind = kind_of(index);
        let (name, body): (String, Box<dyn FnOnce() + Send>) = match kind {
            Kind::Idle => {
                let shared = Arc::clone(&shared);
                (format!("idle-{index}"), Box::new(move || idle(&shared)))
            }
            Kind::Reader => match reader.try_clone() {
                Ok(pipe) => (
                    format!("reader-{index}"),
                    Box::new(move || read_until_closed(pipe)),
                ),
                Err(e) => {
                    eprintln!("many_threads: cannot share the pipe: {e}");
                    break;
                }
            },
            Kind::Ticker => {
                let shared = Arc::clone(&shared);
                (format!("ticker-{index}"), Box::new(move || tick(&shared)))
            }
        };
        let starting = Arc::clone(&shared);
        let body = move || {
            starting.started();
            body();
        };
        match thread::Builder::new().name(name).spawn(body) {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                eprintln!("many_threads: thread {index} did not start ({e}); going on with {index}");
                break;
            }
        }
    }
    drop(reader);
    // Every thread runs (and is about to block) before the program says it is ready.
    shared.wait_for_start(threads.len());

    let pid = std::process::id();
    let path = handle
        .socket_path()
        .unwrap_or_else(|| manhole::default_socket_path(pid));
    println!(
        "many_threads: pid {pid}, {} threads, manhole listening at {}",
        threads.len(),
        path.display()
    );
    println!("connect with any of:");
    println!("  socat readline unix-connect:{}", path.display());
    println!("  nc -U {}", path.display());
    println!("  cargo run -p manhole-cli -- {pid}");
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    shared.stop.store(true, Ordering::Relaxed);
    *shared.stopping.lock().unwrap_or_else(PoisonError::into_inner) = true;
    shared.wake.notify_all();
    drop(writer);
    let total = threads.len();
    for thread in threads {
        let _ = thread.join();
    }
    println!("many_threads: {total} threads stopped; bye");
}
