//! The program's code that manhole runs on its own threads (an exposed function through `call`,
//! a value's `Debug` through `print`) runs with the program's signal mask, not manhole's
//! block-everything one: a thread the program starts from there does not block HUP, INT, TERM,
//! USR1… for the rest of its life. Manhole's own threads still block them.

mod support;

use std::process::Command;

use support::{App, Client, unique_socket};

fn host(args: &[&str]) -> App {
    App::start(Command::new(env!("CARGO_BIN_EXE_manhole-runtime-host")).args(args))
        .unwrap_or_else(|line| panic!("the host did not start: {line}"))
}

/// The hex `SigBlk` after `mask ` in a line.
fn mask_in(text: &str) -> u64 {
    let hex = text
        .split("mask ")
        .nth(1)
        .map(|rest| rest.trim_start_matches(|c: char| !c.is_ascii_hexdigit()))
        .map(|rest| &rest[..rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len())])
        .filter(|hex| !hex.is_empty())
        .unwrap_or_else(|| panic!("no mask in {text:?}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{hex:?}: {e}"))
}

/// The `SigBlk` of the first thread of `pid` named `name`.
fn thread_mask(pid: u32, name: &str) -> u64 {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(entry.unwrap().path().join("status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.strip_prefix("Name:").map(str::trim) == Some(name))
        {
            return status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap();
        }
    }
    panic!("no thread {name} in {pid}");
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

#[test]
fn code_run_from_call_and_print_has_the_programs_signal_mask() {
    let mut app = host(&["--socket", unique_socket("progmask").to_str().unwrap()]);
    let main = mask_in(&app.ask("main-mask"));
    assert_eq!(
        main & bit(libc::SIGTERM),
        0,
        "the host's main thread blocks nothing"
    );
    let mut client = Client::connect(&app.socket);
    client.opening();

    let reply = client.command("call start_worker");
    assert!(reply.contains("started"), "{reply}");
    let worker = app.ask("worker");
    assert_eq!(
        mask_in(&worker),
        main,
        "a thread started from a call blocks what the main thread blocks: {worker}"
    );
    let reply = client.command("call call_mask");
    assert_eq!(mask_in(&reply), main, "{reply}");
    let reply = client.command("print MASK_IN_DEBUG");
    assert_eq!(mask_in(&reply), main, "a value's Debug too: {reply}");

    // Manhole's own threads still block the program's signals.
    for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
        assert_ne!(
            thread_mask(app.pid, "manhole-session") & bit(signal),
            0,
            "the session thread blocks {signal}"
        );
    }

    // A program that blocks a signal in its threads (to read it from a signalfd) has it blocked
    // in its code run by manhole too.
    assert_eq!(app.ask("block-usr2"), "blocked");
    let main = mask_in(&app.ask("main-mask"));
    assert_ne!(main & bit(libc::SIGUSR2), 0);
    let reply = client.command("call call_mask");
    assert_eq!(mask_in(&reply), main, "{reply}");
}
