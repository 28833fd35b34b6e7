use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::json;

use super::*;

fn names(commands: &[&str], exposed: &[&str]) -> Names {
    Names {
        commands: commands.iter().map(|c| (*c).to_owned()).collect(),
        exposed: exposed.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn taken(documents: &[&[u8]]) -> Names {
    let mut names = Names::default();
    for document in documents {
        names.take(document);
    }
    names
}

fn help(commands: Value) -> Vec<u8> {
    json!({"ok": true, "command": "help", "data": {"commands": commands}, "text": ""})
        .to_string()
        .into_bytes()
}

fn vars(items: Value) -> Vec<u8> {
    json!({"ok": true, "command": "vars", "data": items, "text": ""})
        .to_string()
        .into_bytes()
}

#[test]
fn the_first_word_completes_commands_and_exposed_names_later_words_only_exposed_names() {
    let names = names(
        &["help", "?", "print", "p"],
        &["COUNTER", "config::LIMIT", "pool"],
    );
    assert_eq!(
        names.candidates("p", 1),
        (0, vec!["p".into(), "pool".into(), "print".into()])
    );
    assert_eq!(names.candidates("print p", 7), (6, vec!["pool".into()]));
    assert_eq!(names.candidates("print co", 8), (6, vec!["config::LIMIT".into()]));
    assert_eq!(names.candidates("he", 2), (0, vec!["help".into()]));
    assert_eq!(
        names.candidates("print he", 8),
        (6, vec![]),
        "commands only first"
    );
    // The cursor in the middle: only what is before it counts.
    assert_eq!(names.candidates("pool", 2).1, vec!["pool".to_owned()]);
}

#[test]
fn a_line_with_wide_whitespace_or_a_cursor_inside_a_character_does_not_panic() {
    let names = names(&["help"], &["COUNTER"]);
    // U+3000 is whitespace of three bytes.
    assert_eq!(
        names.candidates("print\u{3000}CO", 10),
        (8, vec!["COUNTER".into()])
    );
    let (_, found) = names.candidates("é", 1);
    assert!(found.is_empty());
}

#[test]
fn help_and_vars_answers_give_the_names_and_aliases() {
    let names = taken(&[
        br#"{"ok":true,"command":"machine","data":{"mode":"json","version":1},"text":""}"#,
        &help(json!([
            {"name": "stacks", "aliases": ["threads", "bt"], "usage": "stacks", "summary": "s"},
            {"name": "newcmd", "aliases": []},
        ])),
        &vars(json!([{"name": "COUNTER", "kind": "static"}, {"name": "config::LIMIT"}])),
        br#"{"ok":true,"command":"machine","data":{"mode":"text","version":1},"text":""}"#,
    ]);
    assert_eq!(names.commands, ["stacks", "threads", "bt", "newcmd"]);
    assert_eq!(names.exposed, ["COUNTER", "config::LIMIT"]);
}

#[test]
fn what_is_not_shaped_as_asked_is_skipped_and_the_rest_kept() {
    let garbage: &[&[u8]] = &[
        b"",
        b"\xff\xfe not json",
        b"{\"ok\":true,\"command\":\"help\",\"data\":{\"commands\":[",
        b"null",
        b"[1,2,3]",
        br#"{"ok":true,"command":7}"#,
        br#"{"ok":false,"command":"help","error":{"code":"x","message":"no"}}"#,
        br#"{"ok":true,"command":"help","data":[{"name":"HOSTILE"}]}"#,
        br#"{"ok":true,"command":"help","data":{"commands":"stacks"}}"#,
        br#"{"ok":true,"command":"help"}"#,
    ];
    for document in garbage {
        let names = taken(&[document]);
        assert!(
            names.commands.is_empty() && names.exposed.is_empty(),
            "{:?} gave {names:?}",
            String::from_utf8_lossy(document)
        );
    }
    // Fields missing or of the wrong type inside the lists: those entries are skipped.
    let names = taken(&[
        &help(json!([
            {"name": 7, "aliases": "x"},
            {"aliases": ["orphan-alias", 3, null]},
            "stacks",
            null,
            {"name": "info"},
            {"name": "log", "aliases": {"a": 1}},
        ])),
        &vars(json!({"name": "COUNTER"})),
    ]);
    assert_eq!(names.commands, ["orphan-alias", "info", "log"]);
    assert!(names.exposed.is_empty());
    // A failed help does not take away the exposed names, nor garbage after them.
    let names = taken(&[
        br#"{"ok":false,"command":"help","error":{"code":"x","message":"no"}}"#,
        &vars(json!([{"name": "COUNTER"}, {"name": 1}, {"kind": "static"}])),
        b"garbage",
    ]);
    assert!(names.commands.is_empty());
    assert_eq!(names.exposed, ["COUNTER"]);
}

#[test]
fn names_a_terminal_would_obey_or_that_cannot_be_typed_are_left_out() {
    let long = "x".repeat(NAME_MAX + 1);
    let names = taken(&[&vars(json!([
        {"name": "\u{1b}[2Jname"},
        {"name": "gpj\u{202e}exe"},
        {"name": "bell\u{7}"},
        {"name": "two words"},
        {"name": "tab\tbed"},
        {"name": ""},
        {"name": long},
        {"name": "ÉTAT_π"},
    ]))]);
    assert_eq!(names.exposed, ["ÉTAT_π"]);
}

#[test]
fn a_huge_answer_is_kept_to_a_bounded_number_of_names() {
    let items: Vec<Value> = (0..MAX_NAMES + 5000)
        .map(|i| json!({"name": format!("NAME_{i}")}))
        .collect();
    let names = taken(&[&vars(Value::Array(items))]);
    assert_eq!(names.exposed.len(), MAX_NAMES);
    assert_eq!(names.exposed[0], "NAME_0");
    // Nesting deeper than any parser's stack is an error, not a crash.
    let deep = format!(
        r#"{{"ok":true,"command":"help","data":{}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert!(taken(&[deep.as_bytes()]).commands.is_empty());
    // A long string is one name too long, skipped.
    let big = help(json!([{"name": "y".repeat(8 << 20)}, {"name": "ok"}]));
    assert_eq!(taken(&[&big]).commands, ["ok"]);
}

/// A session whose other end answers the client's lines with `answer` (given each line),
/// then sends `after`; returns the client's ends of it.
fn scripted(
    answer: impl Fn(&str) -> String + Send + 'static,
    after: &'static str,
) -> (
    UnixStream,
    BufReader<UnixStream>,
    std::thread::JoinHandle<Vec<String>>,
) {
    let (client, server) = UnixStream::pair().expect("socketpair");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let serving = std::thread::Builder::new()
        .name("scripted-manhole".into())
        .spawn(move || {
            let mut writer = server.try_clone().expect("clone");
            let mut lines = Vec::new();
            for line in BufReader::new(server).lines() {
                let Ok(line) = line else { break };
                let _ = writer.write_all(answer(&line).as_bytes());
                lines.push(line);
                if lines.len() == ASK.lines().count() {
                    let _ = writer.write_all(after.as_bytes());
                    break;
                }
            }
            lines
        })
        .expect("thread");
    let reader = BufReader::new(client.try_clone().expect("clone"));
    (client, reader, serving)
}

fn machine_ack(line: &str) -> String {
    let (mode, prompt) = if line == "machine off" {
        ("text", PROMPT)
    } else {
        ("json", "")
    };
    format!(
        "{}\n{prompt}",
        json!({"ok": true, "command": "machine", "data": {"mode": mode, "version": 1}, "text": ""})
    )
}

const PEER: Peer = Peer { pid: 1 };

#[test]
fn a_command_the_server_lists_is_completed_and_the_session_is_left_at_its_prompt() {
    let (client, mut reader, serving) = scripted(
        |line| match line {
            "help" => format!(
                "{}\n",
                String::from_utf8_lossy(&help(json!([{"name": "zebra", "aliases": ["zz"]}])))
            ),
            "vars" => format!("{}\n", String::from_utf8_lossy(&vars(json!([{"name": "zoo"}])))),
            _ => machine_ack(line),
        },
        "next answer\n",
    );
    let names = fetch(&client, &mut reader, PEER).expect("fetch");
    assert_eq!(
        names.candidates("z", 1).1,
        ["zebra", "zoo", "zz"].map(String::from).to_vec()
    );
    assert_eq!(serving.join().expect("server"), ASK.lines().collect::<Vec<_>>());
    let mut rest = String::new();
    reader.read_line(&mut rest).expect("read");
    assert_eq!(rest, "next answer\n", "the prompt, and only it, was read");
}

#[test]
fn a_server_that_answers_help_with_garbage_still_gives_the_exposed_names() {
    for bad_help in [
        "this is not json\n",
        "{\"ok\":false,\"command\":\"help\",\"error\":{\"code\":\"unknown_command\",\"message\":\"?\"}}\n",
        "{\"ok\":true,\"command\":\"help\",\"data\":{\"commands\":42},\"text\":\"\"}\n",
        "\n",
    ] {
        let (client, mut reader, serving) = scripted(
            move |line| match line {
                "help" => bad_help.to_owned(),
                "vars" => format!("{}\n", String::from_utf8_lossy(&vars(json!([{"name": "ZOO"}])))),
                _ => machine_ack(line),
            },
            "next answer\n",
        );
        let names = fetch(&client, &mut reader, PEER).expect("the session goes on");
        assert!(names.commands.is_empty(), "{bad_help:?}");
        assert_eq!(names.exposed, ["ZOO"], "{bad_help:?}");
        serving.join().expect("server");
        let mut rest = String::new();
        reader.read_line(&mut rest).expect("read");
        assert_eq!(rest, "next answer\n", "{bad_help:?}");
    }
}

#[test]
fn a_server_that_does_not_come_back_to_its_prompt_is_an_error_not_a_panic() {
    let (client, mut reader, serving) = scripted(
        |line| match line {
            "machine off" => "{\"ok\":true,\"command\":\"machine\"}\nNOPE".to_owned(),
            _ => "{}\n".to_owned(),
        },
        "",
    );
    let failure = fetch(&client, &mut reader, PEER).expect_err("no prompt");
    assert!(
        failure.message.contains("without its prompt"),
        "{}",
        failure.message
    );
    serving.join().expect("server");
    // One that answers half and leaves.
    let (client, server) = UnixStream::pair().expect("socketpair");
    let serving = std::thread::Builder::new()
        .name("leaving-manhole".into())
        .spawn(move || {
            let mut writer = server.try_clone().expect("clone");
            let mut reader = BufReader::new(server);
            for line in ["machine", "help"] {
                let mut got = String::new();
                reader.read_line(&mut got).expect("read");
                assert_eq!(got.trim(), line);
                writer.write_all(b"{}\n").expect("write");
            }
        })
        .expect("thread");
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let failure = fetch(&client, &mut reader, PEER).expect_err("it left");
    assert!(
        failure.message.contains("closed the connection"),
        "{}",
        failure.message
    );
    serving.join().expect("server");
}

/// The candidates come from a live manhole in this process: every command and alias its `help`
/// shows (read from the text listing, not the JSON the client parses) and what it exposes.
#[test]
fn a_live_manhole_gives_its_commands_and_exposed_names() {
    let options = manhole::Options::new()
        .verbose(false)
        .local("answer_to_everything", std::sync::Arc::new(42));
    let handle = manhole::install(options).expect("install");
    let path = handle.socket_path().expect("listening");
    let connect = || {
        let stream = UnixStream::connect(&path).expect("connect");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let peer = Peer {
            pid: std::process::id() as i32,
        };
        wire::read_opening(&mut reader, peer, false, Duration::from_secs(20)).expect("opening");
        (stream, reader, peer)
    };
    let (stream, mut reader, peer) = connect();
    let names = fetch(&stream, &mut reader, peer).expect("fetch");
    // Still in step, in text mode.
    (&stream).write_all(b"help\n").expect("write");
    let mut listing = Vec::new();
    while !listing.ends_with(PROMPT.as_bytes()) {
        let mut byte = [0u8];
        reader.read_exact(&mut byte).expect("read");
        listing.push(byte[0]);
    }
    let listing = String::from_utf8(listing).expect("UTF-8");
    assert!(listing.starts_with("Commands ("), "{listing}");
    let mut shown: Vec<String> = Vec::new();
    for line in listing.lines().filter(|l| l.starts_with("  ")) {
        shown.extend(line.split_whitespace().next().map(str::to_owned));
        if let Some((_, also)) = line.rsplit_once("(also: ") {
            shown.extend(also.trim_end_matches(')').split(", ").map(str::to_owned));
        }
    }
    let mut commands = names.commands.clone();
    commands.sort();
    shown.sort();
    assert!(shown.len() > 10, "{listing}");
    assert_eq!(
        commands, shown,
        "every command and alias the server has, no other"
    );
    assert!(commands.iter().any(|c| c == "?"), "an alias never in a hand copy");
    assert_eq!(names.candidates("he", 2).1, ["help"]);
    assert_eq!(
        names.candidates("print answer", 12),
        (6, vec!["answer_to_everything".to_owned()])
    );
    assert_eq!(names.candidates("ans", 3).1, ["answer_to_everything"]);
    drop((stream, reader));
}
