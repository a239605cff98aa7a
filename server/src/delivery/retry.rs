//! The retry policy of deliveries: how many attempts, how long between
//! them, and what an attempt's [`ResponseOutcome`] becomes in storage.

use std::time::Duration;

use converger_storage::{DeliveryOutcome, Json, Timestamp};
use serde_json::Value;

use crate::adapters::ResponseOutcome;

/// Attempts per delivery before it is `failed`.
pub const MAX_ATTEMPTS: u32 = 5;
/// The default base of [`retry_delay`].
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(10);

/// The wait after the failure of attempt number `attempt`, counted from 0:
/// `base × 3^attempt` (10 s, 30 s, 90 s, 270 s with the default base),
/// saturating instead of overflowing.
pub fn retry_delay(attempt: u32, base: Duration) -> Duration {
    base.saturating_mul(3u32.saturating_pow(attempt))
}

/// The storage outcome of an attempt, given how many attempts have now been
/// made (the delivery's `attempts` once claimed: 1 for the first). A
/// retryable failure of the last allowed attempt is a permanent one.
pub fn outcome_for(outcome: &ResponseOutcome, attempts_made: u32, now: Timestamp, base: Duration) -> DeliveryOutcome {
    match outcome {
        ResponseOutcome::Delivered { metadata } => DeliveryOutcome::Delivered {
            at: now,
            metadata: (!metadata.is_empty()).then(|| Json::from_value(&Value::Object(metadata.clone()))),
        },
        ResponseOutcome::Failed { error } => DeliveryOutcome::Failed { error: error.clone() },
        ResponseOutcome::Retry { error } if attempts_made >= MAX_ATTEMPTS => {
            DeliveryOutcome::Failed { error: format!("{error} (gave up after {attempts_made} attempts)") }
        }
        ResponseOutcome::Retry { error } => DeliveryOutcome::Retry {
            error: error.clone(),
            next_attempt_at: now.plus(retry_delay(attempts_made.saturating_sub(1), base)),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    /// 2025-06-08T21:00:00Z.
    const NOW: i64 = 1_749_416_400;

    #[test]
    fn retry_delays_grow_by_three_from_the_base() {
        let base = DEFAULT_RETRY_BASE;
        let delays: Vec<u64> = (0..5).map(|a| retry_delay(a, base).as_secs()).collect();
        assert_eq!(delays, [10, 30, 90, 270, 810]);
        assert_eq!(retry_delay(2, Duration::from_millis(100)), Duration::from_millis(900));
        assert!(retry_delay(u32::MAX, base) >= Duration::from_secs(u64::from(u32::MAX)), "saturates, no overflow");
    }

    #[test]
    fn outcomes_retry_until_the_last_attempt_then_fail() {
        let now = Timestamp::from_micros(NOW * 1_000_000);
        let base = DEFAULT_RETRY_BASE;
        let retry = ResponseOutcome::Retry { error: "HTTP 503".into() };
        let mut waits = Vec::new();
        for made in 1..MAX_ATTEMPTS {
            match outcome_for(&retry, made, now, base) {
                DeliveryOutcome::Retry { error, next_attempt_at } => {
                    assert_eq!(error, "HTTP 503");
                    waits.push((next_attempt_at.as_micros() - now.as_micros()) / 1_000_000);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [10, 30, 90, 270], "1st attempt fails → 10 s, … 4th → 270 s");
        match outcome_for(&retry, MAX_ATTEMPTS, now, base) {
            DeliveryOutcome::Failed { error } => assert_eq!(error, "HTTP 503 (gave up after 5 attempts)"),
            other => panic!("{other:?}"),
        }
        let failed = ResponseOutcome::Failed { error: "HTTP 400".into() };
        assert!(matches!(outcome_for(&failed, 1, now, base), DeliveryOutcome::Failed { .. }));
        let ok = ResponseOutcome::Delivered { metadata: Map::new() };
        assert!(matches!(outcome_for(&ok, 1, now, base), DeliveryOutcome::Delivered { at, .. } if at == now));
    }
}
