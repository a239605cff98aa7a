//! A Prometheus-style histogram with fixed upper bounds: a count per bucket,
//! a sum and a count, all relaxed atomics (one writer per shard).

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the overflow (+Inf) bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    /// The sum in millionths, so it fits an integer atomic.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Per-bucket counts (not cumulative; the last is +Inf), sum, count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let buckets = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, sum, self.count.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 11.0] {
            h.observe(v);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(buckets, vec![2, 1, 1]);
        assert_eq!(count, 4);
        assert!((sum - 17.5).abs() < 1e-6);
    }
}
