//! Why threads wait, end to end: real threads put into known waits (tests/support/waits_host.rs),
//! then the dump's headers, its summary and the machine-mode facts are checked against what
//! each thread really does.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{App, Client, unique_socket};

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_manhole-waits-host"))
}

fn start(scenarios: &[&str]) -> App {
    let socket = unique_socket("waits");
    App::start(host().arg("--socket").arg(&socket).args(scenarios)).expect("the host starts")
}

/// The header line of the thread named `name` (`Thread 4251 "worker-3" (…):`).
fn header<'a>(dump: &'a str, name: &str) -> &'a str {
    dump.lines()
        .find(|l| l.starts_with("Thread ") && l.contains(&format!(" \"{name}\" (")))
        .unwrap_or_else(|| panic!("no thread {name}:\n{dump}"))
}

/// The id of the thread named `name`, from its header or a group's member list.
fn tid_of(dump: &str, name: &str) -> String {
    let needle = format!(" \"{name}\"");
    dump.lines()
        .find_map(|l| {
            let at = l.find(&needle)?;
            l[..at]
                .rsplit([' ', ','])
                .find(|w| !w.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no thread {name}:\n{dump}"))
}

/// The summary: from its first line to the blank line after it.
fn summary(dump: &str) -> Vec<&str> {
    dump.lines()
        .skip_while(|l| !l.starts_with("Summary: "))
        .take_while(|l| !l.is_empty())
        .collect()
}

/// The length in a header or summary (`740 ms`, `12.4 s`, `4m 10s`).
fn length(text: &str) -> Duration {
    let (number, unit) = text.split_once(' ').unwrap_or((text, ""));
    match unit {
        "ms" => Duration::from_millis(number.parse().expect("ms")),
        "s" => Duration::from_secs_f64(number.parse().expect("s")),
        _ => {
            // "4m 10s"
            let minutes: u64 = number.trim_end_matches('m').parse().expect("m");
            let seconds: u64 = unit.trim_end_matches('s').parse().expect("s");
            Duration::from_secs(minutes * 60 + seconds)
        }
    }
}

#[test]
fn every_thread_says_what_it_waits_on() {
    let fifo = unique_socket("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let mut app = start(&[
        "abba-std",
        "pile",
        "50",
        "rw",
        "join",
        "spin",
        "fifo",
        fifo.to_str().unwrap(),
        "pthread",
        "condvar",
        "channel",
        "sleep",
    ]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();

    // std's Mutex records no owner: the lock is named, never a holder. (Each reason may carry
    // how long: "waiting 1.2 s on …", "… for 1.2 s".)
    let reason = |name: &str| {
        header(&dump, name)
            .split_once(" (")
            .map_or("", |(_, r)| r)
            .to_owned()
    };
    assert!(reason("abba-1").ends_with(" on Mutex LOCK_B):"), "{dump}");
    assert!(reason("abba-2").ends_with(" on Mutex LOCK_A):"), "{dump}");
    assert!(!reason("abba-1").contains("held by"), "{dump}");
    // Fifty waiters on one exposed static: one group, one summary line.
    assert!(
        reason("pile-0").starts_with("waiting ") && reason("pile-0").ends_with(" on Mutex POOL):"),
        "{dump}"
    );
    assert!(dump.contains("  and 49 more with this stack:\n"), "{dump}");
    // A writer queued behind a reader, and a reader queued behind the writer.
    assert!(
        reason("rw-writer").ends_with(" on RwLock (to write) TABLE):"),
        "{dump}"
    );
    assert!(
        reason("rw-reader-2").ends_with(" on RwLock (to read) TABLE):"),
        "{dump}"
    );
    // A join names the joined thread: the futex value is its id.
    let stuck = tid_of(&dump, "stuck");
    assert!(
        reason("joiner").starts_with(&format!("joining thread {stuck} \"stuck\"")),
        "{dump}"
    );
    assert_eq!(reason("spinner"), "running):", "{dump}");
    assert!(
        reason("fifo-reader").starts_with("reading fd ")
            && reason("fifo-reader").contains(&format!(" ({})", fifo.display())),
        "{dump}"
    );
    // glibc records the owner of its mutex: that holder is certain.
    let c_holder = tid_of(&dump, "c-holder");
    assert!(
        reason("c-waiter").ends_with(&format!(
            " on pthread mutex C_MUTEX, held by {c_holder} \"c-holder\"):"
        )),
        "{dump}"
    );
    assert!(reason("cv-waiter").ends_with(" on Condvar READY):"), "{dump}");
    assert!(reason("rx").ends_with(" to receive on a channel):"), "{dump}");
    assert!(
        reason("sleeper").starts_with("sleeping") && reason("sleeper").contains("(a 59m "),
        "{dump}"
    );
    assert!(
        reason("manhole").starts_with("idle")
            && reason("manhole").ends_with(": manhole's listener, waiting for a client):"),
        "{dump}"
    );

    let top = summary(&dump);
    assert!(top[0].contains(" waiting on 5 locks"), "{top:#?}");
    assert!(top[0].contains("2 running"), "{top:#?}");
    let pool = top
        .iter()
        .find(|l| l.contains("Mutex POOL"))
        .expect("POOL listed");
    assert_eq!(pool.split_whitespace().next(), Some("50"), "{top:#?}");
    assert!(
        top.iter().any(|l| l
            .trim_start()
            .starts_with("2  RwLock TABLE (1 to write, 1 to read)")),
        "{top:#?}"
    );
    assert!(
        top.iter().any(|l| l.contains("pthread mutex C_MUTEX")
            && l.contains(&format!("held by {c_holder} \"c-holder\""))),
        "{top:#?}"
    );
    assert!(top.iter().any(|l| l.starts_with("  Look first: ")), "{top:#?}");

    // The same facts in machine mode, for tools.
    client.send(b"machine\n");
    client.read_until("\n");
    client.send(b"stacks\n");
    let doc: Value = serde_json::from_str(&client.read_until("\n")).expect("one JSON document");
    let threads = doc["data"]["threads"].as_array().expect("threads");
    let wait_of = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["wait"].clone())
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
    };
    let c_waiter = wait_of("c-waiter");
    assert_eq!(c_waiter["kind"], "pthread_mutex", "{c_waiter}");
    assert_eq!(c_waiter["object"], "C_MUTEX", "{c_waiter}");
    assert_eq!(c_waiter["holder"]["tid"].to_string(), c_holder, "{c_waiter}");
    assert_eq!(c_waiter["holder"]["name"], "c-holder", "{c_waiter}");
    assert_eq!(c_waiter["timed"], false, "{c_waiter}");
    let abba = wait_of("abba-1");
    assert_eq!(abba["kind"], "mutex", "{abba}");
    assert_eq!(abba["holder"], Value::Null, "{abba}");
    assert!(
        abba["word"].as_str().is_some_and(|w| w.starts_with("0x")),
        "{abba}"
    );
    let reader = wait_of("fifo-reader");
    assert_eq!(reader["kind"], "read", "{reader}");
    assert_eq!(reader["fd_target"], fifo.to_str().unwrap(), "{reader}");
    assert_eq!(wait_of("joiner")["holder"]["tid"].to_string(), stuck);

    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
    let _ = std::fs::remove_file(&fifo);
}

/// manhole::sync's locks record their holder: the dump names it, for how long, and where it was
/// taken; for an RwLock held for reading, how many readers and which took the last read lock.
#[test]
fn the_sync_wrappers_name_who_holds_them() {
    let mut app = start(&["abba-sync", "rw-sync"]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();
    let (s1, s2) = (tid_of(&dump, "abba-s1"), tid_of(&dump, "abba-s2"));
    let source = "tests/support/waits_host.rs";
    for (waiter, lock, holder, name) in [
        ("abba-s1", "SYNC_B", &s2, "abba-s2"),
        ("abba-s2", "SYNC_A", &s1, "abba-s1"),
    ] {
        let line = header(&dump, waiter);
        assert!(
            line.contains(&format!("on Mutex {lock}, held by {holder} \"{name}\" for "))
                && line.contains(&format!(", taken at {source}:")),
            "{line}"
        );
    }
    let reader = tid_of(&dump, "rws-reader");
    let writer = header(&dump, "rws-writer");
    assert!(
        writer.contains("on RwLock (to write) SYNC_TABLE, held for reading by 1 thread for ")
            && writer.contains(&format!(
                "(the last read lock taken by {reader} \"rws-reader\", taken at {source}:"
            )),
        "{writer}"
    );
    client.send(b"machine\n");
    client.read_until("\n");
    client.send(b"stacks\n");
    let doc: Value = serde_json::from_str(&client.read_until("\n")).expect("one JSON document");
    let threads = doc["data"]["threads"].as_array().expect("threads");
    let holder_of = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["wait"]["holder"].clone())
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
    };
    let held = holder_of("abba-s1");
    assert_eq!(held["tid"].to_string(), s2, "{held}");
    assert_eq!(held["certain"], true, "{held}");
    assert!(held["since_ms"].as_u64().is_some(), "{held}");
    assert!(
        held["at"].as_str().is_some_and(|at| at.starts_with(source)),
        "{held}"
    );
    let readers = holder_of("rws-writer");
    assert_eq!(
        (readers["readers"].as_u64(), readers["certain"].as_bool()),
        (Some(1), Some(false)),
        "{readers}"
    );
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

/// Each dump wakes every thread with its signal, so "how long" must survive dumps: a thread
/// found in the same wait by every dump keeps its clock, and the clock never runs ahead of the
/// truth.
#[test]
fn how_long_a_thread_waits_survives_the_dumps_and_stays_a_lower_bound() {
    let spawned = Instant::now();
    let mut app = start(&["pile", "20"]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    std::thread::sleep(Duration::from_millis(1200));
    client.command("stacks");
    std::thread::sleep(Duration::from_millis(1200));
    let asked = Instant::now();
    let dump = client.command("stacks");
    let since_spawn = spawned.elapsed();
    let line = summary(&dump)
        .into_iter()
        .find(|l| l.contains("Mutex POOL"))
        .unwrap_or_else(|| panic!("POOL in the summary:\n{dump}"))
        .to_owned();
    let longest = length(
        line.split("longest wait ")
            .nth(1)
            .unwrap_or_else(|| panic!("a longest wait: {line}")),
    );
    // Every waiter was blocked before `ready`, and stayed in the same wait through 3 dumps.
    assert!(
        longest >= Duration::from_millis(2000),
        "the wait's clock restarted at a dump: {line}"
    );
    assert!(
        longest <= since_spawn,
        "more than the truth ({since_spawn:?} since the host started, asked {:?} ago): {line}",
        asked.elapsed()
    );
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

#[test]
fn the_summary_of_a_thousand_threads_fits_a_screen() {
    let mut app = start(&["many", "1000", "pile", "30", "abba-std", "rw", "pthread", "spin"]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();
    let top = summary(&dump);
    assert!(top.len() <= 25, "{} lines:\n{}", top.len(), top.join("\n"));
    assert!(top[0].starts_with("Summary: 10"), "{top:#?}");
    assert!(top[0].contains("1000 waiting for an event"), "{top:#?}");
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

/// Reads one machine-mode reply to `command`.
fn machine(client: &mut Client, command: &str) -> Value {
    client.send(format!("{command}\n").as_bytes());
    serde_json::from_str(&client.read_until("\n")).expect("one JSON document")
}

/// The README's example: an ABBA deadlock on manhole::sync's locks is certain, with both
/// threads, both locks and the lines; the same on std's Mutex is never certain and never called
/// a deadlock.
#[test]
fn doctor_is_certain_of_a_deadlock_only_where_the_holders_are_recorded() {
    let mut app = start(&["abba-sync", "abba-std"]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();
    let (s1, s2) = (tid_of(&dump, "abba-s1"), tid_of(&dump, "abba-s2"));
    let text = client.command("doctor --long 0.2");
    let certain: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("certain ") && l.contains("deadlock"))
        .collect();
    assert_eq!(certain.len(), 1, "one certain deadlock:\n{text}");
    assert!(
        certain[0].starts_with(&format!(
            "certain  deadlock of 2 threads: {s1} \"abba-s1\" -> {s2} \"abba-s2\""
        )),
        "{text}"
    );
    for (waiter, lock, holder) in [("abba-s1", "SYNC_B", "abba-s2"), ("abba-s2", "SYNC_A", "abba-s1")] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("\"{waiter}\" waits on Mutex {lock} at "))
                    && l.contains("waits_host.rs:")
                    && l.contains("held by ")
                    && l.contains(&format!("\"{holder}\""))
                    && l.contains(", taken at tests/support/waits_host.rs:")),
            "{waiter}:\n{text}"
        );
    }
    assert!(
        text.contains("every holder is recorded: manhole::sync's record"),
        "{text}"
    );
    // The std pair: facts without a verdict.
    let std_part: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("LOCK_A") || l.contains("LOCK_B"))
        .collect();
    assert!(!std_part.is_empty(), "{text}");
    assert!(
        std_part
            .iter()
            .all(|l| !l.contains("deadlock") && !l.starts_with("certain")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("possible ") && l.contains("record no owner")),
        "{text}"
    );
    let doc = machine(&mut { client }, "machine");
    assert_eq!(doc["ok"], true);
    let mut client = Client::connect(&app.socket);
    client.opening();
    machine(&mut client, "machine");
    let doctor = machine(&mut client, "doctor --long 0.2");
    let findings = doctor["data"]["findings"].as_array().expect("findings");
    let deadlock = &findings[0];
    assert_eq!(deadlock["level"], "certain", "{doctor}");
    let mut tids: Vec<String> = deadlock["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    tids.sort();
    let mut expected = vec![s1, s2];
    expected.sort();
    assert_eq!(tids, expected, "{doctor}");
    assert!(
        findings
            .iter()
            .skip(1)
            .all(|f| f["level"] != "certain" || !f["title"].as_str().unwrap_or("").contains("deadlock"))
    );
    assert_eq!(machine(&mut client, "doctor --long nope")["ok"], false);
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

#[test]
fn locks_lists_every_lock_with_its_waiters_and_doctor_sees_busy_and_joined_threads() {
    let mut app = start(&["pile", "50", "rw", "join", "spin", "pthread"]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();
    let locks = client.command("locks");
    assert!(locks.starts_with("3 locks with waiters"), "{locks}");
    let pool = locks
        .split("\n\n")
        .find(|b| b.starts_with("Mutex POOL"))
        .unwrap_or_else(|| panic!("{locks}"));
    assert!(
        pool.contains("std records no owner") && pool.contains("  50 waiters:"),
        "{pool}"
    );
    assert!(
        pool.contains("    at ") && pool.contains("waits_host.rs:") && pool.contains("and 44 more"),
        "{pool}"
    );
    let table = locks
        .split("\n\n")
        .find(|b| b.starts_with("RwLock TABLE (1 to write, 1 to read)"))
        .unwrap_or_else(|| panic!("{locks}"));
    assert!(
        table.contains("\"rw-writer\"") && table.contains("\"rw-reader-2\""),
        "{table}"
    );
    let c_holder = tid_of(&dump, "c-holder");
    assert!(
        locks.contains(&format!(
            "pthread mutex C_MUTEX\n  held by {c_holder} \"c-holder\" (glibc's __owner field)"
        )),
        "{locks}"
    );

    // The spinner gets its share of the CPUs: on a loaded machine one look may find it under
    // a quarter of one, so look again (it never stops spinning).
    let spinner = tid_of(&dump, "spinner");
    let mut doctor = String::new();
    let busy = support::wait_until(support::PATIENCE, || {
        doctor = client.command("doctor --long 0.2");
        doctor.contains(&format!("certain  {spinner} \"spinner\" is busy: "))
    });
    assert!(busy, "{doctor}");
    let (joiner, stuck) = (tid_of(&dump, "joiner"), tid_of(&dump, "stuck"));
    assert!(
        doctor.contains(&format!(
            "certain  {joiner} \"joiner\" waits for {stuck} \"stuck\" to end"
        )),
        "{doctor}"
    );
    assert!(
        doctor.contains(&format!(
            "certain  pthread mutex C_MUTEX is held by {c_holder} \"c-holder\", which is itself blocked"
        )),
        "{doctor}"
    );

    machine(&mut client, "machine");
    let data = machine(&mut client, "locks");
    let listed = data["data"]["locks"].as_array().expect("locks");
    let pool = listed.iter().find(|l| l["object"] == "POOL").expect("POOL");
    assert_eq!(pool["waiters"].as_array().map(Vec::len), Some(50), "{pool}");
    assert_eq!(pool["holder"], Value::Null);
    let report = machine(&mut client, "report");
    assert!(report["data"]["locks"]["locks"].is_array(), "{report}");
    assert!(report["data"]["doctor"]["findings"].is_array(), "{report}");
    assert_eq!(machine(&mut client, "locks extra")["ok"], false);
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

/// A priority-inheritance mutex keeps its owner in the word (the kernel's); a static that is
/// not exposed is named from the symbol table.
#[test]
fn pi_mutex_owners_and_statics_that_are_not_exposed_are_named() {
    let mut app = start(&["pi", "hidden"]);
    let mut client = Client::connect(&app.socket);
    let dump = client.opening();
    let pi_holder = tid_of(&dump, "pi-holder");
    let reason = |name: &str| {
        header(&dump, name)
            .split_once(" (")
            .map_or("", |(_, r)| r)
            .to_owned()
    };
    assert!(
        reason("pi-waiter").ends_with(&format!(
            " on PI mutex PI_MUTEX, held by {pi_holder} \"pi-holder\"):"
        )),
        "{dump}"
    );
    assert!(
        reason("hidden-waiter").ends_with(" on Mutex manhole_waits_host::HIDDEN):"),
        "{dump}"
    );
    let doctor = client.command("doctor --long 0.2");
    assert!(
        doctor.contains(&format!(
            "certain  PI mutex PI_MUTEX is held by {pi_holder} \"pi-holder\", which is itself blocked"
        )),
        "{doctor}"
    );
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}

/// Two locks in one exposed static share its name but not their waiters.
#[test]
fn two_locks_in_one_static_are_two_locks() {
    let mut app = start(&["pair"]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let locks = client.command("locks");
    assert!(locks.starts_with("2 locks with waiters"), "{locks}");
    let blocks: Vec<&str> = locks
        .split("\n\n")
        .filter(|b| b.starts_with("Mutex PAIR"))
        .collect();
    assert_eq!(blocks.len(), 2, "{locks}");
    assert!(
        blocks.iter().all(|b| b.contains("  1 waiter:"))
            && locks.contains("\"left-waiter\"")
            && locks.contains("\"right-waiter\""),
        "{locks}"
    );
    drop(client);
    assert_eq!(app.ask("exit"), "exiting");
    let _ = app.finish();
}
