//! Piped commands against a stand-in manhole (its own process, so that flooding it loads no
//! other test's host): answered one by one as they come, in bounded memory.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::Fake;

/// A path for a stand-in listener of this test's own.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mh-cli-piped-{name}-{}", std::process::id()))
}

/// Runs as a stand-in listener when `support::Fake::start` starts this binary.
#[test]
fn fake_listener_main() {
    support::fake_listener_main();
}

#[test]
fn piped_commands_are_answered_as_they_come_while_stdin_stays_open() {
    let fake = Fake::start("mimic", &scratch("open"), None);
    let mut client = support::client()
        .args(["-q", fake.path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start manhole-cli");
    let mut stdin = client.stdin.take().expect("stdin");
    let stdout = client.stdout.take().expect("stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("client-output".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        })
        .expect("thread");
    let answered = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match seen.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };
    stdin.write_all(b"help quit\n").expect("write");
    let first = answered("a stand-in answered");
    stdin.write_all(b"help fds\n").expect("write");
    let second = first && answered("a stand-in answered");
    drop(stdin);
    let status = client.wait().expect("wait");
    reader.join().expect("reader");
    assert!(first && second, "each answer came while stdin was still open");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_endless_producer_is_answered_in_bounded_memory() {
    let fake = Fake::start("mimic", &scratch("endless"), None);
    let mut command = support::client();
    command.args(["-q", fake.path.to_str().unwrap()]);
    let ran = support::run_fed(command, |mut stdin| {
        // Like `yes 'print REQUESTS'`, for 3 s.
        let lines = "print REQUESTS\n".repeat(1024);
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if stdin.write_all(lines.as_bytes()).is_err() {
                return;
            }
        }
    });
    assert!(
        ran.max_rss_kib < 40 * 1024,
        "the client held stdin instead of answering it: peak {} KiB",
        ran.max_rss_kib
    );
    assert_eq!(ran.code, Some(0), "{}", ran.err);
    assert!(
        ran.out.starts_with("a stand-in answered\na stand-in answered\n"),
        "answered: {:?}",
        &ran.out[..ran.out.len().min(100)]
    );
}
