//! The console's commands, run without a socket against a server that listens nowhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::registry::Local;
use crate::spawn::Spawner;
use crate::sys::{PeerCred, SignalSet};
use crate::text::{human_duration, matches_pattern, quoted, split_words};

/// A running manhole as a command sees it, without a socket or a thread.
pub(crate) struct FakeHost {
    locals: Vec<Local>,
    started: std::time::Instant,
    spawner: Spawner,
}

impl FakeHost {
    pub(crate) fn new(locals: Vec<Local>) -> FakeHost {
        FakeHost {
            locals,
            started: std::time::Instant::now(),
            spawner: Spawner::new(SignalSet::empty()),
        }
    }
}

impl Host for FakeHost {
    fn sessions(&self) -> Vec<SessionInfo> {
        vec![SessionInfo {
            id: 1,
            peer: PeerCred {
                pid: Some(1),
                uid: 0,
                gid: 0,
            },
            opened: std::time::SystemTime::now(),
            is_current: true,
        }]
    }

    fn max_sessions(&self) -> usize {
        32
    }

    fn socket_path(&self) -> Option<std::path::PathBuf> {
        Some("/tmp/manhole-unit-test".into())
    }

    fn started(&self) -> std::time::Instant {
        self.started
    }

    fn own_fds(&self) -> Vec<std::os::fd::RawFd> {
        Vec::new()
    }

    fn locals(&self) -> &[Local] {
        &self.locals
    }

    fn program_mask(&self) -> SignalSet {
        SignalSet::empty()
    }

    fn spawner(&self) -> &Spawner {
        &self.spawner
    }
}

fn server() -> FakeHost {
    let sessions: Arc<Mutex<Vec<&str>>> = Arc::new(Mutex::new(vec!["alice", "bob"]));
    FakeHost::new(vec![Local {
        name: "sessions".into(),
        type_name: "Mutex<Vec<&str>>",
        value: std::panic::AssertUnwindSafe(sessions),
    }])
}

fn run(host: &FakeHost, line: &str) -> (Option<&'static str>, Outcome) {
    let context = Context {
        host,
        peer: PeerCred {
            pid: Some(1),
            uid: 0,
            gid: 0,
        },
        client: None,
        machine: false,
    };
    execute(line, &context)
}

fn reply(host: &FakeHost, line: &str) -> Reply {
    match run(host, line).1 {
        Outcome::Reply(reply) => reply,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn help_lists_every_command_once_grouped_and_fits_a_terminal() {
    let text = reply(&server(), "help").text;
    for c in commands() {
        assert_eq!(
            text.matches(&format!("\n  {} ", c.name)).count(),
            1,
            "{}:\n{text}",
            c.name
        );
    }
    for group in [
        "Look at the process:",
        "What the program exposes:",
        "This session:",
    ] {
        assert!(text.contains(group), "{text}");
    }
    assert!(text.contains("(also: threads, bt)"), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 80),
        "fits a terminal:\n{text}"
    );
}

#[test]
fn help_for_one_command_by_name_or_alias() {
    let s = server();
    let text = reply(&s, "help bt").text;
    assert!(text.starts_with("usage: stacks [--full] [NAME|TID…]\n"), "{text}");
    assert!(text.contains("effect: reads only; pauses each thread"), "{text}");
    assert_eq!(reply(&s, "help nope").failure.unwrap().code, "not_found");
    assert_eq!(reply(&s, "help a b").failure.unwrap().code, "usage");
}

#[test]
fn names_and_aliases_are_unique() {
    let mut all: Vec<&str> = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
        .collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count);
}

#[test]
fn unknown_commands_and_bad_quoting_are_one_clear_line() {
    let s = server();
    let r = reply(&s, "frobnicate now");
    assert_eq!(
        r.text,
        "error: unknown command \"frobnicate\"; type \"help\" for the list\n"
    );
    assert_eq!(r.failure.unwrap().code, "unknown_command");
    assert_eq!(reply(&s, "set X \"open").failure.unwrap().code, "usage");
    assert_eq!(reply(&s, "info extra").failure.unwrap().code, "usage");
    assert_eq!(run(&s, "   ").1, Outcome::Reply(Reply::ok("", Json::Null)));
}

#[test]
fn hostile_words_are_escaped_and_cut() {
    let shown = quoted("\u{1b}[2J\u{7}evil");
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown}");
    assert!(quoted(&"x".repeat(10_000)).len() < 60);
}

#[test]
fn words_split_like_a_shell() {
    let split = |s: &str| split_words(s).unwrap();
    assert_eq!(split("  call  f 1 2 "), ["call", "f", "1", "2"]);
    assert_eq!(split(r#"set MODE "read only""#), ["set", "MODE", "read only"]);
    assert_eq!(
        split(r#"call f 'a "b"' "c \"d\"" e\ f"#),
        ["call", "f", "a \"b\"", "c \"d\"", "e f"]
    );
    assert_eq!(split(r#"set S """#), ["set", "S", ""]);
    assert!(split_words("call f \"open").is_err());
    assert!(split_words("call f 'open").is_err());
    assert!(split_words("oops \\").is_err());
}

#[test]
fn patterns_are_substrings_or_globs() {
    assert!(matches_pattern("CACHE", "HOT_CACHE_SIZE"));
    assert!(matches_pattern("HOT*", "HOT_CACHE_SIZE"));
    assert!(matches_pattern("*SIZE", "HOT_CACHE_SIZE"));
    assert!(matches_pattern("H?T*", "HOT_CACHE_SIZE"));
    assert!(matches_pattern("*C*E*", "HOT_CACHE_SIZE"));
    assert!(!matches_pattern("COLD*", "HOT_CACHE_SIZE"));
    assert!(!matches_pattern("*X", "HOT_CACHE_SIZE"));
    // A pathological pattern stays fast (no exponential backtracking).
    assert!(!matches_pattern(
        &format!("{}b", "*a".repeat(30)),
        &"a".repeat(50)
    ));
}

#[test]
fn locals_are_listed_and_printed() {
    let s = server();
    let vars = reply(&s, "vars sess*");
    assert!(
        vars.text
            .starts_with("sessions  local  Mutex<Vec<&str>>  (Options::local)"),
        "{}",
        vars.text
    );
    let printed = reply(&s, "print sessions");
    assert!(printed.text.contains("\"alice\""), "{}", printed.text);
    assert_eq!(reply(&s, "sessions").text, printed.text, "a bare name prints");
    assert_eq!(reply(&s, "set sessions x").failure.unwrap().code, "not_writable");
    assert_eq!(reply(&s, "call sessions").failure.unwrap().code, "not_a_function");
    assert_eq!(reply(&s, "print nope").failure.unwrap().code, "not_found");
}

#[test]
fn info_text_and_data_agree() {
    let r = reply(&server(), "info");
    assert!(
        r.text
            .starts_with(&format!("pid         {} (parent ", std::process::id())),
        "{}",
        r.text
    );
    let Json::Obj(fields) = &r.data else {
        panic!("{:?}", r.data)
    };
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    for key in [
        "pid", "exe", "argv", "cwd", "user", "uptime", "threads", "fds", "memory", "cpu", "sessions",
    ] {
        assert!(keys.contains(&key), "{key} missing: {keys:?}");
    }
    assert!(keys.contains(&"manhole_up"), "{keys:?}");
}

#[test]
fn env_redacts_what_looks_secret() {
    assert_eq!(crate::redact::value("API_TOKEN", "abc"), "<redacted>");
    assert_eq!(crate::redact::value("db_password", "abc"), "<redacted>");
    assert_eq!(crate::redact::value("AWS_SECRET_ACCESS_KEY", "abc"), "<redacted>");
    assert_eq!(crate::redact::value("HOME", "/root"), "/root");
    assert_eq!(
        crate::redact::value("DATABASE_URL", "postgres://app:hunter2@db:5432/x?sslmode=require"),
        "postgres://app:<redacted>@db:5432/x?sslmode=require"
    );
    assert_eq!(
        crate::redact::value("HOMEPAGE", "https://example.com/a@b"),
        "https://example.com/a@b"
    );
}

#[test]
fn watch_and_machine_parse_their_arguments() {
    let s = server();
    assert_eq!(
        run(&s, "watch -n 0.5 -c 3 print \"two words\"").1,
        Outcome::Watch {
            every: Duration::from_millis(500),
            count: Some(3),
            command: "print \"two words\"".into()
        }
    );
    assert!(matches!(
        run(&s, "watch info").1,
        Outcome::Watch { count: None, .. }
    ));
    for bad in [
        "watch",
        "watch -n 0 info",
        "watch -n x info",
        "watch -c 0 info",
        "watch quit",
        "watch watch info",
    ] {
        assert_eq!(reply(&s, bad).failure.unwrap().code, "usage", "{bad}");
    }
    // What watch refuses is what the table says cannot be watched, aliases included.
    for command in commands() {
        for word in std::iter::once(&command.name).chain(command.aliases) {
            let outcome = run(&s, &format!("watch {word}")).1;
            if command.watchable {
                assert!(matches!(outcome, Outcome::Watch { .. }), "{word}: {outcome:?}");
            } else {
                assert!(
                    matches!(&outcome, Outcome::Reply(r) if r.text.contains("cannot be watched")),
                    "{word}: {outcome:?}"
                );
            }
        }
    }
    assert_eq!(run(&s, "machine").1, Outcome::Machine(true));
    assert_eq!(run(&s, "machine off").1, Outcome::Machine(false));
    assert_eq!(reply(&s, "machine maybe").failure.unwrap().code, "usage");
}

#[test]
fn the_log_level_is_shown_and_changed() {
    let s = server();
    let before = log::max_level();
    assert!(reply(&s, "log").text.starts_with("log level: "));
    let r = reply(&s, "log debug");
    assert!(r.text.ends_with("-> debug\n"), "{}", r.text);
    assert_eq!(log::max_level(), log::LevelFilter::Debug);
    assert_eq!(reply(&s, "log loud").failure.unwrap().code, "usage");
    log::set_max_level(before);
}

#[test]
fn durations_and_sizes_read_well() {
    assert_eq!(human_duration(Duration::from_secs(12)), "12s");
    assert_eq!(human_duration(Duration::from_secs(250)), "4m 10s");
    assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
    assert_eq!(
        human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
        "3d 4h"
    );
    assert_eq!(crate::text::human_bytes(512), "512 B");
    assert_eq!(crate::text::human_bytes(1536), "1.5 KiB");
    assert_eq!(
        crate::text::human_bytes(12 * 1024 * 1024 + 300 * 1024),
        "12.3 MiB"
    );
}
