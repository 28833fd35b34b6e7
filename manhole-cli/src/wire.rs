//! Reading what the process sends, bounded in size and time, with failures phrased for a
//! person: the opening (stack dump and banner) up to its prompt, streamed to the terminal as
//! it comes; one machine-mode document per line.
//!
//! A listener that is not a manhole (or a broken one) may never send the prompt or end a
//! line; the client stops reading at [`OPENING_MAX`] or [`DOCUMENT_MAX`] instead of growing
//! until the machine runs out of memory.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use manhole::__private::protocol::{self, BANNER_END, PROMPT, REFUSED_PREFIX};

use crate::sanitize::{Sanitizer, clean};
use crate::{Failure, exit};

/// The most the opening may take before its prompt (it is shown as it comes, never held).
pub(crate) const OPENING_MAX: usize = 32 << 20;
/// The most one machine-mode document may take (it is held whole to be parsed).
pub(crate) const DOCUMENT_MAX: usize = 64 << 20;

/// The end of the opening: the banner's last line and the first prompt. A prompt alone could
/// be forged by a thread name in the dump ("x\n>>> "); this whole line cannot (thread names
/// are at most 15 bytes).
fn opening_end() -> Vec<u8> {
    [BANNER_END, PROMPT].concat().into_bytes()
}
/// How much of the start is held back to recognise a refusal before anything is shown.
const FIRST_LINE_MAX: usize = 4096;

/// Who is at the other end, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) pid: i32,
}

impl Peer {
    /// A failed read or write, said for a person.
    pub(crate) fn broke(self, err: &io::Error) -> Failure {
        let pid = self.pid;
        let message = match err.kind() {
            io::ErrorKind::ConnectionReset => {
                format!("process {pid} reset the connection (it may have exited or crashed)")
            }
            io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => {
                format!("process {pid} closed the connection")
            }
            io::ErrorKind::UnexpectedEof => {
                format!("process {pid} closed the connection in the middle of an answer")
            }
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("process {pid} stopped answering")
            }
            _ => format!("the connection to process {pid} broke: {err}"),
        };
        Failure::new(exit::FAILED, message)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the opening up to its prompt within `timeout`, showing it on stdout when `show`;
/// recognises refusals.
pub(crate) fn read_opening(
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
    show: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let opening_end = opening_end();
    let mut held: Vec<u8> = Vec::new(); // received, not shown yet
    let mut first_line_seen = false;
    let mut total = 0usize;
    let mut sanitizer = Sanitizer::new();
    let mut shown = String::new();
    let mut out = io::stdout().lock();
    let mut show_bytes = |bytes: &[u8], last: bool| {
        if !show {
            return;
        }
        shown.clear();
        sanitizer.push(bytes, &mut shown);
        if last {
            sanitizer.finish(&mut shown);
        }
        let _ = out.write_all(shown.as_bytes());
        if last {
            let _ = out.flush();
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let waited = || {
            let pid = peer.pid;
            let secs = timeout.as_secs_f64();
            let message = if total == 0 {
                format!(
                    "process {pid} accepted the connection but sent nothing for {secs} s (it may be \
                     frozen or not a manhole; --opening-timeout waits longer)"
                )
            } else {
                format!(
                    "process {pid} sent {total} bytes in {secs} s but no prompt (it may be stuck or \
                     not a manhole; --opening-timeout waits longer)"
                )
            };
            Failure::new(exit::TIMEOUT, message)
        };
        if left.is_zero() {
            return Err(waited());
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| peer.broke(&e))?;
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(waited());
            }
            // A refusal is followed by the end of the connection, however it ends.
            Err(_) if !first_line_seen && protocol::is_refusal(&held) => return Err(refusal(&held)),
            Err(e) => return Err(peer.broke(&e)),
        };
        if chunk.is_empty() {
            if !first_line_seen && protocol::is_refusal(&held) {
                return Err(refusal(&held));
            }
            show_bytes(&held, true);
            let pid = peer.pid;
            return Err(Failure::new(
                exit::FAILED,
                if total == 0 {
                    format!("process {pid} closed the connection without sending anything")
                } else if show || held.is_empty() {
                    format!("process {pid} ended the session after {total} bytes, before its prompt")
                } else {
                    format!(
                        "the session ended before its prompt: {}",
                        clean(held.trim_ascii())
                    )
                },
            ));
        }
        let n = chunk.len();
        let from = held.len().saturating_sub(opening_end.len() - 1);
        held.extend_from_slice(chunk);
        let end = find(&held[from..], &opening_end).map(|at| from + at + opening_end.len());
        // Nothing after the prompt is the opening's: it stays in the reader.
        let used = end.map_or(n, |end| n - (held.len() - end));
        reader.consume(used);
        if let Some(end) = end {
            held.truncate(end);
        }
        total += used;
        if total > OPENING_MAX {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "process {} sent more than {} MiB without a prompt (not a manhole, or a broken one); \
                     stopped reading",
                    peer.pid,
                    OPENING_MAX >> 20
                ),
            ));
        }
        if !first_line_seen {
            let line_ends = held.contains(&b'\n') || end.is_some();
            if !(line_ends || held.len() >= FIRST_LINE_MAX) {
                continue;
            }
            if protocol::is_refusal(&held) && held.len() < FIRST_LINE_MAX {
                continue; // the end of the connection follows
            }
            first_line_seen = true;
        }
        if let Some(end) = end {
            show_bytes(&held[..end - PROMPT.len()], true);
            return Ok(());
        }
        // Show all but what could be the start of the end.
        let keep = opening_end.len() - 1;
        if held.len() > keep {
            let upto = held.len() - keep;
            show_bytes(&held[..upto], false);
            held.drain(..upto);
        }
    }
}

fn refusal(held: &[u8]) -> Failure {
    let text = clean(held.trim_ascii());
    Failure::new(exit::REFUSED, text.trim_start_matches(REFUSED_PREFIX).to_owned())
}

/// Reads one line (a machine-mode document), at most [`DOCUMENT_MAX`] bytes; `None` at the
/// end of the session.
pub(crate) fn read_document(
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
) -> Result<Option<Vec<u8>>, Failure> {
    let mut line = Vec::new();
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(peer.broke(&e)),
        };
        if chunk.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        if line.len() + take > DOCUMENT_MAX {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "process {} sent an answer of more than {} MiB without ending it (not a manhole, or \
                     a broken one); stopped reading",
                    peer.pid,
                    DOCUMENT_MAX >> 20
                ),
            ));
        }
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

/// Parses a machine-mode document, with its strings cleaned for showing.
pub(crate) fn parse_document(line: &[u8], peer: Peer) -> Result<serde_json::Value, Failure> {
    let mut value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        let start = &line[..line.len().min(200)];
        let more = if line.len() > start.len() { "…" } else { "" };
        Failure::new(
            exit::FAILED,
            format!(
                "process {} sent something that is not a machine-mode answer ({e}): {}{more}",
                peer.pid,
                clean(start.trim_ascii())
            ),
        )
    })?;
    crate::sanitize::clean_json(&mut value);
    Ok(value)
}
