//! Tab completion: the first word from the commands the process's `help` lists (names and
//! aliases) and the names it exposes, later words from the exposed names its `vars` lists.
//! Both lists are asked of the process itself, in machine mode, when the session starts: a
//! command added to the server completes without a change here. A process that does not answer
//! as expected (an older manhole, a broken one) leaves completion with what it did answer; the
//! session goes on.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use manhole::__private::protocol::PROMPT;
use rustyline::Context;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use serde_json::Value;

use crate::wire::{self, Peer};
use crate::{Failure, exit};

/// What is asked: machine mode, both lists, and back to text mode (which ends with a prompt).
/// In machine mode every line is answered by exactly one document.
const ASK: &str = "machine\nhelp\nvars\nmachine off\n";
/// The most names kept from one list, and the longest name kept: a process that sends more is
/// not completed from beyond that.
const MAX_NAMES: usize = 1 << 16;
const NAME_MAX: usize = 1024;

/// The words Tab completes from.
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// Command names and aliases, from `help`.
    pub(crate) commands: Vec<String>,
    /// What the process exposes, from `vars`.
    pub(crate) exposed: Vec<String>,
}

impl Names {
    /// Where the word being completed starts in `line` (the cursor at `pos`), and the names
    /// that complete it, sorted, each once.
    pub(crate) fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = line.get(..pos).unwrap_or(line);
        let start = before
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
        let word = &before[start..];
        let first = before[..start].trim().is_empty();
        let pool: Vec<&String> = if first {
            self.commands.iter().chain(&self.exposed).collect()
        } else {
            self.exposed.iter().collect()
        };
        let mut found: Vec<String> = pool
            .into_iter()
            .filter(|n| n.starts_with(word))
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        (start, found)
    }

    /// Takes a document the process answered with, if it is one of the lists asked for.
    fn take(&mut self, document: &[u8]) {
        let Ok(document) = serde_json::from_slice::<Value>(document) else {
            return; // not a document: nothing to complete from
        };
        if document["ok"] != Value::Bool(true) {
            return;
        }
        match document["command"].as_str() {
            Some("help") => self.commands = command_names(&document["data"]),
            Some("vars") => self.exposed = exposed_names(&document["data"]),
            _ => {}
        }
    }
}

/// The names and aliases of the commands in a `help` answer's data
/// (`{"commands":[{"name":..,"aliases":[..]},..]}`); what is not shaped so is skipped.
fn command_names(data: &Value) -> Vec<String> {
    let commands = data["commands"].as_array().map_or(&[][..], Vec::as_slice);
    let names = commands.iter().flat_map(|command| {
        let aliases = command["aliases"].as_array().map_or(&[][..], Vec::as_slice);
        std::iter::once(&command["name"]).chain(aliases)
    });
    usable(names)
}

/// The names in a `vars` answer's data (`[{"name":..},..]`); what is not shaped so is skipped.
fn exposed_names(data: &Value) -> Vec<String> {
    let items = data.as_array().map_or(&[][..], Vec::as_slice);
    usable(items.iter().map(|item| &item["name"]))
}

/// The strings among `names` that can be typed and shown as they are: no whitespace, nothing a
/// terminal would obey (what `sanitize` would show escaped), not empty, at most [`NAME_MAX`]
/// bytes; at most [`MAX_NAMES`] of them.
fn usable<'a>(names: impl Iterator<Item = &'a Value>) -> Vec<String> {
    names
        .filter_map(Value::as_str)
        .filter(|name| {
            !name.is_empty()
                && name.len() <= NAME_MAX
                && !name.contains(char::is_whitespace)
                && crate::sanitize::clean(name.as_bytes()) == *name
        })
        .take(MAX_NAMES)
        .map(str::to_owned)
        .collect()
}

/// Asks the session for the names to complete; leaves it in text mode, its prompt read.
pub(crate) fn fetch(
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
) -> Result<Names, Failure> {
    let mut writer = stream;
    writer.write_all(ASK.as_bytes()).map_err(|e| peer.broke(&e))?;
    let mut names = Names::default();
    for _ in ASK.lines() {
        match wire::read_document(reader, peer)? {
            Some(document) => names.take(&document),
            None => return Err(peer.broke(&std::io::ErrorKind::UnexpectedEof.into())),
        }
    }
    // `machine off` ends with the text prompt again.
    let mut prompt = [0u8; PROMPT.len()];
    reader.read_exact(&mut prompt).map_err(|e| peer.broke(&e))?;
    if prompt != PROMPT.as_bytes() {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "process {} answered \"machine off\" without its prompt (sent {:?}); it is not a \
                 manhole this client can talk to",
                peer.pid,
                crate::sanitize::clean(&prompt)
            ),
        ));
    }
    Ok(names)
}

impl Completer for Names {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for Names {
    type Hint = String;
}
impl Highlighter for Names {}
impl Validator for Names {}
impl rustyline::Helper for Names {}

#[cfg(test)]
mod tests;
