//! Text that the program's data puts into a reply, made safe for the operator's terminal.
//!
//! Thread names, the files the program opened (whose names outside users may choose), its
//! environment, its values' `Debug` text: any of them may hold an `ESC` sequence that retitles
//! or clears the terminal, a carriage return that overwrites a line, a bidi override that shows
//! text in another order than it is, or a newline followed by `>>> ` that forges a prompt. Every
//! such character is shown escaped, in Rust's notation (`\x1b`, `\n`, `\u{202e}`), so what the
//! operator reads is what is there; and the prompt `>>> `, which clients take as the end of a
//! reply, is never part of it. Backslashes are left alone: ordinary text stays as it is.
//!
//! Also the console's word grammar (`split_words`, and `requote`, its inverse), name patterns,
//! and the human forms of durations, sizes and panics: pure functions of their input.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// Whether `c` must not reach a terminal as itself: C0 controls (tab and newline included),
/// DEL, C1 controls, and the Unicode bidi embeddings, overrides, isolates and marks, plus the
/// line and paragraph separators.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

fn push_escaped(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

use crate::protocol::PROMPT;

/// How [`PROMPT`] is shown inside program text: its last `>` escaped.
const PROMPT_ESCAPED: &str = ">>\\x3e ";

/// `s` for one line of a reply: every control character (newline and tab too), DEL, C1
/// control and bidi control escaped, and `>>> ` (the prompt that ends each reply, which clients
/// look for) shown as `>>\x3e `; anything else unchanged. Borrows when nothing needs escaping.
/// For thread names, paths, environment values, names: anything that must stay on its line.
pub(crate) fn escape_controls(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` for a reply that may span lines (a value's pretty `Debug`, a function's result): like
/// [`escape_controls`], but newlines stay line breaks.
pub(crate) fn escape_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let needs = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(needs) && !s.contains(PROMPT) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs(c) {
            push_escaped(c, &mut out);
        } else {
            out.push(c);
        }
    }
    if out.contains(PROMPT) {
        out = out.replace(PROMPT, PROMPT_ESCAPED);
    }
    Cow::Owned(out)
}

// The console's word grammar and human formatting.

/// Shows user input inside an error line: escaped, and cut short if long.
pub(crate) fn quoted(word: &str) -> String {
    let mut shown: String = word.chars().take(40).collect();
    if shown.len() < word.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Splits a command line into words: whitespace separates, `"…"` and `'…'` group, and a
/// backslash escapes the next character (outside single quotes).
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unterminated ' quote".to_owned()),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => current.push(c),
                            None => return Err("unterminated \" quote".to_owned()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unterminated \" quote".to_owned()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a backslash ends the line".to_owned()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Whether `name` matches `pattern`: a substring, or a glob with `*` and `?`.
pub(crate) fn matches_pattern(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    // Iterative glob with single-star backtracking: linear in practice, no recursion.
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`: the two largest units.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if days > 0 => format!("{days}d {hours}h"),
        _ if hours > 0 => format!("{hours}h {minutes}m"),
        _ if minutes > 0 => format!("{minutes}m {seconds}s"),
        _ => format!("{seconds}s"),
    }
}

/// A wait's length, precise where it is short: `740 ms`, `12.4 s`, then as
/// [`human_duration`] from a minute on (`4m 10s`).
///
/// Always rounded down: these are lower bounds, and `3 s` for 2.98 s would claim more.
pub(crate) fn wait_duration(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => match (ms / 1000, ms / 100 % 10) {
            (seconds, 0) => format!("{seconds} s"),
            (seconds, tenths) => format!("{seconds}.{tenths} s"),
        },
        _ => human_duration(d),
    }
}

/// A word as it must be written to split back into itself.
pub(crate) fn requote(word: &str) -> String {
    if !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\')) {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn wait_lengths_round_down_as_lower_bounds_do() {
        let ms = Duration::from_millis;
        assert_eq!(wait_duration(ms(740)), "740 ms");
        assert_eq!(wait_duration(ms(2_999)), "2.9 s");
        assert_eq!(wait_duration(ms(3_000)), "3 s");
        assert_eq!(wait_duration(ms(12_460)), "12.4 s");
        assert_eq!(wait_duration(ms(59_999)), "59.9 s");
        assert_eq!(wait_duration(ms(250_000)), "4m 10s");
    }

    proptest! {
        #[test]
        fn nothing_unsafe_survives_and_safe_text_is_untouched(s in "(\\PC|[\u{0}-\u{1f}\u{7f}-\u{9f}\u{202a}-\u{202e}\u{2066}-\u{2069}> \n])*") {
            let one = escape_controls(&s);
            prop_assert!(!one.chars().any(is_unsafe), "{:?}", one);
            prop_assert!(!one.contains(PROMPT), "{:?}", one);
            if !s.chars().any(is_unsafe) {
                prop_assert_eq!(&*one, s.as_str());
            }
            let many = escape_lines(&s);
            prop_assert!(!many.chars().any(|c| c != '\n' && is_unsafe(c)), "{:?}", many);
            prop_assert!(!many.contains(PROMPT), "{:?}", many);
            prop_assert_eq!(many.matches('\n').count(), s.matches('\n').count());
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in [
            "",
            "worker-3",
            "/var/log/app.log",
            "работник-1",
            "C:\\path",
            "a > b",
        ] {
            assert!(matches!(escape_controls(s), Cow::Borrowed(_)), "{s:?}");
            assert!(matches!(escape_lines(s), Cow::Borrowed(_)), "{s:?}");
        }
        let pretty = "Config {\n    limit: 3,\n}";
        assert!(matches!(escape_lines(pretty), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_are_shown_escaped() {
        assert_eq!(escape_controls("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(
            escape_controls("x\n>>> forged\x1b[2J"),
            "x\\n>>\\x3e forged\\x1b[2J"
        );
        assert_eq!(
            escape_controls("a\tb\rc\u{7f}d\u{85}e\u{9b}"),
            "a\\tb\\rc\\x7fd\\x85e\\x9b"
        );
        assert_eq!(escape_controls("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            escape_controls("\u{2066}x\u{2069}\u{200f}"),
            "\\u{2066}x\\u{2069}\\u{200f}"
        );
        assert_eq!(escape_controls("\0"), "\\x00");
    }

    #[test]
    fn multi_line_text_keeps_its_lines_but_holds_no_prompt() {
        assert_eq!(
            escape_lines("a\n>>> forged\n\x1b[2J"),
            "a\n>>\\x3e forged\n\\x1b[2J"
        );
        assert_eq!(
            escape_lines(">>> first, >>>> then"),
            ">>\\x3e first, >>>\\x3e then"
        );
        assert_eq!(escape_lines("> quoted\n>> "), "> quoted\n>> ");
        assert_eq!(escape_lines("a\r\nb"), "a\\r\nb");
    }
}
