//! Secrets of the program never reach a session or manhole's log unasked: a host
//! (tests/support/secrets_host.rs) whose command line, environment, exposed statics and local
//! hold secrets, each a unique marker, is asked everything a session can ask, in text and in
//! machine mode, and set and called with secrets; no marker comes back, none is logged.
//! `print NAME --reveal` is the one way to see one, and the log says who used it.

mod support;

use std::process::Command;

use support::{App, Client, unique_socket};

/// The secrets the host is started with, as (where, marker).
const ARGV: &[&str] = &[
    "--db-url",
    "postgres://app:mkArgUrl06@db/x",
    "--password",
    "mkArgPassword07",
    "--token=mkArgToken08",
    "https://mkArgGhToken09@github.com/o/r.git",
];

const ENV: &[(&str, &str)] = &[
    ("DB_PASS", "mkEnvDbPass13"),
    ("MYSQL_PWD", "mkEnvMysql14"),
    ("PGPASS", "mkEnvPgPass15"),
    ("UPSTREAMS", "http://a:mkEnvUp16@h1:80,http://b:mkEnvUp17@h2:80"),
    (
        "JDBC_URL",
        "jdbc:postgresql://db:5432/app?user=app&password=mkEnvJdbc18",
    ),
    ("GIT_REMOTE", "https://mkEnvGit19@github.com/o/r"),
    ("SERVICE_API_KEY", "mkEnvKey20"),
];

/// Every marker: in the host's statics and local, its argv and env, and what the test sends.
const MARKERS: &[&str] = &[
    "mkDbPassword01",
    "mkApiToken02",
    "mkCfgPassword03",
    "mkCfgUrl04",
    "mkLocalToken05",
    "mkArgUrl06",
    "mkArgPassword07",
    "mkArgToken08",
    "mkArgGhToken09",
    "mkNewPassword10",
    "mkCallKey11",
    "mkLoginPw12",
    "mkEnvDbPass13",
    "mkEnvMysql14",
    "mkEnvPgPass15",
    "mkEnvUp16",
    "mkEnvUp17",
    "mkEnvJdbc18",
    "mkEnvGit19",
    "mkEnvKey20",
];

fn host() -> App {
    let socket = unique_socket("secrets");
    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-secrets-host"));
    command
        .args(["--socket", socket.to_str().expect("UTF-8 path")])
        .args(ARGV)
        .envs(ENV.iter().copied());
    App::start(&mut command).unwrap_or_else(|line| panic!("the host did not start: {line}"))
}

fn assert_no_marker(what: &str, text: &str) {
    for marker in MARKERS {
        assert!(!text.contains(marker), "{marker} leaked in {what}:\n{text}");
    }
}

#[test]
fn no_secret_reaches_a_reply_or_the_log_unless_revealed() {
    let app = host();
    let mut client = Client::connect(&app.socket);
    assert_no_marker("the opening", &client.opening());

    let mut replies: Vec<(String, String)> = Vec::new();
    for command in [
        "info",
        "env",
        "vars",
        "print DB_PASSWORD",
        "DB_PASSWORD",
        "print API_TOKEN",
        "print CONFIG",
        "print session_token",
        "print REQUESTS",
        "report",
        "set DB_PASSWORD mkNewPassword10",
        "print DB_PASSWORD",
        "call set_api_key mkCallKey11",
        "call login app mkLoginPw12",
        "set REQUESTS nope",
        "watch -c 1 print API_TOKEN",
    ] {
        replies.push((command.to_owned(), client.command(command)));
    }
    client.send(b"machine\n");
    client.read_until("\n");
    for command in [
        "info",
        "env",
        "vars",
        "print DB_PASSWORD",
        "print API_TOKEN",
        "print CONFIG",
        "print session_token",
        "report",
        "call login app mkLoginPw12",
    ] {
        client.send(format!("{command}\n").as_bytes());
        replies.push((format!("machine {command}"), client.read_until("\n")));
    }
    client.send(b"machine off\n");
    client.read_until("\n");
    client.read_until(support::PROMPT);
    for (command, reply) in &replies {
        assert_no_marker(command, reply);
    }
    assert_no_marker("the log", &app.stderr());

    // Not everything is hidden: what is not secret is still there to debug with.
    let reply = |command: &str| {
        replies
            .iter()
            .find(|(c, _)| c == command)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    let info = reply("info");
    assert!(
        info.contains("--db-url postgres://app:<redacted>@db/x --password <redacted> --token=<redacted> https://<redacted>@github.com/o/r.git"),
        "{info}"
    );
    let env = reply("env");
    for line in [
        "DB_PASS=<redacted>\n",
        "MYSQL_PWD=<redacted>\n",
        "PGPASS=<redacted>\n",
        "UPSTREAMS=http://a:<redacted>@h1:80,http://b:<redacted>@h2:80\n",
        "JDBC_URL=jdbc:postgresql://db:5432/app?user=app&password=<redacted>\n",
        "GIT_REMOTE=https://<redacted>@github.com/o/r\n",
        "SERVICE_API_KEY=<redacted>\n",
    ] {
        assert!(env.contains(line), "{line:?} not in:\n{env}");
    }
    assert_eq!(reply("print DB_PASSWORD"), "<redacted>\n");
    assert_eq!(reply("print REQUESTS"), "17\n");
    let config = reply("print CONFIG");
    assert!(config.contains("name: \"svc\""), "{config}");
    assert!(config.contains("password: <redacted>"), "{config}");
    assert!(
        config.contains("postgres://app:<redacted>@db:5432/main"),
        "{config}"
    );
    assert!(config.contains("limit: 3"), "{config}");
    assert_eq!(
        reply("set DB_PASSWORD mkNewPassword10"),
        "DB_PASSWORD: <redacted> -> <redacted>\n"
    );
    assert_eq!(reply("call set_api_key mkCallKey11"), "\"key of 11 bytes set\"\n");
    assert_eq!(
        reply("call login app mkLoginPw12"),
        "error: login failed for app with <redacted>\n"
    );
    let log = app.stderr();
    assert!(
        log.contains("secrets_host::DB_PASSWORD from PID:") && log.contains(": <redacted> -> <redacted>"),
        "{log}"
    );
    assert!(log.contains("set_api_key[\"<redacted>\"]"), "{log}");
    assert!(log.contains("login[\"app\", \"<redacted>\"]"), "{log}");

    // The one way to see a secret: asked for by name, and logged (without the value).
    assert_eq!(
        client.command("print DB_PASSWORD --reveal"),
        "\"mkNewPassword10\"\n"
    );
    assert_eq!(
        client.command("print --reveal session_token"),
        "\"mkLocalToken05\"\n"
    );
    let log = app.stderr();
    assert!(
        log.contains("Revealed manhole_secrets_host::DB_PASSWORD to PID:"),
        "{log}"
    );
    assert!(
        log.contains("Revealed (Options::local)::session_token to PID:"),
        "{log}"
    );
    assert_no_marker("the log after --reveal", &log);
    assert!(client.command("help print").contains("--reveal"));
}
