//! `manhole-cli list`: the manholes under /tmp (this user's; everyone's for root), live or
//! stale, and `--clean` to remove the stale ones.
//!
//! Stale means: a socket file that nobody listens on, which `connect` proves (it is refused).
//! `/proc/net/unix` alone does not: it shows only this network namespace's sockets, and the
//! path a socket was bound with (relative, or moved since), so a live socket may be missing
//! from it. It is read first, so that live manholes are not connected to (that would use up
//! a one-shot manhole's single session); what it does not show as listening is then tried.
//!
//! The pid in a socket's name is checked, not believed: a live socket's program is shown only
//! when that process has the socket open (its `/proc/PID/fd`); otherwise the row says
//! `(not pid's)` (or `(unverified)` when that cannot be read) and never names that pid's
//! program.

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

/// Whether the process a socket's name points at (`/tmp/manhole-PID`) is the one that holds
/// it. The name is only a name: anyone may bind `/tmp/manhole-1`, and a pid is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// The process has the listening socket open.
    Confirmed,
    /// It is not that process's socket; says why.
    Other(String),
    /// Could not be told (its descriptors cannot be read, or the kernel shows the socket
    /// under another path).
    Unknown,
}

impl Holder {
    fn holds(&self) -> Option<bool> {
        match self {
            Holder::Confirmed => Some(true),
            Holder::Other(_) => Some(false),
            Holder::Unknown => None,
        }
    }
}

struct Entry {
    pid: Option<i32>,
    uid: u32,
    /// Only for a confirmed holder: another process's name is never shown as the socket's.
    program: Option<String>,
    holder: Option<Holder>,
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

/// The inode of the socket listening at `path` in the network namespace of `pid`, from its
/// `/proc/PID/net/unix`.
fn listening_inode(pid: i32, path: &Path) -> Option<u64> {
    let table = std::fs::read(format!("/proc/{pid}/net/unix")).ok()?;
    let wanted = path.as_os_str().as_encoded_bytes();
    table.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').filter(|f| !f.is_empty()).collect();
        let flags = u32::from_str_radix(std::str::from_utf8(fields.get(3)?).ok()?, 16).ok()?;
        let inode = std::str::from_utf8(fields.get(6)?).ok()?.parse().ok()?;
        (flags & 0x10000 != 0 && *fields.get(7)? == wanted).then_some(inode)
    })
}

/// Whether process `pid` has socket `inode` open, from its `/proc/PID/fd` links.
fn holds_inode(pid: i32, inode: u64) -> std::io::Result<bool> {
    let wanted = format!("socket:[{inode}]");
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(fd) = fd else { continue };
        if std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `pid` holds the live socket at `path`, which uid `owner` owns.
fn holder(pid: i32, path: &Path, owner: u32) -> Holder {
    let euid = match crate::proc::euid(pid) {
        Ok(euid) => euid,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Holder::Other(format!("there is no process {pid}"));
        }
        Err(_) => return Holder::Unknown,
    };
    if let Some(inode) = listening_inode(pid, path) {
        match holds_inode(pid, inode) {
            Ok(true) => return Holder::Confirmed,
            Ok(false) => return Holder::Other(format!("process {pid} does not have it open")),
            Err(_) => {} // its descriptors are not ours to read
        }
    }
    if euid != owner {
        return Holder::Other(format!(
            "uid {owner} owns it and process {pid} runs as uid {euid}"
        ));
    }
    Holder::Unknown
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
            let holder = pid
                .filter(|_| state == State::Live)
                .map(|p| holder(p, &e.path(), meta.uid()));
            let program = pid
                .filter(|_| holder == Some(Holder::Confirmed))
                .and_then(|p| std::fs::read(format!("/proc/{p}/comm")).ok())
                .map(|c| clean(c.trim_ascii_end()));
            Some(Entry {
                pid,
                uid: meta.uid(),
                program,
                holder,
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
    let listing = if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "pid": e.pid,
                    "uid": e.uid,
                    "program": e.program,
                    "pid_holds_socket": e.holder.as_ref().and_then(Holder::holds),
                    "socket": shown(&e.socket),
                    "state": e.state.name(),
                })
            })
            .collect();
        format!("{}\n", serde_json::Value::Array(list))
    } else {
        let mut listing = String::new();
        for e in &entries {
            let program = match &e.holder {
                Some(Holder::Other(_)) => "(not pid's)",
                Some(Holder::Unknown) => "(unverified)",
                _ => e.program.as_deref().unwrap_or("-"),
            };
            listing.push_str(&format!(
                "{:>8}  {:>6}  {:<16}  {:<5}  {}\n",
                e.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                e.uid,
                program,
                e.state.name(),
                shown(&e.socket)
            ));
        }
        listing
    };
    // Written first, its failure returned last: a reader that left stops neither the warnings
    // nor the clean-up.
    let written = crate::write_out(listing.as_bytes());
    for e in &entries {
        if let (Some(pid), Some(Holder::Other(why))) = (e.pid, &e.holder) {
            eprintln!(
                "{} is not the manhole of process {pid}, whatever its name says: {why}",
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
    written.map(|()| exit::OK)
}
