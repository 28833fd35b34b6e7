//! Commands that explain why threads are stuck: `locks` (facts: every lock threads wait on,
//! who holds it where that is recorded, who waits and where) and `doctor` (conclusions, each
//! labelled certain, likely or possible, with the evidence it rests on).
//!
//! Both take a dump that reads how long each thread has not run, then look again after
//! [`SAMPLE`]: a thread still in the same system call with the same arguments and no CPU used
//! in between did not move. `doctor` says "deadlock" only for a cycle whose every edge is an
//! owner the kernel or a library recorded (glibc and PI mutexes, joins, `manhole::sync`) and
//! that held over the sample; std's locks record no owner, so a pile-up on them is at most
//! "possible", worded without the word.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::command::{Command, Effect, Group};
use super::{Context, Json, Outcome, Reply};
use crate::stacks::waits::{Kind, LockGroup, Wait, cycles, lock_groups};
use crate::stacks::{self, Dump, ThreadReport};
use crate::text::{escape_controls, quoted, wait_duration};
use crate::procfs;

/// How far apart the two looks are.
const SAMPLE: Duration = Duration::from_millis(200);

/// CPU a thread may use between the looks and still count as not having moved: the stack
/// signal's handler takes microseconds.
const STILL: Duration = Duration::from_millis(2);

/// What `locks` and `doctor` look at: one dump and a second look at every thread.
struct Sample {
    dump: Dump,
    /// From the dump's start to the second look: what the CPU used in between is out of.
    span: Duration,
    /// Per thread: CPU used between the looks, and whether it is in the same wait.
    after: HashMap<i32, After>,
}

#[derive(Clone, Copy, Debug, Default)]
struct After {
    cpu: Option<Duration>,
    same_wait: Option<bool>,
}

impl Sample {
    fn take() -> Sample {
        let started = std::time::Instant::now();
        let dump = stacks::capture_with(stacks::Want { last_ran: true });
        std::thread::sleep(SAMPLE);
        let after = dump
            .threads
            .iter()
            .map(|t| {
                let cpu = stacks::thread_cpu_time(t.tid)
                    .zip(t.record.cpu)
                    .map(|(now, then)| now.saturating_sub(then));
                let same_wait = same_wait(t);
                (t.tid, After { cpu, same_wait })
            })
            .collect();
        Sample {
            dump,
            span: started.elapsed(),
            after,
        }
    }

    fn name(&self, tid: i32) -> Option<String> {
        self.dump.threads.iter().find(|t| t.tid == tid).map(|t| t.name.clone())
    }

    fn who(&self, tid: i32) -> String {
        match self.name(tid) {
            Some(name) => format!("{tid} \"{}\"", escape_controls(&name)),
            None => format!("{tid} (not a thread of this process now)"),
        }
    }

    /// Did not move between the looks: same wait, no CPU of its own.
    fn still(&self, tid: i32) -> Option<bool> {
        let after = self.after.get(&tid)?;
        Some(after.same_wait? && after.cpu? <= STILL)
    }
}

/// Whether the thread is in the system call the dump saw, with the same first three arguments
/// (`/proc`; unreadable in a process that is not dumpable: unknown).
fn same_wait(thread: &ThreadReport) -> Option<bool> {
    let call = thread.record.syscall?;
    let number = call.number?;
    match procfs::syscall(thread.tid)? {
        procfs::ProcSyscall::In { number: now, args, .. } => Some(
            now == number
                && call.args[..3]
                    .iter()
                    .zip(&args[..3])
                    .all(|(then, now)| then.is_none_or(|then| then == *now)),
        ),
        procfs::ProcSyscall::Running | procfs::ProcSyscall::Outside { .. } => Some(false),
    }
}

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "locks",
        aliases: &[],
        usage: "locks",
        summary: "every lock threads wait on: holder, waiters, where",
        details: "Lists every lock that threads wait on, most waiters first: its name (the\n\
                  exposed static or the symbol holding it, else its address), its kind, who\n\
                  holds it and since when where that is recorded (glibc and PI mutexes,\n\
                  manhole::sync; std's Mutex and RwLock record no owner), and each waiter\n\
                  with how long it has waited at least and the line where it waits.\n\
                  Looks twice, 200 ms apart, to tell who did not move.",
        group: Group::Look,
        effect: Effect::PausesThreads,
        watchable: true,
        run: locks,
    },
    Command {
        name: "doctor",
        aliases: &[],
        usage: "doctor [--long SECONDS]",
        summary: "why threads are stuck: deadlocks, long holds, hot threads",
        details: "Draws conclusions from a dump and a second look 200 ms later, each\n\
                  labelled certain (every premise recorded by the kernel or a library and\n\
                  unchanged over the look), likely (one step inferred) or possible, with the\n\
                  evidence: deadlock cycles (only of recorded owners), a lock held by a\n\
                  thread that is itself blocked, waits on locks that record no owner, threads\n\
                  that have not run for long, busy threads (a quarter of a CPU or more),\n\
                  pools with no idle thread.\n\
                  --long (default 5) is how many seconds count as long.\n\
                  Example: doctor --long 30",
        group: Group::Look,
        effect: Effect::PausesThreads,
        watchable: true,
        run: doctor,
    },
];

/// For `report`: the dump the diagnosis looked at, `locks` and `doctor` as data.
pub(super) fn for_report() -> (Dump, Json, Json) {
    let sample = Sample::take();
    let (_, locks) = render_locks(&sample);
    let (_, doctor) = render_doctor(&sample, DEFAULT_LONG);
    (sample.dump, locks, doctor)
}

/// What `doctor` counts as long unless told.
const DEFAULT_LONG: Duration = Duration::from_secs(5);

fn locks(args: &[&str], _: &Context<'_>) -> Outcome {
    if let Some(err) = super::no_arguments("locks", args) {
        return err;
    }
    let sample = Sample::take();
    let (text, data) = render_locks(&sample);
    Reply::ok(text, data).into()
}

/// The waiters of one lock, grouped by where they wait.
fn render_locks(sample: &Sample) -> (String, Json) {
    let groups = lock_groups(&sample.dump.threads);
    let mut out = String::new();
    let waiting: usize = groups.iter().map(|g| g.waiters.len()).sum();
    let _ = writeln!(
        out,
        "{} lock{} with waiters ({waiting} of {} threads wait on one; looked twice, {} ms apart):",
        groups.len(),
        if groups.len() == 1 { "" } else { "s" },
        sample.dump.threads.len(),
        SAMPLE.as_millis()
    );
    let mut items = Vec::new();
    for group in &groups {
        let first = &group.waiters[0].wait;
        let _ = writeln!(out, "\n{}", group.title());
        let mut facts = Vec::new();
        if let Some(word) = first.word {
            facts.push(format!("word {word:#x}"));
        }
        if first.object.is_none() {
            facts.push("not an exposed static nor a symbol".to_owned());
        }
        let holder = group.waiters.iter().find_map(|t| t.wait.holder.as_ref());
        match holder {
            Some(holder) => {
                let since = holder
                    .since
                    .map_or_else(String::new, |d| format!(" for {}", wait_duration(d)));
                let at = holder.at.as_ref().map_or_else(String::new, |at| format!(", taken at {}", escape_controls(at)));
                match holder.readers {
                    Some(n) => {
                        let _ = writeln!(
                            out,
                            "  held for reading by {n} thread{}{since}; the last read lock was taken by {}{at} ({})",
                            if n == 1 { "" } else { "s" },
                            sample.who(holder.tid),
                            holder.source
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  held by {}{since}{at} ({})", sample.who(holder.tid), holder.source);
                    }
                }
            }
            None => facts.push(no_owner(first.kind).to_owned()),
        }
        if !facts.is_empty() {
            let _ = writeln!(out, "  {}", facts.join("; "));
        }
        // Waiters by where they wait, each with how long.
        let mut by_place: Vec<(Option<&str>, Vec<&ThreadReport>)> = Vec::new();
        for t in &group.waiters {
            let place = t.wait.at.as_deref();
            match by_place.iter_mut().find(|(p, _)| *p == place) {
                Some((_, list)) => list.push(t),
                None => by_place.push((place, vec![t])),
            }
        }
        let _ = writeln!(
            out,
            "  {} waiter{}:",
            group.waiters.len(),
            if group.waiters.len() == 1 { "" } else { "s" }
        );
        for (place, members) in &by_place {
            let still = members.iter().filter(|t| sample.still(t.tid) == Some(true)).count();
            let _ = writeln!(
                out,
                "    at {} ({}, {still} did not move in {} ms):",
                place.map_or_else(|| "an unknown line".into(), escape_controls),
                members.len(),
                SAMPLE.as_millis()
            );
            const LISTED: usize = 6;
            let mut line = String::from("     ");
            for t in members.iter().take(LISTED) {
                let waited = t.wait.waited.map_or_else(String::new, |d| format!(" {}", wait_duration(d)));
                line.push_str(&format!(" {}{waited},", sample.who(t.tid)));
            }
            line.pop();
            if members.len() > LISTED {
                line.push_str(&format!(" and {} more", members.len() - LISTED));
            }
            let _ = writeln!(out, "{line}");
        }
        items.push(lock_json(group, sample));
    }
    if groups.is_empty() {
        out = format!(
            "No thread waits on a lock ({} threads; \"stacks\" shows what each does).\n",
            sample.dump.threads.len()
        );
    }
    let data = Json::obj([
        ("threads", Json::from(sample.dump.threads.len())),
        ("sample_ms", Json::from(SAMPLE.as_millis() as u64)),
        ("locks", Json::Arr(items)),
    ]);
    (out, data)
}

/// Why no holder is shown, by primitive.
fn no_owner(kind: Kind) -> &'static str {
    match kind {
        Kind::Mutex | Kind::RwLockRead | Kind::RwLockWrite => {
            "std records no owner (manhole::sync's locks do)"
        }
        Kind::Once => "the initialiser is the thread inside its call_once",
        Kind::ParkingLotMutex | Kind::ParkingLotRwLockRead | Kind::ParkingLotRwLockWrite => {
            "parking_lot records no owner"
        }
        _ => "no owner recorded",
    }
}

fn lock_json(group: &LockGroup<'_>, sample: &Sample) -> Json {
    let first = &group.waiters[0].wait;
    let names = |tid: i32| sample.name(tid);
    let holder = group
        .waiters
        .iter()
        .find_map(|t| t.wait.holder.as_ref())
        .map_or(Json::Null, |h| {
            Json::obj([
                ("tid", Json::from(h.tid)),
                ("name", Json::from(names(h.tid))),
                ("source", Json::from(h.source)),
                ("certain", Json::from(h.certain())),
                ("readers", Json::from(h.readers)),
                ("since_ms", Json::from(h.since.map(|d| d.as_millis() as u64))),
                ("at", Json::from(h.at.clone())),
            ])
        });
    let waiters = group
        .waiters
        .iter()
        .map(|t| {
            Json::obj([
                ("tid", Json::from(t.tid)),
                ("name", Json::from(t.name.as_str())),
                ("kind", Json::from(t.wait.kind.code())),
                ("waited_ms", Json::from(t.wait.waited.map(|d| d.as_millis() as u64))),
                ("at", Json::from(t.wait.at.clone())),
                ("still", Json::from(sample.still(t.tid))),
            ])
        })
        .collect();
    Json::obj([
        ("name", Json::from(group.title())),
        ("object", Json::from(first.object.clone())),
        ("word", Json::from(first.word.map(|w| format!("{w:#x}")))),
        ("holder", holder),
        ("waiters", Json::Arr(waiters)),
    ])
}

/// How sure a conclusion is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Certain,
    Likely,
    Possible,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Certain => "certain",
            Level::Likely => "likely",
            Level::Possible => "possible",
        }
    }
}

struct Finding {
    level: Level,
    title: String,
    evidence: Vec<String>,
    threads: Vec<i32>,
}

fn doctor(args: &[&str], _: &Context<'_>) -> Outcome {
    let mut long = DEFAULT_LONG;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match *word {
            "--long" => match words.next().and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0 && *n <= 1e6) {
                Some(seconds) => long = Duration::from_secs_f64(seconds),
                None => {
                    return Reply::fail("usage", "--long takes a number of seconds (0 to 1000000); see \"help doctor\"").into();
                }
            },
            other => {
                return Reply::fail("usage", format!("doctor does not understand {}; see \"help doctor\"", quoted(other))).into();
            }
        }
    }
    let sample = Sample::take();
    let (text, data) = render_doctor(&sample, long);
    Reply::ok(text, data).into()
}

fn render_doctor(sample: &Sample, long: Duration) -> (String, Json) {
    let findings = conclude(sample, long);
    let mut out = format!(
        "doctor: {} threads, looked at twice {} ms apart. certain: every premise recorded by the kernel or a library and unchanged over the look; likely: one step inferred; possible: fits the facts, not confirmed.\n",
        sample.dump.threads.len(),
        SAMPLE.as_millis()
    );
    if findings.is_empty() {
        out.push_str("\nNothing stands out: no deadlock, no lock held by a blocked thread, no thread stuck or busy for long.\n");
    }
    for finding in &findings {
        let _ = writeln!(out, "\n{:<8} {}", finding.level.word(), finding.title);
        for line in &finding.evidence {
            let _ = writeln!(out, "         {line}");
        }
    }
    let data = Json::obj([
        ("threads", Json::from(sample.dump.threads.len())),
        ("sample_ms", Json::from(SAMPLE.as_millis() as u64)),
        ("long_ms", Json::from(long.as_millis() as u64)),
        (
            "findings",
            Json::Arr(
                findings
                    .iter()
                    .map(|f| {
                        Json::obj([
                            ("level", Json::from(f.level.word())),
                            ("title", Json::from(f.title.as_str())),
                            ("evidence", Json::Arr(f.evidence.iter().map(|e| Json::from(e.as_str())).collect())),
                            ("threads", Json::Arr(f.threads.iter().map(|t| Json::from(*t)).collect())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ]);
    (out, data)
}

/// `waits on Mutex POOL at src/db.rs:91 for 12.4 s`.
fn waits_on(wait: &Wait) -> String {
    let mut text = format!("waits on {} {}", primitive_short(wait), wait.lock_name());
    if let Some(at) = &wait.at {
        text.push_str(&format!(" at {}", escape_controls(at)));
    }
    if let Some(waited) = wait.waited {
        text.push_str(&format!(" (for {} at least)", wait_duration(waited)));
    }
    text
}

fn primitive_short(wait: &Wait) -> &'static str {
    match wait.kind {
        Kind::RwLockRead | Kind::RwLockWrite => "RwLock",
        Kind::Join => "the end of thread",
        _ => wait.primitive(),
    }
}

/// Every rule, in the order of how much each finding matters.
fn conclude(sample: &Sample, long: Duration) -> Vec<Finding> {
    let threads = &sample.dump.threads;
    let by_tid: HashMap<i32, &ThreadReport> = threads.iter().map(|t| (t.tid, t)).collect();
    let mut findings = Vec::new();
    let mut explained: HashSet<i32> = HashSet::new();

    // 1. Cycles of recorded owners.
    let mut in_cycle: HashSet<i32> = HashSet::new();
    for cycle in cycles(threads) {
        in_cycle.extend(&cycle);
        findings.push(deadlock(sample, &by_tid, &cycle));
    }
    explained.extend(&in_cycle);

    // 2. A lock held by a thread that is itself blocked (and not in a cycle above).
    for group in lock_groups(threads) {
        let Some(holder) = group.waiters.iter().find_map(|t| t.wait.holder.as_ref()).filter(|h| h.certain()) else {
            continue;
        };
        if in_cycle.contains(&holder.tid) {
            continue;
        }
        let Some(held_by) = by_tid.get(&holder.tid) else { continue };
        let longest = group.waiters.iter().filter_map(|t| t.wait.waited).max();
        let long_enough = holder.since.is_some_and(|d| d >= long) || longest.is_some_and(|d| d >= long);
        if held_by.wait.kind == Kind::Running || !long_enough {
            continue;
        }
        let names = |tid: i32| sample.name(tid);
        let still = sample.still(holder.tid);
        let level = if still == Some(true) { Level::Certain } else { Level::Likely };
        let since = holder
            .since
            .map_or_else(String::new, |d| format!(" for {} at least", wait_duration(d)));
        let mut evidence = vec![
            format!(
                "{} holds it{since}{} ({})",
                sample.who(holder.tid),
                holder.at.as_ref().map_or_else(String::new, |at| format!(", taken at {}", escape_controls(at))),
                holder.source
            ),
            format!(
                "{} is {}",
                sample.who(holder.tid),
                held_by.wait.describe(held_by.state, &names, held_by.wait.waited.map(|d| (d, d)))
            ),
            format!(
                "{} thread{} for it: {}",
                group.waiters.len(),
                if group.waiters.len() == 1 { " waits" } else { "s wait" },
                list_threads(sample, &group.waiters)
            ),
        ];
        evidence.push(stillness(still, &[holder.tid]));
        explained.insert(holder.tid);
        explained.extend(group.waiters.iter().map(|t| t.tid));
        findings.push(Finding {
            level,
            title: format!(
                "{} is held by {}, which is itself blocked",
                group.title(),
                sample.who(holder.tid)
            ),
            evidence,
            threads: std::iter::once(holder.tid).chain(group.waiters.iter().map(|t| t.tid)).collect(),
        });
    }

    // 2b. A join on a thread that does not end.
    for t in threads.iter().filter(|t| t.wait.kind == Kind::Join && !in_cycle.contains(&t.tid)) {
        let Some(target) = t.wait.holder.as_ref().map(|h| h.tid) else { continue };
        let Some(joined) = by_tid.get(&target) else { continue };
        if joined.wait.kind == Kind::Running || t.wait.waited.is_none_or(|d| d < long) {
            continue;
        }
        let names = |tid: i32| sample.name(tid);
        let still = sample.still(t.tid).zip(sample.still(target)).map(|(a, b)| a && b);
        explained.extend([t.tid, target]);
        findings.push(Finding {
            level: if still == Some(true) { Level::Certain } else { Level::Likely },
            title: format!(
                "{} waits for {} to end, which is itself blocked",
                sample.who(t.tid),
                sample.who(target)
            ),
            evidence: vec![
                format!(
                    "{} joins it{} (pthread_join waits on the joined thread's id)",
                    sample.who(t.tid),
                    t.wait.at.as_ref().map_or_else(String::new, |at| format!(" at {}", escape_controls(at)))
                ),
                format!(
                    "{} is {}",
                    sample.who(target),
                    joined.wait.describe(joined.state, &names, joined.wait.waited.map(|d| (d, d)))
                ),
                stillness(still, &[t.tid, target]),
            ],
            threads: vec![t.tid, target],
        });
    }

    // 3. Locks that record no owner, waited on for long by threads that did not move: one
    // finding for all of them, since any of their waiters may hold another.
    let mut unowned: Vec<(String, Vec<&ThreadReport>, Duration, Kind)> = Vec::new();
    for group in lock_groups(threads) {
        if group.waiters.iter().any(|t| t.wait.holder.is_some()) {
            continue;
        }
        let stuck: Vec<&ThreadReport> = group
            .waiters
            .iter()
            .copied()
            .filter(|t| t.wait.waited.is_some_and(|d| d >= long) && sample.still(t.tid) == Some(true))
            .collect();
        if let Some(longest) = stuck.iter().filter_map(|t| t.wait.waited).max() {
            unowned.push((group.title(), stuck, longest, group.waiters[0].wait.kind));
        }
    }
    if !unowned.is_empty() {
        const LISTED: usize = 8;
        let stuck_threads: Vec<i32> = unowned.iter().flat_map(|(_, s, _, _)| s.iter().map(|t| t.tid)).collect();
        let mut evidence: Vec<String> = unowned
            .iter()
            .take(LISTED)
            .map(|(title, stuck, longest, _)| {
                format!(
                    "{title}: {} waiter{} stuck for {} at least: {}",
                    stuck.len(),
                    if stuck.len() == 1 { "" } else { "s" },
                    wait_duration(*longest),
                    list_threads(sample, stuck)
                )
            })
            .collect();
        if unowned.len() > LISTED {
            evidence.push(format!("and {} more such locks (\"locks\" lists them)", unowned.len() - LISTED));
        }
        evidence.push(format!(
            "none of their waiters moved in {} ms; {}: who holds each cannot be told, and a waiter of one may hold another",
            SAMPLE.as_millis(),
            no_owner(unowned[0].3)
        ));
        evidence.push(
            "to know for certain, use manhole::sync::Mutex/RwLock for these locks (same API; they record the holder)".to_owned(),
        );
        explained.extend(&stuck_threads);
        findings.push(Finding {
            level: Level::Possible,
            title: format!(
                "{} lock{} that record{} no owner {} not been released for {} or more: {} holder{} may be stuck",
                unowned.len(),
                if unowned.len() == 1 { "" } else { "s" },
                if unowned.len() == 1 { "s" } else { "" },
                if unowned.len() == 1 { "has" } else { "have" },
                wait_duration(long),
                if unowned.len() == 1 { "its" } else { "their" },
                if unowned.len() == 1 { "" } else { "s" },
            ),
            evidence,
            threads: stuck_threads,
        });
    }

    // 4. Busy threads: CPU between the looks.
    for t in threads {
        let Some(cpu) = sample.after.get(&t.tid).and_then(|a| a.cpu) else { continue };
        // A quarter of a CPU: a spinning thread on a saturated machine gets no more than its
        // share, and a thread that only woke for the stack signal uses microseconds.
        if t.tid == sample.dump.dumping_tid || cpu * 4 < sample.span {
            continue;
        }
        let share = (cpu.as_secs_f64() / sample.span.as_secs_f64() * 100.0).min(100.0);
        findings.push(Finding {
            level: Level::Certain,
            title: format!(
                "{} is busy: {share:.0}% of a CPU over {} ms",
                sample.who(t.tid),
                sample.span.as_millis()
            ),
            evidence: vec![
                format!("its CPU clock advanced {} ms between the looks", cpu.as_millis()),
                format!(
                    "it was at {} when the dump looked (\"stacks {}\" shows its stack; \"watch stacks {}\" shows whether it moves)",
                    t.wait.at.as_deref().map_or_else(|| "an unknown line".into(), escape_controls),
                    t.tid,
                    t.tid
                ),
            ],
            threads: vec![t.tid],
        });
        explained.insert(t.tid);
    }

    // 5. Threads that have not run for long, not explained above (idle pools and sleeps are
    // where they should be).
    let quiet: Vec<&ThreadReport> = threads
        .iter()
        .filter(|t| !explained.contains(&t.tid) && t.wait.idle.is_none())
        // I/O waits are a server's normal idle state (a socket, a pipe, a terminal): left out.
        .filter(|t| {
            !matches!(
                t.wait.kind,
                Kind::Sleep | Kind::Running | Kind::Unknown | Kind::Park | Kind::Epoll | Kind::Poll | Kind::Io(_)
            )
        })
        .filter(|t| t.wait.waited.is_some_and(|d| d >= long) && sample.still(t.tid) == Some(true))
        .collect();
    if !quiet.is_empty() {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for t in &quiet {
            let what = match (t.wait.is_lock(), &t.wait.object) {
                (true, _) => format!("on {}", t.wait.lock_name()),
                _ => t.wait.primitive().to_owned(),
            };
            match kinds.iter_mut().find(|(k, _)| *k == what) {
                Some((_, n)) => *n += 1,
                None => kinds.push((what, 1)),
            }
        }
        findings.push(Finding {
            level: Level::Certain,
            title: format!(
                "{} thread{} waited {} or more without running",
                quiet.len(),
                if quiet.len() == 1 { " has" } else { "s have" },
                wait_duration(long)
            ),
            evidence: vec![
                format!(
                    "by what they wait for: {}",
                    kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
                ),
                format!("e.g. {}", list_threads(sample, &quiet)),
                "the times are lower bounds: since each last ran, or since a dump first found it in this wait".to_owned(),
            ],
            threads: quiet.iter().map(|t| t.tid).collect(),
        });
    }

    // 6. Pools with no thread idle: name-N threads all busy or blocked.
    let mut pools: HashMap<String, Vec<&ThreadReport>> = HashMap::new();
    for t in threads {
        let base = t.name.trim_end_matches(|c: char| c.is_ascii_digit());
        if base.len() < t.name.len() && !base.is_empty() {
            pools.entry(base.to_owned()).or_default().push(t);
        }
    }
    let mut pool_names: Vec<&String> = pools.keys().collect();
    pool_names.sort();
    for base in pool_names {
        let members = &pools[base];
        // Two threads of a name are a pair, not a pool; a thread explained above is reported.
        if members.len() < 3 || members.iter().any(|t| explained.contains(&t.tid)) {
            continue;
        }
        let blocked = |t: &&ThreadReport| t.wait.is_lock() || matches!(t.wait.kind, Kind::Running | Kind::Io(_));
        if !members.iter().all(blocked) || members.iter().any(|t| t.wait.idle.is_some()) {
            continue;
        }
        let running = members.iter().filter(|t| t.wait.kind == Kind::Running).count();
        let locked = members.iter().filter(|t| t.wait.is_lock()).count();
        let io = members.len() - running - locked;
        findings.push(Finding {
            level: Level::Likely,
            title: format!(
                "no thread of pool \"{}*\" is free: all {} are busy or blocked",
                escape_controls(base),
                members.len()
            ),
            evidence: vec![
                format!("{running} running, {locked} waiting on locks, {io} in I/O; none waits for work"),
                "a pool is inferred from names that differ only in a trailing number".to_owned(),
            ],
            threads: members.iter().map(|t| t.tid).collect(),
        });
    }
    findings.sort_by_key(|f| f.level);
    findings
}

fn deadlock(sample: &Sample, by_tid: &HashMap<i32, &ThreadReport>, cycle: &[i32]) -> Finding {
    let mut evidence = Vec::new();
    let mut all_still = true;
    let mut sources = Vec::new();
    for (i, tid) in cycle.iter().enumerate() {
        let next = cycle[(i + 1) % cycle.len()];
        let Some(t) = by_tid.get(tid) else { continue };
        let holder = t.wait.holder.as_ref();
        let taken = holder
            .and_then(|h| h.at.as_ref())
            .map_or_else(String::new, |at| format!(", taken at {}", escape_controls(at)));
        let since = holder
            .and_then(|h| h.since)
            .map_or_else(String::new, |d| format!(" for {} at least", wait_duration(d)));
        evidence.push(format!(
            "{} {}, held by {}{since}{taken}",
            sample.who(*tid),
            waits_on(&t.wait),
            sample.who(next)
        ));
        sources.extend(holder.map(|h| h.source));
        all_still &= sample.still(*tid) == Some(true);
    }
    sources.sort_unstable();
    sources.dedup();
    evidence.push(format!("every holder is recorded: {}", sources.join(", ")));
    evidence.push(stillness(Some(all_still).filter(|s| *s), cycle));
    let names: Vec<String> = cycle.iter().map(|t| sample.who(*t)).collect();
    Finding {
        level: if all_still { Level::Certain } else { Level::Likely },
        title: format!(
            "deadlock of {} threads: {} each wait for the next",
            cycle.len(),
            names.join(" -> ")
        ),
        evidence,
        threads: cycle.to_vec(),
    }
}

fn stillness(still: Option<bool>, tids: &[i32]) -> String {
    match still {
        Some(true) => format!(
            "{} in the same wait at both looks {} ms apart, using no CPU",
            if tids.len() == 1 { "it was" } else { "each was" },
            SAMPLE.as_millis()
        ),
        _ => "not confirmed by the second look (it moved, or /proc could not be read)".to_owned(),
    }
}

fn list_threads(sample: &Sample, threads: &[&ThreadReport]) -> String {
    const LISTED: usize = 5;
    let mut text: Vec<String> = threads
        .iter()
        .take(LISTED)
        .map(|t| {
            let at = t.wait.at.as_ref().map_or_else(String::new, |at| format!(" at {}", escape_controls(at)));
            format!("{}{at}", sample.who(t.tid))
        })
        .collect();
    if threads.len() > LISTED {
        text.push(format!("and {} more", threads.len() - LISTED));
    }
    text.join(", ")
}
