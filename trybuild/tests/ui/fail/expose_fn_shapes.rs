// Functions the console cannot call: generic, async, unsafe, methods, writable.
#[manhole::expose]
fn generic<T: std::str::FromStr>(value: T) -> bool {
    let _ = value;
    true
}

#[manhole::expose]
async fn later() {}

#[manhole::expose]
unsafe fn dangerous() {}

#[manhole::expose(writable)]
fn not_a_value() {}

struct Cache;

impl Cache {
    #[manhole::expose]
    fn clear(&self) {}
}

fn main() {}
