//! Signal names as `#[manhole::main]` accepts them, checked at compile time. The runtime checks
//! them again against the platform's own table (`manhole::Signal`).

/// Names without the `SIG` prefix (Linux; a few do not exist on macOS, where install says so).
pub(crate) const NAMES: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
    "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
    "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// Signals that cannot be caught or that the kernel raises for faults: never usable here.
const UNUSABLE: &[&str] = &["KILL", "STOP", "SEGV", "BUS", "ILL", "FPE", "TRAP", "SYS"];

/// The canonical `SIGNAME` of a name, or why it is not a usable signal.
pub(crate) fn check_name(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = NAMES.contains(&bare) || is_realtime(bare);
    if !known {
        return Err(format!(
            "unknown signal {text:?}; expected a name with or without SIG ({}, RTMIN+N, RTMAX-N) or a number",
            NAMES.join(", ")
        ));
    }
    if UNUSABLE.contains(&bare) {
        return Err(format!(
            "SIG{bare} cannot be used: it cannot be caught or is raised by faults; use USR1, USR2 or RTMIN+N"
        ));
    }
    Ok(format!("SIG{bare}"))
}

fn is_realtime(bare: &str) -> bool {
    for (base, sign) in [("RTMIN", '+'), ("RTMAX", '-')] {
        if let Some(rest) = bare.strip_prefix(base) {
            return rest.is_empty()
                || rest
                    .strip_prefix(sign)
                    .is_some_and(|d| !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()));
        }
    }
    false
}

/// Whether a signal number is plausible (1 to 64, not KILL or STOP or a fault on Linux).
pub(crate) fn check_number(number: u64) -> Result<(), String> {
    match number {
        9 | 19 | 4 | 5 | 7 | 8 | 11 | 31 => Err(format!(
            "signal {number} cannot be used: it cannot be caught or is raised by faults"
        )),
        1..=64 => Ok(()),
        _ => Err(format!(
            "no signal has number {number}; signals are numbered 1 to 64"
        )),
    }
}
