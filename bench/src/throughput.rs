//! The program's CPU-bound work while a client dumps its stacks ten times a second, against the
//! same work with nobody connected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Workload;
use crate::report::Report;

const WINDOW: Duration = Duration::from_secs(3);
/// Windows of each kind, alternated.
const ROUNDS: usize = 5;
const THREADS: usize = 100;

/// Rounds of work per second over one window, with or without a client dumping at 10 Hz.
fn window(workload: &mut Workload, dumping: bool) -> f64 {
    let stop = AtomicBool::new(false);
    let mut dumps = 0;
    let rate = std::thread::scope(|scope| {
        let client = dumping.then(|| {
            let mut session = workload.session();
            let stop = &stop;
            scope.spawn(move || {
                let mut done = 0;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    session.command("stacks");
                    done += 1;
                    next += Duration::from_millis(100);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                done
            })
        });
        std::thread::sleep(Duration::from_millis(200)); // the client is under way
        let before: u64 = workload.ask("spun").parse().expect("a count");
        let started = Instant::now();
        std::thread::sleep(WINDOW);
        let after: u64 = workload.ask("spun").parse().expect("a count");
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(client) = client {
            dumps = client.join().expect("the dumping client");
        }
        (after - before) as f64 / elapsed.as_secs_f64()
    });
    if dumping {
        eprint!(" [{dumps} dumps]");
    }
    rate
}

pub(crate) fn run(report: &mut Report) {
    println!(
        "## Host throughput while a client dumps stacks at 10 Hz ({THREADS} threads, 2 spinning; \
         {ROUNDS} alternated {} s windows, medians)",
        WINDOW.as_secs()
    );
    println!();
    let mut workload = Workload::start(THREADS);
    // The first dump loads debug info; it is not what a client at 10 Hz costs.
    workload.session().command("stacks");
    let mut alone = Vec::new();
    let mut watched = Vec::new();
    let mut ratios = Vec::new();
    eprint!("  throughput:");
    for _ in 0..ROUNDS {
        let a = window(&mut workload, false);
        let w = window(&mut workload, true);
        alone.push(a);
        watched.push(w);
        ratios.push(w / a);
    }
    eprintln!(", done");
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = med(&ratios);
    println!("| nobody connected, rounds/s | dumping at 10 Hz, rounds/s | ratio |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.0} | {:.0} | {:.1}% |",
        med(&alone),
        med(&watched),
        ratio * 100.0
    );
    report.data(
        "throughput",
        json!({
            "threads": THREADS,
            "window_s": WINDOW.as_secs(),
            "alone_per_s": alone,
            "dumping_per_s": watched,
            "ratios": ratios,
        }),
    );
    report.check(
        "host CPU-bound throughput while a client dumps stacks at 10 Hz",
        "≥ 98% of baseline",
        format!("{:.1}% (median of {ROUNDS} pairs)", ratio * 100.0),
        Some(ratio >= 0.98),
    );
}
