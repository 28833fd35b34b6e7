// #[manhole::main] on the usual shapes of main, keeping attributes, visibility and signature.
#[manhole::main(socket_path = "/tmp/manhole-trybuild-shapes.sock", verbose = false)]
#[allow(unused_variables)]
pub fn main() -> Result<(), std::io::Error> {
    let unused = 1;
    helper()?;
    Ok(())
}

fn helper() -> Result<(), std::io::Error> {
    Ok(())
}
