//! The interactive client on a terminal: line editing, history in `~/.manhole_history`, Tab
//! completion of commands and of what the process exposes, Ctrl-C clears the line, Ctrl-D
//! leaves. Output is relayed byte for byte as it arrives (never decoded in pieces, so a
//! character split across reads reaches the terminal whole).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use manhole::__private::protocol::PROMPT;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};

use crate::completion::Names;
use crate::sanitize::Sanitizer;
use crate::wire::Peer;
use crate::{Failure, exit};

/// Lines kept in `~/.manhole_history`.
const HISTORY_SIZE: usize = 1000;

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".manhole_history"))
}

pub(crate) fn run(stream: UnixStream, mut reader: BufReader<UnixStream>, peer: Peer) -> Result<u8, Failure> {
    let names = crate::completion::fetch(&stream, &mut reader, peer)?;
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .map_err(|e| Failure::new(exit::FAILED, e.to_string()))?
        .auto_add_history(true)
        .build();
    let mut editor: Editor<Names, DefaultHistory> =
        Editor::with_config(config).map_err(|e| Failure::new(exit::FAILED, format!("no terminal: {e}")))?;
    editor.set_helper(Some(names));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let outcome = loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                let mut writer = &stream;
                if let Err(e) = writer.write_all(format!("{line}\n").as_bytes()) {
                    break Err(peer.broke(&e));
                }
                if matches!(line.trim(), "quit" | "exit") {
                    break Ok(exit::OK);
                }
                // Only a `watch` waits for a key; otherwise what is typed meanwhile stays in the
                // terminal for the next prompt.
                let watching = line.split_whitespace().next() == Some("watch");
                match relay_until_prompt(&stream, &mut reader, watching, peer) {
                    Ok(Relayed::Prompt) => {}
                    Ok(Relayed::Closed | Relayed::PromptThenLeave) => break Ok(exit::OK),
                    Err(e) => break Err(e),
                }
            }
            Err(ReadlineError::Interrupted) => continue, // Ctrl-C: the line is dropped
            Err(ReadlineError::Eof) => break Ok(exit::OK), // Ctrl-D
            Err(e) => {
                break Err(Failure::new(
                    exit::FAILED,
                    format!("cannot read the terminal: {e}"),
                ));
            }
        }
    };
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    outcome
}

/// How a command's output ended.
enum Relayed {
    /// The server prompts for the next command.
    Prompt,
    /// The server prompts, but Ctrl-D was pressed during a `watch`.
    PromptThenLeave,
    /// The session ended.
    Closed,
}

/// Prints what the server sends until its next prompt (which the editor shows instead), with
/// terminal controls shown escaped (see `sanitize`). With `watching`, a line typed meanwhile
/// (Enter, to stop a `watch`) is passed on.
///
/// The prompt is the one the server waits after: `>>> ` at the end of what arrived, with
/// nothing more right behind it. A `\n>>> ` inside a reply (a file name can hold one) is
/// followed by the rest of the reply and does not end it.
fn relay_until_prompt(
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    watching: bool,
    peer: Peer,
) -> Result<Relayed, Failure> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut leave = false;
    let mut stopped = false;
    let mut held: Vec<u8> = Vec::new(); // a possible prompt not yet shown
    let mut out = io::stdout();
    let mut sanitizer = Sanitizer::new();
    let mut shown = String::new();
    let mut show = |bytes: &[u8], last: bool| {
        shown.clear();
        sanitizer.push(bytes, &mut shown);
        if last {
            sanitizer.finish(&mut shown);
        }
        let _ = out.write_all(shown.as_bytes());
        let _ = out.flush();
    };
    let mut buf = [0u8; 16 * 1024];
    loop {
        if reader.buffer().is_empty() {
            let stdin = io::stdin();
            // The terminal is left out of the poll unless a key is awaited: a hung-up one
            // reports POLLHUP whatever is asked, and would be read (and a stop line sent) on
            // every turn, a busy loop for as long as the command runs.
            let listen = watching && !stopped;
            let mut fds = vec![PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
            if listen {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(peer.broke(&io::Error::from(e))),
            }
            if fds
                .get(1)
                .is_some_and(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            {
                let mut typed = [0u8; 256];
                // The terminal is in line mode here: one read takes the line, or 0 bytes on
                // Ctrl-D. Either stops the watch; Ctrl-D also leaves after it. Read unbuffered,
                // so that nothing typed after it is kept from the editor.
                match nix::unistd::read(stdin.as_fd(), &mut typed) {
                    Ok(0) | Err(_) => leave = true,
                    Ok(_) => {}
                }
                let mut writer = stream;
                let _ = writer.write_all(b"\n");
                // One stop line only: more would run as empty commands, each answered with a
                // prompt of its own, and the client would fall a prompt behind.
                stopped = true;
            }
            if fds[0].revents().is_none_or(|r| r.is_empty()) {
                continue;
            }
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(peer.broke(&e)),
        };
        if n == 0 {
            show(&held, true);
            return Ok(Relayed::Closed);
        }
        held.extend_from_slice(&buf[..n]);
        if held.ends_with(PROMPT.as_bytes()) && !more_is_waiting(reader) {
            held.truncate(held.len() - PROMPT.len());
            show(&held, true);
            if stopped {
                swallow_late_prompt(reader);
            }
            return Ok(if leave {
                Relayed::PromptThenLeave
            } else {
                Relayed::Prompt
            });
        }
        // Show all but the last bytes, which could be the start of the prompt.
        let keep = (1..PROMPT.len())
            .rev()
            .find(|k| held.ends_with(&PROMPT.as_bytes()[..*k]))
            .unwrap_or(0);
        let upto = held.len() - keep;
        show(&held[..upto], false);
        held.drain(..upto);
    }
}

/// Whether more of the reply has already arrived behind what was read.
fn more_is_waiting(reader: &BufReader<UnixStream>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    if !reader.buffer().is_empty() {
        return true;
    }
    let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// After a stop line: if the watch had ended on its own just before, the server took the line
/// as an empty command and answers it with one more bare prompt. It comes at once if at all.
fn swallow_late_prompt(reader: &mut BufReader<UnixStream>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    if reader.buffer().is_empty() {
        let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) {
            return;
        }
    }
    if reader.fill_buf().is_ok_and(|b| b.starts_with(PROMPT.as_bytes())) {
        reader.consume(PROMPT.len());
    }
}
