//! The trigger of a dormant manhole: a non-blocking self-pipe, and the signal action that
//! writes one byte to it.
//!
//! A signal never does the work itself: the action registered with signal-hook-registry (which
//! keeps calling any handler the application had) writes one byte, and the dormant `manhole`
//! thread, asleep in poll(2) on the other end, does the rest. A repeated signal only adds a
//! byte, or nothing once the pipe is full. The rule for the reader: drain, then act, so a
//! signal arriving while a one-shot session runs is not lost but also not counted twice.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::fdguard::Registered;
use crate::signal::Signal;

/// The pipe a signal or `handle_oneshot` writes to, and the signal action that writes it.
pub(crate) struct Trigger {
    reader: Registered<UnixStream>,
    writer: Registered<UnixStream>,
    action: Option<signal_hook_registry::SigId>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("signal_action", &self.action.is_some())
            .finish()
    }
}

impl Trigger {
    /// A trigger, fired by `signal` if one is given.
    pub(crate) fn new(signal: Option<Signal>) -> io::Result<Trigger> {
        let (reader, writer) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        let (reader, writer) = (Registered::new(reader), Registered::new(writer));
        let action = match signal {
            Some(signal) => {
                let id = crate::sys::on_signal_write_byte(signal.as_raw(), writer.as_raw_fd())?;
                Some(id)
            }
            None => None,
        };
        Ok(Trigger {
            reader,
            writer,
            action,
        })
    }

    /// Fires the trigger from ordinary code.
    pub(crate) fn fire(&self) -> io::Result<()> {
        match (&*self.writer).write_all(&[1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()), // already pending
            other => other,
        }
    }

    /// Descriptors it holds, for `fds`.
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.reader.as_raw_fd(), self.writer.as_raw_fd()]
    }

    /// The end the dormant thread watches.
    pub(crate) fn reader(&self) -> std::os::fd::BorrowedFd<'_> {
        self.reader.as_fd()
    }

    /// Reads away pending trigger bytes.
    pub(crate) fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&*self.reader).read(&mut sink), Ok(n) if n > 0) {}
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        // The action goes before the pipe it writes to.
        if let Some(action) = self.action.take() {
            signal_hook_registry::unregister(action);
        }
    }
}
