//! Bandwidth caps: `serve --max-rate` and `get --limit-rate`. A sender moves
//! data in chunks and sleeps so that the total never runs ahead of the rate;
//! the chunks themselves still go through the normal copy loop.

use std::thread;
use std::time::{Duration, Instant};

/// Parse `500k`, `10M`, `1G` or a plain byte count into bytes per second.
/// Suffixes are binary multiples, as curl's `--limit-rate` reads them.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let bad =
        || format!("bad rate '{text}': use bytes per second, with an optional k, M or G suffix");
    let (digits, multiplier) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let value: f64 = digits.parse().map_err(|_| bad())?;
    let rate = value * multiplier as f64;
    if !(1.0..1e15).contains(&rate) {
        return Err(bad());
    }
    Ok(rate as u64)
}

/// Keeps a byte stream at or below `rate` bytes per second.
pub struct Pacer {
    rate: u64,
    started: Instant,
    sent: u64,
}

impl Pacer {
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            started: Instant::now(),
            sent: 0,
        }
    }

    /// How much to move before the next pause: about a twentieth of a
    /// second's worth, between 1 KiB and 1 MiB.
    pub fn chunk(&self) -> u64 {
        (self.rate / 20).clamp(1024, 1 << 20)
    }

    /// Record `n` more bytes moved and sleep until the rate allows more.
    pub fn pace(&mut self, n: u64) {
        self.sent += n;
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_suffixes() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500k"), Ok(512_000));
        assert_eq!(parse_rate("1.5M"), Ok(1_572_864));
        assert_eq!(parse_rate("2G"), Ok(2 << 30));
        for bad in ["", "k", "0", "-5", "abc", "1T", "nan", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pacing_never_runs_ahead_of_the_rate() {
        let mut p = Pacer::new(200_000);
        let start = Instant::now();
        for _ in 0..5 {
            p.pace(10_000);
        }
        // 50 000 bytes at 200 000 B/s take at least 0.25 s (a lower bound).
        assert!(start.elapsed() >= Duration::from_millis(245));
        assert!(p.chunk() >= 1024);
    }
}
