//! `manhole-cli list`: this user's manholes under /tmp, live or stale.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use crate::{Failure, exit};

struct Entry {
    pid: Option<i32>,
    program: Option<String>,
    socket: PathBuf,
    live: bool,
}

/// The paths of listening Unix sockets, from /proc/net/unix (flag __SO_ACCEPTCON), if readable.
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
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            if !meta.file_type().is_socket() || meta.uid() != me {
                return None;
            }
            // Read from the kernel's table when possible: connecting would use up the single
            // session of a one-shot manhole. Connecting is the fallback.
            let live = match &listening {
                Some(paths) => paths.contains(&e.path()),
                None => match crate::connect::try_connect(&e.path()) {
                    Ok(_) => true,
                    Err(err) => err.kind() == std::io::ErrorKind::WouldBlock,
                },
            };
            let program = pid
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
                .map(|c| c.trim_end().to_owned());
            Some(Entry {
                pid,
                program,
                socket: e.path(),
                live,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.pid);
    Ok(entries)
}

pub(crate) fn run(clean: bool, json: bool) -> Result<u8, Failure> {
    let entries = scan()?;
    if json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "pid": e.pid,
                    "program": e.program,
                    "socket": e.socket.display().to_string(),
                    "state": if e.live { "live" } else { "stale" },
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for e in &entries {
            println!(
                "{:>8}  {:<16}  {:<5}  {}",
                e.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
                e.program.as_deref().unwrap_or("-"),
                if e.live { "live" } else { "stale" },
                e.socket.display()
            );
        }
    }
    if clean {
        for e in entries.iter().filter(|e| !e.live) {
            match std::fs::remove_file(&e.socket) {
                Ok(()) => eprintln!("removed stale {}", e.socket.display()),
                Err(err) => eprintln!("cannot remove {}: {err}", e.socket.display()),
            }
        }
    }
    Ok(exit::OK)
}
