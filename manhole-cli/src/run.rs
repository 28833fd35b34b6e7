//! A session: interactive (text, relayed as it comes), or commands from the command line or
//! piped stdin, run in machine mode so each one's success is known.

use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

// The longest command line a manhole takes, in bytes, without the newline.
use manhole::__private::protocol::MAX_LINE;

use crate::args::Cli;
use crate::wire::{self, Peer};
use crate::{Failure, connect, exit};

pub(crate) fn run(cli: &Cli) -> Result<u8, Failure> {
    let target = cli.target.as_deref().unwrap_or_default();
    let (path, pid) = connect::resolve(target)?;
    // Given a PID, the listener must be that very process; given a path, any process of ours.
    // Who the process is gets read before anything is sent to it.
    let target_process = match pid {
        Some(pid) if !target.contains('/') => Some(connect::Target::identify(pid, &path)?),
        _ => None,
    };
    let signal = cli.signal_to_send();
    if let Some(signal) = signal {
        let pid = pid.ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!("cannot tell which process to send {signal} to from {target:?}; give its PID"),
            )
        })?;
        if !cli.force {
            connect::check_signal(pid, signal, &cli.trigger_option(signal))?;
        }
        connect::send_signal(pid, signal)?;
    }
    let stream = connect::connect(&path, cli.timeout, signal.is_some() || cli.wait)?;
    let peer = connect::verify_peer(&stream, &path, target_process, cli.trust_uid)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| peer.broke(&e))?);
    let interactive = cli.words.is_empty() && io::stdin().is_terminal();
    wire::read_opening(&mut reader, peer, !cli.quiet && !cli.json, cli.opening_timeout)?;
    // Commands wait as long as they run.
    reader
        .get_ref()
        .set_read_timeout(None)
        .map_err(|e| peer.broke(&e))?;
    if interactive {
        return crate::interactive::run(stream, reader, peer);
    }
    run_commands(cli, &stream, &mut reader, peer)
}

/// One line of piped commands.
enum Line {
    Command(String),
    NotUtf8,
    TooLong,
}

/// Piped commands, one line at a time as they come (never all of stdin at once: a producer
/// that never stops, or a stdin kept open, must get its answers as it goes), each line held
/// to [`MAX_LINE`] bytes.
struct Commands {
    input: BufReader<std::fs::File>,
    /// The number of the last line read, from 1.
    number: usize,
}

impl Commands {
    fn stdin() -> Result<Commands, Failure> {
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Failure::new(exit::FAILED, format!("cannot read stdin: {e}")))?;
        Ok(Commands {
            input: BufReader::with_capacity(MAX_LINE + 1, std::fs::File::from(fd)),
            number: 0,
        })
    }

    /// Whether a line (or the end of stdin) can be read without waiting.
    fn buffered(&self) -> bool {
        !self.input.buffer().is_empty()
    }

    /// The next line; `None` at the end of stdin.
    fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut line = Vec::new();
        let read = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE {
            // The rest of it is skipped, not held.
            loop {
                let chunk = match self.input.fill_buf() {
                    Ok(chunk) => chunk,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if chunk.is_empty() {
                    break;
                }
                let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                    Some(at) => (at + 1, true),
                    None => (chunk.len(), false),
                };
                self.input.consume(take);
                if done {
                    break;
                }
            }
            return Ok(Some(Line::TooLong));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(match String::from_utf8(line) {
            Ok(text) => Line::Command(text),
            Err(_) => Line::NotUtf8,
        }))
    }
}

/// Waits until stdin has something (a line, or its end) or the session ends meanwhile (the
/// process exited, or closed an idle session): then says so instead of waiting for a line
/// that could only go unanswered.
fn wait_for_stdin(
    commands: &Commands,
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
) -> Result<(), Failure> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    if commands.buffered() {
        return Ok(());
    }
    loop {
        let mut fds = [
            PollFd::new(commands.input.get_ref().as_fd(), PollFlags::POLLIN),
            PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(peer.broke(&io::Error::from(e))),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }
    // Nothing is sent unasked in machine mode but a farewell before the end.
    let mut said = Vec::new();
    let _ = reader
        .get_ref()
        .set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let _ = reader.take(4096).read_to_end(&mut said);
    let said = crate::sanitize::clean(said.trim_ascii());
    let pid = peer.pid;
    Err(Failure::new(
        exit::FAILED,
        if said.is_empty() {
            format!("process {pid} ended the session")
        } else {
            format!("process {pid} ended the session: {said}")
        },
    ))
}

/// Commands from the command line or stdin, one JSON document each; exit 1 if any failed.
/// When stdout's reader leaves, no more are run, and the status is that of those that ran.
fn run_commands(
    cli: &Cli,
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
) -> Result<u8, Failure> {
    let mut status = exit::OK;
    match send_commands(cli, stream, reader, peer, &mut status) {
        Err(failure) if !failure.reader_left() => Err(failure),
        _ => Ok(status),
    }
}

/// Shows an answer (as JSON with `--json`, else its text, or its error on stderr); a failed
/// one sets `status` to 1.
fn show(cli: &Cli, answer: &serde_json::Value, status: &mut u8) -> Result<(), Failure> {
    let ok = answer["ok"].as_bool().unwrap_or(false);
    if !ok {
        *status = exit::FAILED;
    }
    if cli.json {
        crate::write_out(format!("{answer}\n").as_bytes())
    } else if ok {
        crate::write_out(answer["text"].as_str().unwrap_or_default().as_bytes())
    } else {
        eprintln!(
            "error: {}",
            answer["error"]["message"].as_str().unwrap_or("unknown error")
        );
        Ok(())
    }
}

fn send_commands(
    cli: &Cli,
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
    status: &mut u8,
) -> Result<(), Failure> {
    let send = |reader: &mut BufReader<UnixStream>, line: &str| -> Result<serde_json::Value, Failure> {
        let mut writer = stream;
        writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| peer.broke(&e))?;
        match wire::read_document(reader, peer)? {
            Some(answer) => wire::parse_document(&answer, peer),
            None => Err(Failure::new(
                exit::FAILED,
                format!("process {} ended the session before answering", peer.pid),
            )),
        }
    };
    send(reader, "machine")?;
    let mut show = |answer: &serde_json::Value| show(cli, answer, status);
    if !cli.words.is_empty() {
        let line = cli
            .words
            .iter()
            .map(|w| manhole::__private::quote_word(w))
            .collect::<Vec<_>>()
            .join(" ");
        let line = line.trim();
        if !line.is_empty() && !matches!(line, "quit" | "exit") {
            show(&send(reader, line)?)?;
        }
        return Ok(());
    }
    let mut commands = Commands::stdin()?;
    loop {
        wait_for_stdin(&commands, reader, peer)?;
        let line = match commands.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                // What ran is shown; what could not be read is not guessed at.
                return show(&refused(format!(
                    "cannot read stdin after line {}: {e}",
                    commands.number
                )));
            }
        };
        let number = commands.number;
        let line = match line {
            Line::Command(line) => line,
            Line::NotUtf8 => {
                show(&refused(format!("line {number} is not UTF-8; it was not sent")))?;
                continue;
            }
            Line::TooLong => {
                show(&refused(format!(
                    "line {number} is longer than {} KiB, the most a manhole takes; it was not sent",
                    MAX_LINE >> 10
                )))?;
                continue;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(line, "quit" | "exit") {
            break;
        }
        show(&send(reader, line)?)?;
    }
    Ok(())
}

/// A line the client would not send, as a machine-mode failure (the server's own shape for
/// input it ignores).
fn refused(message: String) -> serde_json::Value {
    serde_json::json!({
        "ok": false,
        "command": null,
        "error": {"code": "input", "message": message},
    })
}
