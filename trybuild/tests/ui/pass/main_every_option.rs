// Every literal option; activate_on needs a later release, so install reports it and main runs on.
#[manhole::main(
    socket_path = "/tmp/manhole-trybuild-every.sock",
    activate_on = "SIGUSR1",
    oneshot_on = 12,
    thread = true,
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
