//! The console's commands: how each is named, documented and run.
//!
//! Every command is one row of [`COMMANDS`]; `help` is generated from that table, so a command
//! cannot exist without its documentation. Commands return text and never touch the socket, so
//! they are tested here without one.

use std::fmt::Write as _;
use std::time::Duration;

use crate::logging::mlog;
use crate::registry::{self, Kind};
use crate::server::Server;
use crate::sys::PeerCred;
use crate::{procfs, stacks};

/// What a command needs from the running manhole.
pub(crate) struct Context<'a> {
    pub(crate) server: &'a Server,
    /// Who is asking: `set` and `call` are logged with it.
    pub(crate) peer: PeerCred,
}

/// What the session does after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Show this text (ending in a newline, or empty) and prompt again.
    Text(String),
    /// End the session.
    Quit,
}

/// What running a command does to the process.
#[derive(Clone, Copy, Debug)]
enum Effect {
    ReadsOnly,
    PausesThreads,
    ChangesState,
    RunsCode,
}

impl Effect {
    fn describe(self) -> &'static str {
        match self {
            Effect::ReadsOnly => "reads only; changes nothing in the process",
            Effect::PausesThreads => "reads only; pauses each thread for a few microseconds",
            Effect::ChangesState => "changes the program's state (logged with your pid and uid)",
            Effect::RunsCode => "runs the program's code, with its effects (logged with your pid and uid)",
        }
    }
}

struct CommandSpec {
    name: &'static str,
    aliases: &'static [&'static str],
    usage: &'static str,
    summary: &'static str,
    details: &'static str,
    effect: Effect,
    run: fn(&[&str], &Context<'_>) -> Outcome,
}

const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "help",
        aliases: &["?"],
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        details: "Without an argument, lists every command in one line each.\n\
                  With a command name (or alias), shows its syntax and what it does.\n\
                  Example: help stacks",
        effect: Effect::ReadsOnly,
        run: run_help,
    },
    CommandSpec {
        name: "stacks",
        aliases: &["threads", "bt"],
        usage: "stacks [--full]",
        summary: "every thread's stack, as on connect",
        details: "Lists every thread of the process with its id, name, state and stack.\n\
                  Each thread unwinds itself when signalled, pausing for microseconds;\n\
                  threads that cannot answer (signal blocked, stopped, in uninterruptible\n\
                  sleep) are shown from /proc: the system call they wait in and its caller.\n\
                  Threads with the same stack are listed together. Runtime frames (thread\n\
                  start, lang_start) are folded; --full shows them.\n\
                  Example: stacks --full",
        effect: Effect::PausesThreads,
        run: run_stacks,
    },
    CommandSpec {
        name: "vars",
        aliases: &["ls"],
        usage: "vars [PATTERN]",
        summary: "exposed values and functions",
        details: "Lists every #[manhole::expose]d static and function: name, type, whether it\n\
                  can be set or called, module, and the first line of its doc comment.\n\
                  PATTERN keeps names containing it, or matching it with * and ? wildcards.\n\
                  Example: vars cache*",
        effect: Effect::ReadsOnly,
        run: run_vars,
    },
    CommandSpec {
        name: "print",
        aliases: &["p"],
        usage: "print NAME",
        summary: "show a value (a bare NAME does too)",
        details: "Shows the value with its Debug format. A value behind a Mutex or RwLock\n\
                  that is held elsewhere shows as <locked>. Typing just the name works too.\n\
                  Example: print REQUESTS",
        effect: Effect::ReadsOnly,
        run: run_print,
    },
    CommandSpec {
        name: "set",
        aliases: &[],
        usage: "set NAME VALUE",
        summary: "change a writable value; shows old -> new",
        details: "Parses VALUE as the value's type and stores it. Works on statics exposed with\n\
                  #[manhole::expose(writable)]: atomics, and Mutex or RwLock of FromStr types.\n\
                  Quote values with spaces: set MODE \"read only\"\n\
                  Example: set LIMIT 10",
        effect: Effect::ChangesState,
        run: run_set,
    },
    CommandSpec {
        name: "call",
        aliases: &[],
        usage: "call NAME [ARG…]",
        summary: "call an exposed function with arguments",
        details: "Parses each argument as the parameter's type, calls the function and shows\n\
                  its result. Quote arguments with spaces (\"…\" or '…').\n\
                  Example: call flush_cache 10",
        effect: Effect::RunsCode,
        run: run_call,
    },
    CommandSpec {
        name: "info",
        aliases: &[],
        usage: "info",
        summary: "the process: pid, exe, uptime, threads, fds, memory, CPU",
        details: "Shows pid and parent, executable, arguments, working directory, user,\n\
                  uptime, thread count, open fds against their limit, memory, CPU time,\n\
                  open sessions and versions.",
        effect: Effect::ReadsOnly,
        run: run_info,
    },
    CommandSpec {
        name: "quit",
        aliases: &["exit"],
        usage: "quit",
        summary: "end this session (as does Ctrl-D)",
        details: "Closes this session. The process and other sessions go on.",
        effect: Effect::ReadsOnly,
        run: |_, _| Outcome::Quit,
    },
];

fn lookup(word: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
}

/// Shows user input inside an error line: escaped, and cut short if long.
fn quoted(word: &str) -> String {
    let mut shown: String = word.chars().take(40).collect();
    if shown.len() < word.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Splits a command line into words: whitespace separates, `"…"` and `'…'` group, and a
/// backslash escapes the next character (outside single quotes).
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unterminated ' quote".to_owned()),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => current.push(c),
                            None => return Err("unterminated \" quote".to_owned()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unterminated \" quote".to_owned()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a backslash ends the line".to_owned()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Runs one command line.
pub(crate) fn execute(line: &str, context: &Context<'_>) -> Outcome {
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => return Outcome::Text(format!("error: {e}\n")),
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let Some((first, args)) = words.split_first() else {
        return Outcome::Text(String::new());
    };
    match lookup(first) {
        Some(spec) => (spec.run)(args, context),
        // A bare exposed name prints it.
        None if args.is_empty() && registry::find(first).is_ok() => run_print(&[first], context),
        None => Outcome::Text(format!(
            "error: unknown command {}; type \"help\" for the list\n",
            quoted(first)
        )),
    }
}

/// Whether `name` matches `pattern`: a substring, or a glob with `*` and `?`.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    fn glob(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
            (Some('?'), Some(_)) => glob(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    glob(&p, &n)
}

fn run_vars(args: &[&str], _: &Context<'_>) -> Outcome {
    let pattern = match args {
        [] => None,
        [pattern] => Some(*pattern),
        [_, extra, ..] => {
            return Outcome::Text(format!(
                "error: vars takes one pattern (got also {})\n",
                quoted(extra)
            ));
        }
    };
    let items: Vec<_> = registry::all()
        .into_iter()
        .filter(|e| pattern.is_none_or(|p| matches_pattern(p, e.name)))
        .collect();
    if items.is_empty() {
        return Outcome::Text(match pattern {
            Some(p) => format!("nothing exposed matches {}\n", quoted(p)),
            None => "nothing is exposed; mark statics or functions with #[manhole::expose]\n".to_owned(),
        });
    }
    let rows: Vec<[String; 4]> = items
        .iter()
        .map(|e| {
            let (kind, ty) = match &e.kind {
                Kind::Value { set: Some(_), .. } => ("writable", e.type_name.to_owned()),
                Kind::Value { set: None, .. } => ("value", e.type_name.to_owned()),
                Kind::Function { params, .. } => {
                    let params: Vec<String> = params
                        .iter()
                        .map(|p| format!("{}: {}", p.name, p.type_name))
                        .collect();
                    ("fn", format!("({}) -> {}", params.join(", "), e.type_name))
                }
            };
            [e.name.to_owned(), kind.to_owned(), ty, e.module_path.to_owned()]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2).min(40));
    let mut out = String::new();
    for (row, item) in rows.iter().zip(&items) {
        let _ = write!(out, "{:w0$}  {:w1$}  {:w2$}  {}", row[0], row[1], row[2], row[3]);
        if !item.doc.is_empty() {
            let _ = write!(out, "  # {}", item.doc);
        }
        out.push('\n');
    }
    Outcome::Text(out)
}

fn run_print(args: &[&str], _: &Context<'_>) -> Outcome {
    let [name] = args else {
        return Outcome::Text("error: print takes one name; \"vars\" lists them\n".to_owned());
    };
    let item = match registry::find(name) {
        Ok(item) => item,
        Err(e) => return Outcome::Text(format!("error: {e}\n")),
    };
    match &item.kind {
        Kind::Value { get, .. } => Outcome::Text(format!("{:#?}\n", get())),
        Kind::Function { .. } => Outcome::Text(format!(
            "error: {} is a function; call it with \"call {} …\"\n",
            item.name, item.name
        )),
    }
}

fn peer_words(peer: PeerCred) -> String {
    let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!("PID:{pid} UID:{}", peer.uid)
}

fn run_set(args: &[&str], context: &Context<'_>) -> Outcome {
    let [name, value] = args else {
        return Outcome::Text("error: usage: set NAME VALUE (quote a VALUE with spaces)\n".to_owned());
    };
    let item = match registry::find(name) {
        Ok(item) => item,
        Err(e) => return Outcome::Text(format!("error: {e}\n")),
    };
    let Kind::Value { set: Some(set), .. } = &item.kind else {
        return Outcome::Text(format!(
            "error: {} cannot be set; expose it with #[manhole::expose(writable)]\n",
            item.name
        ));
    };
    match set(value) {
        Ok((old, new)) => {
            mlog!(
                "Set {}::{} from {}: {old} -> {new}",
                item.module_path,
                item.name,
                peer_words(context.peer)
            );
            Outcome::Text(format!("{}: {old} -> {new}\n", item.name))
        }
        Err(e) => Outcome::Text(format!("error: {}: {e}\n", item.name)),
    }
}

fn run_call(args: &[&str], context: &Context<'_>) -> Outcome {
    let Some((name, rest)) = args.split_first() else {
        return Outcome::Text("error: usage: call NAME [ARG…]\n".to_owned());
    };
    let item = match registry::find(name) {
        Ok(item) => item,
        Err(e) => return Outcome::Text(format!("error: {e}\n")),
    };
    let Kind::Function { params, call } = &item.kind else {
        return Outcome::Text(format!(
            "error: {} is a value; print it with \"print {}\"\n",
            item.name, item.name
        ));
    };
    if rest.len() != params.len() {
        let wanted: Vec<String> = params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.type_name))
            .collect();
        return Outcome::Text(format!(
            "error: {} takes {} argument(s) ({}), got {}\n",
            item.name,
            params.len(),
            wanted.join(", "),
            rest.len()
        ));
    }
    let args: Vec<String> = rest.iter().map(|a| (*a).to_owned()).collect();
    mlog!(
        "Call {}::{}{args:?} from {}",
        item.module_path,
        item.name,
        peer_words(context.peer)
    );
    match call(&args) {
        Ok(text) => Outcome::Text(format!("{text}\n")),
        Err(e) => Outcome::Text(format!("error: {e}\n")),
    }
}

fn no_arguments(name: &str, args: &[&str]) -> Option<Outcome> {
    (!args.is_empty()).then(|| {
        Outcome::Text(format!(
            "error: {name} takes no arguments (got {}); see \"help {name}\"\n",
            quoted(args[0])
        ))
    })
}

fn run_help(args: &[&str], _: &Context<'_>) -> Outcome {
    Outcome::Text(help_text(args))
}

fn help_text(args: &[&str]) -> String {
    match args {
        [] => {
            let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
            let mut out = String::from("Commands (\"help COMMAND\" for details):\n");
            for c in COMMANDS {
                let aliases = if c.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" (also: {})", c.aliases.join(", "))
                };
                let _ = writeln!(out, "  {:width$}  {}{aliases}", c.usage, c.summary);
            }
            out
        }
        [word] => match lookup(word) {
            Some(c) => {
                let mut out = format!("usage: {}\n{}\n", c.usage, c.details);
                if !c.aliases.is_empty() {
                    let _ = writeln!(out, "aliases: {}", c.aliases.join(", "));
                }
                let _ = writeln!(out, "effect: {}", c.effect.describe());
                out
            }
            None => format!(
                "error: no command named {}; type \"help\" for the list\n",
                quoted(word)
            ),
        },
        [_, extra, ..] => format!(
            "error: help takes one command name (got also {})\n",
            quoted(extra)
        ),
    }
}

fn run_stacks(args: &[&str], _: &Context<'_>) -> Outcome {
    match args {
        [] => Outcome::Text(stacks::dump_text(false)),
        ["--full"] => Outcome::Text(stacks::dump_text(true)),
        [other, ..] => Outcome::Text(format!(
            "error: stacks does not understand {}; see \"help stacks\"\n",
            quoted(other)
        )),
    }
}

fn run_info(args: &[&str], context: &Context<'_>) -> Outcome {
    if let Some(err) = no_arguments("info", args) {
        return err;
    }
    Outcome::Text(info_text(context.server))
}

fn info_text(server: &Server) -> String {
    let stat = procfs::process_stat();
    let unknown = || "?".to_owned();
    let mut rows: Vec<(&str, String)> = Vec::new();
    let ppid = stat.ppid.map_or_else(unknown, |p| p.to_string());
    rows.push(("pid", format!("{} (parent {ppid})", std::process::id())));
    rows.push((
        "exe",
        procfs::exe().map_or_else(unknown, |p| p.display().to_string()),
    ));
    rows.push(("argv", procfs::cmdline().join(" ")));
    rows.push((
        "cwd",
        std::env::current_dir().map_or_else(|_| unknown(), |p| p.display().to_string()),
    ));
    rows.push((
        "user",
        format!(
            "uid {} euid {} gid {} egid {}",
            nix::unistd::getuid(),
            nix::unistd::geteuid(),
            nix::unistd::getgid(),
            nix::unistd::getegid()
        ),
    ));
    rows.push(("uptime", stat.uptime.map_or_else(unknown, human_duration)));
    rows.push(("threads", stat.threads.map_or_else(unknown, |t| t.to_string())));
    let fds = procfs::open_fd_count().map_or_else(unknown, |n| n.to_string());
    rows.push((
        "fds",
        match crate::sys::fd_limits() {
            Some((soft, hard)) => format!("{fds} open of {soft} allowed (hard limit {hard})"),
            None => format!("{fds} open"),
        },
    ));
    rows.push((
        "memory",
        format!(
            "RSS {}, virtual {}",
            stat.rss_bytes.map_or_else(unknown, human_bytes),
            stat.vm_bytes.map_or_else(unknown, human_bytes)
        ),
    ));
    let secs = |d: Option<Duration>| d.map_or_else(unknown, |d| format!("{:.2} s", d.as_secs_f64()));
    rows.push((
        "cpu",
        format!("user {}, system {}", secs(stat.user_cpu), secs(stat.system_cpu)),
    ));
    let sessions = server.sessions();
    rows.push((
        "sessions",
        format!("{} open (at most {})", sessions.len(), server.config.max_sessions),
    ));
    rows.push((
        "socket",
        server
            .socket_path()
            .map_or_else(unknown, |p| p.display().to_string()),
    ));
    rows.push(("manhole up", human_duration(server.started.elapsed())));
    rows.push((
        "versions",
        format!("manhole {}, {}", env!("CARGO_PKG_VERSION"), kernel()),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let _ = writeln!(out, "{key:width$}  {value}");
    }
    out
}

fn kernel() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => std::env::consts::OS.to_owned(),
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`: the two largest units.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if days > 0 => format!("{days}d {hours}h"),
        _ if hours > 0 => format!("{hours}h {minutes}m"),
        _ if minutes > 0 => format!("{minutes}m {seconds}s"),
        _ => format!("{seconds}s"),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_once_with_aliases() {
        let text = help_text(&[]);
        for c in COMMANDS {
            assert_eq!(
                text.matches(&format!("\n  {}", c.usage)).count(),
                1,
                "{}:\n{text}",
                c.name
            );
        }
        assert!(text.contains("(also: threads, bt)"), "{text}");
        assert!(
            text.lines().all(|l| l.chars().count() <= 80),
            "fits a terminal:\n{text}"
        );
    }

    #[test]
    fn help_for_one_command_by_name_or_alias() {
        let text = help_text(&["bt"]);
        assert!(text.starts_with("usage: stacks [--full]\n"), "{text}");
        assert!(text.contains("effect: reads only; pauses each thread"), "{text}");
        assert!(help_text(&["nope"]).starts_with("error: no command named \"nope\""));
        assert!(help_text(&["a", "b"]).starts_with("error: help takes one command name"));
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
    fn hostile_words_are_escaped_and_cut() {
        let shown = quoted("\u{1b}[2J\u{7}evil");
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown}");
        let long = quoted(&"x".repeat(10_000));
        assert!(long.len() < 60, "{long}");
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
        assert!(!matches_pattern("COLD*", "HOT_CACHE_SIZE"));
        assert!(!matches_pattern("*X", "HOT_CACHE_SIZE"));
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
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
    }
}
