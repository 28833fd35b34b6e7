//! Addresses to function names, files and lines, with a memo.
//!
//! Resolving is costly the first time a binary or library is touched (its debug info is
//! loaded) and cheap after; the memo makes repeated dumps of the same stacks nearly free.
//! Unique addresses are resolved in address order, so the symbolizer's small cache of parsed
//! objects is not thrashed.
//!
//! Three things keep it from harming the program:
//! - **Memory.** Loading debug info can take tens of MiB; an allocation that fails aborts the
//!   process. Before anything is loaded, the room it needs is checked against the address-space
//!   limit (`RLIMIT_AS`, by trying to map it) and the cgroup's memory limit; without room,
//!   frames stay unnamed and the dump says why. [`release`] gives everything back (the memo,
//!   the `backtrace` crate's caches, the unwind tables, and freed heap to the system) when the
//!   last session ends.
//! - **Fork.** A child forked while a thread of its parent was symbolizing inherits the
//!   `backtrace` crate's lock held by a thread that does not exist there: it never names a
//!   frame (rather than blocking for ever), and says so.
//! - **Locks.** The memo is behind a [`ForkLock`], which a forked child takes over.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::forklock::ForkLock;

/// One symbol at an address; inlined code yields several, innermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Symbol {
    pub(crate) name: Option<String>,
    pub(crate) file: Option<PathBuf>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
}

/// An address to look up: a return address (the call is just before it) or an exact pc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Address {
    Return(usize),
    Exact(usize),
}

impl Address {
    /// What to hand to `backtrace::resolve`, which looks up `address - 1`.
    fn lookup(self) -> usize {
        match self {
            Address::Return(ip) => ip,
            Address::Exact(pc) => pc.wrapping_add(1),
        }
    }
}

type Memo = HashMap<usize, Arc<[Symbol]>>;

static MEMO: ForkLock<Option<Memo>> = ForkLock::new(None);

/// How many manhole threads are inside the `backtrace` crate (which holds its own lock).
static IN_BACKTRACE: AtomicUsize = AtomicUsize::new(0);
/// Set in a child forked while a manhole thread of its parent was inside the `backtrace`
/// crate: its lock and caches are not to be touched again in this process.
static INHERITED_MID_USE: AtomicBool = AtomicBool::new(false);

/// Called in a forked child, before anything else can run (async-signal-safe: atomics only).
pub(crate) fn after_fork_in_child() {
    if IN_BACKTRACE.swap(0, Ordering::Relaxed) != 0 {
        INHERITED_MID_USE.store(true, Ordering::Relaxed);
    }
}

/// Gives back what symbolization holds: the memo, the `backtrace` crate's parsed debug info
/// and mapped files, the unwind tables, and freed heap (to the system, where glibc can).
pub(crate) fn release() {
    {
        let mut memo = MEMO.lock();
        if memo.inherited {
            std::mem::forget(memo.take());
        } else {
            *memo = None;
        }
    }
    if !INHERITED_MID_USE.load(Ordering::Relaxed) {
        IN_BACKTRACE.fetch_add(1, Ordering::Relaxed);
        backtrace::clear_symbol_cache();
        IN_BACKTRACE.fetch_sub(1, Ordering::Relaxed);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Addresses remembered at most: a long-running program dumped often meets ever more of its
/// code, and the memo must not grow with its uptime. Past this, it starts over.
const MEMO_LIMIT: usize = 16 * 1024;

/// Resolves every address, from the memo where possible.
pub(crate) fn resolve_all(addresses: &[Address]) -> HashMap<Address, Arc<[Symbol]>> {
    resolve_all_noting(addresses, &mut Vec::new())
}

/// Resolves every address, from the memo where possible; says in `notes` why names are
/// missing when they could not be looked up.
pub(crate) fn resolve_all_noting(
    addresses: &[Address],
    notes: &mut Vec<String>,
) -> HashMap<Address, Arc<[Symbol]>> {
    let mut unnamed: HashMap<usize, Arc<[Symbol]>> = HashMap::new();
    let mut wanted: Vec<usize> = addresses.iter().map(|a| a.lookup()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut guard = MEMO.lock();
    if guard.inherited {
        // The parent may have been changing it when it forked: start afresh.
        std::mem::forget(guard.take());
    }
    let memo = guard.get_or_insert_with(HashMap::new);
    let missing: Vec<usize> = wanted.iter().copied().filter(|a| !memo.contains_key(a)).collect();
    if memo.len() + missing.len() > MEMO_LIMIT {
        // Start over, but keep what this dump needs.
        let keep: std::collections::HashSet<usize> = wanted.iter().copied().collect();
        memo.retain(|a, _| keep.contains(a));
    }
    let refusal = if INHERITED_MID_USE.load(Ordering::Relaxed) {
        Some(
            "frames are not named in this process: it was forked while its parent was looking up names, \
             and the symbolizer's state it inherited cannot be trusted"
                .to_owned(),
        )
    } else if missing.is_empty() {
        None
    } else {
        room_for(&missing).err()
    };
    let can_resolve = refusal.is_none();
    notes.extend(refusal);
    for lookup in wanted {
        if can_resolve {
            memo.entry(lookup).or_insert_with(|| resolve_one(lookup));
        } else if !memo.contains_key(&lookup) {
            // Not remembered: the next dump, with more room, may name it.
            unnamed.insert(lookup, unknown());
        }
    }
    addresses
        .iter()
        .filter_map(|a| {
            let lookup = a.lookup();
            Some((
                *a,
                Arc::clone(memo.get(&lookup).or_else(|| unnamed.get(&lookup))?),
            ))
        })
        .collect()
}

/// The symbol at a data address (a static that is not exposed), from the symbol table.
pub(crate) fn data_symbol(address: usize) -> Option<String> {
    let found = resolve_all(&[Address::Exact(address)]);
    found.get(&Address::Exact(address))?.first()?.name.clone()
}

/// Whether there is memory to load the debug info for `addresses`.
#[cfg(target_os = "linux")]
fn room_for(addresses: &[usize]) -> Result<(), String> {
    crate::headroom::for_symbols(addresses)
}

#[cfg(not(target_os = "linux"))]
fn room_for(_addresses: &[usize]) -> Result<(), String> {
    Ok(())
}

fn unknown() -> Arc<[Symbol]> {
    Arc::from(vec![Symbol {
        name: None,
        file: None,
        line: None,
        column: None,
    }])
}

fn resolve_one(lookup: usize) -> Arc<[Symbol]> {
    let mut out: Vec<Symbol> = Vec::new();
    IN_BACKTRACE.fetch_add(1, Ordering::Relaxed);
    backtrace::resolve(lookup as *mut std::ffi::c_void, |symbol| {
        out.push(Symbol {
            name: symbol.name().map(|n| format!("{n:#}")),
            file: symbol.filename().map(PathBuf::from),
            line: symbol.lineno(),
            column: symbol.colno(),
        });
    });
    IN_BACKTRACE.fetch_sub(1, Ordering::Relaxed);
    if out.is_empty() {
        out.push(Symbol {
            name: None,
            file: None,
            line: None,
            column: None,
        });
    }
    // A function inlined into itself (common in libc) would otherwise print twice in a row.
    out.dedup_by(|outer, inner| outer.name.is_some() && outer.name == inner.name);
    out.into()
}
