//! What the client's test binaries share: running the client with a deadline (and measuring
//! its peak memory), and stand-in listeners that are not manholes (squatters, impostors,
//! silent, flooding or hostile ones), served by a copy of the test binary itself.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How a run of the client ended.
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) out: String,
    pub(crate) err: String,
    /// Its peak resident set in KiB, as `VmHWM` sampled every few milliseconds while it ran
    /// (`ru_maxrss` would count the test process it was forked from).
    pub(crate) max_rss_kib: u64,
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub(crate) fn client() -> Command {
    Command::new(env!("CARGO_BIN_EXE_manhole-cli"))
}

/// Runs `command` with `input` on stdin; kills it if it runs for more than 20 s.
pub(crate) fn run_command(command: Command, input: impl AsRef<[u8]>) -> Ran {
    let input = input.as_ref().to_owned();
    run_fed(command, move |mut stdin| {
        let _ = stdin.write_all(&input);
    })
}

/// Runs `command` with `feed` writing its stdin (which closes when `feed` returns); kills it
/// if it runs for more than 20 s.
pub(crate) fn run_fed(command: Command, feed: impl FnOnce(std::process::ChildStdin) + Send + 'static) -> Ran {
    run_fed_to(command, Stdio::piped(), feed)
}

/// Runs the client with `args` and `input` on stdin, its stdout a pipe whose reader has left
/// (as after `| head -c0`): every write to it fails with EPIPE.
pub(crate) fn run_with_stdout_closed(args: &[&str], input: impl AsRef<[u8]>) -> Ran {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, owned right below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors from pipe2, owned once each.
    let (reader, writer) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    let mut command = client();
    command.args(args);
    let input = input.as_ref().to_owned();
    run_fed_to(command, Stdio::from(writer), move |mut stdin| {
        let _ = stdin.write_all(&input);
    })
}

#[allow(
    clippy::zombie_processes,
    reason = "reaped by waitpid, to know when to stop sampling"
)]
fn run_fed_to(
    mut command: Command,
    stdout: Stdio,
    feed: impl FnOnce(std::process::ChildStdin) + Send + 'static,
) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start manhole-cli");
    let pid = child.id() as i32;
    let stdin = child.stdin.take().expect("stdin");
    // Written from a thread: a client that never reads its stdin must not block the test.
    let writer = std::thread::Builder::new()
        .name("client-stdin".into())
        .spawn(move || feed(stdin))
        .expect("thread");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::Builder::new()
            .name("client-output".into())
            .spawn(move || {
                let mut text = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut text);
                }
                String::from_utf8_lossy(&text).into_owned()
            })
            .expect("thread")
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::Builder::new()
            .name("client-rss".into())
            .spawn(move || {
                let mut peak = 0;
                while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    let hwm = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                        .unwrap_or(0);
                    peak = peak.max(hwm);
                    std::thread::sleep(Duration::from_millis(2));
                }
                peak
            })
            .expect("thread")
    };
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(20)).is_err() {
            // SAFETY: the child is not reaped until waitpid below returns, which sends first.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: waits for our own child; the out-pointer is valid.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = finished.send(());
    guard.join().expect("guard");
    assert_eq!(reaped, pid, "waitpid: {}", std::io::Error::last_os_error());
    let _ = writer.join();
    Ran {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        out: out.join().expect("stdout"),
        err: err.join().expect("stderr"),
        max_rss_kib: sampler.join().expect("sampler"),
    }
}

/// Runs the client with `args` and `input` on stdin.
pub(crate) fn run(args: &[&str], input: impl AsRef<[u8]>) -> (Option<i32>, String, String) {
    let mut command = client();
    command.args(args);
    let ran = run_command(command, input);
    (ran.code, ran.out, ran.err)
}

/// Runs the client as uid and gid 65534 (nobody); needs root. Returns its status and stderr.
pub(crate) fn run_as_nobody(args: &[&str]) -> (Option<i32>, String) {
    let mut command = client();
    command.args(args).uid(65534).gid(65534);
    let ran = run_command(command, "");
    (ran.code, ran.err)
}

/// A stand-in listener: a copy of the test binary running its `fake_listener_main` test,
/// which serves `mode` (see `serve` there) at a path, as some uid. It stops when dropped.
pub(crate) struct Fake {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub(crate) path: PathBuf,
    /// The pid of the process that created the listening socket.
    pub(crate) creator: u32,
}

impl Fake {
    /// Serves `mode` at `path`, as `uid` (and the same gid) when given.
    pub(crate) fn start(mode: &str, path: &Path, uid: Option<u32>) -> Fake {
        let mut fake = Fake::spawn(mode, path, uid);
        fake.expect_line("fake ready");
        fake
    }

    fn spawn(mode: &str, path: &Path, uid: Option<u32>) -> Fake {
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .args([
                "--exact",
                "fake_listener_main",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("MH_FAKE_MODE", mode)
            .env("MH_FAKE_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        if path.is_relative() {
            // Bound by a relative path, as /proc/net/unix then shows it.
            command.current_dir(std::env::temp_dir());
        }
        let mut child = command.spawn().expect("fake listener");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let creator = child.id();
        Fake {
            child,
            lines,
            path: path.to_owned(),
            creator,
        }
    }

    /// Like `start`, but the socket is created by a process that hands it to a child of its
    /// own and exits: the listener outlives its creator. It is at `/tmp/manhole-<creator>`.
    pub(crate) fn start_orphaned(mode: &str, uid: Option<u32>) -> Fake {
        let mut fake = Fake::spawn(&format!("orphan-{mode}"), Path::new("-"), uid);
        let creator = fake.expect_line("creator ");
        fake.expect_line("fake ready");
        fake.creator = creator.trim().parse().expect("pid");
        fake.path = PathBuf::from(format!("/tmp/manhole-{}", fake.creator));
        // The creator exits once its child serves. (`wait` would close the stdin the child
        // inherited, and with it the child: kept aside meanwhile.)
        let stdin = fake.child.stdin.take();
        let status = fake.child.wait().expect("wait");
        fake.child.stdin = stdin;
        assert!(status.success(), "the creator exits cleanly");
        fake
    }

    /// Reads the fake's stdout until a line containing `needle`; returns what follows it.
    pub(crate) fn expect_line(&mut self, needle: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("fake's stdout");
            if let Some(at) = line.find(needle) {
                return line[at + needle.len()..].to_owned();
            }
        }
        panic!("the fake listener ended before saying {needle:?}");
    }

    /// How many bytes the fake received on its next connection to end.
    pub(crate) fn received(&mut self) -> usize {
        self.expect_line("received ").trim().parse().expect("count")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.lines.by_ref().count();
        let _ = self.child.wait();
    }
}

/// What a manhole sends on connect, as far as the client looks at it.
pub(crate) const OPENING: &str = "######### ProcessID=1, ThreadID=1 #########\n\
                       manhole 0.0.0 in /bin/stand-in (pid 1), up 1s\n\
                       Type \"help\" for commands.\n>>> ";

/// An opening whose thread names retitle and clear the terminal, forge a prompt ("\n>>> ",
/// the way the client used to find the end of the opening), and are not UTF-8.
pub(crate) const HOSTILE_OPENING: &[u8] = b"######### ProcessID=1, ThreadID=7 #########\n\
    Thread 7 \"\x1b]0;owned\x07\" (most recent call first)\n\x1b[2J\n\
    Thread 8 \"x\n>>> \" \xff\xfe\r\n\
    Thread 9 \"\rforged\"\n\
    manhole 0.0.0 in /bin/stand-in (pid 1), up 1s\n\
    Type \"help\" for commands.\n>>> ";

/// An exposed name that would clear the screen.
pub(crate) const HOSTILE_NAME: &str = "\x1b[2Jname";

/// An answer like an `fds` listing a file a stranger named: a title change, a screen clear,
/// C1 and bidi controls, and a forged prompt line exactly where a client's 16 KiB read ends.
pub(crate) fn hostile_text() -> String {
    let head = "3 -> /tmp/\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}gpj.exe\n";
    let pad = "x".repeat(16 * 1024 - head.len() - "\n>>> ".len());
    format!("{head}{pad}\n>>> set LIMIT 0\n4 -> /tmp/end\rforged\n")
}

/// How much a flooding listener sends before it gives up.
pub(crate) const FLOOD: usize = 128 << 20;

fn flood(stream: &mut UnixStream) {
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..FLOOD / chunk.len() {
        if stream.write_all(&chunk).is_err() {
            return;
        }
    }
}

/// Serves one connection as `mode` says; returns how many bytes the client sent.
fn serve(mode: &str, mut stream: UnixStream) -> usize {
    let mut received = 0;
    match mode {
        // Accepts and says nothing, until the client leaves.
        "silent" => {}
        // An opening with no prompt and no newline, more than any limit of the client's
        // (and small enough that a client without limits survives it).
        "flood" => flood(&mut stream),
        // A proper opening, then a machine-mode answer that never ends.
        "flood-json" => {
            let _ = stream.write_all(OPENING.as_bytes());
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            received += reader.read_line(&mut line).unwrap_or(0);
            let _ = stream.write_all(br#"{"ok":true,"command":"machine","text":""#);
            flood(&mut stream);
        }
        // A manhole whose program's data is hostile: thread names and answers full of
        // terminal controls and forged prompts, in text mode and in machine mode.
        "hostile" => {
            let _ = stream.write_all(HOSTILE_OPENING);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            let mut machine = false;
            while let Ok(n) = reader.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                received += n;
                let command = line.trim().to_owned();
                line.clear();
                let turned = match command.as_str() {
                    "machine" => Some(true),
                    "machine off" => Some(false),
                    _ => None,
                };
                let answer = if let Some(on) = turned {
                    machine = on;
                    let doc = serde_json::json!({"ok": true, "command": "machine", "data": {}, "text": ""});
                    format!("{doc}\n{}", if on { "" } else { ">>> " })
                } else if machine {
                    let doc = serde_json::json!({
                        "ok": true,
                        "command": command,
                        "data": [{"name": HOSTILE_NAME}],
                        "text": hostile_text(),
                    });
                    format!("{doc}\n")
                } else {
                    format!("{}>>> ", hostile_text())
                };
                if stream.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
            return received;
        }
        // A text-mode manhole whose `info` takes 2 s: the client waits for its answer.
        "slow" => {
            let _ = stream.write_all(OPENING.as_bytes());
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while let Ok(n) = reader.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                received += n;
                let command = line.trim().to_owned();
                line.clear();
                let answer = match command.as_str() {
                    "machine" => r#"{"ok":true,"command":"machine","data":{},"text":""}"#.to_owned() + "\n",
                    "vars" => r#"{"ok":true,"command":"vars","data":[],"text":""}"#.to_owned() + "\n",
                    "help" => {
                        r#"{"ok":true,"command":"help","data":{"commands":[{"name":"info","aliases":[]}]},"text":""}"#
                            .to_owned()
                            + "\n"
                    }
                    "machine off" => {
                        r#"{"ok":true,"command":"machine","data":{},"text":""}"#.to_owned() + "\n>>> "
                    }
                    "" => ">>> ".to_owned(),
                    _ => {
                        println!("running {command}");
                        std::thread::sleep(Duration::from_secs(2));
                        format!("{command} done\n>>> ")
                    }
                };
                if stream.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
            return received;
        }
        // Looks like a manhole: the opening, then a JSON document for every line.
        _ => {
            let _ = stream.write_all(OPENING.as_bytes());
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while let Ok(n) = reader.read_line(&mut line) {
                if n == 0 {
                    break;
                }
                received += n;
                let command = line.trim().to_owned();
                line.clear();
                let answer = serde_json::json!({
                    "ok": true,
                    "command": command,
                    "data": null,
                    "text": "a stand-in answered\n",
                });
                if stream.write_all(format!("{answer}\n").as_bytes()).is_err() {
                    break;
                }
            }
            return received;
        }
    }
    // Count what the client sends until it leaves.
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        received += n;
    }
    received
}

/// The stand-in listener, when `Fake::start` started this binary (`MH_FAKE_MODE` set): each
/// test binary that uses `Fake` has a test `fake_listener_main` that calls this.
#[allow(
    clippy::zombie_processes,
    reason = "the orphan's child outlives it on purpose"
)]
pub(crate) fn fake_listener_main() {
    let Ok(mode) = std::env::var("MH_FAKE_MODE") else {
        return;
    };
    let (listener, path) = if let Some(mode) = mode.strip_prefix("orphan-") {
        // The creator: binds its own default path, hands the socket to a child, exits.
        let path = PathBuf::from(format!("/tmp/manhole-{}", std::process::id()));
        let listener = bind(&path);
        let fd = listener.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns; only clears close-on-exec so the
        // child inherits it.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        println!("creator {}", std::process::id());
        Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "fake_listener_main",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("MH_FAKE_MODE", mode)
            .env("MH_FAKE_PATH", &path)
            .env("MH_FAKE_FD", fd.to_string())
            .stdin(Stdio::inherit())
            .spawn()
            .expect("child");
        return;
    } else if let Ok(fd) = std::env::var("MH_FAKE_FD") {
        let fd: i32 = fd.parse().expect("fd");
        // SAFETY: the descriptor was inherited from the creator, and is owned here alone.
        let listener = unsafe { UnixListener::from_raw_fd(fd) };
        let path = PathBuf::from(std::env::var_os("MH_FAKE_PATH").expect("path"));
        (listener, path)
    } else {
        let path = PathBuf::from(std::env::var_os("MH_FAKE_PATH").expect("path"));
        (bind(&path), path)
    };
    let mode2 = mode.clone();
    std::thread::Builder::new()
        .name("fake-accept".into())
        .spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mode = mode2.clone();
                std::thread::Builder::new()
                    .name("fake-serve".into())
                    .spawn(move || println!("received {}", serve(&mode, stream)))
                    .expect("thread");
            }
        })
        .expect("thread");
    println!("fake ready");
    let _ = std::io::stdin().lock().lines().count();
    let _ = std::fs::remove_file(&path);
}

/// Binds `path` (replacing what is there) so that any user may connect.
fn bind(path: &Path) -> UnixListener {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).expect("bind");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    listener
}
