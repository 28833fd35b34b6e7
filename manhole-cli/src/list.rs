//! `manhole-cli list`: the manholes under /tmp (this user's; everyone's for root), live or
//! stale, and `--clean` to remove the stale ones.
//!
//! Stale means: a socket file that nobody listens on, which `connect` proves (it is refused).
//! `/proc/net/unix` alone does not: it shows only this network namespace's sockets, and the
//! path a socket was bound with (relative, or moved since), so a live socket may be missing
//! from it. It is read first, so that live manholes are not connected to (that would use up
//! a one-shot manhole's single session); what it does not show as listening is then tried.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::sanitize::clean;
use crate::{Failure, exit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Stale,
    /// Could not tell (connecting failed otherwise than refused); never removed.
    Unknown,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Stale => "stale",
            State::Unknown => "?",
        }
    }
}

struct Entry {
    pid: Option<i32>,
    uid: u32,
    program: Option<String>,
    socket: PathBuf,
    state: State,
    /// The socket file's identity when it was judged, so that a file put there since (a
    /// restarted program's new socket) is never the one removed.
    inode: (u64, u64),
}

/// The paths of listening Unix sockets in /proc/net/unix (flag __SO_ACCEPTCON), if readable.
fn listening_paths() -> Option<std::collections::HashSet<PathBuf>> {
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    Some(
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
                let path = fields.get(7)?;
                (flags & 0x10000 != 0).then(|| PathBuf::from(path))
            })
            .collect(),
    )
}

/// Whether anything listens at `path`, by connecting: refused means stale.
fn probe(path: &Path) -> State {
    match crate::connect::try_connect(path) {
        Ok(_) => State::Live,
        Err(err) => match err.kind() {
            std::io::ErrorKind::WouldBlock => State::Live, // listening, backlog full
            std::io::ErrorKind::ConnectionRefused => State::Stale,
            _ => State::Unknown,
        },
    }
}

fn scan() -> Result<Vec<Entry>, Failure> {
    let listening = listening_paths();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let dir = std::fs::read_dir("/tmp")
        .map_err(|e| Failure::new(exit::FAILED, format!("cannot read /tmp: {e}")))?;
    let mut entries: Vec<Entry> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid = name.strip_prefix("manhole-")?.parse::<i32>().ok();
            // Not followed: a symlink, a directory or a regular file is never a manhole.
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            if !meta.file_type().is_socket() || (me != 0 && meta.uid() != me) {
                return None;
            }
            let listed = listening.as_ref().is_some_and(|paths| paths.contains(&e.path()));
            let state = if listed { State::Live } else { probe(&e.path()) };
            let program = pid
                .filter(|_| state == State::Live)
                .and_then(|p| std::fs::read(format!("/proc/{p}/comm")).ok())
                .map(|c| clean(c.trim_ascii_end()));
            Some(Entry {
                pid,
                uid: meta.uid(),
                program,
                socket: e.path(),
                state,
                inode: (meta.dev(), meta.ino()),
            })
        })
        .collect();
    entries.sort_by_key(|e| e.pid);
    Ok(entries)
}

/// Removes a stale socket if it is still the very file judged stale, and still refused.
fn remove(entry: &Entry) -> Result<(), String> {
    let same = std::fs::symlink_metadata(&entry.socket)
        .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == entry.inode);
    if !same || probe(&entry.socket) != State::Stale {
        return Err("it changed meanwhile (a new socket?); left alone".to_owned());
    }
    std::fs::remove_file(&entry.socket).map_err(|e| e.to_string())
}

pub(crate) fn run(clean_up: bool, json: bool) -> Result<u8, Failure> {
    let entries = scan()?;
    let shown = |p: &Path| clean(p.as_os_str().as_encoded_bytes());
    if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "pid": e.pid,
                    "uid": e.uid,
                    "program": e.program,
                    "socket": shown(&e.socket),
                    "state": e.state.name(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for e in &entries {
            println!(
                "{:>8}  {:>6}  {:<16}  {:<5}  {}",
                e.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                e.uid,
                e.program.as_deref().unwrap_or("-"),
                e.state.name(),
                shown(&e.socket)
            );
        }
    }
    let stale: Vec<&Entry> = entries.iter().filter(|e| e.state == State::Stale).collect();
    if clean_up {
        for e in stale {
            match remove(e) {
                Ok(()) => eprintln!("removed stale {}", shown(&e.socket)),
                Err(why) => eprintln!("cannot remove {}: {why}", shown(&e.socket)),
            }
        }
    } else if !stale.is_empty() {
        let (count, them) = match stale.len() {
            1 => ("1 stale socket".to_owned(), "it"),
            n => (format!("{n} stale sockets"), "them"),
        };
        eprintln!(
            "{count} (nothing listens: the process is gone); `manhole-cli list --clean` removes {them}"
        );
    }
    Ok(exit::OK)
}
