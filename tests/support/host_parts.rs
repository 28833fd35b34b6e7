//! What the test hosts (testapp, macro_app, reliability_host, runtime_host, waits_host) share:
//! installing and saying `ready`, children made by a bare fork, and a value whose `Debug`
//! panics. Included by each with `#[path]`.
#![allow(dead_code, unreachable_pub)]

use std::ffi::CStr;
use std::time::Duration;

/// Installs manhole with `options` and prints `ready <socket path>` (or `error: …`, then
/// `None`), the first line every test host prints.
pub fn install_and_say_ready(options: manhole::Options) -> Option<manhole::Handle> {
    use std::io::Write;
    let line = |text: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };
    match manhole::install(options) {
        Ok(handle) => {
            let path = handle
                .socket_path()
                .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
            line(format!("ready {path}"));
            Some(handle)
        }
        Err(e) => {
            line(format!("error: {e}"));
            None
        }
    }
}

/// Forks a child that sleeps `seconds` and exits; manhole's fork handler gives it its own
/// manhole. Returns what the host says: `child <pid>` or `fork failed`.
pub fn fork_sleeper(seconds: u64) -> String {
    // SAFETY: the child only sleeps and _exits; its manhole thread (if any) is started by
    // manhole's own fork handler.
    match unsafe { libc::fork() } {
        0 => {
            std::thread::sleep(Duration::from_secs(seconds));
            // SAFETY: ends the child without running the parent's exit hooks.
            unsafe { libc::_exit(0) };
        }
        child if child > 0 => format!("child {child}"),
        _ => "fork failed".to_owned(),
    }
}

/// Forks a child that execs `/bin/sleep seconds` at once. Returns `child <pid>` or
/// `fork failed`.
pub fn fork_exec_sleep(seconds: &'static CStr) -> String {
    let program = c"/bin/sleep";
    let args = [program.as_ptr(), seconds.as_ptr(), std::ptr::null()];
    // SAFETY: the child execs at once with a NUL-terminated argv built before the fork (no
    // allocation in the child), and _exits if that fails.
    match unsafe { libc::fork() } {
        // SAFETY: as above.
        0 => unsafe {
            libc::execv(program.as_ptr(), args.as_ptr());
            libc::_exit(127);
        },
        child if child > 0 => format!("child {child}"),
        _ => "fork failed".to_owned(),
    }
}

/// A value whose Debug implementation panics.
pub struct Trap;

impl std::fmt::Debug for Trap {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Debug of Trap exploded")
    }
}
