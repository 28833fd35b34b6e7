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
