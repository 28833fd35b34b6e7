//! Command round trips: `print SPUN` (an exposed atomic) answered, on one connection and on 16
//! at once.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::Report;
use crate::{Workload, median, percentile, us};

const COMMANDS: usize = 20_000;
const CONNECTIONS: usize = 16;
const RUNS: usize = 3;

/// Sends `count` commands on one session, once every client is connected and warmed up;
/// returns each round trip.
fn round_trips(workload: &Workload, count: usize, start: &Barrier) -> Vec<Duration> {
    let mut session = workload.session();
    for _ in 0..200 {
        session.command("print SPUN");
    }
    start.wait();
    (0..count)
        .map(|_| {
            let started = Instant::now();
            session.command("print SPUN");
            started.elapsed()
        })
        .collect()
}

struct Run {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn measure(workload: &Workload, connections: usize) -> Run {
    let per_connection = COMMANDS / connections;
    // The clock starts when every client has connected (each session opens with a stack dump)
    // and warmed up, so the rate counts the timed commands only.
    let start = Barrier::new(connections + 1);
    let (mut all, wall): (Vec<Duration>, Duration) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|_| scope.spawn(|| round_trips(workload, per_connection, &start)))
            .collect();
        start.wait();
        let started = Instant::now();
        let all = workers
            .into_iter()
            .flat_map(|w| w.join().expect("a client failed"))
            .collect();
        (all, started.elapsed())
    });
    all.sort_unstable();
    Run {
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        per_second: all.len() as f64 / wall.as_secs_f64(),
    }
}

pub(crate) fn run(report: &mut Report) {
    println!("## Command round trip (`print SPUN`, {COMMANDS} commands a run, medians of {RUNS} runs)");
    println!();
    let workload = Workload::start_quiet(10);
    let mut rows = Vec::new();
    for connections in [1, CONNECTIONS] {
        eprint!("  roundtrip: {connections} connection(s)");
        let runs: Vec<Run> = (0..RUNS).map(|_| measure(&workload, connections)).collect();
        eprintln!(", done");
        let mut rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
        rates.sort_by(f64::total_cmp);
        rows.push((
            connections,
            median(runs.iter().map(|r| r.p50).collect()),
            median(runs.iter().map(|r| r.p99).collect()),
            rates[rates.len() / 2],
        ));
    }
    println!("| connections | p50 µs | p99 µs | commands per second |");
    println!("|---:|---:|---:|---:|");
    for (connections, p50, p99, rate) in &rows {
        println!("| {connections} | {} | {} | {rate:.0} |", us(*p50), us(*p99));
    }
    report.data(
        "roundtrip",
        json!(
            rows.iter()
                .map(|(c, p50, p99, rate)| json!({
                    "connections": c,
                    "p50_us": p50.as_secs_f64() * 1e6,
                    "p99_us": p99.as_secs_f64() * 1e6,
                    "per_second": rate,
                }))
                .collect::<Vec<_>>()
        ),
    );
    let (_, p50, p99, rate) = rows[0];
    report.check(
        "command round trip (print of an atomic), one connection",
        "p50 ≤ 100 µs",
        format!("p50 {} µs (p99 {} µs)", us(p50), us(p99)),
        Some(p50 <= Duration::from_micros(100)),
    );
    report.check(
        "commands per second, one connection",
        "≥ 10000",
        format!("{rate:.0}"),
        Some(rate >= 10_000.0),
    );
    let (_, _, _, rate16) = rows[1];
    report.reported(
        format!("commands per second, {CONNECTIONS} connections at once"),
        format!("{rate16:.0}"),
    );
}
