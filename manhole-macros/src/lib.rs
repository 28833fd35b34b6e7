//! Implementation detail of the `manhole` crate: its attribute macros. Depend on `manhole` and
//! write `#[manhole::main]` and `#[manhole::expose]`.
#![allow(
    clippy::needless_doctest_main,
    reason = "the docs show `fn main` beside `#[manhole::main]`: it is what the macro rewrites"
)]

use proc_macro::TokenStream;

mod expose;
mod main_attr;
mod signals;

/// Installs manhole when `main` starts.
///
/// ```no_run
/// #[manhole::main]
/// fn main() {
///     // connect with: socat readline unix-connect:/tmp/manhole-<pid>
/// }
/// ```
///
/// Equivalent code not using `#[manhole::main]`:
///
/// ```no_run
/// fn main() {
///     if let Err(e) = manhole::install(manhole::Options::new()) {
///         eprintln!("manhole: not installed: {e}");
///     }
/// }
/// ```
///
/// A debug aid never takes the program down: if installing fails, one line goes to stderr and
/// `main` runs on. The `MANHOLE` environment variable is honoured: `MANHOLE=0` (or `off`,
/// `false`) skips the install, and `MANHOLE='key=value,…'` overrides options with the same keys
/// as below (`MANHOLE='socket_path=/run/app/m.sock,verbose=false'`).
///
/// It works on `fn main() -> Result<…>` and on `async fn main` together with `#[tokio::main]`,
/// in either order, and keeps the function's other attributes, visibility and signature.
///
/// # Options
///
/// Every option of [`Options`](../manhole/struct.Options.html) that takes a literal, written
/// `key = literal`, checked at compile time:
///
/// | key | literal | example |
/// |---|---|---|
/// | `socket_path` | string | `socket_path = "/run/app/manhole.sock"` |
/// | `activate_on`, `oneshot_on`, `stack_signal` | signal name (with or without `SIG`, `RTMIN+N`) or number | `oneshot_on = "USR2"`, `stack_signal = 40` |
/// | `thread`, `patch_fork`, `strict`, `verbose`, `daemon_connection`, `redirect_stderr` | `true` / `false` | `verbose = false` |
/// | `reinstall_delay`, `idle_timeout`, `oneshot_timeout` | string: a whole number and `ms`, `s`, `m` or `h` | `idle_timeout = "10m"` |
/// | `verbose_destination` | fd number, `"stderr"`, `"log"` (the `log` crate) or a file path | `verbose_destination = "log"` |
/// | `sigmask` | `"all"`, `"none"`, or names joined by `\|` | `sigmask = "TERM\|INT"` |
/// | `max_sessions` | whole number | `max_sessions = 8` |
///
/// A signal name is checked here. A number is checked here when it is the same signal on every
/// Unix (1 HUP, 2 INT, 3 QUIT, 4 ILL, 5 TRAP, 8 FPE, 9 KILL, 11 SEGV, 15 TERM) and otherwise
/// only for its range (1 to 64), since numbers differ between systems (10 is `SIGUSR1` on Linux,
/// `SIGBUS` on macOS): `install` refuses such a number when it names a signal manhole cannot
/// use, with one line on stderr.
///
/// ```no_run
/// #[manhole::main(socket_path = "/tmp/my-service.manhole", verbose = false, idle_timeout = "10m")]
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     Ok(())
/// }
/// ```
///
/// Equivalent code not using `#[manhole::main]`:
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let options = manhole::Options::new()
///         .socket_path("/tmp/my-service.manhole")
///         .verbose(false)
///         .idle_timeout(std::time::Duration::from_secs(600));
///     if let Err(e) = manhole::install(options) {
///         eprintln!("manhole: not installed: {e}");
///     }
///     Ok(())
/// }
/// ```
///
/// `local` is not a macro option: it takes a value of the running program; pass it to
/// `manhole::install` with `Options::local`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(args.into(), item.into()).into()
}

/// Makes a static or a free function visible in the console (`vars`, `print`, `set`, `call`).
///
/// ```
/// use std::sync::atomic::AtomicU64;
/// use std::sync::{LazyLock, Mutex};
///
/// /// Requests served since start.
/// #[manhole::expose]
/// static REQUESTS: AtomicU64 = AtomicU64::new(0);
///
/// /// How the service answers: "normal" or "degraded".
/// #[manhole::expose(writable)]
/// static MODE: Mutex<String> = Mutex::new(String::new());
///
/// #[manhole::expose(name = "config")]
/// static CONFIG: LazyLock<Vec<String>> = LazyLock::new(|| vec!["a".into()]);
///
/// /// Drops up to `max` cache entries; returns how many went.
/// #[manhole::expose]
/// fn flush_cache(max: usize) -> Result<usize, String> {
///     Ok(max.min(3))
/// }
/// # fn main() {}
/// ```
///
/// In the console: `vars` lists them with their type and the first line of their doc comment,
/// `print REQUESTS` (or just `REQUESTS`) shows a value, `set MODE degraded` changes a writable
/// one and shows `old -> new`, and `call flush_cache 10` runs the function.
///
/// # Statics
/// Any `static` whose type is `Debug + Sync`: plain values, atomics, `Mutex`, `RwLock`,
/// `LazyLock`, `OnceLock`. With `writable`, the type must be settable from text: an atomic, or a
/// `Mutex` or `RwLock` (possibly inside a `LazyLock`) of a type that is `FromStr + Debug`.
/// `static mut` is refused: reading it from another thread would be a data race.
///
/// # Functions
/// A free, non-generic, non-async function whose parameters are `FromStr` (or `&str`) and whose
/// result is `Debug`, or `Result<T, E>` with `T: Debug` and `E: Display` (an `Err` is shown as an
/// error line). A panic inside it is caught and reported; the program goes on.
///
/// # Arguments
/// - `writable`: statics only; allows `set`.
/// - `name = "…"`: the name the console uses instead of the item's own.
///
/// Items exposed in library crates linked into the program are listed too.
///
/// Equivalent code not using `#[manhole::expose]`: there is none in the public API; the macro
/// registers the item in a link-time list that the console reads.
#[proc_macro_attribute]
pub fn expose(args: TokenStream, item: TokenStream) -> TokenStream {
    expose::expand(args.into(), item.into()).into()
}
