//! manhole-cli against listeners that are not what they claim: squatters of another uid, an
//! impostor whose socket outlived its creator, listeners that say nothing, flood without a
//! prompt, or send terminal control sequences. Each is served by a copy of this binary
//! (`fake_listener_main`), as another user where the test needs one.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Fake, is_root, run};

/// A path for a stand-in listener of this test's own.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mh-cli-hostile-{name}-{}", std::process::id()))
}

/// Runs as a stand-in listener when `Fake::start` starts this binary.
#[test]
fn fake_listener_main() {
    support::fake_listener_main();
}

#[test]
fn root_given_a_path_refuses_a_listener_of_another_uid() {
    if !is_root() {
        eprintln!("skipped: a squatter of another uid and a root client need root");
        return;
    }
    let path = PathBuf::from("/tmp/manhole-99999");
    let mut squatter = Fake::start("mimic", &path, Some(65534));
    let (code, out, err) = run(&[path.to_str().unwrap(), "info"], "");
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("is served by process") && err.contains("of uid 65534, not by you (uid 0) or root"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing of the squatter's was shown: {out}");
    assert_eq!(squatter.received(), 0, "not a byte was sent to the squatter");
    // Unless the user says that uid is expected there.
    let (code, out, err) = run(&["--trust-uid", "65534", path.to_str().unwrap(), "info"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("a stand-in answered"), "{out}");
    assert!(squatter.received() > 0);
}

#[test]
fn a_listener_that_outlived_its_creator_is_not_that_process() {
    if !is_root() {
        eprintln!("skipped: an impostor of another uid and a root client need root");
        return;
    }
    let mut impostor = Fake::start_orphaned("mimic", Some(65534));
    let creator = impostor.creator.to_string();
    // The creator is gone; its socket is still served, by its child.
    let (code, out, err) = run(&[&creator, "info"], "");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("no process {creator}; not connecting")),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");

    // The pid reused by a process of another user (root here): the listener's pid matches,
    // its uid does not. The next pid is chosen through ns_last_pid, which other tests'
    // children may race for; a few tries.
    for _ in 0..20 {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (impostor.creator - 1).to_string());
        let mut victim = Command::new("sleep").arg("30").spawn().expect("sleep");
        if victim.id() != impostor.creator {
            let _ = victim.kill();
            let _ = victim.wait();
            continue;
        }
        let (code, out, err) = run(&[&creator, "info"], "");
        let _ = victim.kill();
        let _ = victim.wait();
        assert_eq!(code, Some(4), "{err}");
        assert!(
            err.contains(&format!(
                "is served by uid 65534, but process {creator} runs as uid 0"
            )),
            "{err}"
        );
        assert!(out.is_empty(), "{out}");
        assert_eq!(impostor.received(), 0, "not a byte was sent to the impostor");
        return;
    }
    eprintln!("partly skipped: could not get pid {creator} reused within 20 tries");
}

/// The start and the end of a long text, for a failure message.
fn tail(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 1200 {
        return text.to_owned();
    }
    let start: String = chars[..600].iter().collect();
    let end: String = chars[chars.len() - 600..].iter().collect();
    format!("{start} […] {end}")
}

#[test]
fn terminal_controls_from_the_process_are_shown_not_obeyed() {
    let fake = Fake::start("hostile", &scratch("controls"), None);
    let path = fake.path.to_str().unwrap();
    let obeyed = |text: &str| {
        text.contains(['\x1b', '\x07', '\u{9b}', '\u{202e}']) || text.replace("\r\n", "\n").contains('\r')
    };
    let (code, out, err) = run(&[path, "fds"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(!obeyed(&out), "no control reaches the terminal: {:?}", tail(&out));
    for shown in [
        r#"Thread 7 "\x1b]0;owned\x07""#,
        "\n\\x1b[2J\n",
        "Thread 8 \"x\n>>> \" \\xff\\xfe\r\n",
        r#"Thread 9 "\rforged""#,
        "Type \"help\" for commands.\n",
        r"3 -> /tmp/\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}gpj.exe",
        r"4 -> /tmp/end\rforged",
    ] {
        assert!(out.contains(shown), "{shown:?} shown, visibly: {:?}", tail(&out));
    }
    // A prompt forged in the dump did not end the opening: the answer is the command's.
    assert!(out.ends_with("4 -> /tmp/end\\rforged\n"), "{:?}", tail(&out));

    let (code, out, err) = run(&["--json", path, "fds"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains(['\u{9b}', '\u{202e}']), "{:?}", tail(&out));
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("one document");
    let text = doc["text"].as_str().expect("text");
    assert!(!obeyed(text), "{text:?}");
    assert!(
        text.contains(r"/tmp/\x1b]0;owned\x07\x1b[2J\u{9b}31m"),
        "{text:?}"
    );
    assert_eq!(doc["data"][0]["name"], r"\x1b[2Jname");
}

#[test]
fn a_listener_that_says_nothing_is_named_as_such() {
    let fake = Fake::start("silent", &scratch("silent"), None);
    let started = std::time::Instant::now();
    let (code, out, err) = run(
        &["--opening-timeout", "0.5", fake.path.to_str().unwrap(), "info"],
        "",
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains(&format!(
            "process {} accepted the connection but sent nothing for 0.5 s (it may be frozen or not a \
             manhole",
            fake.creator
        )),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_listener_that_floods_is_cut_off_with_bounded_memory() {
    // Shown as it comes (the opening is never held whole), or not shown (-q): either way the
    // client stops at its limit and stays small.
    for args in [&["-q"][..], &[]] {
        let fake = Fake::start("flood", &scratch("flood"), None);
        let mut command = support::client();
        command.args(args).args([fake.path.to_str().unwrap(), "info"]);
        let ran = support::run_command(command, "");
        assert_eq!(ran.code, Some(1), "{}", ran.err);
        assert!(
            ran.err
                .contains("sent more than 32 MiB without a prompt (not a manhole"),
            "{}",
            ran.err
        );
        assert!(
            ran.max_rss_kib < 24 * 1024,
            "{args:?}: peak RSS {} KiB",
            ran.max_rss_kib
        );
    }
    let fake = Fake::start("flood-json", &scratch("flood-json"), None);
    let mut command = support::client();
    command.args(["-q", fake.path.to_str().unwrap(), "info"]);
    let ran = support::run_command(command, "");
    assert_eq!(ran.code, Some(1), "{}", ran.err);
    assert!(
        ran.err
            .contains("sent an answer of more than 64 MiB without ending it"),
        "{}",
        ran.err
    );
    // One document is held whole (up to 64 MiB), and never more.
    eprintln!("one document: peak RSS {} KiB", ran.max_rss_kib);
    assert!(ran.max_rss_kib < 100 * 1024, "peak RSS {} KiB", ran.max_rss_kib);
}

#[test]
fn connect_failures_are_said_for_a_person() {
    let long = format!("/tmp/{}", "x".repeat(120));
    let (code, _, err) = run(&[&long, "info"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is too long (125 bytes; a Unix socket path takes at most 107)"),
        "{err}"
    );
    let (code, _, err) = run(&["/etc/passwd/manhole", "info"], "");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("a part of the path is not a directory"), "{err}");
    let datagram = scratch("datagram");
    let _ = std::fs::remove_file(&datagram);
    let socket = std::os::unix::net::UnixDatagram::bind(&datagram).expect("bind");
    let (code, _, err) = run(&[datagram.to_str().unwrap(), "info"], "");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("is a datagram socket, not a stream socket"), "{err}");
    drop(socket);
    std::fs::remove_file(&datagram).unwrap();
}
