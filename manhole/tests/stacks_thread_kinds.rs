//! Every kind of thread shows up under its own name with its own function: sleeping, waiting
//! on a condition variable or a mutex, blocked in read(2), spinning, spawned before install,
//! and a thread of foreign C code that Rust never saw created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

#[inline(never)]
fn kind_sleeper() {
    while !STOP.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
    }
}

#[inline(never)]
fn kind_condvar_waiter(pair: Arc<(Mutex<bool>, Condvar)>) {
    let (lock, cvar) = &*pair;
    let mut done = lock.lock().unwrap();
    while !*done {
        done = cvar.wait(done).unwrap();
    }
}

#[inline(never)]
fn kind_mutex_waiter(lock: Arc<Mutex<()>>) {
    drop(lock.lock().unwrap());
}

#[inline(never)]
fn kind_pipe_reader(fd: i32) {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open pipe read end owned by this test; the buffer is one valid byte.
    unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
}

#[inline(never)]
fn kind_busy_spinner() {
    let mut x: u64 = 0;
    while !STOP.load(Ordering::Relaxed) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[inline(never)]
fn kind_spawned_before_install() {
    kind_sleeper();
}

#[inline(never)]
extern "C" fn kind_foreign_c_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: names this very thread; the name is a NUL-terminated literal under 16 bytes.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"foreign-c".as_ptr()) };
    let fd = arg as usize as i32;
    let mut byte = 0u8;
    // SAFETY: as in kind_pipe_reader.
    unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
    std::ptr::null_mut()
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::Builder::new().name(name.into()).spawn(body).unwrap()
}

/// The block of the dump for the thread called `name` (grouped threads share one block).
fn block_of<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.split("\n\n")
        .find(|b| b.contains(&format!(" \"{name}\"")))
        .unwrap_or_else(|| panic!("no thread {name:?} in:\n{dump}"))
}

#[test]
fn each_kind_of_thread_appears_with_its_own_function() {
    let early = spawn("early-bird", kind_spawned_before_install);
    let socket = std::env::temp_dir().join(format!("mh-kinds-{}", std::process::id()));
    let handle = manhole::install(manhole::Options::new().socket_path(&socket).verbose(false)).unwrap();

    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let held = Arc::new(Mutex::new(()));
    let guard = held.lock().unwrap();
    let (read_fd, write_fd) = pipe();
    let (c_read_fd, c_write_fd) = pipe();
    let started = Arc::new(Barrier::new(2));
    let mut threads = vec![
        spawn("sleeper", kind_sleeper),
        spawn("condvar-waiter", {
            let pair = pair.clone();
            move || kind_condvar_waiter(pair)
        }),
        spawn("mutex-waiter", {
            let held = held.clone();
            move || kind_mutex_waiter(held)
        }),
        spawn("pipe-reader", move || kind_pipe_reader(read_fd)),
        spawn("spinner", {
            let started = started.clone();
            move || {
                started.wait();
                kind_busy_spinner();
            }
        }),
    ];
    started.wait();
    let mut c_thread: libc::pthread_t = 0;
    // SAFETY: a plain pthread with default attributes running an extern "C" function; its
    // argument is the pipe fd passed by value.
    let rc = unsafe {
        libc::pthread_create(
            &mut c_thread,
            std::ptr::null(),
            kind_foreign_c_thread,
            c_read_fd as usize as *mut _,
        )
    };
    assert_eq!(rc, 0);

    // Give every thread time to reach its waiting point: each one must show its function.
    let expectations = [
        ("sleeper", "kind_sleeper"),
        ("condvar-waiter", "kind_condvar_waiter"),
        ("mutex-waiter", "kind_mutex_waiter"),
        ("pipe-reader", "kind_pipe_reader"),
        ("spinner", "kind_busy_spinner"),
        ("early-bird", "kind_spawned_before_install"),
        ("foreign-c", "kind_foreign_c_thread"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dump = loop {
        let dump = manhole::dump_stacktraces();
        let missing: Vec<_> = expectations
            .iter()
            .filter(|(name, function)| {
                !dump.contains(&format!(" \"{name}\"")) || !block_of(&dump, name).contains(function)
            })
            .collect();
        if missing.is_empty() {
            break dump;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {missing:?} in:\n{dump}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    for (name, function) in expectations {
        let block = block_of(&dump, name);
        assert!(
            block.contains(function),
            "{name} should be in {function}:\n{block}"
        );
        assert!(
            !block.contains("from /proc"),
            "{name} was captured in-process:\n{block}"
        );
        assert!(
            !block.contains("manhole::stacks::sampler"),
            "handler frames are trimmed:\n{block}"
        );
    }
    // Blocked threads show where they block.
    assert!(
        block_of(&dump, "pipe-reader")
            .lines()
            .nth(1)
            .unwrap()
            .contains("read"),
        "{dump}"
    );
    assert!(block_of(&dump, "sleeper").contains("std::thread"), "{dump}");
    assert!(block_of(&dump, "mutex-waiter").contains("lock"), "{dump}");
    // The test harness's main thread (tid == pid) is shown as "main", whatever its comm says.
    assert!(
        dump.contains(&format!("Thread {} \"main\" (", std::process::id())),
        "{dump}"
    );

    // Release everything.
    STOP.store(true, Ordering::Relaxed);
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
    drop(guard);
    // SAFETY: writing one byte from a valid buffer to the pipes' write ends.
    unsafe {
        libc::write(write_fd, b"x".as_ptr().cast(), 1);
        libc::write(c_write_fd, b"x".as_ptr().cast(), 1);
    }
    threads.push(early);
    for t in threads {
        t.join().unwrap();
    }
    // SAFETY: joins the thread created above exactly once.
    assert_eq!(unsafe { libc::pthread_join(c_thread, std::ptr::null_mut()) }, 0);
    handle.uninstall();
}

#[test]
fn registered_threads_show_their_full_name_until_they_exit() {
    let long = "a-very-long-rust-thread-name-0";
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let worker = thread::Builder::new()
        .name(long.into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            let before = manhole::dump_stacktraces();
            manhole::register_current_thread();
            let after = manhole::dump_stacktraces();
            go_rx.recv().unwrap();
            (before, after)
        })
        .unwrap();
    let tid = rx.recv().unwrap();
    go_tx.send(()).unwrap();
    let (before, after) = worker.join().unwrap();
    assert!(
        before.contains(&format!("Thread {tid} \"a-very-long-rus\" (")),
        "the kernel's 15 bytes:\n{before}"
    );
    assert!(
        after.contains(&format!("Thread {tid} \"{long}\" (")),
        "the full name:\n{after}"
    );
    let later = manhole::dump_stacktraces();
    assert!(!later.contains(long), "gone with its thread:\n{later}");
}
