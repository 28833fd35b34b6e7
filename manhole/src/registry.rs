//! What the program exposes to the console: statics and functions marked with
//! `#[manhole::expose]`, collected at link time from every crate of the binary.
//!
//! Entries are built by the macro; the types here are reached by generated code through
//! `manhole::__private` and are not a public API.

use std::fmt::{self, Debug, Display};
use std::str::FromStr;
use std::sync::atomic::{
    AtomicBool, AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock, TryLockError};
use std::time::{Duration, Instant};

/// One exposed item.
#[derive(Debug)]
pub struct Exposed {
    /// The name the console knows it by.
    pub name: &'static str,
    /// Its type, as written in the source.
    pub type_name: &'static str,
    /// The module that defines it.
    pub module_path: &'static str,
    /// The first line of its doc comment.
    pub doc: &'static str,
    /// A value or a function.
    pub kind: Kind,
}

/// Parses text into a writable static, returning its old and new values as text.
pub type SetFn = fn(&str) -> Result<(String, String), SetError>;

/// Reads a static the way the console shows it; see [`Shown`].
pub type ShowFn = fn() -> Shown;

/// What an exposed item is.
pub enum Kind {
    /// A static: read it; set it from text when it is writable.
    Value {
        /// A reference to the static.
        get: fn() -> &'static (dyn Debug + Sync),
        /// Reads it without forcing a `LazyLock`, poisoning a lock or waiting on one.
        show: ShowFn,
        /// Parses the text and stores it, returning the old and new values as text.
        set: Option<SetFn>,
    },
    /// A function called with arguments parsed from text.
    Function {
        /// Parameter names and types, in order.
        params: &'static [Param],
        /// Parses the arguments, calls the function and renders its result.
        call: fn(&[String]) -> Result<String, String>,
    },
}

impl Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Value { set, .. } => write!(f, "Value {{ writable: {} }}", set.is_some()),
            Kind::Function { params, .. } => write!(f, "Function {{ params: {params:?} }}"),
        }
    }
}

/// One parameter of an exposed function.
#[derive(Debug)]
pub struct Param {
    /// Its name in the source.
    pub name: &'static str,
    /// Its type, as written in the source.
    pub type_name: &'static str,
}

inventory::collect!(Exposed);

/// Every exposed item, sorted by name then module.
pub(crate) fn all() -> Vec<&'static Exposed> {
    let mut items: Vec<&'static Exposed> = inventory::iter::<Exposed>.into_iter().collect();
    items.sort_by_key(|e| (e.name, e.module_path));
    items
}

/// The item called `name` (or `module::path::name` to tell apart two of the same name).
pub(crate) fn find(name: &str) -> Result<&'static Exposed, (&'static str, String)> {
    let matches: Vec<&'static Exposed> = all()
        .into_iter()
        .filter(|e| e.name == name || format!("{}::{}", e.module_path, e.name) == name)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err((
            "not_found",
            format!("nothing exposed is called {name:?}; \"vars\" lists what is"),
        )),
        many => Err((
            "ambiguous",
            format!(
                "{name:?} is ambiguous; use one of: {}",
                many.iter()
                    .map(|e| format!("{}::{}", e.module_path, e.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// A value of the running program given to [`Options::local`](crate::Options::local).
pub(crate) struct Local {
    pub(crate) name: String,
    pub(crate) type_name: &'static str,
    /// Only ever read through `Debug`, inside `catch_unwind`: a panic there leaves nothing of
    /// manhole's half-changed, so `Handle` stays unwind-safe whatever the value is.
    pub(crate) value: std::panic::AssertUnwindSafe<std::sync::Arc<dyn Debug + Send + Sync>>,
}

impl Clone for Local {
    fn clone(&self) -> Local {
        Local {
            name: self.name.clone(),
            type_name: self.type_name,
            value: std::panic::AssertUnwindSafe(std::sync::Arc::clone(&self.value)),
        }
    }
}

impl Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.type_name)
    }
}

/// How long `set` waits for a lock held elsewhere before giving up.
const LOCK_PATIENCE: Duration = Duration::from_millis(200);

/// What the console found when it read an exposed static.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown {
    /// Its `Debug` text (pretty). `poisoned`: it sits behind a lock the program poisoned.
    Value {
        /// The text.
        text: String,
        /// Whether the lock it sits behind is poisoned (left as it was).
        poisoned: bool,
    },
    /// Behind a lock held elsewhere, still after retrying for a moment.
    Locked,
    /// Behind a [`crate::sync`] lock held elsewhere, still after retrying for a moment: who
    /// holds it (`locked by 4242 "flusher" for 1.2 s, taken at src/db.rs:88`).
    LockedBy(String),
    /// A `LazyLock` or `OnceLock` the program has not initialised: reading it would run the
    /// program's initializer. (std cannot tell a `LazyLock` whose initializer panicked from one
    /// never used; neither is forced.)
    Uninit,
    /// Its `Debug` panicked; the message.
    Panicked(String),
}

impl Shown {
    /// The text the console shows: the value, or a note in `<…>`.
    pub(crate) fn text(&self) -> String {
        match self {
            Shown::Value {
                text,
                poisoned: false,
            } => text.clone(),
            Shown::Value { text, poisoned: true } => format!("{text} (poisoned)"),
            Shown::Locked => "<locked>".to_owned(),
            Shown::LockedBy(holder) => format!("<{holder}>"),
            Shown::Uninit => "<not initialised yet>".to_owned(),
            Shown::Panicked(message) => format!("<Debug panicked: {message}>"),
        }
    }
}

/// `value`'s pretty `Debug` text; a panic in it is caught here, inside, so that it never
/// unwinds through a lock guard the caller holds (a guard dropped while panicking poisons the
/// program's lock).
fn debug_caught<T: Debug + ?Sized>(value: &T, pretty: bool) -> Result<String, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if pretty {
            format!("{value:#?}")
        } else {
            format!("{value:?}")
        }
    }))
    .map_err(|panic| crate::text::panic_message(&*panic))
}

/// How long `print` retries a value whose lock is held elsewhere before showing `<locked>`.
const READ_PATIENCE: Duration = Duration::from_millis(100);

/// Shows a value any `Debug` can show; std's own `Mutex` or `RwLock` inside it show
/// `<locked>` rather than wait, so a lock held only for a moment is retried a few times.
pub(crate) fn show_debug(value: &(dyn Debug + Sync)) -> Shown {
    let deadline = Instant::now() + READ_PATIENCE;
    loop {
        match debug_caught(value, true) {
            Ok(text) if text.contains("<locked>") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(text) => {
                return Shown::Value {
                    text,
                    poisoned: false,
                };
            }
            Err(panic) => return Shown::Panicked(panic),
        }
    }
}

/// Shows what a lock guards: takes the guard itself (retrying a lock held elsewhere for a
/// moment), formats behind it with any panic caught before the guard is dropped, and leaves a
/// poisoned lock poisoned (showing its value). A lock still held at the end is shown by
/// `locked`.
fn show_guarded<G: std::ops::Deref>(
    mut try_guard: impl FnMut() -> Result<G, TryLockError<G>>,
    locked: impl FnOnce() -> Shown,
) -> Shown
where
    G::Target: Debug,
{
    let deadline = Instant::now() + READ_PATIENCE;
    loop {
        let (guard, poisoned) = match try_guard() {
            Ok(guard) => (guard, false),
            Err(TryLockError::Poisoned(poisoned)) => (poisoned.into_inner(), true),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(TryLockError::WouldBlock) => return locked(),
        };
        let text = debug_caught(&*guard, true);
        drop(guard);
        return match text {
            Ok(text) => Shown::Value { text, poisoned },
            Err(panic) => Shown::Panicked(panic),
        };
    }
}

/// Whether a `LazyLock` has been initialised, found without forcing it: its `Debug` says
/// `LazyLock(<uninit>)` when not. The text is written into a sink that refuses everything
/// after the part that tells, so an initialised value's own `Debug` writes nothing (std's
/// `Mutex` and `RwLock` then take no lock at all; they write their name first).
fn lazy_is_initialised<T: Debug, F>(lazy: &LazyLock<T, F>) -> bool {
    const UNINIT: &str = "LazyLock(<uninit>";
    struct Sink(String);
    impl fmt::Write for Sink {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s);
            if UNINIT.starts_with(self.0.as_str()) && self.0.len() < UNINIT.len() {
                Ok(())
            } else {
                Err(fmt::Error)
            }
        }
    }
    let mut sink = Sink(String::new());
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = fmt::write(&mut sink, format_args!("{lazy:?}"));
    }));
    !sink.0.starts_with(UNINIT)
}

/// The value of a `LazyLock` if the program initialised it; never forces it.
fn lazy_get<T: Debug, F: FnOnce() -> T>(lazy: &LazyLock<T, F>) -> Option<&T> {
    lazy_is_initialised(lazy).then(|| &**lazy)
}

/// Wraps a reference to an exposed static so that `#[manhole::expose]` can pick how to read
/// it by its type (autoref specialisation): [`ShowCellLock`] for a lock in a `LazyLock` or
/// `OnceLock`, then [`ShowLockOrCell`], then [`ShowAny`] (its plain `Debug`).
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// A `Mutex` or `RwLock` inside a `LazyLock` or `OnceLock`.
pub trait ShowCellLock {
    /// Reads the value; `get` is unused here.
    fn show(&self, get: fn() -> &'static (dyn Debug + Sync)) -> Shown;
}

impl<T: Debug, F: FnOnce() -> Mutex<T>> ShowCellLock for &&Probe<'_, LazyLock<Mutex<T>, F>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        lazy_get(self.0).map_or(Shown::Uninit, |m| show_guarded(|| m.try_lock(), || Shown::Locked))
    }
}

impl<T: Debug, F: FnOnce() -> RwLock<T>> ShowCellLock for &&Probe<'_, LazyLock<RwLock<T>, F>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        lazy_get(self.0).map_or(Shown::Uninit, |l| show_guarded(|| l.try_read(), || Shown::Locked))
    }
}

impl<T: Debug> ShowCellLock for &&Probe<'_, OnceLock<Mutex<T>>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        self.0
            .get()
            .map_or(Shown::Uninit, |m| show_guarded(|| m.try_lock(), || Shown::Locked))
    }
}

impl<T: Debug> ShowCellLock for &&Probe<'_, OnceLock<RwLock<T>>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        self.0
            .get()
            .map_or(Shown::Uninit, |l| show_guarded(|| l.try_read(), || Shown::Locked))
    }
}

impl<T: Debug, F: FnOnce() -> crate::sync::Mutex<T>> ShowCellLock
    for &&Probe<'_, LazyLock<crate::sync::Mutex<T>, F>>
{
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        lazy_get(self.0).map_or(Shown::Uninit, show_sync_mutex)
    }
}

impl<T: Debug, F: FnOnce() -> crate::sync::RwLock<T>> ShowCellLock
    for &&Probe<'_, LazyLock<crate::sync::RwLock<T>, F>>
{
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        lazy_get(self.0).map_or(Shown::Uninit, show_sync_rwlock)
    }
}

impl<T: Debug> ShowCellLock for &&Probe<'_, OnceLock<crate::sync::Mutex<T>>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        self.0.get().map_or(Shown::Uninit, show_sync_mutex)
    }
}

impl<T: Debug> ShowCellLock for &&Probe<'_, OnceLock<crate::sync::RwLock<T>>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        self.0.get().map_or(Shown::Uninit, show_sync_rwlock)
    }
}

/// A `Mutex` or `RwLock`, or a `LazyLock` or `OnceLock` of anything else.
pub trait ShowLockOrCell {
    /// Reads the value; `get` is unused here.
    fn show(&self, get: fn() -> &'static (dyn Debug + Sync)) -> Shown;
}

impl<T: Debug + ?Sized> ShowLockOrCell for &Probe<'_, Mutex<T>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        show_guarded(|| self.0.try_lock(), || Shown::Locked)
    }
}

impl<T: Debug + ?Sized> ShowLockOrCell for &Probe<'_, RwLock<T>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        show_guarded(|| self.0.try_read(), || Shown::Locked)
    }
}

/// Who holds a [`crate::sync`] lock that stayed held; `<locked>` if it was let go meanwhile.
fn locked_by(held: Option<crate::sync::Held>) -> Shown {
    held.map_or(Shown::Locked, |held| Shown::LockedBy(held.describe()))
}

fn show_sync_mutex<T: Debug + ?Sized>(m: &crate::sync::Mutex<T>) -> Shown {
    show_guarded(|| m.try_lock(), || locked_by(m.held()))
}

fn show_sync_rwlock<T: Debug + ?Sized>(l: &crate::sync::RwLock<T>) -> Shown {
    show_guarded(|| l.try_read(), || locked_by(l.held()))
}

impl<T: Debug + ?Sized> ShowLockOrCell for &Probe<'_, crate::sync::Mutex<T>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        show_sync_mutex(self.0)
    }
}

impl<T: Debug + ?Sized> ShowLockOrCell for &Probe<'_, crate::sync::RwLock<T>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        show_sync_rwlock(self.0)
    }
}

impl<T: Debug + Sync, F: FnOnce() -> T> ShowLockOrCell for &Probe<'_, LazyLock<T, F>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        lazy_get(self.0).map_or(Shown::Uninit, |v| show_debug(v))
    }
}

impl<T: Debug + Sync> ShowLockOrCell for &Probe<'_, OnceLock<T>> {
    fn show(&self, _: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        self.0.get().map_or(Shown::Uninit, |v| show_debug(v))
    }
}

/// Anything else: its `Debug`, through `get` (which is where a missing `Debug` or `Sync` is
/// reported, so this one asks nothing of the type).
pub trait ShowAny {
    /// Reads the value through `get`.
    fn show(&self, get: fn() -> &'static (dyn Debug + Sync)) -> Shown;
}

impl<T: ?Sized> ShowAny for Probe<'_, T> {
    fn show(&self, get: fn() -> &'static (dyn Debug + Sync)) -> Shown {
        show_debug(get())
    }
}

/// A static that `#[manhole::expose(writable)]` can change from the console.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be set from the console",
    label = "not settable",
    note = "`writable` works on atomics, and on a `Mutex` or `RwLock` (possibly in a `LazyLock`) of a type that implements `FromStr` and `Debug`"
)]
pub trait Settable {
    /// Parses `text`, stores it, and returns the old and the new value as text.
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError>;
}

/// Why a value was not set; nothing changed in every case. `set` shows the message, and
/// machine mode gives the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetError {
    /// The text is not a value of the type.
    Parse(String),
    /// The lock stayed held elsewhere for as long as manhole waits.
    Locked(String),
    /// A `LazyLock` or `OnceLock` the program has not initialised.
    NotInitialised,
}

impl SetError {
    /// The stable code of machine mode's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::Parse(_) => "parse",
            SetError::Locked(_) => "locked",
            SetError::NotInitialised => "not_initialised",
        }
    }
}

impl Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::Parse(message) | SetError::Locked(message) => f.write_str(message),
            SetError::NotInitialised => f.write_str(NOT_INITIALISED),
        }
    }
}

fn parse<T: FromStr>(text: &str) -> Result<T, SetError>
where
    T::Err: Display,
{
    text.trim().parse::<T>().map_err(|e| {
        SetError::Parse(format!(
            "cannot parse {text:?} as {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

macro_rules! settable_atomic {
    ($($atomic:ty => $value:ty),* $(,)?) => {$(
        impl Settable for $atomic {
            fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
                let new: $value = parse(text)?;
                let old = self.swap(new, Ordering::SeqCst);
                Ok((format!("{old:?}"), format!("{new:?}")))
            }
        }
    )*};
}

settable_atomic! {
    AtomicBool => bool, AtomicI8 => i8, AtomicI16 => i16, AtomicI32 => i32, AtomicI64 => i64,
    AtomicIsize => isize, AtomicU8 => u8, AtomicU16 => u16, AtomicU32 => u32, AtomicU64 => u64,
    AtomicUsize => usize,
}

/// Retries `attempt` until it stops reporting a held lock, for at most [`LOCK_PATIENCE`].
fn with_patience<R>(mut attempt: impl FnMut() -> Option<R>) -> Result<R, SetError> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        if let Some(done) = attempt() {
            return Ok(done);
        }
        if Instant::now() >= deadline {
            return Err(SetError::Locked(format!(
                "the lock is held elsewhere (waited {} ms); nothing changed",
                LOCK_PATIENCE.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Parses `text`, then stores it through the guard `try_guard` gives, retrying a lock held
/// elsewhere for a moment; a poisoned lock is still written (it holds a valid value) and stays
/// poisoned.
fn set_locked<T, G>(
    text: &str,
    mut try_guard: impl FnMut() -> Result<G, TryLockError<G>>,
) -> Result<(String, String), SetError>
where
    T: FromStr + Debug,
    T::Err: Display,
    G: std::ops::DerefMut<Target = T>,
{
    let mut new = Some(parse::<T>(text)?);
    with_patience(|| match try_guard() {
        Ok(mut guard) => Some(swap_in(&mut *guard, &mut new, false)),
        Err(TryLockError::Poisoned(poisoned)) => Some(swap_in(&mut *poisoned.into_inner(), &mut new, true)),
        Err(TryLockError::WouldBlock) => None,
    })
}

impl<T> Settable for Mutex<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        set_locked(text, || self.try_lock())
    }
}

impl<T> Settable for RwLock<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        set_locked(text, || self.try_write())
    }
}

impl<T> Settable for crate::sync::Mutex<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        set_locked(text, || self.try_lock())
    }
}

impl<T> Settable for crate::sync::RwLock<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        set_locked(text, || self.try_write())
    }
}

/// Stores `new` behind the guard the caller holds. Both `Debug`s run with any panic caught
/// here, before the guard is dropped, so the lock is never poisoned by them; the value is
/// stored either way and the reply shows a panicked `Debug` as `<Debug panicked: …>`.
fn swap_in<T: Debug>(slot: &mut T, new: &mut Option<T>, poisoned: bool) -> (String, String) {
    let shown = |slot: &T| {
        let text = debug_caught(slot, false).unwrap_or_else(|p| format!("<Debug panicked: {p}>"));
        if poisoned {
            format!("{text} (poisoned)")
        } else {
            text
        }
    };
    let old = shown(slot);
    if let Some(new) = new.take() {
        *slot = new;
    }
    (old, shown(slot))
}

/// The refusal for a `LazyLock` or `OnceLock` the program has not initialised.
const NOT_INITIALISED: &str = "is not initialised yet: setting it would run the program's \
    initializer from the console (and a panic there would poison it for the program); nothing changed";

impl<T: Settable + Debug, F: FnOnce() -> T> Settable for LazyLock<T, F> {
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        match lazy_get(self) {
            Some(inner) => inner.set_from_str(text),
            None => Err(SetError::NotInitialised),
        }
    }
}

impl<T: Settable> Settable for OnceLock<T> {
    fn set_from_str(&self, text: &str) -> Result<(String, String), SetError> {
        match self.get() {
            Some(inner) => inner.set_from_str(text),
            None => Err(SetError::NotInitialised),
        }
    }
}

/// Holds a function's result for rendering; see [`RenderResult`] and [`RenderDebug`].
pub struct CallOutput<T>(pub T);

/// A `Result` whose error is `Display`: `Ok` is shown with `Debug`, `Err` becomes an error line.
pub trait RenderResult {
    /// The text of the result, or of the error.
    fn render(&self) -> Result<String, String>;
}

impl<T: Debug, E: Display> RenderResult for CallOutput<Result<T, E>> {
    fn render(&self) -> Result<String, String> {
        match &self.0 {
            Ok(value) => Ok(format!("{value:#?}")),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// Any other `Debug` result.
pub trait RenderDebug {
    /// The text of the result.
    fn render(&self) -> Result<String, String>;
}

impl<T: Debug> RenderDebug for &CallOutput<T> {
    fn render(&self) -> Result<String, String> {
        Ok(format!("{:#?}", self.0))
    }
}

/// Parses one argument of an exposed function.
pub fn parse_arg<T: FromStr>(function: &str, param: &str, text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse::<T>().map_err(|e| {
        format!(
            "{function}: argument {param}: cannot parse {text:?} as {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomics_and_locks_are_set_from_text() {
        let n = AtomicUsize::new(3);
        assert_eq!(n.set_from_str("10"), Ok(("3".into(), "10".into())));
        assert!(
            n.set_from_str("ten")
                .unwrap_err()
                .to_string()
                .starts_with("cannot parse \"ten\" as usize")
        );
        assert_eq!(n.load(Ordering::SeqCst), 10);
        let flag = AtomicBool::new(false);
        assert_eq!(flag.set_from_str("true"), Ok(("false".into(), "true".into())));
        let mode = Mutex::new(String::from("fast"));
        assert_eq!(
            mode.set_from_str("safe"),
            Ok(("\"fast\"".into(), "\"safe\"".into()))
        );
        let limit = RwLock::new(1u8);
        assert!(limit.set_from_str("300").is_err());
        assert_eq!(*limit.read().unwrap(), 1);
        let lazy: LazyLock<Mutex<i32>> = LazyLock::new(|| Mutex::new(7));
        assert!(lazy.set_from_str("-1").unwrap_err() == SetError::NotInitialised);
        LazyLock::force(&lazy);
        assert_eq!(lazy.set_from_str("-1"), Ok(("7".into(), "-1".into())));
        let once: OnceLock<AtomicU8> = OnceLock::new();
        assert!(once.set_from_str("1").unwrap_err() == SetError::NotInitialised);
        once.get_or_init(|| AtomicU8::new(0));
        assert_eq!(once.set_from_str("1"), Ok(("0".into(), "1".into())));
    }

    /// Reads a static as the code `#[manhole::expose]` generates does.
    macro_rules! show {
        ($value:expr) => {{
            #[allow(unused_imports)]
            use super::{ShowAny as _, ShowCellLock as _, ShowLockOrCell as _};
            fn get() -> &'static (dyn Debug + Sync) {
                &$value
            }
            (&&&Probe(&$value)).show(get)
        }};
    }

    /// Debug panics for odd values.
    #[derive(PartialEq)]
    struct Fussy(u32);

    impl Debug for Fussy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            assert!(self.0.is_multiple_of(2), "Fussy({}) will not be shown", self.0);
            write!(f, "Fussy({})", self.0)
        }
    }

    impl FromStr for Fussy {
        type Err = std::num::ParseIntError;
        fn from_str(s: &str) -> Result<Fussy, Self::Err> {
            s.parse().map(Fussy)
        }
    }

    fn value(text: &str) -> Shown {
        Shown::Value {
            text: text.into(),
            poisoned: false,
        }
    }

    #[test]
    fn a_panicking_debug_behind_a_lock_never_poisons_it() {
        static M: Mutex<Fussy> = Mutex::new(Fussy(1));
        static R: RwLock<Fussy> = RwLock::new(Fussy(1));
        assert_eq!(show!(M), Shown::Panicked("Fussy(1) will not be shown".into()));
        assert_eq!(show!(R), Shown::Panicked("Fussy(1) will not be shown".into()));
        assert!(!M.is_poisoned() && !R.is_poisoned());
        // set stores the value and says what it could not show.
        assert_eq!(
            M.set_from_str("4"),
            Ok((
                "<Debug panicked: Fussy(1) will not be shown>".into(),
                "Fussy(4)".into()
            ))
        );
        assert_eq!(
            R.set_from_str("3"),
            Ok((
                "<Debug panicked: Fussy(1) will not be shown>".into(),
                "<Debug panicked: Fussy(3) will not be shown>".into()
            ))
        );
        assert!(!M.is_poisoned() && !R.is_poisoned());
        assert_eq!(*M.lock().unwrap(), Fussy(4));
        assert_eq!(*R.read().unwrap(), Fussy(3));
        assert_eq!(show!(M), value("Fussy(4)"));
    }

    #[test]
    fn locks_show_their_value_and_a_poisoned_one_stays_poisoned() {
        static M: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        assert_eq!(show!(M), value("[]"));
        let _ = std::thread::spawn(|| {
            let _guard = M.lock();
            panic!("the program's own panic");
        })
        .join();
        assert!(M.is_poisoned());
        assert_eq!(
            show!(M),
            Shown::Value {
                text: "[]".into(),
                poisoned: true
            }
        );
        assert_eq!(show!(M).text(), "[] (poisoned)");
        assert!(M.is_poisoned(), "reading does not clear the poison");
        static HELD: RwLock<u8> = RwLock::new(0);
        let guard = HELD.write();
        assert_eq!(show!(HELD), Shown::Locked);
        drop(guard);
        static PLAIN: AtomicU8 = AtomicU8::new(5);
        assert_eq!(show!(PLAIN), value("5"));
    }

    /// The calling thread's kernel id, from `/proc/thread-self` (`PID/task/TID`).
    fn own_tid() -> i32 {
        std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|link| link.file_name()?.to_str()?.parse().ok())
            .unwrap_or(0)
    }

    /// Holds what `take` locks on a thread named `name` until the sender is dropped or sent
    /// to; returns that thread's id and the line that took the lock.
    fn hold_on_thread<G: 'static>(
        name: &str,
        take: impl FnOnce() -> (G, u32) + Send + 'static,
    ) -> (i32, u32, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (told, tell) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let (guard, line) = take();
                let _ = told.send((own_tid(), line));
                let _ = released.recv();
                drop(guard);
            })
            .expect("spawn");
        let (tid, line) = tell.recv().expect("locked");
        (tid, line, release, thread)
    }

    #[test]
    fn sync_locks_show_like_std_and_say_who_holds_them() {
        static M: crate::sync::Mutex<String> = crate::sync::Mutex::new(String::new());
        static R: crate::sync::RwLock<u8> = crate::sync::RwLock::new(3);
        assert_eq!(show!(M), value("\"\""));
        assert_eq!(show!(R), value("3"));
        assert_eq!(M.set_from_str("fast"), Ok(("\"\"".into(), "\"fast\"".into())));
        assert_eq!(R.set_from_str("4"), Ok(("3".into(), "4".into())));

        let (tid, line, release, holder) = hold_on_thread("m-flusher", || (M.lock(), line!()));
        // Nobody waits for it: who and where, not since when (only a wait pays for the clock).
        let shown = show!(M).text();
        assert_eq!(
            shown,
            format!("<locked by {tid} \"m-flusher\", taken at {}:{line}>", file!()),
            "{shown}"
        );
        assert_eq!(M.set_from_str("slow").map_err(|e| e.code()), Err("locked"));
        let _ = release.send(());
        holder.join().expect("holder");
        assert_eq!(show!(M), value("\"fast\""));

        let (tid, line, release, holder) = hold_on_thread("rw-writer", || (R.write(), line!()));
        let shown = show!(R).text();
        assert_eq!(
            shown,
            format!(
                "<write-locked by {tid} \"rw-writer\", taken at {}:{line}>",
                file!()
            ),
            "{shown}"
        );
        drop(release);
        holder.join().expect("holder");

        // Poisoned: the value, still poisoned, as with std's.
        let _ = std::thread::spawn(|| {
            let _guard = M.lock();
            panic!("the program's own panic");
        })
        .join();
        assert_eq!(show!(M).text(), "\"fast\" (poisoned)");
        assert!(M.is_poisoned());
        static LAZY: LazyLock<crate::sync::Mutex<u8>> = LazyLock::new(|| crate::sync::Mutex::new(1));
        static ONCE: OnceLock<crate::sync::RwLock<u8>> = OnceLock::new();
        assert_eq!((show!(LAZY), show!(ONCE)), (Shown::Uninit, Shown::Uninit));
        LazyLock::force(&LAZY);
        let _ = ONCE.set(crate::sync::RwLock::new(2));
        assert_eq!((show!(LAZY), show!(ONCE)), (value("1"), value("2")));
    }

    #[test]
    fn cells_the_program_has_not_initialised_are_not_forced() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        static LAZY: LazyLock<Mutex<u32>> = LazyLock::new(|| {
            RUNS.fetch_add(1, Ordering::SeqCst);
            Mutex::new(9)
        });
        static LAZY_RW: LazyLock<RwLock<u32>> = LazyLock::new(|| RwLock::new(8));
        static LAZY_PLAIN: LazyLock<String> = LazyLock::new(|| "lazy".into());
        static ONCE: OnceLock<Mutex<u8>> = OnceLock::new();
        static ONCE_PLAIN: OnceLock<u8> = OnceLock::new();
        assert_eq!(show!(LAZY), Shown::Uninit);
        assert_eq!(show!(LAZY).text(), "<not initialised yet>");
        assert_eq!(show!(LAZY_RW), Shown::Uninit);
        assert_eq!(show!(LAZY_PLAIN), Shown::Uninit);
        assert_eq!(show!(ONCE), Shown::Uninit);
        assert_eq!(show!(ONCE_PLAIN), Shown::Uninit);
        assert!(LAZY.set_from_str("1").is_err());
        assert_eq!(RUNS.load(Ordering::SeqCst), 0, "the initializer never ran");
        assert_eq!(*LAZY.lock().unwrap(), 9);
        LazyLock::force(&LAZY_RW);
        LazyLock::force(&LAZY_PLAIN);
        ONCE.get_or_init(|| Mutex::new(2));
        ONCE_PLAIN.get_or_init(|| 3);
        assert_eq!(show!(LAZY), value("9"));
        assert_eq!(show!(LAZY_RW), value("8"));
        assert_eq!(show!(LAZY_PLAIN), value("\"lazy\""));
        assert_eq!(show!(ONCE), value("2"));
        assert_eq!(show!(ONCE_PLAIN), value("3"));
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_lazy_lock_whose_initializer_panicked_is_not_forced_again() {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        static BROKEN: LazyLock<Mutex<u32>> = LazyLock::new(|| {
            RUNS.fetch_add(1, Ordering::SeqCst);
            panic!("no config")
        });
        assert!(std::thread::spawn(|| BROKEN.lock().is_ok()).join().is_err());
        assert_eq!(show!(BROKEN), Shown::Uninit);
        assert!(BROKEN.set_from_str("1").is_err());
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_held_lock_gives_up_without_changing_anything() {
        let value = Mutex::new(5);
        let guard = value.lock().unwrap();
        let err = value.set_from_str("6").unwrap_err();
        assert_eq!(err.code(), "locked");
        assert!(err.to_string().starts_with("the lock is held elsewhere"), "{err}");
        drop(guard);
        assert_eq!(*value.lock().unwrap(), 5);
    }

    #[test]
    #[allow(
        clippy::needless_borrow,
        reason = "the same form as the code #[manhole::expose] generates"
    )]
    fn results_and_plain_values_render() {
        #[allow(unused_imports)]
        use super::{RenderDebug as _, RenderResult as _};
        let ok: Result<u32, String> = Ok(4);
        assert_eq!((&CallOutput(ok)).render(), Ok("4".into()));
        let err: Result<u32, String> = Err("disk full".into());
        assert_eq!((&CallOutput(err)).render(), Err("disk full".into()));
        assert_eq!(
            (&CallOutput(vec![1, 2])).render(),
            Ok("[\n    1,\n    2,\n]".into())
        );
        assert_eq!((&CallOutput(())).render(), Ok("()".into()));
    }
}
