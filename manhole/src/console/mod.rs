//! The console: every command, its documentation, and its result in two forms, text for people
//! (socat, nc) and one JSON document for programs (machine mode).
//!
//! Every command is one row of [`COMMANDS`]; `help` is generated from that table, so a command
//! cannot exist without its documentation. Commands return a [`Reply`] and never touch the
//! socket themselves (except to notice a client leaving during a long `call`), so each is
//! tested here without one.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::server::Server;
use crate::sys::PeerCred;

pub(crate) mod control;
mod inspect;
mod values;

pub(crate) use crate::json::Json;
use crate::text::{quoted, split_words};
pub(crate) use values::forget_inherited_calls;

/// What a command needs from the running manhole and the session.
pub(crate) struct Context<'a> {
    pub(crate) server: &'a Server,
    /// Who is asking: `set` and `call` are logged with it.
    pub(crate) peer: PeerCred,
    /// The client's socket, to notice it leaving during a long `call`.
    pub(crate) client: Option<&'a UnixStream>,
    /// Whether the session is in machine mode.
    pub(crate) machine: bool,
}

/// A command that failed: a stable code for programs and a message for people.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// A command's result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    /// The text a person sees (ending in a newline, or empty).
    pub(crate) text: String,
    /// The same result as data, for machine mode.
    pub(crate) data: Json,
    pub(crate) failure: Option<Failure>,
}

impl Reply {
    pub(crate) fn ok(text: impl Into<String>, data: Json) -> Reply {
        Reply {
            text: text.into(),
            data,
            failure: None,
        }
    }

    pub(crate) fn fail(code: &'static str, message: impl Into<String>) -> Reply {
        let message = message.into();
        Reply {
            text: format!("error: {message}\n"),
            data: Json::Null,
            failure: Some(Failure { code, message }),
        }
    }
}

/// What the session does after a command.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Show the reply and prompt again.
    Reply(Reply),
    /// Run `command` every `every` until `count` runs are done or the client types a line.
    Watch {
        every: Duration,
        count: Option<u64>,
        command: String,
    },
    /// Switch between text and machine mode.
    Machine(bool),
    /// End the session.
    Quit,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome::Reply(reply)
    }
}

/// Where a command is listed in `help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Look,
    Values,
    Session,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Look => "Look at the process",
            Group::Values => "What the program exposes",
            Group::Session => "This session",
        }
    }
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

    fn code(self) -> &'static str {
        match self {
            Effect::ReadsOnly => "reads",
            Effect::PausesThreads => "pauses_threads",
            Effect::ChangesState => "changes_state",
            Effect::RunsCode => "runs_code",
        }
    }
}

struct CommandSpec {
    name: &'static str,
    aliases: &'static [&'static str],
    usage: &'static str,
    summary: &'static str,
    details: &'static str,
    group: Group,
    effect: Effect,
    run: fn(&[&str], &Context<'_>) -> Outcome,
}

const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "stacks",
        aliases: &["threads", "bt"],
        usage: "stacks [--full] [NAME|TID…]",
        summary: "every thread's stack, as on connect",
        details: "Lists every thread with its id, name, state and stack. Each thread unwinds\n\
                  itself when signalled, pausing for microseconds; threads that cannot answer\n\
                  (signal blocked, stopped, uninterruptible sleep) are shown from /proc.\n\
                  Threads with the same stack are listed together. Runtime frames (thread\n\
                  start, lang_start) are folded; --full shows them. NAME (with * and ?) or\n\
                  TID keeps only matching threads.\n\
                  Examples: stacks worker-*   stacks --full 4242",
        group: Group::Look,
        effect: Effect::PausesThreads,
        run: inspect::stacks,
    },
    CommandSpec {
        name: "info",
        aliases: &[],
        usage: "info",
        summary: "pid, exe, uptime, threads, fds, memory, CPU",
        details: "Shows pid and parent, executable, arguments, working directory, user,\n\
                  uptime, thread count, open fds against their limit, memory, CPU time,\n\
                  open sessions and versions. Secrets in the arguments are shown as\n\
                  <redacted>: the one after --password, --token and other secret-looking\n\
                  flags, --token=…, passwords and user names in URLs, password=….",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        run: inspect::info,
    },
    CommandSpec {
        name: "fds",
        aliases: &[],
        usage: "fds",
        summary: "open file descriptors and what they point to",
        details: "Lists every open file descriptor with its target: a path, a socket, a pipe,\n\
                  an anonymous inode. Descriptors manhole itself holds are marked.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        run: inspect::fds,
    },
    CommandSpec {
        name: "env",
        aliases: &[],
        usage: "env [PATTERN]",
        summary: "environment variables, secrets redacted",
        details: "Lists the process's environment, sorted. Values of variables whose names\n\
                  suggest a secret (PASS, PWD, TOKEN, SECRET, KEY, CREDENTIAL, AUTH, COOKIE,\n\
                  SESSION, DSN, …) are shown as <redacted>, and so are, in every value, the\n\
                  credentials of each URL (scheme://user:<redacted>@host) and the values\n\
                  of password=, token=, secret=, key= and the like. PATTERN filters names.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        run: inspect::env,
    },
    CommandSpec {
        name: "clients",
        aliases: &[],
        usage: "clients",
        summary: "the sessions open now",
        details: "Lists open sessions: the client's pid, uid and program, and for how long it\n\
                  has been connected. Yours is marked.",
        group: Group::Look,
        effect: Effect::ReadsOnly,
        run: inspect::clients,
    },
    CommandSpec {
        name: "report",
        aliases: &[],
        usage: "report",
        summary: "everything above as one JSON document",
        details: "One JSON document with info, every thread's stack, every exposed value, the\n\
                  fds, the environment and the sessions: attach it to a ticket. Secrets are\n\
                  redacted as in info, env and print (report has no --reveal).",
        group: Group::Look,
        effect: Effect::PausesThreads,
        run: inspect::report,
    },
    CommandSpec {
        name: "vars",
        aliases: &["ls"],
        usage: "vars [PATTERN]",
        summary: "exposed values and functions",
        details: "Lists every #[manhole::expose]d static and function and every local given to\n\
                  Options::local: name, kind, type, module, and the first line of its doc.\n\
                  PATTERN keeps names containing it, or matching it with * and ? wildcards.\n\
                  Example: vars cache*",
        group: Group::Values,
        effect: Effect::ReadsOnly,
        run: values::vars,
    },
    CommandSpec {
        name: "print",
        aliases: &["p"],
        usage: "print NAME [--reveal]",
        summary: "show a value (a bare NAME does too)",
        details: "Shows the value with its Debug format; behind a Mutex or RwLock, the value\n\
                  itself (<locked> while held elsewhere; \"(poisoned)\" after it if the\n\
                  program poisoned the lock, which stays so). A LazyLock or OnceLock the\n\
                  program has not initialised shows <not initialised yet> and is not forced.\n\
                  A Debug that takes over 2 s is left running on its own thread and shown\n\
                  as <timed out…>. Controls in the text are shown escaped (\\x1b).\n\
                  Typing just the name works too.\n\
                  A value whose name looks secret (PASSWORD, TOKEN, SECRET, KEY, …) is\n\
                  shown as <redacted>; in others, URL passwords and secret-looking fields\n\
                  (password: \"…\", token=…) are. --reveal shows the value as it is;\n\
                  the program's log records who asked.\n\
                  Examples: print REQUESTS   print DB_PASSWORD --reveal",
        group: Group::Values,
        effect: Effect::ReadsOnly,
        run: values::print,
    },
    CommandSpec {
        name: "set",
        aliases: &[],
        usage: "set NAME VALUE",
        summary: "change a writable value; shows old -> new",
        details: "Parses VALUE as the value's type and stores it. Works on statics exposed with\n\
                  #[manhole::expose(writable)]: atomics, and Mutex or RwLock of FromStr types\n\
                  (also in a LazyLock or OnceLock, once the program has initialised it).\n\
                  Quote values with spaces: set MODE \"read only\"\n\
                  A secret-looking item's old and new values are shown and logged as\n\
                  <redacted>.\n\
                  Example: set LIMIT 10",
        group: Group::Values,
        effect: Effect::ChangesState,
        run: values::set,
    },
    CommandSpec {
        name: "call",
        aliases: &[],
        usage: "call NAME [ARG…]",
        summary: "call an exposed function",
        details: "Parses each argument as the parameter's type, calls the function and shows\n\
                  its result. Quote arguments with spaces (\"…\" or '…'). If you disconnect\n\
                  while it runs, the session ends and the call finishes on its own. At most\n\
                  8 calls run at once (see info). The log records each call with its\n\
                  arguments; those of a secret-looking function or parameter are logged\n\
                  as <redacted> and hidden if the result repeats them.\n\
                  Example: call flush_cache 10",
        group: Group::Values,
        effect: Effect::RunsCode,
        run: values::call,
    },
    CommandSpec {
        name: "log",
        aliases: &[],
        usage: "log [LEVEL]",
        summary: "show or change the log crate's level",
        details: "Without LEVEL, shows the maximum level of the `log` crate. With one of off,\n\
                  error, warn, info, debug, trace, changes it for the whole program (it only\n\
                  matters if the program logs through the `log` crate).\n\
                  Example: log debug",
        group: Group::Values,
        effect: Effect::ChangesState,
        run: control::log_level,
    },
    CommandSpec {
        name: "watch",
        aliases: &[],
        usage: "watch [-n SECS] [-c COUNT] COMMAND…",
        summary: "run a command again and again",
        details: "Runs COMMAND every SECS seconds (default 2), COUNT times or until you press\n\
                  Enter. Not available in machine mode: programs poll themselves.\n\
                  Example: watch -n 1 -c 10 print REQUESTS",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        run: control::watch,
    },
    CommandSpec {
        name: "machine",
        aliases: &[],
        usage: "machine [on|off]",
        summary: "one JSON document per command, for programs",
        details: "Switches this session to machine mode: no prompt, and every command answers\n\
                  with exactly one JSON document on one line:\n\
                  {\"ok\":true,\"command\":\"info\",\"data\":{…},\"text\":\"…\"} or\n\
                  {\"ok\":false,\"command\":\"set\",\"error\":{\"code\":\"parse\",\"message\":\"…\"}}\n\
                  \"machine off\" returns to text.",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        run: control::machine,
    },
    CommandSpec {
        name: "help",
        aliases: &["?"],
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        details: "Without an argument, lists every command in one line each, by group.\n\
                  With a command name (or alias), shows its syntax and what it does.\n\
                  Example: help stacks",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        run: help,
    },
    CommandSpec {
        name: "quit",
        aliases: &["exit"],
        usage: "quit",
        summary: "end this session (as does Ctrl-D)",
        details: "Closes this session. The process and other sessions go on.",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        run: |_, _| Outcome::Quit,
    },
];

fn lookup(word: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
}

/// Runs one command line; returns the canonical name of the command it ran, if any.
pub(crate) fn execute(line: &str, context: &Context<'_>) -> (Option<&'static str>, Outcome) {
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => return (None, Reply::fail("usage", e).into()),
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let Some((first, args)) = words.split_first() else {
        return (None, Reply::ok("", Json::Null).into());
    };
    match lookup(first) {
        Some(spec) => (Some(spec.name), (spec.run)(args, context)),
        // A bare exposed name prints it.
        None if args.is_empty() && values::exists(first, context) => {
            (Some("print"), values::print(&[first], context))
        }
        None => (
            None,
            Reply::fail(
                "unknown_command",
                format!("unknown command {}; type \"help\" for the list", quoted(first)),
            )
            .into(),
        ),
    }
}

/// An error for a command that takes no arguments but got some.
pub(crate) fn no_arguments(name: &str, args: &[&str]) -> Option<Outcome> {
    (!args.is_empty()).then(|| {
        Reply::fail(
            "usage",
            format!(
                "{name} takes no arguments (got {}); see \"help {name}\"",
                quoted(args[0])
            ),
        )
        .into()
    })
}

fn help(args: &[&str], _: &Context<'_>) -> Outcome {
    match args {
        [] => {
            let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
            let mut out = String::from("Commands (\"help COMMAND\" for details):\n");
            for group in [Group::Look, Group::Values, Group::Session] {
                out.push_str(group.title());
                out.push_str(":\n");
                for c in COMMANDS.iter().filter(|c| c.group == group) {
                    let aliases = if c.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(" (also: {})", c.aliases.join(", "))
                    };
                    out.push_str(&format!("  {:width$}  {}{aliases}\n", c.name, c.summary));
                }
            }
            let data = Json::Arr(COMMANDS.iter().map(describe).collect());
            Reply::ok(out, Json::obj([("commands", data)])).into()
        }
        [word] => match lookup(word) {
            Some(c) => {
                let mut out = format!("usage: {}\n{}\n", c.usage, c.details);
                if !c.aliases.is_empty() {
                    out.push_str(&format!("aliases: {}\n", c.aliases.join(", ")));
                }
                out.push_str(&format!("effect: {}\n", c.effect.describe()));
                Reply::ok(out, describe(c)).into()
            }
            None => Reply::fail(
                "not_found",
                format!("no command named {}; type \"help\" for the list", quoted(word)),
            )
            .into(),
        },
        [_, extra, ..] => Reply::fail(
            "usage",
            format!("help takes one command name (got also {})", quoted(extra)),
        )
        .into(),
    }
}

fn describe(c: &CommandSpec) -> Json {
    Json::obj([
        ("name", Json::from(c.name)),
        ("aliases", Json::from(c.aliases.to_vec())),
        ("usage", Json::from(c.usage)),
        ("summary", Json::from(c.summary)),
        ("details", Json::from(c.details)),
        ("effect", Json::from(c.effect.code())),
    ])
}

#[cfg(test)]
mod tests;
