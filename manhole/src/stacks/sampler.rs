//! Capturing the raw stack of every thread in-process, by signal (Linux).
//!
//! The dumper sends each thread a real-time signal with `rt_tgsigqueueinfo`, carrying a slot
//! index and a generation in `si_value`. The handler, running on that thread, copies its
//! registers and the live part of its stack into the slot and wakes the dumper through a
//! futex. It does not unwind: the walk happens later, on the dumper's thread, over the copy
//! ([`super::unwind`]), so nothing the walk reads can fault and nothing it takes can deadlock
//! the interrupted thread. No thread is ever parked: each pays for one copy (a few µs).
//!
//! # The handler's contract (async-signal safety)
//! - It allocates nothing, takes no lock, formats nothing, calls no unwinder, and preserves
//!   `errno`. It needs a few hundred bytes of stack, so it fits on the smallest alternate
//!   signal stack and on a thread with little stack left.
//! - It acts only on `SI_QUEUE` signals sent by this very process (`si_pid` is this process's id, cached: the handler makes
//!   no `getpid` call);
//!   anything else (a `kill`, a `tgkill` from a shell) is ignored.
//! - It writes only into a slot it won with a compare-and-swap from `REQUESTED(gen)` to
//!   `WRITING(gen)`. The dumper abandons a slot by swapping `REQUESTED(gen)` to `ABANDONED`,
//!   so a signal that arrives after the deadline (a thread that had it blocked, a stopped
//!   thread) finds nothing to do. A slot being written is never handed out again until the
//!   handler has finished with it, and the buffer it writes into is never unmapped while any
//!   handler may still write.
//! - It reads memory only with `process_vm_readv` on its own process, which returns an error
//!   instead of faulting on an unmapped or guard page, and only from the stack pointer up to
//!   the end of the mapping that holds it (as listed in `/proc/self/maps` just before the
//!   signal), at most the slot's capacity. Where `process_vm_readv` is refused (a seccomp
//!   filter), it copies only within that listed mapping.
//! - `SA_RESTART` so that interrupted `read`, `write`, `accept`, futex waits and the like
//!   resume without `EINTR`; `SA_ONSTACK` so a thread near stack overflow runs the handler on
//!   its alternate signal stack (Rust gives every thread one).

use std::ffi::c_void;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::unwind::Registers;
use crate::Error;
use crate::forklock::ForkLock;
use crate::signal::Signal;

/// The most stack copied per thread; deeper stacks are cut. Halved while memory is short.
const COPY_CAP: usize = 256 * 1024;
/// The least worth copying: below this, only registers are recorded.
const COPY_MIN: usize = 8 * 1024;

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
/// Cache-line aligned: handlers on different CPUs never write the same line.
#[repr(C, align(64))]
struct Slot {
    state: AtomicU64,
    pc: AtomicUsize,
    sp: AtomicUsize,
    fp: AtomicUsize,
    lr: AtomicUsize,
    /// The thread's signal mask when it was interrupted (signals 1..=64).
    mask: AtomicU64,
    /// The register a system call number goes in (rax, x8): on x86_64 the call's result (a
    /// negative errno) once it returned.
    syscall_reg: AtomicUsize,
    /// The registers a system call's six arguments go in (rdi rsi rdx r10 r8 r9; x0..x5).
    args: [AtomicUsize; 6],
    entered_ns: AtomicU64,
    left_ns: AtomicU64,
    /// Where to copy the stack, and how much room there is (set by the dumper).
    buffer: AtomicUsize,
    capacity: AtomicUsize,
    /// The sorted `(start, end)` readable mappings of the process (set by the dumper).
    maps: AtomicUsize,
    maps_len: AtomicUsize,
    /// How many bytes of stack were copied.
    copied: AtomicUsize,
    /// The copy mode for this request (set by the dumper; 0: the process-wide one).
    mode: AtomicUsize,
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
            // only), and the table is leaked: never freed.
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

/// Every slot back to free: in a child forked in the middle of its parent's dump, the requests
/// in flight were for threads that do not exist here.
fn reset_slots() {
    let mut index = 0;
    while let Some(slot) = slot(index) {
        slot.state.store(FREE, Ordering::Release);
        index += 1;
    }
}

/// This process's id, for the handler (which then makes no `getpid` call); refreshed in a
/// forked child before anything else runs there.
static PID: AtomicI32 = AtomicI32::new(0);

fn own_pid() -> i32 {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id() as i32,
        pid => pid,
    }
}

/// In a forked child (atfork, async-signal-safe): its own pid, and every slot free (requests in
/// flight were for the parent's threads, which do not exist here).
pub(crate) fn after_fork_in_child() {
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    reset_slots();
}

/// How the handler copies stack memory.
static COPY_MODE: AtomicU8 = AtomicU8::new(COPY_NONE);
const COPY_NONE: u8 = 0;
/// `process_vm_readv` on our own process: a bad address is an error, never a fault.
const COPY_VM_READV: u8 = 1;
/// A plain copy, only within the mapping listed for the stack pointer.
const COPY_WITHIN_MAPPING: u8 = 2;

/// Copies `len` bytes at `from` to `to` with `process_vm_readv`; the bytes copied (0 on error).
fn vm_read(from: usize, to: *mut u8, len: usize) -> usize {
    let local = libc::iovec {
        iov_base: to.cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: from as *mut c_void,
        iov_len: len,
    };
    // SAFETY: process_vm_readv on our own pid reads through the kernel, which checks every
    // page of `remote` and returns an error (or a short count) instead of faulting; `local` is
    // writable memory the caller owns for `len` bytes. It is a plain system call: safe in a
    // signal handler.
    let n = unsafe {
        libc::syscall(
            libc::SYS_process_vm_readv,
            own_pid(),
            &local as *const libc::iovec,
            1usize,
            &remote as *const libc::iovec,
            1usize,
            0usize,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// Reads memory of this process into `out` without ever faulting: through the kernel where it
/// allows it, else nothing. Returns the bytes read.
pub(crate) fn read_memory(address: usize, out: &mut [u8]) -> usize {
    if !may_read_through_kernel() {
        return 0;
    }
    vm_read(address, out.as_mut_ptr(), out.len())
}

/// Whether [`read_memory_checked`] may be used on the calling thread (the check
/// [`read_memory`] makes each time: one `/proc` status read).
pub(crate) fn can_read_memory() -> bool {
    may_read_through_kernel()
}

/// [`read_memory`] for a caller that found [`can_read_memory`] true on this thread, for many
/// reads in a row.
pub(crate) fn read_memory_checked(address: usize, out: &mut [u8]) -> usize {
    vm_read(address, out.as_mut_ptr(), out.len())
}

/// Reads the machine code around the program counters of interrupted threads (to tell whether
/// they sit at a system call instruction), through the kernel, so a pc in an unmapped page is
/// an unknown, never a fault. Each address is read once per reader: threads of a pool share
/// the few addresses they wait at.
pub(crate) struct CodeReader {
    allowed: bool,
    seen: std::collections::HashMap<usize, Option<[u8; 2 * super::record::INSN]>>,
}

impl CodeReader {
    /// For the calling thread; `process_vm_readv` is checked to be allowed once, here.
    pub(crate) fn new() -> CodeReader {
        CodeReader {
            allowed: may_read_through_kernel(),
            seen: std::collections::HashMap::new(),
        }
    }

    /// The bytes `[pc - INSN, pc + INSN)`, if they can be read.
    pub(crate) fn around(&mut self, pc: usize) -> Option<[u8; 2 * super::record::INSN]> {
        const LEN: usize = 2 * super::record::INSN;
        if !self.allowed || pc < super::record::INSN {
            return None;
        }
        *self.seen.entry(pc).or_insert_with(|| {
            let mut bytes = [0u8; LEN];
            (vm_read(pc - super::record::INSN, bytes.as_mut_ptr(), LEN) == LEN).then_some(bytes)
        })
    }
}

/// Each CPU's scheduler task clock against `CLOCK_MONOTONIC`, in ns (see `record`): the calling
/// thread is moved onto each CPU it may run on in turn, and its own `exec_start` there (set when
/// it was picked to run, so at most the clock's present value) is read, then the monotonic
/// time; the difference is at most the CPU's true offset. Indexed by CPU, `None` for a CPU not
/// measured. The thread's affinity is put back as it was. Call it on one of manhole's own
/// threads (a session's), never on a thread of the program (`dump_stacktraces` does not ask
/// for it).
pub(crate) fn task_clock_offsets() -> Vec<Option<i64>> {
    let me = crate::sys::gettid();
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    let mut original: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `original` is a valid, writable cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut original) } != 0 {
        return Vec::new();
    }
    let cpus = 8 * size;
    let mut offsets = vec![None; cpus];
    for (cpu, offset) in offsets.iter_mut().enumerate() {
        // SAFETY: `cpu` is below CPU_SETSIZE (8 * size of the set).
        if !unsafe { libc::CPU_ISSET(cpu, &original) } {
            continue;
        }
        // SAFETY: as above; `one` is plain data holding only `cpu`.
        let one = unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            one
        };
        // SAFETY: `one` is a valid cpu_set_t; the call moves the calling thread (manhole's own)
        // onto `cpu` before it returns, or fails and changes nothing.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            continue;
        }
        // SAFETY: sched_getcpu has no preconditions.
        if unsafe { libc::sched_getcpu() } != cpu as i32 {
            continue;
        }
        let Some(start) = crate::procfs::exec_start_ns(me) else {
            break; // no `sched` file: nothing to calibrate
        };
        let now = now_ns();
        // Moved away meanwhile (the affinity allows only `cpu`, so only if it was changed).
        // SAFETY: as above.
        if unsafe { libc::sched_getcpu() } == cpu as i32 {
            *offset = Some(start as i64 - now as i64);
        }
    }
    // SAFETY: `original` is the mask read above.
    if unsafe { libc::sched_setaffinity(0, size, &original) } != 0 {
        // The CPUs allowed changed meanwhile (a cpuset): take the main thread's set, which
        // follows them, rather than stay pinned to the last CPU visited.
        // SAFETY: `now` is a valid, writable cpu_set_t of `size` bytes; then as above.
        unsafe {
            let mut now: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(libc::getpid(), size, &mut now) == 0 {
                libc::sched_setaffinity(0, size, &now);
            }
        }
    }
    offsets
}

/// The monotonic clock in ns, as the handler reads it.
pub(crate) fn monotonic_ns() -> u64 {
    now_ns()
}

/// The CPU time thread `tid` of this process has used, from its CPU clock (the scheduler's
/// runtime in ns, including the slice it may be running now): one system call, no file.
pub(crate) fn thread_cpu_time(tid: i32) -> Option<Duration> {
    // The kernel's encoding of a thread's CPU clock (MAKE_THREAD_CPUCLOCK in glibc and
    // linux/posix-timers.h): the tid, complemented, shifted by 3, with PERTHREAD (4) | SCHED
    // (2). Valid for any thread of the calling process.
    let clock: libc::clockid_t = (!tid << 3) | 6;
    // SAFETY: timespec is plain data, filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec; an unknown clock is an error (EINVAL), and
    // a tid that exited gives EINVAL too.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Whether the calling thread may call `process_vm_readv`: the process allowed it at install,
/// and this thread has no seccomp filter (one installed since could kill the process for it).
fn may_read_through_kernel() -> bool {
    COPY_MODE.load(Ordering::Relaxed) == COPY_VM_READV
        && crate::procfs::task_status(crate::sys::gettid()).is_some_and(|s| s.seccomp == 0)
}

/// Decides how stacks are copied, by trying `process_vm_readv` on a buffer of our own.
fn choose_copy_mode() {
    PID.store(std::process::id() as i32, Ordering::Relaxed);
    // Under a seccomp filter, trying a system call it forbids may kill the process: then no
    // system call is tried, and stacks are copied within their listed mappings.
    let me = crate::sys::gettid();
    if crate::procfs::task_status(me).is_none_or(|s| s.seccomp != 0) {
        COPY_MODE.store(COPY_WITHIN_MAPPING, Ordering::Release);
        return;
    }
    let source = [0x5au8; 64];
    let mut target = [0u8; 64];
    let mode = if vm_read(source.as_ptr() as usize, target.as_mut_ptr(), 64) == 64 && target == source {
        COPY_VM_READV
    } else {
        COPY_WITHIN_MAPPING
    };
    COPY_MODE.store(mode, Ordering::Release);
}

/// The end of the listed mapping holding `address`, by binary search over `(start, end)` pairs.
fn mapping_end(maps: &[(usize, usize)], address: usize) -> Option<usize> {
    let (mut low, mut high) = (0, maps.len());
    while low < high {
        let mid = low + (high - low) / 2;
        let (start, end) = maps[mid];
        if address < start {
            high = mid;
        } else if address >= end {
            low = mid + 1;
        } else {
            return Some(end);
        }
    }
    None
}

/// Copies the live stack from `sp` into the slot's buffer (in the handler).
fn copy_stack(slot: &Slot, sp: usize) -> usize {
    let buffer = slot.buffer.load(Ordering::Relaxed) as *mut u8;
    let capacity = slot.capacity.load(Ordering::Relaxed);
    if buffer.is_null() || capacity == 0 {
        return 0;
    }
    let maps_ptr = slot.maps.load(Ordering::Relaxed) as *const (usize, usize);
    let maps: &[(usize, usize)] = if maps_ptr.is_null() {
        &[]
    } else {
        // SAFETY: the dumper published a table of `maps_len` pairs in memory that stays mapped
        // while any handler may write this slot (see `Arena`).
        unsafe { std::slice::from_raw_parts(maps_ptr, slot.maps_len.load(Ordering::Relaxed)) }
    };
    let end = mapping_end(maps, sp);
    let mode = match slot.mode.load(Ordering::Relaxed) as u8 {
        COPY_NONE => COPY_MODE.load(Ordering::Relaxed),
        mode => mode,
    };
    match mode {
        COPY_VM_READV => {
            let len = end.map_or(capacity, |end| (end - sp).min(capacity));
            vm_read(sp, buffer, len)
        }
        COPY_WITHIN_MAPPING => match end {
            Some(end) => {
                let len = (end - sp).min(capacity);
                // SAFETY: `[sp, sp + len)` lies inside a readable mapping listed just before the
                // signal, starting at the interrupted thread's own stack pointer; the buffer has
                // room for `capacity >= len` bytes and does not overlap a stack.
                unsafe { ptr::copy_nonoverlapping(sp as *const u8, buffer, len) };
                len
            }
            None => 0,
        },
        _ => 0,
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

/// What the handler saw of the interrupted thread: the registers the walk starts from, its
/// signal mask, and the registers of a system call it was in (or was about to make, or had
/// just returned from), read from the signal's `ucontext`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Context {
    pub(crate) regs: Registers,
    /// The thread's signal mask (signals 1..=64) when it was interrupted.
    pub(crate) mask: u64,
    /// rax on x86_64 (the number; the result once the call returned), x8 on aarch64.
    pub(crate) syscall_reg: usize,
    /// rdi rsi rdx r10 r8 r9 on x86_64, x0..x5 on aarch64 (x0 holds the result once the call
    /// returned).
    pub(crate) args: [usize; 6],
}

/// Stores the interrupted thread's registers and mask into `slot` straight from the
/// `ucontext`, without building a [`Context`] on the handler's stack; returns the stack
/// pointer.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn store_context(slot: &Slot, context: *mut c_void) -> usize {
    // SAFETY: the kernel passes a valid ucontext_t as the third argument of an SA_SIGINFO
    // handler; only saved registers and the first word of the saved mask are read.
    unsafe {
        let uc = &*context.cast::<libc::ucontext_t>();
        let gregs = &uc.uc_mcontext.gregs;
        let sp = gregs[libc::REG_RSP as usize] as usize;
        slot.pc
            .store(gregs[libc::REG_RIP as usize] as usize, Ordering::Relaxed);
        slot.sp.store(sp, Ordering::Relaxed);
        slot.fp
            .store(gregs[libc::REG_RBP as usize] as usize, Ordering::Relaxed);
        slot.lr.store(0, Ordering::Relaxed);
        let mask = ptr::addr_of!(uc.uc_sigmask).cast::<u64>().read_unaligned();
        slot.mask.store(mask, Ordering::Relaxed);
        slot.syscall_reg
            .store(gregs[libc::REG_RAX as usize] as usize, Ordering::Relaxed);
        slot.args[0].store(gregs[libc::REG_RDI as usize] as usize, Ordering::Relaxed);
        slot.args[1].store(gregs[libc::REG_RSI as usize] as usize, Ordering::Relaxed);
        slot.args[2].store(gregs[libc::REG_RDX as usize] as usize, Ordering::Relaxed);
        slot.args[3].store(gregs[libc::REG_R10 as usize] as usize, Ordering::Relaxed);
        slot.args[4].store(gregs[libc::REG_R8 as usize] as usize, Ordering::Relaxed);
        slot.args[5].store(gregs[libc::REG_R9 as usize] as usize, Ordering::Relaxed);
        sp
    }
}

/// Stores the interrupted thread's registers and mask into `slot` straight from the
/// `ucontext`, without building a [`Context`] on the handler's stack; returns the stack
/// pointer.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn store_context(slot: &Slot, context: *mut c_void) -> usize {
    // SAFETY: the kernel passes a valid ucontext_t as the third argument of an SA_SIGINFO
    // handler; only saved registers and the first word of the saved mask are read.
    unsafe {
        let uc = &*context.cast::<libc::ucontext_t>();
        let x = &uc.uc_mcontext.regs;
        let sp = uc.uc_mcontext.sp as usize;
        slot.pc.store(uc.uc_mcontext.pc as usize, Ordering::Relaxed);
        slot.sp.store(sp, Ordering::Relaxed);
        slot.fp.store(x[29] as usize, Ordering::Relaxed);
        slot.lr.store(x[30] as usize, Ordering::Relaxed);
        let mask = ptr::addr_of!(uc.uc_sigmask).cast::<u64>().read_unaligned();
        slot.mask.store(mask, Ordering::Relaxed);
        slot.syscall_reg.store(x[8] as usize, Ordering::Relaxed);
        slot.args[0].store(x[0] as usize, Ordering::Relaxed);
        slot.args[1].store(x[1] as usize, Ordering::Relaxed);
        slot.args[2].store(x[2] as usize, Ordering::Relaxed);
        slot.args[3].store(x[3] as usize, Ordering::Relaxed);
        slot.args[4].store(x[4] as usize, Ordering::Relaxed);
        slot.args[5].store(x[5] as usize, Ordering::Relaxed);
        sp
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
    if info.code != libc::SI_QUEUE || info.pid != own_pid() {
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
    let sp = store_context(slot, context);
    let copied = copy_stack(slot, sp);
    slot.copied.store(copied, Ordering::Relaxed);
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

/// The current handler of `signal` (`SIG_DFL`, `SIG_IGN` or a function's address).
fn disposition(signal: i32) -> Option<usize> {
    // SAFETY: sigaction is plain data; with a null new action, sigaction only reads the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid, writable sigaction; a null `act` changes nothing.
    let rc = unsafe { libc::sigaction(signal, ptr::null(), &mut old) };
    (rc == 0).then_some(old.sa_sigaction)
}

/// The current disposition of `signal`: whether nobody handles it (SIG_DFL).
fn is_unhandled(signal: i32) -> bool {
    disposition(signal) == Some(libc::SIG_DFL)
}

/// Whether the stack signal still has manhole's handler. If the program (or a library) reset
/// it to the default, sending it would kill the process; if it installed a handler of its own,
/// that handler would run once per thread and no stack would come back.
pub(crate) fn handler_in_place() -> Result<(), String> {
    let Some(signal) = signal() else {
        return Err("stack capture is not set up".to_owned());
    };
    let name = Signal::from_raw(signal).map_or_else(|_| signal.to_string(), |s| s.name());
    match disposition(signal) {
        Some(handler) if handler == on_signal as *const () as usize => Ok(()),
        Some(libc::SIG_DFL) => Err(format!(
            "{name}, the stack signal, was reset to its default action by the program, which would kill \
             it: no thread was signalled"
        )),
        Some(libc::SIG_IGN) => Err(format!(
            "{name}, the stack signal, is now ignored by the program: no thread was signalled"
        )),
        Some(_) => Err(format!(
            "{name}, the stack signal, now has a handler of the program's own: no thread was signalled \
             (set stack_signal to a signal the program does not use)"
        )),
        None => Err(format!("the disposition of {name} cannot be read")),
    }
}

/// Installs the handler on `requested`, or on the highest real-time signal nobody handles.
/// Returns the signal in use. Idempotent: a second call keeps the first signal.
pub(crate) fn init(requested: Option<Signal>) -> Result<Signal, Error> {
    static INIT: ForkLock<()> = ForkLock::new(());
    let _guard = INIT.lock();
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
    choose_copy_mode();
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

/// A thread's registers and a copy of its live stack.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) regs: Registers,
    /// The bytes from `regs.sp` up.
    pub(crate) stack: Vec<u8>,
}

/// What became of one thread's capture; `W` is what the caller made of its registers and
/// stack copy (see [`capture`]).
#[derive(Clone, Debug)]
pub(crate) enum Outcome<W> {
    /// Its registers and stack were copied, and walked into `walked`; `context` is what the
    /// handler saw, `pause` how long it took.
    Captured {
        walked: W,
        pause: Duration,
        context: Context,
    },
    /// Not asked, with the reason.
    Skipped(String),
    /// Asked, but it did not answer before the deadline.
    NoAnswer,
    /// It exited before it could be asked.
    Gone,
}

/// What dumps keep between them; one dump at a time per process.
struct DumpState {
    /// The generation of the last request.
    generation: u32,
    /// Where handlers copy stacks, kept from one dump to the next (its pages stay faulted in,
    /// so a handler's copy does not pay for page faults) until [`release`].
    arena: Option<Arena>,
}

static DUMPS: ForkLock<DumpState> = ForkLock::new(DumpState {
    generation: 0,
    arena: None,
});

/// Gives back the stack copy buffers (called when no session needs them).
pub(crate) fn release() {
    let mut state = DUMPS.lock();
    if state.inherited {
        reset_slots();
    }
    if let Some(arena) = state.arena.take() {
        arena.release(any_slot_writing());
    }
}

/// Whether a late handler may still be writing into the arena.
fn any_slot_writing() -> bool {
    let mut index = 0;
    while let Some(slot) = slot(index) {
        if state_of(slot.state.load(Ordering::Acquire)) == WRITING {
            return true;
        }
        index += 1;
    }
    false
}

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

/// The calling thread's own registers and stack, taken without a signal: the registers are
/// read here, and the stack from here up is this thread's own, mapped and alive.
#[inline(never)]
pub(crate) fn capture_self() -> Snapshot {
    let regs = own_registers();
    let maps = readable_mappings();
    let end = mapping_end(&maps, regs.sp).unwrap_or(regs.sp);
    let len = (end - regs.sp).min(COPY_CAP);
    let mut stack = vec![0u8; len];
    let copied = match may_read_through_kernel() {
        true => vm_read(regs.sp, stack.as_mut_ptr(), len),
        false => {
            // SAFETY: `[sp, sp + len)` is this thread's own live stack, inside its listed mapping.
            unsafe { ptr::copy_nonoverlapping(regs.sp as *const u8, stack.as_mut_ptr(), len) };
            len
        }
    };
    stack.truncate(copied);
    Snapshot { regs, stack }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn own_registers() -> Registers {
    let (pc, sp, fp): (usize, usize, usize);
    // SAFETY: reads the instruction pointer, stack pointer and frame pointer into registers;
    // touches no memory and no flags.
    unsafe {
        std::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags)
        );
    }
    Registers { pc, sp, fp, lr: 0 }
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn own_registers() -> Registers {
    let (pc, sp, fp, lr): (usize, usize, usize, usize);
    // SAFETY: reads the program counter, stack pointer, frame pointer and link register into
    // registers; touches no memory and no flags.
    unsafe {
        std::arch::asm!(
            "adr {pc}, .",
            "mov {sp}, sp",
            "mov {fp}, x29",
            "mov {lr}, x30",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            lr = out(reg) lr,
            options(nomem, nostack, preserves_flags)
        );
    }
    Registers { pc, sp, fp, lr }
}

/// The private readable, writable mappings of the process (where stacks live), sorted. Empty
/// if `/proc/self/maps` cannot be read.
fn readable_mappings() -> Vec<(usize, usize)> {
    let Some(text) = crate::procfs::maps() else {
        return Vec::new();
    };
    let mut maps: Vec<(usize, usize)> = Vec::with_capacity(text.len() / 64);
    for line in text.split(|b| *b == b'\n') {
        let mut fields = line.split(|b| *b == b' ');
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        // Private, readable and writable: where stacks live. Shared mappings (which a
        // truncated file can make fault with SIGBUS) are never listed.
        if perms.first() != Some(&b'r') || perms.get(1) != Some(&b'w') || perms.get(3) != Some(&b'p') {
            continue;
        }
        let Some(dash) = range.iter().position(|b| *b == b'-') else {
            continue;
        };
        let hex = |bytes: &[u8]| usize::from_str_radix(std::str::from_utf8(bytes).ok()?, 16).ok();
        if let (Some(start), Some(end)) = (hex(&range[..dash]), hex(&range[dash + 1..])) {
            // Not merged with a neighbour: the copy never runs past the mapping that holds the
            // stack pointer, whatever becomes of the next one.
            maps.push((start, end));
        }
    }
    maps
}

/// The most mappings the handlers search (a process with more is rare; past it, a stack whose
/// mapping is not listed is copied up to the capacity by `process_vm_readv`, or not at all).
const MAPS_CAP: usize = 64 * 1024;

/// Memory the handlers write into: the mappings table, then one stack buffer per request.
/// Kept from one dump to the next; unmapped by [`release`] unless a handler might still be
/// writing into it, in which case it is left mapped for good (a rare, bounded leak rather than
/// a fault in the program).
struct Arena {
    base: *mut u8,
    len: usize,
    per_thread: usize,
    buffers: usize,
}

// SAFETY: the arena is plain memory owned by the dump state, used under the dump lock.
unsafe impl Send for Arena {}

const TABLE_BYTES: usize = MAPS_CAP * std::mem::size_of::<(usize, usize)>();

impl Arena {
    /// Room for `threads` copies; the copy size is halved while the memory cannot be had.
    fn new(threads: usize) -> Option<Arena> {
        let buffers = threads.max(1).next_power_of_two().max(64);
        let mut per_thread = COPY_CAP;
        while per_thread >= COPY_MIN {
            let len = TABLE_BYTES + buffers * per_thread;
            // SAFETY: an anonymous private mapping with no address hint; the kernel picks the
            // address. MAP_NORESERVE: only the pages handlers write are ever backed.
            let base = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if base != libc::MAP_FAILED {
                return Some(Arena {
                    base: base.cast(),
                    len,
                    per_thread,
                    buffers,
                });
            }
            per_thread /= 2;
        }
        None
    }

    /// Writes the mappings table (at most [`MAPS_CAP`] entries); returns how many it holds.
    fn set_maps(&self, maps: &[(usize, usize)]) -> usize {
        let count = maps.len().min(MAPS_CAP);
        // SAFETY: the table region holds MAPS_CAP pairs at the page-aligned start of the
        // mapping; no handler reads it now (the dump lock is held and no request is out).
        unsafe { ptr::copy_nonoverlapping(maps.as_ptr(), self.base.cast::<(usize, usize)>(), count) };
        count
    }

    fn buffer(&self, index: usize) -> usize {
        self.base as usize + TABLE_BYTES + index * self.per_thread
    }

    fn release(self, still_writing: bool) {
        if !still_writing {
            // SAFETY: `base..base+len` is the mapping made in `new`, and no handler can write
            // to it any more: every slot pointing into it is done, abandoned or free.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }
}

/// Whether the memory stack copies of `threads` threads may take can be had.
fn headroom_for(threads: usize) -> bool {
    crate::headroom::check(threads.saturating_mul(32 * 1024) + (1 << 20)).is_ok()
}

/// Captures every thread in `tids` (the caller's own thread must not be among them, nor any
/// thread that blocks the signal), waiting at most `deadline` for answers. `walk` is called
/// with each answer's registers and stack copy, in place (before the buffer is reused).
pub(crate) fn capture<W>(
    tids: &[i32],
    filtered: &[i32],
    deadline: Duration,
    walk: impl FnMut(Registers, &[u8]) -> W,
) -> Vec<(i32, Outcome<W>)> {
    if let Err(why) = handler_in_place() {
        return tids
            .iter()
            .map(|tid| (*tid, Outcome::Skipped(why.clone())))
            .collect();
    }
    let Some(signal) = signal() else {
        return Vec::new();
    };
    round(tids, filtered, signal, Instant::now() + deadline, walk)
}

/// One request to each thread in `tids`, answered or abandoned by `until`. The requests go
/// out in one burst: each signalled thread wakes and competes with the dumper for the CPU.
fn round<W>(
    tids: &[i32],
    filtered: &[i32],
    signal: i32,
    until: Instant,
    walk: impl FnMut(Registers, &[u8]) -> W,
) -> Vec<(i32, Outcome<W>)> {
    let mut state = DUMPS.lock();
    if state.inherited {
        reset_slots();
    }
    state.generation = state.generation.wrapping_add(1).max(1);
    let generation = state.generation;
    let capacity = reserve(tids.len() + 64);
    // A handler of an earlier round that is still writing owns its buffer and reads the table:
    // then the arena is retired (left mapped for good) and a new one made.
    let writing = any_slot_writing();
    if writing
        || state
            .arena
            .as_ref()
            .is_none_or(|a| a.buffers < tids.len() || a.per_thread < COPY_CAP)
    {
        if let Some(old) = state.arena.take() {
            old.release(writing);
        }
        // Only what handlers write is backed, a few KiB a thread; under a cgroup limit that
        // leaves less, stacks are not copied at all.
        state.arena = headroom_for(tids.len()).then(|| Arena::new(tids.len())).flatten();
    }
    let arena = state.arena.as_ref();
    let answers_before = DONE_WORD.load(Ordering::SeqCst);
    let (mut results, pending) = send_requests(tids, filtered, signal, generation, capacity, arena);
    await_answers(&pending, generation, answers_before, until);
    collect(&mut results, &pending, generation, walk);
    results
}

/// `(position in the results, slot index)` of each request in flight.
type InFlight = Vec<(usize, usize)>;

/// Sends every request: fills a slot for each thread and signals it. Returns one result per
/// thread (`NoAnswer` for those asked) and the `(position in results, slot index)` of the
/// requests in flight.
fn send_requests<W>(
    tids: &[i32],
    filtered: &[i32],
    signal: i32,
    generation: u32,
    capacity: usize,
    arena: Option<&Arena>,
) -> (Vec<(i32, Outcome<W>)>, InFlight) {
    let pid = own_pid();
    let maps_len = arena.map_or(0, |a| a.set_maps(&readable_mappings()));
    let mut results: Vec<(i32, Outcome<W>)> = Vec::with_capacity(tids.len());
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut next_slot = 0;
    let mut taken_over: Option<String> = None;
    for &tid in tids {
        if let Some(why) = &taken_over {
            results.push((tid, Outcome::Skipped(why.clone())));
            continue;
        }
        // A slot that a late handler is still writing is not handed out again.
        while next_slot < capacity
            && slot(next_slot).is_some_and(|s| state_of(s.state.load(Ordering::Acquire)) == WRITING)
        {
            next_slot += 1;
        }
        let Some(slot) = slot(next_slot).filter(|_| next_slot < capacity) else {
            results.push((
                tid,
                Outcome::Skipped("there are more threads than capture slots".to_owned()),
            ));
            continue;
        };
        // The program may change the disposition at any moment: look again before each signal.
        if let Err(why) = handler_in_place() {
            results.push((tid, Outcome::Skipped(why.clone())));
            taken_over = Some(why);
            continue;
        }
        match arena.filter(|a| pending.len() < a.buffers) {
            Some(arena) => {
                slot.buffer.store(arena.buffer(pending.len()), Ordering::Relaxed);
                slot.capacity.store(arena.per_thread, Ordering::Relaxed);
                slot.maps.store(arena.base as usize, Ordering::Relaxed);
                slot.maps_len.store(maps_len, Ordering::Relaxed);
            }
            None => {
                slot.buffer.store(0, Ordering::Relaxed);
                slot.capacity.store(0, Ordering::Relaxed);
                slot.maps.store(0, Ordering::Relaxed);
                slot.maps_len.store(0, Ordering::Relaxed);
            }
        }
        let mode = if filtered.binary_search(&tid).is_ok() {
            COPY_WITHIN_MAPPING
        } else {
            COPY_NONE
        };
        slot.mode.store(usize::from(mode), Ordering::Relaxed);
        slot.state.store(pack(generation, REQUESTED), Ordering::Release);
        let value = (u64::from(generation) << 32) | next_slot as u64;
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
                    Outcome::Skipped(format!("the signal could not be sent: {e}"))
                };
                results.push((tid, outcome));
            }
        }
    }
    (results, pending)
}

/// Sleeps until every request in `pending` is answered, or `until`.
fn await_answers(pending: &[(usize, usize)], generation: u32, answers_before: u32, until: Instant) {
    let all_done = || {
        pending
            .iter()
            .all(|(_, i)| slot(*i).is_some_and(|s| is_done(s, generation)))
    };
    let expected = pending.len() as u32;
    loop {
        let seen = DONE_WORD.load(Ordering::SeqCst);
        // Count first, scan only when enough handlers have finished since the requests left.
        if seen.wrapping_sub(answers_before) >= expected && all_done() {
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
}

/// Abandons the requests not answered, and walks and frees the answered ones.
fn collect<W>(
    results: &mut [(i32, Outcome<W>)],
    pending: &[(usize, usize)],
    generation: u32,
    mut walk: impl FnMut(Registers, &[u8]) -> W,
) {
    for &(position, index) in pending {
        let Some(slot) = slot(index) else { continue };
        // Abandon unanswered requests; a handler mid-write is running and finishes soon.
        if slot
            .state
            .compare_exchange(
                pack(generation, REQUESTED),
                pack(generation, ABANDONED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            continue;
        }
        let spin_until = Instant::now() + Duration::from_millis(50);
        while slot.state.load(Ordering::Acquire) == pack(generation, WRITING) && Instant::now() < spin_until {
            std::thread::yield_now();
        }
        if !is_done(slot, generation) {
            continue;
        }
        let copied = slot
            .copied
            .load(Ordering::Relaxed)
            .min(slot.capacity.load(Ordering::Relaxed));
        let buffer = slot.buffer.load(Ordering::Relaxed);
        let stack: &[u8] = if buffer == 0 || copied == 0 {
            &[]
        } else {
            // SAFETY: the handler wrote `copied` bytes at `buffer`, inside the arena, which
            // stays mapped while the dump lock is held; it has finished (DONE).
            unsafe { std::slice::from_raw_parts(buffer as *const u8, copied) }
        };
        let pause = Duration::from_nanos(
            slot.left_ns
                .load(Ordering::Relaxed)
                .saturating_sub(slot.entered_ns.load(Ordering::Relaxed)),
        );
        let context = Context {
            regs: Registers {
                pc: slot.pc.load(Ordering::Relaxed),
                sp: slot.sp.load(Ordering::Relaxed),
                fp: slot.fp.load(Ordering::Relaxed),
                lr: slot.lr.load(Ordering::Relaxed),
            },
            mask: slot.mask.load(Ordering::Relaxed),
            syscall_reg: slot.syscall_reg.load(Ordering::Relaxed),
            args: std::array::from_fn(|i| slot.args[i].load(Ordering::Relaxed)),
        };
        results[position].1 = Outcome::Captured {
            walked: walk(context.regs, stack),
            pause,
            context,
        };
        slot.state.store(FREE, Ordering::Release);
    }
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
    fn mappings_are_found_by_binary_search() {
        let maps = [(0x1000, 0x2000), (0x3000, 0x5000), (0x8000, 0x9000)];
        assert_eq!(mapping_end(&maps, 0x1000), Some(0x2000));
        assert_eq!(mapping_end(&maps, 0x1fff), Some(0x2000));
        assert_eq!(mapping_end(&maps, 0x2000), None);
        assert_eq!(mapping_end(&maps, 0x4000), Some(0x5000));
        assert_eq!(mapping_end(&maps, 0x8fff), Some(0x9000));
        assert_eq!(mapping_end(&maps, 0x9000), None);
        assert_eq!(mapping_end(&[], 0x9000), None);
    }

    #[test]
    fn process_vm_readv_reads_and_refuses_without_faulting() {
        let source: Vec<u8> = (0..=255).collect();
        let mut target = vec![0u8; 256];
        assert_eq!(vm_read(source.as_ptr() as usize, target.as_mut_ptr(), 256), 256);
        assert_eq!(source, target);
        // The zero page and a freed mapping are refused, never a fault.
        assert_eq!(vm_read(8, target.as_mut_ptr(), 64), 0);
    }

    #[test]
    fn own_stack_is_copied_from_the_live_stack_pointer() {
        choose_copy_mode();
        let snapshot = capture_self();
        assert!(snapshot.regs.pc != 0 && snapshot.regs.sp != 0);
        assert!(snapshot.stack.len() >= 256, "{} bytes", snapshot.stack.len());
    }

    /// The handler's own stack use, measured on a painted alternate signal stack: what the
    /// kernel's signal frame needs (AT_MINSIGSTKSZ) plus the handler must fit where ordinary
    /// signals fit, with room to spare.
    #[test]
    fn the_handler_needs_little_stack_beyond_the_kernels_signal_frame() {
        init(None).expect("stack signal");
        const SIZE: usize = 64 * 1024;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let mut stack = vec![0xaau8; SIZE];
            let new = libc::stack_t {
                ss_sp: stack.as_mut_ptr().cast(),
                ss_flags: 0,
                ss_size: SIZE,
            };
            // SAFETY: stack_t is plain data; `old` receives Rust's alternate stack, restored below.
            let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
            // SAFETY: `new` describes a live buffer of SIZE bytes owned by this thread.
            assert_eq!(unsafe { libc::sigaltstack(&new, &mut old) }, 0);
            tid_tx.send(crate::sys::gettid()).unwrap();
            done_rx.recv().unwrap();
            // SAFETY: puts back the alternate stack the thread had.
            unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) };
            let untouched = stack.iter().take_while(|b| **b == 0xaa).count();
            SIZE - untouched
        });
        let tid = tid_rx.recv().unwrap();
        let results = capture(&[tid], &[], Duration::from_secs(5), |_, stack| stack.len());
        assert!(matches!(results[0].1, Outcome::Captured { .. }), "{results:?}");
        done_tx.send(()).unwrap();
        let used = worker.join().unwrap();
        // SAFETY: getauxval has no preconditions.
        let kernel = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
        eprintln!("signal stack used: {used} bytes (kernel's minimal frame {kernel})");
        assert!(used > 0 && used <= kernel.max(2048) + 2048, "{used} bytes used");
    }

    /// A handler that won its slot but was not scheduled before the dumper gave up still owns
    /// its buffer: the next round must not hand that buffer to another thread.
    #[test]
    fn the_buffer_of_a_handler_still_writing_is_never_handed_out_again() {
        init(None).expect("stack signal");
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tid_tx.send(crate::sys::gettid()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let buffer_of = |results: &[(i32, Outcome<usize>)]| match results[0].1 {
            Outcome::Captured { walked, .. } => walked,
            ref other => panic!("{other:?}"),
        };
        let first = capture(&[tid], &[], Duration::from_secs(5), |_, stack| {
            stack.as_ptr() as usize
        });
        let _ = buffer_of(&first);
        let (stuck, held) = {
            let _state = DUMPS.lock();
            let stuck = slot(0).unwrap();
            stuck.state.store(pack(0x00ab_cdef, WRITING), Ordering::Release);
            (stuck, stuck.buffer.load(Ordering::Relaxed))
        };
        let second = capture(&[tid], &[], Duration::from_secs(5), |_, stack| {
            stack.as_ptr() as usize
        });
        let reused = buffer_of(&second);
        stuck.state.store(FREE, Ordering::Release);
        done_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_ne!(
            reused, held,
            "the late writer's buffer was handed to the next round"
        );
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
