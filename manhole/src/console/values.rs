//! Commands over what the program exposes: `vars`, `print`, `set`, `call`.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{Context, Json, Outcome, Reply, matches_pattern, quoted};
use crate::logging::mlog;
use crate::registry::{self, Exposed, Kind, Local};
use crate::sys::PeerCred;

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
}

fn find<'a>(name: &str, context: &'a Context<'_>) -> Result<Item<'a>, Reply> {
    if let Some(local) = context.server.locals().iter().find(|l| l.name == name) {
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

/// How long `print` retries a value whose lock is held elsewhere before showing `<locked>`.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// The text of a value's Debug form; a panicking Debug impl becomes an error. std's `Mutex`
/// and `RwLock` show `<locked>` rather than wait: a lock held only for a moment is retried a
/// few times first.
fn debug_text(value: &(dyn std::fmt::Debug + Sync)) -> Result<String, String> {
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        let text = catch_unwind(AssertUnwindSafe(|| format!("{value:#?}")))
            .map_err(|panic| panic_message(&*panic))?;
        if !text.contains("<locked>") || std::time::Instant::now() >= deadline {
            return Ok(text);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn debug_text_local(value: &(dyn std::fmt::Debug + Send + Sync)) -> Result<String, String> {
    catch_unwind(AssertUnwindSafe(|| format!("{value:#?}"))).map_err(|panic| panic_message(&*panic))
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
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
    for local in context.server.locals() {
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
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2).min(40));
    let mut text = String::new();
    for r in &rows {
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
    let [name] = args else {
        return Reply::fail("usage", "print takes one name; \"vars\" lists them").into();
    };
    let item = match find(name, context) {
        Ok(item) => item,
        Err(reply) => return reply.into(),
    };
    let text = match &item {
        Item::Local(local) => debug_text_local(&**local.value),
        Item::Exposed(Exposed {
            kind: Kind::Value { get, .. },
            ..
        }) => debug_text(get()),
        Item::Exposed(e) => {
            return Reply::fail(
                "not_a_value",
                format!("{} is a function; call it with \"call {} …\"", e.name, e.name),
            )
            .into();
        }
    };
    match text {
        Ok(text) => Reply::ok(
            format!("{text}\n"),
            Json::obj([("name", Json::from(item.name())), ("value", Json::from(text))]),
        )
        .into(),
        Err(panic) => Reply::fail(
            "panic",
            format!(
                "the Debug impl of {} panicked: {panic}; the program goes on",
                item.name()
            ),
        )
        .into(),
    }
}

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
            mlog!(
                "Set {module_path}::{name} from {}: {old} -> {new}",
                peer_words(context.peer)
            );
            Reply::ok(
                format!("{name}: {old} -> {new}\n"),
                Json::obj([
                    ("name", Json::from(*name)),
                    ("old", Json::from(old)),
                    ("new", Json::from(new)),
                ]),
            )
            .into()
        }
        Ok(Err(e)) => {
            let code = if e.starts_with("the lock is held") {
                "locked"
            } else {
                "parse"
            };
            Reply::fail(code, format!("{name}: {e}")).into()
        }
        Err(panic) => Reply::fail(
            "panic",
            format!("setting {name} panicked: {}", panic_message(&*panic)),
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

/// In a forked child: the calls counted were the parent's, on threads the child does not have.
/// Only an atomic store: safe in the atfork child handler.
pub(crate) fn forget_inherited_calls() {
    CALLS_RUNNING.store(0, Ordering::Release);
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
    mlog!(
        "Call {module_path}::{name}{args:?} from {}",
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
        None => catch_unwind(AssertUnwindSafe(|| call(&args))).map_err(|p| panic_message(&*p)),
    };
    match outcome {
        Ok(Ok(text)) => Reply::ok(
            format!("{text}\n"),
            Json::obj([("name", Json::from(*name)), ("result", Json::from(text))]),
        )
        .into(),
        Ok(Err(e)) => Reply::fail("failed", e).into(),
        Err(panic) if panic == CLIENT_LEFT => Outcome::Quit,
        Err(panic) => Reply::fail("panic", format!("{name} panicked: {panic}; the program goes on")).into(),
    }
}

const CLIENT_LEFT: &str = "\0client left";

/// Runs the call on its own thread, so that a client that disconnects while it runs ends its
/// session at once; the call finishes on its own and its result is dropped.
fn run_abandonable(
    call: fn(&[String]) -> Result<String, String>,
    args: Vec<String>,
    slot: CallSlot,
    client: &std::os::unix::net::UnixStream,
    context: &Context<'_>,
) -> Result<Result<String, String>, String> {
    let (tx, rx) = mpsc::channel();
    let spawned = context.server.spawn_thread("manhole-call", move || {
        crate::server::mark_session_thread();
        let outcome = catch_unwind(AssertUnwindSafe(|| call(&args))).map_err(|p| panic_message(&*p));
        // Given back before the answer goes out, so a call made right after it finds its place.
        drop(slot);
        let _ = tx.send(outcome);
    });
    if let Err(e) = spawned {
        return Ok(Err(format!("cannot start the call: {e}")));
    }
    loop {
        match rx.recv_timeout(CALL_POLL) {
            Ok(outcome) => return outcome,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the call's thread ended without a result".into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if client_gone(client) {
                    mlog!(
                        "Client {} left during a call; the call runs on",
                        peer_words(context.peer)
                    );
                    return Err(CLIENT_LEFT.into());
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

/// Every exposed item with its current value, for `report`.
pub(super) fn snapshot(context: &Context<'_>) -> Json {
    let mut items: Vec<Json> = context
        .server
        .locals()
        .iter()
        .map(|l| {
            Json::obj([
                ("name", Json::from(l.name.as_str())),
                ("kind", Json::from("local")),
                ("type", Json::from(l.type_name)),
                (
                    "value",
                    Json::from(
                        debug_text_local(&**l.value).unwrap_or_else(|p| format!("<Debug panicked: {p}>")),
                    ),
                ),
            ])
        })
        .collect();
    for e in registry::all() {
        let (kind, value) = match &e.kind {
            Kind::Value { get, set } => (
                if set.is_some() { "writable" } else { "value" },
                Json::from(debug_text(get()).unwrap_or_else(|p| format!("<Debug panicked: {p}>"))),
            ),
            Kind::Function { .. } => ("fn", Json::Null),
        };
        items.push(Json::obj([
            ("name", Json::from(e.name)),
            ("kind", Json::from(kind)),
            ("type", Json::from(e.type_name)),
            ("module", Json::from(e.module_path)),
            ("doc", Json::from(e.doc)),
            ("value", value),
        ]));
    }
    Json::Arr(items)
}
