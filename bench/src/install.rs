//! What `install()` costs a program: its time, and the memory it adds before anyone connects.
//! Each run is a fresh process (`manhole-bench install-probe`).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::Report;
use crate::{median, us};

const RUNS: usize = 9;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the probe process: installs manhole once and prints
/// `install <µs> <RSS before KiB> <RSS after KiB>`.
pub(crate) fn probe() {
    let socket = std::env::temp_dir().join(format!("manhole-bench-install-{}", std::process::id()));
    let before = rss_kib();
    let started = Instant::now();
    let handle = manhole::install(manhole::Options::new().socket_path(&socket).verbose(false));
    let took = started.elapsed();
    // The listener thread is up and waiting for its first connection.
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    println!("install {} {before} {after}", took.as_micros());
    if let Ok(handle) = handle {
        handle.uninstall();
    }
}

pub(crate) fn run(report: &mut Report) {
    println!("## install() ({RUNS} fresh processes, medians)");
    println!();
    let exe = std::env::current_exe().expect("current_exe");
    let mut times = Vec::new();
    let mut added = Vec::new();
    for _ in 0..RUNS {
        let out = Command::new(&exe)
            .arg("install-probe")
            .output()
            .expect("run the probe");
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<u64> = text
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let [micros, before, after] = fields[..] else {
            panic!("the probe said {text:?}");
        };
        times.push(Duration::from_micros(micros));
        added.push(after.saturating_sub(before));
    }
    let took = median(times.clone());
    added.sort_unstable();
    let rss = added[added.len() / 2];
    println!("| install() time | RSS added before the first connection |");
    println!("|---:|---:|");
    println!("| {} µs | {rss} KiB |", us(took));
    report.data(
        "install",
        json!({
            "runs": RUNS,
            "time_us": times.iter().map(|t| t.as_micros() as u64).collect::<Vec<_>>(),
            "rss_added_kib": added,
        }),
    );
    report.check(
        "install() time",
        "≤ 1 ms",
        format!("{} µs", us(took)),
        Some(took <= Duration::from_millis(1)),
    );
    report.check(
        "RSS added by install() before the first connection",
        "≤ 2 MiB",
        format!("{rss} KiB"),
        Some(rss <= 2048),
    );
}
