//! Secrets kept out of what the console shows and what manhole logs.
//!
//! One place decides what looks secret, and every path that shows the program's data goes
//! through it: `env`, `info`'s argv (and `report`'s), the values `print` and `report` read,
//! and the `set` and `call` lines of the log. Two rules:
//!
//! - a **name** that looks secret (`DB_PASSWORD`, `PGPASS`, `MYSQL_PWD`, `apiKey`,
//!   `SESSION_ID`, `--token`…) hides its whole value: [`is_secret_name`];
//! - in **any text**, the credentials of every `scheme://user:password@host` (the password,
//!   or the whole user part when it has no password: a token used as user name), the value of
//!   every `NAME=value` whose name looks secret (`?password=…`, `--token=…`, `PGPASSWORD=…`),
//!   and the value of every `name: value` field whose name looks secret (a `Debug` struct or
//!   map) are hidden: [`scrub`].
//!
//! Hiding too much is the safe mistake: `print NAME --reveal` shows a value as it is, and logs
//! who asked.

use std::borrow::Cow;

/// What a hidden secret is shown as.
pub(crate) const REDACTED: &str = "<redacted>";

/// Parts of a name that make it look secret wherever they appear in it.
const ANYWHERE: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSW",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE",
    "COOKIE",
    "SIGNATURE",
    "AUTH",
    "BEARER",
    "JWT",
    "CERT",
    "DSN",
    "SALT",
    "APIKEY",
    "SESSIONID",
    "SESSID",
];

/// Endings of one word of a name (`DB_PASS`, `PGPASS`, `MYSQL_PWD`, `API_KEY`, `apiKey`).
const WORD_ENDINGS: &[&str] = &["PASS", "PWD", "PW", "KEY", "KEYS", "PSK"];

/// Whole words of a name (`SESSION`, `user_session`; not `sessions`, a count or a list).
const WORDS: &[&str] = &["SESSION"];

/// Environment variables that match the rules above but are well known not to be secret: the
/// shell's working directories.
const NOT_SECRET_ENV: &[&str] = &["PWD", "OLDPWD"];

/// The words of a name, upper-cased: split at anything not alphanumeric and where a lower-case
/// letter or digit is followed by an upper-case one (`dbPass` is `DB`, `PASS`).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut after_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            after_lower = false;
            continue;
        }
        if c.is_uppercase() && after_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        after_lower = c.is_lowercase() || c.is_numeric();
        word.extend(c.to_uppercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether `name` (an environment variable, an exposed item, a local, a parameter, a
/// command-line flag without its dashes, a field) looks like it names a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_uppercase();
    ANYWHERE.iter().any(|part| upper.contains(part))
        || words(name)
            .iter()
            .any(|word| WORDS.contains(&word.as_str()) || WORD_ENDINGS.iter().any(|end| word.ends_with(end)))
}

/// The value to show for something named `name`: [`REDACTED`] when the name looks secret,
/// else `value` with what looks secret inside it hidden ([`scrub`]).
pub(crate) fn value<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if is_secret_name(name) {
        Cow::Borrowed(REDACTED)
    } else {
        scrub(value)
    }
}

/// The value to show for the environment variable `name`: as [`value`], except for the few
/// well-known variables whose names only look secret (`PWD`, the working directory).
pub(crate) fn env_value<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if NOT_SECRET_ENV.contains(&name) {
        scrub(value)
    } else {
        self::value(name, value)
    }
}

/// A command line to show: each argument scrubbed, and the argument after a flag whose name
/// looks secret (`--password X`, `-token X`) hidden whole. `--token=X` is scrubbed as `NAME=value`.
pub(crate) fn argv(args: &[String]) -> Vec<String> {
    let mut shown = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if std::mem::take(&mut hide_next) {
            shown.push(REDACTED.to_owned());
            continue;
        }
        if arg.starts_with('-') && !arg.contains('=') && is_secret_name(arg.trim_start_matches('-')) {
            hide_next = true;
        }
        shown.push(scrub(arg).into_owned());
    }
    shown
}

/// `text` with the secrets inside it replaced by [`REDACTED`]: URL credentials, `NAME=value`
/// and `name: value` whose names look secret. Borrows when nothing is hidden.
pub(crate) fn scrub(text: &str) -> Cow<'_, str> {
    if !text.contains([':', '=']) {
        return Cow::Borrowed(text);
    }
    let mut spans = Vec::new();
    url_credentials(text, &mut spans);
    assignments(text, &mut spans);
    fields(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (start, end) in spans {
        if end <= done {
            continue;
        }
        let start = start.max(done);
        out.push_str(&text[done..start]);
        out.push_str(REDACTED);
        done = end;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// Characters that end a URL's authority (or a URL) in running text.
fn ends_authority(c: char) -> bool {
    matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
}

/// Every `scheme://userinfo@host`: the password of `user:password`, or the whole user part
/// when it has no `:` (`https://ghp_…@github.com`).
fn url_credentials(text: &str, spans: &mut Vec<(usize, usize)>) {
    for (at, _) in text.match_indices("://") {
        let start = at + 3;
        let rest = &text[start..];
        let authority = &rest[..rest.find(ends_authority).unwrap_or(rest.len())];
        // The last `@`: a password may hold a raw one.
        let Some(user_end) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..user_end];
        let hidden_from = userinfo.find(':').map_or(0, |colon| colon + 1);
        if hidden_from < user_end {
            spans.push((start + hidden_from, start + user_end));
        }
    }
}

/// Bytes of a name written before `=`: `password`, `--db-token`, `app.secret`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The index of the quote that closes the one at `open` (a backslash escapes), or the end.
fn closing_quote(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Every `NAME=value` whose name looks secret: a query parameter, a `--flag=value`, a
/// variable in a command line. The value ends at `&`, `;`, `#`, a quote or whitespace; a quoted
/// value is hidden up to its closing quote.
fn assignments(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    for (eq, _) in text.match_indices('=') {
        let name_start = bytes[..eq]
            .iter()
            .rposition(|b| !is_name_byte(*b))
            .map_or(0, |p| p + 1);
        if name_start == eq || !is_secret_name(&text[name_start..eq]) {
            continue;
        }
        let start = eq + 1;
        match bytes.get(start) {
            Some(b'"' | b'\'') => spans.push((start + 1, closing_quote(text, start).max(start + 1))),
            _ => {
                let rest = &text[start..];
                let end = rest
                    .find(|c: char| matches!(c, '&' | ';' | '#' | '"' | '\'' | '`') || c.is_whitespace())
                    .map_or(text.len(), |e| start + e);
                if end > start {
                    spans.push((start, end));
                }
            }
        }
    }
}

/// Where a field's value that starts at `start` ends: at a `,` or newline outside brackets
/// and quotes, or at the bracket that closes the enclosing one.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = closing_quote(text, i) + 1;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return i,
            b')' | b']' | b'}' => depth -= 1,
            b',' | b'\n' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Every `name: value` (a `Debug` struct's field) or `"name": value` (a map's entry, JSON)
/// whose name looks secret.
fn fields(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    for (colon, _) in text.match_indices(':') {
        let quoted = colon > 0 && bytes[colon - 1] == b'"';
        let name = if quoted {
            let Some(open) = text[..colon - 1].rfind('"') else {
                continue;
            };
            &text[open + 1..colon - 1]
        } else {
            // `name: value`; not `a::b`, `http://`, `12:30`.
            if bytes.get(colon + 1) != Some(&b' ') {
                continue;
            }
            let start = bytes[..colon]
                .iter()
                .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(0, |p| p + 1);
            &text[start..colon]
        };
        if name.is_empty() || !is_secret_name(name) {
            continue;
        }
        let start = colon + 1 + text[colon + 1..].len() - text[colon + 1..].trim_start_matches(' ').len();
        let mut end = value_end(text, start);
        while end > start && bytes[end - 1] == b' ' {
            end -= 1;
        }
        if end > start {
            spans.push((start, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_that_look_secret() {
        for name in [
            "API_TOKEN",
            "db_password",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASS",
            "MYSQL_PWD",
            "PGPASS",
            "PGPASSWORD",
            "apiKey",
            "dbPass",
            "SERVICE_API_KEY",
            "SSH_AUTH_SOCK",
            "SESSION",
            "SESSION_ID",
            "sessionId",
            "XDG_SESSION_COOKIE",
            "SENTRY_DSN",
            "password-file",
            "client_credentials",
            "TLS_PRIVATE_KEY",
            "signing_keys",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "HOME",
            "PATH",
            "REQUESTS",
            "sessions",
            "ACTIVE_SESSIONS",
            "KEYBOARD_LAYOUT",
            "LIMIT",
            "CONFIG",
            "db-url",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn values_of_secret_names_are_hidden_whole() {
        assert_eq!(value("API_TOKEN", "abc"), REDACTED);
        assert_eq!(value("DB_PASS", "abc"), REDACTED);
        assert_eq!(value("HOME", "/root"), "/root");
        assert!(matches!(value("HOME", "/root"), Cow::Borrowed("/root")));
        // The shell's working directory is not a password; a `pwd` elsewhere is.
        assert_eq!(env_value("PWD", "/srv/app"), "/srv/app");
        assert_eq!(env_value("OLDPWD", "/srv"), "/srv");
        assert_eq!(env_value("MYSQL_PWD", "pw"), REDACTED);
        assert!(is_secret_name("pwd"));
    }

    #[test]
    fn every_url_loses_its_credentials() {
        assert_eq!(
            scrub("postgres://app:hunter2@db:5432/x?sslmode=require"),
            "postgres://app:<redacted>@db:5432/x?sslmode=require"
        );
        assert_eq!(
            scrub("http://a:x@h1:80,http://b:secondpw5@h2:80"),
            "http://a:<redacted>@h1:80,http://b:<redacted>@h2:80"
        );
        assert_eq!(
            scrub("https://ghp_tokenAsUser6@github.com/o/r.git"),
            "https://<redacted>@github.com/o/r.git"
        );
        assert_eq!(scrub("u:p@ss://x:p@ss@host/"), "u:p@ss://x:<redacted>@host/");
        assert_eq!(scrub("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(
            scrub("see https://example.com/?q=1 now"),
            "see https://example.com/?q=1 now"
        );
    }

    #[test]
    fn secret_assignments_lose_their_values() {
        assert_eq!(
            scrub("jdbc:postgresql://db:5432/app?user=app&password=querypw4&ssl=true"),
            "jdbc:postgresql://db:5432/app?user=app&password=<redacted>&ssl=true"
        );
        assert_eq!(scrub("--token=abc"), "--token=<redacted>");
        assert_eq!(
            scrub("sh -c PGPASSWORD=x psql"),
            "sh -c PGPASSWORD=<redacted> psql"
        );
        assert_eq!(scrub("password=\"a b\" next"), "password=\"<redacted>\" next");
        assert_eq!(
            scrub("Server=db;Password=p;Database=x"),
            "Server=db;Password=<redacted>;Database=x"
        );
        assert_eq!(scrub("limit=3&mode=fast"), "limit=3&mode=fast");
    }

    #[test]
    fn secret_fields_of_debug_text_lose_their_values() {
        assert_eq!(
            scrub(r#"Config { name: "svc", password: "hunter\"2", limit: 3 }"#),
            r#"Config { name: "svc", password: <redacted>, limit: 3 }"#
        );
        assert_eq!(
            scrub("Config {\n    api_key: Some(\"k, k\"),\n    url: \"postgres://a:b@h/\",\n}"),
            "Config {\n    api_key: <redacted>,\n    url: \"postgres://a:<redacted>@h/\",\n}"
        );
        assert_eq!(
            scrub(r#"{"token": "t1", "user": "u"}"#),
            r#"{"token": <redacted>, "user": "u"}"#
        );
        assert_eq!(
            scrub(r#"{"token":"t1","user":"u"}"#),
            r#"{"token":<redacted>,"user":"u"}"#
        );
        assert_eq!(
            scrub("Creds { token: Tok { raw: [1, 2] } }"),
            "Creds { token: <redacted> }"
        );
        assert_eq!(scrub("a::b::c 12:30 http://x/"), "a::b::c 12:30 http://x/");
    }

    #[test]
    fn argv_hides_the_value_after_a_secret_flag() {
        let args: Vec<String> = [
            "app",
            "--db-url",
            "postgres://app:argvpw9@db/x",
            "--password",
            "argvpw10",
            "--token=t11",
            "-v",
            "plain",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            argv(&args),
            [
                "app",
                "--db-url",
                "postgres://app:<redacted>@db/x",
                "--password",
                "<redacted>",
                "--token=<redacted>",
                "-v",
                "plain"
            ]
        );
    }

    /// Text around a secret: anything, including what the rules look for.
    const AROUND: &str = "[ -~\n]{0,12}";
    /// A secret: what may stand unencoded in a URL's password or a query value.
    const SECRET: &str = "[A-Za-z0-9._~!$'()*+,;:=%-]{1,12}";

    proptest! {
        #[test]
        fn no_url_password_survives(
            before in AROUND, scheme in "[a-z][a-z0-9+.-]{0,8}", user in "[A-Za-z0-9._-]{0,8}",
            password in "[A-Za-z0-9._~!$()*+,;=%-]{1,12}", host in "[a-z0-9.-]{1,10}",
            after in "(|[/?#][ -~]{0,12})",
        ) {
            let marker = format!("ZQ{password}QZ");
            let text = format!("{before}{scheme}://{user}:{marker}@{host}{after}");
            let shown = scrub(&text);
            prop_assert!(!shown.contains(&marker), "{text:?} -> {shown:?}");
        }

        #[test]
        fn no_token_as_user_survives(before in AROUND, token in "[A-Za-z0-9_-]{1,16}", after in "(|/[ -~]{0,12})") {
            let marker = format!("ZQ{token}QZ");
            let text = format!("{before}https://{marker}@github.com{after}");
            let shown = scrub(&text);
            prop_assert!(!shown.contains(&marker), "{text:?} -> {shown:?}");
        }

        #[test]
        fn no_secret_query_value_survives(
            before in AROUND,
            name in "(password|passwd|pwd|token|secret|api_key|access_token|key|auth)",
            value in SECRET, after in "(|[&#; ][ -~]{0,12})",
        ) {
            let value = value.replace(['&', '#', ';', '\''], "_");
            let marker = format!("ZQ{value}QZ");
            let text = format!("{before}?user=u&{name}={marker}{after}");
            let shown = scrub(&text);
            prop_assert!(!shown.contains(&marker), "{text:?} -> {shown:?}");
        }

        #[test]
        fn text_without_secrets_is_left_alone(text in "[ -~\n]{0,40}") {
            prop_assume!(!text.contains("://") && !text.contains('='));
            prop_assume!(!text.contains(':'));
            prop_assert_eq!(scrub(&text), Cow::Borrowed(text.as_str()));
        }
    }
}
