//! What the black-box tests share: the test app as a child process, a socket client that reads
//! up to the prompt, and waits with deadlines instead of sleeps.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use manhole::__private::protocol::PROMPT;
/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The test app binary (tests/support/testapp.rs).
pub fn testapp() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_manhole-testapp"))
}

/// A binary or example built into the same target directory as this test.
pub fn built(relative: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<relative>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = profile_dir.join(relative);
    assert!(
        path.exists(),
        "{} is not built; run the tests with cargo test --workspace",
        path.display()
    );
    path
}

/// A socket path no other test uses, short enough for sun_path.
pub fn unique_socket(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = PathBuf::from(format!("/tmp/mh-test-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Polls `check` until it holds or the deadline passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CPU time (user + system, in clock ticks) a thread of `pid` has used.
pub fn cpu_ticks(pid: u32, thread_name: &str) -> u64 {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim_end() == thread_name {
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
            return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        }
    }
    panic!("no thread {thread_name} in {pid}");
}

/// A running test app.
pub struct App {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub pid: u32,
    /// Where it listens (from its `ready` line).
    pub socket: PathBuf,
    stderr_file: PathBuf,
}

impl App {
    /// Starts `manhole-testapp serve ARGS…` and waits for its `ready` line.
    pub fn serve(args: &[&str]) -> App {
        Self::try_serve(args).unwrap_or_else(|line| panic!("test app did not start: {line}"))
    }

    /// Like [`App::serve`], but returns the app's first line when it is not `ready`.
    pub fn try_serve(args: &[&str]) -> Result<App, String> {
        Self::start(Command::new(testapp()).arg("serve").args(args))
    }

    pub fn start(command: &mut Command) -> Result<App, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stderr_file = std::env::temp_dir().join(format!("mh-test-{}-stderr-{n}", std::process::id()));
        let stderr = std::fs::File::create(&stderr_file).expect("stderr file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the test app");
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut app = App {
            child,
            stdin,
            stdout,
            pid,
            socket: PathBuf::new(),
            stderr_file,
        };
        let first = app.line();
        match first.strip_prefix("ready ") {
            Some(path) => {
                app.socket = PathBuf::from(path);
                Ok(app)
            }
            None => Err(first),
        }
    }

    /// The next line the app prints.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from the test app");
        line.trim_end().to_owned()
    }

    /// Sends one command to the app and returns its one-line answer.
    pub fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write to the test app");
        stdin.flush().expect("flush");
        self.line()
    }

    /// Sends one command to the app without waiting for an answer.
    pub fn ask_no_answer(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write to the test app");
        stdin.flush().expect("flush");
    }

    /// Closes the app's stdin and waits for it to exit on its own.
    pub fn finish(&mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Waits for the app to exit on its own, leaving its stdin open.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "test app did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(Iterator::count)
            .unwrap_or(0)
    }

    pub fn thread_names(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return Vec::new();
        };
        dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .map(|s| s.trim_end().to_owned())
            .collect()
    }

    pub fn thread_count(&self) -> usize {
        self.thread_names().len()
    }

    /// Everything the app wrote to stderr so far (its verbose log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Waits until its fd and thread counts are back to the given baseline.
    pub fn settles_to(&self, fds: usize, threads: usize) -> bool {
        wait_until(PATIENCE, || {
            self.fd_count() == fds && self.thread_count() == threads
        })
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_file);
        // SIGKILL leaves the socket behind; it was this test's, so it goes too.
        if !self.socket.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

/// A client of a manhole socket.
pub struct Client {
    pub stream: UnixStream,
    pending: Vec<u8>,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    /// Reads up to the first `end`; returns what came before it and keeps what came after.
    pub fn read_until(&mut self, end: &str) -> String {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(at) = self.pending.windows(end.len()).position(|w| w == end.as_bytes()) {
                let rest = self.pending.split_off(at + end.len());
                let mut text = std::mem::replace(&mut self.pending, rest);
                text.truncate(at);
                return String::from_utf8(text).expect("server sent UTF-8");
            }
            match self.stream.read(&mut buf) {
                // A read with a timeout fails with EINTR after the test process was stopped
                // and resumed (SIGSTOP/SIGCONT), even without a signal handler.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) => panic!(
                    "EOF before {end:?}; got:\n{}",
                    String::from_utf8_lossy(&self.pending)
                ),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => panic!(
                    "read failed before {end:?}: {e}; got:\n{}",
                    String::from_utf8_lossy(&self.pending)
                ),
            }
        }
    }

    /// Reads everything until the server closes the connection.
    pub fn read_to_end(&mut self) -> String {
        let mut rest = std::mem::take(&mut self.pending);
        let _ = self.stream.read_to_end(&mut rest);
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// The stack dump and banner, up to the first prompt.
    pub fn opening(&mut self) -> String {
        self.read_until(PROMPT)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends one command line and returns the reply up to the next prompt.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.read_until(PROMPT)
    }
}

/// The app's fd and thread counts with no session open, after one session has come and gone
/// (so that anything done once per process, like loading debug info, is already done).
pub fn baseline(app: &App) -> (usize, usize) {
    let mut warm = Client::connect(&app.socket);
    warm.opening();
    warm.send(b"quit\n");
    warm.read_to_end();
    assert!(
        wait_until(PATIENCE, || !app
            .thread_names()
            .iter()
            .any(|n| n == "manhole-session")),
        "the warm-up session did not end"
    );
    (app.fd_count(), app.thread_count())
}
