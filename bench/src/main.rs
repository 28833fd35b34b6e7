//! Benchmarks of manhole, printed as a table (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p manhole-bench             # every benchmark
//! cargo run --release -p manhole-bench -- stacks   # the all-thread stack dump only
//! ```
//!
//! Each measurement runs a fresh workload process (`manhole-bench serve N`): N threads that
//! sleep, wait on a condition variable, wait on a held mutex, block in read(2), and two that
//! spin. manhole dumps it from inside; `eu-stack -p` and `gdb -batch -ex 'thread apply all bt'`
//! dump the same process from outside when they are installed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

mod workload;

const SIZES: [usize; 3] = [10, 100, 1000];
/// Warm dumps per size; the table shows medians.
const WARM_DUMPS: usize = 9;
/// Runs of each external tool per size.
const TOOL_RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => workload::serve(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10)),
        None | Some("stacks") => stacks(),
        Some(other) => {
            eprintln!("manhole-bench: unknown benchmark {other:?}; try: stacks");
            std::process::exit(2);
        }
    }
}

/// One dump as the workload reports it.
#[derive(Clone, Debug, Default)]
struct Dump {
    threads: usize,
    captured: usize,
    capture: Duration,
    symbolize: Duration,
    render: Duration,
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
            pauses: next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.parse::<u64>().ok())
                .map(Duration::from_nanos)
                .collect(),
        })
    }
}

struct Workload {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    fn start(threads: usize) -> Workload {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(["serve", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the workload");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut workload = Workload { child, stdin, stdout };
        let ready = workload.line();
        assert!(ready.starts_with("ready"), "workload said {ready:?}");
        workload
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("workload output");
        line.trim_end().to_owned()
    }

    fn dump(&mut self) -> Dump {
        writeln!(self.stdin, "dump").expect("workload input");
        self.stdin.flush().expect("flush");
        let line = self.line();
        Dump::parse(&line).unwrap_or_else(|| panic!("bad dump line {line:?}"))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: manhole removes the workload's socket on the way out.
        // SAFETY: signals this benchmark's own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
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

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

struct Row {
    threads: usize,
    first: Dump,
    warm: Dump,
    pause_p50: Duration,
    pause_p99: Duration,
    answered: String,
    eu_stack: Result<Duration, String>,
    gdb: Result<Duration, String>,
}

fn stacks() {
    println!(
        "manhole stack dump benchmark: {} warm dumps per size, medians; external tools {TOOL_RUNS} runs",
        WARM_DUMPS
    );
    println!("machine: {}", machine());
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
            pauses: Vec::new(),
        };
        eprint!(" {} ms; eu-stack", ms(warm_median.total()));
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
            pause_p50: percentile(&pauses, 0.50),
            pause_p99: percentile(&pauses, 0.99),
            eu_stack,
            gdb,
        });
    }
    println!();
    println!(
        "| threads | answered | first dump ms | warm dump ms | capture ms | symbolize ms | render ms | pause p50 µs | pause p99 µs | eu-stack ms | gdb ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let tool = |r: &Result<Duration, String>| match r {
            Ok(d) => format!(
                "{} ({:.0}x)",
                ms(*d),
                d.as_secs_f64() / row.warm.total().as_secs_f64().max(1e-9)
            ),
            Err(e) => e.clone(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.threads,
            row.answered,
            ms(row.first.total()),
            ms(row.warm.total()),
            ms(row.warm.capture),
            ms(row.warm.symbolize),
            ms(row.warm.render),
            us(row.pause_p50),
            us(row.pause_p99),
            tool(&row.eu_stack),
            tool(&row.gdb),
        );
    }
    println!();
    println!("answered: threads that unwound themselves in-process / threads other than the dumping one.");
    println!("(Nx): how many times longer the external tool took than manhole's warm dump.");
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}
