// Arguments come from text: FromStr values or &str; results must be Debug.
struct NotParsed;

#[manhole::expose]
fn slice(bytes: &[u8]) -> usize {
    bytes.len()
}

#[manhole::expose]
fn custom(value: NotParsed) {
    let _ = value;
}

#[manhole::expose]
fn mutable(text: &mut String) {
    text.clear();
}

#[manhole::expose]
fn opaque() -> NotParsed {
    NotParsed
}

fn main() {}
