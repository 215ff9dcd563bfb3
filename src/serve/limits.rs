//! Per-connection bounds shared by both listeners (protocol v1 and the
//! legacy protocol): a counted place among `--max-clients`, and reads that
//! must finish before a deadline.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One of the `--max-clients` places; dropping it frees the place, so an
/// early return or a panicking connection thread can never leak one.
pub struct Slot {
    active: Arc<AtomicUsize>,
}

impl Slot {
    /// A place if fewer than `max` are taken.
    pub fn claim(active: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            active: Arc::clone(active),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket reader with a total deadline, so a peer trickling one byte at a
/// time cannot hold a thread past it.
pub struct DeadlineReader<'a> {
    pub stream: &'a TcpStream,
    pub deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let active = Arc::new(AtomicUsize::new(0));
        let a = Slot::claim(&active, 2).unwrap();
        let b = Slot::claim(&active, 2).unwrap();
        assert!(Slot::claim(&active, 2).is_none());
        drop(a);
        let c = Slot::claim(&active, 2);
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(active.load(Ordering::Acquire), 0);
    }
}
