// Only statics and free functions can be exposed, and never a static mut.
#[manhole::expose]
static mut COUNTER: u32 = 0;

#[manhole::expose]
const LIMIT: u32 = 3;

#[manhole::expose]
struct Config;

#[manhole::expose(writeable)]
static TYPO: u32 = 1;

fn main() {}
