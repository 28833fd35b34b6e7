//! The console: every command, its documentation, and its result in two forms, text for people
//! (socat, nc) and one JSON document for programs (machine mode).
//!
//! Every command is one row of its family's `COMMANDS` table (a module of this directory, named
//! on the `families!` line); `help` is generated from the tables, so a command cannot exist
//! without its documentation. Commands reach the running manhole only through
//! [`Context::host`](command::Context) (the [`Host`] trait, implemented by the server and by a
//! fake in the tests), return a [`Reply`] and never touch the socket themselves (except to
//! notice a client leaving during a long `call`), so each is tested here without one.

mod command;
mod reply;

pub(crate) use crate::json::Json;
use crate::text::{quoted, split_words};
use command::{Command, Effect, Group};
pub(crate) use command::{Context, Host, SessionInfo};
pub(crate) use reply::{Outcome, Reply};
pub(crate) use values::forget_inherited_calls;

/// Declares the command families (modules of `console/`, each ending in a `COMMANDS` table)
/// and `ALL`, their tables in the order `help` lists them, this module's own last.
macro_rules! families {
    ($($family:ident),* $(,)?) => {
        $(mod $family;)*
        const ALL: &[&[Command]] = &[$($family::COMMANDS,)* COMMANDS];
    };
}

// Every command family. A new one is a module here with its `COMMANDS`, and its name on this
// line; nothing else changes (not the session, not the server).
families!(inspect, diagnose, values, control);

/// This module's own: `help` (which reads [`ALL`]) and `quit`.
const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        aliases: &["?"],
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        details: "Without an argument, lists every command in one line each, by group.\n\
                  With a command name (or alias), shows its syntax and what it does.\n\
                  Example: help stacks",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: help,
    },
    Command {
        name: "quit",
        aliases: &["exit"],
        usage: "quit",
        summary: "end this session (as does Ctrl-D)",
        details: "Closes this session. The process and other sessions go on.",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        watchable: false,
        run: |_, _| Outcome::Quit,
    },
];

/// Every command, in `help` order.
fn commands() -> impl Iterator<Item = &'static Command> {
    ALL.iter().flat_map(|table| table.iter())
}

pub(crate) fn lookup(word: &str) -> Option<&'static Command> {
    commands().find(|c| c.name == word || c.aliases.contains(&word))
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
            let width = commands().map(|c| c.name.len()).max().unwrap_or(0);
            let mut out = String::from("Commands (\"help COMMAND\" for details):\n");
            for group in Group::ALL {
                out.push_str(group.title());
                out.push_str(":\n");
                for c in commands().filter(|c| c.group == group) {
                    let aliases = if c.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(" (also: {})", c.aliases.join(", "))
                    };
                    out.push_str(&format!("  {:width$}  {}{aliases}\n", c.name, c.summary));
                }
            }
            let data = Json::Arr(commands().map(describe).collect());
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

fn describe(c: &Command) -> Json {
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
pub(crate) mod tests;
