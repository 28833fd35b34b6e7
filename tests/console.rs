//! The console end to end: machine mode, watch, fds, env, clients, report, stacks filters, and
//! a long call abandoned by its client.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{App, Client, PATIENCE, unique_socket, wait_until};

/// Reads one machine-mode document: exactly one line of JSON.
fn document(client: &mut Client) -> Value {
    let line = client.read_until("\n");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON document: {e}: {line:?}"))
}

fn ask(client: &mut Client, command: &str) -> Value {
    client.send(format!("{command}\n").as_bytes());
    document(client)
}

#[test]
fn machine_mode_answers_every_command_with_one_json_document() {
    let app = App::serve(&[
        "--socket",
        unique_socket("machine").to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let switched = ask(&mut client, "machine");
    assert_eq!(
        switched,
        serde_json::json!({"ok": true, "command": "machine", "data": {"mode": "json", "version": 1}, "text": ""})
    );

    let info = ask(&mut client, "info");
    assert_eq!(info["ok"], true);
    assert!(
        info["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pid         {} (parent", app.pid))
    );
    assert_eq!(info["command"], "info");
    assert_eq!(info["data"]["pid"]["pid"], app.pid);
    assert_eq!(info["data"]["socket"], app.socket.display().to_string());

    let stacks = ask(&mut client, "stacks worker-*");
    let threads = stacks["data"]["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "{stacks}");
    for thread in threads {
        assert!(thread["name"].as_str().unwrap().starts_with("worker-"));
        assert_eq!(thread["capture"], "in_process");
        let functions: Vec<&str> = thread["frames"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["function"].as_str())
            .collect();
        assert!(
            functions.iter().any(|f| f.contains("testapp_worker_sleeps")),
            "{functions:?}"
        );
    }

    let help = ask(&mut client, "help");
    let names: Vec<&str> = help["data"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"report") && names.contains(&"machine"),
        "{names:?}"
    );

    // Errors: a stable code and a message, and the session goes on.
    let unknown = ask(&mut client, "frobnicate");
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["command"], Value::Null);
    assert_eq!(unknown["error"]["code"], "unknown_command");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("frobnicate")
    );
    assert_eq!(ask(&mut client, "print NOPE")["error"]["code"], "not_found");
    assert_eq!(ask(&mut client, "watch info")["error"]["code"], "unsupported");
    client.send(b"in\xfffo\n");
    assert_eq!(document(&mut client)["error"]["code"], "input");
    client.send(&vec![b'x'; 100_000]);
    client.send(b"\n");
    assert_eq!(document(&mut client)["error"]["code"], "input");
    // An empty line is no command: no document. The next command answers at once.
    client.send(b"\n\n");
    assert_eq!(ask(&mut client, "clients")["command"], "clients");

    let back = ask(&mut client, "machine off");
    assert_eq!(back["data"]["mode"], "text");
    assert_eq!(client.read_until(support::PROMPT), "", "the prompt is back");
    assert!(
        client.command("info").starts_with("pid "),
        "text mode again, with a prompt"
    );
}

#[test]
fn watch_repeats_a_command_until_its_count_or_enter() {
    let app = App::serve(&["--socket", unique_socket("watch").to_str().unwrap()]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let three = client.command("watch -n 0.1 -c 3 clients");
    for run in 1..=3 {
        assert!(
            three.contains(&format!(
                "Every 0.1s: clients  (run {run} of 3; press Enter to stop)\n"
            )),
            "{three}"
        );
    }
    assert_eq!(three.matches("(you)").count(), 3, "{three}");

    client.send(b"watch -n 0.2 info\n");
    let first = client.read_until("press Enter to stop)\n");
    assert!(first.starts_with("Every 0.2s: info  (run 1"), "{first}");
    client.send(b"\n");
    client.read_until(support::PROMPT);
    assert!(
        client.command("help quit").starts_with("usage: quit"),
        "the session goes on after a watch"
    );
}

#[test]
fn fds_env_clients_and_report() {
    let socket = unique_socket("look");
    let mut command = Command::new(support::testapp());
    command
        .args(["serve", "--socket", socket.to_str().unwrap()])
        .env("SERVICE_API_TOKEN", "tok-123")
        .env("DATABASE_URL", "postgres://app:hunter2@db:5432/main")
        .env("PLAIN_SETTING", "visible");
    let app = App::start(&mut command).unwrap();
    let mut first = Client::connect(&app.socket);
    first.opening();
    let mut client = Client::connect(&app.socket);
    client.opening();

    let fds = client.command("fds");
    assert!(
        fds.lines()
            .any(|l| l.contains("socket:[") && l.ends_with("(manhole)")),
        "{fds}"
    );
    assert!(fds.contains(" open of "), "{fds}");

    let env = client.command("env");
    assert!(env.contains("SERVICE_API_TOKEN=<redacted>\n"), "{env}");
    assert!(
        env.contains("DATABASE_URL=postgres://app:<redacted>@db:5432/main\n"),
        "{env}"
    );
    assert!(env.contains("PLAIN_SETTING=visible\n"), "{env}");
    assert!(!env.contains("tok-123") && !env.contains("hunter2"));
    assert_eq!(client.command("env PLAIN*"), "PLAIN_SETTING=visible\n");

    let clients = client.command("clients");
    assert_eq!(clients.lines().count(), 2, "{clients}");
    assert_eq!(clients.matches("(you)").count(), 1, "{clients}");
    assert!(
        clients.contains(&format!("pid {:<8}", std::process::id())),
        "{clients}"
    );

    let report = client.command("report");
    let report: Value = serde_json::from_str(report.trim_end()).expect("report is one JSON document");
    assert_eq!(report["info"]["pid"]["pid"], app.pid);
    assert!(
        report["threads"]["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "manhole")
    );
    assert_eq!(report["env"]["SERVICE_API_TOKEN"], "<redacted>");
    assert_eq!(report["clients"].as_array().unwrap().len(), 2);
    assert!(
        report["fds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["manhole"] == true)
    );
    assert!(report["exposed"].is_array());
}

#[test]
fn stacks_filters_by_name_and_tid() {
    let app = App::serve(&[
        "--socket",
        unique_socket("filters").to_str().unwrap(),
        "--threads",
        "3",
    ]);
    let mut client = Client::connect(&app.socket);
    client.opening();
    let workers = client.command("stacks worker-*");
    assert!(
        workers.contains("\"worker-0\"") && workers.contains("\"worker-2\""),
        "{workers}"
    );
    assert!(
        !workers.contains("\"manhole\"") && !workers.contains("\"main\""),
        "{workers}"
    );
    let main = client.command(&format!("stacks {}", app.pid));
    assert!(
        main.contains(&format!("Thread {} \"main\"", app.pid)) && !main.contains("worker"),
        "{main}"
    );
    assert_eq!(
        client.command("stacks nothing-like-this"),
        "error: no thread matches nothing-like-this\n"
    );
    assert!(
        client
            .command("stacks --bogus")
            .starts_with("error: stacks does not understand \"--bogus\"")
    );
}

#[test]
fn standard_library_paths_are_shown_short_and_whole_with_full() {
    let app = App::serve(&[
        "--socket",
        unique_socket("paths").to_str().unwrap(),
        "--threads",
        "2",
    ]);
    let mut client = Client::connect(&app.socket);
    let opening = client.opening();
    assert!(
        opening.contains("        at std/src/") && !opening.contains("/rustc/"),
        "{opening}"
    );
    let full = client.command("stacks --full worker-*");
    assert!(full.contains("        at /rustc/"), "{full}");
}

#[test]
fn a_long_call_is_abandoned_when_its_client_leaves() {
    let socket = unique_socket("abandon");
    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-macro-app"));
    command.env("MANHOLE", format!("socket_path={}", socket.display()));
    let mut app = App::start(&mut command).unwrap();
    app.socket = socket;
    let calls = |app: &App| app.thread_names().iter().filter(|n| *n == "manhole-call").count();

    let mut caller = Client::connect(&app.socket);
    caller.opening();
    caller.send(b"call sleep_for 4000\n");
    assert!(
        wait_until(PATIENCE, || calls(&app) == 1),
        "the call runs on its own thread"
    );
    drop(caller);

    // The session ends at once; the call runs on, and the service goes on serving.
    let mut other = Client::connect(&app.socket);
    other.opening();
    assert!(
        wait_until(PATIENCE, || other.command("clients").lines().count() == 1),
        "the abandoned session is gone"
    );
    assert_eq!(calls(&app), 1, "the call is still running");
    assert_eq!(other.command("call add 20 22"), "42\n");
    assert!(
        wait_until(Duration::from_secs(10), || calls(&app) == 0),
        "the call finishes on its own"
    );
    assert!(app.is_alive());

    // A client that stays gets the answer, even after a half-close.
    other.send(b"call sleep_for 300\n");
    other.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(other.read_to_end(), "\"slept 300 ms\"\n>>> ");
}
