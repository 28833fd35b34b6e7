//! Property-based fuzzing of everything that parses what a client sends: the line reader, the
//! word splitter, name patterns, command dispatch, and the JSON writer. It runs with the unit
//! tests on the stable toolchain (proptest); `PROPTEST_CASES=100000 cargo test -p manhole fuzz`
//! runs it longer.

use std::io::Read;

use proptest::prelude::*;

use crate::console::{self, Context, Outcome};
use crate::json::Json;
use crate::session::{Input, LineReader};
use crate::sys::PeerCred;

/// Hands out `data` in the given chunk sizes, as a socket might.
struct Chunks {
    data: Vec<u8>,
    sizes: Vec<usize>,
    at: usize,
    turn: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.data.len() {
            return Ok(0);
        }
        let size = self
            .sizes
            .get(self.turn % self.sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Lines that look like commands: real command words with hostile arguments.
fn command_line() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "help", "?", "stacks", "bt", "info", "fds", "env", "clients", "vars", "ls", "print", "p", "set",
        "call", "log", "watch", "machine", "quit", "exit", "", "sessions", "nope",
    ]);
    (
        words,
        prop::collection::vec("[ -~\\t\u{80}-\u{10ffff}]{0,12}", 0..5),
    )
        .prop_map(|(word, args)| format!("{word} {}", args.join(" ")))
}

proptest! {
    // 256 cases each (proptest's default); PROPTEST_CASES=N runs more.

    #[test]
    fn the_line_reader_never_panics_and_never_exceeds_its_bound(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        sizes in prop::collection::vec(1usize..300, 1..8),
        max in 1usize..200,
    ) {
        let mut reader = LineReader::new(Chunks { data: data.clone(), sizes, at: 0, turn: 0 }, max);
        let mut newlines = 0;
        loop {
            match reader.next_input().unwrap() {
                Input::Eof => break,
                Input::Line(line) => {
                    prop_assert!(!line.contains('\n') && !line.contains('\0'));
                    prop_assert!(line.len() <= max, "a line of {} bytes passed a bound of {max}", line.len());
                    newlines += 1;
                }
                Input::TooLong { len } => {
                    prop_assert!(len > max);
                    newlines += 1;
                }
                Input::NotUtf8 { .. } | Input::Nul { .. } => newlines += 1,
            }
        }
        // Every newline ends exactly one input; a last line without one counts once more.
        let expected = data.iter().filter(|b| **b == b'\n').count();
        prop_assert!(newlines == expected || newlines == expected + 1, "{newlines} inputs for {expected} newlines");
    }

    #[test]
    fn words_split_without_panicking_and_requote_to_themselves(line in "\\PC{0,80}") {
        if let Ok(words) = crate::text::split_words(&line) {
            let rejoined: Vec<String> = words.iter().map(|w| crate::text::requote(w)).collect();
            prop_assert_eq!(crate::text::split_words(&rejoined.join(" ")).unwrap(), words);
        }
    }

    #[test]
    fn patterns_never_panic(pattern in "[a-c*?]{0,12}", name in "[a-c]{0,24}") {
        let _ = crate::text::matches_pattern(&pattern, &name);
        prop_assert!(crate::text::matches_pattern("*", &name));
    }

    #[test]
    fn any_command_line_gets_an_answer_without_panicking(line in command_line()) {
        let server = crate::console::tests::FakeHost::new(Vec::new());
        let context = Context { host: &server, peer: PeerCred { pid: None, uid: 0, gid: 0 }, client: None, machine: false };
        let before = log::max_level();
        let (_, outcome) = console::execute(&line, &context);
        log::set_max_level(before);
        if let Outcome::Reply(reply) = outcome {
            prop_assert!(reply.text.is_empty() || reply.text.ends_with('\n'), "{:?}", reply.text);
            if let Some(failure) = &reply.failure {
                prop_assert!(reply.text.starts_with("error: "));
                prop_assert!(!failure.code.is_empty() && !failure.message.contains('\n'));
            }
        }
    }

    #[test]
    fn json_strings_survive_any_text(text in "\\PC*|[\\x00-\\x1f\"\\\\\u{2028}\u{2029}]{0,20}") {
        let line = Json::obj([("s", Json::from(text.as_str()))]).to_line();
        prop_assert!(!line.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(parsed["s"].as_str().unwrap(), text.as_str());
    }
}
