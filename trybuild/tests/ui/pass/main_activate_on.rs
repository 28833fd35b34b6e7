// activate_on with the options that go with it.
#[manhole::main(activate_on = "USR1", socket_path = "/tmp/manhole-trybuild-activate.sock", verbose = false)]
fn main() {}
