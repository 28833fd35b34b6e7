//! Dumps run concurrently with everything that could deadlock or crash an in-handler unwinder:
//! panics being unwound, std backtraces being captured and printed, libraries being loaded and
//! unloaded, and heavy allocation. A watchdog turns a hang into a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_secs(3);
/// At least this many dumps, however long the first one (which loads debug info) takes.
const MIN_DUMPS: usize = 20;
/// No dump may take longer than this; a deadlock aborts the test process with a message.
const HANG: Duration = Duration::from_secs(30);

#[inline(never)]
fn stress_panicker(stop: &AtomicBool, count: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        let _ = std::panic::catch_unwind(|| panic!("stress"));
        count.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(never)]
fn stress_backtracer(stop: &AtomicBool, count: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        let text = std::backtrace::Backtrace::force_capture().to_string();
        assert!(!text.is_empty());
        count.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(never)]
fn stress_dlopener(stop: &AtomicBool, count: &AtomicU64) {
    let names = [c"libz.so.1", c"libbz2.so.1.0", c"liblzma.so.5", c"libm.so.6"];
    while !stop.load(Ordering::Relaxed) {
        for name in names {
            // SAFETY: dlopen/dlclose of system libraries without constructors that matter here;
            // the handle is closed exactly once.
            unsafe {
                let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                if !handle.is_null() {
                    libc::dlclose(handle);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[inline(never)]
fn stress_allocator(stop: &AtomicBool, count: &AtomicU64) {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        keep.push(vec![7u8; 1 + (count.load(Ordering::Relaxed) % 4096) as usize]);
        if keep.len() > 256 {
            keep.clear();
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn dumps_survive_panics_backtraces_dlopen_and_allocation_churn() {
    // A panic hook that prints would flood the output; these panics are expected.
    std::panic::set_hook(Box::new(|_| {}));
    let stop = Arc::new(AtomicBool::new(false));
    let last_dump = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let watchdog = {
        let stop = stop.clone();
        let last_dump = last_dump.clone();
        thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(100));
                    let since = epoch.elapsed().as_millis() as u64 - last_dump.load(Ordering::Relaxed);
                    if since > HANG.as_millis() as u64 {
                        eprintln!("a dump has not finished in {since} ms: deadlock; aborting");
                        std::process::abort();
                    }
                }
            })
            .unwrap()
    };
    type Work = fn(&AtomicBool, &AtomicU64);
    let kinds: [(&str, Work); 8] = [
        ("panicker-0", stress_panicker),
        ("panicker-1", stress_panicker),
        ("panicker-2", stress_panicker),
        ("backtracer-0", stress_backtracer),
        ("backtracer-1", stress_backtracer),
        ("dlopener", stress_dlopener),
        ("allocator-0", stress_allocator),
        ("allocator-1", stress_allocator),
    ];
    let counters: Vec<Arc<AtomicU64>> = kinds.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let workers: Vec<_> = kinds
        .iter()
        .zip(&counters)
        .map(|((name, work), count)| {
            let (stop, count, work) = (stop.clone(), count.clone(), *work);
            thread::Builder::new()
                .name((*name).into())
                .spawn(move || work(&stop, &count))
                .unwrap()
        })
        .collect();

    let mut dumps = 0;
    let mut captured = 0;
    let start = Instant::now();
    while start.elapsed() < RUN_FOR || dumps < MIN_DUMPS {
        let dump = manhole::dump_stacktraces();
        last_dump.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        assert!(dump.ends_with(&format!("{}\n", "#".repeat(45))));
        captured += dump.matches("stress_").count();
        dumps += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    watchdog.join().unwrap();
    let _ = std::panic::take_hook();
    let done: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    eprintln!("{dumps} dumps; work done alongside: {done:?}");
    assert!(dumps >= MIN_DUMPS, "{dumps} dumps");
    assert!(captured > 0, "the stress threads were captured in-process");
    assert!(done.iter().all(|n| *n > 0), "every kind of stress ran: {done:?}");
}
