//! The JWKS fetcher: serves the shards' asks for tenants' key sets
//! (`service::jwks`) on the delivery worker's tokio runtime, so no shard
//! thread ever waits on another server.
//!
//! - **Where**: the delivery guard applies as to webhooks: a URL whose host
//!   is a literal non-public address or a loopback name is refused, names
//!   resolve to public addresses only, redirects are not followed; all
//!   unless `--delivery-allow-private`.
//! - **What**: a `200` whose body (at most [`MAX_BODY`] bytes, within
//!   [`TIMEOUT`]) is a JWKS with a usable key (`auth::jwk`).
//! - **How long**: a set is kept for its `Cache-Control: max-age`, clamped to
//!   [`MIN_TTL`]..=[`MAX_TTL`] ([`DEFAULT_TTL`] without one; `no-cache` and
//!   `no-store` count as the minimum). A fetch that fails is not remembered.
//! - **Unknown kids**: an ask for a kid the kept set lacks refetches the URL,
//!   at most once per [`KID_MISS_INTERVAL`] per URL in this process.
//! - One fetch per URL at a time: asks arriving meanwhile wait for it.
//!
//! Bounds: the memory holds [`CAPACITY`] URLs (stale ones dropped first,
//! else all); the asks' queue is bounded by its sender (`service::jwks::QUEUE`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::guard;
use crate::auth::jwk::{parse_jwks, Jwk};
use crate::rt::shutdown::Shutdown;
use crate::service::jwks::{JwksRequest, JwksRequests, KeySet, Want, KID_MISS_INTERVAL};

pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_BODY: usize = 64 * 1024;
pub const MIN_TTL: Duration = Duration::from_secs(30);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
pub const CAPACITY: usize = 4096;

type Answer = oneshot::Sender<Result<KeySet, String>>;

struct Kept {
    keys: Arc<Vec<Jwk>>,
    fresh_until: Instant,
    /// When the URL was last refetched for a missing kid.
    kid_refetched: Option<Instant>,
}

/// What to do with an ask.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Answer with the kept set.
    Kept,
    /// Fetch (or wait for the fetch in flight).
    Fetch,
}

/// The fetcher's memory: sets by URL, and the fetches in flight.
#[derive(Default)]
struct Memory {
    kept: HashMap<String, Kept>,
    waiting: HashMap<String, Vec<Answer>>,
}

impl Memory {
    fn decide(&mut self, url: &str, want: &Want, now: Instant) -> Decision {
        let Some(k) = self.kept.get_mut(url) else { return Decision::Fetch };
        if now >= k.fresh_until {
            return Decision::Fetch;
        }
        match want {
            Want::Now => Decision::Fetch,
            Want::Fresh => Decision::Kept,
            Want::Kid(kid) if k.keys.iter().any(|j| &j.kid == kid) => Decision::Kept,
            Want::Kid(_) => {
                if k.kid_refetched.is_some_and(|at| now.saturating_duration_since(at) < KID_MISS_INTERVAL) {
                    Decision::Kept
                } else {
                    k.kid_refetched = Some(now);
                    Decision::Fetch
                }
            }
        }
    }

    fn answer(&self, url: &str, now: Instant) -> Option<KeySet> {
        self.kept
            .get(url)
            .map(|k| KeySet { keys: k.keys.clone(), fresh_for: k.fresh_until.saturating_duration_since(now) })
    }

    fn keep(&mut self, url: &str, keys: Vec<Jwk>, ttl: Duration, now: Instant) {
        if self.kept.len() >= CAPACITY && !self.kept.contains_key(url) {
            self.kept.retain(|_, k| now < k.fresh_until);
            if self.kept.len() >= CAPACITY {
                self.kept.clear();
            }
        }
        let kid_refetched = self.kept.get(url).and_then(|k| k.kid_refetched);
        self.kept.insert(url.to_string(), Kept { keys: Arc::new(keys), fresh_until: now + ttl, kid_refetched });
    }
}

/// How long a response may be kept, from its `Cache-Control`.
pub fn ttl(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else { return DEFAULT_TTL };
    let mut ttl = DEFAULT_TTL;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return MIN_TTL;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            if let Ok(secs) = secs.trim_matches('"').parse::<u64>() {
                ttl = Duration::from_secs(secs);
            }
        }
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

/// Serves asks until `shutdown` or until every sender is gone.
pub async fn serve(mut requests: JwksRequests, allow_private: bool, shutdown: Shutdown) {
    let mut builder = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
    }
    let http = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "JWKS fetcher: cannot build its HTTP client; tenant JWKS keys are refused");
            return;
        }
    };
    let memory = Arc::new(Mutex::new(Memory::default()));
    loop {
        let request = tokio::select! {
            r = requests.recv() => r,
            _ = shutdown.wait() => None,
        };
        let Some(JwksRequest { url, want, done }) = request else { break };
        let now = Instant::now();
        let mut m = memory.lock().unwrap_or_else(|p| p.into_inner());
        if m.decide(&url, &want, now) == Decision::Kept {
            if let Some(set) = m.answer(&url, now) {
                let _ = done.send(Ok(set));
                continue;
            }
        }
        let waiters = m.waiting.entry(url.clone()).or_default();
        waiters.push(done);
        if waiters.len() > 1 {
            continue; // a fetch of this URL is in flight and will answer
        }
        drop(m);
        let (http, memory) = (http.clone(), memory.clone());
        tokio::spawn(async move {
            let fetched = fetch(&http, &url, allow_private).await;
            let now = Instant::now();
            let mut m = memory.lock().unwrap_or_else(|p| p.into_inner());
            let answer = match fetched {
                Ok((keys, ttl)) => {
                    debug!(%url, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
                    m.keep(&url, keys, ttl, now);
                    m.answer(&url, now).ok_or_else(|| "not kept".to_string())
                }
                Err(why) => {
                    debug!(%url, %why, "JWKS fetch failed");
                    Err(why)
                }
            };
            for waiter in m.waiting.remove(&url).unwrap_or_default() {
                let _ = waiter.send(answer.clone());
            }
        });
    }
}

/// One fetch: the usable keys and how long to keep them, or why not.
async fn fetch(http: &reqwest::Client, url: &str, allow_private: bool) -> Result<(Vec<Jwk>, Duration), String> {
    if !allow_private {
        guard::check_url(url).map_err(|e| e.to_string())?;
    }
    let response =
        http.get(url).header("accept", "application/json").send().await.map_err(|e| match guard::refusal_in(&e) {
            Some(refused) => refused.to_string(),
            None if e.is_timeout() => format!("no answer within {} s", TIMEOUT.as_secs()),
            None => format!("cannot fetch: {}", without_url(&e)),
        })?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("the server answered {}", response.status()));
    }
    let ttl = ttl(response.headers().get("cache-control").and_then(|v| v.to_str().ok()));
    let body = read_bounded(response).await?;
    let keys = parse_jwks(&body).map_err(|e| e.to_string())?;
    Ok((keys, ttl))
}

/// The body, refused past [`MAX_BODY`] bytes.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("cannot read the body: {}", without_url(&e)))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the key set is larger than {} KiB", MAX_BODY / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwk::PublicKey;

    fn keys(kids: &[&str]) -> Vec<Jwk> {
        kids.iter().map(|k| Jwk { kid: k.to_string(), key: PublicKey::Es256 { point: vec![4; 65] } }).collect()
    }

    #[test]
    fn max_age_sets_the_ttl_within_bounds() {
        assert_eq!(ttl(None), DEFAULT_TTL);
        assert_eq!(ttl(Some("public, max-age=600")), Duration::from_secs(600));
        assert_eq!(ttl(Some("max-age=0")), MIN_TTL);
        assert_eq!(ttl(Some("max-age=99999999")), MAX_TTL);
        assert_eq!(ttl(Some("no-store")), MIN_TTL);
        assert_eq!(ttl(Some("MAX-AGE=120, must-revalidate")), Duration::from_secs(120));
        assert_eq!(ttl(Some("max-age=junk")), DEFAULT_TTL);
    }

    #[test]
    fn a_kept_set_answers_until_stale_and_unknown_kids_refetch_at_most_once_per_interval() {
        let (mut m, t0) = (Memory::default(), Instant::now());
        assert_eq!(m.decide("u", &Want::Fresh, t0), Decision::Fetch, "nothing kept");
        m.keep("u", keys(&["a"]), Duration::from_secs(300), t0);
        assert_eq!(m.decide("u", &Want::Fresh, t0), Decision::Kept);
        assert_eq!(m.decide("u", &Want::Kid("a".into()), t0), Decision::Kept);
        assert_eq!(m.decide("u", &Want::Now, t0), Decision::Fetch, "registering fetches now");
        // A rotated key: the first miss refetches, the next ones within the interval do not.
        assert_eq!(m.decide("u", &Want::Kid("b".into()), t0), Decision::Fetch);
        m.keep("u", keys(&["a", "b"]), Duration::from_secs(300), t0);
        assert_eq!(m.decide("u", &Want::Kid("b".into()), t0), Decision::Kept);
        for bogus in ["x", "y", "z"] {
            assert_eq!(m.decide("u", &Want::Kid(bogus.into()), t0 + Duration::from_secs(1)), Decision::Kept, "{bogus}");
        }
        assert_eq!(m.decide("u", &Want::Kid("c".into()), t0 + KID_MISS_INTERVAL), Decision::Fetch);
        // Stale: fetched again whatever is asked.
        assert_eq!(m.decide("u", &Want::Kid("a".into()), t0 + Duration::from_secs(300)), Decision::Fetch);
        let set = m.answer("u", t0 + Duration::from_secs(100)).expect("kept");
        assert_eq!(set.fresh_for, Duration::from_secs(200));
    }
}
