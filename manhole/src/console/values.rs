//! Commands over what the program exposes: `vars`, `print`, `set`, `call`.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::command::{Command, Effect, Group};
use super::{Context, Json, Outcome, Reply};
use crate::logging::mlog;
use crate::redact::{self, REDACTED};
use crate::registry::{self, Exposed, Kind, Local, Shown, show_debug};
use crate::sys::PeerCred;
use crate::text::{escape_controls, escape_lines, matches_pattern, panic_message, quoted};

/// An item the console can name: a static or function of the program, or a local value.
enum Item<'a> {
    Exposed(&'static Exposed),
    Local(&'a Local),
}

impl Item<'_> {
    fn name(&self) -> &str {
        match self {
            Item::Exposed(e) => e.name,
            Item::Local(l) => &l.name,
        }
    }

    /// Where it comes from, for the log.
    fn origin(&self) -> &str {
        match self {
            Item::Exposed(e) => e.module_path,
            Item::Local(_) => "(Options::local)",
        }
    }
}

fn find<'a>(name: &str, context: &'a Context<'_>) -> Result<Item<'a>, Reply> {
    if let Some(local) = context.host.locals().iter().find(|l| l.name == name) {
        return Ok(Item::Local(local));
    }
    registry::find(name)
        .map(Item::Exposed)
        .map_err(|e| Reply::fail(e.0, e.1))
}

/// Whether `name` names something the console can print (for bare names).
pub(super) fn exists(name: &str, context: &Context<'_>) -> bool {
    find(name, context).is_ok()
}

/// How long `print` (and `report`, for each value) waits for a value's `Debug`.
pub(crate) const READ_DEADLINE: Duration = Duration::from_secs(2);

/// A value's `Debug` that never returns keeps its thread (and whatever locks it took) for
/// good; at most this many such threads exist at once, whatever clients do.
pub(crate) const MAX_READS_RUNNING: usize = 4;

/// Reads of values running now, each on a thread of its own: the item's address (aligned, so
/// its lowest bit is free), with [`STUCK`] added once its reader missed the deadline; 0 for a
/// free place. Atomics only, so that a forked child can clear them in its atfork handler.
static READS: [AtomicUsize; MAX_READS_RUNNING] = [const { AtomicUsize::new(0) }; MAX_READS_RUNNING];

/// Marks a read in [`READS`] whose value's `Debug` did not return in time. Such an item is not
/// read again until it does, so one stuck value holds one thread, not one per `print`.
const STUCK: usize = 1;

/// A place in [`READS`], freed when dropped (on the reader's thread, once `Debug` returned).
struct ReadSlot(usize);

impl ReadSlot {
    fn take(key: usize) -> Option<ReadSlot> {
        (0..MAX_READS_RUNNING)
            .find(|&i| {
                READS[i]
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .map(ReadSlot)
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        READS[self.0].store(0, Ordering::Release);
    }
}

/// How many reads have missed their deadline and not returned yet.
pub(crate) fn reads_stuck() -> usize {
    READS
        .iter()
        .filter(|r| r.load(Ordering::Acquire) & STUCK != 0)
        .count()
}

/// What the console shows for an item: a value's text, or why there is none.
struct Read {
    /// The text to show (unescaped).
    text: String,
    /// Set when the value's `Debug` panicked: the panic's message.
    panicked: Option<String>,
}

impl Read {
    fn note(text: String) -> Read {
        Read { text, panicked: None }
    }
}

/// Reads an item on a thread of its own with a deadline: a value whose `Debug` blocks (a lock
/// held elsewhere, I/O) leaves the session free; it is shown as timed out, and its thread goes
/// on alone. `key` names the item, so that a stuck one is not read again while stuck.
fn read_off_thread(key: usize, read: impl FnOnce() -> Shown + Send + 'static, context: &Context<'_>) -> Read {
    let key = key & !STUCK;
    if READS.iter().any(|r| r.load(Ordering::Acquire) == key | STUCK) {
        return Read::note(format!(
            "<not read: its Debug has not returned from an earlier read (more than {} s ago)>",
            READ_DEADLINE.as_secs()
        ));
    }
    let Some(slot) = ReadSlot::take(key) else {
        return Read::note(format!(
            "<not read: {MAX_READS_RUNNING} values' Debug are being read or never returned; \
             try again>"
        ));
    };
    let index = slot.0;
    let (tx, rx) = mpsc::channel();
    let mask = context.host.program_mask();
    let spawned = context.host.spawner().spawn("manhole-read", move || {
        crate::session_thread::mark();
        let shown = catch_unwind(AssertUnwindSafe(|| crate::sys::with_mask(&mask, read)))
            .unwrap_or_else(|p| Shown::Panicked(panic_message(&*p)));
        let _ = tx.send(shown);
        drop(slot);
    });
    if let Err(e) = spawned {
        return Read::note(format!("<not read: cannot start a thread to read it: {e}>"));
    }
    match rx.recv_timeout(READ_DEADLINE) {
        Ok(Shown::Panicked(message)) => Read {
            text: format!("<Debug panicked: {message}>"),
            panicked: Some(message),
        },
        Ok(shown) => Read::note(shown.text()),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Unless it returned just now (and freed its place).
            let _ = READS[index].compare_exchange(key, key | STUCK, Ordering::AcqRel, Ordering::Acquire);
            Read::note(format!(
                "<timed out after {} s: the value's Debug did not return>",
                READ_DEADLINE.as_secs()
            ))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Read::note("<not read: its reader ended without a result>".to_owned())
        }
    }
}

/// Reads an exposed static or a local value, off the session thread.
fn read_item(item: &Item<'_>, context: &Context<'_>) -> Option<Read> {
    match item {
        Item::Local(local) => {
            let value = Arc::clone(&local.value);
            let key = Arc::as_ptr(&value).cast::<()>() as usize;
            Some(read_off_thread(key, move || show_debug(&*value), context))
        }
        Item::Exposed(
            e @ Exposed {
                kind: Kind::Value { show, .. },
                ..
            },
        ) => {
            let show = *show;
            Some(read_off_thread(std::ptr::from_ref(*e) as usize, show, context))
        }
        Item::Exposed(_) => None,
    }
}

pub(super) fn vars(args: &[&str], context: &Context<'_>) -> Outcome {
    let pattern = match args {
        [] => None,
        [pattern] => Some(*pattern),
        [_, extra, ..] => {
            return Reply::fail(
                "usage",
                format!("vars takes one pattern (got also {})", quoted(extra)),
            )
            .into();
        }
    };
    // (name, kind, type, module, doc)
    let mut rows: Vec<[String; 5]> = Vec::new();
    for local in context.host.locals() {
        rows.push([
            local.name.clone(),
            "local".into(),
            local.type_name.into(),
            "(Options::local)".into(),
            String::new(),
        ]);
    }
    for e in registry::all() {
        let (kind, ty) = match &e.kind {
            Kind::Value { set: Some(_), .. } => ("writable", e.type_name.to_owned()),
            Kind::Value { set: None, .. } => ("value", e.type_name.to_owned()),
            Kind::Function { params, .. } => {
                let params: Vec<String> = params
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.type_name))
                    .collect();
                ("fn", format!("({}) -> {}", params.join(", "), e.type_name))
            }
        };
        rows.push([e.name.into(), kind.into(), ty, e.module_path.into(), e.doc.into()]);
    }
    rows.retain(|r| pattern.is_none_or(|p| matches_pattern(p, &r[0])));
    if rows.is_empty() {
        let message = match pattern {
            Some(p) => format!("nothing exposed matches {}\n", quoted(p)),
            None => "nothing is exposed; mark statics or functions with #[manhole::expose]\n".to_owned(),
        };
        return Reply::ok(message, Json::Arr(Vec::new())).into();
    }
    let shown: Vec<[String; 5]> = rows
        .iter()
        .map(|r| r.each_ref().map(|c| escape_controls(c).into_owned()))
        .collect();
    let width = |i: usize| shown.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2).min(40));
    let mut text = String::new();
    for r in &shown {
        let _ = write!(text, "{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3]);
        if !r[4].is_empty() {
            let _ = write!(text, "  # {}", r[4]);
        }
        text.push('\n');
    }
    let data = rows
        .iter()
        .map(|r| {
            Json::obj([
                ("name", Json::from(r[0].as_str())),
                ("kind", Json::from(r[1].as_str())),
                ("type", Json::from(r[2].as_str())),
                ("module", Json::from(r[3].as_str())),
                ("doc", Json::from(r[4].as_str())),
            ])
        })
        .collect();
    Reply::ok(text, Json::Arr(data)).into()
}

pub(super) fn print(args: &[&str], context: &Context<'_>) -> Outcome {
    let (name, reveal) = match args {
        [name] if *name != REVEAL => (*name, false),
        [name, flag] | [flag, name] if *flag == REVEAL && *name != REVEAL => (*name, true),
        _ => {
            return Reply::fail("usage", "usage: print NAME [--reveal]; \"vars\" lists the names").into();
        }
    };
    let item = match find(name, context) {
        Ok(item) => item,
        Err(reply) => return reply.into(),
    };
    let Some(read) = read_item(&item, context) else {
        return Reply::fail(
            "not_a_value",
            format!(
                "{} is a function; call it with \"call {} …\"",
                item.name(),
                item.name()
            ),
        )
        .into();
    };
    let shown_name = escape_controls(item.name());
    if reveal {
        mlog!(
            "Revealed {}::{} to {} (print --reveal)",
            item.origin(),
            item.name(),
            peer_words(context.peer)
        );
    }
    let shown = |text: &str| -> String {
        if reveal {
            text.to_owned()
        } else {
            redact::value(item.name(), text).into_owned()
        }
    };
    match read.panicked {
        None => {
            let text = shown(&read.text);
            Reply::ok(
                format!("{}\n", escape_lines(&text)),
                Json::obj([("name", Json::from(item.name())), ("value", Json::from(text))]),
            )
            .into()
        }
        Some(panic) => Reply::fail(
            "panic",
            format!(
                "the Debug impl of {shown_name} panicked: {}; the program goes on",
                escape_controls(&shown(&panic))
            ),
        )
        .into(),
    }
}

/// The flag of `print` that shows a value as it is, secret-looking or not.
const REVEAL: &str = "--reveal";

fn peer_words(peer: PeerCred) -> String {
    let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!("PID:{pid} UID:{}", peer.uid)
}

pub(super) fn set(args: &[&str], context: &Context<'_>) -> Outcome {
    let [name, value] = args else {
        return Reply::fail("usage", "usage: set NAME VALUE (quote a VALUE with spaces)").into();
    };
    let item = match find(name, context) {
        Ok(item) => item,
        Err(reply) => return reply.into(),
    };
    let Item::Exposed(Exposed {
        kind: Kind::Value { set: Some(set), .. },
        module_path,
        name,
        ..
    }) = item
    else {
        return Reply::fail(
            "not_writable",
            format!(
                "{} cannot be set; expose it with #[manhole::expose(writable)]",
                item.name()
            ),
        )
        .into();
    };
    match catch_unwind(AssertUnwindSafe(|| set(value))) {
        Ok(Ok((old, new))) => {
            // A secret-looking item's values are neither logged nor shown.
            let (old, new) = (
                redact::value(name, &old).into_owned(),
                redact::value(name, &new).into_owned(),
            );
            mlog!(
                "Set {module_path}::{name} from {}: {old} -> {new}",
                peer_words(context.peer)
            );
            Reply::ok(
                format!("{name}: {} -> {}\n", escape_controls(&old), escape_controls(&new)),
                Json::obj([
                    ("name", Json::from(*name)),
                    ("old", Json::from(old)),
                    ("new", Json::from(new)),
                ]),
            )
            .into()
        }
        Ok(Err(e)) => {
            let shown = hide_secrets(&e.to_string(), [(*name, *value)]);
            Reply::fail(e.code(), format!("{name}: {}", escape_controls(&shown))).into()
        }
        Err(panic) => Reply::fail(
            "panic",
            format!(
                "setting {name} panicked (nothing changed): {}",
                escape_controls(&panic_message(&*panic))
            ),
        )
        .into(),
    }
}

/// How often a waiting `call` checks whether its client is still there.
const CALL_POLL: Duration = Duration::from_millis(100);

/// Calls may run on after their client left; a function that never returns keeps its thread
/// forever. So at most this many run at once, whatever clients do.
pub(crate) const MAX_CALLS_RUNNING: usize = 8;

/// Calls running now, on their own threads.
pub(crate) static CALLS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// In a forked child: the calls and reads counted were the parent's, on threads the child
/// does not have. Only atomic stores: safe in the atfork child handler.
pub(crate) fn forget_inherited_calls() {
    CALLS_RUNNING.store(0, Ordering::Release);
    for read in &READS {
        read.store(0, Ordering::Release);
    }
}

/// A place among the calls running, given back when dropped (on the call's thread, after the
/// function returned or panicked).
struct CallSlot;

impl CallSlot {
    fn take() -> Option<CallSlot> {
        CALLS_RUNNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CALLS_RUNNING).then_some(n + 1)
            })
            .ok()
            .map(|_| CallSlot)
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        CALLS_RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn call(args: &[&str], context: &Context<'_>) -> Outcome {
    let Some((name, rest)) = args.split_first() else {
        return Reply::fail("usage", "usage: call NAME [ARG…]").into();
    };
    let item = match find(name, context) {
        Ok(item) => item,
        Err(reply) => return reply.into(),
    };
    let Item::Exposed(Exposed {
        kind: Kind::Function { params, call },
        module_path,
        name,
        ..
    }) = item
    else {
        return Reply::fail(
            "not_a_function",
            format!(
                "{} is a value; print it with \"print {}\"",
                item.name(),
                item.name()
            ),
        )
        .into();
    };
    if rest.len() != params.len() {
        let wanted: Vec<String> = params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.type_name))
            .collect();
        return Reply::fail(
            "usage",
            format!(
                "{name} takes {} argument(s) ({}), got {}",
                params.len(),
                wanted.join(", "),
                rest.len()
            ),
        )
        .into();
    }
    let args: Vec<String> = rest.iter().map(|a| (*a).to_owned()).collect();
    // An argument of a secret-looking function or parameter is logged as <redacted>, and is
    // hidden in the reply if the function's answer repeats it.
    let secret_args: Vec<(&str, &str)> = params
        .iter()
        .zip(rest)
        .filter(|(p, _)| redact::is_secret_name(name) || redact::is_secret_name(p.name))
        .map(|(p, a)| (p.name, *a))
        .collect();
    let logged: Vec<String> = params
        .iter()
        .zip(rest)
        .map(|(p, a)| {
            if secret_args.iter().any(|(n, _)| *n == p.name) {
                REDACTED.to_owned()
            } else {
                redact::scrub(a).into_owned()
            }
        })
        .collect();
    mlog!(
        "Call {module_path}::{name}{logged:?} from {}",
        peer_words(context.peer)
    );
    let outcome = match context.client {
        Some(client) => {
            let Some(slot) = CallSlot::take() else {
                return Reply::fail(
                    "busy",
                    format!(
                        "{MAX_CALLS_RUNNING} calls are still running (some may never return); \
                         not starting another until one ends"
                    ),
                )
                .into();
            };
            run_abandonable(*call, args, slot, client, context)
        }
        None => Finished::from(catch_unwind(AssertUnwindSafe(|| call(&args))).map_err(|p| panic_message(&*p))),
    };
    let hide = |text: &str| hide_secrets(text, secret_args.iter().copied());
    match outcome {
        Finished::Returned(Ok(text)) => {
            let text = hide(&text);
            Reply::ok(
                format!("{}\n", escape_lines(&text)),
                Json::obj([("name", Json::from(*name)), ("result", Json::from(text))]),
            )
            .into()
        }
        Finished::Returned(Err(e)) => Reply::fail("failed", escape_lines(&hide(&e))).into(),
        Finished::ClientLeft => Outcome::Quit,
        Finished::Panicked(panic) => Reply::fail(
            "panic",
            format!(
                "{name} panicked: {}; the program goes on",
                escape_controls(&hide(&panic))
            ),
        )
        .into(),
    }
}

/// `text` scrubbed ([`redact::scrub`]), and with every secret given to the program (a
/// secret-looking item's or parameter's value from the command line: `(name, value)`) that it
/// repeats shown as <redacted>.
fn hide_secrets<'a>(text: &str, given: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = redact::scrub(text).into_owned();
    for (name, value) in given {
        if !value.is_empty() && redact::is_secret_name(name) {
            text = text.replace(value, REDACTED);
        }
    }
    text
}

/// How a call ended.
enum Finished {
    /// The function returned (`Err` also when the call could not start).
    Returned(Result<String, String>),
    /// It panicked, with this message.
    Panicked(String),
    /// The client left while it ran; it finishes on its own, and the session ends.
    ClientLeft,
}

impl From<Result<Result<String, String>, String>> for Finished {
    fn from(caught: Result<Result<String, String>, String>) -> Finished {
        match caught {
            Ok(returned) => Finished::Returned(returned),
            Err(panic) => Finished::Panicked(panic),
        }
    }
}

/// Runs the call on its own thread, so that a client that disconnects while it runs ends its
/// session at once; the call finishes on its own and its result is dropped.
fn run_abandonable(
    call: fn(&[String]) -> Result<String, String>,
    args: Vec<String>,
    slot: CallSlot,
    client: &std::os::unix::net::UnixStream,
    context: &Context<'_>,
) -> Finished {
    let (tx, rx) = mpsc::channel();
    let mask = context.host.program_mask();
    let spawned = context.host.spawner().spawn("manhole-call", move || {
        crate::session_thread::mark();
        let outcome = catch_unwind(AssertUnwindSafe(|| crate::sys::with_mask(&mask, || call(&args))))
            .map_err(|p| panic_message(&*p));
        // Given back before the answer goes out, so a call made right after it finds its place.
        drop(slot);
        let _ = tx.send(outcome);
    });
    if let Err(e) = spawned {
        return Finished::Returned(Err(format!("cannot start the call: {e}")));
    }
    loop {
        match rx.recv_timeout(CALL_POLL) {
            Ok(outcome) => return Finished::from(outcome),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Finished::Panicked("the call's thread ended without a result".into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if client_gone(client) {
                    mlog!(
                        "Client {} left during a call; the call runs on",
                        peer_words(context.peer)
                    );
                    return Finished::ClientLeft;
                }
            }
        }
    }
}

/// Whether the client closed its socket entirely (a half-close, after sending its last line,
/// still waits for the answer).
fn client_gone(client: &std::os::unix::net::UnixStream) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(client.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

/// Every exposed item with its current value, for `report`. Each value is read as `print`
/// reads it, off the session thread with a deadline.
pub(super) fn snapshot(context: &Context<'_>) -> Json {
    let mut items: Vec<Json> = context
        .host
        .locals()
        .iter()
        .map(|l| {
            let value =
                read_item(&Item::Local(l), context).map(|r| redact::value(&l.name, &r.text).into_owned());
            Json::obj([
                ("name", Json::from(l.name.as_str())),
                ("kind", Json::from("local")),
                ("type", Json::from(l.type_name)),
                ("value", Json::from(value)),
            ])
        })
        .collect();
    for e in registry::all() {
        let kind = match &e.kind {
            Kind::Value { set: Some(_), .. } => "writable",
            Kind::Value { set: None, .. } => "value",
            Kind::Function { .. } => "fn",
        };
        let value =
            read_item(&Item::Exposed(e), context).map(|r| redact::value(e.name, &r.text).into_owned());
        items.push(Json::obj([
            ("name", Json::from(e.name)),
            ("kind", Json::from(kind)),
            ("type", Json::from(e.type_name)),
            ("module", Json::from(e.module_path)),
            ("doc", Json::from(e.doc)),
            ("value", Json::from(value)),
        ]));
    }
    Json::Arr(items)
}

/// This family's commands (see `console::ALL`).
pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "vars",
        aliases: &["ls"],
        usage: "vars [PATTERN]",
        summary: "exposed values and functions",
        details: "Lists every #[manhole::expose]d static and function and every local given to\n\
                  Options::local: name, kind, type, module, and the first line of its doc.\n\
                  PATTERN keeps names containing it, or matching it with * and ? wildcards.\n\
                  Example: vars cache*",
        group: Group::Values,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: vars,
    },
    Command {
        name: "print",
        aliases: &["p"],
        usage: "print NAME [--reveal]",
        summary: "show a value (a bare NAME does too)",
        details: "Shows the value with its Debug format; behind a Mutex or RwLock, the value\n\
                  itself (<locked> while held elsewhere; \"(poisoned)\" after it if the\n\
                  program poisoned the lock, which stays so). A LazyLock or OnceLock the\n\
                  program has not initialised shows <not initialised yet> and is not forced.\n\
                  A Debug that takes over 2 s is left running on its own thread and shown\n\
                  as <timed out…>. Controls in the text are shown escaped (\\x1b).\n\
                  Typing just the name works too.\n\
                  A value whose name looks secret (PASSWORD, TOKEN, SECRET, KEY, …) is\n\
                  shown as <redacted>; in others, URL passwords and secret-looking fields\n\
                  (password: \"…\", token=…) are. --reveal shows the value as it is;\n\
                  the program's log records who asked.\n\
                  Examples: print REQUESTS   print DB_PASSWORD --reveal",
        group: Group::Values,
        effect: Effect::ReadsOnly,
        watchable: true,
        run: print,
    },
    Command {
        name: "set",
        aliases: &[],
        usage: "set NAME VALUE",
        summary: "change a writable value; shows old -> new",
        details: "Parses VALUE as the value's type and stores it. Works on statics exposed with\n\
                  #[manhole::expose(writable)]: atomics, and Mutex or RwLock of FromStr types\n\
                  (also in a LazyLock or OnceLock, once the program has initialised it).\n\
                  Quote values with spaces: set MODE \"read only\"\n\
                  A secret-looking item's old and new values are shown and logged as\n\
                  <redacted>.\n\
                  Example: set LIMIT 10",
        group: Group::Values,
        effect: Effect::ChangesState,
        watchable: true,
        run: set,
    },
    Command {
        name: "call",
        aliases: &[],
        usage: "call NAME [ARG…]",
        summary: "call an exposed function",
        details: "Parses each argument as the parameter's type, calls the function and shows\n\
                  its result. Quote arguments with spaces (\"…\" or '…'). If you disconnect\n\
                  while it runs, the session ends and the call finishes on its own. At most\n\
                  8 calls run at once (see info). The log records each call with its\n\
                  arguments; those of a secret-looking function or parameter are logged\n\
                  as <redacted> and hidden if the result repeats them.\n\
                  Example: call flush_cache 10",
        group: Group::Values,
        effect: Effect::RunsCode,
        watchable: true,
        run: call,
    },
];
