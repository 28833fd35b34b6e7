//! Faults around the service: running out of file descriptors, a forked child that cleans up,
//! a stopped process holding the socket path. The host and the next install carry on.

mod support;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{App, Client, PATIENCE, cpu_ticks, testapp, unique_socket, wait_until};

/// Runs the app out of descriptors while a client waits in the backlog, and checks that the
/// accepting `thread` backs off (no spinning, a few log lines), then serves that client once
/// descriptors are free again. Returns the served client.
fn backs_off_while_out_of_fds(app: &mut App, socket: &std::path::Path, thread: &str) -> Client {
    assert!(app.ask("exhaust-fds").starts_with("holding "));
    // This client waits in the backlog while accept fails with EMFILE.
    let mut waiting = Client::connect(socket);
    waiting.stream.set_nonblocking(true).unwrap();
    let before = cpu_ticks(app.pid, thread);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        let mut got = [0u8; 64];
        match waiting.stream.read(&mut got) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("no session while out of fds, got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(app.pid, thread) - before;
    assert!(used < 30, "{thread} used {used} ticks in one second: it spins");
    let failures = app.stderr().matches("Accept failed").count();
    assert!(
        (1..10).contains(&failures),
        "{failures} 'Accept failed' lines:\n{}",
        app.stderr()
    );
    // Once descriptors are free again, the waiting client is served.
    assert_eq!(app.ask("release-fds"), "released");
    waiting.stream.set_nonblocking(false).unwrap();
    assert!(waiting.opening().contains("Type \"help\" for commands."));
    assert!(
        app.stderr().contains("Accepting connections again"),
        "{}",
        app.stderr()
    );
    waiting
}

#[test]
fn out_of_file_descriptors_the_listener_backs_off_and_recovers() {
    let mut app = App::serve(&["--socket", unique_socket("emfile").to_str().unwrap()]);
    let socket = app.socket.clone();
    backs_off_while_out_of_fds(&mut app, &socket, "manhole");
}

/// A one-shot window whose accept fails backs off as the always-on listener does, and serves
/// the waiting client once descriptors are free again.
#[test]
fn out_of_file_descriptors_a_oneshot_window_backs_off_and_recovers() {
    let socket = unique_socket("oneshot-emfile");
    let mut app = App::try_serve(&[
        "--socket",
        socket.to_str().unwrap(),
        "--oneshot-on",
        "USR2",
        "--oneshot-ms",
        "15000",
    ])
    .unwrap_or_else(|line| panic!("{line}"));
    assert_eq!(app.socket, std::path::PathBuf::from("none"), "dormant at first");
    app.socket = socket.clone();
    // SAFETY: sends a signal to the test's own child process.
    assert_eq!(unsafe { libc::kill(app.pid as i32, libc::SIGUSR2) }, 0);
    assert!(
        wait_until(PATIENCE, || socket.exists()),
        "the window opens on USR2"
    );
    let mut served = backs_off_while_out_of_fds(&mut app, &socket, &format!("manhole-1x-{}", libc::SIGUSR2));
    assert!(
        wait_until(PATIENCE, || !socket.exists()),
        "one session only: socket removed"
    );
    assert!(served.command("info").starts_with("pid "));
}

#[test]
fn a_forked_childs_uninstall_leaves_the_parents_manhole_alone() {
    let mut app = App::serve(&["--socket", unique_socket("forkchild").to_str().unwrap()]);
    let mut open = Client::connect(&app.socket);
    open.opening();
    assert_eq!(
        app.ask("fork-uninstall"),
        "child exited with 0",
        "uninstall and install in the child are harmless"
    );
    assert!(app.socket.exists(), "the parent's socket is still there");
    assert!(
        open.command("info").starts_with("pid "),
        "the parent's open session still works"
    );
    let mut next = Client::connect(&app.socket);
    assert!(
        next.opening().contains(&format!("(pid {})", app.pid)),
        "and it still accepts"
    );
    assert_eq!(app.ask("path"), app.socket.display().to_string());
}

#[test]
fn install_does_not_hang_on_a_stopped_listener_with_a_full_backlog() {
    let app = App::serve(&["--socket", unique_socket("stopped").to_str().unwrap()]);
    // SAFETY: stops the test app, which is this test's child; it is continued below.
    unsafe { libc::kill(app.pid as i32, libc::SIGSTOP) };
    // Fill its backlog: non-blocking connects until the kernel says EAGAIN.
    let mut queued = Vec::new();
    loop {
        // SAFETY: plain socket calls on a descriptor this test owns; sockaddr_un is zeroed and
        // then filled with a path shorter than sun_path.
        let rc = unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            assert!(fd >= 0);
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (dst, src) in addr.sun_path.iter_mut().zip(app.socket.to_str().unwrap().bytes()) {
                *dst = src as libc::c_char;
            }
            queued.push(fd);
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of_val(&addr) as u32,
            )
        };
        if rc != 0 {
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EAGAIN));
            break;
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
    }
    let started = Instant::now();
    let out = Command::new(testapp())
        .args(["install-at", app.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "error: cannot listen at {}: a live process is listening there",
            app.socket.display()
        )
    );
    for fd in queued {
        // SAFETY: closes descriptors this test opened.
        unsafe { libc::close(fd) };
    }
    // SAFETY: continues the child stopped above.
    unsafe { libc::kill(app.pid as i32, libc::SIGCONT) };
    // The queued, already closed connections come first; then a new client is served.
    assert!(wait_until(PATIENCE, || {
        let mut client = Client::connect(&app.socket);
        let mut head = [0u8; 9];
        client.stream.read_exact(&mut head).is_ok() && &head == b"#########"
    }));
}
