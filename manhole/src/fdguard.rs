//! The descriptors a forked child must close: every socket and pipe end manhole owns is
//! wrapped in [`Registered`], which records its number here for as long as it is open.
//!
//! A child inherits copies of manhole's descriptors (the listening socket, pipes, the sockets of
//! open sessions) but none of its threads. Left open, a copy of a session's socket would keep
//! that session from ever seeing EOF. So the child's fork handler ([`close_all_in_child`], run
//! through [`crate::atfork`]) closes every registered number; close(2) is async-signal-safe.
//!
//! The table never drops a descriptor: it is a chain of fixed-size chunks, found and extended
//! with atomics only, each chunk allocated once and never freed (the chain is as long as the
//! most descriptors manhole ever held at once, 512 per chunk). If a new chunk cannot be
//! allocated, the log says which descriptor a forked child would keep.

use std::alloc::{Layout, alloc_zeroed};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use crate::logging::mlog;

/// Descriptors per chunk.
const CHUNK: usize = 512;

/// One chunk of the table: a slot holds a descriptor number plus one (0 is free), so that a
/// zeroed allocation is an empty chunk.
struct Chunk {
    slots: [AtomicI32; CHUNK],
    next: AtomicPtr<Chunk>,
}

static FIRST: Chunk = Chunk {
    slots: [const { AtomicI32::new(0) }; CHUNK],
    next: AtomicPtr::new(ptr::null_mut()),
};

/// The chunks, first to last.
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    let mut next: Option<&'static Chunk> = Some(&FIRST);
    std::iter::from_fn(move || {
        let chunk = next?;
        let following = chunk.next.load(Ordering::Acquire);
        // SAFETY: a non-null `next` points at a chunk allocated by `grow`, zero-initialised
        // (a valid empty `Chunk`: atomics and a null pointer are all-zero) and never freed.
        next = unsafe { following.as_ref() };
        Some(chunk)
    })
}

/// A new empty chunk, leaked on purpose; `None` when out of memory.
fn new_chunk() -> Option<&'static Chunk> {
    let layout = Layout::new::<Chunk>();
    // SAFETY: `Chunk` has a non-zero size; an all-zero `Chunk` is valid (see `chunks`).
    let raw = unsafe { alloc_zeroed(layout) }.cast::<Chunk>();
    // SAFETY: `raw` is either null or a fresh allocation of a valid `Chunk` that is never freed.
    unsafe { raw.as_ref() }
}

/// Records `fd`. Returns false only when the table could not grow (out of memory).
fn register_fd(fd: i32) -> bool {
    let Some(stored) = fd.checked_add(1).filter(|_| fd >= 0) else {
        return true; // not a descriptor: nothing to close
    };
    let mut last = &FIRST;
    for chunk in chunks() {
        for slot in &chunk.slots {
            if slot
                .compare_exchange(0, stored, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        last = chunk;
    }
    // Every slot was taken: add a chunk holding `fd`, after the last one (or after whichever
    // chunk another thread appended meanwhile).
    let Some(fresh) = new_chunk() else {
        return false;
    };
    fresh.slots[0].store(stored, Ordering::Relaxed);
    let fresh_ptr = ptr::from_ref(fresh).cast_mut();
    loop {
        match last
            .next
            .compare_exchange(ptr::null_mut(), fresh_ptr, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            // SAFETY: as in `chunks`: a non-null `next` is a leaked, valid chunk.
            Err(other) => match unsafe { other.as_ref() } {
                Some(chunk) => last = chunk,
                None => return false,
            },
        }
    }
}

/// Forgets a descriptor about to be closed.
fn unregister_fd(fd: i32) {
    let Some(stored) = fd.checked_add(1).filter(|_| fd >= 0) else {
        return;
    };
    for chunk in chunks() {
        for slot in &chunk.slots {
            if slot
                .compare_exchange(stored, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// How many descriptors are registered now (for tests and `fds`).
#[cfg(test)]
fn registered() -> usize {
    chunks()
        .flat_map(|c| c.slots.iter())
        .filter(|s| s.load(Ordering::Acquire) != 0)
        .count()
}

/// In a forked child: closes the child's copy of every registered descriptor. Atomic loads,
/// stores and close(2) only: async-signal-safe, as a fork handler must be.
pub(crate) fn close_all_in_child() {
    for chunk in chunks() {
        for slot in &chunk.slots {
            let stored = slot.swap(0, Ordering::AcqRel);
            if stored > 0 {
                // SAFETY: `stored - 1` is the child's copy of a descriptor manhole opened;
                // closing it cannot affect the parent, and nothing in the child uses it (its
                // threads did not survive the fork).
                unsafe { libc::close(stored - 1) };
            }
        }
    }
}

/// A descriptor-owning value (socket, pipe end) registered for closing in forked children for
/// as long as it lives. It leaves the registry before it is closed, so a fork can never make the
/// child close a descriptor number the parent has reused meanwhile.
#[derive(Debug)]
pub(crate) struct Registered<T: AsRawFd>(T);

impl<T: AsRawFd> Registered<T> {
    pub(crate) fn new(inner: T) -> Registered<T> {
        let fd = inner.as_raw_fd();
        if !register_fd(fd) {
            mlog!("Out of memory: a child forked from now on keeps a copy of manhole's fd:{fd}");
        }
        Registered(inner)
    }
}

impl<T: AsRawFd> Drop for Registered<T> {
    fn drop(&mut self) {
        unregister_fd(self.0.as_raw_fd());
        // The inner value, and its descriptor, are dropped right after this.
    }
}

impl<T: AsRawFd> std::ops::Deref for Registered<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: AsRawFd> std::ops::DerefMut for Registered<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that claims any descriptor number, without owning one.
    struct Number(i32);

    impl AsRawFd for Number {
        fn as_raw_fd(&self) -> i32 {
            self.0
        }
    }

    #[test]
    fn the_table_grows_past_a_chunk_and_forgets_each_number_once() {
        // Numbers far above any real descriptor of this test process, so that no other test's
        // registration is mistaken for one of these.
        let base = 1 << 29;
        let before = registered();
        let held: Vec<_> = (0..3 * CHUNK as i32 + 7)
            .map(|n| Registered::new(Number(base + n)))
            .collect();
        assert!(registered() >= before + held.len());
        let all: Vec<i32> = chunks()
            .flat_map(|c| c.slots.iter())
            .map(|s| s.load(Ordering::Acquire) - 1)
            .filter(|fd| *fd >= base)
            .collect();
        assert_eq!(all.len(), held.len(), "every number is in the table exactly once");
        drop(held);
        let left = chunks()
            .flat_map(|c| c.slots.iter())
            .filter(|s| s.load(Ordering::Acquire) > base)
            .count();
        assert_eq!(left, 0);
    }
}
