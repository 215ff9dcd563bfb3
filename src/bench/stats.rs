//! What a run measured, as one value that is printed, written as JSON, read
//! back and merged: the counts and histograms, the same per second (for the
//! report's charts) and per file, and the wall-clock span of the run.
//!
//! Everything here merges exactly: counts add and the histograms are
//! fixed-bucket, so a merge of runs is the run of all their requests.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use super::Outcome;
use crate::bench::histogram::Histogram;
use crate::error::Error;
use crate::util::format;

/// Counts and latencies of a set of requests: a whole run, one second of
/// it, or one file's share.
#[derive(Clone, Default)]
pub struct Stats {
    pub ok: u64,
    pub corrupt: u64,
    pub bytes: u64,
    /// Failures by [`Error::kind`] (corrupt transfers are counted apart).
    pub errors: BTreeMap<String, u64>,
    /// Total latency of every completed transfer (ok or corrupt).
    pub latency: Histogram,
    /// Time to the status line of every completed transfer.
    pub ttfb: Histogram,
}

impl Stats {
    pub fn add(&mut self, outcome: &Outcome) {
        self.tally(outcome, true);
    }

    /// Count `outcome`, its time to first byte only `with_ttfb`.
    fn tally(&mut self, outcome: &Outcome, with_ttfb: bool) {
        self.bytes += outcome.bytes;
        match &outcome.result {
            Ok(()) => self.ok += 1,
            Err(Error::Integrity(_)) => self.corrupt += 1,
            Err(e) => match self.errors.get_mut(e.kind()) {
                Some(n) => *n += 1,
                None => {
                    self.errors.insert(e.kind().to_string(), 1);
                }
            },
        }
        if matches!(outcome.result, Ok(()) | Err(Error::Integrity(_))) {
            self.latency.record(outcome.total);
            if let Some(ttfb) = outcome.ttfb.filter(|_| with_ttfb) {
                self.ttfb.record(ttfb);
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        // Saturating, as the histograms' merge: counts may come from files.
        self.ok = self.ok.saturating_add(other.ok);
        self.corrupt = self.corrupt.saturating_add(other.corrupt);
        self.bytes = self.bytes.saturating_add(other.bytes);
        for (kind, n) in &other.errors {
            let mine = self.errors.entry(kind.clone()).or_default();
            *mine = mine.saturating_add(*n);
        }
        self.latency.merge(&other.latency);
        self.ttfb.merge(&other.ttfb);
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().fold(0, |a, &n| a.saturating_add(n))
    }

    pub fn requests(&self) -> u64 {
        self.ok
            .saturating_add(self.corrupt)
            .saturating_add(self.failed())
    }
}

/// How a run was asked to go, as its command line said.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// `--requests`: per client.
    pub requests_each: Option<u64>,
    /// `--total`: shared by all clients.
    pub total: Option<u64>,
    pub duration: Option<Duration>,
    pub keep_alive: bool,
    pub rate: Option<f64>,
    /// `--warmup`: requests per client before the measured run.
    pub warmup: u64,
}

/// A finished run (or several merged): what every report is drawn from.
#[derive(Clone)]
pub struct Results {
    /// The run's id; merged runs with different ids list them all,
    /// comma-separated.
    pub test_id: String,
    /// The server; merged runs against different addresses list them all.
    pub addr: String,
    /// The files, in the order first asked for.
    pub names: Vec<String>,
    /// `tcpfetch/1` or `legacy`: runs of different protocols do not merge.
    pub protocol: String,
    pub clients: u64,
    /// `None` once runs of different shapes are merged.
    pub shape: Option<Shape>,
    /// How many runs this is (1 until merged).
    pub runs: u64,
    pub stats: Stats,
    /// When each run started and ended, µs since the Unix epoch.
    pub spans: Vec<(u64, u64)>,
    /// By the Unix second each request finished in.
    pub timeline: BTreeMap<u64, Stats>,
    /// Per file, in `names` order.
    pub files: Vec<(String, Stats)>,
    /// The first failure's message, when some request failed.
    pub first_error: Option<String>,
}

impl Results {
    /// Count one finished request, which ended in Unix second `second`.
    pub fn add(&mut self, outcome: &Outcome, second: u64) {
        self.stats.add(outcome);
        // A second keeps no first-byte times: no chart shows them, and
        // that saves a histogram per second of the run.
        self.timeline
            .entry(second)
            .or_default()
            .tally(outcome, false);
        match self.files.iter_mut().find(|(name, _)| name == outcome.name) {
            Some((_, stats)) => stats.add(outcome),
            None => {
                let mut stats = Stats::default();
                stats.add(outcome);
                self.files.push((outcome.name.to_string(), stats));
            }
        }
    }

    /// When some run was running: the spans merged where they overlap.
    /// Merged once for all the questions a report asks of it.
    pub fn running(&self) -> Running {
        let mut spans = self.spans.clone();
        spans.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match out.last_mut() {
                Some((_, e)) if start <= *e => *e = (*e).max(end),
                _ => out.push((start, end.max(start))),
            }
        }
        Running(out)
    }

    /// The first start and the last end, µs since the epoch.
    pub fn bounds(&self) -> (u64, u64) {
        let start = self.spans.iter().map(|s| s.0).min().unwrap_or(0);
        let end = self.spans.iter().map(|s| s.1).max().unwrap_or(start);
        (start, end)
    }

    /// Add `other` to this, as if one run had made both runs' requests.
    pub fn merge(&mut self, other: Results) -> Result<(), String> {
        if other.protocol != self.protocol {
            return Err(format!(
                "a {} run cannot be merged with a {} run",
                other.protocol, self.protocol
            ));
        }
        // Checked before anything changes: counts from a file may be huge.
        let (Some(clients), Some(runs)) = (
            self.clients.checked_add(other.clients),
            self.runs.checked_add(other.runs),
        ) else {
            return Err("their clients or runs add up past 2^64".into());
        };
        // A run's span is its start and end to the microsecond: two runs
        // that share one are one run read twice (a file named twice, or a
        // merged file beside one of its runs), which would count double.
        if let Some(&(start, _)) = other.spans.iter().find(|s| self.spans.contains(s)) {
            return Err(format!(
                "both hold the run that started at {}, and a run counts once",
                format::rfc3339(UNIX_EPOCH + Duration::from_micros(start))
            ));
        }
        join_unique(&mut self.test_id, &other.test_id);
        join_unique(&mut self.addr, &other.addr);
        for name in &other.names {
            if !self.names.contains(name) {
                self.names.push(name.clone());
            }
        }
        self.clients = clients;
        if self.shape != other.shape {
            self.shape = None;
        }
        self.runs = runs;
        self.stats.merge(&other.stats);
        self.spans.extend(other.spans);
        for (second, stats) in other.timeline {
            self.timeline.entry(second).or_default().merge(&stats);
        }
        for (name, stats) in other.files {
            match self.files.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(&stats),
                None => self.files.push((name, stats)),
            }
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

/// The union of a run's spans (µs since the epoch): disjoint, in order.
pub struct Running(Vec<(u64, u64)>);

impl Running {
    /// The time the run (or the runs) were running: overlapping runs
    /// count their shared time once.
    pub fn total(&self) -> Duration {
        self.covered(0, u64::MAX)
    }

    /// How much of `from..to` (µs since the epoch) some run was running:
    /// a rate over a second the run only partly covered (its first and
    /// last) is counted over the part it covered.
    pub fn covered(&self, from: u64, to: u64) -> Duration {
        let total = self.0.iter().fold(0u64, |a, &(s, e)| {
            a.saturating_add(e.min(to).saturating_sub(s.max(from)))
        });
        Duration::from_micros(total)
    }
}

/// `list` with `item` added as another comma-separated entry, unless it
/// is one already.
fn join_unique(list: &mut String, item: &str) {
    if !list.split(',').any(|i| i == item) {
        list.push(',');
        list.push_str(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn outcome(name: &str, result: crate::error::Result<()>) -> Outcome<'_> {
        Outcome {
            client: 1,
            request: 1,
            name,
            started: Instant::now(),
            connect: None,
            ttfb: Some(Duration::from_millis(1)),
            total: Duration::from_millis(2),
            bytes: 10,
            attempts: 1,
            result,
        }
    }

    pub fn results(spans: &[(u64, u64)]) -> Results {
        Results {
            test_id: "t".into(),
            addr: "h:1".into(),
            names: vec!["a".into()],
            protocol: "tcpfetch/1".into(),
            clients: 1,
            shape: None,
            runs: 1,
            stats: Stats::default(),
            spans: spans.to_vec(),
            timeline: BTreeMap::new(),
            files: Vec::new(),
            first_error: None,
        }
    }

    #[test]
    fn stats_count_ok_corrupt_and_failures_apart() {
        let mut a = Stats::default();
        a.add(&outcome("f", Ok(())));
        a.add(&outcome("f", Err(Error::Integrity("x".into()))));
        let mut b = Stats::default();
        b.add(&outcome(
            "f",
            Err(Error::Timeout {
                phase: crate::error::Phase::Connect,
            }),
        ));
        b.add(&outcome(
            "f",
            Err(Error::Remote {
                code: crate::proto::ErrorCode::Busy,
                message: String::new(),
            }),
        ));
        a.merge(&b);
        assert_eq!((a.ok, a.corrupt, a.failed(), a.requests()), (1, 1, 2, 4));
        assert_eq!(a.errors.get("busy"), Some(&1));
        assert_eq!(a.errors.get("timeout"), Some(&1));
        assert_eq!(a.bytes, 40);
        assert_eq!(
            a.latency.count(),
            2,
            "only completed transfers have a latency"
        );
    }

    #[test]
    fn seconds_are_the_union_of_the_spans() {
        let s = |spans: &[(u64, u64)]| results(spans).running().total().as_micros();
        assert_eq!(s(&[(10, 20)]), 10);
        assert_eq!(s(&[(10, 20), (15, 30)]), 20, "overlap counted once");
        assert_eq!(s(&[(30, 40), (10, 20)]), 20, "disjoint spans add");
        assert_eq!(s(&[(10, 40), (15, 20), (50, 51)]), 31, "nested");
        assert_eq!(s(&[]), 0);
        let r = results(&[(10, 20), (15, 30), (50, 60)]).running();
        assert_eq!(r.covered(0, 100).as_micros(), 30);
        assert_eq!(r.covered(25, 55).as_micros(), 10);
        assert_eq!(r.covered(30, 50).as_micros(), 0);
    }

    #[test]
    fn merging_adds_everything_and_refuses_another_protocol() {
        let mut a = results(&[(0, 1_000_000)]);
        a.add(&outcome("a", Ok(())), 5);
        let mut b = results(&[(500_000, 2_000_000)]);
        b.test_id = "u".into();
        b.names = vec!["b".into(), "a".into()];
        b.add(&outcome("b", Ok(())), 5);
        b.add(&outcome("a", Err(Error::Other("x".into()))), 6);
        b.first_error = Some("x".into());
        a.merge(b.clone()).unwrap();
        assert_eq!((a.stats.requests(), a.clients, a.runs), (3, 2, 2));
        assert_eq!((a.test_id.as_str(), a.addr.as_str()), ("t,u", "h:1"));
        assert_eq!(a.names, ["a", "b"]);
        assert_eq!(a.timeline[&5].ok, 2);
        assert_eq!(a.timeline[&6].failed(), 1);
        assert_eq!(a.files[0].1.requests(), 2);
        assert_eq!(a.running().total(), Duration::from_secs(2));
        assert_eq!(a.first_error.as_deref(), Some("x"));
        b.protocol = "legacy".into();
        let err = a.merge(b).unwrap_err();
        assert!(
            err.contains("legacy run cannot be merged with a tcpfetch/1"),
            "{err}"
        );
    }
}
