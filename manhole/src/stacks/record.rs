//! What a dump knows of each thread besides its frames: where it was (registers), the system
//! call it was in with its arguments, and how much CPU it had used, read before it was sent
//! the stack signal (the signal wakes it, so anything read afterwards describes the wake-up).
//! It is what wait reasons, `locks`, `doctor` and `profile` are built on; the rendered dump
//! and its JSON do not show it.
//!
//! # Where the system call comes from
//! The handler's `ucontext` holds the interrupted registers. What the kernel leaves there for a
//! thread it took out of a blocking system call to run the handler depends on the call
//! (measured on x86_64, Linux 6.18, `SA_RESTART` handler):
//! - calls the kernel restarts (`ERESTARTSYS` under `SA_RESTART`: `read` on a pipe, a futex
//!   wait without timeout, as std's `Mutex` and `Condvar::wait` make): the pc is rewound onto
//!   the system call instruction (`0f 05`; `svc #0` on aarch64), rax holds the number again and
//!   rdi rsi rdx r10 r8 r9 the arguments, equal to what `/proc/<tid>/syscall` showed before;
//! - calls that return `EINTR` to the program (`ERESTART_RESTARTBLOCK` / `ERESTARTNOHAND`:
//!   a futex wait with a timeout, `nanosleep`, `clock_nanosleep`, `poll`, `epoll_wait`,
//!   `pause`): the pc is just after the instruction and rax is -4; the arguments are still in
//!   their registers, but the number is gone (on aarch64 x8 keeps it and x0, the first
//!   argument, is lost instead).
//!
//! So the record reads the instruction at and before the pc (through the kernel, never a
//! plain load), and where the handler's registers do not carry the number, takes it from the
//! `/proc/<tid>/syscall` line the dump read before signalling, when that line's pc is the
//! handler's. Threads that were not signalled (they block the signal, are stopped, or did not
//! answer) get that line as it was.
//!
//! # CPU time
//! The thread's CPU clock (`clock_gettime` on `MAKE_THREAD_CPUCLOCK(tid, SCHED)`): the
//! scheduler's runtime in nanoseconds, as `/proc/<tid>/schedstat`'s first field, in one system
//! call and no file (about 0.7 µs a thread, against 9 µs for `schedstat` and 21 µs for `sched`
//! on a loaded 2-vCPU machine at 1000 threads). Two dumps' values tell a spinning thread (it
//! grew by about the time between them) from one that only woke for the stack signal.
//!
//! # Not run for
//! Asked for ([`Want::last_ran`]), a lower bound of how long each sleeping thread had not run
//! when it was looked at. The source is `se.exec_start` in `/proc/<tid>/sched` (when the
//! scheduler last accounted its runtime: for a thread off the CPU, when it stopped), which is
//! on the *task clock of the CPU it last ran on* (`rq_clock_task`, which leaves out interrupt
//! and steal time). Those clocks drift apart: on the 2-vCPU machine this was written on they
//! differed by 6.9 s, so a difference against the dumper's own `exec_start` is no bound at all.
//! Each CPU's clock is therefore measured against `CLOCK_MONOTONIC` first (the dumper moves
//! itself onto each CPU it may run on and reads its own `exec_start`: an offset that is at most
//! the true one, and the true one only shrinks with time, so the bound stays a lower bound),
//! and the thread's last CPU is read from its `stat`. A thread the kernel shows runnable gets
//! 0; a thread on a CPU not measured, or a kernel without the `sched` file, `None`.
//! It costs two more files a thread (`sched`, about 1.8 KB of text, and `stat`) and one
//! migration of the dumper per CPU, so the connect dump does not ask for it.

use std::time::Duration;

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
use super::sampler::Context;
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
use super::unwind::Registers;
use crate::procfs::ProcSyscall;

/// The length of the system call instruction (`syscall`: `0f 05`; `svc #0`: `01 00 00 d4`).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) const INSN: usize = 2;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub(crate) const INSN: usize = 4;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const SYSCALL_INSN: [u8; INSN] = [0x0f, 0x05];
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const SYSCALL_INSN: [u8; INSN] = [0x01, 0x00, 0x00, 0xd4];

/// Where a fact was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The stack signal's handler, from the thread's interrupted registers.
    Handler,
    /// `/proc/<tid>/syscall`, read before any signal was sent.
    Proc,
    /// The dumping thread itself, read in place.
    Own,
}

/// Where a thread was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Regs {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    /// The frame pointer (rbp, x29); `None` where only `/proc` was read (it shows pc and sp).
    pub(crate) fp: Option<usize>,
    /// The link register (x30) on aarch64; `None` on x86_64 and from `/proc`.
    pub(crate) lr: Option<usize>,
    pub(crate) from: Source,
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
impl Regs {
    fn seen(regs: Registers, from: Source) -> Regs {
        Regs {
            pc: regs.pc,
            sp: regs.sp,
            fp: Some(regs.fp),
            lr: cfg!(target_arch = "aarch64").then_some(regs.lr),
            from,
        }
    }
}

/// How a system call stood when the thread was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Blocked in it, as `/proc` showed before the signal (a thread not signalled).
    Waiting,
    /// The handler interrupted it and the kernel restarts it when the handler returns (or the
    /// thread was about to make it): the pc is at the instruction.
    Restarting,
    /// The handler interrupted it and it returns `-errno` (`EINTR`) to the program: the pc is
    /// just after the instruction.
    Interrupted { errno: i32 },
}

/// The system call a thread was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Syscall {
    /// `libc::SYS_*`; `None` where nothing tells it (x86_64, interrupted, no `/proc` line).
    pub(crate) number: Option<libc::c_long>,
    /// The six arguments; `None` for one that is gone (aarch64's x0 after an interruption,
    /// when `/proc` did not show it).
    pub(crate) args: [Option<usize>; 6],
    pub(crate) phase: Phase,
    /// Where the arguments were read (the number may come from `/proc`, see the module docs).
    pub(crate) from: Source,
}

/// Everything a dump records of one thread besides its frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThreadRecord {
    /// Where it was: every register the handler saw, or pc and sp from `/proc` for a thread
    /// blocked in a system call that was not signalled.
    pub(crate) regs: Option<Regs>,
    /// The system call it was in, if it was in one.
    pub(crate) syscall: Option<Syscall>,
    /// The CPU time it had used, read before the signal.
    pub(crate) cpu: Option<Duration>,
    /// How long it had not run at least, read before the signal, when asked for (see the
    /// module docs); 0 for a thread that was runnable.
    pub(crate) not_run_for: Option<Duration>,
    /// Its signal mask as the handler saw it (bit n-1 for signal n).
    pub(crate) mask: Option<u64>,
    /// How long the handler took, when it ran.
    pub(crate) pause: Option<Duration>,
}

/// What was read of a thread before it was signalled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Before {
    pub(crate) syscall: Option<ProcSyscall>,
    pub(crate) cpu: Option<Duration>,
    pub(crate) not_run_for: Option<Duration>,
}

/// What a capture reads besides what every dump needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Want {
    /// [`ThreadRecord::not_run_for`]: two more `/proc` files a thread.
    pub(crate) last_ran: bool,
}

/// Each CPU's task clock offset against the monotonic clock (ns), for [`not_run_for`].
pub(crate) type ClockOffsets = Vec<Option<i64>>;

/// The lower bound of how long a thread had not run at monotonic time `now` (ns), from its
/// `exec_start` on the task clock of `cpu` and that clock's measured offset; 0 when `runnable`.
pub(crate) fn not_run_for(
    offsets: &ClockOffsets,
    exec_start: Option<u64>,
    cpu: Option<usize>,
    now: u64,
    runnable: bool,
) -> Option<Duration> {
    if runnable {
        return Some(Duration::ZERO);
    }
    let offset = (*offsets.get(cpu?)?)?;
    let stopped = i128::from(exec_start?) - i128::from(offset);
    let idle = (i128::from(now) - stopped).max(0);
    Some(Duration::from_nanos(u64::try_from(idle).unwrap_or(u64::MAX)))
}

impl ThreadRecord {
    /// A thread that was not signalled, or did not answer: what was read before.
    pub(crate) fn from_before(before: &Before) -> ThreadRecord {
        let from_proc = |pc, sp| Regs {
            pc,
            sp,
            fp: None,
            lr: None,
            from: Source::Proc,
        };
        let (regs, syscall) = match before.syscall {
            Some(ProcSyscall::In { number, args, sp, pc }) => (
                Some(from_proc(pc, sp)),
                Some(Syscall {
                    number: Some(number),
                    args: args.map(Some),
                    phase: Phase::Waiting,
                    from: Source::Proc,
                }),
            ),
            Some(ProcSyscall::Outside { sp, pc }) => (Some(from_proc(pc, sp)), None),
            Some(ProcSyscall::Running) | None => (None, None),
        };
        ThreadRecord {
            regs,
            syscall,
            cpu: before.cpu,
            not_run_for: before.not_run_for,
            mask: None,
            pause: None,
        }
    }

    /// A thread whose handler ran: what it saw, with `code` the bytes `[pc - INSN, pc + INSN)`
    /// when they could be read.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(crate) fn from_handler(
        context: &Context,
        code: Option<[u8; 2 * INSN]>,
        before: &Before,
        pause: Duration,
    ) -> ThreadRecord {
        ThreadRecord {
            regs: Some(Regs::seen(context.regs, Source::Handler)),
            syscall: syscall_seen(context, code, before.syscall.as_ref()),
            cpu: before.cpu,
            not_run_for: before.not_run_for,
            mask: Some(context.mask),
            pause: Some(pause),
        }
    }

    /// The dumping thread itself.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(crate) fn own(regs: Registers, cpu: Option<Duration>) -> ThreadRecord {
        ThreadRecord {
            regs: Some(Regs::seen(regs, Source::Own)),
            syscall: None,
            cpu,
            not_run_for: Some(Duration::ZERO),
            mask: None,
            pause: None,
        }
    }
}

/// The system call the handler's registers show the thread in, if any (see the module docs).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn syscall_seen(
    context: &Context,
    code: Option<[u8; 2 * INSN]>,
    before: Option<&ProcSyscall>,
) -> Option<Syscall> {
    let pc = context.regs.pc;
    // The /proc line's pc is the address after the instruction, whichever way it returns.
    let proc_line = match before {
        Some(ProcSyscall::In {
            number,
            args,
            pc: after,
            ..
        }) => Some((*number, *args, *after)),
        _ => None,
    };
    let (at, after) = match code {
        Some(bytes) => (bytes[INSN..] == SYSCALL_INSN, bytes[..INSN] == SYSCALL_INSN),
        None => match proc_line {
            Some((_, _, after)) => (pc.wrapping_add(INSN) == after, pc == after),
            None => return None,
        },
    };
    let result = if cfg!(target_arch = "aarch64") {
        context.args[0]
    } else {
        context.syscall_reg
    } as isize;
    let from_proc = proc_line.filter(|(_, _, after)| *after == pc);
    if at {
        return Some(Syscall {
            number: Some(context.syscall_reg as libc::c_long),
            args: context.args.map(Some),
            phase: Phase::Restarting,
            from: Source::Handler,
        });
    }
    // Interrupted: EINTR, or one of the kernel's restart codes; any other error (EAGAIN from a
    // non-blocking read the thread just made) is a call that returned, unless /proc saw the
    // thread inside a call at this very pc.
    let interrupted = result == -(libc::EINTR as isize) || (-516..=-512).contains(&result);
    if !(after && (-4095..0).contains(&result) && (interrupted || from_proc.is_some())) {
        return None; // in user code, or just back from a call that returned
    }
    let mut args = context.args.map(Some);
    let number = if cfg!(target_arch = "aarch64") {
        args[0] = from_proc.map(|(_, a, _)| a[0]);
        Some(context.syscall_reg as libc::c_long)
    } else {
        from_proc.map(|(n, _, _)| n)
    };
    Some(Syscall {
        number,
        args,
        phase: Phase::Interrupted {
            errno: -result as i32,
        },
        from: Source::Handler,
    })
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;

    const PC: usize = 0x7f00_0000_1000;

    fn context(pc: usize, rax: libc::c_long, args: [usize; 6]) -> Context {
        Context {
            regs: Registers {
                pc,
                sp: 0x7ffc_0000,
                fp: 0x7ffc_0100,
                lr: 0,
            },
            mask: 0,
            syscall_reg: rax as usize,
            args,
        }
    }

    fn line(number: libc::c_long, args: [usize; 6], pc: usize) -> ProcSyscall {
        ProcSyscall::In {
            number,
            args,
            sp: 0x7ffc_0000,
            pc,
        }
    }

    /// What the handler sees, as measured (module docs): a restarted read on fd 3.
    #[test]
    fn a_restarted_call_is_read_from_the_registers() {
        let args = [3, 0x7f00_2000, 1, 0, 0, 0];
        let seen = context(PC, libc::SYS_read, args);
        let expect = Some(Syscall {
            number: Some(libc::SYS_read),
            args: args.map(Some),
            phase: Phase::Restarting,
            from: Source::Handler,
        });
        // From the code bytes alone (a non-dumpable process cannot read /proc/<tid>/syscall)…
        let code = [0x31, 0xc0, 0x0f, 0x05];
        assert_eq!(syscall_seen(&seen, Some(code), None), expect);
        // …and from the /proc line alone, whose pc is after the instruction.
        let before = line(libc::SYS_read, args, PC + 2);
        assert_eq!(syscall_seen(&seen, None, Some(&before)), expect);
    }

    #[test]
    fn an_interrupted_call_takes_its_number_from_proc_when_the_pcs_agree() {
        let args = [1, 0, 0x7f00_3000, 0, 0, 0];
        let seen = context(PC, -4, args);
        let code = [0x0f, 0x05, 0x48, 0x3d];
        let before = line(libc::SYS_clock_nanosleep, args, PC);
        let got = syscall_seen(&seen, Some(code), Some(&before)).expect("in a call");
        assert_eq!(got.number, Some(libc::SYS_clock_nanosleep));
        assert_eq!(got.phase, Phase::Interrupted { errno: libc::EINTR });
        assert_eq!(got.args, args.map(Some));
        // Without /proc (or with a line from elsewhere) the number is unknown, not guessed.
        assert_eq!(syscall_seen(&seen, Some(code), None).and_then(|s| s.number), None);
        let elsewhere = line(libc::SYS_futex, args, PC + 0x40);
        assert_eq!(
            syscall_seen(&seen, Some(code), Some(&elsewhere)).and_then(|s| s.number),
            None
        );
    }

    #[test]
    fn user_code_and_calls_that_returned_are_no_system_call() {
        let args = [0; 6];
        // Spinning in user code.
        assert_eq!(
            syscall_seen(&context(PC, 0, args), Some([0x85, 0xc0, 0x75, 0xfa]), None),
            None
        );
        // Just back from a read that returned 5 bytes.
        assert_eq!(
            syscall_seen(&context(PC, 5, args), Some([0x0f, 0x05, 0x48, 0x3d]), None),
            None
        );
        // Just back from a non-blocking read that failed with EAGAIN: returned, not interrupted.
        assert_eq!(
            syscall_seen(
                &context(PC, -(libc::EAGAIN as libc::c_long), args),
                Some([0x0f, 0x05, 0x48, 0x3d]),
                None
            ),
            None
        );
        // Nothing to tell by: no code bytes, no /proc line.
        assert_eq!(syscall_seen(&context(PC, 202, args), None, None), None);
    }

    #[test]
    fn threads_not_signalled_keep_the_proc_line() {
        let args = [5, 0x7f00_4000, 16, 0, 0, 0];
        let record = ThreadRecord::from_before(&Before {
            syscall: Some(line(libc::SYS_read, args, PC)),
            cpu: Some(Duration::from_millis(3)),
            not_run_for: None,
        });
        let syscall = record.syscall.expect("a call");
        assert_eq!(syscall.number, Some(libc::SYS_read));
        assert_eq!(syscall.args[0], Some(5));
        assert_eq!((syscall.phase, syscall.from), (Phase::Waiting, Source::Proc));
        assert_eq!(
            record.regs.map(|r| (r.pc, r.fp, r.from)),
            Some((PC, None, Source::Proc))
        );
        assert_eq!(record.cpu, Some(Duration::from_millis(3)));
        let running = ThreadRecord::from_before(&Before {
            syscall: Some(ProcSyscall::Running),
            cpu: None,
            not_run_for: None,
        });
        assert_eq!(running, ThreadRecord::default());
    }

    #[test]
    fn not_run_for_is_measured_on_the_clock_of_the_cpu_the_thread_ran_on() {
        // CPU 1's task clock runs 6.9 s behind CPU 0's, as measured on a VM.
        let offsets: ClockOffsets = vec![Some(-73_265_000_000), Some(-80_173_000_000)];
        let now = 10_000_000_000_000;
        let ago = |cpu: usize, seconds: u64| {
            let stopped = now - seconds * 1_000_000_000;
            Some((stopped as i64 + offsets[cpu].unwrap()) as u64)
        };
        let two = Some(Duration::from_secs(2));
        assert_eq!(not_run_for(&offsets, ago(0, 2), Some(0), now, false), two);
        assert_eq!(not_run_for(&offsets, ago(1, 2), Some(1), now, false), two);
        // Runnable: it may be on a CPU right now.
        assert_eq!(
            not_run_for(&offsets, ago(1, 2), Some(1), now, true),
            Some(Duration::ZERO)
        );
        // A CPU not measured, or no `sched` file: not known.
        assert_eq!(not_run_for(&offsets, ago(1, 2), Some(7), now, false), None);
        assert_eq!(not_run_for(&offsets, None, Some(0), now, false), None);
        // Ran after `now` was read: 0, never negative.
        assert_eq!(
            not_run_for(
                &offsets,
                Some((now as i64 + 5 + offsets[0].unwrap()) as u64),
                Some(0),
                now,
                false
            ),
            Some(Duration::ZERO)
        );
    }
}
