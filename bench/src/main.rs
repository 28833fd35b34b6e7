//! Benchmarks of manhole for every target of DESIGN.md §9, printed as tables with a summary
//! against the targets, and saved as JSON (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p manhole-bench                 # every benchmark
//! cargo run --release -p manhole-bench -- stacks idle  # some of them
//! cargo run --release -p manhole-bench -- --json out.json
//! ```
//!
//! Benchmarks: `stacks` (all-thread dump, against eu-stack and gdb when installed), `idle`
//! (wake-ups of manhole's threads), `install` (time and memory), `roundtrip` (command round trips
//! on one connection and on 16), `throughput` (the program's CPU-bound work while a client dumps
//! stacks at 10 Hz), `memory` (RSS of the first and a warm dump, and after the last session),
//! `size` (bytes manhole adds to a binary), `sync` (`manhole::sync` locks against std's). Each (but `sync`, which times locks in place) runs fresh processes of this
//! binary (`serve N`, `install-probe`, …); nothing is measured inside `cargo test`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

mod idle;
mod install;
mod memory;
mod report;
mod roundtrip;
mod size;
mod stacks;
mod sync;
mod throughput;
mod workload;

/// The benchmarks, in the order they run.
const BENCHMARKS: [&str; 8] = [
    "stacks",
    "idle",
    "install",
    "memory",
    "roundtrip",
    "throughput",
    "size",
    "sync",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let threads = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10);
            return workload::serve(threads, args.get(2).is_none_or(|a| a != "quiet"));
        }
        Some("install-probe") => return install::probe(),
        #[cfg(feature = "rstack")]
        Some("rstack-child") => {
            let _ = rstack_self::child();
            return;
        }
        _ => {}
    }
    let mut json = std::path::PathBuf::from("target/manhole-bench.json");
    let mut chosen: Vec<&str> = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--json" => match words.next() {
                Some(path) => json = path.into(),
                None => usage("--json needs a path"),
            },
            name => match BENCHMARKS.iter().find(|b| **b == name) {
                Some(b) => chosen.push(b),
                None => usage(&format!("unknown benchmark {name:?}")),
            },
        }
    }
    if chosen.is_empty() {
        chosen = BENCHMARKS.to_vec();
    }
    let mut report = report::Report::new(machine());
    println!("machine: {}", report.machine);
    for name in chosen {
        println!();
        match name {
            "stacks" => stacks::run(&mut report),
            "idle" => idle::run(&mut report),
            "install" => install::run(&mut report),
            "memory" => memory::run(&mut report),
            "roundtrip" => roundtrip::run(&mut report),
            "throughput" => throughput::run(&mut report),
            "sync" => sync::run(&mut report),
            _ => size::run(&mut report),
        }
    }
    report.finish(&json);
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "manhole-bench: {problem}\nusage: manhole-bench [--json PATH] [{}]…",
        BENCHMARKS.join("|")
    );
    std::process::exit(2);
}

/// A workload process (`manhole-bench serve N`) with manhole installed.
struct Workload {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    socket: std::path::PathBuf,
}

impl Workload {
    /// `threads` threads, two of them spinning.
    fn start(threads: usize) -> Workload {
        Workload::spawn(&["serve", &threads.to_string()])
    }

    /// `threads` threads, none spinning: for measurements the spinners would disturb.
    fn start_quiet(threads: usize) -> Workload {
        Workload::spawn(&["serve", &threads.to_string(), "quiet"])
    }

    fn spawn(args: &[&str]) -> Workload {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the workload");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut workload = Workload {
            child,
            stdin,
            stdout,
            socket: Default::default(),
        };
        let ready = workload.line();
        match ready.strip_prefix("ready ") {
            Some(path) => workload.socket = path.into(),
            None => panic!("workload said {ready:?}"),
        }
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

    /// Sends a command on the workload's stdin and returns its one-line answer.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("workload input");
        self.stdin.flush().expect("flush");
        self.line()
    }

    /// A session with the workload's manhole, past its opening dump.
    fn session(&self) -> Session {
        Session::open(&self.socket)
    }
}

/// A client of a manhole socket that reads up to each prompt.
struct Session {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl Session {
    fn open(path: &std::path::Path) -> Session {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
        let mut session = Session {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        };
        session.until_prompt();
        session
    }

    /// Reads up to the next prompt; returns how many bytes came before it.
    fn until_prompt(&mut self) -> usize {
        use std::io::Read;
        let mut chunk = [0u8; 64 * 1024];
        self.buf.clear();
        while !self.buf.ends_with(b">>> ") {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => panic!("the session ended: {}", String::from_utf8_lossy(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        self.buf.len() - 4
    }

    /// Sends one command and waits for its whole answer.
    fn command(&mut self, line: &str) -> usize {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
        self.until_prompt()
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

/// The middle value (the upper one of an even count).
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
