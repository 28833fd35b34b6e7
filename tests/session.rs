//! What a client sees, and that nothing a client sends or does harms the host.

mod support;

use std::time::Duration;

use support::{App, Client, PATIENCE, unique_socket, wait_until};

#[test]
fn a_session_opens_with_the_dump_then_the_banner_then_the_prompt() {
    let app = App::serve(&[
        "--socket",
        unique_socket("open").to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let mut client = Client::connect(&app.socket);
    let opening = client.opening();
    let lines: Vec<&str> = opening.lines().collect();
    assert!(
        lines[0].starts_with(&format!("######### ProcessID={}, ThreadID=", app.pid))
            && lines[0].ends_with(" #########"),
        "{opening}"
    );
    assert!(
        opening.contains(&format!("Thread {} \"main\" (", app.pid)),
        "{opening}"
    );
    // The two workers share one stack: one block names both, and the stack is printed once.
    assert!(
        opening
            .lines()
            .any(|l| l.contains("\"worker-0\" (sleeping") && l.ends_with(" sleep)):"))
            && opening.contains(" sleep)):\n  and 1 more with this stack:\n"),
        "{opening}"
    );
    assert!(opening.contains(" \"worker-1\"\n"), "{opening}");
    assert_eq!(opening.matches("testapp_worker_sleeps").count(), 1, "{opening}");
    assert!(
        opening.lines().any(|l| l.contains("\"manhole\" (idle")
            && l.ends_with(": manhole's listener, waiting for a client):")),
        "the listener shows too:\n{opening}"
    );
    assert!(opening.contains("\"manhole-session\" (running):"), "{opening}");
    assert!(
        opening.contains("manhole::session::serve"),
        "the session thread is unwound:\n{opening}"
    );
    let footer = lines
        .iter()
        .position(|l| *l == "#".repeat(45))
        .expect("footer line of 45 #");
    assert!(
        lines[footer + 1].starts_with(&format!("manhole {} in ", env!("CARGO_PKG_VERSION"))),
        "{opening}"
    );
    assert!(
        lines[footer + 1].contains(&format!("(pid {})", app.pid)),
        "{opening}"
    );
    assert_eq!(lines[footer + 2], "Type \"help\" for commands.");
    assert_eq!(
        lines.len(),
        footer + 3,
        "the prompt follows the banner:\n{opening}"
    );
}

#[test]
fn help_stacks_info_and_quit() {
    let app = App::serve(&["--socket", unique_socket("cmds").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();

    let help = client.command("help");
    for command in [
        "stacks", "info", "fds", "env", "clients", "report", "vars", "print", "set", "call", "log", "watch",
        "machine", "help", "quit",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} missing:\n{help}"
        );
    }
    assert!(client.command("help info").starts_with("usage: info\n"));
    assert!(client.command("? quit").starts_with("usage: quit\n"));

    for alias in ["stacks", "threads", "bt"] {
        let dump = client.command(alias);
        assert!(
            dump.starts_with(&format!("######### ProcessID={}", app.pid)),
            "{alias}:\n{dump}"
        );
        assert!(
            dump.ends_with(&format!("{}\n", "#".repeat(45))),
            "{alias}:\n{dump}"
        );
    }

    let info = client.command("info");
    assert!(
        info.starts_with(&format!("pid         {} (parent ", app.pid)),
        "{info}"
    );
    for key in [
        "exe", "argv", "cwd", "user", "uptime", "threads", "fds", "memory", "cpu", "sessions", "socket",
        "versions",
    ] {
        assert!(info.lines().any(|l| l.starts_with(key)), "{key} missing:\n{info}");
    }
    assert!(
        info.contains(&format!("socket      {}", app.socket.display())),
        "{info}"
    );
    assert!(info.contains("sessions    1 open (at most 32)"), "{info}");

    assert_eq!(client.command(""), "", "an empty line just prompts again");
    assert_eq!(client.command("  "), "");
    assert!(
        client
            .command("frobnicate now")
            .starts_with("error: unknown command \"frobnicate\";")
    );
    assert!(
        client
            .command("info extra")
            .starts_with("error: info takes no arguments")
    );

    client.send(b"quit\n");
    assert_eq!(client.read_to_end(), "", "quit closes the session at once");
    let mut again = Client::connect(&app.socket);
    again.opening();
    again.send(b"exit\n");
    assert_eq!(again.read_to_end(), "");
}

#[test]
fn garbage_input_gets_one_line_errors_and_the_session_goes_on() {
    let app = App::serve(&["--socket", unique_socket("garbage").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();

    assert_eq!(
        client.command("in\u{0}fo"),
        "error: input contains a NUL byte (at offset 2); it was ignored\n"
    );
    client.send(b"he\xff\xfelp\n");
    assert_eq!(
        client.read_until(">>> "),
        "error: input is not valid UTF-8 (bad byte at offset 2); it was ignored\n"
    );

    let huge = vec![b'A'; 3 * 1024 * 1024];
    client.send(&huge);
    client.send(b"\n");
    let reply = client.read_until(">>> ");
    assert_eq!(
        reply,
        format!(
            "error: line too long ({} bytes; at most 65536); it was ignored\n",
            huge.len()
        )
    );

    let escape = client.command("\u{1b}[2J\u{7}");
    assert!(
        escape.starts_with("error: unknown command \"\\u{1b}[2J\\u{7}\""),
        "control bytes are escaped: {escape:?}"
    );

    // Commands split across writes and several in one write are both fine.
    client.send(b"in");
    std::thread::sleep(Duration::from_millis(50));
    client.send(b"fo\r\n");
    assert!(client.read_until(">>> ").starts_with("pid "));
    client.send(b"help quit\nhelp info\n");
    assert!(client.read_until(">>> ").starts_with("usage: quit"));
    assert!(client.read_until(">>> ").starts_with("usage: info"));
    assert!(
        client.command("info").starts_with("pid "),
        "still serving after all that"
    );
}

#[test]
fn clients_vanishing_mid_output_do_not_harm_the_host() {
    // The test app dies on SIGPIPE like a C program would, so any write that raised it shows.
    let mut app = App::serve(&[
        "--socket",
        unique_socket("vanish").to_str().unwrap(),
        "--threads",
        "20",
    ]);
    let (fds, threads) = support::baseline(&app);

    for round in 0..30 {
        let mut client = Client::connect(&app.socket);
        match round % 3 {
            // Gone before reading anything.
            0 => drop(client),
            // Reads a little of the dump, then goes.
            1 => {
                let mut some = [0u8; 16];
                std::io::Read::read_exact(&mut client.stream, &mut some).unwrap();
                drop(client);
            }
            // Asks for a lot of output and leaves without reading it.
            _ => {
                client.send("stacks\n".repeat(50).as_bytes());
                drop(client);
            }
        }
    }
    assert!(app.is_alive(), "the host survived");
    assert!(
        app.settles_to(fds, threads),
        "fds {} (want {fds}), threads {:?}",
        app.fd_count(),
        app.thread_names()
    );
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert!(client.command("info").starts_with("pid "));
}

#[test]
fn a_client_that_ends_its_input_ends_its_session_only() {
    let mut app = App::serve(&["--socket", unique_socket("eof").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    client.send(b"info");
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = client.read_to_end();
    assert!(
        rest.starts_with("pid "),
        "a last line without newline still runs:\n{rest}"
    );
    assert!(rest.ends_with(">>> "), "{rest}");
    assert!(app.is_alive());
    Client::connect(&app.socket).opening();
}

#[test]
fn an_idle_session_is_closed_with_a_message() {
    let app = App::serve(&[
        "--socket",
        unique_socket("idle").to_str().unwrap(),
        "--idle-ms",
        "300",
    ]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let rest = client.read_to_end();
    assert_eq!(rest, "\nmanhole: closing this session after 0s idle\n");
    assert!(
        wait_until(PATIENCE, || app.stderr().contains("closed after 0 s idle")),
        "{}",
        app.stderr()
    );
}

#[test]
fn sessions_beyond_the_limit_are_refused_with_one_line() {
    let app = App::serve(&[
        "--socket",
        unique_socket("limit").to_str().unwrap(),
        "--max-sessions",
        "2",
    ]);
    let mut first = Client::connect(&app.socket);
    first.opening();
    let mut second = Client::connect(&app.socket);
    second.opening();
    let mut third = Client::connect(&app.socket);
    assert_eq!(
        third.read_to_end(),
        "manhole: too many sessions open (2); try again later\n"
    );
    first.send(b"quit\n");
    first.read_to_end();
    // Once one leaves, there is room again (a refused probe closes at once and takes no room).
    let mut probe = None;
    assert!(wait_until(PATIENCE, || {
        let mut next = Client::connect(&app.socket);
        let mut head = [0u8; 9];
        let admitted =
            std::io::Read::read_exact(&mut next.stream, &mut head).is_ok() && &head == b"#########";
        if admitted {
            next.read_until(support::PROMPT);
            probe = Some(next);
        }
        admitted
    }));
    assert!(second.command("info").contains("sessions    2 open (at most 2)"));
    assert!(probe.is_some());
}

/// A deploy that replaces the binary of a running process: the dump's frame names come from
/// the file now at that path, another build, and the dump says so instead of passing them off.
#[test]
fn a_dump_says_when_the_executable_was_replaced_on_disk() {
    let dir = std::env::temp_dir().join(format!("mh-replaced-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("manhole-testapp");
    std::fs::copy(support::testapp(), &exe).unwrap();
    let app = App::start(
        std::process::Command::new(&exe)
            .arg("serve")
            .arg("--socket")
            .arg(unique_socket("replaced")),
    )
    .unwrap();
    let mut client = Client::connect(&app.socket);
    let before = client.opening();
    assert!(!before.contains("replaced on disk"), "{before}");
    // As a deploy does: a new file written beside it, renamed over it.
    let next = dir.join("manhole-testapp.new");
    std::fs::copy(support::testapp(), &next).unwrap();
    std::fs::rename(&next, &exe).unwrap();
    let after = client.command("stacks");
    assert!(
        after.contains(&format!(
            "Note: the executable {} was replaced on disk",
            exe.display()
        )),
        "{after}"
    );
    drop(client);
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}
