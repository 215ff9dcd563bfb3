//! Waiting for something a test can observe, bounded in time: the one
//! poll loop of the black-box tests. A limit only stops a hung test; on a
//! loaded machine what takes milliseconds at rest can take seconds, so a
//! wait that is not itself what a test asserts is given a generous one.

use std::thread;
use std::time::{Duration, Instant};

/// How often [`poll_until`] looks again.
const EVERY: Duration = Duration::from_millis(20);

/// What a check of [`poll_until`] returns: `true` or `Some(value)` when what
/// it waits for has happened.
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Run `check` every 20 ms until it is ready (`true`, `Some`), for at most
/// `limit`: `Some` of its value, or `None` once `limit` has passed. It is
/// run at least once, and once more at the limit, so a caller that sees
/// `None` knows it was not ready then.
pub fn poll_until<R: Ready>(limit: Duration, mut check: impl FnMut() -> R) -> Option<R::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let now = Instant::now();
        if let Some(value) = check().ready() {
            return Some(value);
        }
        if now >= deadline {
            return None;
        }
        thread::sleep(EVERY);
    }
}
