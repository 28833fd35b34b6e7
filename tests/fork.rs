//! Forked children: their own manhole after the delay, nothing when they exec, nothing with a
//! socket_path; the parent's socket and sessions are untouched.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{App, Client, PATIENCE, unique_socket, wait_until};

fn child_of(app: &mut App, command: &str) -> i32 {
    let line = app.ask(command);
    line.strip_prefix("child ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

fn kill(pid: i32) {
    // SAFETY: kills the test app's own child, created for this test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn a_forked_child_gets_its_own_manhole_and_the_parent_keeps_its_own() {
    let mut app = App::serve(&[]);
    let child = child_of(&mut app, "fork-child");
    let child_socket = PathBuf::from(format!("/tmp/manhole-{child}"));
    assert!(
        wait_until(PATIENCE, || child_socket.exists()),
        "the child's manhole appears after the delay"
    );
    let mut session = Client::connect(&child_socket);
    let opening = session.opening();
    assert!(opening.contains(&format!("ProcessID={child},")), "{opening}");
    assert!(opening.contains(&format!("(pid {child})")), "{opening}");
    assert!(
        session
            .command("info")
            .starts_with(&format!("pid         {child} (parent {})", app.pid))
    );
    drop(session);
    kill(child);
    // The parent's socket survived the child and still serves.
    assert!(app.socket.exists());
    assert!(
        Client::connect(&app.socket)
            .opening()
            .contains(&format!("(pid {})", app.pid))
    );
    let _ = std::fs::remove_file(&child_socket); // SIGKILLed: nothing removed it
}

#[test]
fn fork_then_exec_within_the_delay_creates_nothing() {
    let mut app = App::serve(&[]);
    let child = child_of(&mut app, "fork-exec");
    // The child execs `sleep 2` at once; well past the 500 ms delay, nothing appeared.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!PathBuf::from(format!("/tmp/manhole-{child}")).exists());
    assert!(app.is_alive());
}

#[test]
fn with_a_socket_path_children_get_no_manhole() {
    let mut app = App::serve(&["--socket", unique_socket("forkpath").to_str().unwrap()]);
    assert!(
        app.stderr()
            .contains("Not giving forked children a manhole: a socket_path is set"),
        "{}",
        app.stderr()
    );
    let child = child_of(&mut app, "fork-child");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!PathBuf::from(format!("/tmp/manhole-{child}")).exists());
    kill(child);
    Client::connect(&app.socket).opening();
}

#[test]
fn a_fork_during_an_open_session_does_not_keep_that_session_open() {
    let mut app = App::serve(&["--socket", unique_socket("forksession").to_str().unwrap()]);
    let mut session = Client::connect(&app.socket);
    session.opening();
    let child = child_of(&mut app, "fork-child");
    // The child holds no copy of any of manhole's sockets (the test app has no others) once its
    // fork handler has run (the parent reports the child's pid as soon as fork returns there).
    let sockets = || sockets_of(child);
    assert!(
        wait_until(PATIENCE, || sockets() == 0),
        "the child closed its copies of manhole's sockets: {} left",
        sockets()
    );
    session.send(b"quit\n");
    session
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(session.read_to_end(), "");
    let mut next = Client::connect(&app.socket);
    next.opening();
    assert!(next.command("info").starts_with("pid "));
    kill(child);
}

/// The sockets the process `pid` holds (`usize::MAX` once it exited: a zombie holds none, but
/// that proves nothing).
fn sockets_of(pid: i32) -> usize {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if stat
        .rsplit(')')
        .next()
        .is_none_or(|rest| rest.trim_start().starts_with(['Z', 'X']))
    {
        return usize::MAX;
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(usize::MAX)
}

#[test]
fn a_fork_with_hundreds_of_sessions_open_keeps_none_of_their_sockets() {
    // Two descriptors per session: 300 sessions are more than the 512 slots the descriptor
    // table had, past which a forked child silently kept the rest open (and those sessions
    // never saw EOF while the child lived).
    const SESSIONS: usize = 300;
    let mut app = App::serve(&[
        "--socket",
        unique_socket("forkmany").to_str().unwrap(),
        "--max-sessions",
        "400",
        "--quiet",
    ]);
    let mut sessions: Vec<Client> = (0..SESSIONS)
        .map(|_| {
            let mut client = Client::connect(&app.socket);
            client.opening();
            client
        })
        .collect();
    assert!(sockets_of(app.pid as i32) >= 2 * SESSIONS);
    let child = child_of(&mut app, "fork-child");
    assert!(
        wait_until(PATIENCE, || sockets_of(child) == 0),
        "the child closed its copies of all {} of manhole's sockets: {} left",
        sockets_of(app.pid as i32),
        sockets_of(child)
    );
    // Every session is still the parent's alone: the last one ends with EOF on quit.
    let last = sessions.last_mut().expect("sessions");
    last.send(b"quit\n");
    last.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(last.read_to_end(), "");
    assert!(sessions[0].command("info").starts_with("pid "));
    kill(child);
}

#[test]
fn after_uninstall_forked_children_get_no_manhole() {
    let mut app = App::serve(&[]);
    assert_eq!(app.ask("uninstall"), "uninstalled, path now none");
    let child = child_of(&mut app, "fork-child");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!PathBuf::from(format!("/tmp/manhole-{child}")).exists());
    kill(child);
}

#[test]
fn commands_spawned_through_fork_and_exec_work() {
    // pre_exec makes std::process::Command fork (running manhole's atfork handler) and exec.
    let mut app = App::serve(&[]);
    assert_eq!(app.ask("spawn-pre-exec"), "spawned 20");
    assert!(app.is_alive());
}
