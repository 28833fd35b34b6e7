// install returns Result<Handle, Error>; `?` works in main; AlreadyInstalled is matchable;
// Error is a std error; the Handle's methods exist with their documented types.
use std::path::PathBuf;

fn describe(err: &manhole::Error) -> &'static str {
    match err {
        manhole::Error::AlreadyInstalled { .. } => "already",
        manhole::Error::NotSupported { .. } => "not yet",
        _ => "other",
    }
}

fn check(handle: &manhole::Handle) -> Result<(), manhole::Error> {
    let _: Option<PathBuf> = handle.socket_path();
    handle.handle_oneshot()?;
    Ok(())
}

/// Handles and options travel between threads and through catch_unwind.
fn auto_traits<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    auto_traits::<manhole::Handle>();
    // Like std::io::Error, which it may carry, Error is Send + Sync + 'static (boxable).
    fn boxable<T: Send + Sync + 'static>() {}
    boxable::<manhole::Error>();
    fn sendable<T: Send + Sync + Clone>() {}
    sendable::<manhole::Options>();
    let _: fn(manhole::Options) -> Result<manhole::Handle, manhole::Error> = manhole::install;
    let _: fn(&manhole::Handle) -> Result<(), manhole::Error> = check;
    let _: fn(manhole::Handle) = manhole::Handle::uninstall;
    let _: fn() -> String = manhole::dump_stacktraces;
    let err = manhole::Error::AlreadyInstalled { socket_path: None };
    assert_eq!(describe(&err), "already");
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    let _ = boxed.to_string();
    Ok(())
}
