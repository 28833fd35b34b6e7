//! activate_on, oneshot_on, manual mode and handle_oneshot, each in its own test-app process;
//! and the signal mask that keeps the application's signalfd working.

mod support;

use std::time::Duration;

use support::{App, Client, PATIENCE, unique_socket, wait_until};

fn kill(app: &App, signal: i32) {
    // SAFETY: sends a signal to the test's own child process.
    assert_eq!(unsafe { libc::kill(app.pid as i32, signal) }, 0);
}

/// The app reports `ready none` while dormant: find where it will listen from the option.
fn dormant(args: &[&str]) -> (App, std::path::PathBuf) {
    let socket = unique_socket("dormant");
    let mut all = vec!["--socket", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut app = App::try_serve(&all).unwrap_or_else(|line| panic!("{line}"));
    assert_eq!(
        app.socket,
        std::path::PathBuf::from("none"),
        "no socket before the trigger"
    );
    app.socket = socket.clone();
    assert!(!socket.exists());
    (app, socket)
}

#[test]
fn activate_on_listens_only_after_the_signal_and_keeps_the_apps_handler() {
    let (mut app, socket) = dormant(&["--activate-on", "USR1", "--own-handler-before", "USR1"]);
    assert!(!app.stderr().contains("Manhole UDS path"), "nothing listens yet");
    kill(&app, libc::SIGUSR1);
    assert_eq!(
        app.line(),
        "app handler ran",
        "the application's own USR1 handler still runs"
    );
    assert!(wait_until(PATIENCE, || socket.exists()), "listening after USR1");
    assert_eq!(app.ask("path"), socket.display().to_string());
    Client::connect(&socket).opening();
    // Again: harmless, and the handler runs again.
    kill(&app, libc::SIGUSR1);
    assert_eq!(app.line(), "app handler ran");
    kill(&app, libc::SIGUSR1);
    assert_eq!(app.line(), "app handler ran");
    assert!(app.is_alive());
    let mut client = Client::connect(&socket);
    client.opening();
    assert!(client.command("info").starts_with("pid "));
    assert_eq!(
        app.ask("oneshot"),
        "error: conflicting options: handle_oneshot() works with oneshot_on or thread(false); this manhole listens on its own"
    );
}

#[test]
fn oneshot_serves_one_session_per_signal_and_never_blocks_the_app() {
    let (mut app, socket) = dormant(&["--oneshot-on", "USR2"]);
    for round in 0..2 {
        kill(&app, libc::SIGUSR2);
        assert!(
            wait_until(PATIENCE, || socket.exists()),
            "round {round}: socket after USR2"
        );
        let mut client = Client::connect(&socket);
        client.opening();
        // Exactly one session: the socket is gone as soon as the client is in.
        assert!(
            wait_until(PATIENCE, || !socket.exists()),
            "round {round}: socket removed"
        );
        assert!(client.command("info").starts_with("pid "));
        assert_eq!(app.ask("path"), "none", "the app answers while a session runs");
        client.send(b"quit\n");
        client.read_to_end();
    }
    assert!(
        app.stderr()
            .matches("Waiting for SIGUSR2 or handle_oneshot() to serve one session")
            .count()
            >= 2
    );
}

#[test]
fn oneshot_without_a_client_removes_the_socket_after_the_window() {
    let (mut app, socket) = dormant(&["--oneshot-on", "USR2", "--oneshot-ms", "1500"]);
    kill(&app, libc::SIGUSR2);
    assert!(wait_until(PATIENCE, || socket.exists()));
    assert!(
        wait_until(PATIENCE, || !socket.exists()),
        "removed when nobody came"
    );
    assert!(
        wait_until(PATIENCE, || app
            .stderr()
            .contains("No client within 1 s; socket removed")),
        "{}",
        app.stderr()
    );
    assert!(app.is_alive());
    // Re-armed.
    kill(&app, libc::SIGUSR2);
    assert!(wait_until(PATIENCE, || socket.exists()));
    Client::connect(&socket).opening();
    assert_eq!(app.ask("path"), "none");
}

#[test]
fn manual_mode_serves_a_session_when_the_program_asks() {
    let (mut app, socket) = dormant(&["--manual"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!socket.exists(), "nothing listens in manual mode");
    assert_eq!(app.ask("oneshot"), "oneshot requested");
    assert!(wait_until(PATIENCE, || socket.exists()));
    let mut client = Client::connect(&socket);
    assert!(client.opening().contains("Type \"help\" for commands."));
    client.send(b"quit\n");
    client.read_to_end();
    assert_eq!(app.ask("oneshot"), "oneshot requested", "again");
    assert!(wait_until(PATIENCE, || socket.exists()));
    Client::connect(&socket).opening();
}

#[test]
fn the_apps_signalfd_still_gets_a_signal_the_manhole_threads_block() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("sigfd").to_str().unwrap(),
        "--signalfd-usr2",
    ]);
    // The main thread blocks SIGUSR2 only after manhole's threads exist: were they not
    // blocking it, the process-directed signal would go to one of them and kill the process.
    Client::connect(&app.socket).opening();
    for _ in 0..3 {
        kill(&app, libc::SIGUSR2);
        assert_eq!(app.line(), "signalfd got 12");
    }
    assert!(app.is_alive());
}

#[test]
fn uninstall_while_a_one_shot_session_is_open_returns_promptly() {
    let (mut app, socket) = dormant(&["--oneshot-on", "USR2"]);
    kill(&app, libc::SIGUSR2);
    assert!(wait_until(PATIENCE, || socket.exists()));
    let mut client = Client::connect(&socket);
    client.opening();
    let started = std::time::Instant::now();
    assert_eq!(app.ask("uninstall"), "uninstalled, path now none");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "uninstall waited {:?}",
        started.elapsed()
    );
    assert_eq!(client.read_to_end(), "", "the session was closed");
}

#[test]
fn signals_that_end_the_process_cannot_be_triggers() {
    let socket = unique_socket("trigger-term");
    let out = std::process::Command::new(support::testapp())
        .args([
            "serve",
            "--socket",
            socket.to_str().unwrap(),
            "--activate-on",
            "TERM",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("error: invalid signal \"SIGTERM\": it must keep ending the process"),
        "{text}"
    );
}
