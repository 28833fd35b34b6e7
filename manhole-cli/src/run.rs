//! A session: interactive (text, relayed as it comes), or commands from the command line or
//! piped stdin, run in machine mode so each one's success is known.

use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;

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

fn print(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Commands from the command line or stdin, one JSON document each; exit 1 if any failed.
fn run_commands(
    cli: &Cli,
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    peer: Peer,
) -> Result<u8, Failure> {
    let mut send = |line: &str| -> Result<serde_json::Value, Failure> {
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
            print(answer["text"].as_str().unwrap_or_default());
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
