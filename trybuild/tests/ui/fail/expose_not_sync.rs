// Exposed statics are read from the console's thread: their type must be Sync.
#[manhole::expose]
static CELL: std::sync::LazyLock<std::sync::Mutex<std::rc::Rc<u8>>> = std::sync::LazyLock::new(|| todo!());

fn main() {}
