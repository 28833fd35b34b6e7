//! The host of tests/hostile_values.rs: a program whose values, names and files are hostile to
//! the console, with manhole installed.
//!
//! `manhole-hostile-host --socket PATH` prints `ready <socket path>`, then obeys commands on
//! stdin, one per line: `locks` says whether the program's own locks still work (`locks ok`, or
//! what failed); `lazy` lets `LAZY`'s initializer succeed, uses `LAZY` as the program would and
//! says `lazy <value> after <n> initializer run(s)`; `exit` returns from `main` (a normal exit).
//! It has a thread named `"\x1b]0;pwned\x07"` and keeps open a file named
//! `"x\n>>> forged\x1b[2J"` (in a directory it prints on its `dir` line).
//!
//! `manhole-hostile-host client PATH` connects to the socket at PATH, says `connected` and holds
//! the session until stdin closes: run through a link with a hostile name, it is a client
//! whose program name (`/proc/PID/comm`) is hostile.

use std::io::{BufRead, Read, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// A value whose `Debug` panics when it is odd (as a program's `Debug` might on a state it
/// did not expect).
#[derive(PartialEq)]
pub struct Fussy(u32);

impl std::fmt::Debug for Fussy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        assert!(self.0.is_multiple_of(2), "odd Fussy({})", self.0);
        write!(f, "Fussy({})", self.0)
    }
}

impl FromStr for Fussy {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Fussy, Self::Err> {
        s.parse().map(Fussy)
    }
}

/// A lock around a value whose `Debug` panics.
#[manhole::expose(writable)]
static FUSSY: Mutex<Fussy> = Mutex::new(Fussy(1));

/// The same in a `RwLock`.
#[manhole::expose(writable)]
static FUSSY_RW: RwLock<Fussy> = RwLock::new(Fussy(1));

/// Whether `LAZY`'s initializer may succeed: the program sets it before its first use.
static CONFIG_READY: AtomicBool = AtomicBool::new(false);
static LAZY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Initialised by the program's first use, which only works once the program is ready.
#[manhole::expose(writable)]
static LAZY: LazyLock<Mutex<u32>> = LazyLock::new(|| {
    LAZY_RUNS.fetch_add(1, Ordering::SeqCst);
    assert!(
        CONFIG_READY.load(Ordering::SeqCst),
        "LAZY used before the config was read"
    );
    Mutex::new(7)
});

/// Never initialised.
#[manhole::expose(writable)]
static ONCE: OnceLock<Mutex<u8>> = OnceLock::new();

/// A lock a thread of the program holds for good.
static HELD: Mutex<()> = Mutex::new(());

/// A value whose `Debug` waits for `HELD`: it never returns.
pub struct Blocker;

impl std::fmt::Debug for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _guard = HELD.lock();
        write!(f, "Blocker")
    }
}

/// Its `Debug` blocks forever.
#[manhole::expose]
static BLOCKS: Blocker = Blocker;

/// A value whose `Debug` writes terminal controls and a line that looks like the prompt.
pub struct Forger;

impl std::fmt::Debug for Forger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ok\n>>> forged\x1b[2J\u{202e}")
    }
}

/// Its `Debug` forges a prompt.
#[manhole::expose]
static FORGED: Forger = Forger;

/// An ordinary value.
#[manhole::expose]
static PLAIN: u32 = 42;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn locks() -> String {
    let mut broken = Vec::new();
    if FUSSY.lock().is_err() {
        broken.push("FUSSY poisoned");
    }
    if FUSSY_RW.write().is_err() {
        broken.push("FUSSY_RW poisoned");
    }
    if broken.is_empty() {
        "locks ok".to_owned()
    } else {
        broken.join(", ")
    }
}

fn client(path: &str) {
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
    let mut opening = Vec::new();
    let mut buf = [0u8; 4096];
    while !opening.ends_with(b">>> ") {
        let n = stream.read(&mut buf).expect("read the opening");
        assert!(n > 0, "the session ended");
        opening.extend_from_slice(&buf[..n]);
    }
    say("connected");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, path] = args.as_slice()
        && mode == "client"
    {
        client(path);
        return;
    }
    let socket = match args.as_slice() {
        [flag, path] if flag == "--socket" => path.clone(),
        _ => panic!("usage: manhole-hostile-host --socket PATH | client PATH"),
    };
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("\x1b]0;pwned\x07".into())
        .spawn(move || {
            let _guard = HELD.lock();
            let _ = held_tx.send(());
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        })
        .expect("spawn the hostile thread");
    held_rx.recv().expect("HELD is held");
    let dir = std::env::temp_dir().join(format!("mh-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let file = std::fs::File::create(dir.join("x\n>>> forged\x1b[2J")).expect("a hostile file");
    let handle = match manhole::install(manhole::Options::new().socket_path(&socket).verbose(true)) {
        Ok(handle) => handle,
        Err(e) => {
            say(&format!("error: {e}"));
            return;
        }
    };
    let path = handle
        .socket_path()
        .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
    say(&format!("ready {path}"));
    say(&format!("dir {}", dir.display()));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "locks" => say(&locks()),
            "lazy" => {
                CONFIG_READY.store(true, Ordering::SeqCst);
                let value = std::panic::catch_unwind(|| LAZY.lock().map(|v| *v).ok());
                say(&format!(
                    "lazy {} after {} initializer run(s)",
                    match value {
                        Ok(Some(v)) => v.to_string(),
                        Ok(None) => "poisoned".to_owned(),
                        Err(_) => "panicked".to_owned(),
                    },
                    LAZY_RUNS.load(Ordering::SeqCst)
                ));
            }
            "exit" => break,
            other => say(&format!("unknown: {other}")),
        }
    }
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
    say("exiting");
}
