// Every option of DESIGN.md §3 exists on the builder, with the argument types users pass.
use std::sync::Arc;
use std::time::Duration;

use manhole::{Options, SigMask, Signal, VerboseDestination};

fn main() {
    let state = Arc::new(vec![1, 2, 3]);
    let options = Options::new()
        .socket_path("/run/app/manhole.sock")
        .activate_on("USR1")
        .activate_on("SIGUSR1")
        .activate_on(10)
        .activate_on(Signal::USR1)
        .oneshot_on("USR2")
        .thread(true)
        .patch_fork(true)
        .reinstall_delay(Duration::from_millis(500))
        .strict(true)
        .verbose(true)
        .verbose_destination(2)
        .verbose_destination("/var/log/manhole.log")
        .verbose_destination(VerboseDestination::Log)
        .sigmask(SigMask::all())
        .sigmask(SigMask::none())
        .sigmask(SigMask::only(["TERM", "INT"]))
        .daemon_connection(false)
        .redirect_stderr(true)
        .local("state", state)
        .max_sessions(4)
        .idle_timeout(Duration::from_secs(60));
    let _ = format!("{options:?}");
    let _: Options = Options::default();
}
