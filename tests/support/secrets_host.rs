//! The host of tests/secrets.rs: a program whose command line, environment, exposed statics
//! and local hold secrets, with manhole installed and its verbose log on stderr.
//!
//! `manhole-secrets-host --socket PATH [ARG…]` prints `ready <socket path>` and runs until
//! its stdin closes; the other arguments (the secrets on its command line) are ignored.

use std::io::{BufRead, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// A secret-named writable static.
#[manhole::expose(writable)]
static DB_PASSWORD: Mutex<String> = Mutex::new(String::new());

/// A secret-named value.
#[manhole::expose]
static API_TOKEN: &str = "mkApiToken02";

/// A value whose name looks harmless but whose fields hold secrets.
#[derive(Debug)]
#[allow(dead_code)] // Read only through its Debug, by the console.
pub struct Config {
    name: &'static str,
    password: &'static str,
    url: &'static str,
    limit: u32,
}

/// An ordinary-looking config with a password field and a URL with credentials.
#[manhole::expose]
static CONFIG: Config = Config {
    name: "svc",
    password: "mkCfgPassword03",
    url: "postgres://app:mkCfgUrl04@db:5432/main",
    limit: 3,
};

/// An ordinary value.
#[manhole::expose]
static REQUESTS: AtomicU64 = AtomicU64::new(17);

/// Takes a key as the program would; never says it.
#[manhole::expose]
fn set_api_key(key: &str) -> String {
    format!("key of {} bytes set", key.len())
}

/// Fails with a message that repeats the password it was given, as careless code does.
#[manhole::expose]
fn login(user: &str, password: &str) -> Result<String, String> {
    Err(format!("login failed for {user} with {password}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let socket = match args.iter().position(|a| a == "--socket") {
        Some(at) if at + 1 < args.len() => args[at + 1].clone(),
        _ => panic!("usage: manhole-secrets-host --socket PATH [ARG…]"),
    };
    *DB_PASSWORD.lock().expect("not poisoned") = "mkDbPassword01".to_owned();
    let options = manhole::Options::new()
        .socket_path(&socket)
        .verbose(true)
        .local("session_token", Arc::new("mkLocalToken05".to_owned()));
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            println!("error: {e}");
            return;
        }
    };
    let path = handle
        .socket_path()
        .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {path}");
    let _ = out.flush();
    drop(out);
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}
