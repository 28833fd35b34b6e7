// Inner attributes at the top of main's body stay there, and still apply to the body; the
// prologue runs before the body's first statement.
#![deny(warnings)]

#[manhole::main(thread = false, verbose = false)]
fn main() {
    #![allow(unused_variables)]
    //! An inner doc comment is an inner attribute too.
    let unused = 1;
    let again = manhole::install(manhole::Options::new().thread(false).verbose(false));
    assert!(
        matches!(again, Err(manhole::Error::AlreadyInstalled { .. })),
        "the prologue did not install before the body: {again:?}"
    );
    println!("main ran after the install");
}
