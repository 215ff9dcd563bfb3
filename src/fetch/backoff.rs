//! The pause before a retry: exponential, capped, and spread.
//!
//! `get --retries` and `bench --retries` both wait `first`, `2 × first`,
//! `4 × first`, … up to a cap, each pause scaled by a factor in [0.5, 1.5)
//! so that many clients turned away together (a busy server, a dropped
//! link) do not all come back in the same instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The pause before the first retry, before the spread.
    pub first: Duration,
    /// The longest pause, spread included.
    pub cap: Duration,
}

impl Backoff {
    /// The pause before retry number `attempt` (1 for the first), spread by
    /// `seed`: anything that differs between the clients that failed
    /// together.
    pub fn pause(&self, attempt: u32, seed: u64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        let base = self.first.saturating_mul(1 << doublings).min(self.cap);
        spread(base, seed).min(self.cap)
    }
}

/// A seed from the clock, for a process that is one client among many.
pub fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(32)
}

/// `wait` scaled by a factor in [0.5, 1.5) drawn from `seed`.
fn spread(wait: Duration, seed: u64) -> Duration {
    let mixed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    wait.mul_f64(0.5 + (mixed as f64 / (1u64 << 24) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_stay_spread_and_bounded() {
        let b = Backoff {
            first: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        };
        for seed in 0..100 {
            let p = b.pause(1, clock_seed() ^ seed);
            assert!(
                p >= Duration::from_secs(1) && p < Duration::from_secs(3),
                "{p:?}"
            );
        }
        for attempt in 1..40 {
            assert!(b.pause(attempt, attempt.into()) <= b.cap);
        }
        assert!(b.pause(5, 9) >= Duration::from_secs(16));
    }
}
