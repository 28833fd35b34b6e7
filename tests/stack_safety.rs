//! Taking stacks never harms the program: threads with little stack left, stacks switched by
//! hand, unwind tables registered by a JIT, a program that collects signals with sigwait or
//! takes manhole's signal over, an address-space limit, and children forked mid-dump
//! (tests/support/stack_host.rs). Each scenario runs in a host process of its own.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{App, Client, PATIENCE, wait_until};

fn host(scenario: &str) -> App {
    host_with(scenario, &[])
}

/// The stack host running `scenario`, with extra environment variables.
fn host_with(scenario: &str, env: &[(&str, &str)]) -> App {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-stack-host"));
    command.arg(scenario).envs(env.iter().copied());
    App::start(&mut command).unwrap_or_else(|line| panic!("stack host {scenario} did not start: {line}"))
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

/// Just enough address space left for a thread's stack, and not for what comes with it (its
/// signal stack, the next allocations): a session thread used to take the last of it, and the
/// host aborted ("memory allocation of 41 bytes failed", or std's "failed to allocate an
/// alternative stack" as the thread started). Now the client is refused and the host goes on.
#[test]
fn a_session_that_would_exhaust_the_address_space_is_refused_instead() {
    for extra_kib in [0, 4, 8, 12, 16, 24, 48, 128] {
        let room = (2 << 20) + extra_kib * 1024;
        let mut app = host_with("rlimit", &[("STACK_HOST_ROOM", &room.to_string())]);
        let mut client = Client::connect(&app.socket);
        client
            .stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // A refused client's quit may find the socket closed already.
        let _ = std::io::Write::write_all(&mut client.stream, b"quit\n");
        let first = client.read_to_end();
        assert!(
            first.starts_with("manhole: cannot start a session now") || first.contains("ProcessID="),
            "room {room}: {first:?}"
        );
        assert_unharmed(&mut app);
    }
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

/// One `records` answer: each thread's `key=value` words, by tid.
fn records(app: &mut App) -> std::collections::HashMap<i32, std::collections::HashMap<String, String>> {
    app.ask("records")
        .split(" | ")
        .map(|record| {
            let fields: std::collections::HashMap<String, String> = record
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (fields["tid"].parse().expect("tid"), fields)
        })
        .collect()
}

fn hex(text: &str) -> usize {
    usize::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {text:?}"))
}

/// The system call number a thread of `pid` is in, as `/proc` shows it from outside.
fn proc_syscall_number(pid: u32, tid: i32) -> Option<i64> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn each_thread_s_record_has_its_registers_system_call_and_cpu_time() {
    let mut app = host("waits");
    let facts: std::collections::HashMap<String, String> = app
        .ask("facts")
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| k != "thread")
        .collect();
    let threads: std::collections::HashMap<String, (i32, usize, usize)> = app
        .ask("facts")
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("thread="))
        .map(|t| {
            let parts: Vec<&str> = t.split(':').collect();
            (
                parts[0].to_owned(),
                (parts[1].parse().expect("tid"), hex(parts[2]), hex(parts[3])),
            )
        })
        .collect();
    let tid = |name: &str| threads[name].0;
    // Each waiting thread inside its call, as the kernel shows it from outside.
    let expected = [
        ("pipe-reader", libc::SYS_read),
        ("masked-reader", libc::SYS_read),
        ("futex-waiter", libc::SYS_futex),
        ("sleeper", libc::SYS_clock_nanosleep),
    ];
    assert!(
        wait_until(PATIENCE, || expected
            .iter()
            .all(|(name, nr)| proc_syscall_number(app.pid, tid(name)) == Some(*nr))),
        "the threads never reached their calls"
    );

    let first = records(&mut app);
    let of = |records: &std::collections::HashMap<i32, std::collections::HashMap<String, String>>,
              name: &str| records[&tid(name)].clone();
    let args = |record: &std::collections::HashMap<String, String>| -> Vec<String> {
        record["args"].split(',').map(str::to_owned).collect()
    };

    // Blocked in read(2) on the pipe: the handler saw the call being restarted, with the fd.
    let reader = of(&first, "pipe-reader");
    assert_eq!(reader["nr"], libc::SYS_read.to_string(), "{reader:?}");
    assert_eq!(
        hex(&args(&reader)[0]),
        facts["pipe_fd"].parse::<usize>().unwrap(),
        "{reader:?}"
    );
    assert_eq!(
        (reader["phase"].as_str(), reader["sfrom"].as_str()),
        ("restarting", "handler")
    );

    // In a futex wait on the static word: its address is the first argument.
    let waiter = of(&first, "futex-waiter");
    assert_eq!(waiter["nr"], libc::SYS_futex.to_string(), "{waiter:?}");
    assert_eq!(args(&waiter)[0], facts["word"], "{waiter:?}");
    assert_eq!(waiter["phase"], "restarting", "{waiter:?}");

    // A sleep is not restarted: EINTR in rax, the number from /proc read before the signal.
    let sleeper = of(&first, "sleeper");
    assert_eq!(
        sleeper["nr"],
        libc::SYS_clock_nanosleep.to_string(),
        "{sleeper:?}"
    );
    assert_eq!(
        sleeper["phase"],
        format!("interrupted_{}", libc::EINTR),
        "{sleeper:?}"
    );

    // A thread blocking the signal is not sent it: its record is /proc's line.
    let masked = of(&first, "masked-reader");
    assert_eq!(
        (masked["from"].as_str(), masked["sfrom"].as_str()),
        ("proc", "proc"),
        "{masked:?}"
    );
    assert_eq!(masked["nr"], libc::SYS_read.to_string(), "{masked:?}");
    assert_eq!(
        hex(&args(&masked)[0]),
        facts["masked_fd"].parse::<usize>().unwrap()
    );
    assert_eq!(masked["phase"], "waiting", "{masked:?}");

    // Every one of them: sp inside its own stack, pc set; fp wherever the handler ran.
    for (name, (tid, low, high)) in &threads {
        let record = &first[tid];
        let sp = hex(&record["sp"]);
        assert!(
            (*low..*high).contains(&sp),
            "{name}: sp {sp:#x} outside {low:#x}-{high:#x}"
        );
        assert_ne!(hex(&record["pc"]), 0, "{name}: {record:?}");
        if record["from"] == "handler" {
            assert_ne!(record["fp"], "-", "{name}: {record:?}");
        }
    }
    assert_eq!(of(&first, "spinner")["from"], "handler");
    assert_eq!(
        of(&first, "spinner")["nr"],
        "-",
        "spinning in user code: no system call"
    );

    // CPU time, read before the signal: the spinner's grows, the sleeper's barely moves (it
    // only runs the handler, a few µs a dump).
    let cpu = |record: &std::collections::HashMap<String, String>| -> u64 {
        record["cpu"].parse().expect("cpu ns")
    };
    let (spun, slept) = (cpu(&of(&first, "spinner")), cpu(&of(&first, "sleeper")));
    let mut last = first.clone();
    let mut asked = Instant::now();
    assert!(
        wait_until(PATIENCE, || {
            asked = Instant::now();
            last = records(&mut app);
            cpu(&of(&last, "spinner")) > spun + 200_000_000
        }),
        "the spinner's CPU time did not grow: {:?}",
        of(&last, "spinner")
    );
    let sleeper_grew = cpu(&of(&last, "sleeper")) - slept;
    assert!(
        sleeper_grew < 20_000_000,
        "the sleeper used {sleeper_grew} ns of CPU"
    );

    // Not run for: the last capture woke the sleeper; after a quiet second (the quantity
    // measured, not a wait for something) it has not run for about that long, never more
    // than since that capture was asked for, whichever CPU it slept on.
    std::thread::sleep(Duration::from_millis(1200));
    let since = asked.elapsed();
    let now = records(&mut app);
    let idle = |record: &std::collections::HashMap<String, String>| -> Duration {
        Duration::from_nanos(
            record["idle"]
                .parse()
                .unwrap_or_else(|_| panic!("idle: {record:?}")),
        )
    };
    let sleeper = idle(&of(&now, "sleeper"));
    assert!(
        sleeper >= Duration::from_millis(1000) && sleeper <= since + Duration::from_millis(20),
        "sleeper not run for {sleeper:?}, {since:?} after the last capture"
    );
    // Never signalled, it has not run since it blocked.
    assert!(
        idle(&of(&now, "masked-reader")) >= sleeper,
        "{:?}",
        of(&now, "masked-reader")
    );
    // Runnable: it may be on a CPU now.
    assert_eq!(idle(&of(&now, "spinner")), Duration::ZERO);
    assert_unharmed(&mut app);
}
