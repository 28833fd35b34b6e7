//! Real clients against a real program: socat and nc against the quickstart example. (The
//! bundled manhole-cli is tested in its own package, where cargo builds it for its tests.)

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use support::{PATIENCE, built};

/// The quickstart example, running until it is told to stop.
struct Quickstart {
    child: Child,
    /// Kept open: the example prints on, and a closed pipe would make its println! panic.
    _stdout: BufReader<std::process::ChildStdout>,
    pid: u32,
    socket: PathBuf,
}

impl Quickstart {
    fn start() -> Quickstart {
        let mut child = Command::new(built("examples/quickstart"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the quickstart example");
        let pid = child.id();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let expected = format!("quickstart: pid {pid}, manhole listening at /tmp/manhole-{pid}\n");
        assert_eq!(first, expected);
        Quickstart {
            child,
            _stdout: stdout,
            pid,
            socket: PathBuf::from(format!("/tmp/manhole-{pid}")),
        }
    }

    /// Presses Enter, as the quickstart asks, and checks it cleaned up.
    fn stop(mut self) {
        self.child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        assert!(!self.socket.exists(), "the socket is removed at exit");
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {tool} is not installed (.ci/run installs it)");
    }
    found
}

/// Runs a client with `input` on its stdin and returns what it printed.
fn run_client(command: &mut Command, input: &str) -> (std::process::ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let pid = child.id();
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        // A client that hangs must fail the test, not the CI run. A hung child is unreaped, so
        // the pid is still ours; a finished one sends `finished` right after being reaped.
        if watch.recv_timeout(PATIENCE).is_err() {
            // SAFETY: kill has no memory preconditions; the child is still ours (unreaped).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = finished.send(());
    guard.join().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_full_session(output: &str, pid: u32) {
    assert!(
        output.starts_with(&format!("######### ProcessID={pid}, ThreadID=")),
        "{output}"
    );
    for thread in [
        "\"main\"",
        "\"cruncher\"",
        "\"flusher\"",
        "\"job-waiter\"",
        "\"ingest\"",
        "\"manhole\"",
    ] {
        assert!(
            output.contains(&format!(" {thread} (")),
            "{thread} missing:\n{output}"
        );
    }
    // Every header says why the thread is there.
    assert!(
        output
            .lines()
            .any(|l| l.contains("\"flusher\" (sleeping") && l.contains(" sleep)):")),
        "{output}"
    );
    assert!(
        output.contains("nanosleep"),
        "the flusher sleeps in nanosleep:\n{output}"
    );
    assert!(
        output.contains("\"ingest\" (reading fd ") && output.contains(" (pipe:["),
        "{output}"
    );
    assert!(output.contains("Type \"help\" for commands.\n>>> "), "{output}");
    assert!(
        output.contains("\n  info ") && output.contains("pid, exe, uptime"),
        "help was answered:\n{output}"
    );
    assert!(
        output.contains(&format!("pid         {pid} (parent")),
        "info was answered:\n{output}"
    );
}

#[test]
fn socat_session_against_the_quickstart() {
    if !installed("socat") {
        return;
    }
    let quickstart = Quickstart::start();
    let target = format!("UNIX-CONNECT:{}", quickstart.socket.display());
    // -t: how long socat keeps reading after its stdin ends (0.5 s by default); the first dump
    // of a fresh debug build can take longer than that.
    let (status, out, err) = run_client(
        Command::new("socat").args(["-t", "10", "-", &target]),
        "help\ninfo\nquit\n",
    );
    assert!(status.success(), "socat failed: {err}");
    assert_full_session(&out, quickstart.pid);
    quickstart.stop();
}

#[test]
fn nc_session_against_the_quickstart() {
    if !installed("nc") {
        return;
    }
    let quickstart = Quickstart::start();
    let (status, out, err) = run_client(
        Command::new("nc").args(["-U", quickstart.socket.to_str().unwrap()]),
        "help\ninfo\nquit\n",
    );
    assert!(status.success(), "nc failed: {err}");
    assert_full_session(&out, quickstart.pid);
    quickstart.stop();
}
