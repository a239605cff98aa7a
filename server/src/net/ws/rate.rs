//! A token bucket for incoming messages: `rate` tokens a second, holding at
//! most one second's worth, so a client may burst up to `rate` messages after
//! a quiet second but never sustain more than `rate` a second.

use std::time::Instant;

pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32) -> RateLimit {
        let rate = f64::from(per_second.max(1));
        RateLimit { rate, tokens: rate, last: Instant::now() }
    }

    /// Takes a token for one message at `now`; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_a_burst_of_rate_then_refills_over_time() {
        let mut r = RateLimit::new(10);
        let t0 = r.last;
        assert!((0..10).all(|_| r.allow(t0)));
        assert!(!r.allow(t0));
        assert!(r.allow(t0 + Duration::from_millis(100)));
        assert!(!r.allow(t0 + Duration::from_millis(100)));
        // A long pause refills at most one second's worth.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| r.allow(later)).count(), 10);
    }
}
