// Every supported shape of #[manhole::expose].
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock};

#[manhole::expose]
static PLAIN: u32 = 7;

#[manhole::expose]
static TEXT: &str = "hello";

/// An atomic counter.
#[manhole::expose]
static COUNT: AtomicU64 = AtomicU64::new(0);

#[manhole::expose(writable)]
static LIMIT: AtomicUsize = AtomicUsize::new(10);

#[manhole::expose(writable)]
static ON: AtomicBool = AtomicBool::new(true);

#[manhole::expose(writable, name = "offset")]
static OFFSET: AtomicI32 = AtomicI32::new(-3);

#[manhole::expose(writable)]
static MODE: Mutex<String> = Mutex::new(String::new());

#[manhole::expose(writable)]
static RATIO: RwLock<f64> = RwLock::new(0.5);

#[manhole::expose(writable)]
static LAZY_LIMIT: LazyLock<Mutex<u16>> = LazyLock::new(|| Mutex::new(3));

#[manhole::expose]
static TABLE: LazyLock<HashMap<String, Vec<u8>>> = LazyLock::new(HashMap::new);

#[manhole::expose]
static ONCE: OnceLock<String> = OnceLock::new();

#[manhole::expose]
pub(crate) static VISIBLE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

#[manhole::expose]
fn no_args() {}

#[manhole::expose]
fn sum(a: u8, b: u16, c: i64, d: f32) -> f64 {
    f64::from(a) + f64::from(b) + c as f64 + f64::from(d)
}

#[manhole::expose(name = "hello")]
pub fn greet(name: &str, loud: bool) -> String {
    if loud { name.to_uppercase() } else { name.to_owned() }
}

#[manhole::expose]
fn fallible(path: std::path::PathBuf) -> Result<usize, std::io::Error> {
    Ok(path.as_os_str().len())
}

#[manhole::expose]
fn ip(addr: std::net::IpAddr, name: String) -> Result<String, String> {
    Ok(format!("{name}@{addr}"))
}

mod inner {
    /// In a module.
    #[manhole::expose]
    pub static NESTED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
}

fn main() {
    no_args();
    let _ = (sum(1, 2, 3, 4.0), greet("x", true), fallible("/".into()), ip([127, 0, 0, 1].into(), "a".into()));
    let _ = (&PLAIN, &TEXT, &COUNT, &LIMIT, &ON, &OFFSET, &MODE, &RATIO, &LAZY_LIMIT, &TABLE, &ONCE, &VISIBLE);
    let _ = &inner::NESTED;
}
