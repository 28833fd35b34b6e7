//! A program written with `#[manhole::main]` and `#[manhole::expose]`, driven over its socket:
//! it lists, prints, sets and calls what it and a library it links expose.

mod support;

use std::process::Command;

use support::{App, Client, unique_socket};

fn start(extra_env: &str) -> App {
    let socket = unique_socket("macros");
    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-macro-app"));
    command.env("MANHOLE", format!("socket_path={}{extra_env}", socket.display()));
    // The macro app says `ready <pid> pool <n>` and listens where MANHOLE told it to.
    let mut app = App::start(&mut command).unwrap_or_else(|line| panic!("not ready: {line}"));
    app.socket = socket;
    app
}

#[test]
fn vars_lists_what_the_program_and_its_libraries_expose() {
    let app = start("");
    let mut client = Client::connect(&app.socket);
    client.opening();
    let vars = client.command("vars");
    let row = |name: &str| {
        vars.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name}:\n{vars}"))
    };
    assert!(
        row("REQUESTS").contains("value") && row("REQUESTS").contains("AtomicU64"),
        "{vars}"
    );
    assert!(
        row("REQUESTS").ends_with("# Requests served since start."),
        "{vars}"
    );
    assert!(row("CACHE_LIMIT").contains("writable"), "{vars}");
    assert!(row("GREETING").contains("Mutex<String>"), "{vars}");
    assert!(
        row("weight").contains("RwLock<f64>"),
        "renamed with name = \"weight\":\n{vars}"
    );
    assert!(
        row("add").contains("fn") && row("add").contains("(a: i64, b: i64) -> i64"),
        "{vars}"
    );
    // From the library crate of the workspace.
    assert!(row("POOL_SIZE").contains("manhole_test_exposed_lib"), "{vars}");
    assert!(row("pool_backends").contains("[&str; 2]"), "{vars}");
    assert!(
        row("resize_pool").contains("(size: u32) -> Result<u32, String>"),
        "{vars}"
    );
    assert_eq!(client.command("vars *POOL*").lines().count(), 1);
    assert_eq!(
        client.command("ls nothing-like-this"),
        "nothing exposed matches \"nothing-like-this\"\n"
    );
}

#[test]
fn print_set_and_call() {
    let app = start("");
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_eq!(client.command("print REQUESTS"), "42\n");
    assert_eq!(client.command("REQUESTS"), "42\n", "a bare name prints");
    assert_eq!(
        client.command("p pool_backends"),
        "[\n    \"db-a\",\n    \"db-b\",\n]\n"
    );
    assert_eq!(client.command("print LOADED_FROM"), "\"/etc/app.toml\"\n");

    assert_eq!(client.command("set CACHE_LIMIT 250"), "CACHE_LIMIT: 100 -> 250\n");
    assert_eq!(client.command("CACHE_LIMIT"), "250\n");
    assert_eq!(
        client.command("set GREETING \"hello there\""),
        "GREETING: \"hi\" -> \"hello there\"\n"
    );
    assert_eq!(client.command("set weight 2.5"), "weight: 1.5 -> 2.5\n");
    assert_eq!(
        client.command("set MAINTENANCE true"),
        "MAINTENANCE: false -> true\n"
    );
    assert_eq!(client.command("set POOL_SIZE 3"), "POOL_SIZE: 8 -> 3\n");
    assert_eq!(
        client.command("set REQUESTS 1"),
        "error: REQUESTS cannot be set; expose it with #[manhole::expose(writable)]\n"
    );
    assert!(
        client
            .command("set CACHE_LIMIT lots")
            .starts_with("error: CACHE_LIMIT: cannot parse \"lots\" as u64")
    );
    assert_eq!(
        client.command("CACHE_LIMIT"),
        "250\n",
        "a failed set changes nothing"
    );

    assert_eq!(client.command("call add 2 40"), "42\n");
    assert_eq!(
        client.command("call greet 'Ada Lovelace' 2"),
        "\"hello Ada Lovelace / hello Ada Lovelace\"\n"
    );
    assert_eq!(client.command("call greet \"\" 1"), "error: nobody to greet\n");
    assert_eq!(client.command("call resize_pool 5"), "5\n");
    assert_eq!(client.command("POOL_SIZE"), "5\n");
    assert_eq!(
        client.command("call add 1"),
        "error: add takes 2 argument(s) (a: i64, b: i64), got 1\n"
    );
    assert!(
        client
            .command("call add one 2")
            .starts_with("error: add: argument a: cannot parse \"one\" as i64")
    );
    assert!(
        client
            .command("call REQUESTS")
            .starts_with("error: REQUESTS is a value")
    );
    assert!(
        client
            .command("print add")
            .starts_with("error: add is a function")
    );
    assert!(
        client
            .command("print NOPE")
            .starts_with("error: nothing exposed is called \"NOPE\"")
    );
}

#[test]
fn panics_in_user_code_are_reported_and_the_program_goes_on() {
    let mut app = start("");
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_eq!(
        client.command("TRAP"),
        "error: the Debug impl of TRAP panicked: Debug of Trap exploded; the program goes on\n"
    );
    assert_eq!(
        client.command("call explode"),
        "error: explode panicked: exposed fn exploded; the program goes on\n"
    );
    assert_eq!(client.command("call add 1 1"), "2\n");
    assert!(app.is_alive());
}

#[test]
fn set_and_call_are_logged_with_the_peer() {
    let log = unique_socket("macro-log");
    let app = start(&format!(",verbose=true,verbose_destination={}", log.display()));
    let mut client = Client::connect(&app.socket);
    client.opening();
    client.command("set CACHE_LIMIT 7");
    client.command("call add 1 2");
    let text = std::fs::read_to_string(&log).unwrap();
    let me = std::process::id();
    assert!(
        text.contains(&format!(
            "]: Set manhole_macro_app::CACHE_LIMIT from PID:{me} UID:"
        )),
        "{text}"
    );
    assert!(text.contains(": 100 -> 7\n"), "{text}");
    assert!(
        text.contains(&format!(
            "]: Call manhole_macro_app::add[\"1\", \"2\"] from PID:{me} UID:"
        )),
        "{text}"
    );
    std::fs::remove_file(&log).unwrap();
}

#[test]
fn manhole_off_in_the_environment_installs_nothing() {
    let socket = unique_socket("macro-off");
    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-macro-app"));
    command.env("MANHOLE", "off");
    let mut app = App::start(&mut command).unwrap_or_else(|line| panic!("not ready: {line}"));
    app.socket = socket;
    assert!(!std::path::Path::new(&format!("/tmp/manhole-{}", app.pid)).exists());
    assert!(!app.socket.exists());
    assert!(app.is_alive());

    let mut command = Command::new(env!("CARGO_BIN_EXE_manhole-macro-app"));
    command.env("MANHOLE", "verbose=maybe");
    let out = command.stdin(std::process::Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("manhole: not installed: MANHOLE=\"verbose=maybe\": conflicting options: MANHOLE entry \"verbose=maybe\": expected true or false"),
        "{stderr}"
    );
    assert!(out.status.success(), "main ran on");
}

#[test]
fn a_value_behind_a_held_lock_shows_locked_instead_of_hanging() {
    let app = start("");
    let mut client = Client::connect(&app.socket);
    client.opening();
    assert_eq!(client.command("call hold_greeting 5000"), "\"held\"\n");
    let started = std::time::Instant::now();
    let shown = client.command("print GREETING");
    assert!(shown.contains("<locked>"), "{shown}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "it did not wait for the lock"
    );
    let refused = client.command("set GREETING hello");
    assert!(
        refused.starts_with("error: GREETING: the lock is held elsewhere"),
        "{refused}"
    );
    assert!(
        client.command("print REQUESTS").starts_with("42"),
        "the session goes on"
    );
}

#[test]
fn an_exposed_function_that_exits_ends_the_program_without_waiting_for_its_own_session() {
    let mut app = start("");
    let mut client = Client::connect(&app.socket);
    client.opening();
    client.send(b"call bye\n");
    // stdin stays open: main keeps running, so the exit comes from the exposed function.
    let status = app.wait_exit();
    assert_eq!(status.code(), Some(7));
}
