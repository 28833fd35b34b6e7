// Exposed statics are shown with Debug.
struct Opaque;

#[manhole::expose]
static HIDDEN: Opaque = Opaque;

fn main() {}
