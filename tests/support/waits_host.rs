//! The host of tests/waits.rs: threads put into known waits, with manhole installed.
//!
//! `manhole-waits-host [--socket PATH] SCENARIO…` starts every scenario, waits until each of
//! its threads is where it should be (blocked in the kernel, as `/proc` shows), prints
//! `ready <socket path>`, then obeys `exit` on stdin. Scenarios:
//! - `abba-std`: threads `abba-1` and `abba-2` take std Mutexes `LOCK_A` then `LOCK_B`, and
//!   `LOCK_B` then `LOCK_A`, meeting at a barrier in between: a deadlock;
//! - `abba-sync`: the same with `manhole::sync::Mutex`es `SYNC_A` and `SYNC_B`, threads
//!   `abba-s1` and `abba-s2`, which record who holds them;
//! - `rw-sync`: `rws-reader` holds exposed `SYNC_TABLE: manhole::sync::RwLock` for reading and
//!   sleeps; `rws-writer` waits to write;
//! - `pile N`: `pile-holder` holds the exposed std Mutex `POOL` and sleeps; N threads
//!   `pile-K` wait for it;
//! - `rw`: `rw-reader` holds exposed `TABLE: RwLock` for reading and sleeps; `rw-writer` waits
//!   to write; `rw-reader-2` then waits to read behind the writer;
//! - `join`: `stuck` sleeps for ever; `joiner` joins it;
//! - `spin`: `spinner` burns CPU;
//! - `fifo PATH`: `fifo-reader` opens the named pipe PATH (read-write, so the open does not
//!   wait) and blocks reading it;
//! - `pthread`: `c-holder` holds a glibc `pthread_mutex_t` (exposed `C_MUTEX`) and sleeps;
//!   `c-waiter` waits for it;
//! - `pi`: `pi-holder` holds a priority-inheritance `pthread_mutex_t` (exposed `PI_MUTEX`) and
//!   sleeps; `pi-waiter` waits for it;
//! - `hidden`: `hidden-holder` holds `HIDDEN`, a std Mutex that is not exposed, and sleeps;
//!   `hidden-waiter` waits for it;
//! - `pair`: `PAIR`, one exposed static with two std Mutexes in it; `left-holder` and
//!   `right-holder` hold one each and sleep, `left-waiter` and `right-waiter` wait;
//! - `condvar`, `channel`, `sleep`: one thread each (`cv-waiter`, `rx`, `sleeper`);
//! - `many N`: N threads `idle-K` parked in `thread::park`.

#[path = "host_parts.rs"]
mod host_parts;

use std::io::{BufRead, Write};
use std::sync::{Barrier, Condvar, Mutex, RwLock};
use std::time::Duration;

#[manhole::expose]
static LOCK_A: Mutex<u64> = Mutex::new(0);
#[manhole::expose]
static LOCK_B: Mutex<u64> = Mutex::new(0);
#[manhole::expose]
static SYNC_A: manhole::sync::Mutex<u64> = manhole::sync::Mutex::new(0);
#[manhole::expose]
static SYNC_B: manhole::sync::Mutex<u64> = manhole::sync::Mutex::new(0);
#[manhole::expose]
static SYNC_TABLE: manhole::sync::RwLock<u32> = manhole::sync::RwLock::new(0);
#[manhole::expose]
static POOL: Mutex<Vec<u32>> = Mutex::new(Vec::new());
#[manhole::expose]
static TABLE: RwLock<u32> = RwLock::new(0);
#[manhole::expose]
static READY: Condvar = Condvar::new();
static READY_LOCK: Mutex<bool> = Mutex::new(false);

/// A glibc mutex shared between threads, as C code or Rust through `libc` has one.
struct CMutex(std::cell::UnsafeCell<libc::pthread_mutex_t>);
// SAFETY: pthread mutexes are made to be shared between threads.
unsafe impl Sync for CMutex {}
impl std::fmt::Debug for CMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pthread_mutex_t")
    }
}
#[manhole::expose]
static C_MUTEX: CMutex = CMutex(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

#[manhole::expose]
static PI_MUTEX: CMutex = CMutex(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

/// Not exposed: a dump names it from the symbol table.
#[used]
static HIDDEN: Mutex<u32> = Mutex::new(0);

/// Two locks in one static.
#[derive(Debug)]
struct Pair {
    left: Mutex<u8>,
    right: Mutex<u8>,
}

#[manhole::expose]
static PAIR: Pair = Pair {
    left: Mutex::new(0),
    right: Mutex::new(0),
};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Starts a named thread that reports its tid, then runs `f`.
fn start(name: &str, tids: &std::sync::mpsc::Sender<(String, i32)>, f: impl FnOnce() + Send + 'static) {
    let tids = tids.clone();
    let label = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tids.send((label, gettid()));
            drop(tids);
            f();
        })
        .expect("spawn");
}

/// Whether `tid` is blocked in the kernel (state S or D, in a system call).
fn blocked(tid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    matches!(state, Some('S' | 'D')) && !syscall.starts_with("running") && !syscall.starts_with("-1")
}

#[inline(never)]
fn take_both(first: &'static Mutex<u64>, second: &'static Mutex<u64>, meet: &Barrier) {
    let _one = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    meet.wait();
    let _two = second.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    unreachable!("the other thread holds it for ever");
}

#[inline(never)]
fn take_both_sync(
    first: &'static manhole::sync::Mutex<u64>,
    second: &'static manhole::sync::Mutex<u64>,
    meet: &Barrier,
) {
    let _one = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    meet.wait();
    let _two = second.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    unreachable!("the other thread holds it for ever");
}

#[inline(never)]
fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = manhole::Options::new();
    let mut rest = args.iter().peekable();
    let mut scenarios: Vec<String> = Vec::new();
    while let Some(arg) = rest.next() {
        if arg == "--socket" {
            options = options.socket_path(rest.next().expect("--socket PATH"));
        } else {
            scenarios.push(arg.clone());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<(String, i32)>();
    // Which threads must be blocked before `ready`.
    let mut expect_blocked: Vec<String> = Vec::new();
    let mut words = scenarios.iter();
    while let Some(scenario) = words.next() {
        match scenario.as_str() {
            "abba-std" => {
                let meet: &'static Barrier = Box::leak(Box::new(Barrier::new(2)));
                start("abba-1", &tx, move || take_both(&LOCK_A, &LOCK_B, meet));
                start("abba-2", &tx, move || take_both(&LOCK_B, &LOCK_A, meet));
                expect_blocked.extend(["abba-1".into(), "abba-2".into()]);
            }
            "abba-sync" => {
                let meet: &'static Barrier = Box::leak(Box::new(Barrier::new(2)));
                start("abba-s1", &tx, move || take_both_sync(&SYNC_A, &SYNC_B, meet));
                start("abba-s2", &tx, move || take_both_sync(&SYNC_B, &SYNC_A, meet));
                expect_blocked.extend(["abba-s1".into(), "abba-s2".into()]);
            }
            "rw-sync" => {
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("rws-reader", &tx, move || {
                    let _guard = SYNC_TABLE.read();
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                start("rws-writer", &tx, || {
                    let _guard = SYNC_TABLE.write();
                });
                expect_blocked.push("rws-writer".into());
            }
            "pile" => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).expect("pile N");
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("pile-holder", &tx, move || {
                    let _guard = POOL.lock();
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                for k in 0..n {
                    start(&format!("pile-{k}"), &tx, || {
                        let _guard = POOL.lock();
                    });
                    expect_blocked.push(format!("pile-{k}"));
                }
            }
            "rw" => {
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("rw-reader", &tx, move || {
                    let _guard = TABLE.read();
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                let (wtx, wrx) = std::sync::mpsc::channel::<(String, i32)>();
                start("rw-writer", &wtx, || {
                    let _guard = TABLE.write();
                });
                let writer = wrx.recv().expect("writer tid");
                let _ = tx.send(writer.clone());
                while !blocked(writer.1) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                start("rw-reader-2", &tx, || {
                    let _guard = TABLE.read();
                });
                expect_blocked.extend(["rw-writer".into(), "rw-reader-2".into()]);
            }
            "join" => {
                let (stuck_tx, stuck_rx) = std::sync::mpsc::channel();
                start("joiner", &tx, move || {
                    let stuck = std::thread::Builder::new()
                        .name("stuck".into())
                        .spawn(|| forever())
                        .expect("spawn stuck");
                    let _ = stuck_tx.send(());
                    let _ = stuck.join();
                });
                let _ = stuck_rx.recv();
                expect_blocked.push("joiner".into());
            }
            "spin" => start("spinner", &tx, || spin()),
            "fifo" => {
                let path = words.next().expect("fifo PATH").clone();
                start("fifo-reader", &tx, move || {
                    use std::io::Read;
                    let mut fifo = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .expect("open the fifo");
                    let mut buf = [0u8; 64];
                    let _ = fifo.read(&mut buf);
                    forever();
                });
                expect_blocked.push("fifo-reader".into());
            }
            "pthread" => {
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("c-holder", &tx, move || {
                    // SAFETY: a statically initialised mutex, locked and never unlocked here.
                    unsafe { libc::pthread_mutex_lock(C_MUTEX.0.get()) };
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                start("c-waiter", &tx, || {
                    // SAFETY: as above; this blocks for ever.
                    unsafe { libc::pthread_mutex_lock(C_MUTEX.0.get()) };
                });
                expect_blocked.push("c-waiter".into());
            }
            "pi" => {
                // SAFETY: the attribute and the mutex are initialised here, before any thread
                // uses the mutex, and never destroyed.
                unsafe {
                    let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
                    libc::pthread_mutexattr_init(&mut attr);
                    libc::pthread_mutexattr_setprotocol(&mut attr, libc::PTHREAD_PRIO_INHERIT);
                    libc::pthread_mutex_init(PI_MUTEX.0.get(), &attr);
                }
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("pi-holder", &tx, move || {
                    // SAFETY: an initialised mutex, locked and never unlocked here.
                    unsafe { libc::pthread_mutex_lock(PI_MUTEX.0.get()) };
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                start("pi-waiter", &tx, || {
                    // SAFETY: as above; this blocks for ever.
                    unsafe { libc::pthread_mutex_lock(PI_MUTEX.0.get()) };
                });
                expect_blocked.push("pi-waiter".into());
            }
            "hidden" => {
                let (held_tx, held_rx) = std::sync::mpsc::channel();
                start("hidden-holder", &tx, move || {
                    let _guard = HIDDEN.lock();
                    let _ = held_tx.send(());
                    forever();
                });
                let _ = held_rx.recv();
                start("hidden-waiter", &tx, || {
                    let _guard = HIDDEN.lock();
                });
                expect_blocked.push("hidden-waiter".into());
            }
            "pair" => {
                for (side, lock) in [("left", &PAIR.left), ("right", &PAIR.right)] {
                    let (held_tx, held_rx) = std::sync::mpsc::channel();
                    start(&format!("{side}-holder"), &tx, move || {
                        let _guard = lock.lock();
                        let _ = held_tx.send(());
                        forever();
                    });
                    let _ = held_rx.recv();
                    start(&format!("{side}-waiter"), &tx, move || {
                        let _guard = lock.lock();
                    });
                    expect_blocked.push(format!("{side}-waiter"));
                }
            }
            "condvar" => {
                start("cv-waiter", &tx, || {
                    let mut ready = READY_LOCK
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    while !*ready {
                        ready = READY
                            .wait(ready)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                });
                expect_blocked.push("cv-waiter".into());
            }
            "channel" => {
                let (keep, never) = std::sync::mpsc::channel::<u8>();
                std::mem::forget(keep);
                start("rx", &tx, move || {
                    let _ = never.recv();
                });
                expect_blocked.push("rx".into());
            }
            "sleep" => {
                start("sleeper", &tx, || forever());
                expect_blocked.push("sleeper".into());
            }
            "many" => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).expect("many N");
                for k in 0..n {
                    start(&format!("idle-{k}"), &tx, || {
                        loop {
                            std::thread::park();
                        }
                    });
                }
            }
            other => panic!("unknown scenario {other}"),
        }
    }
    drop(tx);
    let tids: Vec<(String, i32)> = rx.iter().collect();
    for name in &expect_blocked {
        let tid = tids
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .expect("started");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !blocked(tid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let Some(_handle) = host_parts::install_and_say_ready(options) else {
        return;
    };
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("exit") => {
                say("exiting");
                break;
            }
            Err(_) => break,
            Ok(other) => say(&format!("unknown command {other}")),
        }
    }
    std::process::exit(0);
}
