//! A small JSON value and writer for machine mode: commands describe their results with it,
//! and sessions in machine mode receive exactly one document per command, on one line.

use std::fmt::Write as _;

/// A JSON value. Objects keep their keys in insertion order, so documents read predictably.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from key/value pairs.
    pub(crate) fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The document as one line of text.
    pub(crate) fn to_line(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::UInt(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(x) if x.is_finite() => {
                let _ = write!(out, "{x}");
            }
            Json::Float(_) => out.push_str("null"),
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(pairs) => {
                out.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    // Characters beyond the BMP are never controls, so one \uXXXX is always enough.
    let start = out.len() + 1;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every other control (C0, DEL, C1) and bidi control: the text of `report` goes to
            // a terminal as it is, and JSON readers get the same characters back.
            c if crate::text::is_unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    // The console's prompt ends every text reply (and `report`'s text is this document):
    // inside a string it is written with its last `>` escaped.
    if out[start..].contains(">>> ") {
        let escaped = out[start..].replace(">>> ", ">>\\u003e ");
        out.truncate(start);
        out.push_str(&escaped);
    }
    out.push('"');
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::UInt(n)
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Json {
        Json::UInt(n as u64)
    }
}

impl From<i32> for Json {
    fn from(n: i32) -> Json {
        Json::Int(i64::from(n))
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::UInt(u64::from(n))
    }
}

impl From<f64> for Json {
    fn from(x: f64) -> Json {
        Json::Float(x)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Json {
        value.map_or(Json::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(items: Vec<T>) -> Json {
        Json::Arr(items.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_one_line_of_valid_json() {
        let doc = Json::obj([
            ("ok", Json::from(true)),
            (
                "text",
                Json::from("a \"quote\"\nnew line\t\u{1b}[0m \\ é\u{9b}\u{202e}\n>>> x"),
            ),
            ("n", Json::from(-3)),
            ("big", Json::from(u64::MAX)),
            ("x", Json::from(1.5)),
            ("nan", Json::Float(f64::NAN)),
            ("none", Json::from(None::<u32>)),
            ("list", Json::from(vec![1u32, 2])),
            ("empty", Json::obj(Vec::<(String, Json)>::new())),
        ]);
        let line = doc.to_line();
        assert_eq!(
            line,
            r#"{"ok":true,"text":"a \"quote\"\nnew line\t\u001b[0m \\ é\u009b\u202e\n>>\u003e x","n":-3,"big":18446744073709551615,"x":1.5,"nan":null,"none":null,"list":[1,2],"empty":{}}"#
        );
        assert!(!line.contains('\n'));
    }
}
