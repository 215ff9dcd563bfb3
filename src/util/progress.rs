//! The live progress line on stderr: only when stderr is a terminal, redrawn
//! at most ten times a second, erased when the work is done.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::util::format;

const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    enabled: bool,
    total: Option<u64>,
    started: Instant,
    last_draw: Option<Instant>,
    label: String,
}

impl Progress {
    /// A progress line for `total` bytes (when known) labelled `label`;
    /// silent when `quiet` or when stderr is not a terminal.
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            total,
            started: Instant::now(),
            last_draw: None,
            label: label.to_string(),
        }
    }

    /// `done` bytes so far (of which `resumed` were there before we began).
    pub fn update(&mut self, done: u64, resumed: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < REDRAW)
        {
            return;
        }
        self.last_draw = Some(now);
        let line = render(
            &self.label,
            done,
            resumed,
            self.total,
            now.duration_since(self.started),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Erase the line so the summary starts on a clean one.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The text of the line: bytes, percent, rate and ETA.
pub fn render(
    label: &str,
    done: u64,
    resumed: u64,
    total: Option<u64>,
    elapsed: Duration,
) -> String {
    let fresh = done.saturating_sub(resumed);
    let rate = format::rate(fresh, elapsed).unwrap_or_else(|| "- MB/s".into());
    match total {
        Some(total) if total > 0 => {
            let percent = done as f64 * 100.0 / total as f64;
            let secs = elapsed.as_secs_f64();
            let eta = if fresh > 0 && secs > 0.0 {
                let left = total.saturating_sub(done) as f64 / (fresh as f64 / secs);
                format::eta(left as u64)
            } else {
                "?".to_string()
            };
            format!(
                "{label}  {} / {}  {percent:5.1}%  {rate}  ETA {eta}",
                format::bytes(done),
                format::bytes(total)
            )
        }
        _ => format!("{label}  {}  {rate}", format::bytes(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bytes_percent_rate_and_eta() {
        let line = render(
            "a.bin",
            50 << 20,
            0,
            Some(100 << 20),
            Duration::from_secs(1),
        );
        assert_eq!(
            line,
            "a.bin  50.0 MiB / 100.0 MiB   50.0%  52.4 MB/s  ETA 1s"
        );
        let line = render("a.bin", 10, 0, None, Duration::from_secs(1));
        assert_eq!(line, "a.bin  10 B  - MB/s");
    }
}
