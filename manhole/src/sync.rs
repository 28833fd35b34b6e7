//! [`Mutex`] and [`RwLock`] that record who holds them: drop-in replacements for
//! [`std::sync::Mutex`] and [`std::sync::RwLock`] with the same methods, guards, results and
//! poisoning, which also remember the thread that holds the lock, since when, and the line
//! that took it.
//!
//! ```
//! use manhole::sync::Mutex;
//!
//! /// Connections waiting to be reused.
//! #[manhole::expose]
//! static POOL: Mutex<Vec<u32>> = Mutex::new(Vec::new());
//!
//! let mut pool = POOL.lock().unwrap(); // recorded: this thread, now, this line
//! pool.push(7);
//! drop(pool); // the record is cleared before the lock is released
//! assert_eq!(*POOL.lock().unwrap(), [7]);
//!
//! // A panic while holding it poisons it, exactly as with std's.
//! let _ = std::thread::spawn(|| {
//!     let _guard = POOL.lock().unwrap();
//!     panic!("oops");
//! })
//! .join();
//! assert!(POOL.is_poisoned());
//! let pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
//! assert_eq!(*pool, [7]);
//! ```
//!
//! Changing `use std::sync::Mutex` to `use manhole::sync::Mutex` is the whole change: the
//! results are std's own [`LockResult`] and [`TryLockResult`], so `lock().unwrap()`, a `match`
//! on [`TryLockError::WouldBlock`] and [`PoisonError::into_inner`] work as before.
//!
//! What it buys: when a thread is stuck waiting for one of these locks, a stack dump can say
//! who holds it (`held by 4242 "flusher" for 12.4 s, taken at src/db.rs:88`), and `print` of an
//! exposed one that is locked says the same instead of only `<locked>`. std's locks record no
//! owner at all, so for them nobody can tell.
//!
//! # Cost
//! The lock itself is std's, inside. Taking one also stores the thread id (cached per
//! thread) and the caller's location, and releasing it clears the id: a few plain atomic
//! stores, plus one atomic increment and decrement for a read lock (the reader count). The
//! clock (`CLOCK_MONOTONIC_COARSE`, read without a system call, but as costly as std's whole
//! uncontended lock) is read only under contention: a thread that finds the lock held stamps
//! since when it has been held at least, and one that got it after waiting stamps when. So the
//! locks that threads wait on, the ones a dump asks about, always say for how long. `manhole-bench sync`
//! measures it against std's (BENCHMARKS.md). Each lock is 40 (Mutex) or 64 (RwLock) bytes
//! larger than std's.
//!
//! # Limitations
//! - std's [`Condvar`](std::sync::Condvar) cannot take these guards: it wants std's own
//!   `MutexGuard`. Keep a std `Mutex` for state a `Condvar` waits on.
//! - Of the readers of an [`RwLock`], only how many there are and which thread took the last
//!   read lock are known (that thread may have released it since).
//! - `RwLockWriteGuard::downgrade` and the unstable mapped guards are not offered (this crate
//!   supports Rust older than the `downgrade` of std).
//! - The thread id is cached per thread and renewed in a child made by `fork()` (an atfork
//!   handler, registered at the first lock). A child made by a raw `clone` system call, which
//!   runs no atfork handlers, would record its parent thread's id.
//! - Unsized values work as with std: `Box<Mutex<[u8; 3]>>` coerces to `Box<Mutex<[u8]>>`.
//!   A dump finds the holder of a lock whose value is aligned to at most 4096 bytes.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{LockResult, OnceLock, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

use crate::atfork::{self, Phase};
use crate::{procfs, sys, text};

/// The first word of a [`Mutex`]'s header: how a dump tells one from any other memory.
const MUTEX_MAGIC: u64 = 0x9e6b_3c1d_5a7f_4d21;
/// The first word of an [`RwLock`]'s header.
const RWLOCK_MAGIC: u64 = 0x4c2f_8a93_e1b7_06d5;

/// What a lock records of the thread that took it. Every field is an atomic written with
/// `Relaxed`: nothing in the program reads them, and a dump reads them through the kernel
/// (`process_vm_readv`), which no Rust ordering would bind anyway. A dump reads the whole
/// header twice and believes only two identical copies, so what it can see torn is a lock
/// changing hands during those microseconds, not the lock held for seconds it is asked about.
#[repr(C)]
struct Header {
    /// [`MUTEX_MAGIC`] or [`RWLOCK_MAGIC`] from `new` until the lock is dropped, then 0.
    magic: AtomicU64,
    /// Where std's lock lies from the start of ours (set once in `new`).
    inner_offset: u32,
    /// The holder's (for an RwLock: the writer's) kernel thread id; 0 when nobody holds it.
    tid: AtomicI32,
    /// Since when it has been held at least, on the clock of [`sys::coarse_monotonic_ns`]; 0
    /// for "not known". Only contention pays for the clock: a lock taken without waiting
    /// stores 0, a thread that finds it held stamps the time it started waiting (if nobody did
    /// before), and a thread that had to wait stamps when it got it. So for a lock that others
    /// wait on, which is the one a dump asks about, it is always known.
    since: AtomicU64,
    /// The `#[track_caller]` location that took it: only ever null or a `&'static Location`.
    location: AtomicPtr<Location<'static>>,
    /// The address of this header when it was last taken: a copy of its bytes elsewhere (the
    /// old place of a lock moved after use) does not pass for a lock there.
    home: AtomicUsize,
}

impl Header {
    const fn new(magic: u64, inner_offset: usize) -> Header {
        Header {
            magic: AtomicU64::new(magic),
            inner_offset: inner_offset as u32,
            tid: AtomicI32::new(0),
            since: AtomicU64::new(0),
            location: AtomicPtr::new(std::ptr::null_mut()),
            home: AtomicUsize::new(0),
        }
    }

    /// Records the calling thread as the holder (the writer, for an RwLock), held since
    /// `since` (0: not known, see [`Header::since`]).
    #[inline]
    fn taken(&self, location: &'static Location<'static>, since: u64) {
        self.location
            .store(std::ptr::from_ref(location).cast_mut(), Relaxed);
        self.since.store(since, Relaxed);
        self.home.store(std::ptr::from_ref(self) as usize, Relaxed);
        self.tid.store(current_tid(), Relaxed);
    }

    /// A thread found it held and is about to wait: the holder has held it since now at
    /// least, unless an earlier waiter said so already. (A holder that released it in between
    /// overwrites this when it is taken again: at worst the stamp is early by the few
    /// nanoseconds between the failed attempt and this.)
    #[cold]
    fn contended(since: &AtomicU64) {
        let _ = since.compare_exchange(0, sys::coarse_monotonic_ns(), Relaxed, Relaxed);
    }

    /// Forgets the holder: called before std's lock is released.
    #[inline]
    fn released(&self) {
        self.tid.store(0, Relaxed);
    }
}

impl Drop for Header {
    /// A lock that is gone no longer looks like one to a dump reading its old address (an
    /// atomic store, so it is not optimised away as dead before the memory is freed).
    fn drop(&mut self) {
        self.magic.store(0, Relaxed);
    }
}

/// An [`RwLock`]'s header: its writer as a [`Header`], then its readers.
#[repr(C)]
struct RwHeader {
    writer: Header,
    /// How many read guards are alive.
    readers: AtomicU32,
    /// The thread that took the last read lock, when, and where.
    reader_tid: AtomicI32,
    reader_since: AtomicU64,
    reader_location: AtomicPtr<Location<'static>>,
}

impl RwHeader {
    const fn new(inner_offset: usize) -> RwHeader {
        RwHeader {
            writer: Header::new(RWLOCK_MAGIC, inner_offset),
            readers: AtomicU32::new(0),
            reader_tid: AtomicI32::new(0),
            reader_since: AtomicU64::new(0),
            reader_location: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    #[inline]
    fn read_taken(&self, location: &'static Location<'static>, since: u64) {
        self.reader_location
            .store(std::ptr::from_ref(location).cast_mut(), Relaxed);
        self.reader_since.store(since, Relaxed);
        self.writer.home.store(std::ptr::from_ref(self) as usize, Relaxed);
        self.reader_tid.store(current_tid(), Relaxed);
        self.readers.fetch_add(1, Relaxed);
    }

    /// A reader or writer is about to wait: whoever holds it (a writer, or readers) has held it
    /// since now at least; see [`Header::contended`].
    #[cold]
    fn contended(&self) {
        Header::contended(&self.writer.since);
        Header::contended(&self.reader_since);
    }

    #[inline]
    fn read_released(&self) {
        self.readers.fetch_sub(1, Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The thread id, cached per thread.

thread_local! {
    /// The calling thread's id in the low 32 bits, and the [`FORK_GENERATION`] it was read in
    /// in the high 32; 0 before the first lock.
    static TID: Cell<u64> = const { Cell::new(0) };
}

/// Bumped in every forked child (where the forking thread has a new id), so that a cached id
/// from before the fork is never used.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(1);

/// Whether the fork hook is in place: ids are cached only then.
static FORK_HOOKED: OnceLock<bool> = OnceLock::new();

/// The child's fork hook: an atomic increment, as `atfork`'s rules allow. Only the forking
/// thread lives in the child, and it runs this before it can take a lock there.
fn forked() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

/// The kernel id of the calling thread: a thread-local read and a comparison after the first
/// call in each thread; a system call only when the cache is stale (first lock, fork) or
/// cannot be used (the thread-local is being torn down while a destructor takes a lock).
#[inline]
fn current_tid() -> i32 {
    let generation = FORK_GENERATION.load(Relaxed);
    let cached = TID.try_with(Cell::get).unwrap_or(0);
    let tid = cached as u32;
    if (cached >> 32) as u32 == generation && tid != 0 {
        return tid as i32;
    }
    current_tid_slow(generation)
}

#[cold]
fn current_tid_slow(generation: u32) -> i32 {
    let hooked = *FORK_HOOKED.get_or_init(|| atfork::on_child(Phase::ThreadIds, forked));
    let tid = sys::gettid();
    if hooked {
        let _ = TID.try_with(|c| c.set((u64::from(generation) << 32) | u64::from(tid as u32)));
    }
    tid
}

/// std's result with its guard wrapped in ours: poisoned stays poisoned.
#[inline]
fn ours<G, W>(result: LockResult<G>, wrap: impl FnOnce(G) -> W) -> LockResult<W> {
    match result {
        Ok(guard) => Ok(wrap(guard)),
        Err(poisoned) => Err(PoisonError::new(wrap(poisoned.into_inner()))),
    }
}

/// Takes a lock the way every blocking method here does: without waiting if it is free (no
/// clock read: `since` 0), else stamps the contention (`contended`), blocks, and stamps when it
/// got it. `wrap` makes our guard from std's and the `since` to record.
#[inline]
fn acquire<G, W>(
    attempt: impl FnOnce() -> TryLockResult<G>,
    contended: impl FnOnce(),
    block: impl FnOnce() -> LockResult<G>,
    wrap: impl Fn(G, u64) -> W,
) -> LockResult<W> {
    match attempt() {
        Ok(inner) => return Ok(wrap(inner, 0)),
        Err(TryLockError::Poisoned(poisoned)) => {
            return Err(PoisonError::new(wrap(poisoned.into_inner(), 0)));
        }
        Err(TryLockError::WouldBlock) => contended(),
    }
    let result = block();
    let now = sys::coarse_monotonic_ns();
    ours(result, |inner| wrap(inner, now))
}

/// std's `try_` result with its guard wrapped in ours.
#[inline]
fn ours_try<G, W>(result: TryLockResult<G>, wrap: impl FnOnce(G) -> W) -> TryLockResult<W> {
    match result {
        Ok(guard) => Ok(wrap(guard)),
        Err(TryLockError::Poisoned(poisoned)) => Err(TryLockError::Poisoned(PoisonError::new(wrap(
            poisoned.into_inner(),
        )))),
        Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
    }
}

// ---------------------------------------------------------------------------------------------
// Mutex

/// A mutual exclusion lock that records its holder: [`std::sync::Mutex`] with the same API.
/// See [the module](self).
#[repr(C)]
pub struct Mutex<T: ?Sized> {
    header: Header,
    inner: std::sync::Mutex<T>,
}

/// The guard of a [`Mutex`]: the lock is held until it is dropped. Like std's, it is not
/// `Send` (the thread that locked must unlock).
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized> {
    header: &'a Header,
    // Dropped after `Drop::drop` cleared the record: the lock is released last.
    inner: std::sync::MutexGuard<'a, T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            header: Header::new(MUTEX_MAGIC, std::mem::offset_of!(Mutex<T>, inner)),
            inner: std::sync::Mutex::new(value),
        }
    }

    /// The value, consuming the lock.
    ///
    /// # Errors
    /// If the mutex is poisoned, the value inside the error, as with std.
    pub fn into_inner(self) -> LockResult<T> {
        let Mutex { header, inner } = self;
        drop(header);
        inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is free, takes it, and records this thread, the time and the
    /// caller's location as its holder.
    ///
    /// # Errors
    /// If another thread panicked while holding it, the guard inside a [`PoisonError`], as
    /// with std.
    #[track_caller]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let location = Location::caller();
        acquire(
            || self.inner.try_lock(),
            || Header::contended(&self.header.since),
            || self.inner.lock(),
            |inner, since| MutexGuard::new(&self.header, inner, location, since),
        )
    }

    /// Takes the lock if it is free, without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if it is held, [`TryLockError::Poisoned`] (with the guard)
    /// if it is poisoned, as with std.
    #[track_caller]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let location = Location::caller();
        ours_try(self.inner.try_lock(), |inner| {
            MutexGuard::new(&self.header, inner, location, 0)
        })
    }

    /// Whether a thread panicked while holding it.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poison.
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// The value, through the exclusive borrow (no locking needed).
    ///
    /// # Errors
    /// If the mutex is poisoned, the reference inside the error, as with std.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    /// Who holds it now, read from the live lock (for `print` of an exposed one).
    pub(crate) fn held(&self) -> Option<Held> {
        let tid = self.header.tid.load(Relaxed);
        (tid != 0).then(|| Held {
            kind: HeldKind::Mutex,
            tid,
            ago: ago(self.header.since.load(Relaxed)),
            site: site(self.header.location.load(Relaxed) as usize, false),
        })
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    #[inline]
    fn new(
        header: &'a Header,
        inner: std::sync::MutexGuard<'a, T>,
        location: &'static Location<'static>,
        since: u64,
    ) -> MutexGuard<'a, T> {
        header.taken(location, since);
        MutexGuard { header, inner }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.header.released();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    /// Exactly std's text (`Mutex { data: …, poisoned: false, .. }`, `<locked>` when held);
    /// never waits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

// ---------------------------------------------------------------------------------------------
// RwLock

/// A reader-writer lock that records its writer, how many readers it has and which thread took
/// the last read lock: [`std::sync::RwLock`] with the same API. See [the module](self).
#[repr(C)]
pub struct RwLock<T: ?Sized> {
    header: RwHeader,
    inner: std::sync::RwLock<T>,
}

/// The guard of a read lock on an [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    header: &'a RwHeader,
    inner: std::sync::RwLockReadGuard<'a, T>,
}

/// The guard of the write lock on an [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    header: &'a Header,
    inner: std::sync::RwLockWriteGuard<'a, T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            header: RwHeader::new(std::mem::offset_of!(RwLock<T>, inner)),
            inner: std::sync::RwLock::new(value),
        }
    }

    /// The value, consuming the lock.
    ///
    /// # Errors
    /// If the lock is poisoned, the value inside the error, as with std.
    pub fn into_inner(self) -> LockResult<T> {
        let RwLock { header, inner } = self;
        drop(header);
        inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Blocks until no writer holds it, takes a read lock, and records this thread as the last
    /// reader.
    ///
    /// # Errors
    /// If a writer panicked while holding it, the guard inside a [`PoisonError`], as with std.
    #[track_caller]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let location = Location::caller();
        acquire(
            || self.inner.try_read(),
            || self.header.contended(),
            || self.inner.read(),
            |inner, since| RwLockReadGuard::new(&self.header, inner, location, since),
        )
    }

    /// Takes a read lock if it can without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] or [`TryLockError::Poisoned`], as with std.
    #[track_caller]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let location = Location::caller();
        ours_try(self.inner.try_read(), |inner| {
            RwLockReadGuard::new(&self.header, inner, location, 0)
        })
    }

    /// Blocks until nobody holds it, takes the write lock, and records this thread as the
    /// writer.
    ///
    /// # Errors
    /// If a writer panicked while holding it, the guard inside a [`PoisonError`], as with std.
    #[track_caller]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let location = Location::caller();
        acquire(
            || self.inner.try_write(),
            || self.header.contended(),
            || self.inner.write(),
            |inner, since| RwLockWriteGuard::new(&self.header.writer, inner, location, since),
        )
    }

    /// Takes the write lock if it can without waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] or [`TryLockError::Poisoned`], as with std.
    #[track_caller]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let location = Location::caller();
        ours_try(self.inner.try_write(), |inner| {
            RwLockWriteGuard::new(&self.header.writer, inner, location, 0)
        })
    }

    /// Whether a writer panicked while holding it.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poison.
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// The value, through the exclusive borrow (no locking needed).
    ///
    /// # Errors
    /// If the lock is poisoned, the reference inside the error, as with std.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    /// Who holds it now, read from the live lock (for `print` of an exposed one).
    pub(crate) fn held(&self) -> Option<Held> {
        let h = &self.header;
        let raw = RawRw {
            writer: Raw {
                tid: h.writer.tid.load(Relaxed),
                since: h.writer.since.load(Relaxed),
                location: h.writer.location.load(Relaxed) as usize,
            },
            readers: h.readers.load(Relaxed),
            reader: Raw {
                tid: h.reader_tid.load(Relaxed),
                since: h.reader_since.load(Relaxed),
                location: h.reader_location.load(Relaxed) as usize,
            },
        };
        raw.held(false)
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    #[inline]
    fn new(
        header: &'a RwHeader,
        inner: std::sync::RwLockReadGuard<'a, T>,
        location: &'static Location<'static>,
        since: u64,
    ) -> RwLockReadGuard<'a, T> {
        header.read_taken(location, since);
        RwLockReadGuard { header, inner }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    #[inline]
    fn new(
        header: &'a Header,
        inner: std::sync::RwLockWriteGuard<'a, T>,
        location: &'static Location<'static>,
        since: u64,
    ) -> RwLockWriteGuard<'a, T> {
        header.taken(location, since);
        RwLockWriteGuard { header, inner }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.header.read_released();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.header.released();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    /// Exactly std's text (`RwLock { data: …, poisoned: false, .. }`); never waits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

/// What std's guards have: `Deref` (and `DerefMut` for the writers) to the value, and its
/// `Debug` and `Display`.
macro_rules! guards_give_their_value {
    (mut $($guard:ident),*) => {$(
        impl<T: ?Sized> DerefMut for $guard<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.inner
            }
        }
    )*};
    ($($guard:ident),*) => {$(
        impl<T: ?Sized> Deref for $guard<'_, T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.inner
            }
        }

        impl<T: ?Sized + fmt::Debug> fmt::Debug for $guard<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: ?Sized + fmt::Display> fmt::Display for $guard<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    )*};
}

guards_give_their_value!(MutexGuard, RwLockReadGuard, RwLockWriteGuard);
guards_give_their_value!(mut MutexGuard, RwLockWriteGuard);

// ---------------------------------------------------------------------------------------------
// Who holds it, for the dump and the console.

/// How a lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeldKind {
    /// A [`Mutex`], by the thread named.
    Mutex,
    /// An [`RwLock`] by a writer, the thread named.
    Write,
    /// An [`RwLock`] by this many readers; the thread named took the last read lock.
    Read { readers: u32 },
}

/// Where a lock was taken (owned: the dump keeps it past the lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Site {
    pub(crate) file: String,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// Who holds a lock, as its header recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) kind: HeldKind,
    /// The holder's kernel thread id (for readers: the last reader's).
    pub(crate) tid: i32,
    /// How long it has been held at least (at the coarse clock's resolution, a few ms): known
    /// once another thread had to wait for it (see `Header::since`).
    pub(crate) ago: Option<Duration>,
    /// Where it was taken, when known.
    pub(crate) site: Option<Site>,
}

impl Held {
    /// `locked by 4242 "flusher" for 1.2 s, taken at src/db.rs:88`, and the like for an
    /// RwLock: what `print` shows and a dump can say.
    pub(crate) fn describe(&self) -> String {
        let who = thread_label(self.tid);
        let held_for = self
            .ago
            .map_or_else(String::new, |d| format!(" for {}", text::wait_duration(d)));
        let read_ago = self
            .ago
            .map_or_else(String::new, |d| format!(" {} ago", text::wait_duration(d)));
        let at = |lead: &str| {
            self.site
                .as_ref()
                .map_or_else(String::new, |s| format!("{lead}{}:{}", s.file, s.line))
        };
        match self.kind {
            HeldKind::Mutex => format!("locked by {who}{held_for}{}", at(", taken at ")),
            HeldKind::Write => format!("write-locked by {who}{held_for}{}", at(", taken at ")),
            HeldKind::Read { readers } => format!(
                "read-locked by {readers} reader{}, the last read lock taken by {who}{read_ago}{}",
                if readers == 1 { "" } else { "s" },
                at(" at ")
            ),
        }
    }
}

/// `4242 "flusher"`; a thread that is no longer one of this process's is said to be gone (a
/// leaked guard, or a lock held across `fork()` by a thread of the parent).
fn thread_label(tid: i32) -> String {
    if let Some(status) = procfs::task_status(tid) {
        return format!("{tid} \"{}\"", status.name);
    }
    let tids = procfs::task_ids();
    if !tids.is_empty() && !tids.contains(&tid) {
        return format!("{tid} (no longer a thread of this process)");
    }
    tid.to_string()
}

/// How long ago a timestamp of [`sys::coarse_monotonic_ns`] was; `None` for 0 (not known).
fn ago(since: u64) -> Option<Duration> {
    (since != 0).then(|| Duration::from_nanos(sys::coarse_monotonic_ns().saturating_sub(since)))
}

/// The recorded location at `pointer` (a value of a header's `location` field), as owned data.
/// `through_kernel`: first check through the kernel that its bytes are mapped, for a pointer
/// read out of memory rather than from a live lock.
fn site(pointer: usize, through_kernel: bool) -> Option<Site> {
    if pointer == 0 || !pointer.is_multiple_of(std::mem::align_of::<Location<'static>>()) {
        return None;
    }
    if through_kernel {
        let mut bytes = [0u8; std::mem::size_of::<Location<'static>>()];
        if sys::read_own_memory(pointer, &mut bytes).ok()? != bytes.len() {
            return None;
        }
    }
    // SAFETY: `pointer` is a value of a header's `location` field: read from a live lock by
    // its owner, or, through the kernel, from memory that `read_header` accepted only with the
    // 64-bit magic, the lock's own offset and address in it, read twice alike, i.e. a header
    // this module wrote in this process at that address. The only stores to that field are
    // null (refused above) and `Location::caller()`, a `&'static Location<'static>`: it lives in
    // the program's read-only data for the life of the process (and its bytes were just found
    // mapped, which also covers a library unloaded since).
    let location: &'static Location<'static> = unsafe { &*(pointer as *const Location<'static>) };
    Some(Site {
        file: location.file().to_owned(),
        line: location.line(),
        column: location.column(),
    })
}

/// What one record of a header says, before it is believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Raw {
    tid: i32,
    since: u64,
    location: usize,
}

/// What an RwLock's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RawRw {
    writer: Raw,
    readers: u32,
    reader: Raw,
}

impl Raw {
    fn held(self, kind: HeldKind, through_kernel: bool) -> Option<Held> {
        (self.tid != 0).then(|| Held {
            kind,
            tid: self.tid,
            ago: ago(self.since),
            site: site(self.location, through_kernel),
        })
    }
}

impl RawRw {
    fn held(self, through_kernel: bool) -> Option<Held> {
        if self.writer.tid != 0 {
            return self.writer.held(HeldKind::Write, through_kernel);
        }
        if self.readers == 0 {
            return None;
        }
        // A reader between storing its record and counting itself has tid 0 for a moment.
        self.reader.held(
            HeldKind::Read {
                readers: self.readers,
            },
            through_kernel,
        )
    }
}

/// The size of the larger header, the most any read copies.
const MAX_HEADER: usize = std::mem::size_of::<RwHeader>();

/// Where std's lock can lie after a header of `size` bytes: `size` rounded up to each
/// alignment a value can have, up to a page.
fn inner_offsets(size: usize) -> impl Iterator<Item = usize> {
    let mut last = 0;
    (3..=12).filter_map(move |shift| {
        let offset = size.next_multiple_of(1 << shift);
        (offset != last).then(|| {
            last = offset;
            offset
        })
    })
}

/// A header's bytes at `address`, read through the kernel twice and returned only when both
/// copies agree and carry `magic`, `inner_offset` and `address` itself; never touches the
/// memory directly, so a lock freed meanwhile is a `None`, not a fault.
fn read_header(address: usize, size: usize, magic: u64, inner_offset: usize) -> Option<[u8; MAX_HEADER]> {
    let read = || {
        let mut bytes = [0u8; MAX_HEADER];
        (sys::read_own_memory(address, &mut bytes[..size]).ok()? == size).then_some(bytes)
    };
    for _ in 0..4 {
        let first = read()?;
        if u64_at(&first, std::mem::offset_of!(Header, magic)) != magic
            || u32_at(&first, std::mem::offset_of!(Header, inner_offset)) as usize != inner_offset
            || u64_at(&first, std::mem::offset_of!(Header, home)) as usize != address
        {
            return None;
        }
        if read()? == first {
            return Some(first);
        }
    }
    None
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// The writer (or holder) record at the start of a header's bytes.
fn raw_writer(bytes: &[u8]) -> Raw {
    Raw {
        tid: u32_at(bytes, std::mem::offset_of!(Header, tid)) as i32,
        since: u64_at(bytes, std::mem::offset_of!(Header, since)),
        location: u64_at(bytes, std::mem::offset_of!(Header, location)) as usize,
    }
}

/// Who holds the lock whose futex word is at `word`, if it is one of these locks and held:
/// `word` is what a thread waiting in `futex(2)` passed as its first argument. A std `Mutex`
/// waits on its word at offset 0; an `RwLock`'s readers wait on its state at 0 and its writers
/// at 4 (`tests` check both on the std in use). Every candidate header is read through the
/// kernel, so any address is safe to ask about, even one freed a moment ago.
#[allow(
    dead_code,
    reason = "for the stack dump's wait reasons (issue 16), which reads it from the futex word"
)]
pub(crate) fn holder_of_word(word: usize) -> Option<Held> {
    let mutex = std::mem::size_of::<Header>();
    for offset in inner_offsets(mutex) {
        let Some(address) = word.checked_sub(offset) else {
            continue;
        };
        if let Some(bytes) = read_header(address, mutex, MUTEX_MAGIC, offset) {
            return raw_writer(&bytes).held(HeldKind::Mutex, true);
        }
    }
    let rw = std::mem::size_of::<RwHeader>();
    for offset in inner_offsets(rw) {
        for waits_at in [0, 4] {
            let Some(address) = word.checked_sub(offset + waits_at) else {
                continue;
            };
            if let Some(bytes) = read_header(address, rw, RWLOCK_MAGIC, offset) {
                let raw = RawRw {
                    writer: raw_writer(&bytes),
                    readers: u32_at(&bytes, std::mem::offset_of!(RwHeader, readers)),
                    reader: Raw {
                        tid: u32_at(&bytes, std::mem::offset_of!(RwHeader, reader_tid)) as i32,
                        since: u64_at(&bytes, std::mem::offset_of!(RwHeader, reader_since)),
                        location: u64_at(&bytes, std::mem::offset_of!(RwHeader, reader_location)) as usize,
                    },
                };
                return raw.held(true);
            }
        }
    }
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::procfs::ProcSyscall;

    /// The address of std's lock inside ours: the futex word a waiter passes to the kernel.
    fn word_of<T: ?Sized>(inner: &T) -> usize {
        std::ptr::from_ref(inner).cast::<u8>() as usize
    }

    /// The bytes of `value` as the kernel reads them (no unsafe, no data race with the lock).
    fn bytes_of<T: ?Sized>(value: &T) -> Vec<u8> {
        let mut bytes = vec![0u8; std::mem::size_of_val(value)];
        let n = sys::read_own_memory(word_of(value), &mut bytes).expect("read own memory");
        assert_eq!(n, bytes.len());
        bytes
    }

    /// The offsets whose bytes differ.
    fn changed(before: &[u8], after: &[u8]) -> Vec<usize> {
        (0..before.len()).filter(|i| before[*i] != after[*i]).collect()
    }

    /// Locking a std `Mutex<T>` changes only its first four bytes (the futex word goes from 0
    /// to 1): the word a waiter passes to the kernel lies at offset 0 for every `T`. If std
    /// moved it, dumps would name the wrong lock; this fails instead.
    fn futex_word_is_first<T: ?Sized>(lock: &std::sync::Mutex<T>) {
        let before = bytes_of(lock);
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let locked = bytes_of(lock);
        drop(guard);
        let diff = changed(&before, &locked);
        assert!(
            !diff.is_empty() && diff.iter().all(|i| *i < 4),
            "std::sync::Mutex<{}> changed bytes {diff:?} when locked",
            std::any::type_name::<T>()
        );
        assert_eq!(u32_at(&locked, 0), 1, "locked, no waiters");
        assert_eq!(bytes_of(lock), before, "unlocked again");
    }

    #[test]
    fn std_mutexes_keep_their_futex_word_at_offset_0() {
        futex_word_is_first(&std::sync::Mutex::new(7u8));
        futex_word_is_first(&std::sync::Mutex::new(u128::MAX));
        futex_word_is_first(&std::sync::Mutex::new(String::from("pool")));
        futex_word_is_first(&std::sync::Mutex::new([1u8, 2, 3]));
        futex_word_is_first(&std::sync::Mutex::new(()));
        let unsized_: Box<std::sync::Mutex<[u8]>> = Box::new(std::sync::Mutex::new([9u8; 5]));
        futex_word_is_first(&*unsized_);
        // And ours records where that word is.
        let ours = Mutex::new(1u128);
        assert_eq!(
            word_of(&ours.inner) - word_of(&ours),
            ours.header.inner_offset as usize
        );
    }

    #[test]
    fn std_rwlocks_keep_their_state_at_offset_0() {
        fn check<T>(lock: std::sync::RwLock<T>) {
            let before = bytes_of(&lock);
            let read = lock.read().unwrap_or_else(PoisonError::into_inner);
            let reading = bytes_of(&lock);
            drop(read);
            assert_eq!(changed(&before, &reading), [0], "one reader: state 1");
            assert_eq!(u32_at(&reading, 0), 1);
            let write = lock.write().unwrap_or_else(PoisonError::into_inner);
            let writing = bytes_of(&lock);
            drop(write);
            let diff = changed(&before, &writing);
            assert!(diff.iter().all(|i| *i < 4), "{diff:?}");
            assert_eq!(u32_at(&writing, 0), 0x3fff_ffff, "write-locked");
            assert_eq!(bytes_of(&lock), before);
        }
        check(std::sync::RwLock::new(0u8));
        check(std::sync::RwLock::new(0u128));
        check(std::sync::RwLock::new(String::new()));
        check(std::sync::RwLock::new(()));
    }

    #[test]
    fn headers_are_the_documented_size() {
        assert_eq!(std::mem::size_of::<Header>(), 40);
        assert_eq!(std::mem::size_of::<RwHeader>(), 64);
        assert_eq!(
            std::mem::size_of::<Mutex<u64>>(),
            40 + std::mem::size_of::<std::sync::Mutex<u64>>()
        );
    }

    #[test]
    fn it_poisons_and_recovers_exactly_like_std() {
        let lock = std::sync::Arc::new(Mutex::new(vec![1]));
        let inside = std::sync::Arc::clone(&lock);
        let _ = std::thread::spawn(move || {
            let mut guard = inside.lock().unwrap();
            guard.push(2);
            panic!("poison it");
        })
        .join();
        assert!(lock.is_poisoned());
        assert!(lock.held().is_none(), "the panicking thread's record was cleared");
        let err = lock.lock().expect_err("poisoned");
        assert_eq!(*err.into_inner(), [1, 2]);
        match lock.try_lock() {
            Err(TryLockError::Poisoned(p)) => assert_eq!(p.into_inner().len(), 2),
            _ => panic!("try_lock sees the poison"),
        }
        lock.clear_poison();
        assert!(!lock.is_poisoned());
        assert_eq!(*lock.lock().unwrap(), [1, 2]);

        let rw = std::sync::Arc::new(RwLock::new(5));
        let inside = std::sync::Arc::clone(&rw);
        let _ = std::thread::spawn(move || {
            let _guard = inside.write().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(rw.is_poisoned());
        assert_eq!(*rw.read().expect_err("poisoned").into_inner(), 5);
        assert!(matches!(rw.try_write(), Err(TryLockError::Poisoned(_))));
        rw.clear_poison();
        assert_eq!(*rw.write().unwrap(), 5);
        // A panic under a read lock poisons nothing, as with std.
        let inside = std::sync::Arc::clone(&rw);
        let _ = std::thread::spawn(move || {
            let _guard = inside.read().unwrap();
            panic!("no poison");
        })
        .join();
        assert!(!rw.is_poisoned());
        assert_eq!(rw.header.readers.load(Relaxed), 0);
    }

    #[test]
    fn the_rest_of_stds_api_works_the_same() {
        let lock = Mutex::new(3);
        let guard = lock.lock().unwrap();
        assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
        let std_lock = std::sync::Mutex::new(3);
        let std_guard = std_lock.lock();
        assert_eq!(format!("{lock:?}"), format!("{std_lock:?}"), "held: std's text");
        drop(std_guard);
        assert_eq!(format!("{guard} {guard:?}"), "3 3");
        drop(guard);
        assert_eq!(format!("{lock:?}"), format!("{:?}", std::sync::Mutex::new(3)));
        let mut lock = lock;
        *lock.get_mut().unwrap() = 4;
        assert_eq!(lock.into_inner().unwrap(), 4);
        assert_eq!(*Mutex::<String>::default().lock().unwrap(), "");
        assert_eq!(*Mutex::from(8).lock().unwrap(), 8);

        let rw = RwLock::new(String::from("a"));
        let r1 = rw.read().unwrap();
        let r2 = rw.try_read().unwrap();
        assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)));
        assert_eq!(format!("{r1}{r2:?}"), "a\"a\"");
        assert_eq!(format!("{rw:?}"), format!("{:?}", std::sync::RwLock::new("a")));
        drop((r1, r2));
        let mut w = rw.write().unwrap();
        w.push('b');
        assert!(matches!(rw.try_read(), Err(TryLockError::WouldBlock)));
        assert_eq!(format!("{w} {w:?}"), "ab \"ab\"");
        drop(w);
        let mut rw = rw;
        rw.get_mut().unwrap().push('c');
        assert_eq!(rw.into_inner().unwrap(), "abc");
        assert_eq!(*RwLock::<u8>::default().read().unwrap(), 0);
        assert_eq!(*RwLock::from(2).read().unwrap(), 2);

        // Unsized values, by coercing a box, as with std.
        let bytes: Box<Mutex<[u8]>> = Box::new(Mutex::new([1u8, 2, 3]));
        bytes.lock().unwrap()[0] = 9;
        assert_eq!(*bytes.lock().unwrap(), [9, 2, 3]);
        let text: Box<RwLock<dyn fmt::Display + Send + Sync>> = Box::new(RwLock::new(5));
        assert_eq!(text.read().unwrap().to_string(), "5");
    }

    /// The clock is read only under contention: a waiter stamps since when the lock has been
    /// held at least, and a thread that got it after waiting stamps when it got it.
    #[test]
    fn a_lock_someone_waits_for_knows_since_when_it_is_held() {
        let lock: &'static Mutex<u8> = Box::leak(Box::new(Mutex::new(0)));
        let guard = lock.lock().unwrap();
        let started = Instant::now();
        let waiter = std::thread::spawn(move || {
            let _got = lock.lock().unwrap();
            lock.held().and_then(|h| h.ago)
        });
        let resolution = Duration::from_nanos(sys::coarse_monotonic_resolution_ns());
        let deadline = Instant::now() + Duration::from_secs(20);
        while lock.held().and_then(|h| h.ago).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        let held = lock.held().and_then(|h| h.ago).expect("a waiter stamped it");
        // A lower bound: never longer than it really was held.
        assert!(
            held <= started.elapsed() + resolution,
            "{held:?} > {:?}",
            started.elapsed()
        );
        assert!(
            held >= Duration::from_millis(100).saturating_sub(resolution),
            "{held:?}"
        );
        drop(guard);
        let after_waiting = waiter.join().unwrap().expect("stamped when it got it");
        assert!(after_waiting < Duration::from_secs(5), "{after_waiting:?}");
        let rw: &'static RwLock<u8> = Box::leak(Box::new(RwLock::new(0)));
        let reader = rw.read().unwrap();
        let writer = std::thread::spawn(move || drop(rw.write().unwrap()));
        while rw.held().and_then(|h| h.ago).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            rw.held().and_then(|h| h.ago).is_some(),
            "a waiting writer stamps the readers"
        );
        drop(reader);
        writer.join().unwrap();
    }

    #[test]
    fn the_holder_is_this_thread_at_the_callers_line_until_unlocked() {
        let lock = Mutex::new(0);
        let (guard, line) = (lock.lock().unwrap(), line!());
        let held = lock.held().expect("held");
        assert_eq!(held.kind, HeldKind::Mutex);
        assert_eq!(held.tid, sys::gettid());
        let site = held.site.expect("a site");
        assert_eq!((site.file.as_str(), site.line), (file!(), line));
        // Taken without waiting: no clock was read, and nobody waits, so nobody asks.
        assert_eq!(held.ago, None);
        drop(guard);
        assert_eq!(lock.held(), None);
        let (guard, line) = (lock.try_lock().unwrap(), line!());
        assert_eq!(lock.held().and_then(|h| h.site).map(|s| s.line), Some(line));
        drop(guard);
        assert_eq!(lock.held(), None);

        let rw = RwLock::new(0);
        let (w, line) = (rw.write().unwrap(), line!());
        let held = rw.held().expect("write-held");
        assert_eq!((held.kind, held.tid), (HeldKind::Write, sys::gettid()));
        assert_eq!(held.site.map(|s| s.line), Some(line));
        drop(w);
        assert_eq!(rw.held(), None);
        let r1 = rw.read().unwrap();
        let (r2, line) = (rw.read().unwrap(), line!());
        let held = rw.held().expect("read-held");
        assert_eq!(held.kind, HeldKind::Read { readers: 2 });
        assert_eq!(held.site.map(|s| s.line), Some(line));
        drop(r1);
        assert_eq!(rw.held().map(|h| h.kind), Some(HeldKind::Read { readers: 1 }));
        drop(r2);
        assert_eq!(rw.held(), None);
    }

    /// The word `tid` waits on, once it waits in `futex(2)` (FUTEX_WAIT or FUTEX_WAIT_BITSET).
    fn waits_on(tid: i32) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(ProcSyscall::In { number, args, .. }) = procfs::syscall(tid)
                && number == libc::SYS_futex
                && matches!(args[1] & 0x7f, 0 | 9)
            {
                return args[0];
            }
            assert!(Instant::now() < deadline, "thread {tid} never waited in futex");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A thread named `name` that runs `take` (which takes a lock and says at which line),
    /// sends its tid and that line, and holds what `take` returned until `release` says.
    fn holder<G: 'static>(
        name: &str,
        take: impl FnOnce() -> (G, u32) + Send + 'static,
    ) -> (i32, u32, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (told, tell) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let (guard, line) = take();
                let _ = told.send((sys::gettid(), line));
                let _ = released.recv();
                drop(guard);
            })
            .expect("spawn");
        let (tid, line) = tell.recv().expect("the holder took the lock");
        (tid, line, release, thread)
    }

    /// A thread that runs `wait` (which blocks on a lock); returns its tid.
    fn waiter(wait: impl FnOnce() + Send + 'static) -> (i32, std::thread::JoinHandle<()>) {
        let (told, tell) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = told.send(sys::gettid());
            wait();
        });
        (tell.recv().expect("the waiter started"), thread)
    }

    #[test]
    fn a_thread_waiting_on_a_mutex_names_its_holder() {
        static LOCK: Mutex<u32> = Mutex::new(0);
        let (holder_tid, line, release, holding) = holder("m-holder", || (LOCK.lock().unwrap(), line!()));
        let (waiter_tid, waiting) = waiter(|| drop(LOCK.lock()));
        let word = waits_on(waiter_tid);
        assert_eq!(word, word_of(&LOCK.inner), "std waits on its word at offset 0");
        let held = holder_of_word(word).expect("the word is our lock's, held");
        assert_eq!((held.kind, held.tid), (HeldKind::Mutex, holder_tid));
        let site = held.site.as_ref().expect("a site");
        assert_eq!((site.file.as_str(), site.line), (file!(), line));
        assert!(
            held.describe()
                .starts_with(&format!("locked by {holder_tid} \"m-holder\" for ")),
            "{}",
            held.describe()
        );
        assert_eq!(holder_of_word(word + 4), None, "not the futex word");
        let _ = release.send(());
        holding.join().expect("holder");
        waiting.join().expect("waiter");
        assert_eq!(holder_of_word(word), None, "free now");
    }

    #[test]
    fn a_writer_waiting_on_readers_and_a_reader_waiting_on_a_writer() {
        static RW: RwLock<u32> = RwLock::new(0);
        let state = word_of(&RW.inner);
        // A writer waits for the reader to go, on the lock's second word.
        let (reader_tid, line, release, holding) = holder("rw-reader", || (RW.read().unwrap(), line!()));
        let (writer_tid, writing) = waiter(|| drop(RW.write()));
        let word = waits_on(writer_tid);
        assert_eq!(word, state + 4, "std's writers wait at +4");
        let held = holder_of_word(word).expect("read-held");
        assert_eq!(held.kind, HeldKind::Read { readers: 1 });
        assert_eq!(held.tid, reader_tid);
        assert_eq!(held.site.as_ref().map(|s| s.line), Some(line));
        assert!(
            held.describe().starts_with(&format!(
                "read-locked by 1 reader, the last read lock taken by {reader_tid} \"rw-reader\" "
            )),
            "{}",
            held.describe()
        );
        let _ = release.send(());
        holding.join().expect("reader");
        writing.join().expect("writer");

        // A reader waits for the writer to go, on the lock's first word.
        let (writer_tid, line, release, holding) = holder("rw-writer", || (RW.write().unwrap(), line!()));
        let (reader_waiting, reading) = waiter(|| drop(RW.read()));
        let word = waits_on(reader_waiting);
        assert_eq!(word, state, "std's readers wait at +0");
        let held = holder_of_word(word).expect("write-held");
        assert_eq!((held.kind, held.tid), (HeldKind::Write, writer_tid));
        assert_eq!(held.site.as_ref().map(|s| s.line), Some(line));
        let _ = release.send(());
        holding.join().expect("writer");
        reading.join().expect("reader");
        assert_eq!(holder_of_word(state), None);
        assert_eq!(holder_of_word(state + 4), None);
    }

    #[test]
    fn a_dropped_lock_is_no_lock_and_no_address_faults() {
        // Dropped in place while its record says held (a leaked guard): the memory is still
        // there (the vector keeps its buffer), the header no longer passes.
        let mut kept = vec![Mutex::new(1u64)];
        let word = word_of(&kept[0].inner);
        std::mem::forget(kept[0].lock());
        assert_eq!(holder_of_word(word).map(|h| h.tid), Some(sys::gettid()));
        kept.truncate(0);
        assert_eq!(holder_of_word(word), None, "the magic went with the lock");
        drop(kept);

        // A heap lock freed and given back to the kernel: its old address is unmapped.
        let many: Vec<Mutex<u8>> = (0..1_500_000).map(|_| Mutex::new(0)).collect();
        let word = word_of(&many[1000].inner);
        std::mem::forget(many[1000].lock());
        assert!(holder_of_word(word).is_some());
        drop(many);
        assert!(sys::read_own_memory(word, &mut [0u8; 8]).is_err(), "unmapped now");
        assert_eq!(holder_of_word(word), None);

        // Addresses that were never a lock.
        for word in [0, 4, 0x2000, usize::MAX, usize::MAX - 4096] {
            assert_eq!(holder_of_word(word), None);
        }
        let plain = std::sync::Mutex::new(0);
        let _guard = plain.lock();
        assert_eq!(holder_of_word(word_of(&plain)), None, "std's own lock");
    }

    #[test]
    fn a_copy_of_a_held_locks_bytes_elsewhere_is_not_a_lock() {
        let lock = Mutex::new(0u32);
        std::mem::forget(lock.lock());
        let offset = lock.header.inner_offset as usize;
        let mut copy = vec![0u8; std::mem::size_of_val(&lock)];
        let n = sys::read_own_memory(word_of(&lock), &mut copy).unwrap_or(0);
        assert_eq!(n, copy.len());
        assert!(holder_of_word(word_of(&lock.inner)).is_some());
        // The same bytes at another address: `home` does not match.
        assert_eq!(holder_of_word(copy.as_ptr() as usize + offset), None);
    }

    #[test]
    fn the_coarse_clock_keeps_time_with_instant() {
        let resolution = Duration::from_nanos(sys::coarse_monotonic_resolution_ns());
        assert!(resolution <= Duration::from_millis(10), "{resolution:?}");
        let (coarse, fine) = (sys::coarse_monotonic_ns(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (coarse_took, fine_took) = (ago(coarse).expect("a time"), fine.elapsed());
        let slack = resolution * 2 + Duration::from_millis(1);
        assert!(
            coarse_took + slack >= fine_took && coarse_took <= fine_took + slack,
            "coarse {coarse_took:?}, Instant {fine_took:?}, resolution {resolution:?}"
        );
    }

    #[test]
    fn what_a_holder_is_called() {
        let me = sys::gettid();
        let name = procfs::task_status(me).map(|s| s.name).unwrap_or_default();
        let held = Held {
            kind: HeldKind::Mutex,
            tid: me,
            ago: Some(Duration::from_millis(12_400)),
            site: Some(Site {
                file: "src/db.rs".into(),
                line: 88,
                column: 5,
            }),
        };
        assert_eq!(
            held.describe(),
            format!("locked by {me} \"{name}\" for 12.4 s, taken at src/db.rs:88")
        );
        let gone = Held {
            kind: HeldKind::Write,
            tid: i32::MAX,
            ago: Some(Duration::from_secs(250)),
            site: None,
        };
        assert_eq!(
            gone.describe(),
            format!(
                "write-locked by {} (no longer a thread of this process) for 4m 10s",
                i32::MAX
            )
        );
        let readers = Held {
            kind: HeldKind::Read { readers: 3 },
            ..held
        };
        assert_eq!(
            readers.describe(),
            format!(
                "read-locked by 3 readers, the last read lock taken by {me} \"{name}\" 12.4 s ago at src/db.rs:88"
            )
        );
    }

    #[test]
    fn in_a_forked_child_a_lock_records_the_childs_thread() {
        crate::sys::tests::in_child("sync::tests::fork_then_lock");
    }

    #[test]
    #[ignore = "run by in_a_forked_child_a_lock_records_the_childs_thread in a child"]
    fn fork_then_lock() {
        static LOCK: Mutex<u8> = Mutex::new(0);
        // This thread's id is cached now.
        drop(LOCK.lock());
        let parent_tid = sys::gettid();
        // SAFETY: the child only locks, reads atomics, compares and calls _exit (no allocation,
        // no lock another thread could hold).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let guard = LOCK.lock();
            let recorded = LOCK.header.tid.load(Relaxed);
            let code = if recorded == parent_tid {
                3
            } else if recorded == sys::gettid() {
                0
            } else {
                4
            };
            drop(guard);
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid int.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "3: the child recorded its parent's thread id; 4: some other id"
        );
    }
}
