//! Another user is refused before a byte is written, and the service goes on.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use support::{App, Client, PATIENCE, testapp, unique_socket, wait_until};

const NOBODY: u32 = 65534;

#[test]
fn a_peer_with_another_uid_is_refused_and_the_next_session_works() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: changing to another uid needs root");
        return;
    }
    let mut app = App::serve(&["--socket", unique_socket("peer").to_str().unwrap()]);
    // Let the other user reach the socket at all, so that only the credential check stands.
    std::fs::set_permissions(&app.socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the client that the other user may execute, wherever the build tree lives.
    let dir = std::env::temp_dir().join(format!("mh-test-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = dir.join("manhole-testapp");
    std::fs::copy(testapp(), &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = Command::new(&client)
        .args(["connect", app.socket.to_str().unwrap()])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        seen, "manhole: access denied (uid 65534 is not 0 or root)\n",
        "exactly one line, then EOF"
    );

    assert!(
        wait_until(PATIENCE, || app.stderr().contains("Refused connection on fd:")),
        "refusal logged:\n{}",
        app.stderr()
    );
    let log = app.stderr();
    let refusal = log.lines().find(|l| l.contains("Refused connection")).unwrap();
    assert!(
        refusal.ends_with(&format!("UID:{NOBODY} GID:{NOBODY}: not EUID:0 or ROOT")),
        "{refusal}"
    );

    assert!(app.is_alive());
    let mut next = Client::connect(&app.socket);
    next.opening();
    assert!(next.command("info").starts_with("pid "));
}
