//! Death by signal removes the socket and changes nothing else about how the process dies; an
//! application's own handler still decides. The MANHOLE variable switches installs on and off.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use support::{App, testapp, unique_socket};

fn kill(app: &App, signal: i32) {
    // SAFETY: sends a signal to the test's own child process.
    assert_eq!(unsafe { libc::kill(app.pid as i32, signal) }, 0);
}

#[test]
fn death_by_term_int_hup_or_quit_removes_the_socket_and_keeps_the_exit_status() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let mut app = App::serve(&["--socket", unique_socket("death").to_str().unwrap()]);
        let socket = app.socket.clone();
        kill(&app, signal);
        let status = app.finish();
        assert_eq!(
            status.signal(),
            Some(signal),
            "signal {signal}: died of it, as without manhole: {status}"
        );
        assert!(
            !socket.exists(),
            "signal {signal}: {} left behind",
            socket.display()
        );
    }
}

#[test]
fn the_applications_own_handler_still_decides() {
    for flag in ["--own-handler-before", "--own-handler-after"] {
        let mut app = App::serve(&["--socket", unique_socket("own").to_str().unwrap(), flag, "TERM"]);
        kill(&app, libc::SIGTERM);
        assert_eq!(app.line(), "app handler ran", "{flag}");
        let status = app.finish();
        assert_eq!(status.code(), Some(42), "{flag}: {status}");
    }
}

#[test]
fn sigkill_leaves_a_stale_socket_that_the_next_start_replaces() {
    let path = unique_socket("killed");
    let mut first = App::serve(&["--socket", path.to_str().unwrap()]);
    kill(&first, libc::SIGKILL);
    assert_eq!(first.finish().signal(), Some(libc::SIGKILL));
    assert!(path.exists(), "nothing runs on SIGKILL");
    let second = App::serve(&["--socket", path.to_str().unwrap()]);
    support::Client::connect(&second.socket).opening();
}

fn from_env(value: Option<&str>) -> String {
    let mut command = Command::new(testapp());
    command.arg("from-env").stdin(std::process::Stdio::null());
    match value {
        Some(value) => command.env("MANHOLE", value),
        None => command.env_remove("MANHOLE"),
    };
    String::from_utf8_lossy(&command.output().unwrap().stdout)
        .trim()
        .to_owned()
}

#[test]
fn install_from_env_follows_the_manhole_variable() {
    assert_eq!(from_env(None), "not installed");
    assert_eq!(from_env(Some("0")), "not installed");
    assert_eq!(from_env(Some("off")), "not installed");
    let socket = unique_socket("fromenv");
    assert_eq!(
        from_env(Some(&format!("socket_path={},verbose=false", socket.display()))),
        format!("ready {}", socket.display())
    );
    assert!(!socket.exists(), "removed when the process exited");
    let refused = from_env(Some("socket_path=/tmp/x,colour=blue"));
    assert!(
        refused.starts_with(
            "error: conflicting options: MANHOLE entry \"colour=blue\": unknown key; expected one of: socket_path,"
        ),
        "{refused}"
    );
    assert!(refused.contains("oneshot_timeout"), "{refused}");
}

#[test]
fn a_panic_in_main_removes_the_socket_and_keeps_the_exit_code() {
    let mut app = App::serve(&["--socket", unique_socket("panic").to_str().unwrap()]);
    let socket = app.socket.clone();
    app.ask_no_answer("panic");
    let status = app.finish();
    assert_eq!(
        status.code(),
        Some(101),
        "a panicking main exits with 101, as without manhole: {status}"
    );
    assert!(!socket.exists());
    assert!(app.stderr().contains("the main thread panics on purpose"));
}

/// The host that does to itself what programs do after installing (tests/support/lifecycle_host.rs).
fn lifecycle_host(args: &[&str]) -> App {
    App::start(Command::new(env!("CARGO_BIN_EXE_manhole-lifecycle-host")).args(args))
        .unwrap_or_else(|line| panic!("lifecycle host did not start: {line}"))
}

/// Starts the host, has it do `command`, and returns how it died and whether the socket stayed.
fn die_by(command: &str, host_args: &[&str]) -> (std::process::ExitStatus, bool, String) {
    let socket = unique_socket("fatal");
    let mut args = vec!["--socket", socket.to_str().unwrap()];
    args.extend_from_slice(host_args);
    let mut app = lifecycle_host(&args);
    app.ask_no_answer(command);
    let status = app.wait_exit();
    let stayed = app.socket.exists();
    (status, stayed, app.stderr())
}

#[test]
fn every_signal_that_kills_by_default_removes_the_socket_and_keeps_the_death() {
    for (name, number) in [
        ("ABRT", libc::SIGABRT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("ALRM", libc::SIGALRM),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("IO", libc::SIGIO),
        ("PWR", libc::SIGPWR),
        ("STKFLT", libc::SIGSTKFLT),
        ("SYS", libc::SIGSYS),
        ("TRAP", libc::SIGTRAP),
        ("ILL", libc::SIGILL),
        ("FPE", libc::SIGFPE),
    ] {
        let (status, stayed, log) = die_by(&format!("raise {name}"), &[]);
        assert_eq!(status.signal(), Some(number), "SIG{name}: {status}\n{log}");
        assert!(!stayed, "SIG{name} left the socket behind");
    }
}

#[test]
fn crashes_remove_the_socket_and_still_die_of_the_fault() {
    for (command, number) in [
        ("segv", libc::SIGSEGV),
        ("bus", libc::SIGBUS),
        ("ill", libc::SIGILL),
        ("fpe", libc::SIGFPE),
        ("abort", libc::SIGABRT),
    ] {
        let (status, stayed, log) = die_by(command, &[]);
        assert_eq!(status.signal(), Some(number), "{command}: {status}\n{log}");
        assert!(!stayed, "{command} left the socket behind");
    }
}

#[test]
fn a_stack_overflow_is_still_reported_by_rust_and_removes_the_socket() {
    let (status, stayed, log) = die_by("overflow", &[]);
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}\n{log}");
    assert!(
        log.contains("thread 'deep'") && log.contains("has overflowed its stack"),
        "Rust's own report: {log}"
    );
    assert!(!stayed, "a stack overflow left the socket behind");
}

#[test]
fn sigpipe_kills_only_where_the_program_left_it_default() {
    let (status, stayed, log) = die_by("sigpipe", &["--pipe-default"]);
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}\n{log}");
    assert!(!stayed, "SIGPIPE left the socket behind");

    // Rust programs ignore SIGPIPE: the write fails, nothing dies, the socket stays.
    let mut app = lifecycle_host(&["--socket", unique_socket("pipe").to_str().unwrap()]);
    assert!(app.ask("sigpipe").starts_with("sigpipe did not kill: Err("));
    support::Client::connect(&app.socket).opening();
}

#[test]
fn signals_the_program_handles_or_survives_stay_the_programs() {
    // A handler the program installs after manhole decides; the socket stays.
    let mut app = lifecycle_host(&["--socket", unique_socket("handled").to_str().unwrap()]);
    assert_eq!(app.ask("handle USR1"), "handler installed");
    assert_eq!(app.ask("raise USR1"), "handled 10");
    assert_eq!(app.line(), "raised and alive");
    // SIGSEGV and SIGBUS sent with kill go to Rust's runtime handler, which lets the program
    // live, as it does without manhole.
    assert_eq!(app.ask("raise SEGV"), "raised and alive");
    assert_eq!(app.ask("raise BUS"), "raised and alive");
    assert!(app.is_alive());
    support::Client::connect(&app.socket).opening();
}
