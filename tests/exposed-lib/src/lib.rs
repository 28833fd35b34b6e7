//! A library that exposes its own state: a program linking it shows these in `vars`.

use std::sync::atomic::{AtomicU32, Ordering};

/// Connections the pool keeps open.
#[manhole::expose(writable)]
pub static POOL_SIZE: AtomicU32 = AtomicU32::new(8);

/// Names of the pool's backends.
#[manhole::expose(name = "pool_backends")]
static BACKENDS: [&str; 2] = ["db-a", "db-b"];

/// Resizes the pool and returns the new size.
#[manhole::expose]
pub fn resize_pool(size: u32) -> Result<u32, String> {
    if size == 0 {
        return Err("a pool needs at least one connection".to_owned());
    }
    POOL_SIZE.store(size, Ordering::SeqCst);
    Ok(size)
}

/// The pool size, for the program that links this library.
pub fn pool_size() -> u32 {
    POOL_SIZE.load(Ordering::SeqCst)
}
