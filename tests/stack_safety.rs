//! Taking stacks never harms the program: threads with little stack left, stacks switched by
//! hand, unwind tables registered by a JIT, a program that collects signals with sigwait or
//! takes manhole's signal over, an address-space limit, and children forked mid-dump
//! (tests/support/stack_host.rs). Each scenario runs in a host process of its own.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{App, Client, PATIENCE, wait_until};

fn host(scenario: &str) -> App {
    App::start(Command::new(env!("CARGO_BIN_EXE_manhole-stack-host")).arg(scenario))
        .unwrap_or_else(|line| panic!("stack host {scenario} did not start: {line}"))
}

/// One session: the opening (dump and banner), then `quit`. Fails if it takes longer than
/// `limit` (a hang) or the host closes the connection early (a crash).
fn dump(app: &App, limit: Duration) -> String {
    let mut client = Client::connect(&app.socket);
    client.stream.set_read_timeout(Some(limit)).expect("timeout");
    let text = client.opening();
    client.send(b"quit\n");
    let _ = client.read_to_end();
    text
}

fn heartbeat(app: &mut App) -> u64 {
    app.ask("heartbeat").parse().expect("a number")
}

/// The program goes on: alive, and its heartbeat thread still ticks.
fn assert_unharmed(app: &mut App) {
    assert!(app.is_alive(), "the host died; stderr:\n{}", app.stderr());
    let before = heartbeat(app);
    assert!(
        wait_until(PATIENCE, || heartbeat(app) > before),
        "the host's heartbeat stopped"
    );
}

/// The block of the dump about the thread named `name`.
fn thread_block<'a>(dump: &'a str, name: &str) -> &'a str {
    let header = format!("\"{name}\"");
    let start = dump
        .find(&header)
        .unwrap_or_else(|| panic!("no thread {name} in:\n{dump}"));
    let rest = &dump[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn a_c_thread_with_little_stack_left_is_captured_without_overflowing() {
    let mut app = host("short-stack");
    for _ in 0..10 {
        let text = dump(&app, Duration::from_secs(10));
        let block = thread_block(&text, "short-stack");
        assert!(
            block.contains("descend"),
            "walked into the program's frames:\n{block}"
        );
    }
    assert_unharmed(&mut app);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_stack_switched_by_hand_ends_the_walk_with_a_note_instead_of_a_fault() {
    let mut app = host("switched-stack");
    for _ in 0..10 {
        let text = dump(&app, Duration::from_secs(10));
        let block = thread_block(&text, "switched-stack");
        assert!(block.contains("on_new_stack"), "{block}");
        assert!(
            block.contains("(stack cut"),
            "the walk says where it stopped:\n{block}"
        );
    }
    assert_unharmed(&mut app);
}

#[test]
fn unwind_tables_registered_by_a_jit_never_deadlock_a_dump() {
    let mut app = host("jit-frames");
    let backtraces = |app: &mut App| -> u64 { app.ask("backtraces").parse().expect("a number") };
    for round in 0..40 {
        let started = Instant::now();
        let text = dump(&app, Duration::from_secs(10));
        assert!(text.contains("\"backtracer-0\""), "round {round}:\n{text}");
        assert!(started.elapsed() < Duration::from_secs(10), "round {round} hung");
    }
    assert_unharmed(&mut app);
    // The threads inside libgcc were not left holding its lock.
    let before = backtraces(&mut app);
    assert!(
        wait_until(PATIENCE, || backtraces(&mut app) > before + 10),
        "backtraces stopped: libgcc's lock is stuck"
    );
}

#[test]
fn a_thread_collecting_signals_with_sigwait_is_never_sent_the_stack_signal() {
    let mut app = host("sigwait");
    for _ in 0..10 {
        let text = dump(&app, Duration::from_secs(10));
        let block = thread_block(&text, "sigwaiter");
        assert!(block.contains("not captured"), "{block}");
        assert!(app.is_alive(), "stopped by a stack signal: {}", app.stderr());
    }
    assert_unharmed(&mut app);
    assert!(!app.stderr().contains("unexpected signal"), "{}", app.stderr());
}

#[test]
fn a_stack_signal_reset_to_default_is_never_sent() {
    let mut app = host("takeover-default");
    let text = dump(&app, Duration::from_secs(10));
    assert!(text.contains("reset to its default action"), "{text}");
    let block = thread_block(&text, "heartbeat");
    assert!(block.contains("not captured"), "{block}");
    assert_unharmed(&mut app);
}

#[test]
fn a_stack_signal_taken_over_by_the_program_is_never_sent() {
    let mut app = host("takeover-handler");
    let text = dump(&app, Duration::from_secs(10));
    assert!(text.contains("a handler of the program's own"), "{text}");
    assert_eq!(app.ask("handler-calls"), "0", "the program's handler ran");
    assert_unharmed(&mut app);
}

#[test]
fn a_dump_under_an_address_space_limit_degrades_instead_of_aborting() {
    let mut app = host("rlimit");
    let text = dump(&app, Duration::from_secs(20));
    assert!(text.contains("ProcessID="), "{text}");
    assert_unharmed(&mut app);
    assert!(
        text.contains("frames are not named") || text.contains("stack_host::main"),
        "either named or saying why not:\n{text}"
    );
}

#[test]
fn children_forked_during_dumps_can_dump_their_own_stacks() {
    let mut app = host("fork-dump");
    let until = Instant::now() + Duration::from_secs(3);
    let mut dumps = 0;
    while Instant::now() < until {
        dump(&app, Duration::from_secs(10));
        dumps += 1;
    }
    assert_unharmed(&mut app);
    let log = app.stderr();
    let ok = log.matches("child ok").count();
    assert!(ok > 5, "{dumps} dumps, {ok} children ok:\n{log}");
    assert_eq!(log.matches("child hung").count(), 0, "{log}");
    assert_eq!(log.matches("child failed").count(), 0, "{log}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn memory_returns_to_where_it_was_after_the_last_session() {
    let app = host("plain");
    let before = rss_kib(app.pid);
    for _ in 0..3 {
        dump(&app, Duration::from_secs(20));
    }
    let settled = wait_until(PATIENCE, || rss_kib(app.pid) <= before + 4096);
    assert!(
        settled,
        "RSS {} KiB after the sessions, {before} KiB before",
        rss_kib(app.pid)
    );
}

#[test]
fn memory_returns_after_a_dump_the_program_asked_for_itself() {
    let mut app = host("plain");
    let before = rss_kib(app.pid);
    let length: u64 = app.ask("dump").parse().expect("a length");
    assert!(length > 100, "a dump came back");
    let loaded = rss_kib(app.pid);
    assert!(
        loaded > before + 4096,
        "the dump loaded debug info: {before} -> {loaded} KiB"
    );
    let settled = wait_until(PATIENCE, || rss_kib(app.pid) <= before + 4096);
    assert!(
        settled,
        "RSS {} KiB after the program's own dump, {before} KiB before",
        rss_kib(app.pid)
    );
    assert!(
        wait_until(PATIENCE, || !app
            .thread_names()
            .iter()
            .any(|n| n == "manhole-release")),
        "the waiting thread is gone"
    );
}

#[test]
fn a_thread_in_strict_seccomp_mode_is_never_signalled() {
    let mut app = host("seccomp-strict");
    for _ in 0..5 {
        let text = dump(&app, Duration::from_secs(10));
        let block = thread_block(&text, "seccomp-strict");
        assert!(block.contains("strict seccomp mode"), "{block}");
    }
    assert_unharmed(&mut app);
}

#[test]
fn a_thread_under_a_seccomp_filter_of_its_own_is_copied_without_system_calls() {
    let mut app = host("seccomp-filter");
    for _ in 0..5 {
        let text = dump(&app, Duration::from_secs(10));
        let block = thread_block(&text, "seccomp-filter");
        assert!(
            block.contains("seccomp_thread"),
            "walked into the program's frames:\n{block}"
        );
    }
    assert_unharmed(&mut app);
}
