//! A lock that a forked child can take even if a thread of the parent held it at the fork.
//!
//! A `std::sync::Mutex` held by another thread when the program forks stays locked for ever in
//! the child: that thread does not exist there. manhole's own state (the dump in progress, the
//! symbol memo, the unwinder's tables) is guarded by [`ForkLock`] instead, which records the
//! process and thread that hold it. A child that finds it held by its parent's process takes it
//! over, and is told so ([`ForkGuard::inherited`]), so that it can throw away data the parent
//! may have left half-changed. It never poisons: a panic while holding it releases it.
//!
//! Waiting is a short sleep loop: manhole's locks are held by one dump at a time and contended
//! only when two sessions dump at once.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A mutual-exclusion lock that survives fork (see the module docs).
pub(crate) struct ForkLock<T> {
    /// `pid << 32 | tid` of the holder, or 0.
    holder: AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is exclusive to the holder of `holder`, as with a mutex; a child
// taking over its parent's hold is the only holder left in its process.
unsafe impl<T: Send> Sync for ForkLock<T> {}

/// Proof of holding a [`ForkLock`]; releases it when dropped.
pub(crate) struct ForkGuard<'a, T> {
    lock: &'a ForkLock<T>,
    /// The lock was taken over from the parent process, which held it when it forked: the data
    /// may be half-changed and should be reset.
    pub(crate) inherited: bool,
}

fn me() -> u64 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    (u64::from(pid) << 32) | u64::from(crate::sys::gettid() as u32)
}

impl<T> ForkLock<T> {
    pub(crate) const fn new(value: T) -> ForkLock<T> {
        ForkLock {
            holder: AtomicU64::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting for another thread of this process to release it; a hold left
    /// by the parent process is taken over at once.
    pub(crate) fn lock(&self) -> ForkGuard<'_, T> {
        let me = me();
        let mut pause = Duration::from_micros(20);
        loop {
            match self
                .holder
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    return ForkGuard {
                        lock: self,
                        inherited: false,
                    };
                }
                Err(held) if held >> 32 != me >> 32 => {
                    // Held by another process: the parent, at the moment it forked.
                    if self
                        .holder
                        .compare_exchange(held, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return ForkGuard {
                            lock: self,
                            inherited: true,
                        };
                    }
                }
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(2));
                }
            }
        }
    }
}

impl<T> Deref for ForkGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for ForkGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the lock's only holder, and it is borrowed mutably.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for ForkGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_other_threads_and_never_poisons() {
        let lock = Arc::new(ForkLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let mut guard = lock.lock();
                        let value = *guard;
                        std::hint::black_box(());
                        *guard = value + 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock(), 4000);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = lock.lock();
            panic!("inside");
        }));
        assert!(panicked.is_err());
        let guard = lock.lock();
        assert!(!guard.inherited);
        assert_eq!(*guard, 4000);
    }

    #[test]
    fn a_hold_of_another_process_is_taken_over() {
        let lock = ForkLock::new(7u32);
        // As a child sees it: the parent's pid and some thread of it.
        let parent = (u64::from(u32::MAX - 3) << 32) | 12345;
        lock.holder.store(parent, Ordering::Relaxed);
        let guard = lock.lock();
        assert!(guard.inherited);
        assert_eq!(*guard, 7);
    }
}
