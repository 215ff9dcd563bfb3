//! What a crowd of connections costs in memory, and the one saving that
//! needs to know there is a crowd.
//!
//! Each connection has a thread, and what a thread waiting for its peer
//! holds was measured (tests/README.md, #14): two pages of stack (glibc's
//! thread descriptor and TLS take 4.5 KiB of the top one; the frames down
//! to `recv` the rest), about 2 KiB of heap (glibc's per-thread cache,
//! the TLS vector, the thread's handles, the 512-byte request buffer), and
//! a third page of stack once a GET has run: `realpath` and the request's
//! frames reach 12 KiB below the top. That third page is dead while the
//! connection waits, and [`shed_stack`] gives it back; it costs a system
//! call, a TLB flush on every core running the server and a page fault
//! when a request goes deep again, about 10 µs in all per request when
//! done before every wait (measured with 4 keep-alive clients: 13 against
//! 20-27 µs of server CPU per request). So it is done only on a crowded
//! server ([`crowded`]), and only for waits that outlast a short patience
//! (the listener's `DeadlineReader`).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::ThreadStack;

/// Connection threads running a job, in the whole process (every
/// listener's pool).
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// From this many busy connection threads on, the server counts as
/// crowded. Below it the spare pages are not worth the system calls: 256
/// waiting connections hold 1 MiB of them.
const CROWD: usize = 256;

thread_local! {
    /// This thread's stack bounds, once [`shed_stack`] has needed them;
    /// `Some(None)` when they cannot be had.
    static BOUNDS: Cell<Option<Option<ThreadStack>>> = const { Cell::new(None) };
}

/// Whether so many connections are being served that their memory, not a
/// few system calls each, is what to save.
pub fn crowded() -> bool {
    BUSY.load(Ordering::Relaxed) >= CROWD
}

/// Hand the kernel back the pages of this thread's stack below the
/// caller's frame: what deeper calls touched and a wait does not use.
/// Best effort: where the bounds cannot be had, the pages stay.
pub fn shed_stack() {
    let stack = BOUNDS.get().unwrap_or_else(|| {
        let found = ThreadStack::current().ok();
        BOUNDS.set(Some(found));
        found
    });
    if let Some(stack) = stack {
        let _ = stack.release_below_here();
    }
}

/// Counts its thread as busy while a connection's job runs, panic or not.
pub struct Busy(());

impl Busy {
    pub fn start() -> Busy {
        BUSY.fetch_add(1, Ordering::Relaxed);
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::Relaxed);
    }
}

/// As many busy threads as make a crowd, for tests of what a crowd
/// changes; dropped, they are gone.
#[cfg(test)]
pub fn pretend_crowd() -> Vec<Busy> {
    (0..CROWD).map(|_| Busy::start()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_is_counted_and_shedding_keeps_the_caller_working() {
        let crowd = pretend_crowd();
        assert!(crowded());
        // Shedding twice on one thread (the bounds found once, then
        // reused) leaves this frame and its callers intact.
        let kept = std::hint::black_box([3u8; 256]);
        shed_stack();
        shed_stack();
        assert_eq!(std::hint::black_box(kept), [3u8; 256]);
        drop(crowd);
    }
}
