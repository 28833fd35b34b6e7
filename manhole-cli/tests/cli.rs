//! manhole-cli against manholes hosted by this test binary: the test process itself (always-on,
//! installed once) and, for signals, a copy of this binary started as a one-shot host.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{run, run_as_nobody};

/// Installs manhole in this process once, at its default path.
fn host() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let answer = std::sync::Arc::new(42);
        let options = manhole::Options::new()
            .verbose(false)
            .local("answer_to_everything", answer)
            .local("big_text", std::sync::Arc::new(big_text()));
        let handle = manhole::install(options).expect("install");
        handle.socket_path().expect("listening")
    })
}

/// About 18 KB of two-, three- and four-byte characters: larger than any single read, so some
/// character is bound to arrive split across two.
fn big_text() -> String {
    format!("<{}>", "é€😀".repeat(2000))
}

fn me() -> String {
    std::process::id().to_string()
}

#[test]
fn by_pid_and_by_path() {
    let path = host();
    let (code, out, _) = run(&[&me()], "info\nquit\n");
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("(pid {})", me())) && out.contains("\nsocket      "),
        "{out}"
    );
    let (code, out, _) = run(&[path.to_str().unwrap()], "info\n");
    assert_eq!(code, Some(0));
    assert!(out.contains(&format!("socket      {}", path.display())), "{out}");
}

#[test]
fn one_command_and_piped_commands_exit_with_their_status() {
    host();
    let (code, out, err) = run(&["-q", &me(), "help", "quit"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("usage: quit\n"),
        "quiet: no dump, just the answer: {out}"
    );
    let (code, _, err) = run(&[&me(), "frobnicate"], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("error: unknown command \"frobnicate\""), "{err}");
    let (code, out, err) = run(&["-q", &me()], "info\nbogus\nhelp quit\n");
    assert_eq!(code, Some(1), "one of them failed");
    assert!(
        out.contains("pid ") && out.contains("usage: quit"),
        "the others ran: {out}"
    );
    assert!(err.contains("unknown command \"bogus\""), "{err}");
}

#[test]
fn json_prints_one_document_per_command() {
    host();
    let (code, out, _) = run(&["--json", &me()], "info\nclients\n");
    assert_eq!(code, Some(0));
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(docs.len(), 2, "{out}");
    assert_eq!(docs[0]["command"], "info");
    assert_eq!(docs[1]["command"], "clients");
}

#[test]
fn exit_codes_say_what_went_wrong() {
    host();
    let (code, _, err) = run(&[], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("<PID|PATH>"), "{err}");

    let (code, _, err) = run(&["not-a-pid"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("\"not-a-pid\" is neither a PID"), "{err}");
    let (code, _, err) = run(&["-s", "USR3", &me()], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid signal \"USR3\""), "{err}");

    let missing = std::env::temp_dir().join(format!("mh-cli-missing-{}", me()));
    let (code, _, err) = run(&[missing.to_str().unwrap()], "");
    assert_eq!(code, Some(3));
    assert!(err.contains("no such socket"), "{err}");
    let (code, _, err) = run(&["-s", "CONT", "3999998"], "");
    assert_eq!(code, Some(3));
    assert!(err.contains("no process 3999998"), "{err}");

    let stale = std::env::temp_dir().join(format!("mh-cli-stale-{}", me()));
    let _ = std::fs::remove_file(&stale);
    drop(UnixListener::bind(&stale).expect("bind"));
    let (code, _, err) = run(&[stale.to_str().unwrap()], "");
    assert_eq!(code, Some(3));
    assert!(err.contains("a stale socket"), "{err}");
    std::fs::remove_file(&stale).expect("remove");

    // A process without manhole: the signal is sent, no socket ever appears.
    let mut sleeper = Command::new("sleep").arg("10").spawn().expect("sleep");
    let started = Instant::now();
    let (code, _, err) = run(&["-t", "0.5", "-s", "CONT", &sleeper.id().to_string()], "");
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("no socket appeared"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    let (code, out, _) = run(&["--help"], "");
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Exit status:") && out.contains("5  timed out"),
        "{out}"
    );
}

/// Runs as a stand-in listener when `support::Fake::start` starts this binary.
#[test]
fn fake_listener_main() {
    support::fake_listener_main();
}

/// Runs as a second host, configured by `MANHOLE_CLI_TEST_HOST` (`oneshot`: on SIGUSR2;
/// `activate`: listening from SIGUSR1 on; `one-session`: always on, one session at a time), when `other_host` starts this binary.
#[test]
fn other_host_main() {
    let options = manhole::Options::new().verbose(false);
    let options = match std::env::var("MANHOLE_CLI_TEST_HOST").as_deref() {
        Ok("oneshot") => options.oneshot_on("USR2"),
        Ok("activate") => options.activate_on("USR1"),
        Ok("one-session") => options.max_sessions(1),
        _ => return,
    };
    let _handle = manhole::install(options).expect("install");
    println!("host ready");
    let _ = std::io::stdin().lock().lines().count();
}

/// A copy of this binary hosting manhole as `kind` says; it exits when its stdin closes. Its
/// stdout is kept open for the test harness's last words.
struct OtherHost(
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
);

impl OtherHost {
    fn start(kind: &str) -> OtherHost {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--exact", "other_host_main", "--nocapture", "--test-threads", "1"])
            .env("MANHOLE_CLI_TEST_HOST", kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("host");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        assert!(lines.any(|l| l.is_ok_and(|l| l.contains("host ready"))));
        OtherHost(child, lines)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.1.by_ref().count();
        let _ = self.0.wait();
    }
}

#[test]
fn signal_then_wait_against_a_oneshot_service() {
    let host = OtherHost::start("oneshot");
    let pid = host.pid();
    let (code, out, err) = run(&["-2", "-t", "10", &pid, "info"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("pid         {pid} ")), "{out}");
}

#[test]
fn wait_for_a_socket_opened_by_someone_else() {
    let host = OtherHost::start("oneshot");
    let pid = host.pid();
    let (code, _, err) = run(&[&pid, "info"], "");
    assert_eq!(code, Some(3), "without -w a missing socket fails at once: {err}");
    // Another party opens it a little later (here a signal; a trigger file works alike).
    let raw_pid: i32 = pid.parse().expect("pid");
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on the host this test started.
        unsafe { libc::kill(raw_pid, libc::SIGUSR2) };
    });
    let (code, out, err) = run(&["-w", "-t", "10", &pid, "info"], "");
    opener.join().expect("opener");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("pid         {pid} ")), "{out}");
    let (code, _, err) = run(&["-w", "-t", "0.3", &pid, "info"], "");
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("no socket appeared"), "{err}");
}

#[test]
fn signal_then_wait_against_an_activate_on_service() {
    let host = OtherHost::start("activate");
    let pid = host.pid();
    let (code, _, err) = run(&[&pid, "info"], "");
    assert_eq!(code, Some(3), "not listening before the signal: {err}");
    let (code, out, err) = run(&["-1", &pid, "info"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("pid         {pid} ")), "{out}");
    let (code, _, err) = run(&[&pid, "info"], "");
    assert_eq!(code, Some(0), "still listening, no signal needed: {err}");
    // Once it has listened, manhole's handlers that remove the socket on death make SIGUSR2
    // look caught too; the listener's name says it is not a trigger, and the host lives.
    let (code, _, err) = run(&["-2", &pid, "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("it opens on SIGUSR1 instead"), "{err}");
    let (code, _, err) = run(&[&pid, "info"], "");
    assert_eq!(code, Some(0), "the host lives: {err}");
}

#[test]
fn a_signal_the_process_does_not_handle_is_not_sent_unless_forced() {
    use std::os::unix::process::ExitStatusExt;
    // A process without manhole: SIGUSR1 or SIGUSR2 would kill it, SIGTSTP stop it.
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let pid = sleeper.id().to_string();
    for (flag, signal, option, effect) in [
        ("-2", "SIGUSR2", "oneshot_on=USR2", "kill it"),
        ("-1", "SIGUSR1", "activate_on=USR1", "kill it"),
        (
            "-sTSTP",
            "SIGTSTP",
            "activate_on=TSTP or oneshot_on=TSTP",
            "stop (freeze) it",
        ),
    ] {
        let (code, _, err) = run(&[flag, "-t", "0.3", &pid, "info"], "");
        assert_eq!(code, Some(4), "{err}");
        assert!(
            err.contains(&format!(
                "process {pid} does not handle {signal}: sending it would {effect}; manhole is \
                 probably not configured with {option}; use --force to send anyway"
            )),
            "{err}"
        );
        assert!(
            sleeper.try_wait().expect("wait").is_none(),
            "{signal} was not sent"
        );
    }
    // An always-on manhole is not opened by SIGUSR2 (its handler there only removes the socket
    // on death): refused, saying how to connect; it goes on serving.
    let host = OtherHost::start("one-session");
    let (code, _, err) = run(&["-2", &host.pid(), "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("runs manhole, but not with oneshot_on=USR2: it is not opened by a signal"),
        "{err}"
    );
    let (code, out, err) = run(&[&host.pid(), "info"], "");
    assert_eq!(code, Some(0), "the host lives: {err}");
    assert!(out.contains(&format!("pid         {} ", host.pid())), "{out}");
    // Forced, it is sent (and does what it does).
    let (code, _, err) = run(&["--force", "-2", "-t", "0.3", &pid, "info"], "");
    assert_eq!(code, Some(5), "sent, and no socket appeared: {err}");
    assert_eq!(sleeper.wait().expect("wait").signal(), Some(libc::SIGUSR2));
}

#[test]
fn a_full_house_is_refused_with_status_4() {
    use std::io::Read;
    let host = OtherHost::start("one-session");
    let path = manhole::default_socket_path(host.0.id());
    let mut first = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let mut opening = Vec::new();
    let mut byte = [0u8; 1];
    while !opening.ends_with(b">>> ") && first.read(&mut byte).expect("read") == 1 {
        opening.push(byte[0]);
    }
    let (code, _, err) = run(&[&host.pid(), "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("too many sessions open (1)"), "{err}");
    drop(first);
}

#[test]
fn a_socket_someone_else_put_at_the_path_is_not_trusted() {
    // A squatter: this process listens where another process's manhole will be.
    let mut victim = Command::new("sleep").arg("30").spawn().expect("sleep");
    let path = manhole::default_socket_path(victim.id());
    let _ = std::fs::remove_file(&path);
    let squatter = UnixListener::bind(&path).expect("bind");
    let (code, out, err) = run(&[&victim.id().to_string(), "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!("is served by process {}", std::process::id()))
            && err.contains(&format!("not by process {}", victim.id())),
        "{err}"
    );
    assert!(out.is_empty(), "nothing was read from it: {out}");
    drop(squatter);
    let _ = std::fs::remove_file(&path);
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn a_socket_served_by_another_user_is_not_trusted() {
    if !support::is_root() {
        eprintln!("skipped: serving and connecting as two other users needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mh-cli-foreign-{}", me()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // A listener of uid 65533 that anyone may connect to, answering like a manhole.
    let mut server = support::Fake::start("mimic", &dir.join("app.sock"), Some(65533));
    let (code, err) = run_as_nobody(&[server.path.to_str().unwrap(), "info"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("of uid 65533, not by you (uid 65534) or root"),
        "{err}"
    );
    assert_eq!(server.received(), 0, "nothing was sent to it");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Held by the tests that run `list --clean`: one would remove the other's stale sockets.
static CLEANING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn list_shows_live_and_stale_manholes_and_cleans_the_stale_ones() {
    let _alone = CLEANING.lock().unwrap_or_else(|e| e.into_inner());
    let live = host();
    let stale = PathBuf::from("/tmp/manhole-3999999");
    let _ = std::fs::remove_file(&stale);
    drop(UnixListener::bind(&stale).expect("bind"));
    let (code, out, err) = run(&["list"], "");
    assert_eq!(code, Some(0));
    let row = |path: &PathBuf| {
        out.lines()
            .find(|l| l.ends_with(&path.display().to_string()))
            .map(str::to_owned)
    };
    assert!(row(live).is_some_and(|r| r.contains(" live ")), "{out}");
    assert!(row(&stale).is_some_and(|r| r.contains(" stale ")), "{out}");
    assert!(
        err.contains("stale socket") && err.contains("`manhole-cli list --clean` removes"),
        "says how many are stale and what removes them: {err}"
    );
    assert!(stale.exists(), "only --clean removes");
    let (_, json, _) = run(&["list", "--json"], "");
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert!(
        parsed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["socket"] == live.display().to_string() && e["state"] == "live")
    );
    let (code, _, err) = run(&["list", "--clean"], "");
    assert_eq!(code, Some(0));
    assert!(
        err.contains(&format!("removed stale {}", stale.display())),
        "{err}"
    );
    assert!(!stale.exists());
    assert!(live.exists(), "live sockets are kept");
}

#[test]
fn list_clean_removes_only_stale_sockets_its_caller_may() {
    use std::os::unix::fs::symlink;
    if !support::is_root() {
        eprintln!("skipped: sockets of other users need root");
        return;
    }
    let _alone = CLEANING.lock().unwrap_or_else(|e| e.into_inner());
    let at = |n: u32| PathBuf::from(format!("/tmp/manhole-{n}"));
    for n in 3999990..3999998 {
        let _ = std::fs::remove_file(at(n));
        let _ = std::fs::remove_dir(at(n));
    }
    // Another user's stale socket, and root's own.
    let foreign = at(3999997);
    drop(UnixListener::bind(&foreign).expect("bind"));
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
    let roots = at(3999996);
    drop(UnixListener::bind(&roots).expect("bind"));
    // No sockets: a file, a directory, a symlink to a stale socket.
    let file = at(3999995);
    std::fs::write(&file, "not a socket").unwrap();
    let dir = at(3999994);
    std::fs::create_dir(&dir).unwrap();
    let pointed = std::env::temp_dir().join(format!("mh-cli-pointed-{}", me()));
    let _ = std::fs::remove_file(&pointed);
    drop(UnixListener::bind(&pointed).expect("bind"));
    let link = at(3999993);
    symlink(&pointed, &link).unwrap();
    // A live socket that /proc/net/unix shows under another name (bound by a relative path):
    // connecting shows it is live.
    let relative = support::Fake::start("silent", std::path::Path::new("manhole-3999992"), None);
    let live = at(3999992);

    // Another user cleans only their own: root's stale socket stays.
    let (code, err) = run_as_nobody(&["list", "--clean"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("removed stale {}", foreign.display())),
        "{err}"
    );
    assert!(!err.contains(&roots.display().to_string()), "{err}");
    assert!(roots.exists());

    drop(UnixListener::bind(&foreign).expect("bind"));
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
    let (code, out, _) = run(&["list"], "");
    assert_eq!(code, Some(0));
    let row = |path: &PathBuf| out.lines().find(|l| l.ends_with(&path.display().to_string()));
    assert!(
        row(&foreign).is_some_and(|r| r.contains(" 65534 ") && r.contains(" stale ")),
        "{out}"
    );
    assert!(row(&live).is_some_and(|r| r.contains(" live ")), "{out}");
    for not_a_socket in [&file, &dir, &link] {
        assert!(row(not_a_socket).is_none(), "{out}");
    }
    let (code, _, err) = run(&["list", "--clean"], "");
    assert_eq!(code, Some(0));
    for removed in [&foreign, &roots] {
        assert!(
            err.contains(&format!("removed stale {}", removed.display())),
            "{err}"
        );
        assert!(!removed.exists(), "root removes anyone's stale socket");
    }
    for kept in [&file, &dir, &link, &pointed, &live] {
        assert!(
            std::fs::symlink_metadata(kept).is_ok(),
            "{} is kept: {err}",
            kept.display()
        );
    }
    drop(relative);
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&pointed).unwrap();
}

#[test]
fn a_reader_that_left_ends_the_run_quietly_with_the_status_of_what_ran() {
    host();
    let me = me();
    let me = me.as_str();
    for (args, input, code) in [
        (&["--json", me, "info"][..], "", 0),
        (&["-q", me, "info"][..], "", 0),
        (&[me][..], "info\nenv\n", 0),
        (&["--json", me, "bogus"][..], "", 1),
        (&["list"][..], "", 0),
        (&["list", "--json"][..], "", 0),
        (&["completions", "bash"][..], "", 0),
    ] {
        let ran = support::run_with_stdout_closed(args, input);
        assert_eq!(ran.code, Some(code), "{args:?}: {}", ran.err);
        assert!(!ran.err.contains("panicked"), "{args:?}: {}", ran.err);
        // `list` may warn about stale sockets other tests' killed processes left in /tmp.
        if code == 0 && args[0] != "list" {
            assert!(ran.err.is_empty(), "{args:?}: {}", ran.err);
        }
    }
}

#[test]
fn shell_completions() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(&["completions", shell], "");
        assert_eq!(code, Some(0));
        assert!(out.contains("manhole-cli"), "{shell}");
    }
}

/// A client on a terminal: the master end, read with a deadline. Dropping it kills the client,
/// so a failed test leaves no client behind (whose open session would hold this process at exit).
struct Pty {
    master: std::fs::File,
    seen: Vec<u8>,
    child: std::process::Child,
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Held from openpty until the client is started, so no other test's child inherits the
/// terminal (the descriptors are close-on-exec at once, but not atomically).
static PTY_START: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Pty {
    /// Reads until `needle` shows up; returns what came before it.
    fn expect(&mut self, needle: &str) -> String {
        match self.expect_within(needle, Duration::from_secs(20)) {
            Some(before) => before,
            None => panic!(
                "never saw {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.seen)
            ),
        }
    }

    fn expect_within(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            // Searched as bytes: the tail may hold half a character still on its way.
            if let Some(at) = self
                .seen
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                let before = String::from_utf8_lossy(&self.seen[..at]).into_owned();
                self.seen.drain(..at + needle.len());
                return Some(before);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.read_some();
        }
    }

    /// Reads what the terminal has, waiting up to 200 ms for something.
    fn read_some(&mut self) {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut fds = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut fds, 1, 200) } > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("type");
        self.master.flush().expect("flush");
    }
}

impl Pty {
    /// Starts the client on a new terminal, with `home` as its HOME (for the history file).
    fn start(args: &[&str], home: &std::path::Path) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        let _alone = PTY_START.lock().unwrap_or_else(|e| e.into_inner());
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills two descriptors, owned right below.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0);
        for fd in [master, slave] {
            // SAFETY: fcntl on a descriptor openpty just returned.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: fresh descriptors from openpty, owned once each.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let child = Command::new(env!("CARGO_BIN_EXE_manhole-cli"))
            .args(args)
            .env("HOME", home)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("start manhole-cli");
        Pty {
            master: std::fs::File::from(master),
            seen: Vec::new(),
            child,
        }
    }

    /// Waits for the client to exit, reading what it still prints meanwhile (a terminal holds
    /// only a few KB: a client writing to one nobody reads would wait forever).
    fn finish(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the client did not exit; it printed {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            self.read_some();
        }
    }
}

fn test_home(name: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("mh-cli-{name}-{}", me()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    home
}

#[test]
fn interactive_on_a_terminal_completes_keeps_history_and_handles_ctrl_c_and_ctrl_d() {
    host();
    let home = test_home("home");
    let mut pty = Pty::start(&["-q", &me()], &home);
    pty.expect(">>> ");
    // Tab completes a command name; Enter runs it; the output streams back.
    pty.type_keys("inf\t\r");
    pty.expect(&format!("pid         {} (parent", me()));
    pty.expect("versions");
    // Tab completes an exposed name (a local of the host).
    pty.type_keys("print answer\t\r");
    pty.expect("answer_to_everything");
    pty.expect("\r\n42\r\n");
    pty.expect(">>> "); // the editor's own prompt: keys typed before it meet a line-mode terminal
    // Ctrl-C drops the line being typed; the session goes on.
    pty.type_keys("frobnicate\x03");
    pty.expect("frobnicate");
    pty.expect(">>> "); // a fresh prompt (input typed before it is discarded, as by readline)
    pty.type_keys("help quit\r");
    let shown = pty.expect("usage: quit");
    assert!(
        !shown.contains("unknown command"),
        "the dropped line never ran: {shown:?}"
    );
    pty.expect("effect:");
    pty.expect(">>> "); // typed before this, Ctrl-D would reach a terminal still in line mode
    // Ctrl-D leaves, with status 0, and the history was kept.
    pty.type_keys("\x04");
    assert_eq!(pty.finish().code(), Some(0));
    let history = std::fs::read_to_string(home.join(".manhole_history")).expect("history file");
    assert!(
        history.contains("info") && history.contains("help quit") && !history.contains("frobnicate"),
        "{history}"
    );
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn interactive_output_keeps_multibyte_characters_whole() {
    host();
    let home = test_home("multibyte");
    let mut pty = Pty::start(&["-q", &me()], &home);
    pty.expect(">>> ");
    pty.type_keys("print big_text\r");
    pty.expect("print big_text");
    let printed = pty.expect(">>> ");
    let expected = big_text();
    assert!(
        printed.contains(&expected),
        "every character arrived whole: {} bytes printed, no U+FFFD expected: {}",
        printed.len(),
        printed.contains('\u{fffd}')
    );
    pty.type_keys("\x04");
    assert_eq!(pty.finish().code(), Some(0));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn interactive_watch_stops_on_enter_and_ctrl_d_during_it_leaves() {
    host();
    let home = test_home("watch");
    let mut pty = Pty::start(&["-q", &me()], &home);
    pty.expect(">>> ");
    pty.type_keys("watch -n 0.1 print answer_to_everything\r");
    pty.expect("(run 2; press Enter to stop)");
    // Enter twice: one stops the watch, the other must not leave the client a prompt behind.
    pty.type_keys("\r\r");
    pty.expect(">>> ");
    // The second Enter may reach the line editor as an empty line (its prompt redrawn): wait
    // until the terminal is quiet, so that what is typed next is not type-ahead the editor
    // can drop.
    while pty.expect_within(">>> ", Duration::from_millis(300)).is_some() {}
    // The session goes on: Enter went to the watch, not to the next command.
    pty.type_keys("help fds\r");
    let shown = pty.expect("usage: fds");
    assert!(!shown.contains("error"), "{shown}");
    pty.expect(">>> ");
    pty.type_keys("watch -n 0.1 info\r");
    pty.expect("(run 2; press Enter to stop)");
    pty.type_keys("\x04");
    assert_eq!(pty.finish().code(), Some(0));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn interactive_output_shows_terminal_controls_instead_of_obeying_them() {
    let dir = test_home("hostile");
    let fake = support::Fake::start("hostile", &dir.join("app.sock"), None);
    let mut pty = Pty::start(&[fake.path.to_str().unwrap()], &dir);
    let opening = pty.expect("Type \"help\" for commands.");
    assert!(opening.contains(r#"Thread 7 "\x1b]0;owned\x07""#), "{opening:?}");
    assert!(
        opening.contains("\\x1b[2J") && !opening.contains("\x1b[2J") && !opening.contains("\x1b]0;"),
        "{opening:?}"
    );
    pty.expect(">>> ");
    pty.type_keys("fds\r");
    let answer = pty.expect("4 -> /tmp/end");
    assert!(
        answer.contains(r"3 -> /tmp/\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}gpj.exe"),
        "{answer:?}"
    );
    assert!(!answer.contains(['\u{9b}', '\u{202e}', '\x07']), "{answer:?}");
    // The prompt forged where a 16 KiB read ends did not end the answer early: the rest of
    // it came before the real prompt, and the session is still in step.
    assert!(answer.contains("\n>>> set LIMIT 0"), "{answer:?}");
    let rest = pty.expect(">>> ");
    // (then the editor's own controls, before its prompt)
    assert!(rest.starts_with("\\rforged\r\n"), "{rest:?}");
    pty.type_keys("\x04");
    assert_eq!(pty.finish().code(), Some(0));
    drop(fake);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_user_is_refused_with_status_4() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: running a client as another user needs root");
        return;
    }
    let (code, err) = run_as_nobody(&[host().to_str().unwrap()]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("permission denied")
            && err.contains("the socket belongs to uid 0 and you are uid 65534"),
        "{err}"
    );
}

#[test]
fn a_piped_line_that_is_not_utf8_or_too_long_fails_and_the_rest_still_runs() {
    host();
    let mut input = b"help quit\nenv caf\xe9\nhelp fds\n".to_vec();
    input.extend_from_slice(format!("print {}\nhelp env\n", "x".repeat(70 * 1024)).as_bytes());
    let (code, out, err) = run(&["-q", &me()], &input);
    assert_eq!(code, Some(1), "a line was not sent: {err}");
    assert!(
        err.contains("error: line 2 is not UTF-8; it was not sent")
            && err.contains("error: line 4 is longer than 64 KiB"),
        "{err}"
    );
    for ran in ["usage: quit", "usage: fds", "usage: env"] {
        assert!(out.contains(ran), "the lines around the bad ones ran: {out}");
    }
    let (code, out, _) = run(&["--json", &me()], b"env caf\xe9\ninfo\n");
    assert_eq!(code, Some(1));
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(docs.len(), 2, "one document per line: {out}");
    assert_eq!(docs[0]["ok"], false);
    assert_eq!(
        docs[0]["error"]["message"],
        "line 1 is not UTF-8; it was not sent"
    );
    assert_eq!(docs[1]["command"], "info");
}

#[test]
fn a_hung_up_terminal_is_not_read_in_a_loop_nor_sent_to_the_process() {
    let dir = test_home("hangup");
    let mut fake = support::Fake::start("slow", &dir.join("app.sock"), None);
    let mut pty = Pty::start(&["-q", fake.path.to_str().unwrap()], &dir);
    pty.expect(">>> ");
    pty.type_keys("info\r");
    fake.expect_line("running info");
    // The terminal hangs up (its master closes) while the command runs; it is not the
    // client's controlling terminal, so no SIGHUP comes, as if it were ignored.
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    drop(std::mem::replace(&mut pty.master, null));
    let pid = pty.child.id();
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        // utime and stime are fields 14 and 15; `after` starts at field 3.
        let field = |n: usize| -> u64 {
            after
                .split_whitespace()
                .nth(n - 3)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0)
        };
        field(14) + field(15)
    };
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1)); // measuring, not waiting for something
    let spent = cpu_ticks() - before;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pty.child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the client did not leave the hung-up terminal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = "machine\nhelp\nvars\nmachine off\ninfo\n".len();
    assert_eq!(
        fake.received(),
        sent,
        "nothing but the command was sent to the process (the client spent {spent} ticks in 1 s)"
    );
    assert!(
        spent < 20,
        "the client waited without spinning: {spent} ticks in 1 s"
    );
    drop(fake);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_names_a_program_only_when_the_pid_in_the_name_holds_the_socket() {
    let live = host();
    // A socket whose creator is gone: its name's pid is no process.
    let orphan = support::Fake::start_orphaned("silent", None);
    // As nobody, a socket at pid 1's name (needs root: to be nobody, and to read pid 1's fds).
    let squatter = support::is_root()
        .then(|| support::Fake::start("silent", std::path::Path::new("/tmp/manhole-1"), Some(65534)));
    let (code, out, err) = run(&["list"], "");
    assert_eq!(code, Some(0), "{err}");
    let row = |path: &PathBuf| {
        out.lines()
            .find(|l| l.ends_with(&path.display().to_string()))
            .unwrap_or_else(|| panic!("no row for {}: {out}", path.display()))
            .to_owned()
    };
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(
        row(live).contains(&format!("  {}", comm.trim())) && row(live).contains(" live "),
        "the host's own socket is named for it: {out}"
    );
    let creator = orphan.creator;
    assert!(row(&orphan.path).contains(" (not pid's) "), "{out}");
    assert!(
        err.contains(&format!(
            "{} is not the manhole of process {creator}, whatever its name says: there is no process {creator}",
            orphan.path.display()
        )),
        "{err}"
    );
    if let Some(squatter) = &squatter {
        let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap();
        let row = row(&squatter.path);
        assert!(
            row.contains(" 65534  (not pid's) ") && !row.contains(pid1.trim()),
            "{out}"
        );
        assert!(
            err.contains("/tmp/manhole-1 is not the manhole of process 1, whatever its name says: process 1 does not have it open"),
            "{err}"
        );
    } else {
        eprintln!("partly skipped: a socket of another user at pid 1's name needs root");
    }
    let (_, json, _) = run(&["list", "--json"], "");
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    let entry = |path: &PathBuf| {
        parsed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["socket"] == path.display().to_string())
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(entry(live)["pid_holds_socket"], true, "{json}");
    assert_eq!(entry(&orphan.path)["pid_holds_socket"], false, "{json}");
    assert!(entry(&orphan.path)["program"].is_null(), "{json}");
    if let Some(squatter) = &squatter {
        assert_eq!(entry(&squatter.path)["pid_holds_socket"], false, "{json}");
        assert!(entry(&squatter.path)["program"].is_null(), "{json}");
    }
}
