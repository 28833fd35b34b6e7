//! Commands that steer: `log` (the program's log level), `watch`, `machine`.

use std::time::Duration;

use super::command::{Command, Effect, Group};
use super::{Context, Json, Outcome, Reply};
use crate::logging::mlog;
use crate::text::{quoted, requote};

pub(super) fn log_level(args: &[&str], context: &Context<'_>) -> Outcome {
    let current = log::max_level();
    match args {
        [] => Reply::ok(
            format!("log level: {}\n", current.as_str().to_ascii_lowercase()),
            Json::obj([("level", Json::from(current.as_str().to_ascii_lowercase()))]),
        )
        .into(),
        [level] => match level.parse::<log::LevelFilter>() {
            Ok(new) => {
                log::set_max_level(new);
                let pid = context.peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
                mlog!(
                    "Log level {} -> {} by PID:{pid} UID:{}",
                    current,
                    new,
                    context.peer.uid
                );
                let (old, new) = (
                    current.as_str().to_ascii_lowercase(),
                    new.as_str().to_ascii_lowercase(),
                );
                Reply::ok(
                    format!("log level: {old} -> {new}\n"),
                    Json::obj([("old", Json::from(old)), ("new", Json::from(new))]),
                )
                .into()
            }
            Err(_) => Reply::fail(
                "usage",
                format!(
                    "{} is not a level; use off, error, warn, info, debug or trace",
                    quoted(level)
                ),
            )
            .into(),
        },
        [_, extra, ..] => Reply::fail(
            "usage",
            format!("log takes one level (got also {})", quoted(extra)),
        )
        .into(),
    }
}

/// The shortest interval `watch` accepts: a console is not a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn watch(args: &[&str], context: &Context<'_>) -> Outcome {
    if context.machine {
        return Reply::fail(
            "unsupported",
            "watch is not available in machine mode; send the command again instead",
        )
        .into();
    }
    let mut every = Duration::from_secs(2);
    let mut count = None;
    let mut rest = args;
    loop {
        match rest {
            ["-n", secs, tail @ ..] => {
                match secs
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                {
                    Some(d) if d >= MIN_INTERVAL => every = d,
                    _ => {
                        return Reply::fail(
                            "usage",
                            format!("-n takes seconds, at least 0.1 (got {})", quoted(secs)),
                        )
                        .into();
                    }
                }
                rest = tail;
            }
            ["-c", n, tail @ ..] => {
                match n.parse::<u64>() {
                    Ok(n) if n > 0 => count = Some(n),
                    _ => {
                        return Reply::fail(
                            "usage",
                            format!("-c takes a count of at least 1 (got {})", quoted(n)),
                        )
                        .into();
                    }
                }
                rest = tail;
            }
            _ => break,
        }
    }
    if rest.is_empty() {
        return Reply::fail("usage", "usage: watch [-n SECS] [-c COUNT] COMMAND…").into();
    }
    if super::lookup(rest[0]).is_some_and(|c| !c.watchable) {
        return Reply::fail("usage", format!("{} cannot be watched", quoted(rest[0]))).into();
    }
    let command = rest.iter().map(|w| requote(w)).collect::<Vec<_>>().join(" ");
    Outcome::Watch {
        every,
        count,
        command,
    }
}

pub(super) fn machine(args: &[&str], _: &Context<'_>) -> Outcome {
    match args {
        [] | ["on"] => Outcome::Machine(true),
        ["off"] => Outcome::Machine(false),
        [other, ..] => Reply::fail(
            "usage",
            format!("machine takes on or off (got {})", quoted(other)),
        )
        .into(),
    }
}

/// This family's commands (see `console::ALL`).
pub(super) const COMMANDS: &[Command] = &[
    Command {
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
        watchable: true,
        run: log_level,
    },
    Command {
        name: "watch",
        aliases: &[],
        usage: "watch [-n SECS] [-c COUNT] COMMAND…",
        summary: "run a command again and again",
        details: "Runs COMMAND every SECS seconds (default 2), COUNT times or until you press\n\
                  Enter. Not available in machine mode: programs poll themselves.\n\
                  Example: watch -n 1 -c 10 print REQUESTS",
        group: Group::Session,
        effect: Effect::ReadsOnly,
        watchable: false,
        run: watch,
    },
    Command {
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
        watchable: false,
        run: machine,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_requote_to_themselves() {
        for word in ["plain", "two words", "a\"quote", "back\\slash", "", "it's"] {
            let quoted = requote(word);
            assert_eq!(super::super::split_words(&quoted).unwrap(), [word], "{quoted}");
        }
    }
}
