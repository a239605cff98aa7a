//! Token buckets: the one rate-limit mechanism (socket messages, REST
//! requests per tenant and per address, activities per tenant, new
//! connections per address, deliveries per channel). A bucket refills at
//! `rate` tokens a second and holds at most one second's worth, so a client
//! may burst up to `rate` after a quiet second but never sustain more.
//!
//! Buckets are shard-local (no lock, no atomic): a per-node budget is split
//! across the shards by the caller ([`split`]). [`Buckets`] keys them (a
//! tenant, an address, a channel) and stays bounded: past `max_keys` the
//! full (idle) buckets are dropped, and if that frees nothing the oldest half.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One bucket.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: f64, now: Instant) -> TokenBucket {
        let rate = per_second.max(f64::MIN_POSITIVE);
        TokenBucket { rate, tokens: rate.max(1.0), last: now }
    }

    /// Takes one token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.take_n(1, now)
    }

    /// Takes `n` tokens at once when at least one is there: a batch larger
    /// than the burst still passes, and the bucket's debt makes the next
    /// ones wait for it (so the rate holds over time). Otherwise says how
    /// long until a token is there.
    pub fn take_n(&mut self, n: usize, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= n as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(3600.0)))
        }
    }

    /// For callers that wait rather than refuse (the delivery worker): books
    /// the next token if it is there within `max_wait`, and answers how long
    /// until it is (zero when it is there now). The bucket goes into debt for
    /// it, so each caller gets a turn of its own, one `1/rate` after the
    /// other, in the order they asked. A wait longer than `max_wait` books
    /// nothing and says how long it would have been.
    pub fn reserve(&mut self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        self.refill(now);
        let wait = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(3600.0))
        };
        if wait > max_wait {
            return Err(wait);
        }
        self.tokens -= 1.0;
        Ok(wait)
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.take(now).is_ok()
    }

    /// A new rate (an override changed); the tokens held stay within the new burst.
    pub fn set_rate(&mut self, per_second: f64) {
        self.rate = per_second.max(f64::MIN_POSITIVE);
        self.tokens = self.tokens.min(self.rate.max(1.0));
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.last = now;
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate.max(1.0)
    }
}

/// A shard's share of a per-node budget of `per_node` a second over `shards`.
pub fn split(per_node: u32, shards: usize) -> f64 {
    f64::from(per_node) / shards.max(1) as f64
}

/// A wait as a `Retry-After` header gives it: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Buckets by key, bounded in number.
pub struct Buckets<K> {
    map: HashMap<K, TokenBucket>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(max_keys: usize) -> Buckets<K> {
        Buckets { map: HashMap::new(), max_keys: max_keys.max(1) }
    }

    /// Takes a token from `key`'s bucket, which refills at `per_second`
    /// (created full on first use; its rate follows `per_second`).
    pub fn take(&mut self, key: &K, per_second: f64, now: Instant) -> Result<(), Duration> {
        self.take_n(key, per_second, 1, now)
    }

    /// [`TokenBucket::take_n`] on `key`'s bucket.
    pub fn take_n(&mut self, key: &K, per_second: f64, n: usize, now: Instant) -> Result<(), Duration> {
        if let Some(bucket) = self.map.get_mut(key) {
            if bucket.rate != per_second {
                bucket.set_rate(per_second);
            }
            return bucket.take_n(n, now);
        }
        if self.map.len() >= self.max_keys {
            self.evict(now);
        }
        let mut bucket = TokenBucket::new(per_second, now);
        let taken = bucket.take_n(n, now);
        self.map.insert(key.clone(), bucket);
        taken
    }

    /// [`TokenBucket::reserve`] on `key`'s bucket.
    pub fn reserve(
        &mut self,
        key: &K,
        per_second: f64,
        now: Instant,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        if let Some(bucket) = self.map.get_mut(key) {
            if bucket.rate != per_second {
                bucket.set_rate(per_second);
            }
            return bucket.reserve(now, max_wait);
        }
        if self.map.len() >= self.max_keys {
            self.evict(now);
        }
        let mut bucket = TokenBucket::new(per_second, now);
        let booked = bucket.reserve(now, max_wait);
        self.map.insert(key.clone(), bucket);
        booked
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops the buckets that are full again (their keys are idle: a new
    /// bucket would start full too), or, if none is, the older half.
    fn evict(&mut self, now: Instant) {
        self.map.retain(|_, b| !b.is_full(now));
        if self.map.len() >= self.max_keys {
            let mut ages: Vec<Instant> = self.map.values().map(|b| b.last).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            self.map.retain(|_, b| b.last > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_rate_then_refills_over_time() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(10.0, t0);
        assert!((0..10).all(|_| r.allow(t0)));
        assert_eq!(r.take(t0), Err(Duration::from_millis(100)));
        assert!(r.allow(t0 + Duration::from_millis(100)));
        assert!(!r.allow(t0 + Duration::from_millis(100)));
        // A long pause refills at most one second's worth.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| r.allow(later)).count(), 10);
    }

    #[test]
    fn a_batch_larger_than_the_burst_passes_and_the_debt_is_waited_for() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(10.0, t0);
        assert!(r.take_n(25, t0).is_ok(), "one token is there: the batch passes");
        assert_eq!(r.take(t0), Err(Duration::from_millis(1600)), "15 owed plus one");
        assert!(r.allow(t0 + Duration::from_millis(1600)));
    }

    #[test]
    fn reservations_queue_one_turn_apart_and_a_turn_too_far_books_nothing() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(5.0, t0);
        let max = Duration::from_millis(1001);
        // In whole milliseconds (the float arithmetic is exact to the nanosecond only nearly).
        let ms = |turn: Result<Duration, Duration>| match turn {
            Ok(d) => Ok((d.as_secs_f64() * 1000.0).round() as u64),
            Err(d) => Err((d.as_secs_f64() * 1000.0).round() as u64),
        };
        let turns: Vec<_> = (0..9).map(|_| ms(r.reserve(t0, max))).collect();
        assert_eq!(turns, vec![Ok(0), Ok(0), Ok(0), Ok(0), Ok(0), Ok(200), Ok(400), Ok(600), Ok(800)]);
        // The next turn (1 s away) fits; the one after does not, and is not booked.
        assert_eq!(ms(r.reserve(t0, max)), Ok(1000));
        assert_eq!(ms(r.reserve(t0, max)), Err(1200));
        assert_eq!(ms(r.reserve(t0, max)), Err(1200), "nothing was booked");
        // Time pays the debt off: 1 s later the queue is 1 s shorter.
        assert_eq!(ms(r.reserve(t0 + Duration::from_secs(1), max)), Ok(200));
        // Takers that refuse instead of waiting see the debt too.
        assert!(r.take(t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    }

    #[test]
    fn a_rate_below_one_still_allows_one_then_waits() {
        let t0 = Instant::now();
        let mut r = TokenBucket::new(0.5, t0);
        assert!(r.allow(t0));
        assert_eq!(r.take(t0), Err(Duration::from_secs(2)));
        assert!(r.allow(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn keyed_buckets_are_independent_bounded_and_follow_the_rate() {
        let t0 = Instant::now();
        let mut b: Buckets<u32> = Buckets::new(100);
        assert!((0..5).all(|_| b.take(&1, 5.0, t0).is_ok()));
        assert!(b.take(&1, 5.0, t0).is_err(), "key 1 is spent");
        assert!(b.take(&2, 5.0, t0).is_ok(), "key 2 has its own");
        // An override raises the rate: the bucket refills at the new pace.
        assert!(b.take(&1, 50.0, t0 + Duration::from_millis(100)).is_ok());
        for k in 0..1000 {
            let _ = b.take(&k, 5.0, t0 + Duration::from_secs(5));
        }
        assert!(b.len() <= 100, "bounded: {}", b.len());
    }
}
