//! The soak's verdict: does memory, do descriptors or the publish queue grow
//! without bound, and did the load fail? Pure functions over the sampled
//! series, so the rules are unit-tested on synthetic runs.
//!
//! The rules (also in `--help` and docs/benchmarks.md "Soak"), applied to
//! the samples after the warm-up only (caches, pools and the allocator's
//! arenas fill during it):
//!
//! - **Memory** grows without bound when all three hold:
//!   1. the least-squares slope of RSS over the samples, projected over
//!      their span, exceeds max(10 % of the baseline, 16 MiB) (baseline:
//!      the median of the first third);
//!   2. the last third's 10th percentile is above the middle third's 90th
//!      (a climb, not noise around a level: noise puts many late samples
//!      below many middle ones; percentiles rather than the extremes, so
//!      one outlier decides nothing);
//!   3. the last third still climbs: its own slope is at least a quarter of
//!      the whole slope (a single step, say a cache that filled at two
//!      thirds of the run, is flat afterwards).
//!
//!   A slow leak below the threshold passes a short run and fails a long
//!   one: the projection grows with the span, which is why the documented
//!   run is 30 minutes.
//! - **Descriptors** leak when the count once the load has stopped and
//!   closed its churn (settled) exceeds the post-warm-up baseline (the
//!   first third's minimum: a sample can catch a churn cycle mid-way, never
//!   below the floor) by more than max(24, 5 % of it). The load's own
//!   long-lived connections are still open at both readings.
//! - **Subscriptions** leak when `converger_subscriptions` once the load
//!   has settled exceeds the fewest seen after the warm-up (the long-lived
//!   subscribers' own; the churn's come and go) by more than
//!   [`SUBSCRIPTIONS_MARGIN`].
//! - **Publish queue**: it keeps growing when the last third's 10th
//!   percentile is above the middle third's 90th and at least
//!   [`QUEUE_FLOOR`]: at a moderate rate the queue empties at every commit.
//! - **Load**: errors (refused, failed or timed-out operations, churn
//!   included) above max(3, 0.1 % of the operations), or deliveries to the
//!   long-lived subscribers missing beyond the same tolerance.

use serde::Serialize;

/// Memory growth below this over the run is never a leak (allocator and cache noise).
pub const RSS_FLOOR_KIB: f64 = 16.0 * 1024.0;
/// ... nor below this fraction of the baseline.
pub const RSS_FRACTION: f64 = 0.10;
/// Descriptors above the baseline that are never a leak …
pub const FD_FLOOR: u64 = 24;
/// … nor this fraction of it.
pub const FD_FRACTION: f64 = 0.05;
/// A publish queue at or below this depth is never called growing.
pub const QUEUE_FLOOR: f64 = 100.0;
/// The fewest post-warm-up samples the thirds are taken over.
pub const MIN_SAMPLES: usize = 6;

/// How a series moved over the judged samples.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    pub baseline: f64,
    pub end: f64,
    /// Least-squares slope per minute.
    pub slope_per_min: f64,
    /// The slope over the judged span.
    pub projected: f64,
    pub threshold: f64,
    /// The last third's 10th percentile is above the middle third's 90th.
    pub climbing: bool,
    /// The last third's own slope per minute.
    pub late_slope_per_min: f64,
    pub unbounded: bool,
}

/// Judges `points` (seconds, value) by the memory rule with the given floor and fraction.
pub fn growth(points: &[(f64, f64)], floor: f64, fraction: f64) -> Option<Growth> {
    let n = points.len();
    if n < MIN_SAMPLES {
        return None;
    }
    let (first, middle, last) = (&points[..n / 3], &points[n / 3..2 * n / 3], &points[2 * n / 3..]);
    let baseline = quantile(first, 0.5);
    let slope = slope(points);
    let span = points[n - 1].0 - points[0].0;
    let projected = slope * span;
    let threshold = floor.max(fraction * baseline);
    let climbing = quantile(last, 0.1) > quantile(middle, 0.9);
    let late = self::slope(last);
    let unbounded = projected > threshold && climbing && late >= 0.25 * slope;
    Some(Growth {
        baseline,
        end: points[n - 1].1,
        slope_per_min: slope * 60.0,
        projected,
        threshold,
        climbing,
        late_slope_per_min: late * 60.0,
        unbounded,
    })
}

/// Subscriptions the settled end may hold over the fewest seen during the run
/// (a long-lived subscriber caught mid-resume when that fewest was sampled).
pub const SUBSCRIPTIONS_MARGIN: f64 = 2.0;

/// The descriptor check: baseline, settled end, margin.
#[derive(Clone, Debug, Serialize)]
pub struct Fds {
    pub baseline: u64,
    pub settled: u64,
    pub margin: u64,
    pub leaked: bool,
}

/// `judged`: the post-warm-up counts; `settled`: the count once the load stopped.
pub fn fds(judged: &[u64], settled: u64) -> Option<Fds> {
    if judged.len() < MIN_SAMPLES {
        return None;
    }
    let baseline = judged[..judged.len() / 3].iter().copied().min().unwrap_or(0);
    let margin = FD_FLOOR.max((baseline as f64 * FD_FRACTION).ceil() as u64);
    Some(Fds { baseline, settled, margin, leaked: settled > baseline + margin })
}

/// Whether the publish queue keeps growing over `points` (seconds, depth).
pub fn queue_grows(points: &[(f64, f64)]) -> bool {
    let n = points.len();
    if n < MIN_SAMPLES {
        return false;
    }
    let (middle, last) = (&points[n / 3..2 * n / 3], &points[2 * n / 3..]);
    let low = quantile(last, 0.1);
    low > quantile(middle, 0.9) && low >= QUEUE_FLOOR
}

/// Whether `bad` out of `total` is beyond the tolerance max(3, 0.1 %).
pub fn beyond_tolerance(bad: u64, total: u64) -> bool {
    bad > 3u64.max(total / 1000)
}

/// Least-squares slope of value over seconds (0 for fewer than two distinct times).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mt, mv) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in points {
        num += (t - mt) * (v - mv);
        den += (t - mt) * (t - mt);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// The `q` quantile of the values (nearest rank).
fn quantile(points: &[(f64, f64)], q: f64) -> f64 {
    let mut v: Vec<f64> = points.iter().map(|p| p.1).collect();
    v.sort_by(f64::total_cmp);
    let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0;

    /// `n` samples 5 s apart: `f(i)` plus up to ±`noise` KiB of seeded noise.
    fn series(n: usize, noise: f64, f: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        let mut rng = crate::mix::Rng::new(42);
        (0..n).map(|i| (i as f64 * 5.0, f(i) + (rng.below(2001) as f64 / 1000.0 - 1.0) * noise)).collect()
    }

    fn judge(points: &[(f64, f64)]) -> Growth {
        growth(points, RSS_FLOOR_KIB, RSS_FRACTION).expect("enough samples")
    }

    #[test]
    fn flat_memory_with_noise_passes() {
        for noise in [0.0, 512.0, 4.0 * MIB, 12.0 * MIB] {
            let g = judge(&series(360, noise, |_| 100.0 * MIB));
            assert!(!g.unbounded, "noise {noise}: {g:?}");
        }
    }

    #[test]
    fn a_linear_leak_fails() {
        // 0.5 MiB a sample: 180 MiB over 360 samples, noise ±4 MiB.
        let g = judge(&series(360, 4.0 * MIB, |i| 100.0 * MIB + i as f64 * 0.5 * MIB));
        assert!(g.unbounded && g.climbing, "{g:?}");
        assert!((g.slope_per_min - 6.0 * MIB).abs() < 0.2 * MIB, "{g:?}");
        // A smoke's minute: 1 MiB a second from 60 MiB, sampled every second.
        let smoke: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 60.0 * MIB + i as f64 * MIB)).collect();
        assert!(judge(&smoke).unbounded);
    }

    #[test]
    fn a_step_then_flat_passes_wherever_the_step_is() {
        for at in [30, 120, 180, 240, 300] {
            let g = judge(&series(360, 2.0 * MIB, |i| if i < at { 100.0 * MIB } else { 160.0 * MIB }));
            assert!(!g.unbounded, "step at {at}: {g:?}");
        }
    }

    #[test]
    fn a_leak_below_the_threshold_passes_until_the_run_is_long_enough() {
        // 2 MiB a minute: 2 MiB over a one-minute smoke, 60 MiB over 30 minutes.
        let per_sample = 2.0 * MIB / 12.0;
        assert!(!judge(&series(12, 0.0, |i| 100.0 * MIB + i as f64 * per_sample)).unbounded);
        assert!(judge(&series(360, 1.0 * MIB, |i| 100.0 * MIB + i as f64 * per_sample)).unbounded);
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        assert!(growth(&series(5, 0.0, |i| i as f64 * MIB * 100.0), RSS_FLOOR_KIB, RSS_FRACTION).is_none());
        assert!(fds(&[10; 5], 1000).is_none());
        assert!(!queue_grows(&[(0.0, 1e6); 5]));
    }

    #[test]
    fn descriptors_leak_past_the_margin_over_the_floor() {
        let judged = [120, 131, 118, 125, 122, 140, 119, 126, 121];
        let ok = fds(&judged, 118 + 24).unwrap();
        assert_eq!((ok.baseline, ok.margin, ok.leaked), (118, 24, false));
        assert!(fds(&judged, 118 + 25).unwrap().leaked);
        // A large baseline gets 5 %.
        assert_eq!(fds(&[2000; 9], 2100).unwrap().margin, 100);
    }

    #[test]
    fn a_queue_that_keeps_growing_fails_and_a_busy_one_does_not() {
        assert!(queue_grows(&series(60, 0.0, |i| i as f64 * 50.0)));
        assert!(!queue_grows(&series(60, 0.0, |i| i as f64)), "below the floor");
        assert!(!queue_grows(&series(60, 400.0, |_| 500.0)), "busy but level");
    }

    #[test]
    fn errors_are_tolerated_up_to_three_or_a_tenth_of_a_percent() {
        assert!(!beyond_tolerance(3, 10));
        assert!(beyond_tolerance(4, 10));
        assert!(!beyond_tolerance(30, 30_000));
        assert!(beyond_tolerance(31, 30_000));
    }
}
