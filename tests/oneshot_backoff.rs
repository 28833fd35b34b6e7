//! A one-shot window whose accept fails (EMFILE) backs off as the always-on listener does: it
//! does not spin a core for the rest of the window, and serves the waiting client once
//! descriptors are free again.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use support::{App, Client, PATIENCE, cpu_ticks, unique_socket, wait_until};

#[test]
fn out_of_file_descriptors_a_oneshot_window_backs_off_and_recovers() {
    let socket = unique_socket("oneshot-emfile");
    let mut app = App::try_serve(&[
        "--socket",
        socket.to_str().unwrap(),
        "--oneshot-on",
        "USR2",
        "--oneshot-ms",
        "15000",
    ])
    .unwrap_or_else(|line| panic!("{line}"));
    assert_eq!(app.socket, std::path::PathBuf::from("none"), "dormant at first");
    app.socket = socket.clone();
    // SAFETY: sends a signal to the test's own child process.
    assert_eq!(unsafe { libc::kill(app.pid as i32, libc::SIGUSR2) }, 0);
    assert!(
        wait_until(PATIENCE, || socket.exists()),
        "the window opens on USR2"
    );
    assert!(app.ask("exhaust-fds").starts_with("holding "));

    // This client waits in the backlog while accept fails with EMFILE.
    let mut waiting = Client::connect(&socket);
    waiting.stream.set_nonblocking(true).unwrap();
    let thread = "manhole-1x-12";
    let before = cpu_ticks(app.pid, thread);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        let mut got = [0u8; 64];
        match waiting.stream.read(&mut got) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("no session while out of fds, got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(app.pid, thread) - before;
    assert!(
        used < 30,
        "the one-shot thread used {used} ticks in one second: it spins"
    );
    let failures = app.stderr().matches("Accept failed").count();
    assert!(
        (1..10).contains(&failures),
        "{failures} 'Accept failed' lines:\n{}",
        app.stderr()
    );

    // Once descriptors are free again, the waiting client gets its one session.
    assert_eq!(app.ask("release-fds"), "released");
    waiting.stream.set_nonblocking(false).unwrap();
    assert!(waiting.opening().contains("Type \"help\" for commands."));
    assert!(
        app.stderr().contains("Accepting connections again"),
        "{}",
        app.stderr()
    );
    assert!(
        wait_until(PATIENCE, || !socket.exists()),
        "one session only: socket removed"
    );
    assert!(waiting.command("info").starts_with("pid "));
}
