//! redirect_stderr against what programs do with their stderr during a session: start
//! children (who inherit the tee's pipe as their stderr) and point fd 2 elsewhere (log
//! rotation, daemonizing). Nothing piles up per session, children's stderr keeps flowing, and
//! the program's own choice of stderr stands.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{App, Client, PATIENCE, baseline, unique_socket, wait_until};

fn host(args: &[&str]) -> App {
    App::start(Command::new(env!("CARGO_BIN_EXE_manhole-runtime-host")).args(args))
        .unwrap_or_else(|line| panic!("the host did not start: {line}"))
}

fn count(app: &App, name: &str) -> usize {
    app.thread_names().iter().filter(|n| *n == name).count()
}

fn end_session(app: &App, mut client: Client) {
    client.send(b"quit\n");
    client.read_to_end();
    assert!(
        wait_until(PATIENCE, || count(app, "manhole-session") == 0),
        "the session did not end"
    );
}

#[test]
fn children_started_in_sessions_leave_one_pipe_and_thread_and_their_stderr_flows_on() {
    let socket = unique_socket("teekids");
    let mut app = host(&["--socket", socket.to_str().unwrap(), "--redirect-stderr"]);
    let (fds, threads) = baseline(&app);
    let original = app.ask("fd2");
    for round in 0..3 {
        let mut client = Client::connect(&app.socket);
        client.opening();
        assert_eq!(app.ask("spawn-child"), format!("child {round}"));
        // The child started in the first session still writes into this one: the same pipe.
        let line = format!("first child in round {round}");
        assert_eq!(app.ask(&format!("child-say 0 {line}")), "sent");
        client.read_until(&format!("{line}\n"));
        end_session(&app, client);
        // One thread copying for the children, with its pipe's read end and its copy of the
        // original stderr; plus the host's pipe to each child's stdin.
        let want_fds = fds + 2 + (round + 1);
        assert!(
            wait_until(PATIENCE, || count(&app, "manhole-stderr") == 1
                && app.fd_count() == want_fds
                && app.thread_count() == threads + 1),
            "round {round}: {} manhole-stderr threads, {} threads (baseline {threads}), {} fds \
             (want {want_fds})",
            count(&app, "manhole-stderr"),
            app.thread_count(),
            app.fd_count()
        );
        assert_eq!(app.ask("fd2"), original, "round {round}: fd 2 restored");
    }
    // Between sessions, what a child writes still reaches the original stderr.
    assert_eq!(app.ask("child-say 2 a child writes between sessions"), "sent");
    assert!(
        wait_until(PATIENCE, || app
            .stderr()
            .contains("a child writes between sessions\n")),
        "{}",
        app.stderr()
    );
    assert_eq!(app.ask("reap"), "reaped 3");
    assert!(
        app.settles_to(fds, threads),
        "once the children are gone, so is the thread: {} fds (baseline {fds}), threads {:?}",
        app.fd_count(),
        app.thread_names()
    );
}

#[test]
fn a_stderr_the_program_replaced_during_a_session_stays_when_the_session_ends() {
    let socket = unique_socket("teerotate");
    let rotated = PathBuf::from(format!("{}.rotated.log", socket.display()));
    let _ = std::fs::remove_file(&rotated);
    let mut app = host(&["--socket", socket.to_str().unwrap(), "--redirect-stderr"]);
    let original = app.ask("fd2");
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_ne!(app.ask("fd2"), original, "the tee is on");
    assert_eq!(
        app.ask(&format!("replace-stderr {}", rotated.display())),
        "replaced"
    );
    // A child forked now keeps the program's new stderr too.
    assert_eq!(app.ask("fork-say a forked child after the rotation"), "forked");
    end_session(&app, client);
    assert_eq!(
        app.ask("fd2"),
        rotated.display().to_string(),
        "the program's choice stands"
    );
    let log = || std::fs::read_to_string(&rotated).unwrap_or_default();
    assert!(
        wait_until(PATIENCE, || log().contains("not restoring")),
        "rotated:\n{}\noriginal:\n{}",
        log(),
        app.stderr()
    );
    assert_eq!(app.ask("stderr after the session"), "written");
    assert!(wait_until(PATIENCE, || log().contains("after the session\n")));
    assert!(log().contains("a forked child after the rotation\n"), "{}", log());
    assert!(!app.stderr().contains("after the rotation"), "{}", app.stderr());
    assert!(!app.stderr().contains("after the session"), "{}", app.stderr());

    // The next session tees the new stderr, and gives it back at its end.
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_ne!(
        app.ask("fd2"),
        rotated.display().to_string(),
        "the tee is on again"
    );
    assert_eq!(app.ask("stderr in the second session"), "written");
    client.read_until("in the second session\n");
    end_session(&app, client);
    assert_eq!(app.ask("fd2"), rotated.display().to_string());
    assert!(wait_until(PATIENCE, || log().contains("in the second session\n")));
    let _ = std::fs::remove_file(&rotated);
}
