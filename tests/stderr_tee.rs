//! redirect_stderr: sessions see the program's stderr, the original stderr still gets it, a
//! client that never reads does not slow the program, and fd 2 comes back when sessions end.

mod support;

use support::{App, Client, PATIENCE, unique_socket, wait_until};

#[test]
fn sessions_see_stderr_and_the_original_still_gets_it() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("tee").to_str().unwrap(),
        "--redirect-stderr",
    ]);
    let original = app.ask("fd2");
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_ne!(
        app.ask("fd2"),
        original,
        "fd 2 is the tee while a session is open"
    );
    assert_eq!(app.ask("stderr hello from the program"), "written");
    // The line reaches the session (read_until fails the test if it never comes).
    client.read_until("hello from the program\n");
    assert!(
        wait_until(PATIENCE, || app.stderr().contains("hello from the program\n")),
        "the original stderr got it too"
    );
    assert!(
        client.command("info").starts_with("pid "),
        "the session works as usual"
    );

    client.send(b"quit\n");
    client.read_to_end();
    assert!(
        wait_until(PATIENCE, || app.ask("fd2") == original),
        "fd 2 restored after the last session"
    );
    assert_eq!(app.ask("stderr after the session"), "written");
    assert!(wait_until(PATIENCE, || app
        .stderr()
        .contains("after the session\n")));
}

#[test]
fn a_client_that_never_reads_does_not_block_the_programs_stderr() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("teeflood").to_str().unwrap(),
        "--redirect-stderr",
    ]);
    let stuck = Client::connect(&app.socket);
    // It never reads a byte. 20 MiB of stderr must still go through.
    let answer = app.ask("stderr-flood 20");
    assert!(answer.starts_with("flooded in "), "{answer}");
    assert!(app.is_alive());
    assert!(
        wait_until(PATIENCE, || app.stderr().len() > 20 * 1024 * 1024),
        "all of it reached the original stderr"
    );
    drop(stuck);
}

#[test]
fn machine_mode_sessions_get_no_raw_stderr() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("teemachine").to_str().unwrap(),
        "--redirect-stderr",
    ]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    client.send(b"machine\n");
    assert!(client.read_until("\n").starts_with("{\"ok\":true"));
    assert_eq!(app.ask("stderr noise that must not reach a program"), "written");
    client.send(b"clients\n");
    let line = client.read_until("\n");
    assert!(
        line.starts_with("{\"ok\":true,\"command\":\"clients\""),
        "only JSON in machine mode: {line:?}"
    );
}
