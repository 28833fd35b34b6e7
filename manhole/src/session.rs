//! One client's session: the stack dump, the banner, then commands until `quit` or EOF.
//!
//! Input is read as bounded lines; whatever a client sends (a megabyte without a newline, bytes
//! that are not UTF-8, NULs) gets a one-line error and the session goes on. Output goes out
//! with `MSG_NOSIGNAL` and a send timeout, so a client that vanishes or stops reading costs the
//! host nothing but this thread, which then ends.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::console::{self, Context, Host, Outcome, Reply};
use crate::fdguard::Registered;
use crate::json::Json;
use crate::logging::mlog;
use crate::protocol::{BANNER_END, MACHINE_VERSION, MAX_LINE, PROMPT};
use crate::sys::{self, PeerCred};
use crate::text::{human_duration, panic_message};
use crate::{procfs, stacks};

/// How long a write may wait for a client that does not read.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the client sent, one line at a time.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    Line(String),
    TooLong { len: usize },
    NotUtf8 { offset: usize },
    Nul { offset: usize },
    Eof,
}

/// Splits a byte stream into bounded lines (`\n` or `\r\n`), never holding more than
/// `max` bytes of one line.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    scanned: usize,
    max: usize,
    /// Bytes of an overlong line thrown away so far.
    discarded: Option<usize>,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(1024),
            scanned: 0,
            max,
            discarded: None,
            eof: false,
        }
    }

    /// Whether a whole line is already buffered.
    pub(crate) fn has_pending_line(&self) -> bool {
        self.buf.contains(&b'\n')
    }

    pub(crate) fn next_input(&mut self) -> io::Result<Input> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + pos;
                let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                self.scanned = 0;
                if let Some(discarded) = self.discarded.take() {
                    return Ok(Input::TooLong {
                        len: discarded + line.len(),
                    });
                }
                // One read can bring a whole overlong line: the bound is on the line, not the read.
                if line.len() > self.max {
                    return Ok(Input::TooLong { len: line.len() });
                }
                return Ok(check(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                *self.discarded.get_or_insert(0) += self.buf.len();
                self.buf.clear();
                self.scanned = 0;
            }
            if self.eof {
                if let Some(discarded) = self.discarded.take() {
                    let len = discarded + self.buf.len();
                    self.buf.clear();
                    self.scanned = 0;
                    return Ok(Input::TooLong { len });
                }
                if self.buf.is_empty() {
                    return Ok(Input::Eof);
                }
                let rest = std::mem::take(&mut self.buf);
                self.scanned = 0;
                return Ok(check(rest));
            }
            let mut chunk = [0u8; 8192];
            match self.inner.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn check(mut line: Vec<u8>) -> Input {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if let Some(offset) = line.iter().position(|b| *b == 0) {
        return Input::Nul { offset };
    }
    match String::from_utf8(line) {
        Ok(text) => Input::Line(text),
        Err(e) => Input::NotUtf8 {
            offset: e.utf8_error().valid_up_to(),
        },
    }
}

/// Output to the client: whole messages, no SIGPIPE, bounded waiting.
struct Client<'a> {
    stream: &'a UnixStream,
}

impl Client<'_> {
    fn send(&self, text: &str) -> io::Result<()> {
        sys::send_all(self.stream, text.as_bytes(), false)
    }

    /// Waits up to `timeout` for the client to send something (or leave).
    fn readable_within(&self, timeout: Duration) -> io::Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The banner written after the stack dump.
pub(crate) fn banner() -> String {
    let exe = procfs::exe().map_or_else(|| "?".to_owned(), |p| p.display().to_string());
    let uptime = procfs::process_stat()
        .uptime
        .map_or_else(|| "?".to_owned(), human_duration);
    format!(
        "manhole {} in {exe} (pid {}), up {uptime}\n{BANNER_END}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    )
}

/// Serves one client until it leaves, goes idle, or the manhole stops.
pub(crate) fn serve(
    host: &dyn Host,
    stream: Registered<UnixStream>,
    peer: PeerCred,
    machine_flag: &std::sync::atomic::AtomicBool,
    idle_timeout: Duration,
) {
    let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    match converse(host, &stream, peer, machine_flag, idle_timeout) {
        Ok(Ended::Quit) => mlog!("Session from PID:{pid} ended (quit)"),
        Ok(Ended::Eof) => mlog!("Session from PID:{pid} ended (client closed)"),
        Ok(Ended::Idle) => mlog!(
            "Session from PID:{pid} closed after {} s idle",
            idle_timeout.as_secs()
        ),
        Err(e) => mlog!("Session from PID:{pid} ended: {e}"),
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

enum Ended {
    Quit,
    Eof,
    Idle,
}

fn converse(
    host: &dyn Host,
    stream: &UnixStream,
    peer: PeerCred,
    machine_flag: &std::sync::atomic::AtomicBool,
    idle_timeout: Duration,
) -> io::Result<Ended> {
    stream.set_read_timeout(Some(idle_timeout))?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    let client = Client { stream };
    let mut opening = stacks::dump_text(false);
    opening.push_str(&banner());
    opening.push_str(PROMPT);
    client.send(&opening)?;

    let mut reader = LineReader::new(stream, MAX_LINE);
    let mut machine = false;
    loop {
        let input = match reader.next_input() {
            Ok(input) => input,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                let _ = client.send(&format!(
                    "\nmanhole: closing this session after {} idle\n",
                    human_duration(idle_timeout)
                ));
                return Ok(Ended::Idle);
            }
            Err(e) => return Err(e),
        };
        let context = Context {
            host,
            peer,
            client: Some(stream),
            machine,
        };
        let (command, outcome) = match input {
            Input::Eof => return Ok(Ended::Eof),
            Input::Line(line) if machine && line.trim().is_empty() => continue,
            Input::Line(line) => run_line(&line, &context),
            Input::TooLong { len } => (
                None,
                Reply::fail(
                    "input",
                    format!("line too long ({len} bytes; at most {MAX_LINE}); it was ignored"),
                )
                .into(),
            ),
            Input::NotUtf8 { offset } => (
                None,
                Reply::fail(
                    "input",
                    format!("input is not valid UTF-8 (bad byte at offset {offset}); it was ignored"),
                )
                .into(),
            ),
            Input::Nul { offset } => (
                None,
                Reply::fail(
                    "input",
                    format!("input contains a NUL byte (at offset {offset}); it was ignored"),
                )
                .into(),
            ),
        };
        let mut out = match outcome {
            Outcome::Quit => return Ok(Ended::Quit),
            Outcome::Reply(reply) => render(&reply, command, machine),
            Outcome::Machine(on) => {
                machine = on;
                machine_flag.store(on, std::sync::atomic::Ordering::Release);
                let mode = if on { "json" } else { "text" };
                let data = Json::obj([
                    ("mode", Json::from(mode)),
                    ("version", Json::from(MACHINE_VERSION)),
                ]);
                // Acknowledged as a document either way: a program asked, and reads JSON.
                render(&Reply::ok(String::new(), data), command, true)
            }
            Outcome::Watch {
                every,
                count,
                command: watched,
            } => {
                if !watch(&client, &mut reader, &context, every, count, &watched)? {
                    return Ok(Ended::Eof);
                }
                String::new()
            }
        };
        if !machine {
            out.push_str(PROMPT);
        }
        client.send(&out)?;
    }
}

/// A reply as the session sends it: text, or one JSON document on one line.
pub(crate) fn render(reply: &Reply, command: Option<&str>, machine: bool) -> String {
    if !machine {
        return reply.text.clone();
    }
    let document = match &reply.failure {
        None => Json::obj([
            ("ok", Json::from(true)),
            ("command", Json::from(command)),
            ("data", reply.data.clone()),
            ("text", Json::from(reply.text.as_str())),
        ]),
        Some(failure) => Json::obj([
            ("ok", Json::from(false)),
            ("command", Json::from(command)),
            (
                "error",
                Json::obj([
                    ("code", Json::from(failure.code)),
                    ("message", Json::from(failure.message.as_str())),
                ]),
            ),
        ]),
    };
    let mut line = document.to_line();
    line.push('\n');
    line
}

/// Runs `command` every `every` until `count` runs are done or the client sends a line.
/// Returns false if the client left.
fn watch(
    client: &Client<'_>,
    reader: &mut LineReader<&UnixStream>,
    context: &Context<'_>,
    every: Duration,
    count: Option<u64>,
    command: &str,
) -> io::Result<bool> {
    let mut runs = 0;
    loop {
        runs += 1;
        let (_, outcome) = run_line(command, context);
        let body = match outcome {
            Outcome::Reply(reply) => reply.text,
            _ => format!("error: {command:?} cannot be watched\n"),
        };
        let of = count.map_or_else(String::new, |c| format!(" of {c}"));
        let seconds = every.as_secs_f64();
        client.send(&format!(
            "Every {seconds}s: {command}  (run {runs}{of}; press Enter to stop)\n{body}"
        ))?;
        if count.is_some_and(|c| runs >= c) {
            return Ok(true);
        }
        if reader.has_pending_line() || client.readable_within(every)? {
            return match reader.next_input()? {
                Input::Eof => Ok(false),
                _ => Ok(true),
            };
        }
    }
}

/// Parses and runs one line; a panic inside a command becomes an error line.
fn run_line(line: &str, context: &Context<'_>) -> (Option<&'static str>, Outcome) {
    match catch_unwind(AssertUnwindSafe(|| console::execute(line, context))) {
        Ok(result) => result,
        Err(panic) => (
            None,
            Reply::fail(
                "panic",
                format!(
                    "the command panicked: {}; the program goes on",
                    panic_message(&*panic)
                ),
            )
            .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its data in the given pieces, like a socket would.
    struct Pieces(Vec<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let piece = &mut self.0[0];
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn all(pieces: Vec<&[u8]>, max: usize) -> Vec<Input> {
        let mut reader = LineReader::new(Pieces(pieces.into_iter().map(<[u8]>::to_vec).collect()), max);
        let mut out = Vec::new();
        loop {
            let input = reader.next_input().unwrap();
            let end = input == Input::Eof;
            out.push(input);
            if end {
                return out;
            }
        }
    }

    fn line(s: &str) -> Input {
        Input::Line(s.to_owned())
    }

    #[test]
    fn lines_split_across_reads_and_crlf() {
        assert_eq!(
            all(vec![b"he", b"lp\r\ninfo\nsta", b"cks\n"], 100),
            vec![line("help"), line("info"), line("stacks"), Input::Eof]
        );
    }

    #[test]
    fn a_last_line_without_newline_still_counts() {
        assert_eq!(all(vec![b"quit"], 100), vec![line("quit"), Input::Eof]);
        assert_eq!(all(vec![b"\n\n"], 100), vec![line(""), line(""), Input::Eof]);
    }

    #[test]
    fn overlong_lines_are_discarded_and_reported_then_reading_goes_on() {
        let big = vec![b'a'; 1000];
        let inputs = all(vec![&big, &big, b"aa\ninfo\n"], 100);
        assert_eq!(
            inputs,
            vec![Input::TooLong { len: 2002 }, line("info"), Input::Eof]
        );
        let inputs = all(vec![&big], 100);
        assert_eq!(inputs, vec![Input::TooLong { len: 1000 }, Input::Eof]);
        // Found by the fuzzer: an overlong last line whose tail is still buffered at EOF is
        // reported once, not once as too long and again as a line.
        let inputs = all(vec![&big, b"tail"], 100);
        assert_eq!(inputs, vec![Input::TooLong { len: 1004 }, Input::Eof]);
    }

    #[test]
    fn bytes_that_are_not_text() {
        assert_eq!(
            all(vec![b"ab\xffcd\nin\0fo\ninfo\n"], 100),
            vec![
                Input::NotUtf8 { offset: 2 },
                Input::Nul { offset: 2 },
                line("info"),
                Input::Eof
            ]
        );
        // A multi-byte character split across reads is fine.
        assert_eq!(
            all(vec![b"caf\xc3", b"\xa9\n"], 100),
            vec![line("café"), Input::Eof]
        );
    }
}
