//! Dumps never make a blocking read(2) fail with EINTR: the stack signal uses SA_RESTART.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const READERS: usize = 8;
const DUMPS: usize = 150;

#[inline(never)]
fn eintr_probe_reader(fd: i32, interrupted: Arc<AtomicUsize>) -> u8 {
    let mut byte = 0u8;
    loop {
        // SAFETY: `fd` is an open pipe read end; the buffer is one valid byte.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return byte;
        }
        // SAFETY: reading this thread's errno right after the failed call.
        let errno = unsafe { *libc::__errno_location() };
        if n < 0 && errno == libc::EINTR {
            interrupted.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        panic!("read failed: n={n} errno={errno}");
    }
}

#[test]
fn blocking_reads_see_no_eintr_across_many_dumps() {
    let interrupted = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for i in 0..READERS {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        writers.push(fds[1]);
        let interrupted = interrupted.clone();
        readers.push(
            thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || eintr_probe_reader(fds[0], interrupted))
                .unwrap(),
        );
    }
    let mut captured_reads = 0;
    for _ in 0..DUMPS {
        let dump = manhole::dump_stacktraces();
        captured_reads += dump.matches("eintr_probe_reader").count();
    }
    assert!(captured_reads > 0, "the readers were captured in-process");
    for (i, fd) in writers.iter().enumerate() {
        let byte = i as u8 + 1;
        // SAFETY: writing one byte from a valid buffer to a pipe's write end.
        assert_eq!(unsafe { libc::write(*fd, (&byte as *const u8).cast(), 1) }, 1);
    }
    for (i, reader) in readers.into_iter().enumerate() {
        assert_eq!(reader.join().unwrap(), i as u8 + 1, "every reader got its byte");
    }
    assert_eq!(
        interrupted.load(Ordering::Relaxed),
        0,
        "EINTR seen by raw read(2)"
    );
}
