//! A program that drops privileges after installing (root → a service user) keeps a manhole
//! its new user can reach, and never claims a cleanup that did not happen. Needs root.

mod support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use support::{App, PATIENCE, unique_socket, wait_until};

const NOBODY: u32 = 65534;

fn host() -> &'static str {
    env!("CARGO_BIN_EXE_manhole-lifecycle-host")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Connects to `path` as `uid` (a client process of that user) and returns what it printed.
fn connect_as(uid: u32, path: &std::path::Path) -> String {
    let out = Command::new(host())
        .arg("connect")
        .arg(path)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run the client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn after_setuid_the_socket_is_recreated_for_the_new_user() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    // A directory the service user owns, as /run/<service> is.
    let dir = unique_socket("rundir");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = dir.join("manhole.sock");
    let mut app = App::start(Command::new(host()).arg("--socket").arg(&socket)).unwrap();
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), 0);
    assert_eq!(app.ask(&format!("drop-privileges {NOBODY} {NOBODY}")), "dropped");
    assert!(
        wait_until(PATIENCE, || app.stderr().contains("(re-created as uid 65534)")),
        "{}",
        app.stderr()
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));
    let seen = connect_as(NOBODY, &socket);
    assert!(seen.contains(&format!("euid {NOBODY}")), "{seen}");
    assert!(seen.contains("Type \"help\" for commands."), "{seen}");
    // Root still may.
    let seen = connect_as(0, &socket);
    assert!(seen.contains("Type \"help\" for commands."), "{seen}");
    assert_eq!(app.ask("exit"), "exiting");
    assert!(app.finish().success());
    assert!(!socket.exists(), "removed at exit by the new user");
    assert!(app.stderr().ends_with("]: Cleaned up.\n"), "{}", app.stderr());
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn when_the_socket_cannot_follow_the_log_says_why_and_claims_no_cleanup() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    // The default place: /tmp is sticky, so the new user may not replace root's socket.
    let mut app = App::start(&mut Command::new(host())).unwrap();
    let socket = app.socket.clone();
    assert_eq!(app.ask(&format!("drop-privileges {NOBODY} {NOBODY}")), "dropped");
    assert!(
        wait_until(PATIENCE, || app
            .stderr()
            .contains("Cannot re-create the socket as uid 65534")),
        "{}",
        app.stderr()
    );
    let log = app.stderr();
    assert!(
        log.contains(&format!(
            "cannot remove {}: Operation not permitted (os error 1) (the socket is uid 0's and this \
             process now runs as uid 65534, which may not remove it from its directory)",
            socket.display()
        )),
        "{log}"
    );
    // The service's user is told exactly what happened and what to do.
    let cli = Command::new(support::built("manhole-cli"))
        .arg(app.pid.to_string())
        .arg("info")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run manhole-cli");
    let said = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&format!(
            "the socket belongs to uid 0 but process {} now runs as uid 65534 (it dropped privileges",
            app.pid
        )) && said.contains(&format!("sudo manhole-cli {}", app.pid)),
        "{said}"
    );
    // Root can still connect, and the session works.
    let seen = connect_as(0, &socket);
    assert!(seen.contains("Type \"help\" for commands."), "{seen}");
    assert_eq!(app.ask("exit"), "exiting");
    assert!(app.finish().success());
    let log = app.stderr();
    assert!(!log.contains("Cleaned up."), "{log}");
    assert!(
        log.trim_end()
            .ends_with(&format!("Not cleaned up: the socket stays behind: cannot remove {}: Operation not permitted (os error 1) (the socket is uid 0's and this process now runs as uid 65534, which may not remove it from its directory)", socket.display())),
        "{log}"
    );
    assert!(socket.exists());
    std::fs::remove_file(&socket).unwrap();
}
