//! Opening the manhole from a trigger file, for programs that own their signals (uWSGI's recipe
//! in Python's manhole): installed with `thread(false)` (manual mode), manhole does nothing and
//! no socket exists until the program calls `handle.handle_oneshot()`. Here a watcher thread
//! looks for `/tmp/manhole-trigger-<pid>` twice a second; when it appears, the watcher removes
//! it and calls `handle_oneshot()`: the socket `/tmp/manhole-<pid>` appears for one session,
//! which must start within `oneshot_timeout` (30 s), and goes as soon as the client is in.
//!
//! ```text
//! cargo run --example file_trigger
//! ```
//!
//! It prints its pid and the trigger file. To connect:
//!
//! ```text
//! touch /tmp/manhole-trigger-4242 && sleep 1 && socat readline unix-connect:/tmp/manhole-4242
//! touch /tmp/manhole-trigger-4242 && sleep 1 && nc -U /tmp/manhole-4242
//! touch /tmp/manhole-trigger-4242 && cargo run -p manhole-cli -- -w -t 5 4242
//! ```
//!
//! (The `sleep`, or manhole-cli's `-w`, gives the watcher time to see the file; the program
//! also prints a line when it opens the socket.) Each touch buys one session. Try
//! `print TRIGGERS`. Press Enter (or close its stdin) to stop it; the trigger file and the
//! socket are removed if they are still there.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Times the trigger file was seen (one session each).
#[manhole::expose]
static TRIGGERS: AtomicU64 = AtomicU64::new(0);

/// Watches for the trigger file until `stop` is set; each time it appears, removes it and opens
/// the manhole for one session.
fn watch(trigger: &Path, handle: &manhole::Handle, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // Removing it is how we look: whoever removes it first handled that touch.
        if std::fs::remove_file(trigger).is_ok() {
            TRIGGERS.fetch_add(1, Ordering::Relaxed);
            match handle.handle_oneshot() {
                Ok(()) => println!(
                    "file_trigger: trigger seen, connect to {} within 30 s",
                    manhole::default_socket_path(std::process::id()).display()
                ),
                Err(e) => eprintln!("file_trigger: cannot open the manhole: {e}"),
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
}

fn main() {
    let options = manhole::Options::new()
        .thread(false)
        .oneshot_timeout(Duration::from_secs(30))
        .verbose(false);
    let handle = match manhole::install(options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("file_trigger: manhole not installed: {e}");
            std::process::exit(1);
        }
    };
    let pid = std::process::id();
    let trigger = PathBuf::from(format!("/tmp/manhole-trigger-{pid}"));
    let path = manhole::default_socket_path(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (trigger, stop) = (trigger.clone(), Arc::clone(&stop));
        thread::Builder::new()
            .name("trigger-watcher".to_owned())
            .spawn(move || watch(&trigger, &handle, &stop))
    };

    println!(
        "file_trigger: pid {pid}, manhole at {} for one session each time {} appears",
        path.display(),
        trigger.display()
    );
    println!("connect with:");
    println!(
        "  touch {} && sleep 1 && socat readline unix-connect:{}",
        trigger.display(),
        path.display()
    );
    println!("Press Enter here to stop.");

    // Run until Enter or end of input.
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    if let Ok(watcher) = watcher {
        let _ = watcher.join();
    }
    let _ = std::fs::remove_file(&trigger);
    println!(
        "file_trigger: {} sessions triggered; bye",
        TRIGGERS.load(Ordering::Relaxed)
    );
}
