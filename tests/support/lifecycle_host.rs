//! The host of the lifecycle tests (tests/lifecycle.rs, tests/signals.rs, tests/privileges.rs):
//! installs manhole, then does to itself what programs do after that, as told on stdin.
//!
//! `manhole-lifecycle-host [--socket PATH] [--thread-name NAME] [--pipe-default] [--no-manhole]`
//! prints `ready <socket path>`, then obeys commands, one per line, answering one line each:
//! - `chroot DIR`: chroot(2) into DIR and chdir to its `/`;
//! - `drop-privileges UID GID`: setgroups([]), setgid(GID), setuid(UID), with glibc's
//!   process-wide wrappers (every thread changes), as a daemon does after binding;
//! - `handle SIG`: installs a handler of the program's own for SIG that says `handled SIG`;
//! - `raise SIG`: the process sends itself SIG (`kill(getpid())`);
//! - `segv`: writes through a null pointer; `bus`: reads a truncated mapped file;
//!   `ill`: executes an undefined instruction; `fpe`: divides by zero in assembly;
//! - `overflow`: overflows the stack of a std thread; `abort`: `std::process::abort()`;
//! - `sigpipe`: writes to a pipe whose reader is gone (with `--pipe-default`, SIGPIPE has its
//!   default action, as in a C program; Rust's runtime ignores it otherwise);
//! - `euid`: says the effective uid; `exit`: returns from main.
//!
//! `manhole-lifecycle-host connect PATH`: a client; sends `info` and `quit`, prints what the
//! server sends until EOF, or `connect error: …`.

use std::io::{BufRead, Write};
use std::time::Duration;

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[inline(never)]
fn lifecycle_worker_sleeps() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn signal_number(name: &str) -> libc::c_int {
    match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "IO" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        other => other.parse().unwrap_or_else(|_| panic!("unknown signal {other}")),
    }
}

extern "C" fn program_handler(signal: libc::c_int) {
    let mut line = *b"handled 00\n";
    line[8] = b'0' + (signal / 10) as u8;
    line[9] = b'0' + (signal % 10) as u8;
    // SAFETY: write is async-signal-safe; the buffer is on the handler's stack.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let buf = [depth; 64];
    std::hint::black_box(&buf);
    recurse(depth + 1) + std::hint::black_box(buf[3])
}

fn main() {
    // No core files from the crash tests.
    // SAFETY: rlimit is plain data; setting RLIMIT_CORE to 0 has no other effect.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let ["connect", path] = args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        connect(path);
        return;
    }
    if args.iter().any(|a| a == "--pipe-default") {
        // SAFETY: setting a signal disposition to SIG_DFL has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    if let Some(name) = value(&args, "--thread-name") {
        // It names itself when it first runs: wait for that, so every dump sees the name.
        let (started, running) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _ = started.send(());
                lifecycle_worker_sleeps()
            })
            .expect("spawn the named thread");
        running.recv().expect("the named thread runs");
    }
    let mut options = manhole::Options::new();
    if let Some(path) = value(&args, "--socket") {
        options = options.socket_path(path);
    }
    let path = if args.iter().any(|a| a == "--no-manhole") {
        "none".to_owned()
    } else {
        match manhole::install(options) {
            Ok(handle) => handle
                .socket_path()
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            Err(e) => {
                say(&format!("error: {e}"));
                return;
            }
        }
    };
    say(&format!("ready {path}"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["chroot", dir] => {
                let done = std::os::unix::fs::chroot(dir).and_then(|()| std::env::set_current_dir("/"));
                say(&done.map_or_else(|e| format!("error: {e}"), |()| "chrooted".to_owned()));
            }
            ["drop-privileges", uid, gid] => {
                let uid: libc::uid_t = uid.parse().expect("UID");
                let gid: libc::gid_t = gid.parse().expect("GID");
                // SAFETY: plain system calls through glibc, which applies them to every thread.
                let failed = unsafe {
                    libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                };
                if failed {
                    say(&format!("error: {}", std::io::Error::last_os_error()));
                } else {
                    say("dropped");
                }
            }
            // SAFETY: geteuid has no preconditions.
            ["euid"] => say(&unsafe { libc::geteuid() }.to_string()),
            ["handle", signal] => {
                // SAFETY: installs a handler that only makes async-signal-safe calls.
                unsafe {
                    libc::signal(
                        signal_number(signal),
                        program_handler as *const () as libc::sighandler_t,
                    )
                };
                say("handler installed");
            }
            ["raise", signal] => {
                // SAFETY: sends a signal to this very process.
                unsafe { libc::kill(libc::getpid(), signal_number(signal)) };
                say("raised and alive");
            }
            ["segv"] => {
                // SAFETY: none: writing through a null pointer is the crash under test.
                unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1) };
            }
            ["bus"] => bus_error(),
            ["ill"] => {
                // SAFETY: none: ud2 raises SIGILL, the crash under test.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    std::arch::asm!("ud2")
                };
                // SAFETY: none: udf raises SIGILL, the crash under test.
                #[cfg(target_arch = "aarch64")]
                unsafe {
                    std::arch::asm!("udf #0")
                };
            }
            ["fpe"] => {
                // SAFETY: none: an integer division by zero raises SIGFPE, the crash under test.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    std::arch::asm!("xor edx, edx", "xor ecx, ecx", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
                };
                #[cfg(not(target_arch = "x86_64"))]
                // SAFETY: sends SIGFPE to this very process where division does not trap.
                unsafe {
                    libc::raise(libc::SIGFPE)
                };
            }
            ["overflow"] => {
                let _ = std::thread::Builder::new()
                    .name("deep".into())
                    .spawn(|| recurse(0))
                    .map(|t| t.join());
            }
            ["abort"] => std::process::abort(),
            ["sigpipe"] => {
                let (reader, mut writer) = std::io::pipe().expect("pipe");
                drop(reader);
                let outcome = writer.write_all(b"x");
                say(&format!("sigpipe did not kill: {outcome:?}"));
            }
            ["exit"] => {
                say("exiting");
                return;
            }
            _ => say(&format!("unknown: {line}")),
        }
    }
}

/// Touches a page of a mapped file beyond its end: SIGBUS.
fn bus_error() {
    let path = std::env::temp_dir().join(format!("mh-bus-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the file to map");
    let _ = std::fs::remove_file(&path);
    use std::os::fd::AsRawFd;
    // SAFETY: maps one page of an empty file; reading it is the crash under test.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(page, libc::MAP_FAILED, "mmap");
        std::ptr::read_volatile(page.cast::<u8>());
    }
}

fn connect(path: &str) {
    use std::io::Read;
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
            let _ = stream.write_all(b"info\nquit\n");
            let mut text = Vec::new();
            match stream.read_to_end(&mut text) {
                Ok(_) => print!("{}", String::from_utf8_lossy(&text)),
                Err(e) => println!("read error: {e}"),
            }
        }
        Err(e) => println!("connect error: {e}"),
    }
}
