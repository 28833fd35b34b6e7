//! Threads that block the stack signal are reported from /proc without waiting, and captured
//! once they unblock it; signals from anyone but the dumper are ignored.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The stack signal this test chooses for itself, so it can forge requests on it.
fn stack_signal() -> i32 {
    libc::SIGRTMIN() + 5
}

fn set_mask(how: libc::c_int, signal: i32) {
    // SAFETY: sigset_t is plain data initialised by sigemptyset/sigaddset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

#[inline(never)]
fn blocker_waits(orders: mpsc::Receiver<&'static str>, done: mpsc::Sender<i32>) {
    // SAFETY: gettid has no preconditions.
    done.send(unsafe { libc::gettid() }).unwrap();
    for order in orders {
        match order {
            "unblock" => set_mask(libc::SIG_UNBLOCK, stack_signal()),
            "quit" => return,
            _ => {}
        }
        done.send(0).unwrap();
    }
}

fn block_of<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.split("\n\n")
        .find(|b| b.contains(&format!(" \"{name}\"")))
        .unwrap_or_else(|| panic!("no {name}:\n{dump}"))
}

/// Sends the stack signal to `tid` the way the dumper does, with any value.
fn forge(tid: i32, value: u64, code: i32) {
    #[repr(C)]
    struct Info {
        signo: i32,
        errno: i32,
        code: i32,
        pad: i32,
        pid: i32,
        uid: u32,
        value: u64,
        rest: [u64; 12],
    }
    // SAFETY: getpid/getuid have no preconditions.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let info = Info {
        signo: stack_signal(),
        errno: 0,
        code,
        pad: 0,
        pid,
        uid,
        value,
        rest: [0; 12],
    };
    // SAFETY: `info` has the size and SI_QUEUE layout of siginfo_t on 64-bit Linux.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            stack_signal(),
            &info as *const Info,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn blocked_threads_are_reported_then_captured_and_foreign_signals_are_ignored() {
    let socket = std::env::temp_dir().join(format!("mh-blocked-{}", std::process::id()));
    let handle = manhole::install(
        manhole::Options::new()
            .socket_path(&socket)
            .verbose(false)
            .stack_signal(stack_signal()),
    )
    .unwrap();

    let (order_tx, order_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let blocker = thread::Builder::new()
        .name("blocker".into())
        .spawn(move || {
            set_mask(libc::SIG_BLOCK, stack_signal());
            blocker_waits(order_rx, done_tx);
        })
        .unwrap();
    let tid = done_rx.recv().unwrap();

    let started = Instant::now();
    let dump = manhole::dump_stacktraces();
    let waited = started.elapsed();
    let block = block_of(&dump, "blocker");
    assert!(
        block.contains("from /proc: not captured: it blocks the stack signal"),
        "{block}"
    );
    assert!(
        block.contains("futex") || block.contains("recv"),
        "where it waits, from /proc:\n{block}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "reported without waiting for a deadline: {waited:?}"
    );

    // Signals that are not the dumper's requests do nothing, wherever they come from.
    // SAFETY: tgkill/kill to our own process with a signal whose handler ignores them.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), stack_signal());
        libc::kill(libc::getpid(), stack_signal());
    }
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    forge(me, u64::MAX, libc::SI_QUEUE); // slot index out of range
    forge(me, 1 << 32, libc::SI_QUEUE); // generation 1, long past: a late request
    forge(me, 0, libc::SI_QUEUE); // generation 0 is never used

    // Unblocked, the same thread is captured in-process by the next dump.
    order_tx.send("unblock").unwrap();
    done_rx.recv().unwrap();
    let dump = manhole::dump_stacktraces();
    let block = block_of(&dump, "blocker");
    assert!(block.contains("blocker_waits"), "{block}");
    assert!(!block.contains("from /proc"), "{block}");
    assert!(
        dump.contains(&format!("Thread {tid} \"blocker\"")) || dump.contains(&format!(" {tid} \"blocker\""))
    );

    order_tx.send("quit").unwrap();
    blocker.join().unwrap();
    handle.uninstall();
}
