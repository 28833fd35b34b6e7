// Options is a builder: its fields are not part of the API.
fn main() {
    let options = manhole::Options::new();
    let _ = options.strict;
}
