//! Deliveries per second per channel: every attempt first books its turn in
//! its channel's token bucket (`rt::rate`), at the tenant's
//! `deliveries_per_second` if it has one, else `--channel-deliveries-per-second`.
//! A provider such as WhatsApp Cloud (80 messages/s per number) refuses what
//! goes faster, so a throttled delivery waits for its turn: it is never
//! failed, and the wait is not an attempt.
//!
//! The worker is one thread per node; in a cluster every node's worker sends
//! for every channel, so each keeps an equal share of the pace (the nodes it
//! hears, itself included).
//! A claimed delivery is leased: it may wait only while its lease leaves room
//! for the attempt itself (see [`Pace::turn`]); a turn further off than that
//! is not booked, and the delivery is handed back to the queue, unattempted,
//! due when its turn would have come.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use converger_storage::Id;

use crate::rt::rate::Buckets;

/// Channels whose buckets are kept (idle, full buckets are dropped first).
const MAX_CHANNELS: usize = 100_000;

/// What a claimed delivery does about its channel's pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Its turn is now: attempt it.
    Now,
    /// Its turn is booked this far off: wait, then attempt it.
    After(Duration),
    /// Its turn is further off than its lease allows: give the claim back,
    /// unattempted, due this far off.
    Later(Duration),
}

pub struct Pace {
    buckets: Mutex<Buckets<Id>>,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace { buckets: Mutex::new(Buckets::new(MAX_CHANNELS)) }
    }
}

impl Pace {
    /// Books `channel`'s next turn at `per_second` for a delivery claimed
    /// with `lease` at `claimed`. The attempt must start within the first
    /// half of the lease: the other half is left for the attempt itself (an
    /// HTTP request of up to the request timeout) and for recording its
    /// outcome, before another claim may take the row and the outcome comes
    /// too late to count (the delivery would go out twice).
    pub fn turn(&self, channel: Id, per_second: f64, now: Instant, claimed: Instant, lease: Duration) -> Turn {
        let max_wait = (claimed + lease / 2).saturating_duration_since(now);
        // Poisoned only by a panic inside `reserve`: pacing then stops rather than deliveries.
        let Ok(mut buckets) = self.buckets.lock() else { return Turn::Now };
        match buckets.reserve(&channel, per_second, now, max_wait) {
            Ok(wait) if wait.is_zero() => Turn::Now,
            Ok(wait) => Turn::After(wait),
            Err(wait) => Turn::Later(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use converger_storage::new_id;

    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    fn millis(turn: Turn) -> (char, u64) {
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
        match turn {
            Turn::Now => ('n', 0),
            Turn::After(d) => ('a', ms(d)),
            Turn::Later(d) => ('l', ms(d)),
        }
    }

    #[test]
    fn a_channel_goes_at_its_rate_and_channels_are_independent() {
        let (pace, t0) = (Pace::default(), Instant::now());
        let (a, b) = (new_id(), new_id());
        let turns: Vec<_> = (0..8).map(|_| millis(pace.turn(a, 5.0, t0, t0, LEASE))).collect();
        let want = [('n', 0), ('n', 0), ('n', 0), ('n', 0), ('n', 0), ('a', 200), ('a', 400), ('a', 600)];
        assert_eq!(turns, want, "a burst of one second's worth, then one turn every 200 ms");
        assert_eq!(pace.turn(b, 5.0, t0, t0, LEASE), Turn::Now, "another channel has its own budget");
        // Once the booked turns have passed, the channel goes at once again.
        assert_eq!(pace.turn(a, 5.0, t0 + Duration::from_millis(800), t0, LEASE), Turn::Now);
    }

    #[test]
    fn a_turn_past_half_the_lease_is_not_booked_and_the_delivery_is_handed_back() {
        let (pace, t0) = (Pace::default(), Instant::now());
        let c = new_id();
        let lease = Duration::from_secs(2);
        // 1 a second: now, then 1 s, then 2 s away — past half of a 2 s lease.
        assert_eq!(millis(pace.turn(c, 1.0, t0, t0, lease)), ('n', 0));
        assert_eq!(millis(pace.turn(c, 1.0, t0, t0, lease)), ('a', 1000));
        assert_eq!(millis(pace.turn(c, 1.0, t0, t0, lease)), ('l', 2000));
        assert_eq!(millis(pace.turn(c, 1.0, t0, t0, lease)), ('l', 2000), "handing back books nothing");
        // A claim made later has its own lease: the turn 2 s away fits in a 4 s one.
        assert_eq!(millis(pace.turn(c, 1.0, t0, t0, 2 * lease)), ('a', 2000));
        // Half the lease already spent (the attempt was held up): no wait at all fits.
        let late = t0 + Duration::from_millis(1500);
        assert_eq!(millis(pace.turn(new_id(), 1.0, late, t0, lease)), ('n', 0), "a turn that is there goes");
    }

    #[test]
    fn the_rate_follows_the_tenants_override() {
        let (pace, t0) = (Pace::default(), Instant::now());
        let c = new_id();
        for _ in 0..5 {
            assert_eq!(pace.turn(c, 5.0, t0, t0, LEASE), Turn::Now);
        }
        assert!(matches!(pace.turn(c, 5.0, t0, t0, LEASE), Turn::After(_)));
        // Raised to 1,000/s: the debt of one turn is paid off in a millisecond.
        let t1 = t0 + Duration::from_millis(2);
        assert_eq!(pace.turn(c, 1000.0, t1, t1, LEASE), Turn::Now);
    }
}
