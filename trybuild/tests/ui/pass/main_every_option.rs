// Every literal option (activate_on has its own case: it cannot be combined with oneshot_on);
// patch_fork and redirect_stderr are accepted by the macro.
#[manhole::main(
    socket_path = "/tmp/manhole-trybuild-every.sock",
    oneshot_on = 12,
    oneshot_timeout = "2s",
    thread = false,
    patch_fork = false,
    reinstall_delay = "250ms",
    strict = false,
    verbose = true,
    verbose_destination = "log",
    sigmask = "TERM|INT",
    daemon_connection = true,
    redirect_stderr = false,
    max_sessions = 4,
    idle_timeout = "1h",
    stack_signal = "RTMIN+3",
)]
fn main() {
    println!("main ran");
}
