//! Changing a running service's behaviour from the console: its settings live in
//! `#[manhole::expose(writable)]` statics (atomics, a `Mutex<String>`, an `RwLock` of the
//! program's own enum) that the worker reads on every request, and exposed functions change
//! them with validation or reset state.
//!
//! ```text
//! cargo run --example live_config
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
//! and watch the program's stderr change as you type:
//!
//! ```text
//! >>> vars                          # every setting, its type, whether it is writable
//! >>> set LOG_LEVEL debug           # one stderr line per request instead of a summary
//! >>> set RATE_PER_SEC 50           # serve faster (old -> new is shown)
//! >>> set MAINTENANCE true          # reject requests; print REJECTED climbs
//! >>> set BANNER "eu-west canary"   # quote a value with spaces
//! >>> call set_rate 0               # a checked setter: refused, with a reason
//! >>> call set_rate 5
//! >>> call reset_counters
//! ```
//!
//! Or one command at a time, without the stack dump:
//! `cargo run -p manhole-cli -- -q 4242 set MAINTENANCE false`.
//!
//! Press Enter (or close its stdin) to stop it; the socket is removed at exit.

use std::fmt;
use std::io::BufRead;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// Requests served per second (at least 1).
#[manhole::expose(writable)]
static RATE_PER_SEC: AtomicU64 = AtomicU64::new(10);

/// When true, every request is rejected.
#[manhole::expose(writable)]
static MAINTENANCE: AtomicBool = AtomicBool::new(false);

/// How much the worker logs: error, warn, info or debug.
#[manhole::expose(writable)]
static LOG_LEVEL: RwLock<Level> = RwLock::new(Level::Info);

/// What every log line starts with.
#[manhole::expose(writable)]
static BANNER: Mutex<String> = Mutex::new(String::new());

/// Requests served since start (or since reset_counters).
#[manhole::expose]
static SERVED: AtomicU64 = AtomicU64::new(0);

/// Requests rejected in maintenance mode since start (or since reset_counters).
#[manhole::expose]
static REJECTED: AtomicU64 = AtomicU64::new(0);

/// Sets the rate, refusing values outside 1..=1000 (unlike `set RATE_PER_SEC`).
#[manhole::expose]
fn set_rate(per_sec: u64) -> Result<String, String> {
    if !(1..=1000).contains(&per_sec) {
        return Err(format!("{per_sec} requests per second is outside 1..=1000"));
    }
    let old = RATE_PER_SEC.swap(per_sec, Ordering::Relaxed);
    Ok(format!("rate {old} -> {per_sec} per second"))
}

/// Sets SERVED and REJECTED back to 0 and says what they were.
#[manhole::expose]
fn reset_counters() -> String {
    let served = SERVED.swap(0, Ordering::Relaxed);
    let rejected = REJECTED.swap(0, Ordering::Relaxed);
    format!("served {served}, rejected {rejected} before the reset")
}

/// A log level, settable from the console because it implements `FromStr` (and `Debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl FromStr for Level {
    type Err = String;

    fn from_str(text: &str) -> Result<Level, String> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(format!("{text:?} is not one of error, warn, info, debug")),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Writes a log line to stderr if the current level lets it through.
fn log(level: Level, message: fmt::Arguments<'_>) {
    if level <= *LOG_LEVEL.read().unwrap_or_else(PoisonError::into_inner) {
        let banner = BANNER.lock().unwrap_or_else(PoisonError::into_inner).clone();
        eprintln!("[{banner}] {level}: {message}");
    }
}

/// Serves requests at `RATE_PER_SEC`, honouring `MAINTENANCE`; logs a summary every two
/// seconds at info level, and every request at debug level.
fn serve(stop: &AtomicBool) {
    let mut last_summary = Instant::now();
    let mut request: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        request += 1;
        if MAINTENANCE.load(Ordering::Relaxed) {
            REJECTED.fetch_add(1, Ordering::Relaxed);
            log(
                Level::Warn,
                format_args!("request {request} rejected: maintenance"),
            );
        } else {
            SERVED.fetch_add(1, Ordering::Relaxed);
            log(Level::Debug, format_args!("request {request} served"));
        }
        if last_summary.elapsed() >= Duration::from_secs(2) {
            last_summary = Instant::now();
            log(
                Level::Info,
                format_args!(
                    "{} served, {} rejected, {} per second",
                    SERVED.load(Ordering::Relaxed),
                    REJECTED.load(Ordering::Relaxed),
                    RATE_PER_SEC.load(Ordering::Relaxed)
                ),
            );
        }
        let rate = RATE_PER_SEC.load(Ordering::Relaxed).max(1);
        thread::sleep(Duration::from_micros(1_000_000 / rate));
    }
}

fn main() {
    *BANNER.lock().unwrap_or_else(PoisonError::into_inner) = "live_config".to_owned();
    let handle = match manhole::install(manhole::Options::new().verbose(false)) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("live_config: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let serving = Arc::clone(&stop);
    let server = thread::Builder::new()
        .name("server".to_owned())
        .spawn(move || serve(&serving));

    let pid = std::process::id();
    let path = handle
        .socket_path()
        .unwrap_or_else(|| manhole::default_socket_path(pid));
    println!("live_config: pid {pid}, manhole listening at {}", path.display());
    println!("connect with any of:");
    println!("  socat readline unix-connect:{}", path.display());
    println!("  nc -U {}", path.display());
    println!("  cargo run -p manhole-cli -- {pid}");
    println!("then try \"set LOG_LEVEL debug\", \"set MAINTENANCE true\", \"call set_rate 50\".");
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    if let Ok(server) = server {
        let _ = server.join();
    }
    println!(
        "live_config: {} served, {} rejected; bye",
        SERVED.load(Ordering::Relaxed),
        REJECTED.load(Ordering::Relaxed)
    );
}
