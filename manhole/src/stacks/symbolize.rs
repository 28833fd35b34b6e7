//! Addresses to function names, files and lines, with a memo kept for the life of the process.
//!
//! Resolving is costly the first time a binary or library is touched (its debug info is
//! loaded) and cheap after; the memo makes repeated dumps of the same stacks nearly free.
//! Unique addresses are resolved in address order, so the symbolizer's small cache of parsed
//! objects is not thrashed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

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

static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// Addresses remembered at most: a long-running program dumped often meets ever more of its
/// code, and the memo must not grow with its uptime. Past this, it starts over.
const MEMO_LIMIT: usize = 16 * 1024;

/// Resolves every address, from the memo where possible.
pub(crate) fn resolve_all(addresses: &[Address]) -> HashMap<Address, Arc<[Symbol]>> {
    let mut wanted: Vec<usize> = addresses.iter().map(|a| a.lookup()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    let memo = memo.get_or_insert_with(HashMap::new);
    let missing = wanted.iter().filter(|a| !memo.contains_key(a)).count();
    if memo.len() + missing > MEMO_LIMIT {
        // Start over, but keep what this dump needs.
        let keep: std::collections::HashSet<usize> = wanted.iter().copied().collect();
        memo.retain(|a, _| keep.contains(a));
    }
    for lookup in wanted {
        memo.entry(lookup).or_insert_with(|| resolve_one(lookup));
    }
    addresses
        .iter()
        .filter_map(|a| Some((*a, Arc::clone(memo.get(&a.lookup())?))))
        .collect()
}

fn resolve_one(lookup: usize) -> Arc<[Symbol]> {
    let mut out: Vec<Symbol> = Vec::new();
    backtrace::resolve(lookup as *mut std::ffi::c_void, |symbol| {
        out.push(Symbol {
            name: symbol.name().map(|n| format!("{n:#}")),
            file: symbol.filename().map(PathBuf::from),
            line: symbol.lineno(),
            column: symbol.colno(),
        });
    });
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
