//! The programs in `examples/`, used as their header comments tell a user to: start one, wait
//! for its first line, do what a user would (send the signal, touch the trigger file, connect,
//! run a command or two and read the answer), then close its stdin and check that it exits 0
//! and leaves no socket behind.
//!
//! `cargo test` builds the examples; `cargo test --test examples` alone does not, so run
//! `cargo build --examples` first then (a binary older than its source is refused).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use support::{Client, built, unique_socket, wait_until};

/// The longest any one wait may take: far more than a loaded 2-core machine needs.
const WAIT: Duration = Duration::from_secs(10);

/// A running example.
struct Example {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line, read on a thread so that the example never blocks on a full
    /// pipe and a test never waits forever for a line.
    lines: Receiver<String>,
    pid: u32,
    /// Where it listens: `/tmp/manhole-<pid>` unless a test says otherwise.
    socket: PathBuf,
    stderr_file: PathBuf,
}

impl Example {
    /// Starts `examples/NAME ARGS…` with its stdin, stdout and stderr in the test's hands.
    fn start(name: &'static str, args: &[&str]) -> Example {
        let binary = built(&format!("examples/{name}"));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        assert!(
            modified(&binary) >= modified(&source),
            "{} is older than {}: run cargo build --examples (or cargo test, which builds them)",
            binary.display(),
            source.display()
        );
        let stderr_file =
            std::env::temp_dir().join(format!("mh-test-{}-example-{name}.stderr", std::process::id()));
        let stderr = std::fs::File::create(&stderr_file).expect("stderr file");
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} example: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Example {
            name,
            pid: child.id(),
            socket: default_socket(child.id()),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr_file,
        }
    }

    /// The next line it prints.
    fn line(&self) -> String {
        self.lines.recv_timeout(WAIT).unwrap_or_else(|e| {
            panic!(
                "{}: no line from the example ({e}); its stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    /// Checks the first line, the one a test (or a script) waits for; `{pid}` and `{socket}` in
    /// `expected` stand for the example's.
    fn expect_first_line(&self, expected: &str) {
        let expected = expected
            .replace("{pid}", &self.pid.to_string())
            .replace("{socket}", &self.socket.display().to_string());
        assert_eq!(self.line(), expected, "{}: stderr:\n{}", self.name, self.stderr());
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: sends a signal to this test's own child process.
        assert_eq!(unsafe { libc::kill(self.pid as libc::pid_t, signal) }, 0);
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it wrote to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Closes its stdin, as Enter or Ctrl-D would stop it; checks that it exits 0 and that its
    /// socket is gone. Returns the lines it printed after the ones already read.
    fn stop(&mut self) -> Vec<String> {
        drop(self.stdin.take());
        let mut status = None;
        let exited = wait_until(WAIT, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(exited, "{}: did not stop when its stdin closed", self.name);
        let status = status.expect("exit status");
        assert!(
            status.success(),
            "{}: {status}; stderr:\n{}",
            self.name,
            self.stderr()
        );
        assert!(
            !self.socket.exists(),
            "{}: {} is left behind",
            self.name,
            self.socket.display()
        );
        // The process is gone: what is left to read ends at EOF (or, for the forking server,
        // when its reaped workers' copies of the pipe are closed, which already happened).
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            rest.push(line);
        }
        rest
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_file);
        // SIGKILL (after a failed assertion) leaves these behind.
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(format!("/tmp/manhole-trigger-{}", self.pid));
    }
}

fn default_socket(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/manhole-{pid}"))
}

/// A reply that is one number.
fn number(reply: &str) -> u64 {
    reply
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {reply:?}"))
}

/// Whether a dump shows the thread named `name`; asked again while it does not, since a thread
/// just spawned may not have named itself yet.
fn shows_thread(client: &mut Client, name: &str) -> bool {
    wait_until(WAIT, || {
        client
            .command(&format!("stacks {name}"))
            .contains(&format!("\"{name}\""))
    })
}

/// The line of `text` that starts with `word` and a space, or nothing.
fn row<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    text.lines().find(|l| l.split_whitespace().next() == Some(word))
}

/// builder: a custom socket path, the locals in `vars` and `print`, max_sessions in `info`,
/// the program's stderr reaching the session, and a session open while it stops.
#[test]
fn builder_installs_with_options_and_shows_its_locals() {
    let socket = unique_socket("builder");
    let mut example = Example::start("builder", &[socket.to_str().expect("UTF-8 path")]);
    example.socket.clone_from(&socket);
    example.expect_first_line("builder: pid {pid}, manhole listening at {socket}");
    let mut client = Client::connect(&socket);
    let mut seen = client.opening();
    assert!(seen.contains(&format!("ProcessID={},", example.pid)), "{seen}");
    assert!(shows_thread(&mut client, "worker-0") && shows_thread(&mut client, "reporter"));

    let vars = client.command("vars");
    for name in ["config", "stats", "recent"] {
        let line = row(&vars, name).unwrap_or_else(|| panic!("{name} is not listed:\n{vars}"));
        assert!(line.contains("local"), "{vars}");
    }
    seen.push_str(&vars);
    let config = client.command("print config");
    // (Contains, not starts with: the program's stderr may arrive in the middle.)
    assert!(
        config.contains("Config {") && config.contains("\"db-primary:5432\""),
        "{config}"
    );
    seen.push_str(&config);
    let requests = |client: &mut Client| {
        let stats = client.command("print stats");
        let line = stats
            .lines()
            .find_map(|l| l.trim().strip_prefix("requests: "))
            .unwrap_or_else(|| panic!("{stats}"));
        number(line.trim_end_matches(','))
    };
    assert!(
        wait_until(WAIT, || requests(&mut client) > 0),
        "the workers serve"
    );
    let recent = client.command("print recent");
    assert!(recent.contains("worker-"), "recent requests are shown:\n{recent}");
    seen.push_str(&recent);
    let info = client.command("info");
    assert!(info.contains("sessions    1 open (at most 4)"), "{info}");
    assert!(
        info.contains(&format!("socket      {}", socket.display())),
        "{info}"
    );
    seen.push_str(&info);

    // redirect_stderr: the reporter's line, written to stderr every 3 s, reaches the session
    // (perhaps already, in the middle of a reply).
    if !seen.contains("errors so far") {
        client.read_until("errors so far");
    }
    // daemon_connection(true): stopping does not wait for the open session.
    example.stop();
    client.read_to_end();
}

/// activate_on_signal: no socket before SIGUSR1, a session after it, and more SIGUSR1s are
/// harmless.
#[test]
fn activate_on_signal_listens_after_sigusr1() {
    let mut example = Example::start("activate_on_signal", &[]);
    let pid = example.pid;
    let socket = example.socket.clone();
    example.expect_first_line(
        "activate_on_signal: pid {pid}, manhole dormant until SIGUSR1, then listening at {socket}",
    );
    assert!(!socket.exists(), "dormant: no socket before the signal");

    example.signal(libc::SIGUSR1);
    // The socket file appears at bind, a moment before listen(2): wait until it accepts.
    assert!(
        wait_until(WAIT, || std::os::unix::net::UnixStream::connect(&socket).is_ok()),
        "listening after SIGUSR1"
    );
    let mut client = Client::connect(&socket);
    client.opening();
    assert!(shows_thread(&mut client, "heartbeat"));
    assert!(
        wait_until(WAIT, || number(&client.command("print HEARTBEATS")) > 0),
        "the heartbeat thread runs"
    );

    example.signal(libc::SIGUSR1);
    example.signal(libc::SIGUSR1);
    assert!(client.command("info").starts_with(&format!("pid         {pid} ")));
    assert!(example.is_alive(), "more signals are harmless");
    Client::connect(&socket).opening();
    client.send(b"quit\n");
    client.read_to_end();

    let rest = example.stop();
    assert!(
        rest.last()
            .is_some_and(|l| l.ends_with("manhole was listening; bye")),
        "{rest:?}"
    );
}

/// oneshot: each SIGUSR2 opens the socket for one session, which removes it.
#[test]
fn oneshot_serves_one_session_per_sigusr2() {
    let mut example = Example::start("oneshot", &[]);
    let socket = example.socket.clone();
    example.expect_first_line("oneshot: pid {pid}, manhole opens {socket} for one session on each SIGUSR2");
    assert!(!socket.exists());
    let mut done = 0;
    for round in 0..2 {
        example.signal(libc::SIGUSR2);
        assert!(
            wait_until(WAIT, || socket.exists()),
            "round {round}: the socket appears"
        );
        let mut client = Client::connect(&socket);
        client.opening();
        assert!(
            wait_until(WAIT, || !socket.exists()),
            "round {round}: the socket goes once the client is in"
        );
        assert!(
            wait_until(WAIT, || number(&client.command("print JOBS_DONE")) > done),
            "round {round}: the worker goes on"
        );
        done = number(&client.command("JOBS_DONE"));
        client.send(b"quit\n");
        client.read_to_end();
    }
    example.stop();
}

/// forking_server: every worker gets its own manhole after the delay, with its own statics;
/// stopping the parent stops, reaps and cleans up after every worker.
#[test]
fn forking_server_gives_each_worker_its_own_manhole() {
    let mut example = Example::start("forking_server", &["2"]);
    let pid = example.pid;
    let socket = example.socket.clone();
    example.expect_first_line("forking_server: pid {pid}, manhole listening at {socket}");
    let mut workers = Workers(Vec::new());
    for index in 0..2 {
        let line = example.line();
        let child: u32 = line
            .strip_prefix(&format!("worker {index}: pid "))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            line,
            format!("worker {index}: pid {child}, manhole at /tmp/manhole-{child} after 500 ms")
        );
        workers.0.push(child);
    }
    for (index, &child) in workers.0.iter().enumerate() {
        let child_socket = default_socket(child);
        assert!(
            wait_until(WAIT, || child_socket.exists()),
            "worker {index} gets its manhole after the delay"
        );
        let mut client = Client::connect(&child_socket);
        let opening = client.opening();
        assert!(opening.contains(&format!("ProcessID={child},")), "{opening}");
        assert_eq!(client.command("print WORKER"), format!("{index}\n"));
        assert!(
            client
                .command("info")
                .starts_with(&format!("pid         {child} (parent {pid})"))
        );
        assert!(
            wait_until(WAIT, || number(&client.command("print REQUESTS")) > 0),
            "worker {index} serves"
        );
    }
    let mut parent = Client::connect(&socket);
    assert!(parent.opening().contains(&format!("(pid {pid})")));
    assert_eq!(parent.command("print WORKER"), "-1\n", "the parent is no worker");
    parent.send(b"quit\n");
    parent.read_to_end();

    let rest = example.stop();
    for &child in &workers.0 {
        let said = format!("worker pid {child}: stopped by signal {}", libc::SIGTERM);
        assert!(rest.contains(&said), "{said:?} in {rest:?}");
        assert!(!default_socket(child).exists(), "a worker's socket goes with it");
    }
    workers.0.clear(); // reaped by the example: nothing left to clean up
}

/// The forking server's workers, killed if a test fails before the example reaped them.
struct Workers(Vec<u32>);

impl Drop for Workers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: signals a worker of this test's example that was not reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = std::fs::remove_file(default_socket(pid));
        }
    }
}

/// tokio_app: `#[manhole::main]` with `#[tokio::main]`; the runtime's threads in the dump, a
/// setting changed, and a console call that spawns work onto the runtime.
#[test]
fn tokio_app_serves_from_a_tokio_runtime() {
    let mut example = Example::start("tokio_app", &[]);
    let socket = example.socket.clone();
    example.expect_first_line("tokio_app: pid {pid}, manhole listening at {socket}");
    let mut client = Client::connect(&socket);
    let opening = client.opening();
    assert!(
        opening.contains("tokio_app::main") && opening.contains("tokio::runtime::"),
        "{opening}"
    );
    assert!(
        wait_until(WAIT, || number(&client.command("print TICKS")) > 0),
        "the timer task runs"
    );
    assert_eq!(client.command("set JOB_MS 1"), "JOB_MS: 20 -> 1\n");
    let before = number(&client.command("print JOBS_DONE"));
    let queued = client.command("call burst 1000");
    assert!(queued.starts_with("\"queued 1000 jobs, "), "{queued}");
    // The producer alone makes 20 jobs a second: only the burst gets there within the wait.
    assert!(
        wait_until(WAIT, || number(&client.command("print JOBS_DONE"))
            >= before + 1000),
        "the jobs spawned from the console ran on the runtime"
    );
    client.send(b"quit\n");
    client.read_to_end();
    example.stop();
}

/// file_trigger: manual mode; each trigger file buys one session, and a pending one is
/// cleaned up at exit.
#[test]
fn file_trigger_opens_one_session_per_touch() {
    let mut example = Example::start("file_trigger", &[]);
    let pid = example.pid;
    let socket = example.socket.clone();
    let trigger = PathBuf::from(format!("/tmp/manhole-trigger-{pid}"));
    example.expect_first_line(&format!(
        "file_trigger: pid {{pid}}, manhole at {{socket}} for one session each time {} appears",
        trigger.display()
    ));
    assert!(!socket.exists(), "manual mode: nothing listens yet");
    for round in 1..=2 {
        std::fs::write(&trigger, b"").expect("touch the trigger file");
        assert!(
            wait_until(WAIT, || socket.exists()),
            "round {round}: the socket appears"
        );
        assert!(!trigger.exists(), "round {round}: the trigger file was taken");
        // Skip the connect instructions printed after the first line.
        let said = format!(
            "file_trigger: trigger seen, connect to {} within 30 s",
            socket.display()
        );
        while example.line() != said {}
        let mut client = Client::connect(&socket);
        assert!(client.opening().contains("\"trigger-watcher\""));
        assert!(
            wait_until(WAIT, || !socket.exists()),
            "round {round}: one session only"
        );
        assert_eq!(client.command("print TRIGGERS"), format!("{round}\n"));
        client.send(b"quit\n");
        client.read_to_end();
    }
    // A third touch nobody answers: the waiting socket is removed when the program stops.
    std::fs::write(&trigger, b"").expect("touch the trigger file");
    assert!(wait_until(WAIT, || socket.exists()));
    let rest = example.stop();
    assert!(!trigger.exists());
    assert_eq!(
        rest.last().map(String::as_str),
        Some("file_trigger: 3 sessions triggered; bye")
    );
}

/// live_config: `set` and `call` change what the running service does, as its stderr shows.
#[test]
fn live_config_changes_a_running_service() {
    let mut example = Example::start("live_config", &[]);
    let socket = example.socket.clone();
    example.expect_first_line("live_config: pid {pid}, manhole listening at {socket}");
    let mut client = Client::connect(&socket);
    client.opening();
    let vars = client.command("vars");
    for name in ["RATE_PER_SEC", "MAINTENANCE", "LOG_LEVEL", "BANNER"] {
        let line = row(&vars, name).unwrap_or_else(|| panic!("{name}:\n{vars}"));
        assert!(line.contains("writable"), "{vars}");
    }
    assert!(row(&vars, "set_rate").is_some_and(|l| l.contains("(per_sec: u64) -> Result<String, String>")));

    assert!(!example.stderr().contains("Debug: "), "info level at start");
    assert_eq!(
        client.command("set LOG_LEVEL debug"),
        "LOG_LEVEL: Info -> Debug\n"
    );
    assert!(
        wait_until(WAIT, || example
            .stderr()
            .contains("[live_config] Debug: request ")),
        "debug lines once the level is debug"
    );
    assert!(
        client
            .command("set LOG_LEVEL loud")
            .starts_with("error: LOG_LEVEL: cannot parse \"loud\""),
        "a value FromStr refuses changes nothing"
    );
    assert_eq!(
        client.command("set BANNER \"eu-west canary\""),
        "BANNER: \"live_config\" -> \"eu-west canary\"\n"
    );
    assert!(
        wait_until(WAIT, || example
            .stderr()
            .contains("[eu-west canary] Debug: request ")),
        "the new banner is used"
    );

    assert_eq!(
        client.command("call set_rate 0"),
        "error: 0 requests per second is outside 1..=1000\n"
    );
    assert_eq!(client.command("RATE_PER_SEC"), "10\n");
    assert_eq!(
        client.command("call set_rate 50"),
        "\"rate 10 -> 50 per second\"\n"
    );
    assert_eq!(client.command("RATE_PER_SEC"), "50\n");

    assert_eq!(
        client.command("set MAINTENANCE true"),
        "MAINTENANCE: false -> true\n"
    );
    assert!(
        wait_until(WAIT, || number(&client.command("print REJECTED")) > 0),
        "requests are rejected in maintenance"
    );
    assert!(example.stderr().contains("rejected: maintenance"));
    let reset = client.command("call reset_counters");
    assert!(reset.starts_with("\"served "), "{reset}");
    client.send(b"quit\n");
    client.read_to_end();
    example.stop();
}

/// many_threads: 1000 threads by default, dumped in a few groups, and all of them stopped.
#[test]
fn many_threads_dumps_a_thousand_threads() {
    let mut example = Example::start("many_threads", &[]);
    let socket = example.socket.clone();
    example.expect_first_line("many_threads: pid {pid}, 1000 threads, manhole listening at {socket}");
    let mut client = Client::connect(&socket);
    let opening = client.opening();
    assert!(
        opening.contains("\"ticker-0\"") && opening.contains("many_threads::tick"),
        "{opening}"
    );
    // The 900 idle and 90 reader threads share a stack each. (Each was running when the first
    // line came, but may only be about to block: look again if a dump catches one on its way.)
    let mut dump = opening;
    let grouped = wait_until(WAIT, || {
        if dump.contains("and 899 more with this stack") && dump.contains("and 89 more with this stack") {
            return true;
        }
        dump = client.command("stacks");
        false
    });
    assert!(grouped, "{dump}");
    let info = client.command("info");
    let threads = row(&info, "threads")
        .and_then(|l| l.split_whitespace().nth(1))
        .map(number)
        .unwrap_or_else(|| panic!("{info}"));
    assert!(threads > 1000, "{info}");
    let readers = client.command("stacks reader-*");
    assert!(
        readers.contains("\"reader-")
            && readers.contains("read_until_closed")
            && !readers.contains("\"idle-"),
        "{readers}"
    );
    client.send(b"quit\n");
    client.read_to_end();
    let rest = example.stop();
    assert_eq!(
        rest.last().map(String::as_str),
        Some("many_threads: 1000 threads stopped; bye")
    );
}

/// deadlock: doctor is certain of the manhole::sync pair and only says "possible" of the std
/// pair; locks names both holders.
#[test]
fn deadlock_is_diagnosed_as_the_readme_shows() {
    let mut example = Example::start("deadlock", &[]);
    let socket = example.socket.clone();
    example.expect_first_line("deadlock: pid {pid}, manhole listening at {socket}");
    let mut client = Client::connect(&socket);
    client.opening();
    let mut doctor = String::new();
    let found = wait_until(WAIT, || {
        doctor = client.command("doctor --long 0.2");
        doctor.contains("certain  deadlock of 2 threads: ") && doctor.contains("Mutex AUDIT")
    });
    assert!(found, "{doctor}");
    let deadlock = doctor
        .lines()
        .find(|l| l.starts_with("certain  deadlock"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        deadlock.contains("\"transfer-in\"") && deadlock.contains("\"transfer-out\""),
        "{doctor}"
    );
    assert!(
        doctor.contains("waits on Mutex CHECKING at ")
            && doctor.contains("waits on Mutex SAVINGS at ")
            && doctor.contains("taken at examples/deadlock.rs:"),
        "{doctor}"
    );
    let std_pair: Vec<&str> = doctor
        .lines()
        .filter(|l| l.contains("AUDIT") || l.contains("LEDGER"))
        .collect();
    assert!(
        // (The example's file is deadlock.rs: the word itself may appear in a path.)
        std_pair.len() == 2
            && std_pair
                .iter()
                .all(|l| !l.contains("deadlock of") && !l.starts_with("certain")),
        "{doctor}"
    );
    assert!(
        doctor.contains("\npossible 2 locks that record no owner"),
        "{doctor}"
    );
    let locks = client.command("locks");
    assert!(locks.starts_with("4 locks with waiters"), "{locks}");
    assert!(
        locks.contains("Mutex CHECKING\n  held by ") && locks.contains("Mutex SAVINGS\n  held by "),
        "{locks}"
    );
    client.send(b"quit\n");
    client.read_to_end();
    example.stop();
}
