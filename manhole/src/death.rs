//! Removing the socket when the process dies of a signal, without changing how it dies.
//!
//! Every signal whose default action ends the process is covered: SIGTERM, SIGINT, SIGHUP,
//! SIGQUIT, SIGABRT (`abort()`, `panic = "abort"`, a failed allocation, Rust's stack overflow
//! report), SIGUSR1/2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPIPE, SIGIO, SIGPWR,
//! SIGSTKFLT, SIGSYS, SIGTRAP, and the crashes SIGSEGV, SIGBUS, SIGILL and SIGFPE. Real-time
//! signals are not: manhole takes its stack signal from among them, and so may other libraries.
//!
//! - A signal whose disposition is the default when manhole is installed gets a handler that
//!   removes the socket file (only the inode manhole created, only in the process that created
//!   it), restores the default and raises the signal again, which the default then turns into
//!   the same death: same exit status, same core dump.
//! - A signal the program ignores or handles itself, before or after manhole, is the program's:
//!   manhole installs nothing, and a handler installed after manhole's that chains to it finds
//!   it doing nothing (the program may be shutting down gracefully, and the manhole is most
//!   useful precisely then). `activate_on` and `oneshot_on` signals are registered before the
//!   socket exists, so they are manhole's own and never covered here.
//! - SIGSEGV, SIGBUS, SIGILL and SIGFPE are the exception: Rust's runtime has its own SIGSEGV and
//!   SIGBUS handler (it reports a stack overflow, else restores the default and returns so the
//!   fault happens again, fatally). Manhole's handler goes in front of such a handler and calls
//!   it exactly as the kernel would (same arguments, its mask and flags kept), and removes the
//!   socket only when that handler has returned with the default restored for a fault the kernel
//!   raised, that is when the re-executed instruction is about to kill the process. A handler
//!   that repairs the fault and returns (a JIT, a garbage collector) keeps the socket.
//!
//! Handlers run on the alternate signal stack where the thread has one (`SA_ONSTACK`). Everything
//! they read is in atomics or in the saved actions written before they are armed: they allocate
//! nothing, take no lock, and use only async-signal-safe calls (sigaction, getpid, fstatat,
//! unlinkat, raise). Normal exit is handled by the exit hook instead.

use std::cell::UnsafeCell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Signals that end the process by default and are covered only while they have the default:
/// `manhole_spec::DEFAULT_DEATHS`, those of them this target has, by number.
fn default_deaths() -> impl Iterator<Item = libc::c_int> {
    manhole_spec::DEFAULT_DEATHS
        .iter()
        .filter_map(|name| crate::signal::number_of(name))
}

/// Faults the kernel raises on an instruction, which happens again if a handler returns.
const FAULTS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Longest file name kept (a socket path fits in 108 bytes on Linux), plus the NUL.
const NAME_CAP: usize = 110;

static ARMED: AtomicBool = AtomicBool::new(false);
static DIR: AtomicI32 = AtomicI32::new(-1);
static NAME: [AtomicU8; NAME_CAP] = [const { AtomicU8::new(0) }; NAME_CAP];
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);
static OWNER: AtomicU32 = AtomicU32::new(0);

/// The action each signal had when manhole's handler went in front of it, indexed by number.
struct Previous(UnsafeCell<[libc::sigaction; 32]>);

// SAFETY: the array is written only inside `install_handlers`, once (under a `Once`), each
// entry before the handler that reads it is installed; afterwards it is only read.
unsafe impl Sync for Previous {}

// SAFETY: sigaction is plain data; all zeroes is SIG_DFL with no flags and an empty mask.
static PREVIOUS: Previous = Previous(UnsafeCell::new(unsafe { std::mem::zeroed() }));

/// Remembers the socket (its name in the directory open at `dir`) to remove if the process is
/// killed, and makes sure the handlers are in place.
pub(crate) fn arm(dir: i32, name: &[u8], dev: u64, ino: u64) {
    if name.len() >= NAME_CAP || name.is_empty() {
        return; // cannot be a socket's name anyway
    }
    ARMED.store(false, Ordering::SeqCst);
    for (slot, byte) in NAME.iter().zip(name.iter().chain(std::iter::repeat(&0))) {
        slot.store(*byte, Ordering::Relaxed);
    }
    DIR.store(dir, Ordering::Relaxed);
    DEV.store(dev, Ordering::Relaxed);
    INO.store(ino, Ordering::Relaxed);
    OWNER.store(std::process::id(), Ordering::Relaxed);
    ARMED.store(true, Ordering::SeqCst);
    static HANDLERS: Once = Once::new();
    HANDLERS.call_once(install_handlers);
}

/// Forgets the socket (it was removed, or is about to be).
pub(crate) fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
}

fn current_action(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: sigaction is plain data; with a null new action the call only reads.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `current` is a valid, writable sigaction.
    (unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } == 0).then_some(current)
}

fn install_handlers() {
    for signal in default_deaths().chain(FAULTS) {
        let below_32 = usize::try_from(signal).is_ok_and(|index| index < 32);
        let (true, Some(previous)) = (below_32, current_action(signal)) else {
            continue;
        };
        let default = previous.sa_sigaction == libc::SIG_DFL;
        let chains = FAULTS.contains(&signal) && previous.sa_sigaction != libc::SIG_IGN;
        if !default && !chains {
            continue; // ignored or handled by the program: not ours to change
        }
        // SAFETY: only this function writes PREVIOUS, once, before the handler that reads this
        // entry is installed below; `signal` is below 32.
        unsafe { (*PREVIOUS.0.get())[signal as usize] = previous };
        // A chained handler keeps the mask and restart behaviour it asked for.
        restore_ours(signal);
    }
}

extern "C" fn on_death(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: only async-signal-safe calls follow, on data written before the handler was
    // installed. errno is saved and restored for the cases where the process goes on.
    unsafe {
        let errno = nix::errno::Errno::last_raw();
        let ours = current_action(signal)
            .is_some_and(|current| current.sa_sigaction == on_death as *const () as usize);
        let previous = (*PREVIOUS.0.get())[signal as usize];
        if previous.sa_sigaction == libc::SIG_DFL {
            if !ours {
                // A handler installed after ours chained to it: that handler decides.
                nix::errno::Errno::set_raw(errno);
                return;
            }
            remove_socket();
            set_default(signal);
            // Pending until this handler returns, then fatal by default; a fault would also
            // happen again on return.
            libc::raise(signal);
            return;
        }
        // A fault handler of the runtime or the program: call it as the kernel would have.
        // Raised by the kernel for the instruction (not sent with kill), a fault happens again
        // when the handler returns with the default action back, and then kills.
        let from_kernel = !info.is_null() && (*info).si_code > 0;
        // A stack overflow cannot be repaired: Rust's handler reports it and aborts. Its abort
        // must not run manhole's SIGABRT handler on top of this one: two signal frames do not
        // fit in the alternate stack, and the process would die of SIGSEGV instead. So the
        // socket goes now, and SIGABRT has its default action while the handler runs.
        let overflow = ours && from_kernel && signal == libc::SIGSEGV && is_stack_overflow(info, context);
        let mut abort_was_ours = false;
        if overflow {
            remove_socket();
            abort_was_ours = current_action(libc::SIGABRT)
                .is_some_and(|a| a.sa_sigaction == on_death as *const () as usize);
            if abort_was_ours {
                set_default(libc::SIGABRT);
            }
        }
        if previous.sa_flags & libc::SA_RESETHAND != 0 {
            set_default(signal);
        }
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(previous.sa_sigaction);
            handler(signal, info, context);
        } else {
            let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous.sa_sigaction);
            handler(signal);
        }
        if abort_was_ours {
            restore_ours(libc::SIGABRT);
        }
        let fatal_now = current_action(signal).is_some_and(|a| a.sa_sigaction == libc::SIG_DFL);
        if ours && from_kernel && fatal_now {
            remove_socket();
        }
        nix::errno::Errno::set_raw(errno);
    }
}

fn set_default(signal: libc::c_int) {
    // SAFETY: sigaction is plain data; all zeroes is SIG_DFL with no flags and an empty mask.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `default` is initialised; sigaction is async-signal-safe.
    unsafe { libc::sigaction(signal, &default, std::ptr::null_mut()) };
}

/// Puts manhole's handler back for `signal`, with the flags `install_handlers` gave it.
fn restore_ours(signal: libc::c_int) {
    // SAFETY: PREVIOUS is only read here, after `install_handlers` wrote it.
    let previous = unsafe { (*PREVIOUS.0.get())[signal as usize] };
    // SAFETY: sigaction is plain data; every field the kernel reads is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_death as *const () as usize;
    action.sa_mask = previous.sa_mask;
    action.sa_flags =
        libc::SA_SIGINFO | libc::SA_ONSTACK | (previous.sa_flags & (libc::SA_RESTART | libc::SA_NODEFER));
    // SAFETY: `action` is initialised and `on_death` only makes async-signal-safe calls.
    unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
}

/// Whether a SIGSEGV is a stack overflow: the faulting address is just below the interrupted
/// stack pointer (within what one function's frame can reach).
///
/// # Safety
/// `info` and `context` are the handler's arguments for a kernel-raised SIGSEGV.
unsafe fn is_stack_overflow(info: *mut libc::siginfo_t, context: *mut libc::c_void) -> bool {
    if context.is_null() {
        return false;
    }
    // SAFETY: for SIGSEGV raised by the kernel, si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a ucontext_t as the third argument of an SA_SIGINFO handler.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    let sp = unsafe { (*context).uc_mcontext.gregs[libc::REG_RSP as usize] } as usize;
    // SAFETY: as above.
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    let sp = unsafe { (*context).uc_mcontext.sp } as usize;
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    let sp = {
        let _ = context;
        return false;
    };
    const REACH: usize = 1 << 20;
    addr <= sp.saturating_add(4096) && sp.saturating_sub(addr) < REACH
}

/// Unlinks the armed socket if it is still the inode this process created.
fn remove_socket() {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    if !ARMED.load(Ordering::SeqCst) || OWNER.load(Ordering::Relaxed) != unsafe { libc::getpid() } as u32 {
        return;
    }
    let mut name = [0u8; NAME_CAP];
    for (byte, slot) in name.iter_mut().zip(NAME.iter()) {
        *byte = slot.load(Ordering::Relaxed);
    }
    name[NAME_CAP - 1] = 0;
    let dir = DIR.load(Ordering::Relaxed);
    // SAFETY: stat is plain data, filled by fstatat.
    let mut meta: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated (its last byte is 0) and `meta` is writable; a closed
    // `dir` only makes the call fail.
    if unsafe { libc::fstatat(dir, name.as_ptr().cast(), &mut meta, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return;
    }
    if meta.st_dev as u64 == DEV.load(Ordering::Relaxed) && meta.st_ino as u64 == INO.load(Ordering::Relaxed)
    {
        // SAFETY: as above, a NUL-terminated name relative to `dir`.
        unsafe { libc::unlinkat(dir, name.as_ptr().cast(), 0) };
        ARMED.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_death_signal_of_the_spec_is_covered_here() {
        let covered: Vec<libc::c_int> = default_deaths().collect();
        let expected = manhole_spec::DEFAULT_DEATHS
            .iter()
            .filter(|name| {
                cfg!(any(target_os = "linux", target_os = "android"))
                    || !manhole_spec::LINUX_ONLY_SIGNALS.contains(name)
            })
            .count();
        assert_eq!(
            covered.len(),
            expected,
            "a death signal has no number here: {covered:?}"
        );
        for signal in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGABRT,
            libc::SIGPIPE,
        ] {
            assert!(covered.contains(&signal), "{signal}");
        }
        for signal in covered.iter().chain(&FAULTS) {
            assert!((1..32).contains(signal), "{signal} does not fit PREVIOUS");
        }
        for fault in FAULTS {
            assert!(
                !covered.contains(&fault),
                "{fault} is handled as a fault, not a death"
            );
            let signal = crate::Signal::from_raw(fault).unwrap();
            assert!(signal.is_synchronous_fault(), "{signal}");
        }
    }
}
