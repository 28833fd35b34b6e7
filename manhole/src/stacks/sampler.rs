//! Capturing the raw stack of every thread in-process, by signal (Linux).
//!
//! The dumper sends each thread a real-time signal with `rt_tgsigqueueinfo`, carrying a slot
//! index and a generation in `si_value`. The handler, running on that thread, unwinds its own
//! stack into the slot and wakes the dumper through a futex; symbolization happens later, on
//! the dumper's thread. No thread is ever parked: each pays for its own unwind (a few µs).
//!
//! # The handler's contract (async-signal safety)
//! - It allocates nothing, takes no lock, formats nothing, and preserves `errno`.
//! - It acts only on `SI_QUEUE` signals sent by this very process (`si_pid == getpid()`);
//!   anything else (a `kill`, a `tgkill` from a shell) is ignored.
//! - It writes only into a slot it won with a compare-and-swap from `REQUESTED(gen)` to
//!   `WRITING(gen)`. The dumper abandons a slot by swapping `REQUESTED(gen)` to `ABANDONED`,
//!   so a signal that arrives after the deadline (a thread that had it blocked, a stopped
//!   thread) finds nothing to do. A slot being written is never handed out again until the
//!   handler has finished with it.
//! - Slot tables are allocated zeroed by the dumper and never freed, so a pointer the handler
//!   loads stays valid forever.
//! - Unwinding uses libgcc's `_Unwind_Backtrace` (`backtrace::trace_unsynchronized`), which
//!   on glibc ≥ 2.35 with libgcc ≥ 12 finds unwind tables through `_dl_find_object` and takes
//!   no lock; only `Frame::ip` is read.
//! - It never unwinds a thread interrupted inside the unwinder's own code (libgcc): its unwind
//!   tables are not exact at every instruction there, and walking from such a point crashed
//!   under stress (a thread caught mid-panic in `_Unwind_RaiseException`). Such a thread
//!   records only its program counter, and the dumper asks it again a moment later.
//! - `SA_RESTART` so that interrupted `read`, `write`, `accept`, futex waits and the like
//!   resume without `EINTR`; `SA_ONSTACK` so a thread near stack overflow unwinds on its
//!   alternate signal stack (Rust gives every thread one).

use std::ffi::c_void;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Error;
use crate::signal::Signal;

/// The deepest stack recorded; deeper frames are cut.
pub(crate) const MAX_FRAMES: usize = 128;

const FREE: u64 = 0;
const REQUESTED: u64 = 1;
const WRITING: u64 = 2;
const DONE: u64 = 3;
const ABANDONED: u64 = 4;

fn pack(generation: u32, state: u64) -> u64 {
    (u64::from(generation) << 8) | state
}

fn state_of(word: u64) -> u64 {
    word & 0xff
}

/// One thread's capture. All-zero bytes are a valid free slot, so tables are `alloc_zeroed`.
#[repr(C)]
struct Slot {
    state: AtomicU64,
    frames: AtomicUsize,
    pc: AtomicUsize,
    sp: AtomicUsize,
    entered_ns: AtomicU64,
    left_ns: AtomicU64,
    /// 1 when the thread was inside the unwinder and only `pc` was recorded.
    partial: AtomicUsize,
    ips: [AtomicUsize; MAX_FRAMES],
}

/// Slot tables: segment `k` holds `BASE << k` slots and is allocated when first needed.
const SEGMENTS: usize = 16;
const BASE: usize = 64;
static TABLE: [AtomicPtr<Slot>; SEGMENTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SEGMENTS];

/// Maps a global slot index to its segment and offset (pure arithmetic: safe in the handler).
fn locate(index: usize) -> Option<(usize, usize)> {
    let group = index / BASE + 1;
    let segment = (usize::BITS - 1 - group.leading_zeros()) as usize;
    if segment >= SEGMENTS {
        return None;
    }
    let start = BASE * ((1 << segment) - 1);
    Some((segment, index - start))
}

fn slot(index: usize) -> Option<&'static Slot> {
    let (segment, offset) = locate(index)?;
    let base = TABLE[segment].load(Ordering::Acquire);
    if base.is_null() {
        return None;
    }
    // SAFETY: a published segment holds `BASE << segment` zero-initialised slots, is never
    // freed, and `offset` is below that size by construction of `locate`.
    Some(unsafe { &*base.add(offset) })
}

/// Makes sure slots `0..count` exist. Called by the dumper only, under the dump lock.
fn reserve(count: usize) -> usize {
    let mut available = 0;
    for (segment, table_slot) in TABLE.iter().enumerate() {
        if available >= count {
            break;
        }
        let size = BASE << segment;
        if table_slot.load(Ordering::Acquire).is_null() {
            let Ok(layout) = std::alloc::Layout::array::<Slot>(size) else {
                break;
            };
            // SAFETY: the layout is non-zero-sized; all-zero bytes are a valid `Slot` (atomics
            // and an array of atomics), and the table is leaked: never freed.
            let table = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Slot>();
            if table.is_null() {
                break;
            }
            table_slot.store(table, Ordering::Release);
        }
        available += size;
    }
    available.min(count)
}

/// Executable ranges of the unwinder's own library, where the handler must not unwind.
const NO_UNWIND_RANGES: usize = 4;
static NO_UNWIND: [(AtomicUsize, AtomicUsize); NO_UNWIND_RANGES] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; NO_UNWIND_RANGES];

fn in_unwinder(pc: usize) -> bool {
    NO_UNWIND.iter().any(|(start, end)| {
        let (start, end) = (start.load(Ordering::Relaxed), end.load(Ordering::Relaxed));
        start <= pc && pc < end
    })
}

unsafe extern "C" {
    /// libgcc's unwinder entry point; only its address is taken, to find the library.
    #[link_name = "_Unwind_Backtrace"]
    fn unwind_backtrace_symbol();
}

/// Records the executable segments of the shared library that holds `_Unwind_Backtrace`.
/// Where the unwinder is linked into the executable itself, nothing is recorded.
fn find_unwinder() {
    struct Search {
        target: usize,
        ranges: Vec<(usize, usize)>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data`
        // is the `Search` handed to it below.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search>()) };
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of this object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let loads = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
        let holds = loads.clone().any(|h| {
            let start = base + h.p_vaddr as usize;
            start <= search.target && search.target < start + h.p_memsz as usize
        });
        // SAFETY: dlpi_name is a valid C string (empty for the executable) or null.
        let is_executable = info.dlpi_name.is_null() || unsafe { *info.dlpi_name } == 0;
        if holds && !is_executable {
            search.ranges = loads
                .filter(|h| h.p_flags & libc::PF_X != 0)
                .map(|h| (base + h.p_vaddr as usize, base + (h.p_vaddr + h.p_memsz) as usize))
                .collect();
        }
        i32::from(holds)
    }
    let mut search = Search {
        target: unwind_backtrace_symbol as *const () as usize,
        ranges: Vec::new(),
    };
    // SAFETY: `visit` matches the callback type and only reads what it is given; `search`
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    for (slot, (start, end)) in NO_UNWIND.iter().zip(search.ranges) {
        slot.0.store(start, Ordering::Relaxed);
        slot.1.store(end, Ordering::Release);
    }
}

/// The signal the handler is installed for, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Bumped by every handler that finished a slot; the dumper sleeps on it.
static DONE_WORD: AtomicU32 = AtomicU32::new(0);
/// 1 while the dumper sleeps on `DONE_WORD`: only then does a handler pay for a wake-up.
static WAITING: AtomicU32 = AtomicU32::new(0);

/// The layout of `siginfo_t` for `SI_QUEUE` on 64-bit Linux: `si_pid` at 16, `si_uid` at 20,
/// `si_value` at 24, 128 bytes in all.
#[repr(C)]
struct QueueInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}

const _: () = assert!(std::mem::size_of::<QueueInfo>() == std::mem::size_of::<libc::siginfo_t>());

fn now_ns() -> u64 {
    // SAFETY: timespec is plain data; clock_gettime is async-signal-safe and fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(target_arch = "x86_64")]
fn registers(context: *mut c_void) -> (usize, usize) {
    // SAFETY: the kernel passes a valid ucontext_t as the third argument of an SA_SIGINFO
    // handler; only two saved registers are read.
    unsafe {
        let uc = &*context.cast::<libc::ucontext_t>();
        (
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize,
            uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize,
        )
    }
}

#[cfg(target_arch = "aarch64")]
fn registers(context: *mut c_void) -> (usize, usize) {
    // SAFETY: the kernel passes a valid ucontext_t as the third argument of an SA_SIGINFO
    // handler; only two saved registers are read.
    unsafe {
        let uc = &*context.cast::<libc::ucontext_t>();
        (uc.uc_mcontext.pc as usize, uc.uc_mcontext.sp as usize)
    }
}

extern "C" fn on_signal(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's lifetime.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above; reading and restoring errno is what keeps the interrupted code whole.
    let saved = unsafe { *errno };
    record(info, context);
    // SAFETY: as above.
    unsafe { *errno = saved };
}

#[inline(always)]
fn record(info: *mut libc::siginfo_t, context: *mut c_void) {
    let entered = now_ns();
    // SAFETY: the kernel passes a valid siginfo_t; QueueInfo has its exact size and the
    // SI_QUEUE layout, and the fields are only read after the code says SI_QUEUE.
    let info = unsafe { &*info.cast::<QueueInfo>() };
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    if info.code != libc::SI_QUEUE || info.pid != unsafe { libc::getpid() } {
        return;
    }
    let generation = (info.value >> 32) as u32;
    let Some(slot) = slot((info.value & 0xffff_ffff) as usize) else {
        return;
    };
    if slot
        .state
        .compare_exchange(
            pack(generation, REQUESTED),
            pack(generation, WRITING),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return; // abandoned, stale or forged
    }
    let (pc, sp) = registers(context);
    let mut frames = 0;
    let partial = in_unwinder(pc);
    if partial {
        slot.ips[0].store(pc, Ordering::Relaxed);
        frames = 1;
    } else {
        // SAFETY: libgcc's unwinder is used from one thread on its own stack, never from a
        // point inside libgcc itself; the callback only stores integers into this slot, which
        // the CAS above gave to this handler alone.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                slot.ips[frames].store(frame.ip() as usize, Ordering::Relaxed);
                frames += 1;
                frames < MAX_FRAMES
            });
        }
    }
    slot.partial.store(usize::from(partial), Ordering::Relaxed);
    slot.frames.store(frames, Ordering::Relaxed);
    slot.pc.store(pc, Ordering::Relaxed);
    slot.sp.store(sp, Ordering::Relaxed);
    slot.entered_ns.store(entered, Ordering::Relaxed);
    slot.left_ns.store(now_ns(), Ordering::Relaxed);
    slot.state.store(pack(generation, DONE), Ordering::Release);
    DONE_WORD.fetch_add(1, Ordering::SeqCst);
    if WAITING.swap(0, Ordering::SeqCst) == 1 {
        // SAFETY: FUTEX_WAKE on a valid, aligned u32 of this process; futex is async-signal-safe.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                DONE_WORD.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            )
        };
    }
}

/// The current disposition of `signal`: whether nobody handles it (SIG_DFL).
fn is_unhandled(signal: i32) -> bool {
    // SAFETY: sigaction is plain data; with a null new action, sigaction only reads the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid, writable sigaction; a null `act` changes nothing.
    let rc = unsafe { libc::sigaction(signal, ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_DFL
}

/// Installs the handler on `requested`, or on the highest real-time signal nobody handles.
/// Returns the signal in use. Idempotent: a second call keeps the first signal.
pub(crate) fn init(requested: Option<Signal>) -> Result<Signal, Error> {
    static INIT: Mutex<()> = Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    let current = SIGNAL.load(Ordering::Acquire);
    if current != 0 {
        return match requested {
            Some(signal) if signal.as_raw() != current => Err(Error::ConfigurationConflict {
                message: format!(
                    "stack_signal {signal}: this process already captures stacks with {}",
                    Signal::from_raw(current)?
                ),
            }),
            _ => Signal::from_raw(current),
        };
    }
    let signal = match requested {
        Some(signal) => {
            if !is_unhandled(signal.as_raw()) {
                return Err(Error::InvalidSignal {
                    value: signal.name(),
                    reason: "the application already handles it; choose a free real-time signal".to_owned(),
                });
            }
            signal.as_raw()
        }
        None => (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .rev()
            .find(|s| is_unhandled(*s))
            .ok_or_else(|| Error::InvalidSignal {
                value: "SIGRTMIN..SIGRTMAX".to_owned(),
                reason: "every real-time signal is already handled; set stack_signal explicitly".to_owned(),
            })?,
    };
    // Let the unwinder find and cache what it needs outside signal context first.
    backtrace::trace(|_| true);
    find_unwinder();
    // SAFETY: sigaction is plain data; every field the kernel reads is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid sigset_t inside `action`.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and `on_signal` has the SA_SIGINFO signature; the
    // handler follows the async-signal-safety contract of this module.
    if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
        return Err(Error::io(
            "install the stack signal handler",
            None,
            io::Error::last_os_error(),
        ));
    }
    SIGNAL.store(signal, Ordering::Release);
    Signal::from_raw(signal)
}

/// The signal in use, once [`init`] succeeded.
pub(crate) fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Acquire) {
        0 => None,
        s => Some(s),
    }
}

/// What became of one thread's capture.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Unwound: return addresses innermost first, starting with the interrupted frame.
    Captured {
        ips: Vec<usize>,
        pc: usize,
        /// The stack pointer: kept for the lock analysis to come (DESIGN.md §10).
        #[allow(dead_code, reason = "recorded for the wait analysis of DESIGN.md §10")]
        sp: usize,
        pause: Duration,
        /// Only `pc` is known: the thread was inside the unwinder every time it was asked.
        partial: bool,
    },
    /// Not asked, with the reason.
    Skipped(&'static str),
    /// Asked, but it did not answer before the deadline.
    NoAnswer,
    /// It exited before it could be asked.
    Gone,
}

/// Serialises dumps: one at a time per process.
static DUMPS: Mutex<u32> = Mutex::new(0);

/// Sends a request to `tid`.
fn send(pid: i32, tid: i32, signal: i32, value: u64) -> io::Result<()> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let info = QueueInfo {
        signo: signal,
        errno: 0,
        code: libc::SI_QUEUE,
        _pad: 0,
        pid,
        uid,
        value,
        _rest: [0; 12],
    };
    // SAFETY: `info` has the size and SI_QUEUE layout of siginfo_t and outlives the call;
    // SI_QUEUE to a thread of our own process is always permitted.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            signal,
            &info as *const QueueInfo,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Captures every thread in `tids` (the caller's own thread must not be among them, nor any
/// thread that blocks the signal), waiting at most `deadline` for answers. A thread caught
/// inside the unwinder is asked again, a little later each time, until the deadline.
pub(crate) fn capture(tids: &[i32], deadline: Duration) -> Vec<(i32, Outcome)> {
    let Some(signal) = signal() else {
        return tids
            .iter()
            .map(|tid| (*tid, Outcome::Skipped("stack capture is not set up")))
            .collect();
    };
    let until = Instant::now() + deadline;
    let mut results = round(tids, signal, until);
    for attempt in 0..10 {
        let again: Vec<i32> = results
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Captured { partial: true, .. }))
            .map(|(tid, _)| *tid)
            .collect();
        if again.is_empty() || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_micros(100 << attempt.min(6)));
        for (tid, outcome) in round(&again, signal, until) {
            if matches!(outcome, Outcome::Captured { partial: false, .. })
                && let Some(entry) = results.iter_mut().find(|(t, _)| *t == tid)
            {
                entry.1 = outcome;
            }
        }
    }
    results
}

/// One request to each thread in `tids`, answered or abandoned by `until`. The requests go
/// out in one burst: each signalled thread wakes and competes with the dumper for the CPU.
fn round(tids: &[i32], signal: i32, until: Instant) -> Vec<(i32, Outcome)> {
    let mut generation = DUMPS.lock().unwrap_or_else(PoisonError::into_inner);
    *generation = generation.wrapping_add(1).max(1);
    let generation_now = *generation;
    let pid = std::process::id() as i32;
    let capacity = reserve(tids.len() + 64);
    let answers_before = DONE_WORD.load(Ordering::SeqCst);

    let mut results: Vec<(i32, Outcome)> = Vec::with_capacity(tids.len());
    // (position in results, slot index) of the requests in flight.
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut next_slot = 0;
    for &tid in tids {
        // A slot that a late handler is still writing is not handed out again.
        while next_slot < capacity
            && slot(next_slot).is_some_and(|s| state_of(s.state.load(Ordering::Acquire)) == WRITING)
        {
            next_slot += 1;
        }
        let Some(slot) = slot(next_slot).filter(|_| next_slot < capacity) else {
            results.push((tid, Outcome::Skipped("there are more threads than capture slots")));
            continue;
        };
        slot.state
            .store(pack(generation_now, REQUESTED), Ordering::Release);
        let value = (u64::from(generation_now) << 32) | next_slot as u64;
        match send(pid, tid, signal, value) {
            Ok(()) => {
                pending.push((results.len(), next_slot));
                results.push((tid, Outcome::NoAnswer));
                next_slot += 1;
            }
            Err(e) => {
                slot.state.store(FREE, Ordering::Release);
                let outcome = if e.raw_os_error() == Some(libc::ESRCH) {
                    Outcome::Gone
                } else {
                    Outcome::Skipped("the signal could not be sent")
                };
                results.push((tid, outcome));
            }
        }
    }

    let all_done = |pending: &[(usize, usize)]| {
        pending
            .iter()
            .all(|(_, i)| slot(*i).is_some_and(|s| is_done(s, generation_now)))
    };
    let expected = pending.len() as u32;
    loop {
        let seen = DONE_WORD.load(Ordering::SeqCst);
        // Count first, scan only when enough handlers have finished since the requests left.
        if seen.wrapping_sub(answers_before) >= expected && all_done(&pending) {
            break;
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            break;
        };
        WAITING.store(1, Ordering::SeqCst);
        if DONE_WORD.load(Ordering::SeqCst) != seen {
            continue;
        }
        let timeout = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as _,
        };
        // SAFETY: FUTEX_WAIT on a valid, aligned u32 of this process with a valid relative
        // timeout; it returns at once if the word no longer equals `seen`.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                DONE_WORD.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                seen,
                &timeout as *const libc::timespec,
            )
        };
    }
    WAITING.store(0, Ordering::SeqCst);

    for (position, index) in pending {
        let Some(slot) = slot(index) else { continue };
        // Abandon unanswered requests; a handler mid-write is running and finishes soon.
        if slot
            .state
            .compare_exchange(
                pack(generation_now, REQUESTED),
                pack(generation_now, ABANDONED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            continue;
        }
        let spin_until = Instant::now() + Duration::from_millis(50);
        while slot.state.load(Ordering::Acquire) == pack(generation_now, WRITING)
            && Instant::now() < spin_until
        {
            std::thread::yield_now();
        }
        if is_done(slot, generation_now) {
            let frames = slot.frames.load(Ordering::Relaxed).min(MAX_FRAMES);
            let ips = slot.ips[..frames]
                .iter()
                .map(|ip| ip.load(Ordering::Relaxed))
                .collect();
            let pause = Duration::from_nanos(
                slot.left_ns
                    .load(Ordering::Relaxed)
                    .saturating_sub(slot.entered_ns.load(Ordering::Relaxed)),
            );
            results[position].1 = Outcome::Captured {
                ips,
                pc: slot.pc.load(Ordering::Relaxed),
                sp: slot.sp.load(Ordering::Relaxed),
                pause,
                partial: slot.partial.load(Ordering::Relaxed) != 0,
            };
            slot.state.store(FREE, Ordering::Release);
        }
    }
    results
}

fn is_done(slot: &Slot, generation: u32) -> bool {
    slot.state.load(Ordering::Acquire) == pack(generation, DONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_indexes_map_onto_doubling_segments() {
        assert_eq!(locate(0), Some((0, 0)));
        assert_eq!(locate(63), Some((0, 63)));
        assert_eq!(locate(64), Some((1, 0)));
        assert_eq!(locate(191), Some((1, 127)));
        assert_eq!(locate(192), Some((2, 0)));
        let last = BASE * ((1 << SEGMENTS) - 1);
        assert_eq!(
            locate(last - 1),
            Some((SEGMENTS - 1, (BASE << (SEGMENTS - 1)) - 1))
        );
        assert_eq!(locate(last), None);
    }

    #[test]
    fn state_words_keep_generation_and_state_apart() {
        let word = pack(0xdead_beef, DONE);
        assert_eq!(state_of(word), DONE);
        assert_eq!(word >> 8, 0xdead_beef);
        assert_ne!(pack(1, REQUESTED), pack(2, REQUESTED));
        assert_eq!(pack(7, FREE) & 0xff, FREE);
        assert_eq!(state_of(pack(9, ABANDONED)), ABANDONED);
    }
}
