//! The shards' side of tenants' JWKS documents: a [`JwksClient`] that asks
//! the fetcher (`delivery::jwks`, on the delivery worker's runtime: a shard
//! never waits on the network itself) for a URL's keys, and each shard's
//! [`JwksMemory`] of what it was given, so a token is verified without a
//! round trip while its key set is fresh.
//!
//! Freshness is the document's: the fetcher keeps a set for its
//! `Cache-Control: max-age` (clamped, see `delivery::jwks`) and says how long
//! the copy it hands out stays fresh. A token naming a `kid` the set lacks
//! (the tenant rotated its keys) asks for a refetch; such asks are
//! rate-limited here per shard and per URL ([`KID_MISS_INTERVAL`]), and the
//! fetcher limits them again per process, so a flood of made-up kids costs
//! the tenant's server one request per interval at most.
//!
//! Bounds: the request queue holds [`QUEUE`] asks (a full queue answers
//! "unavailable" at once, the token is refused and may be retried); the
//! memory holds [`CAPACITY`] URLs and is cleared when full.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::auth::jwk::Jwk;

/// Asks waiting for the fetcher at most.
pub const QUEUE: usize = 256;
/// URLs a shard remembers at most.
pub const CAPACITY: usize = 1024;
/// The least time between two refetches of one URL for an unknown `kid`.
pub const KID_MISS_INTERVAL: Duration = Duration::from_secs(10);

/// What an ask wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// A fresh copy of the set (fetched now if the fetcher has none).
    Fresh,
    /// A copy holding this `kid`: refetched if the fetcher's lacks it and
    /// the URL was not refetched for a missing kid within [`KID_MISS_INTERVAL`].
    Kid(String),
    /// A copy fetched now, whatever is remembered (registering a URL).
    Now,
}

/// A key set as the fetcher hands it out.
#[derive(Clone, Debug)]
pub struct KeySet {
    pub keys: Arc<Vec<Jwk>>,
    /// How long this copy stays fresh from when it was handed out.
    pub fresh_for: Duration,
}

impl KeySet {
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// One ask, answered on `done` with the set or why there is none.
pub struct JwksRequest {
    pub url: String,
    pub want: Want,
    pub done: oneshot::Sender<Result<KeySet, String>>,
}

/// The fetcher's receiving end.
pub type JwksRequests = mpsc::Receiver<JwksRequest>;

/// A handle to the fetcher; cloned into every shard.
#[derive(Clone)]
pub struct JwksClient {
    tx: mpsc::Sender<JwksRequest>,
}

/// A client and the receiving end the fetcher serves.
pub fn channel() -> (JwksClient, JwksRequests) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (JwksClient { tx }, rx)
}

impl JwksClient {
    /// The key set at `url`, as `want` says.
    pub async fn get(&self, url: &str, want: Want) -> Result<KeySet, String> {
        let (done, answer) = oneshot::channel();
        let request = JwksRequest { url: url.to_string(), want, done };
        self.tx.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "too many key sets are being fetched; retry shortly".to_string(),
            mpsc::error::TrySendError::Closed(_) => "the key fetcher is not running".to_string(),
        })?;
        answer.await.unwrap_or_else(|_| Err("the key fetcher stopped".into()))
    }
}

struct Remembered {
    set: KeySet,
    fresh_until: Instant,
    /// When this shard last asked for a refetch for a missing kid.
    kid_miss_asked: Option<Instant>,
}

/// One shard's memory of key sets, by URL.
#[derive(Default)]
pub struct JwksMemory {
    sets: RefCell<HashMap<String, Remembered>>,
}

impl JwksMemory {
    /// The remembered set of `url`, if still fresh at `now`.
    pub fn fresh(&self, url: &str, now: Instant) -> Option<KeySet> {
        self.sets.borrow().get(url).filter(|r| now < r.fresh_until).map(|r| r.set.clone())
    }

    /// Remembers `set`, handed out at `now`.
    pub fn remember(&self, url: &str, set: KeySet, now: Instant) {
        let mut sets = self.sets.borrow_mut();
        if sets.len() >= CAPACITY && !sets.contains_key(url) {
            sets.retain(|_, r| now < r.fresh_until);
            if sets.len() >= CAPACITY {
                sets.clear();
            }
        }
        let kid_miss_asked = sets.get(url).and_then(|r| r.kid_miss_asked);
        let fresh_until = now + set.fresh_for;
        sets.insert(url.to_string(), Remembered { set, fresh_until, kid_miss_asked });
    }

    /// Whether this shard may ask for a refetch of `url` for a missing kid
    /// at `now`; if so, the ask is recorded.
    pub fn may_ask_for_kid(&self, url: &str, now: Instant) -> bool {
        let mut sets = self.sets.borrow_mut();
        let Some(r) = sets.get_mut(url) else { return true };
        if r.kid_miss_asked.is_some_and(|at| now.saturating_duration_since(at) < KID_MISS_INTERVAL) {
            return false;
        }
        r.kid_miss_asked = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(fresh: u64) -> KeySet {
        KeySet { keys: Arc::new(Vec::new()), fresh_for: Duration::from_secs(fresh) }
    }

    #[test]
    fn a_set_is_fresh_for_as_long_as_the_fetcher_said() {
        let (m, t0) = (JwksMemory::default(), Instant::now());
        m.remember("u", set(60), t0);
        assert!(m.fresh("u", t0 + Duration::from_secs(59)).is_some());
        assert!(m.fresh("u", t0 + Duration::from_secs(60)).is_none());
        assert!(m.fresh("other", t0).is_none());
    }

    #[test]
    fn kid_misses_ask_at_most_once_per_interval() {
        let (m, t0) = (JwksMemory::default(), Instant::now());
        m.remember("u", set(600), t0);
        assert!(m.may_ask_for_kid("u", t0));
        assert!(!m.may_ask_for_kid("u", t0 + Duration::from_secs(1)));
        // A refetched set keeps the record of the last ask.
        m.remember("u", set(600), t0 + Duration::from_secs(2));
        assert!(!m.may_ask_for_kid("u", t0 + KID_MISS_INTERVAL - Duration::from_millis(1)));
        assert!(m.may_ask_for_kid("u", t0 + KID_MISS_INTERVAL));
    }
}
