//! A thousand threads: every one is captured, and identical stacks read as one group.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

const THREADS: usize = 1000;

#[inline(never)]
fn scale_parked_worker(release: Arc<Barrier>) {
    release.wait();
}

#[test]
fn a_thousand_thread_dump_completes_and_groups() {
    let release = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let release = release.clone();
            thread::Builder::new()
                .name(format!("w{i}"))
                .stack_size(64 * 1024)
                .spawn(move || scale_parked_worker(release))
                .unwrap()
        })
        .collect();
    // Wait until every worker is asleep in the barrier, so their stacks are alike.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let dump = loop {
        let dump = manhole::dump_stacktraces();
        let grouped = dump
            .split("\n\n")
            .find(|b| b.contains("scale_parked_worker"))
            .map(|b| b.matches(" \"w").count());
        if grouped == Some(THREADS) || Instant::now() > deadline {
            break dump;
        }
        thread::sleep(std::time::Duration::from_millis(100));
    };
    let block = dump
        .split("\n\n")
        .find(|b| b.contains("scale_parked_worker"))
        .expect("the workers' group");
    for i in 0..THREADS {
        assert!(
            block.contains(&format!(" \"w{i}\"")),
            "w{i} missing from the group"
        );
    }
    assert!(
        block.contains(&format!("and {} more with this stack:", THREADS - 1)),
        "{}",
        &block[..300.min(block.len())]
    );
    assert!(!dump.contains("from /proc"), "every thread answered in time");
    assert_eq!(
        dump.matches("scale_parked_worker").count(),
        1,
        "one group, printed once"
    );
    let started = Instant::now();
    let _ = manhole::dump_stacktraces();
    eprintln!(
        "warm 1000-thread dump: {:?} (debug build; see BENCHMARKS.md for release numbers)",
        started.elapsed()
    );
    release.wait();
    for worker in workers {
        worker.join().unwrap();
    }
}
