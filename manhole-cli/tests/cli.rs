//! manhole-cli against a manhole hosted by this very test process (its own test binary, so the
//! install cannot race other tests): by pid, by path, and every exit code it can show here.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Installs manhole in this process once, at its default path.
fn host() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let handle = manhole::install(manhole::Options::new().verbose(false)).expect("install");
        handle.socket_path().expect("listening")
    })
}

/// Runs the client with `input` on stdin; kills it if it hangs.
fn run(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_manhole-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start manhole-cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let pid = child.id();
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(20)).is_err() {
            // SAFETY: the child is still unreaped (wait_with_output has not returned).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = finished.send(());
    guard.join().expect("guard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn by_pid_and_by_path() {
    let path = host();
    let me = std::process::id();
    let (code, out, _) = run(&[&me.to_string()], "info\nquit\n");
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("(pid {me})")) && out.contains("\nsocket      "),
        "{out}"
    );
    let (code, out, _) = run(&[path.to_str().unwrap()], "info\n");
    assert_eq!(code, Some(0), "EOF on stdin ends the session normally");
    assert!(out.contains(&format!("socket      {}", path.display())), "{out}");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    host();
    let (code, _, err) = run(&[], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("usage: manhole-cli PID|PATH"), "{err}");

    let (code, _, err) = run(&["not-a-pid"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("\"not-a-pid\" is neither a PID"), "{err}");

    let missing = std::env::temp_dir().join(format!("mh-cli-missing-{}", std::process::id()));
    let (code, _, err) = run(&[missing.to_str().unwrap()], "");
    assert_eq!(code, Some(3));
    assert!(err.contains("no such socket"), "{err}");

    // A socket nobody listens on any more: what a killed process leaves.
    let stale = std::env::temp_dir().join(format!("mh-cli-stale-{}", std::process::id()));
    let _ = std::fs::remove_file(&stale);
    drop(UnixListener::bind(&stale).expect("bind"));
    let (code, _, err) = run(&[stale.to_str().unwrap()], "");
    assert_eq!(code, Some(3));
    assert!(err.contains("a stale socket"), "{err}");
    std::fs::remove_file(&stale).expect("remove");

    let (code, out, _) = run(&["--help"], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("exit status:"), "{out}");
}
