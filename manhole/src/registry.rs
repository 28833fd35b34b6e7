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
use std::sync::{LazyLock, Mutex, RwLock, TryLockError};
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
pub type SetFn = fn(&str) -> Result<(String, String), String>;

/// What an exposed item is.
pub enum Kind {
    /// A static: read it; set it from text when it is writable.
    Value {
        /// A reference to the static.
        get: fn() -> &'static (dyn Debug + Sync),
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

/// A static that `#[manhole::expose(writable)]` can change from the console.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be set from the console",
    label = "not settable",
    note = "`writable` works on atomics, and on a `Mutex` or `RwLock` (possibly in a `LazyLock`) of a type that implements `FromStr` and `Debug`"
)]
pub trait Settable {
    /// Parses `text`, stores it, and returns the old and the new value as text.
    fn set_from_str(&self, text: &str) -> Result<(String, String), String>;
}

fn parse<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.trim()
        .parse::<T>()
        .map_err(|e| format!("cannot parse {text:?} as {}: {e}", std::any::type_name::<T>()))
}

macro_rules! settable_atomic {
    ($($atomic:ty => $value:ty),* $(,)?) => {$(
        impl Settable for $atomic {
            fn set_from_str(&self, text: &str) -> Result<(String, String), String> {
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
fn with_patience<R>(mut attempt: impl FnMut() -> Option<R>) -> Result<R, String> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        if let Some(done) = attempt() {
            return Ok(done);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the lock is held elsewhere (waited {} ms); nothing changed",
                LOCK_PATIENCE.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Parses `text`, then stores it through the guard `try_guard` gives, retrying a lock held
/// elsewhere for a moment; a poisoned lock is still written (it holds a valid value).
fn set_locked<T, G>(
    text: &str,
    mut try_guard: impl FnMut() -> Result<G, TryLockError<G>>,
) -> Result<(String, String), String>
where
    T: FromStr + Debug,
    T::Err: Display,
    G: std::ops::DerefMut<Target = T>,
{
    let mut new = Some(parse::<T>(text)?);
    with_patience(|| match try_guard() {
        Ok(mut guard) => Some(swap_in(&mut *guard, &mut new)),
        Err(TryLockError::Poisoned(poisoned)) => Some(swap_in(&mut *poisoned.into_inner(), &mut new)),
        Err(TryLockError::WouldBlock) => None,
    })
}

impl<T> Settable for Mutex<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), String> {
        set_locked(text, || self.try_lock())
    }
}

impl<T> Settable for RwLock<T>
where
    T: FromStr + Debug,
    T::Err: Display,
{
    fn set_from_str(&self, text: &str) -> Result<(String, String), String> {
        set_locked(text, || self.try_write())
    }
}

fn swap_in<T: Debug>(slot: &mut T, new: &mut Option<T>) -> (String, String) {
    let old = format!("{slot:?}");
    if let Some(new) = new.take() {
        *slot = new;
    }
    (old, format!("{slot:?}"))
}

impl<T: Settable, F: FnOnce() -> T> Settable for LazyLock<T, F> {
    fn set_from_str(&self, text: &str) -> Result<(String, String), String> {
        T::set_from_str(self, text)
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
        assert_eq!(lazy.set_from_str("-1"), Ok(("7".into(), "-1".into())));
    }

    #[test]
    fn a_held_lock_gives_up_without_changing_anything() {
        let value = Mutex::new(5);
        let guard = value.lock().unwrap();
        let err = value.set_from_str("6").unwrap_err();
        assert!(err.starts_with("the lock is held elsewhere"), "{err}");
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
