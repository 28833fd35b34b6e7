//! The stack dump every session starts with, and [`dump_stacktraces`](crate::dump_stacktraces).
//!
//! Every thread is captured in-process by signal ([`sampler`], Linux): each thread copies its
//! registers and live stack in a few microseconds and goes on; the stacks are walked afterwards
//! on the dumper's thread ([`unwind`]), over the copies. Threads that cannot answer (they block
//! the signal, are stopped, or are in uninterruptible sleep) or do not answer within the
//! deadline are reported from `/proc`: their state, the system call they wait in, the kernel
//! function, and the symbolized user-space address of that call. Threads with identical stacks
//! are shown once, with all their ids and names, and the runtime frames every thread has
//! (thread start, `lang_start`) are folded unless the full view is asked for.
//!
//! Cost matters at a thousand threads: each thread's `/proc` status is read once (name, state
//! and blocked signals), and frames are shared, symbolized once per address.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::json::Json;
use crate::procfs::{self, SyscallState, TaskStatus};
use crate::sys;
use crate::text;

#[cfg(target_os = "linux")]
pub(crate) mod names;
pub(crate) mod record;
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod sampler;
mod symbolize;
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod unwind;
pub(crate) mod waits;

pub(crate) use record::ThreadRecord;
pub(crate) use record::Want;
use record::{Before, ClockOffsets};
use symbolize::{Address, Symbol};

/// How long a dump waits for threads to answer before reporting them from /proc.
pub(crate) const DEADLINE: Duration = Duration::from_millis(200);

/// The symbols at one address (several where code was inlined), shared by every thread whose
/// stack passes there.
pub(crate) type Frame = Arc<[Symbol]>;

/// What is known of one thread's stack.
#[derive(Clone, Debug)]
pub(crate) enum Stack {
    /// Unwound: every frame, innermost first, and why the walk stopped early if it did.
    Frames(Vec<Frame>, Option<String>),
    /// Not unwound (with why); what `/proc` shows.
    FromProc {
        why: String,
        syscall: Option<SyscallState>,
        wchan: Option<String>,
        top: Vec<Frame>,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ThreadReport {
    pub(crate) tid: i32,
    pub(crate) name: String,
    pub(crate) state: Option<char>,
    pub(crate) stack: Stack,
    /// How long the thread spent copying its stack, when it did (read by the benchmark).
    pub(crate) pause: Option<Duration>,
    /// Its registers, system call and CPU time (not rendered).
    pub(crate) record: ThreadRecord,
    /// Why it is where it is, from its frames and record.
    pub(crate) wait: waits::Wait,
}

/// A dump of every thread of the process.
#[derive(Clone, Debug)]
pub(crate) struct Dump {
    pub(crate) pid: u32,
    pub(crate) dumping_tid: i32,
    pub(crate) threads: Vec<ThreadReport>,
    /// What limited this dump, in sentences shown under its header.
    pub(crate) notes: Vec<String>,
    /// How long telling why each thread waits took (read by the benchmark).
    pub(crate) analysis: Duration,
}

/// Raw material of one thread before symbolization.
enum Raw {
    /// The walked frames, and why the walk stopped early if it did.
    Frames(Vec<Address>, Option<String>),
    FromProc(String),
    /// It exited during the dump: left out.
    Gone,
}

/// Gives back the memory that dumps keep for the next one (symbols, unwind tables): called
/// when the last session ends.
pub(crate) fn release_caches() {
    symbolize::release();
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        unwind::release();
        sampler::release();
    }
}

/// Sessions open now: while any is, caches are kept (the last one's end releases them).
static IN_USE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// When a dump outside any session last ran (milliseconds on the monotonic clock).
static LAST_LONE_DUMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Whether a `manhole-release` thread is waiting to release the caches.
static RELEASE_PENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// How long caches outlive a dump that no session asked for.
const LONE_DUMP_GRACE: Duration = Duration::from_secs(10);

/// Marks a session open for as long as the value lives.
pub(crate) struct InUse(());

impl InUse {
    pub(crate) fn new() -> InUse {
        IN_USE.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InUse(())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        IN_USE.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1
}

/// After a dump the program asked for itself ([`crate::dump_stacktraces`]): releases the caches
/// [`LONE_DUMP_GRACE`] after the last such dump, unless a session is open then. One thread
/// waits at a time and exits afterwards, so nothing wakes up while manhole is idle.
pub(crate) fn release_later() {
    use std::sync::atomic::Ordering;
    LAST_LONE_DUMP.store(monotonic_ms(), Ordering::Release);
    if RELEASE_PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    let mask = sys::SignalSet::all_but_faults(stack_signal());
    let spawned = crate::spawn::room_for_a_thread().and_then(|()| {
        sys::with_signals_blocked(&mask, || {
            std::thread::Builder::new()
                .name("manhole-release".into())
                .spawn(|| {
                    loop {
                        let last = LAST_LONE_DUMP.load(Ordering::Acquire);
                        let due = last + LONE_DUMP_GRACE.as_millis() as u64;
                        let now = monotonic_ms();
                        if now < due {
                            std::thread::sleep(Duration::from_millis(due - now));
                            continue;
                        }
                        // Let a dump that starts from now on start a new wait.
                        RELEASE_PENDING.store(false, Ordering::Release);
                        if LAST_LONE_DUMP.load(Ordering::Acquire) != last {
                            if RELEASE_PENDING.swap(true, Ordering::AcqRel) {
                                return;
                            }
                            continue;
                        }
                        if IN_USE.load(Ordering::Acquire) == 0 {
                            release_caches();
                        }
                        return;
                    }
                })
        })
    });
    if spawned.is_err() {
        RELEASE_PENDING.store(false, Ordering::Release);
    }
}

/// Makes manhole's dump state safe to use in a child forked at any moment (async-signal-safe).
pub(crate) fn after_fork_in_child() {
    symbolize::after_fork_in_child();
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    sampler::after_fork_in_child();
    // The parent's sessions and waiting thread are not this process's.
    IN_USE.store(0, std::sync::atomic::Ordering::Relaxed);
    RELEASE_PENDING.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Sets up in-process capture (the signal handler), on `requested` or a free real-time signal,
/// and returns the signal in use; `None` where the platform has no in-process capture.
pub(crate) fn prepare(requested: Option<crate::Signal>) -> Result<Option<crate::Signal>, crate::Error> {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::init(requested).map(Some)
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        match requested {
            Some(_) => Err(crate::Error::NotSupported {
                option: "stack_signal",
                detail: "in-process stack capture is available on Linux x86_64 and aarch64 only",
            }),
            None => Ok(None),
        }
    }
}

/// The stack signal in use, if in-process capture is set up.
pub(crate) fn stack_signal() -> Option<i32> {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::signal()
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        None
    }
}

/// Every thread's raw capture, before symbolization.
pub(crate) struct RawDump {
    pid: u32,
    me: i32,
    tids: Vec<i32>,
    statuses: HashMap<i32, TaskStatus>,
    raws: HashMap<i32, (Raw, ThreadRecord)>,
    notes: Vec<String>,
    /// Monotonic ns when the capture started and ended.
    span: (u64, u64),
}

impl RawDump {
    /// Every thread's record, by tid.
    pub(crate) fn records(&self) -> impl Iterator<Item = (i32, &ThreadRecord)> {
        self.raws.iter().map(|(tid, (_, record))| (*tid, record))
    }
}

/// Captures every thread of the process. The calling thread's own stack starts at its caller.
#[inline(never)]
pub(crate) fn capture() -> Dump {
    symbolize_dump(capture_raw())
}

/// [`capture`], reading what `want` asks for besides (how long each thread has not run).
#[inline(never)]
pub(crate) fn capture_with(want: Want) -> Dump {
    symbolize_dump(capture_raw_with(want))
}

/// The capture proper: every thread records its return addresses.
#[inline(never)]
pub(crate) fn capture_raw() -> RawDump {
    capture_raw_with(Want::default())
}

/// [`capture_raw`], reading what `want` asks for besides.
#[inline(never)]
pub(crate) fn capture_raw_with(want: Want) -> RawDump {
    let pid = std::process::id();
    let me = sys::gettid();
    let started = clock_ns();
    let (own, own_cut, own_record) = own_stack(me);
    let mut notes = Vec::new();
    if let Some(why) = procfs::blind() {
        notes.push(format!("other threads cannot be listed: {why}"));
    }
    let mut tids = procfs::task_ids();
    if !tids.contains(&me) {
        tids.push(me);
    }
    let others: Vec<i32> = tids.iter().copied().filter(|tid| *tid != me).collect();
    // Each thread's status (name, state, blocked signals) is read right before it is asked,
    // so the state is the one before the signal woke it, and reading overlaps unwinding.
    let mut statuses: HashMap<i32, TaskStatus> = HashMap::with_capacity(tids.len());
    if let Some(status) = procfs::task_status(me) {
        statuses.insert(me, status);
    }
    let mut raws: HashMap<i32, (Raw, ThreadRecord)> =
        capture_others(&others, &mut statuses, &mut notes, want)
            .into_iter()
            .collect();
    raws.insert(me, (Raw::Frames(own, own_cut), own_record));
    tids.sort_unstable();
    RawDump {
        pid,
        me,
        tids,
        statuses,
        raws,
        notes,
        span: (started, clock_ns()),
    }
}

/// The monotonic clock in ns, as the records' times are.
fn clock_ns() -> u64 {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::monotonic_ns()
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Names, states and symbols for a raw capture.
pub(crate) fn symbolize_dump(raw: RawDump) -> Dump {
    let RawDump {
        pid,
        me,
        tids,
        statuses,
        mut raws,
        mut notes,
        span,
    } = raw;
    let addresses: Vec<Address> = raws
        .values()
        .flat_map(|(raw, _)| match raw {
            Raw::Frames(frames, _) => frames.clone(),
            Raw::FromProc(_) | Raw::Gone => Vec::new(),
        })
        .collect();
    let symbols = symbolize::resolve_all_noting(&addresses, &mut notes);
    // Names come from the file at the executable's path: after a deploy replaced it, from
    // another build, so the reader is told.
    if !addresses.is_empty()
        && let Some(why) = crate::procfs::exe_replaced()
    {
        notes.push(format!("{why}: frame names and lines in it may be wrong"));
    }
    let expand = |frames: &[Address]| -> Vec<Frame> {
        frames.iter().filter_map(|a| symbols.get(a).cloned()).collect()
    };
    let mut threads = tids
        .into_iter()
        .filter_map(|tid| {
            let (raw, record) = raws.remove(&tid)?;
            let status = statuses.get(&tid);
            let name = match names::lookup(tid) {
                Some(name) => name,
                None if tid as u32 == pid => "main".to_owned(),
                None => status.map_or_else(|| "?".to_owned(), |s| s.name.clone()),
            };
            let state = if tid == me {
                Some('R')
            } else {
                status.map(|s| s.state)
            };
            let stack = match raw {
                Raw::Frames(frames, cut) => Stack::Frames(expand(&frames), cut),
                Raw::FromProc(why) => from_proc(tid, why),
                Raw::Gone => return None,
            };
            Some(ThreadReport {
                tid,
                name,
                state,
                stack,
                pause: record.pause,
                record,
                wait: waits::Wait::unknown(),
            })
        })
        .collect::<Vec<_>>();
    let analysing = std::time::Instant::now();
    let mut lookup = waits::Lookup::new();
    for thread in &mut threads {
        thread.wait = waits::explain(thread, &mut lookup);
    }
    let switches: HashMap<i32, Option<u64>> = statuses.iter().map(|(tid, s)| (*tid, s.switches)).collect();
    waits::since(&mut threads, &switches, span);
    let analysis = analysing.elapsed();
    Dump {
        pid,
        dumping_tid: me,
        threads,
        notes,
        analysis,
    }
}

/// Why a thread cannot answer the stack signal now, from its status, if it cannot.
#[cfg_attr(
    not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))),
    allow(dead_code, reason = "used with in-process capture only")
)]
fn cannot_answer(status: &TaskStatus, signal: i32) -> Option<&'static str> {
    if status.seccomp == 1 {
        return Some(
            "it runs in strict seccomp mode, where the stack handler's system calls would kill the process",
        );
    }
    match status.state {
        'T' | 't' => return Some("it is stopped"),
        'Z' | 'X' => return Some(GONE),
        'D' => return Some("it is in uninterruptible sleep"),
        _ => {}
    }
    let blocked = (1..=64).contains(&signal) && status.blocked & (1 << (signal - 1)) != 0;
    blocked.then_some(BLOCKS)
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn capture_others(
    tids: &[i32],
    statuses: &mut HashMap<i32, TaskStatus>,
    notes: &mut Vec<String>,
    want: Want,
) -> Vec<(i32, (Raw, ThreadRecord))> {
    let signal = match sampler::signal() {
        Some(signal) => signal,
        None => match sampler::init(None) {
            Ok(signal) => signal.as_raw(),
            Err(e) => {
                let why = format!("no stack capture: {e}");
                notes.push(why.clone());
                return tids
                    .iter()
                    .map(|tid| (*tid, (Raw::FromProc(why.clone()), ThreadRecord::default())))
                    .collect();
            }
        },
    };
    // The program may have taken the signal over since install: then no thread is sent it.
    let taken_over = sampler::handler_in_place().err();
    if let Some(why) = &taken_over {
        notes.push(why.clone());
    }
    let mut out: HashMap<i32, (Raw, ThreadRecord)> = HashMap::with_capacity(tids.len());
    // What was read of each thread before it was signalled.
    let mut befores: HashMap<i32, Before> = HashMap::with_capacity(tids.len());
    let mut ask = Vec::with_capacity(tids.len());
    // Runnable threads that seem to block the signal may only be on their way out of the
    // handler of the previous dump (its mask blocks everything until sigreturn): look again.
    let mut look_again = Vec::new();
    // Threads under a seccomp filter of their own copy without system calls.
    let mut filtered: Vec<i32> = Vec::new();
    sigwaiters_prune(tids);
    // How long each thread has not run: for every thread when asked, else only for threads no
    // dump has seen before (a dump's signal wakes them, so only the first can tell how long
    // they had been waiting; later ones carry that on, see `waits::since`).
    let unseen = (!want.last_ran).then(waits::seen_tids);
    let needs_last_ran = |tid: &i32| unseen.as_ref().is_none_or(|seen| !seen.contains(tid));
    let offsets = tids.iter().any(needs_last_ran).then(sampler::task_clock_offsets);
    for (tid, read) in read_statuses(tids, signal, offsets.as_ref(), &needs_last_ran) {
        let Some((status, before)) = read else {
            out.insert(tid, (Raw::Gone, ThreadRecord::default()));
            continue;
        };
        let why = match &taken_over {
            Some(_) => Some("the stack signal is not manhole's any more"),
            None => cannot_answer(&status, signal),
        };
        match why {
            Some(why) => {
                if why == BLOCKS && status.state == 'R' {
                    look_again.push(tid);
                }
                out.insert(
                    tid,
                    (
                        Raw::FromProc(format!("not captured: {why}")),
                        ThreadRecord::from_before(&before),
                    ),
                );
            }
            None => {
                if status.seccomp == 2 {
                    filtered.push(tid);
                }
                ask.push(tid);
            }
        }
        statuses.insert(tid, status);
        befores.insert(tid, before);
    }
    filtered.sort_unstable();
    let mut code = sampler::CodeReader::new();
    let mut record = |tid: i32, outcome, befores: &HashMap<i32, Before>| {
        let before = befores.get(&tid).copied().unwrap_or_default();
        (tid, raw_of(outcome, &before, &mut code))
    };
    for (tid, outcome) in sampler::capture(&ask, &filtered, DEADLINE, unwind::walk) {
        let (tid, answer) = record(tid, outcome, &befores);
        out.insert(tid, answer);
    }
    for attempt in 0..4 {
        if look_again.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_micros(250 << attempt));
        let (mut now_free, mut still) = (Vec::new(), Vec::new());
        for tid in look_again {
            match signalable(tid, signal, offsets.as_ref()) {
                Some((status, before)) if cannot_answer(&status, signal).is_none() => {
                    befores.insert(tid, before);
                    now_free.push(tid);
                }
                _ => still.push(tid),
            }
        }
        look_again = still;
        for (tid, outcome) in sampler::capture(&now_free, &filtered, DEADLINE, unwind::walk) {
            let (tid, answer) = record(tid, outcome, &befores);
            out.insert(tid, answer);
        }
    }
    out.into_iter().collect()
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn raw_of(
    outcome: sampler::Outcome<(Vec<Address>, Option<unwind::Cut>)>,
    before: &Before,
    code: &mut sampler::CodeReader,
) -> (Raw, ThreadRecord) {
    use sampler::Outcome;
    let raw = match outcome {
        Outcome::Captured {
            walked: (frames, cut),
            pause,
            context,
        } => {
            let record = ThreadRecord::from_handler(&context, code.around(context.regs.pc), before, pause);
            return (Raw::Frames(frames, cut.map(|c| c.describe())), record);
        }
        Outcome::Skipped(why) if why == GONE => Raw::Gone,
        Outcome::Gone => Raw::Gone,
        Outcome::Skipped(why) => Raw::FromProc(format!("not captured: {why}")),
        Outcome::NoAnswer => Raw::FromProc(format!("no answer within {} ms", DEADLINE.as_millis())),
    };
    (raw, ThreadRecord::from_before(before))
}

/// A thread's status, with what it reports as blocked corrected for a thread waiting in
/// `sigtimedwait`/`sigwaitinfo` or `sigsuspend`: there the kernel shows the signals waited for
/// as unblocked, but a stack signal sent then would be *received by the program* (a loop that
/// treats an unknown signal as "shut down" would stop the service). Such a thread is reported
/// as blocking it. The system call is looked at before and after the status, so a thread that
/// enters or leaves the wait between the reads is still seen waiting in one of them; a thread
/// once seen waiting for the signal is remembered and never signalled again.
///
/// Also what the thread's record keeps from before the signal: its CPU time and the first
/// `/proc` system call line.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn signalable(tid: i32, signal: i32, offsets: Option<&ClockOffsets>) -> Option<(TaskStatus, Before)> {
    let cpu = sampler::thread_cpu_time(tid);
    let last_ran = offsets.map(|offsets| {
        let exec_start = procfs::exec_start_ns(tid);
        let now = sampler::monotonic_ns();
        (offsets, exec_start, procfs::last_cpu(tid), now)
    });
    let syscall = procfs::syscall(tid);
    let mut before = Before {
        syscall,
        cpu,
        not_run_for: None,
    };
    let not_run_for = |status: &TaskStatus| {
        let (offsets, exec_start, cpu, now) = last_ran?;
        record::not_run_for(offsets, exec_start, cpu, now, status.state == 'R')
    };
    if sigwaiters().contains(&tid) {
        let mut status = procfs::task_status(tid)?;
        before.not_run_for = not_run_for(&status);
        status.blocked |= 1 << (signal - 1);
        return Some((status, before));
    }
    let waiting = waits_for(syscall.as_ref(), signal);
    let mut status = procfs::task_status(tid)?;
    before.not_run_for = not_run_for(&status);
    if cannot_answer(&status, signal).is_some() {
        return Some((status, before));
    }
    if waiting || waits_for(procfs::syscall(tid).as_ref(), signal) {
        sigwaiters_insert(tid);
        status.blocked |= 1 << (signal - 1);
    }
    Some((status, before))
}

/// Threads seen waiting for the stack signal with `sigwait`; pruned of exited threads.
static SIGWAITERS: crate::forklock::ForkLock<Vec<i32>> = crate::forklock::ForkLock::new(Vec::new());

fn sigwaiters() -> Vec<i32> {
    SIGWAITERS.lock().clone()
}

fn sigwaiters_insert(tid: i32) {
    let mut list = SIGWAITERS.lock();
    if !list.contains(&tid) {
        list.push(tid);
    }
}

/// Forgets threads that no longer exist.
fn sigwaiters_prune(alive: &[i32]) {
    SIGWAITERS.lock().retain(|tid| alive.binary_search(tid).is_ok());
}

/// Whether `tid` sits in a system call that would take `signal` for the program: a
/// `rt_sigtimedwait` whose set holds it (or cannot be read), or `rt_sigsuspend`.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn waits_for(syscall: Option<&procfs::ProcSyscall>, signal: i32) -> bool {
    let Some(&procfs::ProcSyscall::In { number, args, .. }) = syscall else {
        return false;
    };
    if number == libc::SYS_rt_sigsuspend {
        return true;
    }
    if number != libc::SYS_rt_sigtimedwait {
        return false;
    }
    let mut set = [0u8; 8];
    if sampler::read_memory(args[0], &mut set) != set.len() {
        return true; // unknown set: assume the worst
    }
    u64::from_ne_bytes(set) & (1 << (signal - 1)) != 0
}

/// Every thread's status, read before any is signalled (a signal wakes a sleeping thread, and
/// a thread that blocks the signal must not be sent one: it would stay queued, and a thread
/// that collects signals with sigwait could receive it). With many threads the reads are
/// shared with a helper thread: they are most of the cost of a large dump.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn read_statuses(
    tids: &[i32],
    signal: i32,
    offsets: Option<&ClockOffsets>,
    last_ran: &(dyn Fn(&i32) -> bool + Sync),
) -> Vec<(i32, Option<(TaskStatus, Before)>)> {
    let read = |part: &[i32]| -> Vec<(i32, Option<(TaskStatus, Before)>)> {
        part.iter()
            .map(|tid| (*tid, signalable(*tid, signal, offsets.filter(|_| last_ran(tid)))))
            .collect()
    };
    if tids.len() < PARALLEL_STATUS_READS {
        return read(tids);
    }
    let (first, second) = tids.split_at(tids.len() / 2);
    // Like every manhole thread, the helper never takes a signal meant for the application.
    let mask = sys::SignalSet::all_but_faults(None);
    std::thread::scope(|scope| {
        let helper = crate::spawn::room_for_a_thread().and_then(|()| {
            sys::with_signals_blocked(&mask, || {
                std::thread::Builder::new()
                    .name("manhole-dump".into())
                    .spawn_scoped(scope, || read(second))
            })
        });
        let mut all = read(first);
        match helper.map(|h| h.join()) {
            Ok(Ok(rest)) => all.extend(rest),
            _ => all.extend(read(second)),
        }
        all
    })
}

/// From how many threads on the status reads are split over two threads.
const PARALLEL_STATUS_READS: usize = 256;

/// The reason given for a thread that blocks the stack signal.
const BLOCKS: &str = "it blocks the stack signal";

/// The reason given for a thread whose status could not be read: it exited.
#[cfg_attr(
    not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))),
    allow(dead_code, reason = "used with in-process capture only")
)]
const GONE: &str = "it exited";

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn capture_others(
    tids: &[i32],
    statuses: &mut HashMap<i32, TaskStatus>,
    _notes: &mut Vec<String>,
    _want: Want,
) -> Vec<(i32, (Raw, ThreadRecord))> {
    let why = "in-process capture is not available on this platform".to_owned();
    tids.iter()
        .filter_map(|tid| {
            statuses.insert(*tid, procfs::task_status(*tid)?);
            Some((*tid, (Raw::FromProc(why.clone()), ThreadRecord::default())))
        })
        .collect()
}

/// The calling thread's frames, without the frames of the capture itself.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(never)]
fn own_stack(me: i32) -> (Vec<Address>, Option<String>, ThreadRecord) {
    let cpu = sampler::thread_cpu_time(me);
    let snapshot = sampler::capture_self();
    let (mut frames, cut) = unwind::walk(snapshot.regs, &snapshot.stack);
    trim_capture_frames(&mut frames);
    (
        frames,
        cut.map(|c| c.describe()),
        ThreadRecord::own(snapshot.regs, cpu),
    )
}

/// The calling thread's frames, without the frames of the capture itself.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
#[inline(never)]
fn own_stack(_me: i32) -> (Vec<Address>, Option<String>, ThreadRecord) {
    let mut ips = Vec::with_capacity(64);
    backtrace::trace(|frame| {
        let ip = frame.ip() as usize;
        if ip != 0 {
            ips.push(Address::Return(ip));
        }
        ips.len() < 256
    });
    trim_capture_frames(&mut ips);
    (ips, None, ThreadRecord::default())
}

/// Everything up to the outermost frame of the capture itself is manhole's, not the caller's.
fn trim_capture_frames(frames: &mut Vec<Address>) {
    let symbols = symbolize::resolve_all(frames);
    let capture_frames = frames
        .iter()
        .rposition(|a| {
            symbols
                .get(a)
                .is_some_and(|s| s.iter().any(|s| s.name.as_deref().is_some_and(is_capture_frame)))
        })
        .map_or(0, |last| last + 1);
    frames.drain(..capture_frames);
}

/// Frames of the capture machinery, trimmed from the top of the caller's stack.
fn is_capture_frame(name: &str) -> bool {
    name.starts_with("backtrace::")
        || [
            "manhole::stacks::own_stack",
            "manhole::stacks::sampler::capture_self",
            "manhole::stacks::capture",
            "manhole::stacks::capture_raw",
            "manhole::stacks::capture_raw_with",
            "manhole::stacks::capture_with",
            "manhole::stacks::dump_text",
            "manhole::dump_stacktraces",
            "manhole::__bench::measure_dump",
        ]
        .iter()
        .any(|f| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

fn from_proc(tid: i32, why: String) -> Stack {
    let syscall = procfs::syscall_state(tid);
    let pc = match syscall {
        Some(SyscallState::InSyscall { pc, .. } | SyscallState::Blocked { pc }) => Some(pc),
        _ => None,
    };
    let top = match pc {
        Some(pc) => {
            let address = Address::Return(pc);
            symbolize::resolve_all(&[address])
                .remove(&address)
                .into_iter()
                .collect()
        }
        None => Vec::new(),
    };
    Stack::FromProc {
        why,
        syscall,
        wchan: procfs::wchan(tid),
        top,
    }
}

/// The CPU time thread `tid` has used so far (its CPU clock: one system call, no file).
pub(crate) fn thread_cpu_time(tid: i32) -> Option<Duration> {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::thread_cpu_time(tid)
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        let _ = tid;
        None
    }
}

/// Whether the calling thread may read memory through the kernel (the process allowed
/// `process_vm_readv` at install, and this thread has no seccomp filter that could kill the
/// process for it): checked once by a caller that reads many times.
fn can_read_memory() -> bool {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::can_read_memory()
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        false
    }
}

/// Reads memory of this process without ever faulting, for a caller that found
/// [`can_read_memory`] true on this thread.
fn read_memory_checked(address: usize, out: &mut [u8]) -> usize {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sampler::read_memory_checked(address, out)
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        let _ = (address, out);
        0
    }
}

/// The rendered dump of every thread, with every runtime frame when `full`.
#[inline(never)]
pub(crate) fn dump_text(full: bool) -> String {
    let mut out = String::new();
    render(&capture(), full, &mut out);
    out
}

const HEADER_BAR: &str = "#########";
const FOOTER: &str = "#############################################";

/// Whether a frame is where Rust's runtime hands over to user code: frames outside it are the
/// same in every thread (thread start, `lang_start`, libc) and are folded unless `full`.
fn is_runtime_boundary(symbol: &Symbol) -> bool {
    symbol
        .name
        .as_deref()
        .is_some_and(|n| n.contains("__rust_begin_short_backtrace"))
}

/// The frames to show, and how many outer runtime symbols were folded.
fn visible(frames: &[Frame], full: bool) -> (&[Frame], usize) {
    if full {
        return (frames, 0);
    }
    match frames.iter().position(|f| f.iter().any(is_runtime_boundary)) {
        Some(at) => (&frames[..at], frames[at..].iter().map(|f| f.len()).sum()),
        None => (frames, 0),
    }
}

/// What makes two threads one group: state, why it waits, why the walk stopped, and the
/// frames shown.
type GroupKey<'a> = (Option<char>, String, Option<&'a str>, Vec<usize>);

/// Renders a dump in the format of DESIGN.md §4, grouping identical stacks.
pub(crate) fn render(dump: &Dump, full: bool, out: &mut String) {
    let _ = writeln!(
        out,
        "{HEADER_BAR} ProcessID={}, ThreadID={} {HEADER_BAR}",
        dump.pid, dump.dumping_tid
    );
    for note in &dump.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    let tid_names: HashMap<i32, &str> = dump.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
    let names = |tid: i32| tid_names.get(&tid).map(|n| (*n).to_owned());
    waits::summary(&dump.threads, &names, out);
    out.push('\n');
    // Group threads whose visible stacks, states and waits are identical, in order of first
    // appearance. Frames are shared per address, so identity is pointer equality.
    let mut groups: Vec<(Vec<&ThreadReport>, &[Frame], usize)> = Vec::new();
    let mut index: HashMap<GroupKey<'_>, usize> = HashMap::new();
    for thread in &dump.threads {
        match &thread.stack {
            Stack::Frames(frames, cut) if !frames.is_empty() => {
                let (shown, folded) = visible(frames, full);
                let key = (
                    thread.state,
                    thread.wait.group_key(thread.state, &names),
                    cut.as_deref(),
                    shown
                        .iter()
                        .map(|f| Arc::as_ptr(f).cast::<Symbol>() as usize)
                        .collect(),
                );
                match index.get(&key) {
                    Some(&g) => groups[g].0.push(thread),
                    None => {
                        index.insert(key, groups.len());
                        groups.push((vec![thread], shown, folded));
                    }
                }
            }
            _ => groups.push((vec![thread], &[], 0)),
        }
    }
    for (members, shown, folded) in groups {
        let first = members[0];
        let waited = members
            .iter()
            .map(|t| t.wait.waited)
            .collect::<Option<Vec<Duration>>>()
            .and_then(|all| Some((*all.iter().min()?, *all.iter().max()?)));
        let waits: Vec<&waits::Wait> = members.iter().map(|t| &t.wait).collect();
        let reason = waits::Wait::describe_group(&waits, first.state, &names, waited);
        let _ = writeln!(
            out,
            "Thread {} \"{}\" ({reason}):",
            first.tid,
            text::escape_controls(&first.name)
        );
        if members.len() > 1 {
            render_others(&members[1..], out);
        }
        match &first.stack {
            Stack::Frames(_, cut) => {
                render_symbols(shown, full, out);
                if folded > 0 {
                    let _ = writeln!(
                        out,
                        "      … {folded} runtime frames (thread start) folded; \"stacks --full\" shows them"
                    );
                }
                if let Some(cut) = cut {
                    let _ = writeln!(out, "     ({cut})");
                }
            }
            Stack::FromProc {
                why,
                syscall,
                wchan,
                top,
            } => {
                render_symbols(top, full, out);
                let mut facts = vec![why.clone()];
                match syscall {
                    Some(SyscallState::InSyscall { number, .. }) => {
                        facts.push(format!("in system call {}", syscall_name(*number)));
                    }
                    Some(SyscallState::Running) => facts.push("on a CPU".to_owned()),
                    Some(SyscallState::Blocked { .. }) => facts.push("outside a system call".to_owned()),
                    None => {}
                }
                if let Some(wchan) = wchan {
                    facts.push(format!("kernel wait {wchan}"));
                }
                let known = if top.is_empty() {
                    "no frame known"
                } else {
                    "innermost frame only"
                };
                let _ = writeln!(out, "     ({known}, from /proc: {})", facts.join("; "));
            }
        }
        out.push('\n');
    }
    out.push_str(FOOTER);
    out.push('\n');
}

/// The dump as data for machine mode: every thread (not grouped), its frames, and for threads
/// reported from `/proc`, why and what `/proc` says.
pub(crate) fn to_json(dump: &Dump, full: bool) -> Json {
    let frame_json = |frames: &[Frame]| -> Json {
        Json::Arr(
            frames
                .iter()
                .flat_map(|f| f.iter())
                .map(|s| {
                    Json::obj([
                        ("function", Json::from(s.name.clone())),
                        (
                            "file",
                            Json::from(s.file.as_ref().map(|f| f.display().to_string())),
                        ),
                        ("line", Json::from(s.line)),
                        ("column", Json::from(s.column)),
                    ])
                })
                .collect(),
        )
    };
    let tid_names: HashMap<i32, &str> = dump.threads.iter().map(|t| (t.tid, t.name.as_str())).collect();
    let names = |tid: i32| tid_names.get(&tid).map(|n| (*n).to_owned());
    let threads = dump
        .threads
        .iter()
        .map(|t| {
            let mut fields = vec![
                ("tid", Json::from(t.tid)),
                ("name", Json::from(t.name.as_str())),
                ("state", Json::from(t.state.map(|c| c.to_string()))),
                ("state_name", Json::from(t.state.map(procfs::describe_state))),
                ("wait", t.wait.to_json(t.state, &names)),
            ];
            match &t.stack {
                Stack::Frames(frames, cut) => {
                    let (shown, folded) = visible(frames, full);
                    fields.push(("capture", Json::from("in_process")));
                    fields.push(("frames", frame_json(shown)));
                    fields.push(("folded_runtime_frames", Json::from(folded)));
                    fields.push(("cut", Json::from(cut.clone())));
                }
                Stack::FromProc {
                    why,
                    syscall,
                    wchan,
                    top,
                } => {
                    fields.push(("capture", Json::from("proc")));
                    fields.push(("frames", frame_json(top)));
                    fields.push(("why", Json::from(why.as_str())));
                    let syscall = match syscall {
                        Some(SyscallState::InSyscall { number, .. }) => Json::from(syscall_name(*number)),
                        Some(SyscallState::Running) => Json::from("running"),
                        Some(SyscallState::Blocked { .. }) => Json::from("none"),
                        None => Json::Null,
                    };
                    fields.push(("syscall", syscall));
                    fields.push(("wchan", Json::from(wchan.clone())));
                }
            }
            Json::obj(fields)
        })
        .collect();
    Json::obj([
        ("pid", Json::from(dump.pid)),
        ("dumping_tid", Json::from(dump.dumping_tid)),
        ("threads", Json::Arr(threads)),
        (
            "notes",
            Json::Arr(dump.notes.iter().map(|n| Json::from(n.as_str())).collect()),
        ),
    ])
}

/// `  and N more with this stack:` then their ids and names, wrapped to fit a terminal.
fn render_others(others: &[&ThreadReport], out: &mut String) {
    let _ = writeln!(out, "  and {} more with this stack:", others.len());
    let mut line = String::from("   ");
    for (i, thread) in others.iter().enumerate() {
        let item = format!(
            " {} \"{}\"{}",
            thread.tid,
            text::escape_controls(&thread.name),
            if i + 1 < others.len() { "," } else { "" }
        );
        if line.len() + item.len() > 100 && line.len() > 3 {
            let _ = writeln!(out, "{line}");
            line = String::from("   ");
        }
        line.push_str(&item);
    }
    let _ = writeln!(out, "{line}");
}

fn render_symbols(frames: &[Frame], full: bool, out: &mut String) {
    let symbols: Vec<&Symbol> = frames.iter().flat_map(|f| f.iter()).collect();
    let folds = if full { Vec::new() } else { library_runs(&symbols) };
    let mut index = 0;
    while index < symbols.len() {
        if let Some(&(_, end)) = folds.iter().find(|(start, _)| *start == index) {
            let _ = writeln!(
                out,
                "      … {} frames in {}",
                end - index,
                text::escape_controls(&libraries_of(&symbols[index..end]))
            );
            index = end;
            continue;
        }
        render_symbol(index, symbols[index], full, out);
        index += 1;
    }
}

fn render_symbol(index: usize, symbol: &Symbol, full: bool, out: &mut String) {
    let _ = writeln!(
        out,
        "  {index:>2}: {}",
        text::escape_controls(symbol.name.as_deref().unwrap_or("<unknown>"))
    );
    if let (Some(file), Some(line)) = (&symbol.file, symbol.line) {
        let path = file.to_string_lossy();
        let shown = if full { &path[..] } else { short_path(&path) };
        let shown = text::escape_controls(shown);
        match symbol.column {
            Some(column) => {
                let _ = writeln!(out, "        at {shown}:{line}:{column}");
            }
            None => {
                let _ = writeln!(out, "        at {shown}:{line}");
            }
        }
    }
}

/// Whether a symbol is the program's own code: its source is known and is neither the
/// standard library's, a dependency's (see [`short_path`]) nor the C library's (`./…` paths
/// of glibc's build).
fn is_programs(symbol: &Symbol) -> bool {
    symbol.file.as_deref().is_some_and(|file| {
        let path = file.to_string_lossy();
        short_path(&path) == path && !path.starts_with("./") && !path.starts_with("../")
    })
}

/// Where a symbol's source is known at all (a stripped binary knows none: nothing is folded).
fn has_source(symbol: &Symbol) -> bool {
    symbol.file.is_some()
}

/// The runs of two or more library symbols that lie between two of the program's own, as
/// `(start, end)` indexes: what the program called through, folded so its own frames stand out.
/// The innermost frames (where the thread waits) and everything outside the program's outermost
/// frame are kept.
fn library_runs(symbols: &[&Symbol]) -> Vec<(usize, usize)> {
    let own: Vec<usize> = (0..symbols.len()).filter(|&i| is_programs(symbols[i])).collect();
    let mut runs = Vec::new();
    for pair in own.windows(2) {
        let (start, end) = (pair[0] + 1, pair[1]);
        if end - start >= 2 && symbols[start..end].iter().all(|s| has_source(s)) {
            runs.push((start, end));
        }
    }
    runs
}

/// What a folded run passes through: its crates (the first segment of each symbol's path, in
/// order of appearance), or `crate::module` when it is one crate and most of it one module.
fn libraries_of(symbols: &[&Symbol]) -> String {
    let paths: Vec<Vec<&str>> = symbols
        .iter()
        .filter_map(|s| s.name.as_deref())
        .map(|name| {
            // `<std::io::Lines<B> as Iterator>::next` is std's; so is `std::io::read`.
            let plain = name
                .trim_start_matches(['<', '&', '*'])
                .trim_start_matches("mut ");
            plain
                .split("::")
                .map(|segment| segment.split(['<', ' ', '>']).next().unwrap_or(""))
                .take(2)
                .collect()
        })
        .collect();
    let mut crates: Vec<&str> = Vec::new();
    for path in &paths {
        if let Some(first) = path.first().filter(|c| !c.is_empty())
            && !crates.contains(first)
        {
            crates.push(first);
        }
    }
    match crates.as_slice() {
        [] => "the libraries".to_owned(),
        [one] => {
            // The module most of the run is in, when one is.
            let modules: Vec<&str> = paths.iter().filter_map(|p| p.get(1).copied()).collect();
            let most = modules
                .iter()
                .max_by_key(|m| modules.iter().filter(|n| n == m).count())
                .filter(|m| !m.is_empty() && 2 * modules.iter().filter(|n| n == m).count() > paths.len());
            match most {
                Some(module) => format!("{one}::{module}"),
                None => (*one).to_owned(),
            }
        }
        many => many.join(", "),
    }
}

/// A source path as a reader wants it: the standard library's from its crate on
/// (`/rustc/<hash>/library/std/src/io/mod.rs` → `std/src/io/mod.rs`, also from a rust-src
/// install), a dependency's from its `name-version` directory on
/// (`~/.cargo/registry/src/index.crates.io-…/nix-0.32.0/src/poll.rs` → `nix-0.32.0/src/poll.rs`,
/// and a git checkout's from its repository's name). The program's own paths stay whole.
fn short_path(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/rustc/")
        && let Some(at) = rest.find("/library/")
    {
        return &rest[at + "/library/".len()..];
    }
    if let Some(at) = path.find("/lib/rustlib/src/rust/library/") {
        return &path[at + "/lib/rustlib/src/rust/library/".len()..];
    }
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(at) = path.find(marker) {
            let rest = &path[at + marker.len()..];
            // Past the index (or the checkout's revision) directory.
            let skip = if marker == "/registry/src/" { 1 } else { 2 };
            let mut parts = rest.splitn(skip + 1, '/');
            let dropped: usize = parts.by_ref().take(skip).map(|p| p.len() + 1).sum();
            if parts.next().is_some_and(|tail| !tail.is_empty()) {
                return &rest[dropped..];
            }
        }
    }
    path
}

/// The name of a system call by number, for the calls threads usually wait in.
fn syscall_name(number: libc::c_long) -> String {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let known: &[(libc::c_long, &str)] = &[
            (libc::SYS_read, "read"),
            (libc::SYS_write, "write"),
            (libc::SYS_futex, "futex"),
            (libc::SYS_nanosleep, "nanosleep"),
            (libc::SYS_clock_nanosleep, "clock_nanosleep"),
            (libc::SYS_epoll_pwait, "epoll_pwait"),
            (libc::SYS_ppoll, "ppoll"),
            (libc::SYS_pselect6, "pselect6"),
            (libc::SYS_accept, "accept"),
            (libc::SYS_accept4, "accept4"),
            (libc::SYS_connect, "connect"),
            (libc::SYS_recvfrom, "recvfrom"),
            (libc::SYS_recvmsg, "recvmsg"),
            (libc::SYS_sendto, "sendto"),
            (libc::SYS_sendmsg, "sendmsg"),
            (libc::SYS_wait4, "wait4"),
            (libc::SYS_waitid, "waitid"),
            (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
            (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_fsync, "fsync"),
            (libc::SYS_flock, "flock"),
            (libc::SYS_io_uring_enter, "io_uring_enter"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_poll, "poll"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_select, "select"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_epoll_wait, "epoll_wait"),
            #[cfg(target_arch = "x86_64")]
            (libc::SYS_pause, "pause"),
        ];
        if let Some((_, name)) = known.iter().find(|(n, _)| *n == number) {
            return (*name).to_owned();
        }
    }
    format!("#{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str) -> Symbol {
        Symbol {
            name: Some(name.to_owned()),
            file: None,
            line: None,
            column: None,
        }
    }

    fn frames(names: &[&str]) -> Vec<Frame> {
        names.iter().map(|n| Frame::from(vec![sym(n)])).collect()
    }

    fn thread(tid: i32, name: &str, frames: &[Frame]) -> ThreadReport {
        ThreadReport {
            tid,
            name: name.to_owned(),
            state: Some('S'),
            stack: Stack::Frames(frames.to_vec(), None),
            pause: None,
            record: ThreadRecord::default(),
            wait: waits::Wait::unknown(),
        }
    }

    #[test]
    fn identical_stacks_are_grouped_with_every_member_listed() {
        let rt = frames(&[
            "app::work",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "start_thread",
            "clone3",
        ]);
        let dump = Dump {
            pid: 1,
            dumping_tid: 1,
            threads: (0..30)
                .map(|i| thread(100 + i, &format!("worker-{i}"), &rt))
                .chain([thread(
                    200,
                    "odd",
                    &frames(&["app::other", "std::sys::backtrace::__rust_begin_short_backtrace"]),
                )])
                .collect(),
            notes: Vec::new(),
            analysis: Duration::ZERO,
        };
        let mut text = String::new();
        render(&dump, false, &mut text);
        assert!(
            text.contains("Thread 100 \"worker-0\" (sleeping):\n  and 29 more with this stack:\n"),
            "{text}"
        );
        for i in 1..30 {
            assert!(text.contains(&format!(" {} \"worker-{i}\"", 100 + i)), "{text}");
        }
        assert!(text.lines().all(|l| l.len() <= 104), "wrapped:\n{text}");
        assert_eq!(text.matches("app::work").count(), 1, "{text}");
        assert!(
            text.contains("Thread 200 \"odd\" (sleeping):\n   0: app::other\n"),
            "{text}"
        );
        assert!(
            text.contains("… 3 runtime frames (thread start) folded"),
            "{text}"
        );
        assert!(!text.contains("clone3"), "{text}");

        let mut full = String::new();
        render(&dump, true, &mut full);
        assert!(full.contains("clone3") && !full.contains("folded"), "{full}");
    }

    #[inline(never)]
    fn distinctive_caller_for_the_dump_test() -> String {
        dump_text(true)
    }

    #[test]
    fn the_dump_has_the_documented_frame() {
        let text = distinctive_caller_for_the_dump_test();
        let pid = std::process::id();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("######### ProcessID={pid}, ThreadID=")),
            "{first}"
        );
        assert!(first.ends_with(" #########"), "{first}");
        assert_eq!(text.lines().last().unwrap(), "#".repeat(45));
        assert!(text.contains(&format!("Thread {pid} \"main\" (")), "{text}");
        assert!(text.contains("distinctive_caller_for_the_dump_test"), "{text}");
        assert!(
            !text.contains("manhole::stacks::own_stack"),
            "capture frames are trimmed:\n{text}"
        );
    }

    #[test]
    fn unknown_syscalls_keep_their_number() {
        assert_eq!(syscall_name(-7), "#-7");
        #[cfg(target_os = "linux")]
        assert_eq!(syscall_name(libc::SYS_futex), "futex");
    }

    #[test]
    fn long_library_and_dependency_paths_are_shortened() {
        let cases = [
            (
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/io/mod.rs",
                "std/src/io/mod.rs",
            ),
            (
                "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/core/src/ptr/mod.rs",
                "core/src/ptr/mod.rs",
            ),
            (
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/nix-0.32.0/src/poll.rs",
                "nix-0.32.0/src/poll.rs",
            ),
            (
                "/home/me/.cargo/git/checkouts/tokio-3a1b2c/9f8e7d6/tokio/src/runtime/park.rs",
                "tokio/src/runtime/park.rs",
            ),
            // The program's own, and anything not recognised, stay whole.
            ("/work/app/src/main.rs", "/work/app/src/main.rs"),
            ("/rustc/abc", "/rustc/abc"),
            ("/x/registry/src/", "/x/registry/src/"),
            ("/x/registry/src/index-only", "/x/registry/src/index-only"),
            ("", ""),
        ];
        for (path, short) in cases {
            assert_eq!(short_path(path), short, "{path}");
        }
    }

    fn at(name: &str, file: &str) -> Symbol {
        Symbol {
            name: Some(name.to_owned()),
            file: Some(file.into()),
            line: Some(1),
            column: None,
        }
    }

    #[test]
    fn library_frames_between_the_programs_own_are_folded() {
        let std_io = "/rustc/0123/library/std/src/io/mod.rs";
        let symbols = [
            at("__GI___libc_read", "./io/../sysdeps/unix/sysv/linux/read.c"),
            at("std::io::read", std_io),
            at("app::read_config", "/work/app/src/config.rs"),
            at("std::io::default_read_to_end", std_io),
            at("<std::fs::File as std::io::Read>::read_to_end", std_io),
            at("std::io::Read::read_to_string", std_io),
            at("app::load", "/work/app/src/main.rs"),
            at(
                "tokio::runtime::park",
                "/r/.cargo/registry/src/index-1/tokio-1.0.0/src/park.rs",
            ),
            at("app::main", "/work/app/src/main.rs"),
        ];
        let refs: Vec<&Symbol> = symbols.iter().collect();
        // The wait itself (libc, std::io::read) stays; three std frames between the program's
        // frames fold; a lone tokio frame does not.
        assert_eq!(library_runs(&refs), vec![(3, 6)]);
        assert_eq!(libraries_of(&refs[3..6]), "std::io");
        assert_eq!(libraries_of(&refs[6..8]), "app, tokio");
        let frames: Vec<Frame> = symbols.iter().map(|s| Arc::from(vec![s.clone()])).collect();
        let mut text = String::new();
        render_symbols(&frames, false, &mut text);
        assert!(
            text.contains("      … 3 frames in std::io\n   6: app::load"),
            "{text}"
        );
        assert!(text.contains("   1: std::io::read"), "{text}");
        let mut full = String::new();
        render_symbols(&frames, true, &mut full);
        assert!(
            !full.contains("frames in") && full.contains("read_to_string"),
            "{full}"
        );
        // A stripped binary knows no sources: nothing is folded.
        let bare: Vec<Symbol> = symbols
            .iter()
            .map(|s| Symbol {
                file: None,
                ..s.clone()
            })
            .collect();
        let refs: Vec<&Symbol> = bare.iter().collect();
        assert!(library_runs(&refs).is_empty());
    }
}
