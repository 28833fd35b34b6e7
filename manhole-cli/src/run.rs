//! A session: interactive (text, relayed as it comes), or commands from the command line or
//! piped stdin, run in machine mode so each one's success is known.

use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::args::Cli;
use crate::{Failure, connect, exit};

const PROMPT: &[u8] = b">>> ";

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
    connect::verify_peer(&stream, &path, target_process)?;
    // The first dump of a fresh process can take a moment; commands wait as long as they run.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io_failure)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io_failure)?);
    let opening = read_opening(&mut reader)?;
    let interactive = cli.words.is_empty() && io::stdin().is_terminal();
    if !cli.quiet && !cli.json {
        print(&opening);
    }
    stream.set_read_timeout(None).map_err(io_failure)?;
    if interactive {
        return crate::interactive::run(stream, reader);
    }
    run_commands(cli, &stream, &mut reader)
}

fn io_failure(err: io::Error) -> Failure {
    Failure::new(exit::FAILED, format!("the connection broke: {err}"))
}

fn print(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Reads the stack dump and banner up to the first prompt; recognises refusals.
fn read_opening(reader: &mut BufReader<UnixStream>) -> Result<Vec<u8>, Failure> {
    let mut opening = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                opening.push(byte[0]);
                if opening.ends_with(PROMPT) {
                    opening.truncate(opening.len() - PROMPT.len());
                    return Ok(opening);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if opening.is_empty() => return Err(io_failure(e)),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&opening).trim().to_owned();
    if text.starts_with("manhole: access denied") || text.starts_with("manhole: too many sessions") {
        return Err(Failure::new(
            exit::REFUSED,
            text.trim_start_matches("manhole: ").to_owned(),
        ));
    }
    Err(Failure::new(
        exit::FAILED,
        format!("the session ended before its prompt: {text}"),
    ))
}

/// Commands from the command line or stdin, one JSON document each; exit 1 if any failed.
fn run_commands(cli: &Cli, stream: &UnixStream, reader: &mut BufReader<UnixStream>) -> Result<u8, Failure> {
    let mut send = |line: &str| -> Result<serde_json::Value, Failure> {
        let mut writer = stream;
        writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io_failure)?;
        let mut answer = String::new();
        if reader.read_line(&mut answer).map_err(io_failure)? == 0 {
            return Err(Failure::new(exit::FAILED, "the session ended before answering"));
        }
        serde_json::from_str(&answer).map_err(|e| {
            Failure::new(
                exit::FAILED,
                format!("not a machine-mode answer ({e}): {answer:?}"),
            )
        })
    };
    send("machine")?;
    let commands: Vec<String> = if cli.words.is_empty() {
        io::stdin().lock().lines().map_while(Result::ok).collect()
    } else {
        vec![
            cli.words
                .iter()
                .map(|w| manhole::__private::quote_word(w))
                .collect::<Vec<_>>()
                .join(" "),
        ]
    };
    let mut status = exit::OK;
    for line in commands.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if matches!(line, "quit" | "exit") {
            break;
        }
        let answer = send(line)?;
        let ok = answer["ok"].as_bool().unwrap_or(false);
        if cli.json {
            println!("{answer}");
        } else if ok {
            print(answer["text"].as_str().unwrap_or_default().as_bytes());
        } else {
            eprintln!(
                "error: {}",
                answer["error"]["message"].as_str().unwrap_or("unknown error")
            );
        }
        if !ok {
            status = exit::FAILED;
        }
    }
    Ok(status)
}
