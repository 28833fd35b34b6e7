//! The process the benchmarks measure: N threads in the usual waiting states, two of them
//! spinning (the program's CPU-bound work, counted in `SPUN`), and manhole installed.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Rounds of work done by the spinning threads (one per 65536 multiply-adds).
#[manhole::expose]
static SPUN: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn bench_sleeper() {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[inline(never)]
fn bench_condvar(pair: Arc<(Mutex<bool>, Condvar)>) {
    let (lock, cvar) = &*pair;
    let mut ready = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !*ready {
        ready = cvar.wait(ready).unwrap_or_else(|e| e.into_inner());
    }
}

#[inline(never)]
fn bench_mutex(lock: Arc<Mutex<()>>) {
    drop(lock.lock());
}

#[inline(never)]
fn bench_pipe_reader(fd: i32) {
    let mut byte = 0u8;
    // SAFETY: `fd` is the read end of a pipe this process keeps open; the buffer is one byte.
    unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
}

#[inline(never)]
fn bench_spinner() {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x & 0xffff == 0 {
            SPUN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the threads (two spinning if `spin`), installs manhole, then answers commands on
/// stdin: `dump` (timings of one dump), `spun` (the work counter), `rstack`.
pub(crate) fn serve(threads: usize, spin: bool) {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let held = Arc::new(Mutex::new(()));
    let _guard = held.lock();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes; both stay open.
    unsafe { libc::pipe(fds.as_mut_ptr()) };
    let started = Arc::new(Barrier::new(threads + 1));
    for i in 0..threads {
        let started = started.clone();
        let (pair, held) = (pair.clone(), held.clone());
        let body: Box<dyn FnOnce() + Send> = match i {
            0 | 1 if spin => Box::new(bench_spinner),
            _ => match i % 4 {
                0 => Box::new(bench_sleeper),
                1 => Box::new(move || bench_condvar(pair)),
                2 => Box::new(move || bench_mutex(held)),
                _ => Box::new(move || bench_pipe_reader(fds[0])),
            },
        };
        thread::Builder::new()
            .name(format!("bench-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                started.wait();
                body();
            })
            .expect("spawn");
    }
    started.wait();
    let socket = std::env::temp_dir().join(format!("manhole-bench-{}", std::process::id()));
    let _handle =
        manhole::install(manhole::Options::new().socket_path(&socket).verbose(false)).expect("install");
    // Let every thread reach its waiting point.
    thread::sleep(Duration::from_millis(300));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", socket.display());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "dump" => {}
            "spun" => {
                let _ = writeln!(out, "{}", SPUN.load(Ordering::Relaxed));
                let _ = out.flush();
                continue;
            }
            // The capture alone, without and with the records' "not run for" (A/B).
            "capture-ab" => {
                let plain = manhole::__bench::measure_capture(false);
                let last_ran = manhole::__bench::measure_capture(true);
                let _ = writeln!(out, "capture {} {}", plain.as_micros(), last_ran.as_micros());
                let _ = out.flush();
                continue;
            }
            "rstack" => {
                let _ = writeln!(out, "{}", rstack());
                let _ = out.flush();
                continue;
            }
            _ => continue,
        }
        let t = manhole::__bench::measure_dump();
        let pauses: Vec<String> = t.pauses.iter().map(|p| p.as_nanos().to_string()).collect();
        let _ = writeln!(
            out,
            "dump {} {} {} {} {} {} {}",
            t.threads,
            t.captured,
            t.capture.as_micros(),
            t.symbolize.as_micros(),
            t.render.as_micros(),
            t.waits.as_micros(),
            pauses.join(",")
        );
        let _ = out.flush();
    }
    let _ = std::fs::remove_file(socket);
}

/// Dumps this process with rstack-self (a child that ptraces it): `rstack <µs>` or why not.
#[cfg(feature = "rstack")]
fn rstack() -> String {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("no executable: {e}"),
    };
    let started = std::time::Instant::now();
    match rstack_self::trace(std::process::Command::new(exe).arg("rstack-child")) {
        Ok(trace) if !trace.threads().is_empty() => format!("rstack {}", started.elapsed().as_micros()),
        Ok(_) => "no threads traced".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(not(feature = "rstack"))]
fn rstack() -> String {
    "not built (--features rstack)".to_owned()
}
