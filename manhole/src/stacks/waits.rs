//! Why each thread is where it is: the primitive it waits on, the futex word or descriptor,
//! the static that word lies in, who holds it where that is recorded, and how long the thread
//! has not run. Built from what the dump already has (frames, and the thread's record: its
//! system call and arguments, read from the handler's registers or `/proc` before the signal;
//! see `record`), plus a few reads per *distinct* word or descriptor, never per thread.
//!
//! # What tells what (std 1.95, glibc, Linux; `../shared/research/locks.md` has the measurements)
//! - The primitive comes from the frames: std's `sys/sync/{mutex,rwlock,condvar,once}` code,
//!   channels (`sync/mpmc`), `thread::park`, `JoinInner::join`, parking_lot, glibc's
//!   `pthread_mutex_lock`; failing those, from the system call (`read` on fd 3, `epoll_wait`,
//!   `nanosleep`…).
//! - The futex word is the call's first argument; threads waiting on one word wait on one lock.
//! - Its name: the exposed static whose bytes hold it, else whatever the symbol table says lies
//!   there (statics that are not exposed), else the address.
//! - The holder, only where something records it: a PI futex keeps the owner's tid in the word,
//!   glibc's mutex in `__owner`, a join waits on the joined thread's tid. std's `Mutex` and
//!   `RwLock` record no owner at all, so none is ever guessed for them.

use std::collections::HashMap;
use std::time::Duration;

use super::record::{Phase, Syscall};
use super::symbolize::Symbol;
use super::{Stack, ThreadReport, short_path};
use crate::json::Json;

/// What a thread waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// On a CPU, or runnable.
    Running,
    Mutex,
    RwLockRead,
    RwLockWrite,
    Condvar,
    /// A `Once`, `OnceLock` or `LazyLock` another thread is initialising.
    Once,
    Receive,
    Send,
    Join,
    Park,
    ParkingLotMutex,
    ParkingLotRwLockRead,
    ParkingLotRwLockWrite,
    ParkingLotCondvar,
    /// glibc's `pthread_mutex_t` (C code, or Rust through `libc`).
    PthreadMutex,
    /// A priority-inheritance futex (`FUTEX_LOCK_PI`): the kernel keeps the owner.
    PiMutex,
    PthreadCondvar,
    /// A futex nothing above explains.
    Futex,
    Io(Io),
    Poll,
    Epoll,
    Sleep,
    Signal,
    Child,
    /// Another system call.
    Syscall,
    /// Nothing tells: the thread's state is all there is.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Io {
    Read,
    Write,
    Accept,
    Connect,
    Receive,
    Send,
}

/// Who holds what a thread waits on, and how that is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) tid: i32,
    /// What recorded it: "PI futex word", "glibc __owner", "join target"… Every holder here
    /// is recorded by the kernel or a library, never inferred.
    pub(crate) source: &'static str,
    /// How long it has held it, where that is recorded.
    pub(crate) since: Option<Duration>,
    /// Where it took it, where that is recorded (`src/db.rs:88:13`).
    pub(crate) at: Option<String>,
    /// For an RwLock held for reading: how many readers; `tid` is then only the last thread
    /// that took a read lock, which may have released it since (so it is no certain holder).
    pub(crate) readers: Option<u32>,
}

impl Holder {
    /// `, held by 4242 "flusher" for 12.4 s (taken at src/db.rs:88)`.
    fn describe(&self, who: &dyn Fn(i32) -> String) -> String {
        let since = self
            .since
            .map_or_else(String::new, |d| format!(" for {}", crate::text::wait_duration(d)));
        let at = self.at.as_ref().map_or_else(String::new, |at| {
            format!(", taken at {}", crate::text::escape_controls(at))
        });
        match self.readers {
            Some(n) => format!(
                ", held for reading by {n} thread{}{since} (the last read lock taken by {}{at})",
                if n == 1 { "" } else { "s" },
                who(self.tid)
            ),
            None => format!(", held by {}{since}{at}", who(self.tid)),
        }
    }

    /// Whether this names the thread that holds it now, for certain.
    pub(crate) fn certain(&self) -> bool {
        self.readers.is_none()
    }
}

/// Why one thread is where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    pub(crate) kind: Kind,
    /// The futex word it waits on.
    pub(crate) word: Option<usize>,
    /// What that word is part of: an exposed static's name, or a symbol.
    pub(crate) object: Option<String>,
    pub(crate) holder: Option<Holder>,
    /// The descriptor of an I/O wait (`epoll_wait`'s epoll descriptor too) and what it is.
    pub(crate) fd: Option<(i32, Option<String>)>,
    /// How many descriptors a poll waits on.
    pub(crate) fds: Option<usize>,
    /// A sleep's requested length.
    pub(crate) sleep: Option<Duration>,
    /// Whether the wait has a timeout: `Some(false)` is a wait that nothing but a wake-up ends.
    pub(crate) timed: Option<bool>,
    /// The system call, named, for [`Kind::Syscall`].
    pub(crate) call: Option<String>,
    /// A pool or runtime thread waiting for work (tokio, rayon, manhole's own): idle, not stuck.
    pub(crate) idle: Option<&'static str>,
    /// How long it has been in this wait at least, where that is known (see [`since`]).
    pub(crate) waited: Option<Duration>,
    /// Where in the program it waits: the innermost frame of its own code (`src/db.rs:91`).
    pub(crate) at: Option<String>,
    /// For a group's header: its members' descriptors, when they differ (`fd 11, 12 and 88
    /// more`).
    fds_of_group: Option<String>,
}

impl Wait {
    /// Nothing known yet.
    pub(crate) fn unknown() -> Wait {
        Wait::of(Kind::Unknown)
    }

    fn of(kind: Kind) -> Wait {
        Wait {
            kind,
            word: None,
            object: None,
            holder: None,
            fd: None,
            fds: None,
            sleep: None,
            timed: None,
            call: None,
            idle: None,
            waited: None,
            at: None,
            fds_of_group: None,
        }
    }

    /// What threads must share to be shown as one group: the reason without the lengths
    /// that differ from thread to thread (a sleep's request, how long each has waited).
    pub(crate) fn group_key(&self, state: Option<char>, names: &dyn Fn(i32) -> Option<String>) -> String {
        let mut bare = self.clone();
        bare.sleep = None;
        // Threads reading one pipe through descriptors of their own are one group.
        bare.fds_of_group = bare.fd.as_ref().map(|_| "fd".to_owned());
        bare.describe(state, names, None)
    }

    /// The header of a group of threads that share a [`Wait::group_key`]: the first one's
    /// reason, with every member's descriptor where they differ.
    pub(crate) fn describe_group(
        members: &[&Wait],
        state: Option<char>,
        names: &dyn Fn(i32) -> Option<String>,
        waited: Option<(Duration, Duration)>,
    ) -> String {
        let first = members[0];
        let mut fds: Vec<i32> = members
            .iter()
            .filter_map(|w| w.fd.as_ref().map(|(fd, _)| *fd))
            .collect();
        fds.dedup();
        if fds.len() <= 1 {
            return first.describe(state, names, waited);
        }
        fds.sort_unstable();
        fds.dedup();
        const LISTED: usize = 3;
        let shown: Vec<String> = fds.iter().take(LISTED).map(i32::to_string).collect();
        let list = if fds.len() > LISTED {
            format!("fd {} and {} more", shown.join(", "), fds.len() - LISTED)
        } else {
            format!("fd {}", shown.join(", "))
        };
        let mut header = first.clone();
        header.fds_of_group = Some(list);
        header.describe(state, names, waited)
    }

    /// Whether this is a wait on a lock (something another thread holds).
    pub(crate) fn is_lock(&self) -> bool {
        matches!(
            self.kind,
            Kind::Mutex
                | Kind::RwLockRead
                | Kind::RwLockWrite
                | Kind::Once
                | Kind::ParkingLotMutex
                | Kind::ParkingLotRwLockRead
                | Kind::ParkingLotRwLockWrite
                | Kind::PthreadMutex
                | Kind::PiMutex
        )
    }

    /// The primitive, as the reader knows it from the source.
    pub(crate) fn primitive(&self) -> &'static str {
        match self.kind {
            Kind::Mutex => "Mutex",
            Kind::RwLockRead => "RwLock (to read)",
            Kind::RwLockWrite => "RwLock (to write)",
            Kind::Condvar => "Condvar",
            Kind::Once => "Once/LazyLock",
            Kind::Receive | Kind::Send => "channel",
            Kind::Join => "join",
            Kind::Park => "thread::park",
            Kind::ParkingLotMutex => "parking_lot Mutex",
            Kind::ParkingLotRwLockRead => "parking_lot RwLock (to read)",
            Kind::ParkingLotRwLockWrite => "parking_lot RwLock (to write)",
            Kind::ParkingLotCondvar => "parking_lot Condvar",
            Kind::PthreadMutex => "pthread mutex",
            Kind::PiMutex => "PI mutex",
            Kind::PthreadCondvar => "pthread condvar",
            Kind::Futex => "futex",
            Kind::Io(_) => "I/O",
            Kind::Poll => "poll",
            Kind::Epoll => "epoll",
            Kind::Sleep => "sleep",
            Kind::Signal => "signal",
            Kind::Child => "child process",
            Kind::Syscall => "system call",
            Kind::Running => "running",
            Kind::Unknown => "unknown",
        }
    }

    /// The lock's name for the reader: the object, else the word's address.
    pub(crate) fn lock_name(&self) -> String {
        match (&self.object, self.word) {
            (Some(object), _) => crate::text::escape_controls(object).into_owned(),
            (None, Some(word)) => format!("{word:#x}"),
            (None, None) => "(unknown)".to_owned(),
        }
    }

    /// The reason, for a dump's thread header (`waiting 12.4 s on Mutex DB_POOL, held by 4242
    /// "flusher"`). `state` is the kernel's, for the threads nothing else explains; `names`
    /// names holders; `waited` is the range of `waited` over a group of threads.
    pub(crate) fn describe(
        &self,
        state: Option<char>,
        names: &dyn Fn(i32) -> Option<String>,
        waited: Option<(Duration, Duration)>,
    ) -> String {
        let waited = waited.map_or_else(String::new, |(low, high)| {
            let low_text = crate::text::wait_duration(low);
            let high_text = crate::text::wait_duration(high);
            if low_text == high_text {
                format!(" {low_text}")
            } else {
                format!(" {low_text}–{high_text}")
            }
        });
        // After the object for what is not a lock: "reading fd 3 (…) for 2 s".
        let for_ = if waited.is_empty() {
            String::new()
        } else {
            format!(" for{waited}")
        };
        let who = |tid: i32| who(tid, names);
        let fd = || match (&self.fd, &self.fds_of_group) {
            (Some((_, Some(what))), Some(list)) => format!("{list} ({})", crate::text::escape_controls(what)),
            (_, Some(list)) => list.clone(),
            _ => match &self.fd {
                Some((fd, Some(what))) => format!("fd {fd} ({})", crate::text::escape_controls(what)),
                Some((fd, None)) => format!("fd {fd}"),
                None => "a descriptor".to_owned(),
            },
        };
        if let Some(pool) = self.idle {
            return format!("idle{for_}: {pool}");
        }
        if let Some('T' | 't' | 'Z' | 'X' | 'D') = state {
            let described = crate::procfs::describe_state(state.unwrap_or('?'));
            return match self.kind {
                Kind::Unknown | Kind::Running => described.to_owned(),
                _ => format!("{described}; {}", self.describe(None, names, None)),
            };
        }
        match self.kind {
            Kind::Running => "running".to_owned(),
            Kind::Unknown => state
                .map_or("state unknown", crate::procfs::describe_state)
                .to_owned(),
            kind if self.is_lock() => {
                let mut text = format!("waiting{waited} on {} {}", self.primitive(), self.lock_name());
                if let Some(holder) = &self.holder {
                    text.push_str(&holder.describe(&who));
                } else if kind == Kind::Once {
                    text = format!("waiting{waited} for {} to be initialised", self.lock_name());
                }
                text
            }
            Kind::Condvar | Kind::ParkingLotCondvar | Kind::PthreadCondvar => match &self.object {
                Some(_) => format!("waiting{waited} on {} {}", self.primitive(), self.lock_name()),
                None => format!("waiting{waited} on a {}", self.primitive()),
            },
            Kind::Receive => format!("waiting{waited} to receive on a channel"),
            Kind::Send => format!("waiting{waited} to send on a full channel"),
            Kind::Join => match &self.holder {
                Some(holder) => format!("joining thread {}{for_}", who(holder.tid)),
                None => format!("joining a thread{for_}"),
            },
            Kind::Park => format!("parked in thread::park{for_}"),
            Kind::Futex => format!("waiting{waited} on futex {}", self.lock_name()),
            Kind::Io(io) => {
                let verb = match io {
                    Io::Read => "reading",
                    Io::Write => "writing",
                    Io::Accept => "accepting on",
                    Io::Connect => "connecting",
                    Io::Receive => "receiving on",
                    Io::Send => "sending on",
                };
                format!("{verb} {}{for_}", fd())
            }
            Kind::Poll => match self.fds {
                Some(1) => format!("polling 1 descriptor{for_}"),
                Some(n) => format!("polling {n} descriptors{for_}"),
                None => format!("polling{for_}"),
            },
            Kind::Epoll => format!("in epoll_wait on {}{for_}", fd()),
            // The request of the last (re)start: std's sleep restarts with what is left.
            Kind::Sleep => match (self.sleep, waited.is_empty()) {
                (Some(asked), true) => format!("sleeping (a {} sleep)", crate::text::wait_duration(asked)),
                (Some(asked), false) => format!(
                    "sleeping{waited} so far (a {} sleep)",
                    crate::text::wait_duration(asked)
                ),
                (None, _) => format!("sleeping{waited}"),
            },
            Kind::Signal => format!("waiting{waited} for a signal"),
            Kind::Child => format!("waiting{waited} for a child process"),
            Kind::Syscall => format!("in system call {}{for_}", self.call.as_deref().unwrap_or("?")),
            _ => state
                .map_or("state unknown", crate::procfs::describe_state)
                .to_owned(),
        }
    }
}

impl Kind {
    /// Its name in machine mode.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Kind::Running => "running",
            Kind::Mutex => "mutex",
            Kind::RwLockRead => "rwlock_read",
            Kind::RwLockWrite => "rwlock_write",
            Kind::Condvar => "condvar",
            Kind::Once => "once",
            Kind::Receive => "channel_receive",
            Kind::Send => "channel_send",
            Kind::Join => "join",
            Kind::Park => "park",
            Kind::ParkingLotMutex => "parking_lot_mutex",
            Kind::ParkingLotRwLockRead => "parking_lot_rwlock_read",
            Kind::ParkingLotRwLockWrite => "parking_lot_rwlock_write",
            Kind::ParkingLotCondvar => "parking_lot_condvar",
            Kind::PthreadMutex => "pthread_mutex",
            Kind::PiMutex => "pi_mutex",
            Kind::PthreadCondvar => "pthread_condvar",
            Kind::Futex => "futex",
            Kind::Io(Io::Read) => "read",
            Kind::Io(Io::Write) => "write",
            Kind::Io(Io::Accept) => "accept",
            Kind::Io(Io::Connect) => "connect",
            Kind::Io(Io::Receive) => "receive",
            Kind::Io(Io::Send) => "send",
            Kind::Poll => "poll",
            Kind::Epoll => "epoll",
            Kind::Sleep => "sleep",
            Kind::Signal => "signal",
            Kind::Child => "child",
            Kind::Syscall => "syscall",
            Kind::Unknown => "unknown",
        }
    }
}

impl Wait {
    /// The wait in machine mode: every fact, and the header's text.
    pub(crate) fn to_json(&self, state: Option<char>, names: &dyn Fn(i32) -> Option<String>) -> Json {
        let millis = |d: Duration| Json::from(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let holder = self.holder.as_ref().map_or(Json::Null, |h| {
            Json::obj([
                ("tid", Json::from(h.tid)),
                ("name", Json::from(names(h.tid))),
                ("source", Json::from(h.source)),
                ("since_ms", h.since.map_or(Json::Null, millis)),
                ("at", Json::from(h.at.clone())),
                ("readers", Json::from(h.readers)),
                ("certain", Json::from(h.certain())),
            ])
        });
        Json::obj([
            ("kind", Json::from(self.kind.code())),
            (
                "text",
                Json::from(self.describe(state, names, self.waited.map(|d| (d, d)))),
            ),
            ("word", Json::from(self.word.map(|w| format!("{w:#x}")))),
            ("object", Json::from(self.object.clone())),
            ("holder", holder),
            ("fd", Json::from(self.fd.as_ref().map(|(fd, _)| *fd))),
            (
                "fd_target",
                Json::from(self.fd.as_ref().and_then(|(_, what)| what.clone())),
            ),
            ("fds", Json::from(self.fds)),
            ("sleep_ms", self.sleep.map_or(Json::Null, millis)),
            ("timed", Json::from(self.timed)),
            ("syscall", Json::from(self.call.clone())),
            ("idle", Json::from(self.idle)),
            ("at", Json::from(self.at.clone())),
            ("waited_ms", self.waited.map_or(Json::Null, millis)),
        ])
    }
}

/// What the frames say, innermost first.
#[derive(Clone)]
struct FrameFacts {
    kind: Option<Kind>,
    idle: Option<&'static str>,
}

/// How deep into a stack the primitive is looked for: std's lock code is a few frames in.
const LOOK: usize = 24;

fn frame_facts(symbols: &[&Symbol]) -> FrameFacts {
    let mut kind = None;
    let mut generic_park = false;
    for symbol in symbols.iter().take(LOOK) {
        let name = symbol.name.as_deref().unwrap_or("");
        let file = symbol
            .file
            .as_deref()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let file = short_path(&file);
        let found = primitive_of(name, file);
        match found {
            Some(Kind::Park) => {
                // A park is how channels, pools and runtimes sleep: look further out for which.
                generic_park = true;
            }
            Some(k) => {
                kind = Some(k);
                break;
            }
            None => {}
        }
    }
    if kind.is_none() && generic_park {
        kind = Some(Kind::Park);
    }
    let idle = symbols
        .iter()
        .find_map(|s| pool_of(s.name.as_deref().unwrap_or("")));
    FrameFacts { kind, idle }
}

/// The primitive a frame belongs to, from its (demangled, possibly short) name and its file.
fn primitive_of(name: &str, file: &str) -> Option<Kind> {
    let has = |n: &str| name.contains(n);
    let in_file = |f: &str| file.contains(f);
    if in_file("sys/sync/mutex/") || has("sys::sync::mutex::") {
        return Some(Kind::Mutex);
    }
    if in_file("sys/sync/rwlock/") || has("sys::sync::rwlock::") {
        return Some(if has("write") {
            Kind::RwLockWrite
        } else {
            Kind::RwLockRead
        });
    }
    if in_file("sys/sync/condvar/") || has("sys::sync::condvar::") {
        return Some(Kind::Condvar);
    }
    if in_file("sys/sync/once/") || has("sys::sync::once::") {
        return Some(Kind::Once);
    }
    if in_file("sync/mpmc/")
        || in_file("sync/mpsc")
        || has("sync::mpmc::")
        || has("sync::mpsc::")
        || has("crossbeam_channel::")
    {
        if has("send") {
            return Some(Kind::Send);
        }
        if has("recv") {
            return Some(Kind::Receive);
        }
        return None; // the channel's inner frames: look further out for recv or send
    }
    if has("JoinInner") && has("join")
        || has("pthread_clockjoin")
        || has("pthread_join")
        || has("pthread_timedjoin")
    {
        return Some(Kind::Join);
    }
    if has("parking_lot::raw_mutex::") || has("parking_lot::raw_fair_mutex::") {
        return Some(Kind::ParkingLotMutex);
    }
    if has("parking_lot::raw_rwlock::") {
        return Some(if has("exclusive") || has("upgrad") {
            Kind::ParkingLotRwLockWrite
        } else {
            Kind::ParkingLotRwLockRead
        });
    }
    if has("parking_lot::condvar::") {
        return Some(Kind::ParkingLotCondvar);
    }
    if has("__pthread_mutex_lock_full") {
        return Some(Kind::PiMutex);
    }
    if has("__lll_lock_wait")
        || has("pthread_mutex_lock")
        || has("pthread_mutex_timedlock")
        || has("pthread_mutex_clocklock")
    {
        return Some(Kind::PthreadMutex);
    }
    if has("pthread_cond_wait") || has("pthread_cond_timedwait") || has("pthread_cond_clockwait") {
        return Some(Kind::PthreadCondvar);
    }
    if in_file("sys/sync/thread_parking/")
        || has("thread_parking::")
        || has("std::thread::park")
        || has("parking_lot_core::")
    {
        return Some(Kind::Park);
    }
    None
}

/// The innermost frame of the program's own code, as `file:line` (manhole's frames skipped:
/// the wrapper's `lock` is not where the program waits).
fn program_frame(symbols: &[&Symbol]) -> Option<String> {
    symbols
        .iter()
        .filter(|s| {
            !s.name
                .as_deref()
                .is_some_and(|n| n.starts_with("manhole::") || n.starts_with("<manhole::"))
        })
        .find(|s| super::is_programs(s))
        .and_then(|s| Some(format!("{}:{}", s.file.as_deref()?.display(), s.line?)))
}

/// Runtimes and pools whose threads wait for work in a known place: idle, not stuck.
fn pool_of(name: &str) -> Option<&'static str> {
    if name.contains("tokio::runtime::blocking::pool") && !name.contains("spawn") {
        return Some("tokio blocking pool, waiting for work");
    }
    if name.contains("tokio::runtime::scheduler") && (name.contains("park") || name.contains("Parker")) {
        return Some("tokio worker, waiting for work");
    }
    if name.contains("rayon_core::sleep") {
        return Some("rayon worker, waiting for work");
    }
    if name.starts_with("manhole::server::") && name.contains("listen") {
        return Some("manhole's listener, waiting for a client");
    }
    None
}

/// The futex command of an `op` (without the private and clock flags).
fn futex_cmd(op: usize) -> usize {
    op & 0x7f
}

const FUTEX_LOCK_PI: usize = 6;
const FUTEX_LOCK_PI2: usize = 13;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// Reads `N` bytes of this process at `address`, never faulting; nothing where this thread may
/// not read through the kernel (see [`Lookup::peek_ok`]).
fn peek<const N: usize>(lookup: &Lookup, address: usize) -> Option<[u8; N]> {
    if !lookup.peek_ok {
        return None;
    }
    let mut out = [0u8; N];
    (super::read_memory_checked(address, &mut out) == N).then_some(out)
}

/// What is read once per dump and shared by every thread: the exposed statics' addresses,
/// what each descriptor is, the name of each word.
pub(crate) struct Lookup {
    /// Exposed statics: start, end, name; sorted by start.
    exposed: Vec<(usize, usize, &'static str)>,
    fds: HashMap<i32, Option<String>>,
    objects: HashMap<usize, Option<String>>,
    /// What each distinct stack says (its frames are shared per address, so a stack is the
    /// list of its frames' pointers): a pool of a thousand threads is read once.
    stacks: HashMap<Vec<usize>, (FrameFacts, Option<String>)>,
    sync_holders: HashMap<usize, Option<Holder>>,
    /// Whether this thread may read memory through the kernel, checked once per dump: a
    /// seccomp filter of the program's that forbids `process_vm_readv` could kill the process.
    peek_ok: bool,
}

impl Lookup {
    pub(crate) fn new() -> Lookup {
        let mut exposed: Vec<(usize, usize, &'static str)> = crate::registry::all()
            .into_iter()
            .filter_map(|item| match &item.kind {
                crate::registry::Kind::Value { get, .. } => {
                    // Only the reference: no Debug, no lock, no user code runs.
                    let value = get();
                    let start = std::ptr::from_ref(value).cast::<u8>() as usize;
                    let size = std::mem::size_of_val(value);
                    (size > 0).then_some((start, start + size, item.name))
                }
                crate::registry::Kind::Function { .. } => None,
            })
            .collect();
        exposed.sort_unstable();
        Lookup {
            exposed,
            fds: HashMap::new(),
            objects: HashMap::new(),
            stacks: HashMap::new(),
            sync_holders: HashMap::new(),
            peek_ok: super::can_read_memory(),
        }
    }

    /// The holder a `manhole::sync` lock around `word` records, read once per word and dump
    /// (each read tries several places through the kernel).
    fn sync_holder(&mut self, word: usize) -> Option<Holder> {
        let peek_ok = self.peek_ok;
        self.sync_holders
            .entry(word)
            .or_insert_with(|| {
                // It reads through the kernel too.
                if !peek_ok {
                    return None;
                }
                let held = crate::sync::holder_of_word(word)?;
                Some(Holder {
                    tid: held.tid,
                    source: "manhole::sync's record",
                    since: held.ago,
                    at: held.site.map(|site| format!("{}:{}", site.file, site.line)),
                    readers: match held.kind {
                        crate::sync::HeldKind::Read { readers } => Some(readers),
                        crate::sync::HeldKind::Mutex | crate::sync::HeldKind::Write => None,
                    },
                })
            })
            .clone()
    }

    fn fd(&mut self, fd: i32) -> Option<String> {
        self.fds
            .entry(fd)
            .or_insert_with(|| crate::procfs::fd_target(fd))
            .clone()
    }

    /// The exposed static holding `word`, else the symbol there.
    fn object(&mut self, word: usize) -> Option<String> {
        if let Some(name) = self
            .exposed
            .iter()
            .rev()
            .find(|(start, end, _)| (*start..*end).contains(&word))
            .map(|(_, _, name)| (*name).to_owned())
        {
            return Some(name);
        }
        self.objects
            .entry(word)
            .or_insert_with(|| super::symbolize::data_symbol(word))
            .clone()
    }
}

/// Why `thread` is where it is.
pub(crate) fn explain(thread: &ThreadReport, lookup: &mut Lookup) -> Wait {
    let frames = match &thread.stack {
        Stack::Frames(frames, _) => frames,
        Stack::FromProc { top, .. } => top,
    };
    let key: Vec<usize> = frames
        .iter()
        .map(|f| std::sync::Arc::as_ptr(f).cast::<Symbol>() as usize)
        .collect();
    let (facts, at) = lookup
        .stacks
        .entry(key)
        .or_insert_with(|| {
            let symbols: Vec<&Symbol> = frames.iter().flat_map(|f| f.iter()).collect();
            (frame_facts(&symbols), program_frame(&symbols))
        })
        .clone();
    let syscall = thread.record.syscall;
    let mut wait = Wait::of(Kind::Unknown);
    wait.at = at;
    if thread.state == Some('R')
        && !matches!(
            syscall,
            Some(Syscall {
                phase: Phase::Waiting,
                ..
            })
        )
    {
        // Runnable, or the dumping thread itself.
        wait.kind = Kind::Running;
        return wait;
    }
    if let Some(call) = syscall {
        from_syscall(&call, &mut wait, lookup);
    }
    if let Some(kind) = facts.kind {
        // The frames name the primitive; the call gave the word and the holder facts.
        let from_call = wait.kind;
        wait.kind = match (kind, from_call) {
            (Kind::PthreadMutex, Kind::PiMutex) => Kind::PiMutex,
            (Kind::Join, _) => Kind::Join,
            (k, Kind::Futex | Kind::PiMutex | Kind::Unknown | Kind::Syscall) => k,
            // A channel or park whose thread is in I/O or a sleep: the call says more.
            (Kind::Park | Kind::Receive | Kind::Send, other) if other != Kind::Running => other,
            (k, _) => k,
        };
        if matches!(from_call, Kind::Io(_) | Kind::Poll | Kind::Epoll | Kind::Sleep)
            && !matches!(kind, Kind::Join)
        {
            wait.kind = from_call;
        }
    }
    match wait.kind {
        Kind::Join => {
            // pthread_join waits on the joined thread's tid word with that tid as the value.
            if let Some(Syscall {
                args: [_, _, Some(val), ..],
                ..
            }) = syscall
                && let Ok(target) = i32::try_from(val)
                && target > 0
            {
                wait.holder = Some(Holder {
                    tid: target,
                    source: "the joined thread's id (pthread_join's futex value)",
                    since: None,
                    at: None,
                    readers: None,
                });
            }
            wait.word = None;
            wait.object = None;
        }
        Kind::PthreadMutex if cfg!(target_env = "gnu") => {
            // glibc's pthread_mutex_t: __lock at +0, __count at +4, __owner at +8.
            if let Some(word) = wait.word
                && let Some(owner) = peek::<4>(lookup, word + 8).map(i32::from_ne_bytes)
                && owner > 0
            {
                wait.holder = Some(Holder {
                    tid: owner,
                    source: "glibc's __owner field",
                    since: None,
                    at: None,
                    readers: None,
                });
            }
        }
        _ => {}
    }
    if matches!(wait.kind, Kind::Mutex | Kind::RwLockRead | Kind::RwLockWrite)
        && let Some(word) = wait.word
        && let Some(holder) = lookup.sync_holder(word)
    {
        // A manhole::sync lock: std's inside, and who took it recorded beside.
        wait.holder = Some(holder);
    }
    if matches!(wait.kind, Kind::Park | Kind::Receive | Kind::Send | Kind::Condvar) {
        // Their word is the waiter's own (a parker), or says nothing about a holder.
        wait.holder = None;
        if wait.kind != Kind::Condvar {
            wait.word = None;
            wait.object = None;
        }
    }
    if facts.idle.is_some() && !wait.is_lock() {
        wait.idle = facts.idle;
    }
    wait
}

fn from_syscall(call: &Syscall, wait: &mut Wait, lookup: &mut Lookup) {
    let Some(number) = call.number else {
        return;
    };
    let arg = |i: usize| call.args[i];
    let fd_arg = |lookup: &mut Lookup| {
        arg(0)
            .and_then(|a| i32::try_from(a).ok())
            .map(|fd| (fd, lookup.fd(fd)))
    };
    match number {
        libc::SYS_futex => {
            let word = arg(0);
            wait.word = word;
            wait.timed = arg(3).map(|t| t != 0);
            let cmd = arg(1).map(futex_cmd);
            if matches!(cmd, Some(FUTEX_LOCK_PI | FUTEX_LOCK_PI2)) {
                wait.kind = Kind::PiMutex;
                // The kernel keeps the owner's tid in the word of a PI futex.
                if let Some(word) = word
                    && let Some(value) = peek::<4>(lookup, word).map(u32::from_ne_bytes)
                    && value & FUTEX_TID_MASK != 0
                {
                    wait.holder = Some(Holder {
                        tid: (value & FUTEX_TID_MASK) as i32,
                        source: "the PI futex word, kept by the kernel",
                        since: None,
                        at: None,
                        readers: None,
                    });
                }
            } else {
                wait.kind = Kind::Futex;
            }
            if let Some(word) = word {
                wait.object = lookup.object(word);
            }
        }
        libc::SYS_read | libc::SYS_readv | libc::SYS_pread64 | libc::SYS_preadv | libc::SYS_preadv2 => {
            wait.kind = Kind::Io(Io::Read);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_write | libc::SYS_writev | libc::SYS_pwrite64 | libc::SYS_pwritev | libc::SYS_pwritev2 => {
            wait.kind = Kind::Io(Io::Write);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_accept | libc::SYS_accept4 => {
            wait.kind = Kind::Io(Io::Accept);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_connect => {
            wait.kind = Kind::Io(Io::Connect);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_recvfrom | libc::SYS_recvmsg | libc::SYS_recvmmsg => {
            wait.kind = Kind::Io(Io::Receive);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_sendto | libc::SYS_sendmsg | libc::SYS_sendmmsg => {
            wait.kind = Kind::Io(Io::Send);
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => {
            wait.kind = Kind::Epoll;
            wait.fd = fd_arg(lookup);
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_epoll_wait => {
            wait.kind = Kind::Epoll;
            wait.fd = fd_arg(lookup);
        }
        libc::SYS_ppoll | libc::SYS_pselect6 => {
            wait.kind = Kind::Poll;
            if number == libc::SYS_ppoll {
                wait.fds = arg(1);
            }
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll | libc::SYS_select => {
            wait.kind = Kind::Poll;
            if number == libc::SYS_poll {
                wait.fds = arg(1);
            }
        }
        libc::SYS_nanosleep => {
            wait.kind = Kind::Sleep;
            wait.sleep = arg(0).and_then(|a| timespec_at(lookup, a));
        }
        libc::SYS_clock_nanosleep => {
            wait.kind = Kind::Sleep;
            // With TIMER_ABSTIME the request is a time on the clock, not a length.
            if arg(1) == Some(0) {
                wait.sleep = arg(2).and_then(|a| timespec_at(lookup, a));
            }
        }
        libc::SYS_rt_sigsuspend | libc::SYS_rt_sigtimedwait => wait.kind = Kind::Signal,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_pause => wait.kind = Kind::Signal,
        libc::SYS_wait4 | libc::SYS_waitid => wait.kind = Kind::Child,
        other => {
            wait.kind = Kind::Syscall;
            wait.call = Some(super::syscall_name(other));
        }
    }
}

/// What the last dump saw of a thread's wait, to tell in the next whether it is the same wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// The thread; 0 for an empty slot.
    tid: i32,
    /// A hash of the system call, its arguments and where it was made.
    identity: u64,
    /// The thread's count of blocking switches the next dump sees if nothing but this dump's
    /// signal woke it.
    switches_next: u64,
    /// Its CPU time, ns.
    cpu: u64,
    /// Monotonic ns: when it was in this wait at the latest.
    since: u64,
}

const EMPTY: Seen = Seen {
    tid: 0,
    identity: 0,
    switches_next: 0,
    cpu: 0,
    since: 0,
};

/// How many threads' waits are remembered (40 bytes each; past this, a thread's wait is
/// measured afresh by each dump, still a lower bound).
const SEEN_SLOTS: usize = 4096;

/// The waits the last dump saw: a fixed table in the program's static memory, open
/// addressing by tid. Not on the heap: it lives between sessions, and a live allocation made
/// on a session thread kept that thread's whole malloc arena (about 5 MiB here) from being
/// given back when the session ended.
struct SeenTable {
    slots: [Seen; SEEN_SLOTS],
}

impl SeenTable {
    fn slot(tid: i32, probe: usize) -> usize {
        (tid as u32 as usize)
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(probe)
            % SEEN_SLOTS
    }

    fn get(&self, tid: i32) -> Option<&Seen> {
        (0..SEEN_SLOTS)
            .map(|probe| &self.slots[Self::slot(tid, probe)])
            .take_while(|s| s.tid != 0)
            .find(|s| s.tid == tid)
    }

    fn insert(&mut self, seen: Seen) {
        for probe in 0..SEEN_SLOTS {
            let slot = &mut self.slots[Self::slot(seen.tid, probe)];
            if slot.tid == 0 || slot.tid == seen.tid {
                *slot = seen;
                return;
            }
        }
    }

    fn clear(&mut self) {
        for slot in self.slots.iter_mut().filter(|s| s.tid != 0) {
            *slot = EMPTY;
        }
    }
}

/// Behind a lock a forked child takes over.
static SEEN: crate::forklock::ForkLock<SeenTable> = crate::forklock::ForkLock::new(SeenTable {
    slots: [EMPTY; SEEN_SLOTS],
});

/// More CPU than this between two dumps (besides the handler) means the thread did work.
const HANDLER_CPU: Duration = Duration::from_millis(1);

/// How long each waiting thread has been in its wait, at least: since the first dump that
/// found it there, when every dump since found it in the same system call with the same
/// arguments at the same place, having blocked only once per stack signal (the handler's
/// return to the wait; being preempted meanwhile is not counted), with no more CPU time than
/// the handler takes; or since it last ran, where the dump measured that
/// (`not_run_for`); whichever is longer. A dump's own signal wakes every thread, so without
/// the first rule each dump would restart every wait's clock.
///
/// `switches` is each thread's count before the signal; `span` when the capture started and
/// ended (monotonic ns). Times are taken so that every one stays a lower bound: a wait first
/// seen counts from the capture's end, and every wait is measured at its start.
pub(crate) fn since(threads: &mut [ThreadReport], switches: &HashMap<i32, Option<u64>>, span: (u64, u64)) {
    let (now, ended) = span;
    // No wait is longer than the process has lived: a last line of defence against a bad
    // reading of the scheduler's clocks.
    let age = crate::procfs::process_stat().uptime;
    let cap = |d: Duration| age.map_or(d, |age| d.min(age));
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let mut seen = SEEN.lock();
    let mut next: Vec<Seen> = Vec::with_capacity(threads.len().min(SEEN_SLOTS));
    for thread in threads.iter_mut() {
        if thread.wait.kind == Kind::Running {
            // Seen, so that the next dump does not read when it last ran (it was running):
            // a thread found waiting then counts from then.
            if next.len() < SEEN_SLOTS && thread.tid != 0 {
                next.push(Seen {
                    tid: thread.tid,
                    ..EMPTY
                });
            }
            continue;
        }
        let measured = thread.record.not_run_for.map(|d| now.saturating_sub(nanos(d)));
        let identity = identity_of(thread);
        let (Some(identity), Some(Some(count)), Some(cpu)) =
            (identity, switches.get(&thread.tid), thread.record.cpu)
        else {
            thread.wait.waited = measured
                .map(|at| cap(Duration::from_nanos(now - at)))
                .filter(|d| !d.is_zero());
            continue;
        };
        let cpu = nanos(cpu);
        let carried = seen.get(thread.tid).filter(|before| {
            before.identity == identity
                && before.switches_next == *count
                && cpu.saturating_sub(before.cpu) < nanos(HANDLER_CPU)
        });
        let since = match (carried.map(|b| b.since), measured) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => ended,
        };
        let waited = cap(Duration::from_nanos(now.saturating_sub(since)));
        thread.wait.waited = (!waited.is_zero()).then_some(waited);
        // This dump's signal makes it block once more, if the handler ran.
        let signalled = u64::from(thread.record.pause.is_some());
        if next.len() < SEEN_SLOTS && thread.tid != 0 {
            next.push(Seen {
                tid: thread.tid,
                identity,
                switches_next: count + signalled,
                cpu,
                since,
            });
        }
    }
    seen.clear();
    for entry in next {
        seen.insert(entry);
    }
}

/// The threads the last dump found waiting (whose wait the next dump can carry on).
pub(crate) fn seen_tids() -> std::collections::HashSet<i32> {
    SEEN.lock()
        .slots
        .iter()
        .filter(|s| s.tid != 0)
        .map(|s| s.tid)
        .collect()
}

/// The system call a thread waits in, with its arguments and the address just after the
/// instruction (the handler sees a restarting call's pc on the instruction itself).
fn identity_of(thread: &ThreadReport) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let call = thread.record.syscall?;
    let regs = thread.record.regs?;
    let pc = match call.phase {
        Phase::Restarting => regs.pc.wrapping_add(super::record::INSN),
        Phase::Waiting | Phase::Interrupted { .. } => regs.pc,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (call.number?, call.args, pc).hash(&mut hasher);
    Some(hasher.finish())
}

/// How many lock lines a summary lists before it says how many more there are.
const SUMMARY_LOCKS: usize = 12;

/// One lock as the summary and `locks` see it: every thread waiting on it.
pub(crate) struct LockGroup<'a> {
    pub(crate) waiters: Vec<&'a ThreadReport>,
}

impl LockGroup<'_> {
    fn first(&self) -> &Wait {
        &self.waiters[0].wait
    }

    /// `Mutex POOL`, `RwLock TABLE (1 to write, 2 to read)`.
    pub(crate) fn title(&self) -> String {
        let wait = self.first();
        let (reads, writes) = self.waiters.iter().fold((0, 0), |(r, w), t| match t.wait.kind {
            Kind::RwLockRead | Kind::ParkingLotRwLockRead => (r + 1, w),
            Kind::RwLockWrite | Kind::ParkingLotRwLockWrite => (r, w + 1),
            _ => (r, w),
        });
        let primitive = match wait.kind {
            Kind::RwLockRead | Kind::RwLockWrite => "RwLock",
            Kind::ParkingLotRwLockRead | Kind::ParkingLotRwLockWrite => "parking_lot RwLock",
            _ => wait.primitive(),
        };
        let mut title = format!("{primitive} {}", wait.lock_name());
        if reads + writes > 0 {
            title.push_str(&format!(" ({writes} to write, {reads} to read)"));
        }
        title
    }
}

/// Threads waiting on locks, one group per lock (the word, else the name), most waiters first.
pub(crate) fn lock_groups(threads: &[ThreadReport]) -> Vec<LockGroup<'_>> {
    let mut groups: Vec<LockGroup<'_>> = Vec::new();
    let mut index: HashMap<(Option<usize>, Option<&str>), usize> = HashMap::new();
    for thread in threads.iter().filter(|t| t.wait.is_lock()) {
        // An RwLock's readers and writers wait on words 4 bytes apart: one lock.
        let word = thread.wait.word.map(|w| match thread.wait.kind {
            Kind::RwLockWrite => w.wrapping_sub(4),
            _ => w,
        });
        // By the word: two locks in one exposed static share its name, not their waiters.
        let key = match (word, &thread.wait.object) {
            (Some(word), _) => (Some(word), None),
            (None, object) => (None, object.as_deref()),
        };
        match index.get(&key) {
            Some(&g) => groups[g].waiters.push(thread),
            None => {
                index.insert(key, groups.len());
                groups.push(LockGroup {
                    waiters: vec![thread],
                });
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.waiters.len()));
    groups
}

/// Cycles of threads each waiting for the next, through owners the kernel or a library
/// recorded (certain holders only: never std's locks, never "the last reader"). Each thread
/// waits on one thing, so each has at most one edge; a cycle is found by following them.
pub(crate) fn cycles(threads: &[ThreadReport]) -> Vec<Vec<i32>> {
    let by_tid: HashMap<i32, &ThreadReport> = threads.iter().map(|t| (t.tid, t)).collect();
    let edge = |t: &ThreadReport| -> Option<i32> {
        let holder = t.wait.holder.as_ref().filter(|h| h.certain())?;
        (t.wait.is_lock() || t.wait.kind == Kind::Join).then_some(holder.tid)
    };
    let mut found: Vec<Vec<i32>> = Vec::new();
    let mut done: std::collections::HashSet<i32> = std::collections::HashSet::new();
    for start in threads {
        if done.contains(&start.tid) {
            continue;
        }
        let mut path = vec![start.tid];
        let mut at = start;
        while let Some(next) = edge(at) {
            if let Some(pos) = path.iter().position(|t| *t == next) {
                let cycle = path[pos..].to_vec();
                if !cycle.iter().any(|t| done.contains(t)) {
                    found.push(cycle);
                }
                break;
            }
            if done.contains(&next) {
                break;
            }
            let Some(next_thread) = by_tid.get(&next) else {
                break;
            };
            path.push(next);
            at = next_thread;
        }
        done.extend(path);
    }
    found
}

/// The summary at the top of a dump: one line of counts, the locks waited on, and what to look
/// at first. At most about 20 lines whatever the number of threads.
pub(crate) fn summary(threads: &[ThreadReport], names: &dyn Fn(i32) -> Option<String>, out: &mut String) {
    use std::fmt::Write as _;
    let (mut running, mut idle, mut locked, mut io, mut event, mut sleeping, mut other) =
        (0, 0, 0, 0, 0, 0, 0);
    for thread in threads {
        let wait = &thread.wait;
        match wait.kind {
            _ if wait.idle.is_some() => idle += 1,
            Kind::Running => running += 1,
            _ if wait.is_lock() => locked += 1,
            Kind::Io(_) | Kind::Poll | Kind::Epoll => io += 1,
            Kind::Condvar
            | Kind::ParkingLotCondvar
            | Kind::PthreadCondvar
            | Kind::Receive
            | Kind::Send
            | Kind::Join
            | Kind::Park
            | Kind::Futex
            | Kind::Signal
            | Kind::Child => event += 1,
            Kind::Sleep => sleeping += 1,
            _ => other += 1,
        }
    }
    let groups = lock_groups(threads);
    let mut parts = vec![format!("{running} running")];
    let mut add = |n: usize, what: String| {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    };
    add(idle, "idle".to_owned());
    add(
        locked,
        format!(
            "waiting on {} lock{}",
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        ),
    );
    add(io, "in I/O".to_owned());
    add(
        event,
        "waiting for an event (condvar, channel, join, park)".to_owned(),
    );
    add(sleeping, "sleeping".to_owned());
    add(other, "other".to_owned());
    let _ = writeln!(out, "Summary: {} threads: {}.", threads.len(), parts.join(", "));
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "  Locks waited on, most waiters first:");
    for group in groups.iter().take(SUMMARY_LOCKS) {
        let mut line = format!("  {:>5}  {}", group.waiters.len(), group.title());
        if let Some(holder) = group.waiters.iter().find_map(|t| t.wait.holder.as_ref()) {
            line.push_str(&holder.describe(&|tid| who(tid, names)));
        }
        if let Some(longest) = group.waiters.iter().filter_map(|t| t.wait.waited).max() {
            line.push_str(&format!("; longest wait {}", crate::text::wait_duration(longest)));
        }
        let _ = writeln!(out, "{line}");
    }
    if groups.len() > SUMMARY_LOCKS {
        let rest: usize = groups[SUMMARY_LOCKS..].iter().map(|g| g.waiters.len()).sum();
        let _ = writeln!(
            out,
            "  {:>5}  on {} more locks (\"locks\" lists them all)",
            rest,
            groups.len() - SUMMARY_LOCKS
        );
    }
    // What to look at first: a holder that is itself stuck, else the busiest lock.
    let by_tid: HashMap<i32, &ThreadReport> = threads.iter().map(|t| (t.tid, t)).collect();
    let stuck_holder = groups.iter().find_map(|g| {
        let holder = g
            .waiters
            .iter()
            .find_map(|t| t.wait.holder.as_ref())
            .filter(|h| h.certain())?;
        let held_by = by_tid.get(&holder.tid)?;
        (held_by.wait.kind != Kind::Running).then(|| {
            format!(
                "{} waits on {}, held by {}, which is {}",
                if g.waiters.len() == 1 {
                    format!("thread {}", who(g.waiters[0].tid, names))
                } else {
                    format!("{} threads", g.waiters.len())
                },
                g.title(),
                who(holder.tid, names),
                held_by.wait.describe(held_by.state, names, None)
            )
        })
    });
    let deadlock = cycles(threads).into_iter().next().map(|cycle| {
        format!(
            "a cycle of waits through recorded holders: {} each wait for the next (\"doctor\" looks twice to confirm a deadlock)",
            cycle
                .iter()
                .map(|t| who(*t, names))
                .collect::<Vec<_>>()
                .join(" -> ")
        )
    });
    let look = deadlock.or(stuck_holder).or_else(|| {
        let busiest = groups.first().filter(|g| g.waiters.len() > 1)?;
        Some(format!(
            "{} threads wait on {}; \"locks\" shows where",
            busiest.waiters.len(),
            busiest.title()
        ))
    });
    if let Some(look) = look {
        let then = if look.contains("\"doctor\"") {
            ""
        } else {
            " \"doctor\" draws conclusions."
        };
        let _ = writeln!(out, "  Look first: {look}.{then}");
    }
}

fn who(tid: i32, names: &dyn Fn(i32) -> Option<String>) -> String {
    match names(tid) {
        Some(name) => format!("{tid} \"{}\"", crate::text::escape_controls(&name)),
        None => tid.to_string(),
    }
}

/// The `struct timespec` at `address`, as a length.
fn timespec_at(lookup: &Lookup, address: usize) -> Option<Duration> {
    let bytes = peek::<16>(lookup, address)?;
    let (secs, nanos) = bytes.split_at(8);
    let secs = u64::try_from(i64::from_ne_bytes(secs.try_into().ok()?)).ok()?;
    let nanos = u32::try_from(i64::from_ne_bytes(nanos.try_into().ok()?)).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn at(name: &str, file: &str) -> Symbol {
        Symbol {
            name: Some(name.to_owned()),
            file: Some(PathBuf::from(file)),
            line: Some(1),
            column: None,
        }
    }

    fn kind_of(frames: &[Symbol]) -> Option<Kind> {
        frame_facts(&frames.iter().collect::<Vec<_>>()).kind
    }

    #[test]
    fn std_primitives_are_told_from_their_frames() {
        let lib = "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src";
        let mutex = [
            at(
                "std::sys::pal::unix::futex::futex_wait",
                &format!("{lib}/sys/pal/unix/futex.rs"),
            ),
            at(
                "std::sys::sync::mutex::futex::Mutex::lock_contended",
                &format!("{lib}/sys/sync/mutex/futex.rs"),
            ),
            at("app::work", "src/main.rs"),
        ];
        assert_eq!(kind_of(&mutex), Some(Kind::Mutex));
        let read = [at("read_contended", &format!("{lib}/sys/sync/rwlock/futex.rs"))];
        assert_eq!(kind_of(&read), Some(Kind::RwLockRead));
        let write = [at("write_contended", &format!("{lib}/sys/sync/rwlock/futex.rs"))];
        assert_eq!(kind_of(&write), Some(Kind::RwLockWrite));
        // A channel parks: the park is generic, the receive is what the program did.
        let recv = [
            at(
                "std::sys::sync::thread_parking::futex::Parker::park",
                &format!("{lib}/sys/sync/thread_parking/futex.rs"),
            ),
            at(
                "std::sync::mpmc::context::Context::wait_until",
                &format!("{lib}/sync/mpmc/context.rs"),
            ),
            at(
                "std::sync::mpmc::list::Channel<T>::recv",
                &format!("{lib}/sync/mpmc/list.rs"),
            ),
            at("app::consume", "src/main.rs"),
        ];
        assert_eq!(kind_of(&recv), Some(Kind::Receive));
        let park = [
            at(
                "std::sys::sync::thread_parking::futex::Parker::park",
                &format!("{lib}/sys/sync/thread_parking/futex.rs"),
            ),
            at("std::thread::park", &format!("{lib}/thread/mod.rs")),
            at("app::wait", "src/main.rs"),
        ];
        assert_eq!(kind_of(&park), Some(Kind::Park));
        let join = [
            at("__futex_abstimed_wait_common", "./nptl/futex-internal.c"),
            at("__pthread_clockjoin_ex", "./nptl/pthread_join_common.c"),
            at("std::thread::JoinInner<T>::join", &format!("{lib}/thread/mod.rs")),
        ];
        assert_eq!(kind_of(&join), Some(Kind::Join));
        let glibc = [
            at("__lll_lock_wait", "./nptl/lowlevellock.c"),
            at("pthread_mutex_lock", ""),
        ];
        assert_eq!(kind_of(&glibc), Some(Kind::PthreadMutex));
        let app_only = [at("app::compute", "src/main.rs")];
        assert_eq!(kind_of(&app_only), None);
    }

    #[test]
    fn the_header_says_what_holds_and_how_long() {
        let mut wait = Wait::of(Kind::Mutex);
        wait.object = Some("DB_POOL".to_owned());
        wait.holder = Some(Holder {
            tid: 4242,
            source: "test",
            since: None,
            at: None,
            readers: None,
        });
        let names = |tid: i32| (tid == 4242).then(|| "flusher".to_owned());
        let long = Some((Duration::from_millis(12_400), Duration::from_millis(12_400)));
        assert_eq!(
            wait.describe(Some('S'), &names, long),
            "waiting 12.4 s on Mutex DB_POOL, held by 4242 \"flusher\""
        );
        wait.holder = None;
        wait.object = None;
        wait.word = Some(0x55aa_0010);
        assert_eq!(
            wait.describe(Some('S'), &names, None),
            "waiting on Mutex 0x55aa0010"
        );
        // A name from the program is escaped for the terminal: the lock's, the holder's
        // thread's, the path where it took the lock.
        wait.object = Some("EVIL\x1b[2J".to_owned());
        assert!(!wait.describe(Some('S'), &names, None).contains('\x1b'));
        wait.holder = Some(Holder {
            tid: 7,
            source: "test",
            since: None,
            at: Some("src/\x1b]0;pwned\x07.rs:1".to_owned()),
            readers: None,
        });
        let evil_names = |_: i32| Some("w\x1b[31m".to_owned());
        let text = wait.describe(Some('S'), &evil_names, None);
        assert!(
            !text.contains('\x1b') && !text.contains('\x07') && text.contains("held by 7 \"w"),
            "{text}"
        );
        let mut read = Wait::of(Kind::Io(Io::Read));
        read.fd = Some((3, Some("pipe:[161869]".to_owned())));
        assert_eq!(
            read.describe(Some('S'), &names, None),
            "reading fd 3 (pipe:[161869])"
        );
        assert_eq!(
            Wait::of(Kind::Unknown).describe(Some('S'), &names, None),
            "sleeping"
        );
        assert_eq!(
            Wait::of(Kind::Running).describe(Some('R'), &names, None),
            "running"
        );
        assert_eq!(
            Wait::of(Kind::Mutex).describe(Some('T'), &names, None),
            "stopped; waiting on Mutex (unknown)"
        );
    }

    #[test]
    fn readers_of_one_pipe_through_their_own_descriptors_are_one_group() {
        let names = |_: i32| None;
        let reader = |fd: i32| {
            let mut wait = Wait::of(Kind::Io(Io::Read));
            wait.fd = Some((fd, Some("pipe:[77]".to_owned())));
            wait
        };
        let (a, b, c, d, e) = (reader(11), reader(12), reader(13), reader(14), reader(12));
        assert_eq!(a.group_key(Some('S'), &names), b.group_key(Some('S'), &names));
        let mut other_pipe = reader(11);
        other_pipe.fd = Some((11, Some("pipe:[78]".to_owned())));
        assert_ne!(
            a.group_key(Some('S'), &names),
            other_pipe.group_key(Some('S'), &names)
        );
        assert_eq!(
            Wait::describe_group(&[&a, &b, &e], Some('S'), &names, None),
            "reading fd 11, 12 (pipe:[77])"
        );
        assert_eq!(
            Wait::describe_group(&[&a, &b, &c, &d], Some('S'), &names, None),
            "reading fd 11, 12, 13 and 1 more (pipe:[77])"
        );
        assert_eq!(
            Wait::describe_group(&[&b, &e], Some('S'), &names, None),
            "reading fd 12 (pipe:[77])"
        );
    }

    #[test]
    fn the_table_of_seen_waits_keeps_every_thread_apart_and_clears() {
        let mut table = Box::new(SeenTable {
            slots: [EMPTY; SEEN_SLOTS],
        });
        let entry = |tid: i32| Seen {
            tid,
            identity: tid as u64 * 7,
            ..EMPTY
        };
        // Tids that land on the same slot first, and more threads than slots.
        let tids: Vec<i32> = (1..=SEEN_SLOTS as i32 + 10).collect();
        for tid in &tids {
            table.insert(entry(*tid));
        }
        for tid in tids.iter().take(SEEN_SLOTS) {
            assert_eq!(
                table.get(*tid).map(|s| s.identity),
                Some(*tid as u64 * 7),
                "tid {tid}"
            );
        }
        assert_eq!(
            table.get(SEEN_SLOTS as i32 + 5),
            None,
            "past the table: not remembered"
        );
        table.insert(Seen { since: 9, ..entry(3) });
        assert_eq!(table.get(3).map(|s| s.since), Some(9), "an update replaces");
        table.clear();
        assert!(tids.iter().all(|t| table.get(*t).is_none()));
    }

    #[test]
    fn a_pi_futex_names_its_owner_from_the_word() {
        // A word as the kernel keeps it for a PI mutex: FUTEX_WAITERS | owner tid.
        let word: u32 = 0x8000_7aa8;
        let call = Syscall {
            number: Some(libc::SYS_futex),
            args: [
                Some(std::ptr::from_ref(&word) as usize),
                Some(0x86),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
            ],
            phase: Phase::Restarting,
            from: super::super::record::Source::Handler,
        };
        let mut wait = Wait::of(Kind::Unknown);
        let mut lookup = Lookup {
            exposed: Vec::new(),
            fds: HashMap::new(),
            objects: HashMap::new(),
            stacks: HashMap::new(),
            sync_holders: HashMap::new(),
            peek_ok: super::super::can_read_memory(),
        };
        from_syscall(&call, &mut wait, &mut lookup);
        assert_eq!(wait.kind, Kind::PiMutex);
        assert_eq!(wait.timed, Some(false));
        // The owner read from the word needs the kernel reads an installed manhole sets up
        // (none here): tests/waits.rs pins it on a real PI mutex.
    }
}
