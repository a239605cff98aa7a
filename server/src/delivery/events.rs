//! The lifecycle events' worker: a sibling of the delivery worker on the same
//! thread and runtime. It claims due events in batches (leases, as
//! deliveries: an event claimed when the server died comes back by itself),
//! sends each to its endpoint signed per Standard Webhooks, and records the
//! outcome fenced by the claim's attempt number, on the deliveries' retry
//! schedule and attempts cap. Endpoints are a tenant's own URLs: the same
//! address guard as deliveries applies (`--delivery-allow-private`).

use std::sync::Arc;
use std::time::Instant;

use converger_storage::{DeliveryOutcome, EventClaim, Store, StoreError, Timestamp, ENDPOINT_DELETED};
use tracing::{debug, info, warn};

use super::{drain, guard, retry, Settings};
use crate::adapters::{lifecycle_events, ResponseOutcome};
use crate::rt::shutdown::Shutdown;

/// Runs until `shutdown`; attempts in flight then finish.
pub async fn run(store: Arc<dyn Store>, settings: Settings, shutdown: Shutdown) {
    let http = match drain::http_client(&settings) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "event worker: cannot build its HTTP client; events stay queued");
            return;
        }
    };
    let sender = Arc::new(Sender { store, settings, http });
    // A share of the deliveries' concurrency: events are fewer.
    let concurrency = (settings.concurrency / 4).max(1);
    info!(concurrency, "event worker started");
    let max = retry::MAX_ATTEMPTS as i32;
    let claim = |free: usize| {
        let store = sender.store.clone();
        async move { store.claim_events(Timestamp::now(), free as u32, settings.lease, max).await }
    };
    let attempt = |claim: EventClaim| {
        let sender = sender.clone();
        async move { sender.attempt(claim).await }
    };
    let wake = drain::Wake { poll: settings.poll, due: None };
    drain::drain("event worker", concurrency, wake, &shutdown, claim, attempt).await;
    debug!("event worker stopped");
}

struct Sender {
    store: Arc<dyn Store>,
    settings: Settings,
    http: reqwest::Client,
}

impl Sender {
    async fn attempt(&self, claim: EventClaim) {
        let started = Instant::now();
        let event = claim.event;
        let outcome = match &claim.endpoint {
            None => ResponseOutcome::Failed { error: ENDPOINT_DELETED.into() },
            Some(endpoint) => self.send(&event, endpoint).await,
        };
        let attempts = event.attempts.max(0) as u32;
        let recorded = retry::outcome_for(&outcome, attempts, Timestamp::now(), self.settings.retry_base);
        if let DeliveryOutcome::Failed { error } = &recorded {
            warn!(event = %event.id, kind = %event.kind, endpoint = %event.endpoint_id, %error, "event failed for good");
        }
        match self.store.complete_event(event.id, event.attempts, recorded).await {
            Ok(_) => {
                debug!(event = %event.id, took_ms = started.elapsed().as_millis() as u64, "event attempt recorded")
            }
            Err(StoreError::Conflict(why)) => debug!(event = %event.id, %why, "event outcome dropped"),
            Err(e) => warn!(event = %event.id, error = %e, "event outcome not recorded; the lease will expire"),
        }
    }

    async fn send(
        &self,
        event: &converger_storage::Event,
        endpoint: &converger_storage::EventEndpoint,
    ) -> ResponseOutcome {
        if let (false, Err(refused)) = (self.settings.allow_private, guard::check_url(&endpoint.url)) {
            return ResponseOutcome::Failed { error: refused.to_string() };
        }
        let now = Timestamp::now().as_micros() / 1_000_000;
        let request = match lifecycle_events::request(event, endpoint, now) {
            Ok(r) => r,
            Err(e) => return ResponseOutcome::Failed { error: e.to_string() },
        };
        let mut builder = self.http.post(&request.url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                lifecycle_events::interpret(status, &body)
            }
            Err(e) => match guard::refusal_in(&e) {
                Some(refused) => ResponseOutcome::Failed { error: refused.to_string() },
                None => ResponseOutcome::network(&e),
            },
        }
    }
}
