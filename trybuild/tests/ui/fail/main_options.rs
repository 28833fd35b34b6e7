// Unknown and duplicate keys, wrong literal types, bad values: every error at once, on its token.
#[manhole::main(
    socket = "/tmp/x",
    verbose = true,
    verbose = false,
    strict = "yes",
    max_sessions = 0,
    idle_timeout = 30,
    reinstall_delay = "soon",
    sigmask = "TERM|NOPE",
    local = "state",
)]
fn main() {}
