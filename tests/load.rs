//! Many sessions, one after another and at once: the host ends where it started.

mod support;

use std::thread;

use support::{App, Client, unique_socket};

#[test]
fn two_hundred_sequential_sessions_leave_nothing_behind() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("seq").to_str().unwrap(),
        "--threads",
        "4",
    ]);
    let (fds, threads) = support::baseline(&app);
    for i in 0..200 {
        let mut client = Client::connect(&app.socket);
        client.opening();
        if i % 2 == 0 {
            assert!(client.command("info").starts_with("pid "));
            client.send(b"quit\n");
        } else {
            // Half of them just hang up.
            client.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        client.read_to_end();
    }
    assert!(app.is_alive());
    assert!(
        app.settles_to(fds, threads),
        "fds {} (want {fds}), threads {:?}",
        app.fd_count(),
        app.thread_names()
    );
}

#[test]
fn twenty_concurrent_sessions_are_all_served_and_leave_nothing_behind() {
    let mut app = App::serve(&[
        "--socket",
        unique_socket("conc").to_str().unwrap(),
        "--threads",
        "4",
    ]);
    let (fds, threads) = support::baseline(&app);
    let socket = app.socket.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
    let workers: Vec<_> = (0..20)
        .map(|i| {
            let socket = socket.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut client = Client::connect(&socket);
                let opening = client.opening();
                assert!(opening.contains("Type \"help\" for commands."));
                // Everyone is connected at the same time before anyone runs a command.
                barrier.wait();
                let info = client.command("info");
                assert!(info.contains("sessions    20 open"), "session {i}:\n{info}");
                assert!(client.command("stacks").contains("\"manhole-session\""));
                // Nobody leaves before everyone has counted the others.
                barrier.wait();
                client.send(b"quit\n");
                client.read_to_end();
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a session failed");
    }
    assert!(app.is_alive());
    assert!(
        app.settles_to(fds, threads),
        "fds {} (want {fds}), threads {:?}",
        app.fd_count(),
        app.thread_names()
    );
}
