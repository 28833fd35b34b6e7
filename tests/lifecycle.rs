//! The socket's life: created safely, replaced only when stale, removed on uninstall and exit;
//! install and reinstall; the verbose log. Each case runs in its own test-app process.

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::Command;

use support::{App, Client, PATIENCE, testapp, unique_socket, wait_until};

fn listeners(app: &App) -> usize {
    app.thread_names()
        .iter()
        .filter(|n| *n == "manhole" || n.starts_with("manhole-on-") || n.starts_with("manhole-1x-"))
        .count()
}

#[test]
fn the_socket_is_private_to_its_user() {
    let app = App::serve(&["--socket", unique_socket("mode").to_str().unwrap()]);
    let meta = std::fs::symlink_metadata(&app.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix_euid());
}

fn nix_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[test]
fn the_default_path_is_per_pid_and_removed_at_normal_exit() {
    let mut app = App::serve(&[]);
    assert_eq!(
        app.socket,
        std::path::PathBuf::from(format!("/tmp/manhole-{}", app.pid))
    );
    Client::connect(&app.socket).opening();
    assert_eq!(app.ask("exit"), "exiting");
    let status = app.finish();
    let socket = app.socket.clone();
    assert!(status.success(), "{status}");
    assert!(app.stderr().ends_with("]: Cleaned up.\n"), "{}", app.stderr());
    assert!(!socket.exists(), "{} left behind", socket.display());
}

#[test]
fn a_second_strict_install_fails_and_a_non_strict_one_replaces_cleanly() {
    let mut app = App::serve(&["--socket", unique_socket("double").to_str().unwrap()]);
    let (fds, threads) = support::baseline(&app);
    let reply = app.ask("install-strict");
    assert_eq!(
        reply,
        format!(
            "already installed: manhole is already installed (listening at {}); use strict(false) to replace it",
            app.socket.display()
        )
    );
    assert_eq!(listeners(&app), 1);

    // An open session is closed by the replacement, not leaked.
    let mut open = Client::connect(&app.socket);
    open.opening();
    assert_eq!(app.ask("install-replace"), "old handle: none");
    assert_eq!(app.line(), format!("ready {}", app.socket.display()));
    assert_eq!(open.read_to_end(), "", "the old session was closed");
    for _ in 0..5 {
        assert_eq!(app.ask("install-replace"), "old handle: none");
        assert_eq!(app.line(), format!("ready {}", app.socket.display()));
    }
    // A new thread names itself once it runs: wait for that rather than racing it.
    assert!(
        wait_until(PATIENCE, || listeners(&app) == 1),
        "{:?}",
        app.thread_names()
    );
    assert!(
        app.settles_to(fds, threads),
        "fds {} want {fds}; threads {:?}",
        app.fd_count(),
        app.thread_names()
    );
    let mut client = Client::connect(&app.socket);
    assert!(client.opening().contains("Type \"help\" for commands."));
}

#[test]
fn uninstall_stops_the_listener_and_removes_the_socket() {
    let mut app = App::serve(&["--socket", unique_socket("uninstall").to_str().unwrap()]);
    let mut open = Client::connect(&app.socket);
    open.opening();
    assert_eq!(app.ask("uninstall"), "uninstalled, path now none");
    assert!(!app.socket.exists());
    assert_eq!(open.read_to_end(), "", "open sessions end");
    assert!(
        wait_until(PATIENCE, || listeners(&app) == 0),
        "{:?}",
        app.thread_names()
    );
    assert!(wait_until(PATIENCE, || !app
        .thread_names()
        .iter()
        .any(|n| n == "manhole-session")));
    assert_eq!(
        app.ask("uninstall"),
        "uninstalled, path now none",
        "twice is harmless"
    );
    assert!(app.is_alive());
}

#[test]
fn a_stale_socket_from_a_killed_process_is_replaced() {
    let path = unique_socket("stale");
    let mut first = App::serve(&["--socket", path.to_str().unwrap()]);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(path.exists(), "SIGKILL leaves the socket behind");
    let second = App::serve(&["--socket", path.to_str().unwrap()]);
    assert!(wait_until(PATIENCE, || second
        .stderr()
        .contains(&format!("Removed stale socket {}", path.display()))));
    let mut client = Client::connect(&path);
    assert!(client.opening().contains(&format!("(pid {})", second.pid)));
}

#[test]
fn a_live_socket_and_foreign_files_are_left_alone() {
    let live = App::serve(&["--socket", unique_socket("live").to_str().unwrap()]);
    let out = Command::new(testapp())
        .args(["install-at", live.socket.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!(
            "error: cannot listen at {}: a live process is listening there",
            live.socket.display()
        )
    );
    Client::connect(&live.socket).opening();

    let path = unique_socket("foreign");
    std::fs::write(&path, b"not yours").unwrap();
    let out = Command::new(testapp())
        .args(["install-at", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!(
            "error: cannot listen at {}: a regular file is there, not a socket; manhole leaves it alone",
            path.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"not yours");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_closed_stderr_never_makes_install_fail() {
    let app = App::serve(&[
        "--socket",
        unique_socket("nostderr").to_str().unwrap(),
        "--close-stderr",
    ]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert!(client.command("info").starts_with("pid "));
}

#[test]
fn the_verbose_log_speaks_the_original_vocabulary() {
    let app = App::serve(&["--socket", unique_socket("log").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    client.send(b"quit\n");
    client.read_to_end();
    let pid = app.pid;
    assert!(
        wait_until(PATIENCE, || app.stderr().contains("ended (quit)")),
        "{}",
        app.stderr()
    );
    let log = app.stderr();
    for line in log.lines() {
        let (head, _) = line
            .split_once("]: ")
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let stamp = head
            .strip_prefix(&format!("Manhole[{pid}:"))
            .unwrap_or_else(|| panic!("{line:?}"));
        let (secs, frac) = stamp.split_once('.').unwrap();
        assert!(
            secs.parse::<u64>().is_ok() && frac.len() == 4 && frac.parse::<u32>().is_ok(),
            "{line:?}"
        );
    }
    assert!(
        log.contains(&format!("]: Manhole UDS path: {}\n", app.socket.display())),
        "{log}"
    );
    assert!(
        log.contains(&format!("]: Waiting for new connection (in pid:{pid}) ...\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            " from PID:{} UID:{} GID:",
            std::process::id(),
            nix_euid()
        )),
        "{log}"
    );
    assert!(log.contains("]: Accepted connection on fd:"), "{log}");
    drop(app);
}

#[test]
fn exit_waits_for_open_sessions_unless_they_are_daemons() {
    let mut app = App::serve(&["--socket", unique_socket("wait").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_eq!(app.ask("exit"), "exiting");
    let told = client.read_until("type quit to let it go\n");
    assert_eq!(
        told,
        "\nmanhole: the process is exiting and waits for this session to end; "
    );
    assert!(app.is_alive(), "the process waits for the session");
    assert!(!app.socket.exists(), "but nobody new can connect");
    assert!(
        client.command("info").starts_with("pid "),
        "the session still works"
    );
    client.send(b"quit\n");
    let status = app.finish();
    assert!(status.success());
    let log = app.stderr();
    assert!(
        log.contains("]: Process is exiting; waiting for 1 open session(s) to end\n"),
        "{log}"
    );
    assert!(log.ends_with("]: Cleaned up.\n"), "{log}");

    let mut app = App::serve(&["--socket", unique_socket("daemon").to_str().unwrap(), "--daemon"]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_eq!(app.ask("exit"), "exiting");
    assert!(app.finish().success());
    let socket = app.socket.clone();
    assert_eq!(client.read_to_end(), "", "a daemon session dies with the process");
    assert!(!socket.exists());
}

#[test]
fn the_log_can_go_to_a_file_or_to_the_log_crate() {
    let file = unique_socket("logfile");
    let app = App::serve(&[
        "--socket",
        unique_socket("tofile").to_str().unwrap(),
        "--log-file",
        file.to_str().unwrap(),
    ]);
    Client::connect(&app.socket).opening();
    assert!(wait_until(PATIENCE, || std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("Accepted connection")));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&format!("Manhole[{}:", app.pid)), "{text}");
    assert!(
        text.contains(&format!("]: Manhole UDS path: {}\n", app.socket.display())),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !app.stderr().contains("Manhole["),
        "nothing on stderr: {}",
        app.stderr()
    );
    drop(app);
    std::fs::remove_file(&file).unwrap();

    let app = App::serve(&[
        "--socket",
        unique_socket("tolog").to_str().unwrap(),
        "--log-crate",
    ]);
    Client::connect(&app.socket).opening();
    assert!(wait_until(PATIENCE, || app
        .stderr()
        .contains("log-crate INFO manhole: Accepted connection on fd:")));
    assert!(
        app.stderr().contains(&format!(
            "log-crate INFO manhole: Manhole UDS path: {}\n",
            app.socket.display()
        )),
        "{}",
        app.stderr()
    );
}

/// The signals a thread blocks, from /proc.
fn blocked_signals(pid: u32, tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with("SigBlk:"))
        .unwrap_or("SigBlk: 0");
    u64::from_str_radix(line.trim_start_matches("SigBlk:").trim(), 16).unwrap()
}

#[test]
fn manhole_threads_block_the_apps_signals_and_only_those() {
    let app = App::serve(&["--socket", unique_socket("mask").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let bit = |signal: i32| 1u64 << (signal - 1);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{}/task", app.pid)).unwrap() {
        let tid = entry.unwrap().file_name().into_string().unwrap();
        let name = std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", app.pid)).unwrap();
        let mask = blocked_signals(app.pid, &tid);
        match name.trim_end() {
            "manhole" | "manhole-session" => {
                for signal in [
                    libc::SIGTERM,
                    libc::SIGINT,
                    libc::SIGHUP,
                    libc::SIGUSR1,
                    libc::SIGUSR2,
                    libc::SIGCHLD,
                ] {
                    assert_ne!(
                        mask & bit(signal),
                        0,
                        "{name} must block signal {signal}: {mask:x}"
                    );
                }
                for fault in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
                    assert_eq!(
                        mask & bit(fault),
                        0,
                        "{name} must not block fault {fault}: {mask:x}"
                    );
                }
                seen.push(name.trim_end().to_owned());
            }
            _ => assert_eq!(
                mask & bit(libc::SIGTERM),
                0,
                "the app's own thread {name} is untouched"
            ),
        }
    }
    seen.sort();
    assert_eq!(seen, ["manhole", "manhole-session"]);
}

/// The host that does to itself what programs do after installing (tests/support/lifecycle_host.rs).
fn lifecycle_host(args: &[&str]) -> App {
    App::start(Command::new(env!("CARGO_BIN_EXE_manhole-lifecycle-host")).args(args))
        .unwrap_or_else(|line| panic!("lifecycle host did not start: {line}"))
}

fn is_root() -> bool {
    nix_euid() == 0
}

/// The kernel keeps 15 bytes of a thread name, std cuts bytes: `работник-1` becomes seven
/// letters and half of the eighth. The thread is still in the dump, `stacks` and `report`.
#[test]
fn a_thread_whose_name_is_cut_mid_character_is_shown_escaped() {
    let app = lifecycle_host(&[
        "--socket",
        unique_socket("utf8").to_str().unwrap(),
        "--thread-name",
        "работник-1",
    ]);
    let shown = "работни\\xd0";
    let mut client = Client::connect(&app.socket);
    let opening = client.opening();
    assert!(opening.contains(&format!("\"{shown}\"")), "{opening}");
    let stacks = client.command("stacks");
    assert!(stacks.contains(&format!("\"{shown}\"")), "{stacks}");
    let report = client.command("report");
    let report: serde_json::Value = serde_json::from_str(report.trim_end()).expect("report is JSON");
    let names: Vec<&str> = report["threads"]["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&shown), "{names:?}");
}

/// A daemon that chroots into a directory without /proc still shows every thread, and at exit
/// its socket (outside the chroot) is removed, as the log says.
#[test]
fn after_a_chroot_without_proc_threads_are_listed_and_the_socket_is_removed() {
    if !is_root() {
        eprintln!("skipped: chroot needs root");
        return;
    }
    let jail = unique_socket("jail");
    std::fs::create_dir(&jail).unwrap();
    let mut app = lifecycle_host(&[
        "--socket",
        unique_socket("chroot").to_str().unwrap(),
        "--thread-name",
        "jailed-worker",
    ]);
    assert_eq!(app.ask(&format!("chroot {}", jail.display())), "chrooted");
    let mut client = Client::connect(&app.socket);
    let opening = client.opening();
    for name in [
        "\"main\"",
        "\"jailed-worker\"",
        "\"manhole\"",
        "\"manhole-session\"",
    ] {
        assert!(opening.contains(name), "{name} missing:\n{opening}");
    }
    let info = client.command("info");
    let threads = info
        .lines()
        .find_map(|l| l.strip_prefix("threads"))
        .map(str::trim);
    assert_eq!(threads, Some("4"), "info reads /proc too:\n{info}");
    client.send(b"quit\n");
    client.read_to_end();
    assert_eq!(app.ask("exit"), "exiting");
    let status = app.finish();
    assert!(status.success(), "{status}");
    let socket = app.socket.clone();
    assert!(!socket.exists(), "{} left behind", socket.display());
    assert!(app.stderr().ends_with("]: Cleaned up.\n"), "{}", app.stderr());
    std::fs::remove_dir(&jail).unwrap();
}
