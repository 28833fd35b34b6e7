//! The host process of the black-box tests: installs manhole as told, then obeys commands on stdin.
//!
//! `manhole-testapp serve [--socket PATH] [--max-sessions N] [--idle-ms N] [--close-stderr]
//!                        [--quiet] [--threads N]`
//!   prints `ready <socket path>`, then reads commands, one per line:
//!   `install-strict`, `install-replace`, `uninstall`, `path`, `fork-uninstall`,
//!   `exhaust-fds`, `release-fds`, `exit`.
//!   `fork-child` forks a child that sleeps 20 s (says `child <pid>`); `fork-exec` forks a
//!   child that execs `sleep 2` at once.
//!   `--redirect-stderr`; `stderr TEXT` writes a line to stderr, `stderr-flood N` writes N MiB,
//!   `fd2` says where fd 2 points.
//!   `exhaust-fds` takes every free file descriptor, `release-fds` gives them back.
//!   `--own-handler-before SIG` / `--own-handler-after SIG` (TERM or INT): the application's own
//!   handler, installed before or after manhole, prints `app handler ran` and exits with 42.
//!   `--activate-on SIG`, `--oneshot-on SIG`, `--manual`, `--oneshot-ms N`: activation modes;
//!   the command `oneshot` calls `handle_oneshot()`. `--signalfd-usr2` blocks SIGUSR2 after
//!   install and reads it from a signalfd, printing `signalfd got 12`.
//! `manhole-testapp from-env`: `manhole::install_from_env()`, then `ready <path>`,
//!   `not installed` or `error: …`.
//! `manhole-testapp connect PATH`: a client; prints what the server sends until EOF.
//! `manhole-testapp install-at PATH`: prints `installed` or `error: <message>`.

#[path = "host_parts.rs"]
mod host_parts;

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn main() {
    // A hostile host: SIGPIPE kills it, as in a C program, so any write to a vanished client
    // that is not MSG_NOSIGNAL would show up as a dead process.
    // SAFETY: setting a signal disposition to SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // No core files from the SIGQUIT tests.
    // SAFETY: rlimit is plain data; setting RLIMIT_CORE to 0 has no other effect.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("from-env") => match manhole::install_from_env() {
            Ok(Some(handle)) => {
                say(&format!("ready {}", path_of(&handle)));
                let _ = std::io::stdin().lock().lines().count();
            }
            Ok(None) => say("not installed"),
            Err(e) => say(&format!("error: {e}")),
        },
        Some("connect") => connect(&args[1]),
        Some("install-at") => match manhole::install(manhole::Options::new().socket_path(&args[1])) {
            Ok(_) => println!("installed"),
            Err(e) => println!("error: {e}"),
        },
        _ => {
            eprintln!("usage: manhole-testapp serve|connect|install-at …");
            std::process::exit(2);
        }
    }
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn options(args: &[String]) -> manhole::Options {
    let mut options = manhole::Options::new();
    if let Some(path) = value(args, "--socket") {
        options = options.socket_path(path);
    }
    if let Some(n) = value(args, "--max-sessions") {
        options = options.max_sessions(n.parse().expect("--max-sessions N"));
    }
    if let Some(ms) = value(args, "--idle-ms") {
        options = options.idle_timeout(Duration::from_millis(ms.parse().expect("--idle-ms N")));
    }
    if args.iter().any(|a| a == "--quiet") {
        options = options.verbose(false);
    }
    if args.iter().any(|a| a == "--daemon") {
        options = options.daemon_connection(true);
    }
    if args.iter().any(|a| a == "--redirect-stderr") {
        options = options.redirect_stderr(true);
    }
    if let Some(signal) = value(args, "--activate-on") {
        options = options.activate_on(signal);
    }
    if let Some(signal) = value(args, "--oneshot-on") {
        options = options.oneshot_on(signal);
    }
    if args.iter().any(|a| a == "--manual") {
        options = options.thread(false);
    }
    if let Some(ms) = value(args, "--oneshot-ms") {
        options = options.oneshot_timeout(Duration::from_millis(ms.parse().expect("--oneshot-ms N")));
    }
    if let Some(path) = value(args, "--log-file") {
        options = options.verbose_destination(path);
    }
    if args.iter().any(|a| a == "--log-crate") {
        options = options.verbose_destination(manhole::VerboseDestination::Log);
    }
    options
}

/// A minimal `log` backend: `log-crate <level> <target>: <message>` lines on stderr.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!(
            "log-crate {} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

#[inline(never)]
fn testapp_worker_sleeps() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn serve(args: &[String]) {
    if args.iter().any(|a| a == "--close-stderr") {
        // SAFETY: closing fd 2 is what the test is about; nothing in this process uses it after.
        unsafe { libc::close(2) };
    }
    if args.iter().any(|a| a == "--log-crate") {
        log::set_logger(&StderrLogger).expect("no other logger");
        log::set_max_level(log::LevelFilter::Info);
    }
    for i in 0..value(args, "--threads").map_or(0, |n| n.parse().expect("--threads N")) {
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(testapp_worker_sleeps)
            .expect("spawn");
    }
    if let Some(signal) = value(args, "--own-handler-before") {
        own_handler(signal);
    }
    let mut handle = match manhole::install(options(args)) {
        Ok(handle) => handle,
        Err(e) => {
            println!("error: {e}");
            return;
        }
    };
    if let Some(signal) = value(args, "--own-handler-after") {
        own_handler(signal);
    }
    if args.iter().any(|a| a == "--signalfd-usr2") {
        signalfd_usr2();
    }
    say(&format!("ready {}", path_of(&handle)));
    let mut hoard: Vec<std::fs::File> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "install-strict" => match manhole::install(options(args)) {
                Ok(_) => say("installed"),
                Err(e @ manhole::Error::AlreadyInstalled { .. }) => say(&format!("already installed: {e}")),
                Err(e) => say(&format!("error: {e}")),
            },
            "install-replace" => match manhole::install(options(args).strict(false)) {
                Ok(new) => {
                    say(&format!("old handle: {}", path_of(&handle)));
                    handle = new;
                    say(&format!("ready {}", path_of(&handle)));
                }
                Err(e) => say(&format!("error: {e}")),
            },
            "uninstall" => {
                handle.clone().uninstall();
                say(&format!("uninstalled, path now {}", path_of(&handle)));
            }
            "path" => say(&path_of(&handle)),
            "fd2" => say(&std::fs::read_link("/proc/self/fd/2")
                .map_or_else(|e| e.to_string(), |p| p.display().to_string())),
            line if line.starts_with("stderr ") => {
                eprintln!("{}", &line["stderr ".len()..]);
                say("written");
            }
            line if line.starts_with("stderr-flood ") => {
                let mib: usize = line["stderr-flood ".len()..].parse().expect("stderr-flood MiB");
                let row = "x".repeat(1023);
                let started = std::time::Instant::now();
                for _ in 0..mib * 1024 {
                    eprintln!("{row}");
                }
                say(&format!("flooded in {} ms", started.elapsed().as_millis()));
            }
            "oneshot" => match handle.handle_oneshot() {
                Ok(()) => say("oneshot requested"),
                Err(e) => say(&format!("error: {e}")),
            },
            "exhaust-fds" => {
                // Take every free descriptor, so the next accept fails with EMFILE.
                while let Ok(file) = std::fs::File::open("/dev/null") {
                    hoard.push(file);
                }
                say(&format!("holding {} descriptors", hoard.len()));
            }
            "release-fds" => {
                hoard.clear();
                say("released");
            }
            "fork-child" => say(&host_parts::fork_sleeper(20)),
            "fork-exec" => say(&host_parts::fork_exec_sleep(c"2")),
            "spawn-pre-exec" => {
                use std::os::unix::process::CommandExt;
                let mut ok = 0;
                for _ in 0..20 {
                    let mut command = std::process::Command::new("/bin/true");
                    // SAFETY: the closure does nothing; pre_exec makes std fork (running the
                    // atfork handlers) instead of posix_spawn.
                    unsafe { command.pre_exec(|| Ok(())) };
                    if command.status().is_ok_and(|s| s.success()) {
                        ok += 1;
                    }
                }
                say(&format!("spawned {ok}"));
            }
            "fork-uninstall" => {
                // SAFETY: the child only calls manhole's uninstall and install (which must
                // leave the parent's manhole alone) and then _exit; the parent waits for it.
                match unsafe { libc::fork() } {
                    0 => {
                        let outcome = std::panic::catch_unwind(|| {
                            handle.clone().uninstall();
                            let again = manhole::install(options(args).strict(false));
                            matches!(again, Err(manhole::Error::SocketPathInUse { .. }))
                        });
                        // SAFETY: ends the child at once, without running the parent's exit hooks.
                        unsafe { libc::_exit(if matches!(outcome, Ok(true)) { 0 } else { 1 }) };
                    }
                    child if child > 0 => {
                        let mut status = 0;
                        // SAFETY: waits for the child just created.
                        unsafe { libc::waitpid(child, &mut status, 0) };
                        say(&format!("child exited with {}", libc::WEXITSTATUS(status)));
                    }
                    _ => say("fork failed"),
                }
            }
            "panic" => panic!("the main thread panics on purpose"),
            "exit" => {
                say("exiting");
                return;
            }
            other => say(&format!("unknown: {other}")),
        }
    }
}

/// The application's own handler for `signal`: it says so on stdout, and for TERM and INT
/// exits with 42.
fn own_handler(signal: &str) {
    extern "C" fn handled(signal: libc::c_int) {
        let line = b"app handler ran\n";
        // SAFETY: write and _exit are async-signal-safe; the buffer is a static byte string.
        unsafe {
            libc::write(1, line.as_ptr().cast(), line.len());
            if signal != libc::SIGUSR1 {
                libc::_exit(42);
            }
        }
    }
    let number = match signal {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "USR1" => libc::SIGUSR1,
        other => panic!("no handler for {other}"),
    };
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    unsafe { libc::signal(number, handled as *const () as libc::sighandler_t) };
}

/// Blocks SIGUSR2 in the main thread (after manhole's threads exist) and reads it from a
/// signalfd on a thread of its own, printing `signalfd got N` for each one.
fn signalfd_usr2() {
    // SAFETY: sigset_t is plain data initialised by sigemptyset/sigaddset; the mask change is
    // the point of the test; signalfd and read are given valid buffers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        assert!(fd >= 0, "signalfd");
        // The reader inherits the blocked mask from this thread.
        std::thread::spawn(move || {
            loop {
                let mut info: libc::signalfd_siginfo = std::mem::zeroed();
                let n = libc::read(
                    fd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of_val(&info),
                );
                if n > 0 {
                    say(&format!("signalfd got {}", info.ssi_signo));
                }
            }
        });
    }
}

fn path_of(handle: &manhole::Handle) -> String {
    handle
        .socket_path()
        .map_or_else(|| "none".to_owned(), |p| p.display().to_string())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn connect(path: &str) {
    match UnixStream::connect(path) {
        Ok(mut stream) => {
            let mut text = Vec::new();
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            match stream.read_to_end(&mut text) {
                Ok(_) => print!("{}", String::from_utf8_lossy(&text)),
                Err(e) => println!("read error: {e}"),
            }
        }
        Err(e) => println!("connect error: {e}"),
    }
}
