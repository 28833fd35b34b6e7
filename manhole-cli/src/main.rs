//! `manhole-cli`: connect to a running manhole and talk to it.
//!
//! This first version connects to `PID` (its `/tmp/manhole-<PID>`) or to a socket `PATH`, then
//! copies the terminal to the socket and the socket to the terminal until either side ends.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: manhole-cli PID|PATH

Connect to the manhole of a running process: PID means /tmp/manhole-PID, anything with a '/'
is used as the socket path as given. Commands are read from stdin; output goes to stdout.

exit status: 0 the session ended, 1 it broke off, 2 usage error, 3 no such socket,
             4 access refused";

/// The documented exit codes.
mod exit {
    pub(crate) const OK: u8 = 0;
    pub(crate) const FAILED: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const NO_SOCKET: u8 = 3;
    pub(crate) const REFUSED: u8 = 4;
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::from(exit::OK);
        }
        [target] => target,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let path = match socket_path(target) {
        Ok(path) => path,
        Err(message) => {
            eprintln!("manhole-cli: {message}\n\n{USAGE}");
            return ExitCode::from(exit::USAGE);
        }
    };
    ExitCode::from(run(&path))
}

fn socket_path(target: &str) -> Result<PathBuf, String> {
    if target.contains('/') {
        return Ok(PathBuf::from(target));
    }
    match target.parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(manhole::default_socket_path(pid)),
        _ => Err(format!(
            "{target:?} is neither a PID (like 1234) nor a socket path (like /tmp/manhole-1234)"
        )),
    }
}

fn run(path: &std::path::Path) -> u8 {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e) => {
            let (code, hint) = match e.kind() {
                io::ErrorKind::NotFound => (
                    exit::NO_SOCKET,
                    "no such socket; is the process running with manhole installed?",
                ),
                io::ErrorKind::ConnectionRefused => (
                    exit::NO_SOCKET,
                    "nothing listens there; the process that created it is gone (a stale socket)",
                ),
                io::ErrorKind::PermissionDenied => (
                    exit::REFUSED,
                    "permission denied; connect as the process's user or root",
                ),
                _ => (exit::FAILED, ""),
            };
            eprintln!(
                "manhole-cli: cannot connect to {}: {e}{}{hint}",
                path.display(),
                if hint.is_empty() { "" } else { "; " }
            );
            return code;
        }
    };
    let Ok(writer) = stream.try_clone() else {
        eprintln!("manhole-cli: out of file descriptors");
        return exit::FAILED;
    };
    let _input = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut writer = writer;
        let _ = io::copy(&mut io::stdin().lock(), &mut writer);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut reader = stream;
    let mut stdout = io::stdout().lock();
    let mut first = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if first.len() < 64 {
                    first.extend_from_slice(&buf[..n.min(64)]);
                }
                if let Err(e) = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
                    return if e.kind() == io::ErrorKind::BrokenPipe {
                        exit::OK
                    } else {
                        exit::FAILED
                    };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if first.starts_with(b"manhole: access denied") => return exit::REFUSED,
            Err(e) => {
                eprintln!("manhole-cli: connection to {} broke: {e}", path.display());
                return exit::FAILED;
            }
        }
    }
    if first.starts_with(b"manhole: access denied") {
        exit::REFUSED
    } else {
        exit::OK
    }
}
