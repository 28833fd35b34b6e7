// #[manhole::main] belongs on a function.
#[manhole::main]
struct Service;

fn main() {}
