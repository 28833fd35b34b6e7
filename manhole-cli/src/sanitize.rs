//! Neutralising terminal controls in what the process sends before it reaches the operator's
//! terminal. Thread names, file names and values come from the program and, through it, from
//! whoever named a file it opened: an `ESC` sequence among them could retitle or clear the
//! terminal, a carriage return overwrite a line. The client does not rely on the server to
//! have escaped them.
//!
//! Kept as they are: printable text (any script), `\n`, `\t`, and `\r\n`. Shown escaped,
//! visibly: every other C0 control, DEL and the C1 controls (`\x1b`, `\x7f`, `\u{9b}`), a
//! carriage return not followed by a newline (`\r`), the bidirectional overrides that reorder
//! what is shown (`\u{202e}`), and bytes that are not UTF-8 (`\xff`).

use std::fmt::Write;

/// Cleans a byte stream that arrives in pieces: a character or a `\r\n` split across two
/// pieces is judged whole.
#[derive(Debug, Default)]
pub(crate) struct Sanitizer {
    /// The start of a character whose other bytes have not arrived yet.
    pending: Vec<u8>,
    /// A carriage return whose next character has not arrived yet.
    cr: bool,
}

impl Sanitizer {
    pub(crate) fn new() -> Sanitizer {
        Sanitizer::default()
    }

    /// Appends the shown form of `input` to `out`, holding back what the next piece decides.
    pub(crate) fn push(&mut self, input: &[u8], out: &mut String) {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(input);
        let mut rest = &data[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.text(text, out);
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    self.text(std::str::from_utf8(valid).unwrap_or_default(), out);
                    match e.error_len() {
                        Some(bad) => {
                            self.settle_cr(out);
                            for byte in &after[..bad] {
                                let _ = write!(out, "\\x{byte:02x}");
                            }
                            rest = &after[bad..];
                        }
                        None => {
                            self.pending = after.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Appends what is held back: the stream ended (or a prompt came) here.
    pub(crate) fn finish(&mut self, out: &mut String) {
        self.settle_cr(out);
        for byte in std::mem::take(&mut self.pending) {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }

    fn settle_cr(&mut self, out: &mut String) {
        if std::mem::take(&mut self.cr) {
            out.push_str("\\r");
        }
    }

    fn text(&mut self, text: &str, out: &mut String) {
        for c in text.chars() {
            if std::mem::take(&mut self.cr) {
                if c == '\n' {
                    out.push_str("\r\n");
                    continue;
                }
                out.push_str("\\r");
            }
            match c {
                '\n' | '\t' => out.push(c),
                '\r' => self.cr = true,
                c if (c as u32) < 0x80 && c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() || is_bidi_control(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
}

/// The characters that reorder how the text around them is shown (a name could hide what
/// follows it, or show it backwards).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// The shown form of a whole text.
pub(crate) fn clean(text: &[u8]) -> String {
    let mut sanitizer = Sanitizer::new();
    let mut out = String::with_capacity(text.len());
    sanitizer.push(text, &mut out);
    sanitizer.finish(&mut out);
    out
}

/// Cleans every string in a machine-mode document (keys too), in place.
pub(crate) fn clean_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) => *text = clean(text.as_bytes()),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                clean_json(&mut item);
                map.insert(clean(key.as_bytes()), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(clean(b"\x1b]0;owned\x07x"), "\\x1b]0;owned\\x07x");
        assert_eq!(clean(b"a\x1b[2Jb\x7f\x08"), "a\\x1b[2Jb\\x7f\\x08");
        assert_eq!(
            clean("\u{9b}31m \u{202e}txt.exe".as_bytes()),
            "\\u{9b}31m \\u{202e}txt.exe"
        );
        assert_eq!(clean(b"line\r\nnext\rover\r"), "line\r\nnext\\rover\\r");
        assert_eq!(clean(b"tab\tok \xff\xfe"), "tab\tok \\xff\\xfe");
        assert_eq!(clean("работник é€😀\n".as_bytes()), "работник é€😀\n");
    }

    #[test]
    fn pieces_are_judged_whole() {
        let text = "é€😀\r\n\x1b".as_bytes();
        for split in 0..=text.len() {
            let mut sanitizer = Sanitizer::new();
            let mut out = String::new();
            sanitizer.push(&text[..split], &mut out);
            sanitizer.push(&text[split..], &mut out);
            sanitizer.finish(&mut out);
            assert_eq!(out, "é€😀\r\n\\x1b", "split at {split}");
        }
    }

    #[test]
    fn json_strings_and_keys_are_cleaned() {
        let mut doc = serde_json::json!({"text": "a\u{1b}[2J", "data": [{"na\u{9b}me": "x\ry"}]});
        clean_json(&mut doc);
        assert_eq!(doc["text"], "a\\x1b[2J");
        assert_eq!(doc["data"][0]["na\\u{9b}me"], "x\\ry");
    }
}
