//! The all-thread stack dump: manhole from inside, eu-stack and gdb from outside, on the same
//! process, at 10, 100 and 1000 threads.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::Report;
use crate::{Workload, median, ms, percentile, us};

const SIZES: [usize; 3] = [10, 100, 1000];
/// Warm dumps per size; the table shows medians.
const WARM_DUMPS: usize = 9;
/// Runs of each external tool per size.
const TOOL_RUNS: usize = 3;

/// One dump as the workload reports it.
#[derive(Clone, Debug, Default)]
struct Dump {
    threads: usize,
    captured: usize,
    capture: Duration,
    symbolize: Duration,
    render: Duration,
    /// Of `symbolize`, telling why each thread waits.
    waits: Duration,
    pauses: Vec<Duration>,
}

impl Dump {
    fn total(&self) -> Duration {
        self.capture + self.symbolize + self.render
    }

    fn parse(line: &str) -> Option<Dump> {
        let mut fields = line.split_whitespace();
        let mut next = || fields.next();
        let us = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).map(Duration::from_micros);
        let _tag = next()?;
        Some(Dump {
            threads: next()?.parse().ok()?,
            captured: next()?.parse().ok()?,
            capture: us(next())?,
            symbolize: us(next())?,
            render: us(next())?,
            waits: us(next())?,
            pauses: next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.parse::<u64>().ok())
                .map(Duration::from_nanos)
                .collect(),
        })
    }
}

/// Median wall time of an external tool dumping `pid`, or why it could not run.
fn external(program: &str, args: &[String]) -> Result<Duration, String> {
    let mut times = Vec::new();
    for _ in 0..TOOL_RUNS {
        let start = Instant::now();
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("not run: {e}"))?;
        let elapsed = start.elapsed();
        if !out.status.success() && out.stdout.is_empty() {
            return Err(format!(
                "failed: {}",
                String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("")
            ));
        }
        times.push(elapsed);
    }
    Ok(median(times))
}

/// rstack-self dumps a process from a helper it starts (which ptraces it): median wall time of
/// the workload doing so on itself, when built with `--features rstack`.
fn rstack_self(workload: &mut Workload) -> Result<Duration, String> {
    if !cfg!(feature = "rstack") {
        return Err("not built (--features rstack)".into());
    }
    let mut times = Vec::new();
    for _ in 0..TOOL_RUNS {
        let line = workload.ask("rstack");
        let us: u64 = line
            .strip_prefix("rstack ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("failed: {line}"))?;
        times.push(Duration::from_micros(us));
    }
    Ok(median(times))
}

impl Workload {
    fn dump(&mut self) -> Dump {
        let line = self.ask("dump");
        Dump::parse(&line).unwrap_or_else(|| panic!("bad dump line {line:?}"))
    }
}

struct Row {
    threads: usize,
    first: Dump,
    /// Each part's median over the warm dumps.
    warm: Dump,
    /// The median warm dump, whole.
    warm_total: Duration,
    pause_p50: Duration,
    pause_p99: Duration,
    answered: String,
    eu_stack: Result<Duration, String>,
    gdb: Result<Duration, String>,
    rstack_self: Result<Duration, String>,
}

pub(crate) fn run(report: &mut Report) {
    println!(
        "manhole stack dump benchmark: {} warm dumps per size, medians; external tools {TOOL_RUNS} runs",
        WARM_DUMPS
    );
    let mut rows = Vec::new();
    for threads in SIZES {
        eprint!("  {threads} threads: ");
        let mut workload = Workload::start(threads);
        let first = workload.dump();
        eprint!("first dump {} ms; warm", ms(first.total()));
        let warm: Vec<Dump> = (0..WARM_DUMPS).map(|_| workload.dump()).collect();
        let mut pauses: Vec<Duration> = warm.iter().flat_map(|d| d.pauses.iter().copied()).collect();
        pauses.sort_unstable();
        let pick = |f: fn(&Dump) -> Duration| median(warm.iter().map(f).collect());
        let warm_median = Dump {
            threads: warm[0].threads,
            captured: warm.iter().map(|d| d.captured).min().unwrap_or(0),
            capture: pick(|d| d.capture),
            symbolize: pick(|d| d.symbolize),
            render: pick(|d| d.render),
            waits: pick(|d| d.waits),
            pauses: Vec::new(),
        };
        // The median of whole dumps, not the sum of the parts' medians.
        let warm_total = median(warm.iter().map(Dump::total).collect());
        eprint!(" {} ms; eu-stack", ms(warm_total));
        let pid = workload.pid().to_string();
        let eu_stack = external("eu-stack", &["-p".into(), pid.clone()]);
        eprint!(", gdb");
        let gdb = external(
            "gdb",
            &[
                "-p".into(),
                pid,
                "-batch".into(),
                "-nx".into(),
                "-ex".into(),
                "thread apply all bt".into(),
            ],
        );
        eprint!(", rstack-self");
        let rstack_self = rstack_self(&mut workload);
        eprintln!(", done");
        rows.push(Row {
            threads,
            answered: format!(
                "{}/{}",
                warm_median.captured,
                warm_median.threads.saturating_sub(1)
            ),
            first,
            warm: warm_median,
            warm_total,
            pause_p50: percentile(&pauses, 0.50),
            pause_p99: percentile(&pauses, 0.99),
            eu_stack,
            gdb,
            rstack_self,
        });
    }
    println!();
    println!(
        "| threads | answered | first dump ms | warm dump ms | capture ms | symbolize ms | of which wait reasons ms | render ms | pause p50 µs | pause p99 µs | rstack-self ms | eu-stack ms | gdb ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let tool = |r: &Result<Duration, String>| match r {
            Ok(d) => format!(
                "{} ({:.0}x)",
                ms(*d),
                d.as_secs_f64() / row.warm_total.as_secs_f64().max(1e-9)
            ),
            Err(e) => e.clone(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.threads,
            row.answered,
            ms(row.first.total()),
            ms(row.warm_total),
            ms(row.warm.capture),
            ms(row.warm.symbolize),
            ms(row.warm.waits),
            ms(row.warm.render),
            us(row.pause_p50),
            us(row.pause_p99),
            tool(&row.rstack_self),
            tool(&row.eu_stack),
            tool(&row.gdb),
        );
    }
    println!();
    println!("answered: threads that unwound themselves in-process / threads other than the dumping one.");
    println!("(Nx): how many times longer the external tool took than manhole's warm dump.");
    record(report, &rows);
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn record(report: &mut Report, rows: &[Row]) {
    let tool_ms = |r: &Result<Duration, String>| r.as_ref().ok().map(|d| millis(*d));
    report.data(
        "stacks",
        json!(
            rows.iter()
                .map(|r| json!({
                    "threads": r.threads,
                    "answered": r.answered,
                    "first_ms": millis(r.first.total()),
                    "warm_ms": millis(r.warm_total),
                    "capture_ms": millis(r.warm.capture),
                    "symbolize_ms": millis(r.warm.symbolize),
                    "render_ms": millis(r.warm.render),
                    "wait_reasons_ms": millis(r.warm.waits),
                    "pause_p50_us": r.pause_p50.as_secs_f64() * 1e6,
                    "pause_p99_us": r.pause_p99.as_secs_f64() * 1e6,
                    "eu_stack_ms": tool_ms(&r.eu_stack),
                    "gdb_ms": tool_ms(&r.gdb),
                    "rstack_self_ms": tool_ms(&r.rstack_self),
                }))
                .collect::<Vec<_>>()
        ),
    );
    let Some(big) = rows.iter().max_by_key(|r| r.threads) else {
        return;
    };
    let warm = big.warm_total;
    report.check(
        format!("all-thread dump, {} threads, warm", big.threads),
        "≤ 25 ms",
        format!("{} ms", ms(warm)),
        Some(warm <= Duration::from_millis(25)),
    );
    for (tool, result, want) in [
        ("rstack-self", &big.rstack_self, 5.0),
        ("gdb", &big.gdb, 30.0),
        ("eu-stack", &big.eu_stack, 60.0),
    ] {
        let (measured, met) = match result {
            Ok(d) => {
                let ratio = d.as_secs_f64() / warm.as_secs_f64().max(1e-9);
                (format!("{ratio:.0}x ({} ms)", ms(*d)), Some(ratio >= want))
            }
            Err(why) => (why.clone(), None),
        };
        report.check(
            format!("… faster than {tool}, {} threads", big.threads),
            format!("≥ {want:.0}x"),
            measured,
            met,
        );
    }
    let p50 = rows.iter().map(|r| r.pause_p50).max().unwrap_or_default();
    let p99 = rows.iter().map(|r| r.pause_p99).max().unwrap_or_default();
    report.check(
        "pause of one thread while its stack is taken (worst size)",
        "p50 ≤ 5 µs, p99 ≤ 50 µs",
        format!("p50 {} µs, p99 {} µs", us(p50), us(p99)),
        Some(p50 <= Duration::from_micros(5) && p99 <= Duration::from_micros(50)),
    );
    let first = rows.iter().map(|r| r.first.total()).max().unwrap_or_default();
    report.check(
        "first dump in a fresh process (slowest size)",
        "≤ 300 ms",
        format!("{} ms", ms(first)),
        Some(first <= Duration::from_millis(300)),
    );
}
