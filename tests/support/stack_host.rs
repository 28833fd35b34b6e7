//! A host whose threads are hard to take stacks of, for tests/stack_safety.rs: each scenario
//! (the first argument) sets up one way a stack capture used to crash, hang or fool the
//! program, installs manhole, prints `ready <socket>` and then serves until stdin closes.
//!
//! - `short-stack`: a thread made by `pthread_create` (no alternate signal stack) parked with
//!   about 4 KiB of its stack left (`STACK_HOST_LEFT_KIB`).
//! - `switched-stack`: a thread running on a stack it switched to by hand (no CFI for the
//!   switch), whose top is followed by an inaccessible page.
//! - `jit-frames`: unwind tables registered with libgcc (as JITs do), and two threads taking
//!   backtraces without pause, so libgcc's object mutex is held most of the time.
//! - `sigwait`: every thread blocks every signal and one collects them with `sigwait` on a full
//!   set, stopping the program (exit 3) on any signal it does not expect.
//! - `takeover-default` / `takeover-handler`: after install, the program resets manhole's stack
//!   signal to its default action, or installs a handler of its own that counts calls.
//! - `rlimit`: an address-space limit leaving little room above what the program uses.
//! - `plain`: nothing special (for memory measurements).
//! - `seccomp-strict` / `seccomp-filter`: a thread in strict seccomp mode, or under a filter of
//!   its own that kills the process on `process_vm_readv` and `getpid`, blocked in `read`.
//! - `fork-dump`: a thread forks children without pause; each child calls
//!   `manhole::dump_stacktraces()` under an alarm and reports how it went on stdout
//!   (`child ok` / the parent counts children killed by the alarm as `child hung`).
//! - `waits`: threads in known situations for the per-thread records: `pipe-reader` blocked
//!   in `read` on a pipe nobody writes, `futex-waiter` in a futex wait without timeout on a
//!   static word, `sleeper` in `thread::sleep`, `spinner` spinning, and `masked-reader`, which
//!   blocks every signal, in `read` on another pipe. `facts` answers the descriptors, the
//!   word's address and each thread's tid and stack; `records` the capture's records.
#![allow(missing_docs)]

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

static HEARTBEAT: AtomicU64 = AtomicU64::new(0);
static PROGRAM_HANDLER_CALLS: AtomicU64 = AtomicU64::new(0);
static BACKTRACES: AtomicU64 = AtomicU64::new(0);
/// What the `waits` scenario set up: `facts` prints it.
static FACTS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The word `futex-waiter` waits on (never woken).
static WORD: AtomicU32 = AtomicU32::new(0);

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if scenario == "sigwait" {
        block_everything();
    }
    let handle = match manhole::install(manhole::Options::new()) {
        Ok(handle) => handle,
        Err(e) => {
            println!("install failed: {e}");
            std::process::exit(2);
        }
    };
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(|| {
            loop {
                HEARTBEAT.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .expect("heartbeat thread");
    match scenario.as_str() {
        "short-stack" => short_stack(),
        "switched-stack" => switched_stack(),
        "jit-frames" => jit_frames(),
        "sigwait" => sigwait(),
        "takeover-default" => take_over(false),
        "takeover-handler" => take_over(true),
        "rlimit" | "plain" => {}
        "fork-dump" => fork_dump(),
        "seccomp-strict" => seccomp_thread(false),
        "seccomp-filter" => seccomp_thread(true),
        "waits" => waits(),
        other => {
            println!("unknown scenario {other:?}");
            std::process::exit(2);
        }
    }
    let socket = handle.socket_path().expect("always-on manhole listens");
    if scenario == "rlimit" {
        // The heartbeat thread first finishes starting (std maps its signal stack as it
        // starts): a thread of the program's own starting under the limit is not the test.
        while HEARTBEAT.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        limit_address_space();
    }
    println!("ready {}", socket.display());
    let _ = std::io::stdout().flush();
    // Commands on stdin: `heartbeat`, `handler-calls`, `backtraces`, `dump` (the program's own
    // dump_stacktraces, answering its length), `facts` and `records` (the `waits` scenario);
    // EOF ends the program.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "heartbeat" => HEARTBEAT.load(Ordering::Relaxed).to_string(),
            "handler-calls" => PROGRAM_HANDLER_CALLS.load(Ordering::Relaxed).to_string(),
            "backtraces" => BACKTRACES.load(Ordering::Relaxed).to_string(),
            "dump" => manhole::dump_stacktraces().len().to_string(),
            "facts" => FACTS.lock().expect("facts").join(" "),
            "records" => records(),
            _ => u64::MAX.to_string(),
        };
        println!("{answer}");
        let _ = std::io::stdout().flush();
    }
}

fn block_everything() {
    // SAFETY: sigset_t is plain data, filled before use; pthread_sigmask on the calling thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// A C thread, no alternate signal stack, parked with about 4 KiB of stack left.
fn short_stack() {
    extern "C" fn thread(_: *mut libc::c_void) -> *mut libc::c_void {
        let (low, _) = own_stack();
        let left_kib: usize = std::env::var("STACK_HOST_LEFT_KIB")
            .ok()
            .and_then(|k| k.parse().ok())
            .unwrap_or(4);
        descend(low + left_kib * 1024);
        std::ptr::null_mut()
    }
    #[inline(never)]
    fn descend(until: usize) {
        let marker = [0u8; 256];
        let here = std::hint::black_box(&marker) as *const _ as usize;
        if here > until + 512 {
            descend(until);
        } else {
            loop {
                // SAFETY: pause has no preconditions; it returns after each signal.
                unsafe { libc::pause() };
            }
        }
        std::hint::black_box(&marker);
    }
    // SAFETY: a detached thread with a 64 KiB stack running `thread`, which never returns.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        let mut id: libc::pthread_t = 0;
        assert_eq!(
            libc::pthread_create(&mut id, &attr, thread, std::ptr::null_mut()),
            0
        );
        libc::pthread_setname_np(id, c"short-stack".as_ptr());
        libc::pthread_attr_destroy(&mut attr);
    }
}

/// A thread running on a stack it switched to by hand, its top against an inaccessible page.
fn switched_stack() {
    #[cfg(target_arch = "x86_64")]
    {
        extern "C" fn on_new_stack() -> ! {
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        std::thread::Builder::new()
            .name("switched-stack".into())
            .spawn(|| {
                const SIZE: usize = 64 * 1024;
                // SAFETY: a fresh anonymous mapping: SIZE bytes of stack, then one page made
                // inaccessible, so anything reading past the stack's top faults.
                let top = unsafe {
                    let base = libc::mmap(
                        std::ptr::null_mut(),
                        SIZE + 4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    assert_ne!(base, libc::MAP_FAILED);
                    let guard = base.cast::<u8>().add(SIZE);
                    libc::mprotect(guard.cast(), 4096, libc::PROT_NONE);
                    guard as usize
                };
                // SAFETY: switches to the new stack (16-byte aligned) and calls a function
                // that never returns; nothing of the old stack is used again.
                unsafe {
                    std::arch::asm!(
                        "mov rsp, {top}",
                        "call {f}",
                        top = in(reg) top,
                        f = sym on_new_stack,
                        options(noreturn)
                    );
                }
            })
            .expect("switched-stack thread");
    }
}

unsafe extern "C" {
    fn __register_frame(begin: *const u8);
}

/// Registers a small unwind table with libgcc, as a JIT does, then takes backtraces without
/// pause on two threads.
fn jit_frames() {
    static CODE: [u8; 64] = [0xc3; 64];
    let code = CODE.as_ptr() as u64;
    // One CIE (zR, pcrel|sdata... here absptr), one FDE for CODE, and the terminator.
    let mut table: Vec<u8> = Vec::new();
    let cie: Vec<u8> = vec![
        0, 0, 0, 0, // CIE id
        1, // version
        b'z', b'R', 0,    // augmentation
        1,    // code alignment
        0x78, // data alignment -8
        16,   // return address register
        1,    // augmentation data length
        0x00, // FDE pointer encoding: absptr
        0x0c, 7, 8, // DW_CFA_def_cfa rsp+8
        0x90, 1, // DW_CFA_offset r16 at cfa-8
        0, 0, // padding
    ];
    table.extend_from_slice(&(cie.len() as u32).to_ne_bytes());
    table.extend_from_slice(&cie);
    let fde_start = table.len();
    let mut fde: Vec<u8> = Vec::new();
    fde.extend_from_slice(&((fde_start + 4) as u32).to_ne_bytes()); // CIE pointer
    fde.extend_from_slice(&code.to_ne_bytes());
    fde.extend_from_slice(&64u64.to_ne_bytes());
    fde.push(0); // augmentation data length
    while !(fde.len() + 4).is_multiple_of(8) {
        fde.push(0);
    }
    table.extend_from_slice(&(fde.len() as u32).to_ne_bytes());
    table.extend_from_slice(&fde);
    table.extend_from_slice(&[0, 0, 0, 0]);
    let table: &'static [u8] = Box::leak(table.into_boxed_slice());
    // SAFETY: a well-formed .eh_frame (CIE, FDE, terminator) that lives for ever.
    unsafe { __register_frame(table.as_ptr()) };
    for n in 0..2 {
        std::thread::Builder::new()
            .name(format!("backtracer-{n}"))
            .spawn(|| {
                loop {
                    let _ = std::hint::black_box(std::backtrace::Backtrace::force_capture());
                    BACKTRACES.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("backtracer thread");
    }
}

/// One thread collects every signal with sigwait; an unexpected one stops the program.
fn sigwait() {
    std::thread::Builder::new()
        .name("sigwaiter".into())
        .spawn(|| {
            loop {
                let mut signal = 0;
                // SAFETY: sigset_t is plain data filled before use; sigwait writes `signal`.
                let rc = unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::sigwait(&all, &mut signal)
                };
                if rc == 0 && signal != libc::SIGCHLD && signal != libc::SIGWINCH {
                    eprintln!("sigwaiter: unexpected signal {signal}: shutting down");
                    std::process::exit(3);
                }
            }
        })
        .expect("sigwaiter thread");
}

extern "C" fn count_calls(_: libc::c_int) {
    PROGRAM_HANDLER_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// The program takes manhole's stack signal: the highest real-time signal with a handler.
fn take_over(with_handler: bool) {
    // Make sure capture is set up (it is at the first dump otherwise).
    let _ = manhole::dump_stacktraces();
    for signal in (libc::SIGRTMIN()..=libc::SIGRTMAX()).rev() {
        // SAFETY: reading and replacing a disposition; `count_calls` only bumps an atomic.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_DFL {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = if with_handler {
                count_calls as *const () as usize
            } else {
                libc::SIG_DFL
            };
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        eprintln!("took over signal {signal}");
        return;
    }
    panic!("no signal with a handler to take over");
}

/// Leaves room for the executable's size and one MiB above what the process maps now: enough
/// to map its debug info, not enough to parse it.
fn limit_address_space() {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("size");
    let exe = std::fs::metadata(std::env::current_exe().expect("exe")).map_or(0, |m| m.len());
    let room: u64 = std::env::var("STACK_HOST_ROOM")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(exe + (1 << 20));
    let limit = pages * 4096 + room;
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid rlimit lowers this process's soft limit.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) };
}

/// Forks children without pause; each dumps its own stacks under an alarm.
fn fork_dump() {
    std::thread::Builder::new()
        .name("forker".into())
        .spawn(|| {
            loop {
                // SAFETY: the child only calls dump_stacktraces (which a forked child must
                // handle), writes its verdict and _exits; alarm bounds a hang.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: alarm and _exit have no preconditions.
                    unsafe { libc::alarm(5) };
                    let dump = manhole::dump_stacktraces();
                    let ok = dump.contains("ProcessID=");
                    // SAFETY: as above.
                    unsafe { libc::_exit(if ok { 0 } else { 4 }) };
                }
                if pid > 0 {
                    let mut status = 0;
                    // SAFETY: waits for the child just made.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    let verdict = if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
                        "child hung"
                    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                        "child ok"
                    } else {
                        "child failed"
                    };
                    eprintln!("{verdict}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .expect("forker thread");
}

/// A thread under seccomp (strict, or a filter of its own that kills the process on the system
/// calls a careless stack handler would make), blocked reading a pipe nobody writes.
fn seccomp_thread(filter: bool) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors; both stay open for ever.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let name = if filter {
        "seccomp-filter"
    } else {
        "seccomp-strict"
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if filter {
                const RET_ALLOW: u32 = 0x7fff_0000;
                const RET_KILL_PROCESS: u32 = 0x8000_0000;
                let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
                    code: 0x15,
                    jt,
                    jf,
                    k,
                };
                let program = [
                    // A = seccomp_data.nr
                    libc::sock_filter {
                        code: 0x20,
                        jt: 0,
                        jf: 0,
                        k: 0,
                    },
                    jump(libc::SYS_process_vm_readv as u32, 2, 0),
                    jump(libc::SYS_getpid as u32, 1, 0),
                    libc::sock_filter {
                        code: 0x06,
                        jt: 0,
                        jf: 0,
                        k: RET_ALLOW,
                    },
                    libc::sock_filter {
                        code: 0x06,
                        jt: 0,
                        jf: 0,
                        k: RET_KILL_PROCESS,
                    },
                ];
                let fprog = libc::sock_fprog {
                    len: program.len() as u16,
                    filter: program.as_ptr() as *mut libc::sock_filter,
                };
                // SAFETY: a valid BPF program for this thread only (no TSYNC), after
                // no_new_privs as the kernel requires.
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    assert_eq!(
                        libc::prctl(
                            libc::PR_SET_SECCOMP,
                            libc::SECCOMP_MODE_FILTER,
                            &fprog as *const _
                        ),
                        0
                    );
                }
                let _ = ready_tx.send(());
            } else {
                let _ = ready_tx.send(());
                // SAFETY: from here on only read, write, exit and sigreturn are allowed: the
                // thread only reads.
                unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) };
            }
            let mut byte = 0u8;
            loop {
                // SAFETY: reads one byte into `byte` from the pipe this thread owns.
                unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) };
            }
        })
        .expect("seccomp thread");
    let _ = ready_rx.recv();
    std::thread::sleep(Duration::from_millis(50));
}

/// This thread's id and stack (`lo-hi`, from pthread_getattr_np), as `name:tid:lo:hi`.
/// The calling thread's stack: its lowest address and its size.
fn own_stack() -> (usize, usize) {
    // SAFETY: pthread_getattr_np on the calling thread fills `attr`, destroyed after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_getattr_np(libc::pthread_self(), &mut attr);
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (addr as usize, size)
    }
}

fn describe_self(name: &str) -> String {
    let (low, size) = own_stack();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    format!("{name}:{tid}:{low:#x}:{:#x}", low + size)
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors; both stay open for ever.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// Threads in known situations (see the module docs); returns once all of them are there.
fn waits() {
    let (read_fd, _) = pipe();
    let (masked_fd, _) = pipe();
    FACTS.lock().expect("facts").extend([
        format!("pipe_fd={read_fd}"),
        format!("masked_fd={masked_fd}"),
        format!("word={:#x}", WORD.as_ptr() as usize),
    ]);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawn = |name: &'static str, body: fn(i32), fd: i32| {
        let ready = ready_tx.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if name == "masked-reader" {
                    block_everything();
                }
                let me = describe_self(name);
                FACTS.lock().expect("facts").push(format!("thread={me}"));
                let _ = ready.send(());
                body(fd);
            })
            .expect("waits thread");
    };
    fn read_forever(fd: i32) {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads one byte into `byte` from a pipe nobody writes.
            unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        }
    }
    spawn("pipe-reader", read_forever, read_fd);
    spawn("masked-reader", read_forever, masked_fd);
    spawn(
        "futex-waiter",
        |_| loop {
            // SAFETY: a futex wait without timeout on a static word nobody changes or wakes.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    WORD.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    0u32,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        },
        0,
    );
    spawn(
        "sleeper",
        |_| loop {
            std::thread::sleep(Duration::from_secs(3600))
        },
        0,
    );
    spawn(
        "spinner",
        |_| {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        },
        0,
    );
    drop(ready_tx);
    // The test waits for each thread to be inside its call (from /proc) before it looks.
    for _ in 0..5 {
        let _ = ready_rx.recv();
    }
}

/// The capture's record of every thread, `|`-separated, each as `key=value` words.
fn records() -> String {
    let hex = |v: Option<usize>| v.map_or("-".to_owned(), |v| format!("{v:#x}"));
    manhole::__bench::thread_facts()
        .iter()
        .map(|f| {
            format!(
                "tid={} from={} pc={} sp={} fp={} nr={} args={} phase={} sfrom={} cpu={} idle={} mask={}",
                f.tid,
                f.regs_from.unwrap_or("-"),
                hex(f.pc),
                hex(f.sp),
                hex(f.fp),
                f.syscall.map_or("-".to_owned(), |n| n.to_string()),
                f.args.iter().map(|a| hex(*a)).collect::<Vec<_>>().join(","),
                f.phase.as_deref().unwrap_or("-").replace(' ', "_"),
                f.syscall_from.unwrap_or("-"),
                f.cpu.map_or("-".to_owned(), |c| c.as_nanos().to_string()),
                f.not_run_for.map_or("-".to_owned(), |c| c.as_nanos().to_string()),
                f.mask.map_or("-".to_owned(), |m| format!("{m:#x}")),
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
