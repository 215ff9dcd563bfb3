//! A fixed-memory log-linear histogram of durations, in the style of
//! HdrHistogram: every percentile it reports is within 1 % of the exact one,
//! and a million samples cost no more memory than ten.
//!
//! Values are whole microseconds. Below 128 µs every value has its own
//! bucket (exact). Above, each power of two is cut into 64 equal buckets, so
//! a bucket is at most 1/64 of its lower bound wide; reporting the bucket's
//! middle puts the answer within half of that, 1/128 (0.78 %), of any value
//! that fell in it. Values past [`MAX_TRACKED`] (about 71 minutes) share the
//! last bucket; the exact minimum and maximum are kept on the side, and no
//! percentile is ever reported outside them.
//!
//! The counters are allocated at the first value: a run keeps histograms
//! per second and per file, and an empty one costs next to nothing.

use std::time::Duration;

/// log2 of the buckets per power of two.
pub const SUB_BITS: u32 = 6;
/// Buckets per power of two above the exact range.
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are counted exactly, one bucket each.
const EXACT: u64 = 2 * SUB;
/// log2 of the largest value with its own bucket range (2^32 µs ≈ 71 min).
pub const TOP_BITS: u32 = 32;
/// The largest value counted without clamping.
pub const MAX_TRACKED: u64 = (1 << TOP_BITS) - 1;
/// How many counters every histogram has, whatever it records.
pub const BUCKETS: usize = (EXACT + (TOP_BITS - SUB_BITS - 1) as u64 * SUB) as usize;

#[derive(Clone)]
pub struct Histogram {
    /// Empty until the first value, then [`BUCKETS`] long.
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: Box::default(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Count one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Count one value in microseconds.
    pub fn record_micros(&mut self, us: u64) {
        self.allocate();
        self.counts[index(us)] += 1;
        self.count += 1;
        self.min = self.min.min(us);
        self.max = self.max.max(us);
        self.sum += u128::from(us);
    }

    /// Add everything `other` counted.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        self.allocate();
        // Saturating: counts read back from files could be made to
        // overflow, and a merge must not panic on them.
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum = self.sum.saturating_add(other.sum);
    }

    fn allocate(&mut self) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS].into_boxed_slice();
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value recorded, exactly.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest value recorded, exactly.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at percentile `p` (0–100) by nearest rank: the smallest
    /// recorded value with at least `p` % of all values at or below it,
    /// within 1 %.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let rank = rank.min(self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                if i == BUCKETS - 1 && self.max > MAX_TRACKED {
                    return Some(self.max); // the overflow bucket: no better guess
                }
                let (low, width) = bucket(i);
                let middle = low + (width - 1) / 2;
                return Some(middle.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Every non-empty counter as (its representative value, its count),
    /// from the smallest value up; the values lie within `min..=max`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (low, width) = bucket(i);
                ((low + (width - 1) / 2).clamp(self.min, self.max), c)
            })
    }

    /// The total of every value recorded, for an exact mean after a merge.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// Every non-empty counter as (its index, its count), in index order:
    /// with [`Histogram::min`], [`Histogram::max`] and [`Histogram::sum`],
    /// all that [`Histogram::from_parts`] needs to rebuild it exactly.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| (i, c))
    }

    /// The histogram `buckets` (in increasing index order), `min`, `max`
    /// and `sum` describe, checked for consistency so that a damaged or
    /// hand-edited file cannot put a percentile outside `min..=max`.
    pub fn from_parts(
        buckets: &[(usize, u64)],
        min: u64,
        max: u64,
        sum: u128,
    ) -> Result<Histogram, String> {
        let mut h = Histogram::new();
        let mut last = None;
        for &(i, c) in buckets {
            if i >= BUCKETS {
                return Err(format!("bucket {i} is past the last one ({})", BUCKETS - 1));
            }
            if last.is_some_and(|l| l >= i) || c == 0 {
                return Err(format!("bucket {i} is out of order, repeated or empty"));
            }
            last = Some(i);
            h.allocate();
            h.counts[i] = c;
            h.count = h.count.checked_add(c).ok_or("the counts overflow")?;
        }
        let (Some(&(first, _)), Some(last)) = (buckets.first(), last) else {
            return Ok(h);
        };
        if min > max || index(min) != first || index(max) != last {
            return Err(format!(
                "min {min} and max {max} do not fall in the first and last buckets"
            ));
        }
        let count = u128::from(h.count);
        if sum < count * u128::from(min) || sum > count * u128::from(max) {
            return Err(format!(
                "sum {sum} cannot come from {count} values from {min} to {max}"
            ));
        }
        (h.min, h.max, h.sum) = (min, max, sum);
        Ok(h)
    }

    /// The counters' memory: the same from the first value to the last.
    #[cfg(test)]
    fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.counts)
    }
}

/// The counter a value falls in.
fn index(us: u64) -> usize {
    let us = us.min(MAX_TRACKED);
    if us < EXACT {
        return us as usize;
    }
    let top = 63 - us.leading_zeros(); // ≥ SUB_BITS + 1
    let shift = top - SUB_BITS;
    let sub = (us >> shift) - SUB; // 0..SUB
    (EXACT + u64::from(top - SUB_BITS - 1) * SUB + sub) as usize
}

/// The lowest value of counter `i` and how many values it covers.
fn bucket(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, 1);
    }
    let j = i - EXACT;
    let shift = (j / SUB) as u32 + 1;
    let sub = SUB + j % SUB;
    (sub << shift, 1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nearest-rank percentile of sorted values, computed exactly.
    fn exact(sorted: &[u64], p: f64) -> u64 {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank.min(sorted.len()) - 1]
    }

    fn check_against_exact(values: &[u64]) {
        let mut h = Histogram::new();
        for &v in values {
            h.record_micros(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for p in [
            0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0,
        ] {
            let want = exact(&sorted, p) as f64;
            let got = h.percentile(p).unwrap() as f64;
            let error = (got - want).abs() / want.max(1.0);
            assert!(error <= 0.01, "p{p}: got {got}, exact {want}");
        }
        assert_eq!(h.min(), sorted.first().copied());
        assert_eq!(h.max(), sorted.last().copied());
        assert_eq!(h.count(), values.len() as u64);
    }

    /// xorshift64*, so the distributions are the same on every run.
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed | 1;
        move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn every_counter_maps_back_to_itself() {
        for i in 0..BUCKETS {
            let (low, width) = bucket(i);
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            assert!(width == 1 || width * 64 <= low, "bucket {i} is too wide");
        }
        assert_eq!(index(MAX_TRACKED), BUCKETS - 1);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_range_are_within_one_percent() {
        let values: Vec<u64> = (1..=100_000).collect();
        check_against_exact(&values);
    }

    #[test]
    fn percentiles_of_a_long_tailed_distribution_are_within_one_percent() {
        // Log-normal-ish latencies from 50 µs to tens of seconds.
        let mut next = uniform(7);
        let values: Vec<u64> = (0..50_000)
            .map(|_| (50.0 * (next() * 13.0).exp()) as u64)
            .collect();
        check_against_exact(&values);
    }

    #[test]
    fn percentiles_of_two_clusters_are_within_one_percent() {
        // Most requests fast, a few stuck behind a stall: the shape
        // coordinated omission hides.
        let mut next = uniform(11);
        let values: Vec<u64> = (0..20_000)
            .map(|i| {
                let base = if i % 50 == 0 { 200_000.0 } else { 900.0 };
                (base * (1.0 + next() * 0.3)) as u64
            })
            .collect();
        check_against_exact(&values);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in [0, 1, 2, 3, 127] {
            h.record_micros(v);
        }
        assert_eq!(h.percentile(0.0), Some(0));
        assert_eq!(h.percentile(50.0), Some(2));
        assert_eq!(h.percentile(100.0), Some(127));
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let mut next = uniform(3);
        let values: Vec<u64> = (0..10_000).map(|_| (next() * 1e6) as u64).collect();
        let mut whole = Histogram::new();
        let mut parts = [Histogram::new(), Histogram::new(), Histogram::new()];
        for (i, &v) in values.iter().enumerate() {
            whole.record_micros(v);
            parts[i % 3].record_micros(v);
        }
        let mut merged = Histogram::new();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!(merged.count(), whole.count());
        assert_eq!(merged.min(), whole.min());
        assert_eq!(merged.max(), whole.max());
        assert_eq!(merged.mean(), whole.mean());
        for p in [50.0, 90.0, 99.0, 99.9] {
            assert_eq!(merged.percentile(p), whole.percentile(p));
        }
        merged.merge(&Histogram::new());
        assert_eq!(merged.min(), whole.min());
    }

    #[test]
    fn parts_rebuild_the_same_histogram() {
        let mut h = Histogram::new();
        for v in [0, 5, 5, 300, 70_000, 123_456_789, u64::MAX] {
            h.record_micros(v);
        }
        let parts: Vec<(usize, u64)> = h.buckets().collect();
        let back = Histogram::from_parts(&parts, 0, u64::MAX, h.sum()).unwrap();
        assert_eq!(back.counts, h.counts);
        assert_eq!(
            (back.count(), back.min(), back.max()),
            (7, Some(0), Some(u64::MAX))
        );
        for p in [10.0, 50.0, 99.0] {
            assert_eq!(back.percentile(p), h.percentile(p));
        }
        assert_eq!(Histogram::from_parts(&[], 0, 0, 0).unwrap().count(), 0);
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        type Parts<'a> = (&'a [(usize, u64)], u64, u64, u128);
        let cases: &[Parts] = &[
            (&[(BUCKETS, 1)], 0, 0, 0),
            (&[(5, 1), (5, 1)], 5, 5, 10),
            (&[(6, 1), (5, 1)], 5, 6, 11),
            (&[(5, 0)], 5, 5, 0),
            (&[(5, 1)], 4, 5, 5),
            (&[(5, 1)], 5, 5, 6),
            (&[(5, 1), (7, 1)], 7, 5, 12),
            (&[(5, u64::MAX), (7, 1)], 5, 7, 12),
        ];
        for &(buckets, min, max, sum) in cases {
            assert!(
                Histogram::from_parts(buckets, min, max, sum).is_err(),
                "{buckets:?} {min} {max} {sum}"
            );
        }
    }

    #[test]
    fn memory_stays_fixed_whatever_is_recorded() {
        let mut h = Histogram::new();
        assert_eq!(h.footprint(), 0, "nothing until the first value");
        h.record_micros(1);
        let empty = h.footprint();
        assert!(empty <= 16 * 1024, "{empty} bytes");
        for v in 0..1_000_000u64 {
            h.record_micros(v * 7919);
        }
        h.record(Duration::from_secs(1 << 40));
        assert_eq!(h.footprint(), empty);
        assert_eq!(h.count(), 1_000_002);
        assert_eq!(h.percentile(100.0), h.max());
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        let h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.min(), None);
        assert_eq!(h.mean(), None);
        assert_eq!(h.iter().count(), 0);
    }

    #[test]
    fn iteration_visits_every_value_once_within_min_and_max() {
        let mut h = Histogram::new();
        for v in [10, 20, 20, 1000, 5000, 5001, 9_999_999] {
            h.record_micros(v);
        }
        let seen: Vec<(u64, u64)> = h.iter().collect();
        assert_eq!(seen.iter().map(|&(_, c)| c).sum::<u64>(), 7);
        assert_eq!(seen[0], (10, 1));
        assert_eq!(seen[1], (20, 2));
        assert!(seen.iter().all(|&(v, _)| (10..=9_999_999).contains(&v)));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
