//! Installing manhole without macros: `manhole::install(manhole::Options::new()…)` with the
//! options a production service would pick, and `.local(…)` values of the running program (its
//! configuration, live statistics, recent requests) that the console can list and print.
//!
//! ```text
//! cargo run --example builder                        # listens at /tmp/manhole-<pid>
//! cargo run --example builder -- /tmp/my-app.sock    # listens where you say
//! ```
//!
//! It prints its pid and where it listens, then how to connect, for example:
//!
//! ```text
//! socat readline unix-connect:/tmp/manhole-4242
//! nc -U /tmp/manhole-4242
//! cargo run -p manhole-cli -- 4242            # or: cargo run -p manhole-cli -- /tmp/my-app.sock
//! ```
//!
//! In the console, `vars` lists the locals (`config`, `stats`, `recent`), `print stats` shows
//! the counters as they are now, and every few seconds a line the program writes to its stderr
//! shows up in the session too (`redirect_stderr`).
//!
//! Press Enter (or close its stdin) to stop it: it uninstalls manhole, which removes the socket.
//! To keep it running without a terminal, give it a stdin that stays open:
//! `sleep infinity | cargo run --example builder`.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// The service's configuration, as it was read at start: shown with `print config`.
#[derive(Debug)]
struct Config {
    listen: String,
    workers: usize,
    request_timeout: Duration,
    upstreams: Vec<String>,
}

/// Live counters the workers update: `print stats` shows their current values.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes_out: AtomicU64,
}

/// The last few requests, newest last: `print recent`.
type Recent = Mutex<VecDeque<String>>;

/// Serves pretend requests until `stop` is set.
fn worker(id: usize, config: Arc<Config>, stats: Arc<Stats>, recent: Arc<Recent>, stop: Arc<AtomicBool>) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let upstream = &config.upstreams[n as usize % config.upstreams.len()];
        let path = format!("/items/{}", (n * 7 + id as u64) % 100);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.bytes_out.fetch_add(512 + n % 256, Ordering::Relaxed);
        if n.is_multiple_of(17) {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut recent = recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() == 5 {
                recent.pop_front();
            }
            recent.push_back(format!("worker-{id} GET {path} via {upstream}"));
        }
        thread::sleep(Duration::from_millis(100).min(config.request_timeout));
    }
}

/// Writes a summary to stderr every few seconds: with `redirect_stderr(true)` the open sessions
/// see these lines too.
fn reporter(stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let mut ticks = 0u32;
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(250));
        ticks += 1;
        if ticks.is_multiple_of(12) {
            eprintln!(
                "builder: {} requests, {} errors so far",
                stats.requests.load(Ordering::Relaxed),
                stats.errors.load(Ordering::Relaxed)
            );
        }
    }
}

/// Starts a named thread; a thread that cannot start is reported and done without.
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Option<thread::JoinHandle<()>> {
    match thread::Builder::new().name(name.to_owned()).spawn(body) {
        Ok(thread) => Some(thread),
        Err(e) => {
            eprintln!("builder: cannot start thread {name}: {e}");
            None
        }
    }
}

fn main() {
    let config = Arc::new(Config {
        listen: "127.0.0.1:8080".to_owned(),
        workers: 3,
        request_timeout: Duration::from_secs(5),
        upstreams: vec!["db-primary:5432".to_owned(), "cache:6379".to_owned()],
    });
    let stats = Arc::new(Stats::default());
    let recent: Arc<Recent> = Arc::new(Mutex::new(VecDeque::new()));

    let mut options = manhole::Options::new()
        // Log what manhole does (`Manhole[<pid>:<time>]: …`) to stderr.
        .verbose(true)
        // A handful of engineers at once is plenty; one more gets a one-line refusal.
        .max_sessions(4)
        // A forgotten session closes after ten quiet minutes.
        .idle_timeout(Duration::from_secs(600))
        // Stopping the service cuts open sessions off instead of waiting for them.
        .daemon_connection(true)
        // While a session is open, it also sees what the program writes to stderr.
        .redirect_stderr(true)
        // This service never forks workers; say so.
        .patch_fork(false)
        // Values of the running program, listed by `vars` and shown by `print NAME`.
        .local("config", Arc::clone(&config))
        .local("stats", Arc::clone(&stats))
        .local("recent", Arc::clone(&recent));
    if let Some(path) = std::env::args_os().nth(1) {
        options = options.socket_path(PathBuf::from(path));
    }
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("builder: manhole not installed: {e}");
            std::process::exit(1);
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for id in 0..config.workers {
        let (config, stats, recent, stop) = (
            Arc::clone(&config),
            Arc::clone(&stats),
            Arc::clone(&recent),
            Arc::clone(&stop),
        );
        threads.extend(spawn(&format!("worker-{id}"), move || {
            worker(id, config, stats, recent, stop)
        }));
    }
    let (reporter_stats, reporter_stop) = (Arc::clone(&stats), Arc::clone(&stop));
    threads.extend(spawn("reporter", move || reporter(reporter_stats, reporter_stop)));

    let pid = std::process::id();
    let path = handle
        .socket_path()
        .unwrap_or_else(|| manhole::default_socket_path(pid));
    println!("builder: pid {pid}, manhole listening at {}", path.display());
    println!("connect with any of:");
    println!("  socat readline unix-connect:{}", path.display());
    println!("  nc -U {}", path.display());
    println!("  cargo run -p manhole-cli -- {}", path.display());
    println!(
        "(pretending to serve {} with {} workers)",
        config.listen, config.workers
    );
    println!("then try \"vars\", \"print stats\", \"print config\". Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    // Not needed at exit (the socket goes anyway), but this is how a program stops manhole.
    handle.uninstall();
    println!(
        "builder: {} requests served; bye",
        stats.requests.load(Ordering::Relaxed)
    );
}
