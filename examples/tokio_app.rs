//! A tokio application with a manhole: a multi-threaded runtime running a few async tasks (a
//! timer, a producer, the jobs it spawns), counters the console can print, a setting it can
//! change, and a function it can call that spawns work onto the running runtime.
//!
//! ```text
//! cargo run --example tokio_app
//! ```
//!
//! It prints its pid and socket; connect with any of:
//!
//! ```text
//! socat readline unix-connect:/tmp/manhole-4242
//! nc -U /tmp/manhole-4242
//! cargo run -p manhole-cli -- 4242
//! ```
//!
//! The dump shows the runtime's worker threads (`tokio-rt-worker`) parked or polling, and the
//! `main` thread in `Runtime::block_on`. Then try:
//!
//! ```text
//! >>> print JOBS_DONE
//! >>> set JOB_MS 500              # jobs now take half a second…
//! >>> print IN_FLIGHT             # …so more of them are in flight at once
//! >>> call burst 100              # 100 more jobs, spawned on the runtime from the console
//! ```
//!
//! `#[manhole::main]` and `#[tokio::main]` work in either order. This example puts
//! `#[manhole::main]` first (outermost): manhole is installed at the start of the async body,
//! with the runtime already running. The other order compiles too and installs manhole in the
//! synchronous `main` that `#[tokio::main]` generates, before the runtime starts:
//!
//! ```ignore
//! #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! #[manhole::main(verbose = false)]
//! async fn main() { … }
//! ```
//!
//! Either way the manhole's own threads are plain threads outside the runtime: a session never
//! takes a runtime worker, and a dump works even when every worker is stuck.
//!
//! Press Enter (or close its stdin) to stop it; the socket is removed at exit.

use std::io::BufRead;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Ticks of the 100 ms timer task.
#[manhole::expose]
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Jobs finished since start.
#[manhole::expose]
static JOBS_DONE: AtomicU64 = AtomicU64::new(0);

/// Jobs spawned and not finished yet.
#[manhole::expose]
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// How long each job takes, in milliseconds.
#[manhole::expose(writable)]
static JOB_MS: AtomicU64 = AtomicU64::new(20);

/// The running runtime, so that code outside it (a console call) can spawn onto it.
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Spawns `n` more jobs on the runtime; says how many are running now.
#[manhole::expose]
fn burst(n: u32) -> Result<String, String> {
    let runtime = RUNTIME.get().ok_or("the runtime has not started")?;
    for _ in 0..n {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        runtime.spawn(job());
    }
    Ok(format!(
        "queued {n} jobs, {} in flight",
        IN_FLIGHT.load(Ordering::Relaxed)
    ))
}

/// One unit of pretend work (whoever spawns it counts it in `IN_FLIGHT`).
async fn job() {
    tokio::time::sleep(Duration::from_millis(JOB_MS.load(Ordering::Relaxed))).await;
    IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    JOBS_DONE.fetch_add(1, Ordering::Relaxed);
}

/// Counts ticks of a timer.
async fn ticker() {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spawns a job every 50 ms, as requests would arrive.
async fn producer() {
    loop {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(job());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[manhole::main(verbose = false)]
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let _ = RUNTIME.set(tokio::runtime::Handle::current());
    tokio::spawn(ticker());
    tokio::spawn(producer());

    let pid = std::process::id();
    let path = manhole::default_socket_path(pid);
    println!("tokio_app: pid {pid}, manhole listening at {}", path.display());
    println!("connect with any of:");
    println!("  socat readline unix-connect:{}", path.display());
    println!("  nc -U {}", path.display());
    println!("  cargo run -p manhole-cli -- {pid}");
    println!(
        "then try \"print JOBS_DONE\", \"set JOB_MS 500\", \"call burst 100\". Press Enter here to stop."
    );

    // Run until Enter or end of input; reading stdin blocks, so not on a runtime worker.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)
    })
    .await;
    println!(
        "tokio_app: {} ticks, {} jobs done; bye",
        TICKS.load(Ordering::Relaxed),
        JOBS_DONE.load(Ordering::Relaxed)
    );
}
