//! Two bank transfers that deadlock, for trying `locks` and `doctor`: `transfer-in` locks
//! `SAVINGS` then `CHECKING`, `transfer-out` locks `CHECKING` then `SAVINGS`, and they meet in
//! between. The accounts are `manhole::sync::Mutex`es, which record who holds them, so `doctor`
//! is certain. A second pair does the same with std's `Mutex` (`LEDGER`, `AUDIT`), which records
//! no owner: there `doctor` only says what it can see.
//!
//! ```text
//! cargo run --example deadlock
//! ```
//!
//! It prints its pid and socket; connect, then ask:
//!
//! ```text
//! cargo run -p manhole-cli -- 4242 doctor
//! cargo run -p manhole-cli -- 4242 locks
//! ```
//!
//! Press Enter (or close its stdin) to stop it; the stuck threads go down with the process.

use std::io::BufRead;
use std::sync::{Barrier, Mutex as StdMutex, PoisonError};

/// Money in the checking account, in cents.
#[manhole::expose]
static CHECKING: manhole::sync::Mutex<u64> = manhole::sync::Mutex::new(120_000);

/// Money in the savings account, in cents.
#[manhole::expose]
static SAVINGS: manhole::sync::Mutex<u64> = manhole::sync::Mutex::new(800_000);

/// Transfers written down, with std's Mutex.
#[manhole::expose]
static LEDGER: StdMutex<Vec<u64>> = StdMutex::new(Vec::new());

/// Transfers checked, with std's Mutex.
#[manhole::expose]
static AUDIT: StdMutex<u64> = StdMutex::new(0);

/// Moves `cents` from `from` to `to`, locking `from` first: the classic lock-order bug.
#[inline(never)]
fn transfer(from: &manhole::sync::Mutex<u64>, to: &manhole::sync::Mutex<u64>, cents: u64, meet: &Barrier) {
    let mut source = from.lock().unwrap_or_else(PoisonError::into_inner);
    meet.wait(); // both have taken their first lock
    let mut target = to.lock().unwrap_or_else(PoisonError::into_inner);
    *source -= cents;
    *target += cents;
}

/// The same mistake with std's locks.
#[inline(never)]
fn record(first_ledger: bool, meet: &Barrier) {
    if first_ledger {
        let mut ledger = LEDGER.lock().unwrap_or_else(PoisonError::into_inner);
        meet.wait();
        *AUDIT.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        ledger.push(1);
    } else {
        let mut audit = AUDIT.lock().unwrap_or_else(PoisonError::into_inner);
        meet.wait();
        LEDGER.lock().unwrap_or_else(PoisonError::into_inner).push(2);
        *audit += 1;
    }
}

fn main() {
    let handle = match manhole::install(manhole::Options::new().verbose(false)) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("deadlock: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(work)
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    };
    let accounts: &'static Barrier = Box::leak(Box::new(Barrier::new(2)));
    spawn(
        "transfer-in",
        Box::new(|| transfer(&SAVINGS, &CHECKING, 5_000, accounts)),
    );
    spawn(
        "transfer-out",
        Box::new(|| transfer(&CHECKING, &SAVINGS, 2_500, accounts)),
    );
    let books: &'static Barrier = Box::leak(Box::new(Barrier::new(2)));
    spawn("recorder", Box::new(|| record(true, books)));
    spawn("auditor", Box::new(|| record(false, books)));
    let socket = handle
        .socket_path()
        .map_or_else(|| "nowhere".to_owned(), |p| p.display().to_string());
    println!(
        "deadlock: pid {}, manhole listening at {socket}",
        std::process::id()
    );
    let _ = std::io::stdin().lock().lines().next();
}
