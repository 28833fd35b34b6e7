// `writable` needs a type the console can set from text.
use std::sync::Mutex;
use std::sync::atomic::AtomicPtr;

struct Point {
    x: i32,
}

impl std::fmt::Debug for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.x)
    }
}

#[manhole::expose(writable)]
static PLAIN: u32 = 1;

#[manhole::expose(writable)]
static POINT: Mutex<Point> = Mutex::new(Point { x: 0 });

#[manhole::expose(writable)]
static PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

fn main() {}
