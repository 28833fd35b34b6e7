//! `manhole::sync` against std: uncontended lock and unlock of a `Mutex`, read and write locks
//! of an `RwLock`, in nanoseconds per operation, on one thread (the cost every lock of the
//! program pays; contention is std's, the same lock inside). Also the two clocks a lock could
//! stamp its holder with.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::Report;

/// Operations per run, and runs per measurement (the median is reported).
const OPS: u32 = 5_000_000;
const RUNS: usize = 9;

/// Nanoseconds per call of `op`, for each run.
fn runs(mut op: impl FnMut()) -> Vec<f64> {
    // Warm up: caches, the thread-local id, the page of the lock.
    for _ in 0..OPS / 10 {
        op();
    }
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..OPS {
                op();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(OPS)
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn coarse_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

pub(crate) fn run(report: &mut Report) {
    println!(
        "## manhole::sync against std (uncontended, one thread; ns per operation, median of {RUNS} runs of {} M)",
        OPS / 1_000_000
    );
    println!();
    let std_mutex = std::sync::Mutex::new(0u64);
    let our_mutex = manhole::sync::Mutex::new(0u64);
    let std_rw = std::sync::RwLock::new(0u64);
    let our_rw = manhole::sync::RwLock::new(0u64);
    eprint!("  sync: Mutex");
    let rows = [
        (
            "Mutex lock + unlock",
            runs(|| *black_box(&std_mutex).lock().unwrap_or_else(|e| e.into_inner()) += 1),
            runs(|| *black_box(&our_mutex).lock().unwrap_or_else(|e| e.into_inner()) += 1),
        ),
        (
            "RwLock read + unlock",
            runs(|| {
                black_box(*black_box(&std_rw).read().unwrap_or_else(|e| e.into_inner()));
            }),
            runs(|| {
                black_box(*black_box(&our_rw).read().unwrap_or_else(|e| e.into_inner()));
            }),
        ),
        (
            "RwLock write + unlock",
            runs(|| *black_box(&std_rw).write().unwrap_or_else(|e| e.into_inner()) += 1),
            runs(|| *black_box(&our_rw).write().unwrap_or_else(|e| e.into_inner()) += 1),
        ),
    ];
    eprint!(", clocks");
    let instant = runs(|| {
        black_box(Instant::now());
    });
    let coarse = runs(|| {
        black_box(coarse_now());
    });
    eprintln!();
    println!("| operation | std | manhole::sync | ratio |");
    println!("|---|---:|---:|---:|");
    let mut data = serde_json::Map::new();
    for (what, std_runs, our_runs) in &rows {
        let (s, o) = (median(std_runs), median(our_runs));
        let ratio = o / s;
        println!("| {what} | {s:.1} | {o:.1} | {ratio:.2}x |");
        report.check(
            format!("manhole::sync {what}, uncontended"),
            "within 2x of std",
            format!("{o:.1} ns vs {s:.1} ns ({ratio:.2}x)"),
            Some(ratio <= 2.0),
        );
        data.insert(
            what.to_string(),
            json!({ "std_ns": std_runs, "manhole_ns": our_runs, "ratio": ratio }),
        );
    }
    println!();
    println!("| clock | ns per read |");
    println!("|---|---:|");
    println!("| `Instant::now()` (CLOCK_MONOTONIC) | {:.1} |", median(&instant));
    println!(
        "| CLOCK_MONOTONIC_COARSE (what a lock stamps under contention) | {:.1} |",
        median(&coarse)
    );
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec through a valid pointer.
    unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    let resolution = res.tv_nsec as f64 / 1e6;
    println!();
    println!("CLOCK_MONOTONIC_COARSE resolution: {resolution:.1} ms");
    data.insert(
        "clocks".into(),
        json!({ "instant_ns": instant, "coarse_ns": coarse, "coarse_resolution_ms": resolution }),
    );
    report.data("sync", serde_json::Value::Object(data));
}
