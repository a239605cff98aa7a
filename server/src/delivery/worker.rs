//! The delivery worker: its own thread and tokio runtime, apart from the
//! shards. It claims due delivery rows in batches (each claim is a lease, so
//! a row claimed when the server died comes back by itself), asks the
//! channel's adapter what delivering means, does it (an HTTP request, or a
//! reply written back into the conversation), and records the outcome fenced
//! by the claim's attempt number, with the retry schedule of the adapters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use converger_storage::{Json, Scope, Status, Store, StoreError, Timestamp};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tracing::{debug, warn};

use super::{DeliveryMetrics, Injector, Settings};
use crate::adapters::{self, ChannelView, Delivery, DeliveryContext, OutboundRequest, ResponseOutcome};
use crate::shard::shutdown::Shutdown;

/// Runs until `shutdown`; deliveries in flight then finish (bounded by the
/// request timeout) and what is unclaimed waits for the next start.
pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    injector: Injector,
    metrics: Arc<DeliveryMetrics>,
    shutdown: Shutdown,
) {
    let http = match reqwest::Client::builder().timeout(settings.request_timeout).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "delivery worker: cannot build its HTTP client; deliveries stay queued");
            return;
        }
    };
    let worker = Worker { store, settings, injector, metrics, http };
    let mut in_flight = FuturesUnordered::new();
    loop {
        if shutdown.is_triggered() {
            break;
        }
        let room = settings.concurrency.saturating_sub(in_flight.len());
        let claimed = if room == 0 {
            Vec::new()
        } else {
            match worker.store.claim_deliveries(Timestamp::now(), room as u32, settings.lease).await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "delivery worker: claim failed");
                    Vec::new()
                }
            }
        };
        let idle = claimed.is_empty();
        for d in claimed {
            in_flight.push(worker.attempt(d));
        }
        // Wait for a delivery to finish, or poll again after a short pause
        // (immediately when the last claim was full and there is room).
        let pause = if idle || room == 0 { settings.poll } else { Duration::ZERO };
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => break,
        }
    }
    while in_flight.next().await.is_some() {}
    debug!("delivery worker stopped");
}

struct Worker {
    store: Arc<dyn Store>,
    settings: Settings,
    injector: Injector,
    metrics: Arc<DeliveryMetrics>,
    http: reqwest::Client,
}

impl Worker {
    /// One attempt of one claimed delivery, recorded.
    async fn attempt(&self, d: converger_storage::Delivery) {
        let started = Instant::now();
        let attempt = d.attempts;
        let (outcome, metadata) = match self.perform(&d).await {
            Ok((outcome, metadata)) => (outcome, metadata),
            Err(e) => (ResponseOutcome::Retry { error: format!("storage: {e}") }, serde_json::Map::new()),
        };
        let recorded =
            adapters::outcome_for(&outcome, attempt.max(0) as u32, Timestamp::now(), self.settings.retry_base);
        let created = d.created_at.as_micros();
        let since_created = Duration::from_micros((Timestamp::now().as_micros() - created).max(0) as u64);
        super::attempted(&self.metrics, &recorded, started.elapsed(), since_created);
        if !metadata.is_empty() {
            let patch = Json::from_value(&Value::Object(metadata));
            if let Err(e) = self.store.merge_delivery_metadata(Scope::Tenant(d.tenant_id), d.id, patch).await {
                warn!(delivery = %d.id, error = %e, "delivery metadata not recorded");
            }
        }
        match self.store.complete_delivery(d.id, attempt, recorded).await {
            Ok(_) => {}
            // Claimed again after our lease ran out: the later claim's outcome stands.
            Err(StoreError::Conflict(why)) => debug!(delivery = %d.id, %why, "outcome dropped"),
            Err(e) => warn!(delivery = %d.id, error = %e, "delivery outcome not recorded; the lease will expire"),
        }
    }

    /// What the attempt came to, and metadata to merge into the delivery.
    async fn perform(
        &self,
        d: &converger_storage::Delivery,
    ) -> Result<(ResponseOutcome, serde_json::Map<String, Value>), StoreError> {
        let scope = Scope::Tenant(d.tenant_id);
        let activity = self.store.get_activity(scope, d.activity_id).await?;
        let channel = self.store.get_channel(scope, d.channel_id).await?;
        if channel.status != Status::Active {
            return Ok((ResponseOutcome::Retry { error: "the channel is inactive".into() }, Default::default()));
        }
        let Some(adapter) = adapters::adapter_for(&channel.kind) else {
            let error = format!("no adapter for channel type `{}`", channel.kind);
            return Ok((ResponseOutcome::Failed { error }, Default::default()));
        };
        let conversation = self.store.get_conversation(scope, activity.conversation_id).await?;
        let config = channel.config.to_value();
        let ctx = DeliveryContext {
            channel: ChannelView::new(&channel, &config),
            activity: &activity,
            external_id: conversation.external_id.as_deref(),
            delivery_id: d.id,
            attempt: d.attempts.max(0) as u32,
            now: Timestamp::now().as_micros() / 1_000_000,
        };
        let delivery = match adapter.deliver_activity(&ctx) {
            Ok(delivery) => delivery,
            Err(e) => return Ok((ResponseOutcome::Failed { error: e.to_string() }, Default::default())),
        };
        Ok(match delivery {
            Delivery::Nothing => (ResponseOutcome::Delivered { metadata: Default::default() }, Default::default()),
            Delivery::Reply(reply) => match self.injector.reply(&activity, channel.id, reply).await {
                Ok(()) => (ResponseOutcome::Delivered { metadata: Default::default() }, Default::default()),
                Err(error) => (ResponseOutcome::Retry { error }, Default::default()),
            },
            Delivery::Http(request) => {
                let outcome = match self.send(request).await {
                    Ok((status, body)) => adapter.interpret_response(status, &body),
                    Err(e) => ResponseOutcome::network(e),
                };
                let metadata = match &outcome {
                    ResponseOutcome::Delivered { metadata } => metadata.clone(),
                    _ => Default::default(),
                };
                (outcome, metadata)
            }
        })
    }

    async fn send(&self, r: OutboundRequest) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut request = self.http.request(method, &r.url).body(r.body);
        for (name, value) in &r.headers {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        // An answer's body only matters for the ids and errors adapters read from it.
        let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok((status, body))
    }
}
