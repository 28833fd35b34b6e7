//! A program written with the macros, as a user would: `#[manhole::main]` installs manhole,
//! `#[manhole::expose]` shows its state. Options come from the `MANHOLE` variable (the tests
//! give each run its own socket). It prints `ready`, then exits when stdin closes.

#[path = "host_parts.rs"]
mod host_parts;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock};

/// Requests served since start.
#[manhole::expose]
static REQUESTS: AtomicU64 = AtomicU64::new(41);

/// How many items the cache may hold.
#[manhole::expose(writable)]
static CACHE_LIMIT: AtomicU64 = AtomicU64::new(100);

/// Whether maintenance mode is on.
#[manhole::expose(writable)]
static MAINTENANCE: AtomicBool = AtomicBool::new(false);

/// The service's greeting.
#[manhole::expose(writable)]
static GREETING: Mutex<String> = Mutex::new(String::new());

/// Per-region weights.
#[manhole::expose(writable, name = "weight")]
static WEIGHT: RwLock<f64> = RwLock::new(1.5);

/// Feature flags, read once at start.
#[manhole::expose]
static FLAGS: LazyLock<BTreeMap<&str, bool>> =
    LazyLock::new(|| BTreeMap::from([("fast_path", true), ("beta", false)]));

/// Set when the config was loaded.
#[manhole::expose]
static LOADED_FROM: OnceLock<String> = OnceLock::new();

/// A value whose Debug implementation panics.
#[manhole::expose]
static TRAP: host_parts::Trap = host_parts::Trap;

/// Adds two numbers.
#[manhole::expose]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Greets someone, or fails for the empty name.
#[manhole::expose]
fn greet(name: &str, times: usize) -> Result<String, String> {
    if name.is_empty() {
        return Err("nobody to greet".to_owned());
    }
    Ok(vec![format!("hello {name}"); times].join(" / "))
}

/// Sleeps, then says how long it slept: a call that takes its time.
#[manhole::expose]
fn sleep_for(ms: u64) -> String {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    format!("slept {ms} ms")
}

/// Holds the GREETING lock on another thread for `ms` milliseconds.
#[manhole::expose]
fn hold_greeting(ms: u64) -> &'static str {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _guard = GREETING.lock();
        let _ = locked_tx.send(());
        std::thread::sleep(std::time::Duration::from_millis(ms));
    });
    let _ = locked_rx.recv();
    "held"
}

/// Ends the program with exit code 7.
#[manhole::expose]
fn bye() {
    std::process::exit(7)
}

/// Always panics.
#[manhole::expose]
fn explode() {
    panic!("exposed fn exploded")
}

#[manhole::main(verbose = false, idle_timeout = "2m")]
fn main() -> Result<(), String> {
    *GREETING.lock().map_err(|e| e.to_string())? = "hi".to_owned();
    let _ = LOADED_FROM.set("/etc/app.toml".to_owned());
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    println!(
        "ready {} pool {}",
        std::process::id(),
        manhole_test_exposed_lib::pool_size()
    );
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
