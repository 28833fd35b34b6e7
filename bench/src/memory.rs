//! What a dump costs in memory, and whether it is given back: the resident set of a fresh
//! 100-thread workload before anyone connects, during the first session (after its opening
//! dump), during a second session (a warm dump), and after the last session ended.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::Workload;
use crate::report::Report;

const RUNS: usize = 3;
const THREADS: usize = 100;

/// VmRSS and VmHWM of `pid`, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Run {
    before: u64,
    first: u64,
    warm: u64,
    peak: u64,
    after: u64,
}

fn one_run() -> Run {
    let workload = Workload::start_quiet(THREADS);
    let pid = workload.pid();
    std::thread::sleep(Duration::from_millis(300));
    let (before, _) = rss(pid);
    let first_session = workload.session();
    let (first, _) = rss(pid);
    drop(first_session);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = workload.session();
    second.command("stacks");
    let (warm, _) = rss(pid);
    drop(second);
    // The last session's end gives the caches back; wait for it to settle.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = rss(pid).0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss(pid).0;
        if now == after {
            break;
        }
        after = now;
    }
    let (_, peak) = rss(pid);
    Run {
        before,
        first,
        warm,
        peak,
        after,
    }
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

pub(crate) fn run(report: &mut Report) {
    println!("## Memory of a dump ({THREADS} threads, {RUNS} fresh processes, medians)");
    println!();
    eprint!("  memory:");
    let runs: Vec<Run> = (0..RUNS)
        .map(|i| {
            eprint!(" {}", i + 1);
            one_run()
        })
        .collect();
    eprintln!(", done");
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    let delta = |f: fn(&Run) -> u64| median(runs.iter().map(|r| f(r).saturating_sub(r.before)).collect());
    let before = median(runs.iter().map(|r| r.before).collect());
    let (first, warm, peak, after) = (
        delta(|r| r.first),
        delta(|r| r.warm),
        delta(|r| r.peak),
        delta(|r| r.after),
    );
    println!("| RSS before | first dump (+) | warm dump (+) | peak (+) | after the last session (+) |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} MiB | {} MiB | {} MiB | {} MiB | {} MiB |",
        mib(before),
        mib(first),
        mib(warm),
        mib(peak),
        mib(after)
    );
    report.data(
        "memory",
        json!({
            "threads": THREADS,
            "runs": runs.iter().map(|r| json!({
                "before_kib": r.before, "first_kib": r.first, "warm_kib": r.warm,
                "peak_kib": r.peak, "after_kib": r.after,
            })).collect::<Vec<_>>(),
        }),
    );
    report.check(
        "RSS after the last session ends",
        "within 4 MiB of before the first connection",
        format!("+{} MiB", mib(after)),
        Some(after <= 4096),
    );
    report.reported(
        "memory of the first dump (RSS added)",
        format!("+{} MiB", mib(first)),
    );
    report.reported("memory of a warm dump (RSS added)", format!("+{} MiB", mib(warm)));
}
