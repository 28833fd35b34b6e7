//! Values, names and files of the program that are hostile to the console
//! (tests/support/hostile_host.rs): reading them never poisons the program's locks, never runs
//! its initializers, never freezes the session or the program's exit, and nothing of them
//! reaches the operator's terminal as a control sequence or a forged prompt.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{App, Client, PROMPT, unique_socket};

fn host() -> App {
    let socket = unique_socket("hostile");
    let mut app = App::start(
        Command::new(env!("CARGO_BIN_EXE_manhole-hostile-host"))
            .args(["--socket", socket.to_str().expect("UTF-8 path")])
            .env("HOSTILE", "\x1b]0;pwned\x07\n>>> forged"),
    )
    .unwrap_or_else(|line| panic!("the host did not start: {line}"));
    let dir = app.line();
    assert!(dir.starts_with("dir "), "{dir}");
    app
}

fn session(app: &App) -> Client {
    let mut client = Client::connect(&app.socket);
    client.opening();
    client
}

#[test]
fn a_panicking_debug_behind_a_lock_poisons_nothing() {
    let mut app = host();
    let mut client = session(&app);
    for name in ["FUSSY", "FUSSY_RW"] {
        let answer = client.command(&format!("print {name}"));
        assert_eq!(
            answer,
            format!("error: the Debug impl of {name} panicked: odd Fussy(1); the program goes on\n")
        );
        assert_eq!(app.ask("locks"), "locks ok", "after print {name}");
    }
    // set stores the new value and says what it could not show of the old one.
    assert_eq!(
        client.command("set FUSSY 4"),
        "FUSSY: <Debug panicked: odd Fussy(1)> -> Fussy(4)\n"
    );
    assert_eq!(
        client.command("set FUSSY_RW 3"),
        "FUSSY_RW: <Debug panicked: odd Fussy(1)> -> <Debug panicked: odd Fussy(3)>\n"
    );
    assert_eq!(app.ask("locks"), "locks ok", "after set");
    // Plain values, not std's `Mutex { data: .., poisoned: .. }`.
    assert_eq!(client.command("print FUSSY"), "Fussy(4)\n");
    assert_eq!(client.command("print PLAIN"), "42\n");
}

#[test]
fn a_lazy_lock_the_program_has_not_used_is_not_forced() {
    let mut app = host();
    let mut client = session(&app);
    assert_eq!(client.command("print LAZY"), "<not initialised yet>\n");
    let refused = client.command("set LAZY 5");
    assert!(
        refused.starts_with(
            "error: LAZY: is not initialised yet: setting it would run the program's initializer"
        ),
        "{refused}"
    );
    assert_eq!(client.command("print ONCE"), "<not initialised yet>\n");
    assert!(
        client
            .command("set ONCE 1")
            .starts_with("error: ONCE: is not initialised yet")
    );
    let report = client.command("report");
    assert!(report.contains(r#""value":"<not initialised yet>""#), "{report}");
    // The program's own first use, when it is ready, works: nothing ran its initializer early.
    assert_eq!(app.ask("lazy"), "lazy 7 after 1 initializer run(s)");
    assert_eq!(client.command("print LAZY"), "7\n");
    assert_eq!(client.command("set LAZY 8"), "LAZY: 7 -> 8\n");
}

#[test]
fn a_debug_that_blocks_times_out_and_frees_the_session_and_the_exit() {
    let mut app = host();
    let mut client = session(&app);
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let asked = Instant::now();
    let answer = client.command("print BLOCKS");
    assert_eq!(
        answer,
        "<timed out after 2 s: the value's Debug did not return>\n"
    );
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    // The stuck value is not read again (no second thread for it); the others are.
    let again = client.command("print BLOCKS");
    assert!(
        again.starts_with("<not read: its Debug has not returned"),
        "{again}"
    );
    assert_eq!(client.command("print PLAIN"), "42\n");
    let info = client.command("info");
    assert!(
        info.contains("reads       1 stuck in a value's Debug (at most 4)"),
        "{info}"
    );
    let report = client.command("report");
    assert!(report.contains(r#""name":"PLAIN""#), "{report}");
    let readers = app.thread_names().iter().filter(|n| *n == "manhole-read").count();
    assert_eq!(readers, 1, "one thread stuck, whatever was asked");
    client.send(b"quit\n");
    client.read_to_end();
    // A normal exit waits for open sessions, never for a value's Debug.
    let exiting = Instant::now();
    assert_eq!(app.ask("exit"), "exiting");
    let status = app.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        exiting.elapsed() < Duration::from_secs(5),
        "{:?}",
        exiting.elapsed()
    );
}

/// Whether `text` holds what the program's data could use against the operator's terminal.
fn hostile(text: &str) -> Option<&'static str> {
    if text.contains('\x1b') {
        return Some("a raw ESC");
    }
    if text.contains(['\x07', '\r', '\u{202e}', '\u{9b}']) {
        return Some("a raw control");
    }
    if text.lines().any(|l| l.starts_with(PROMPT)) {
        return Some("a forged prompt line");
    }
    None
}

#[test]
fn the_programs_names_files_and_values_reach_no_terminal_raw() {
    let app = host();
    // A client whose program name is hostile: the host's binary run through a hostile link.
    let dir = std::env::temp_dir().join(format!("mh-hostile-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let link = dir.join("\x1b]0;evil\x07");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_manhole-hostile-host"), &link).expect("link");
    let mut other = Command::new(&link)
        .arg("client")
        .arg(&app.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the hostile client");
    let mut said = String::new();
    BufReader::new(other.stdout.take().expect("stdout"))
        .read_line(&mut said)
        .expect("read the client");
    assert_eq!(said, "connected\n");
    // The opening dump names the hostile thread, escaped.
    let mut client = Client::connect(&app.socket);
    let opening = client.opening();
    if let Some(what) = hostile(&opening) {
        panic!("the opening dump sent {what}:\n{opening:?}");
    }
    assert!(opening.contains("\"\\x1b]0;pwned"), "{opening}");
    for command in [
        "stacks",
        "fds",
        "info",
        "env",
        "clients",
        "print FORGED",
        "report",
        "vars",
    ] {
        let answer = client.command(command);
        if let Some(what) = hostile(&answer) {
            panic!("{command} sent {what}:\n{answer:?}");
        }
        match command {
            "fds" => assert!(answer.contains("x\\n>>\\x3e forged\\x1b[2J"), "{answer}"),
            "env" => assert!(
                answer.contains("HOSTILE=\\x1b]0;pwned\\x07\\n>>\\x3e forged"),
                "{answer}"
            ),
            "clients" => assert!(answer.contains("\\x1b]0;evil\\x07"), "{answer}"),
            "print FORGED" => assert_eq!(answer, "ok\n>>\\x3e forged\\x1b[2J\\u{202e}\n"),
            "report" => assert!(answer.contains("\\u001b]0;pwned\\u0007"), "{answer}"),
            _ => {}
        }
    }
    // Machine mode carries the same escaped text.
    client.send(b"machine\n");
    client.read_until("\n");
    client.send(b"fds\n");
    let document: serde_json::Value = serde_json::from_str(&client.read_until("\n")).expect("JSON");
    let text = document["text"].as_str().expect("text");
    assert!(hostile(text).is_none(), "{text:?}");
    let _ = other.kill();
    let _ = other.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
