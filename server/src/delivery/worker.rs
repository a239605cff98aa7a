//! The delivery worker: its own thread and tokio runtime, apart from the
//! shards. It claims due delivery rows in batches (each claim is a lease, so
//! a row claimed when the server died comes back by itself), asks the
//! channel's adapter what delivering means, does it (an HTTP request, or a
//! reply written back into the conversation), and records the outcome fenced
//! by the claim's attempt number, with the retry schedule of the adapters.
//! Before an attempt, the delivery waits for its channel's turn (`pace`).
//!
//! A delete cancels the pending deliveries of its message and the message's
//! edits in the write that erases them. A claim taken before that write still
//! runs: it reads the activity again, finds it erased and sends nothing; an
//! attempt already sending when the delete commits finds its outcome refused
//! (the row is no longer pending) and says so once, at info.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;

use converger_storage::{
    kinds, Activity, Channel, DeliveryFilter, DeliveryOutcome, DeliveryStatus, Id, PageRequest, Scope, Status, Store,
    StoreError, TenantLimits, Timestamp,
};
use futures_util::FutureExt;
use tracing::{debug, info, warn};

use super::outcomes::Outcomes;
use super::pace::{Pace, Turn};
use super::{guard, retry, DeliveryMetrics, Injector, Settings};
use crate::adapters::{
    self, ChannelView, Delivery, DeliveryContext, OutboundRequest, Related, ResponseOutcome, PROVIDER_MESSAGE_ID,
};
use crate::engine::cluster::Status as ClusterStatus;
use crate::rt::doorbell::Doorbell;
use crate::rt::rate::split;
use crate::rt::shutdown::Shutdown;
use crate::service::channels::channels_epoch;
use crate::service::limits_cache::LimitsCache;
use crate::service::TenantEpoch;
use crate::trace::{self, Span, SpanContext};

/// Runs until `shutdown`; deliveries in flight then finish (bounded by the
/// request timeout) and what is unclaimed waits for the next start.
///
/// Each attempt is a task of its own, claimed in batches (`drain`): at once
/// when `deliveries_due` rings, else every poll.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    injector: Injector,
    metrics: Arc<DeliveryMetrics>,
    tenant_epoch: TenantEpoch,
    cluster: Option<Arc<ClusterStatus>>,
    deliveries_due: Doorbell,
    shutdown: Shutdown,
) {
    let http = match super::drain::http_client(&settings) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "delivery worker: cannot build its HTTP client; deliveries stay queued");
            return;
        }
    };
    let worker = Arc::new(Worker {
        store: store.clone(),
        settings,
        injector,
        metrics,
        http,
        channels: Mutex::new(HashMap::new()),
        recipients: Mutex::new(HashMap::new()),
        pace: Pace::default(),
        tenant_epoch,
        limits: Mutex::new(LimitsCache::default()),
        outcomes: Outcomes::start(store.clone()),
        cluster,
        shutdown: shutdown.clone(),
    });
    info!(
        concurrency = settings.concurrency,
        lease_ms = settings.lease.as_millis() as u64,
        retry_base_ms = settings.retry_base.as_millis() as u64,
        channel_deliveries_per_second = settings.channel_deliveries,
        "delivery worker started"
    );
    tokio::spawn(watch_oldest_pending(worker.store.clone(), worker.metrics.clone(), shutdown.clone()));
    let max = retry::MAX_ATTEMPTS as i32;
    let claim = |free: usize| {
        let store = worker.store.clone();
        async move {
            // No later than the lease's start (the store's clock, read below).
            let claimed_at = Instant::now();
            let rows = store.claim_deliveries(Timestamp::now(), free as u32, settings.lease, max).await?;
            Ok(rows.into_iter().map(|d| (d, claimed_at)).collect())
        }
    };
    // A delivery waiting for its channel's turn holds its slot: the wait is
    // bounded by half the lease, and so are the rows claimed.
    let attempt = |(d, claimed_at)| {
        let worker = worker.clone();
        async move { worker.paced_attempt(d, claimed_at).await }
    };
    let wake = super::drain::Wake { poll: settings.poll, due: Some(deliveries_due) };
    super::drain::drain("delivery worker", settings.concurrency, wake, &shutdown, claim, attempt).await;
    debug!("delivery worker stopped");
}

/// How often the worker reads the oldest pending delivery for the lag gauge.
const LAG_READ_EVERY: Duration = Duration::from_secs(5);

/// Keeps `converger_delivery_lag_seconds` true: every [`LAG_READ_EVERY`],
/// one read of the oldest pending delivery (the first pending row by id, an
/// index read of one row; ids are time-ordered), whatever the traffic. A
/// failed read leaves the last value, so the lag grows while storage is
/// away.
async fn watch_oldest_pending(store: Arc<dyn Store>, metrics: Arc<DeliveryMetrics>, shutdown: Shutdown) {
    let pending = DeliveryFilter { status: Some(DeliveryStatus::Pending), ..DeliveryFilter::default() };
    loop {
        let first = store.list_deliveries(Scope::Admin, pending, PageRequest { after: None, limit: 1 }).await;
        match first {
            Ok(page) => {
                let oldest = page.items.first().map_or(0, |d| d.created_at.as_micros());
                metrics.oldest_pending_micros.store(oldest, Ordering::Relaxed);
            }
            Err(e) => debug!(error = %e, "delivery worker: cannot read the oldest pending delivery"),
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_READ_EVERY) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// The outcome of a request that got no HTTP answer. The guard's refusal of
/// the destination (a name without a public address) reaches us wrapped in
/// the HTTP client's connect error: it is permanent, as a literal private IP
/// is, while anything else (refused connection, timeout, DNS failure) may
/// pass on a later attempt.
fn send_failure(e: &reqwest::Error) -> ResponseOutcome {
    match guard::refusal_in(e) {
        Some(refused) => ResponseOutcome::Failed { error: refused.to_string() },
        None => ResponseOutcome::network(e),
    }
}

/// How long a channel read by the worker is used before it is read again.
const CHANNEL_TTL: Duration = Duration::from_secs(1);
/// Channels and conversations remembered; past this the memory starts over.
const MAX_REMEMBERED: usize = 10_000;

/// A channel as read, when, and under which [`channels_epoch`].
type Remembered = (Arc<Channel>, Instant, u64);

struct Worker {
    store: Arc<dyn Store>,
    settings: Settings,
    injector: Injector,
    metrics: Arc<DeliveryMetrics>,
    http: reqwest::Client,
    channels: Mutex<HashMap<Id, Remembered>>,
    recipients: Mutex<HashMap<Id, Option<String>>>,
    /// Each channel's turns.
    pace: Pace,
    /// The shards' epoch: tenants' limits changed through this node are read again.
    tenant_epoch: TenantEpoch,
    limits: Mutex<LimitsCache>,
    outcomes: Outcomes,
    /// In a cluster: how many nodes share each channel's pace.
    cluster: Option<Arc<ClusterStatus>>,
    shutdown: Shutdown,
}

impl Worker {
    /// One claimed delivery, once its channel's turn has come (`pace`).
    /// Waiting is not an attempt, and never fails the delivery. The claim is
    /// a lease, though: an attempt started late in it could still be running
    /// when the lease ends and another claim takes the row (its outcome
    /// would then come too late to count, and the message go out twice). So
    /// a delivery waits only while half its lease is left for the attempt;
    /// one whose turn is further off — or that is still waiting when the
    /// server stops — is handed back unattempted, due at its turn, and is
    /// claimed again then.
    async fn paced_attempt(&self, d: converger_storage::Delivery, claimed_at: Instant) {
        // Every node's worker sends for every channel: each keeps its share.
        let nodes = self.cluster.as_ref().map_or(1, |c| c.other_nodes() + 1);
        let per_second = split(self.deliveries_per_second(d.tenant_id).await.max(1), nodes);
        let lease = self.settings.lease;
        let wait = match self.pace.turn(d.channel_id, per_second, Instant::now(), claimed_at, lease) {
            Turn::Now => Duration::ZERO,
            Turn::After(wait) => wait,
            Turn::Later(due_in) => {
                self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
                return self.hand_back(&d, due_in).await;
            }
        };
        if !wait.is_zero() {
            self.metrics.throttled.fetch_add(1, Ordering::Relaxed);
            let turn = Instant::now() + wait;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shutdown.wait() => {
                    return self.hand_back(&d, turn.saturating_duration_since(Instant::now())).await;
                }
            }
        }
        self.attempt(d).await;
    }

    /// Gives the claim back with its attempt uncounted, due `after` from now.
    async fn hand_back(&self, d: &converger_storage::Delivery, after: Duration) {
        let due = Timestamp::now().plus(after);
        match self.store.release_delivery(d.id, d.attempts, due).await {
            Ok(_) => {
                debug!(delivery = %d.id, channel = %d.channel_id, due_in_ms = after.as_millis() as u64, "paced: handed back")
            }
            Err(StoreError::Conflict(why)) => debug!(delivery = %d.id, %why, "hand-back dropped"),
            // The lease runs out by itself; that claim then counts as an attempt.
            Err(e) => warn!(delivery = %d.id, error = %e, "paced delivery not handed back; its lease will expire"),
        }
    }

    /// The tenant's own deliveries per second per channel, else the server's.
    /// A tenant that cannot be read is paced at the server's for this attempt.
    async fn deliveries_per_second(&self, tenant: Id) -> u32 {
        // Read before the lookup: a change racing it leaves the entry already old.
        let epoch = self.tenant_epoch.current();
        let remembered = self.limits.lock().ok().and_then(|c| c.get(tenant, epoch, Instant::now()));
        let limits = match remembered {
            Some(limits) => limits,
            None => match self.store.get_tenant(tenant).await {
                Ok(t) => {
                    if let Ok(mut c) = self.limits.lock() {
                        c.remember(tenant, t.limits, epoch, Instant::now());
                    }
                    t.limits
                }
                Err(e) => {
                    debug!(%tenant, error = %e, "tenant limits unreadable; the server's pace applies");
                    TenantLimits::default()
                }
            },
        };
        limits.deliveries_per_second.unwrap_or(self.settings.channel_deliveries)
    }

    /// One attempt of one claimed delivery, recorded.
    ///
    /// With traces on, the attempt is a CLIENT span: a child of the request
    /// that wrote the activity when that write was traced (its `traceparent`
    /// is in the delivery's metadata), else the first span of a trace of its
    /// own. An HTTP delivery carries it as its `traceparent` header.
    async fn attempt(&self, d: converger_storage::Delivery) {
        let started = Instant::now();
        let attempt = d.attempts;
        let mut span = if trace::enabled() { attempt_span(&d) } else { None };
        // A bug in an adapter must not leave the delivery without an outcome:
        // the attempt counts, with the panic as its error.
        let outcome = match AssertUnwindSafe(self.perform(&d, &mut span)).catch_unwind().await {
            Ok(Ok(Some(outcome))) => outcome,
            Ok(Ok(None)) => return self.cancelled_before_sending(&d).await,
            Ok(Err(e)) => ResponseOutcome::Retry { error: format!("storage: {e}") },
            Err(_) => {
                warn!(delivery = %d.id, channel = %d.channel_id, attempt, "delivery attempt panicked");
                ResponseOutcome::Retry { error: "internal error during the attempt".into() }
            }
        };
        let recorded = retry::outcome_for(&outcome, attempt.max(0) as u32, Timestamp::now(), self.settings.retry_base);
        let created = d.created_at.as_micros();
        let since_created = Duration::from_micros((Timestamp::now().as_micros() - created).max(0) as u64);
        super::attempted(&self.metrics, &recorded, started.elapsed(), since_created);
        if let DeliveryOutcome::Failed { error } = &recorded {
            warn!(delivery = %d.id, channel = %d.channel_id, attempt, %error, "delivery failed for good");
        }
        if let Some(span) = &mut span {
            let (outcome, error) = match &recorded {
                DeliveryOutcome::Delivered { .. } => ("delivered", None),
                DeliveryOutcome::Retry { error, .. } => ("retry", Some(error)),
                DeliveryOutcome::Failed { error } => ("failed", Some(error)),
            };
            span.attr("converger.delivery.outcome", outcome);
            if let Some(error) = error {
                span.error(error.clone());
            }
        }
        // The provider's answer (its message id …) is recorded with the outcome, in one write.
        match self.outcomes.record(d.id, attempt, recorded).await {
            Ok(_) => {}
            Err(StoreError::Conflict(why)) => self.outcome_dropped(&d, &why).await,
            Err(e) => warn!(delivery = %d.id, error = %e, "delivery outcome not recorded; the lease will expire"),
        }
    }

    /// A claimed delivery whose activity a delete erased: nothing is sent.
    /// The delete cancelled the delivery in its own write, so recording the
    /// cancellation again is normally refused as stale; it takes only when
    /// the row was put back in the queue since (an admin's retry of a
    /// cancelled delivery), which must not come back after every lease.
    async fn cancelled_before_sending(&self, d: &converger_storage::Delivery) {
        let cancelled = DeliveryOutcome::Failed { error: converger_storage::CANCELLED_BY_DELETE.into() };
        match self.outcomes.record(d.id, d.attempts, cancelled).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {
                info!(delivery = %d.id, activity = %d.activity_id, "delivery cancelled by a delete: nothing sent")
            }
            Err(e) => warn!(delivery = %d.id, error = %e, "cancelled delivery not recorded; the lease will expire"),
        }
    }

    /// An outcome the store refused as stale. Either a later claim took the
    /// row after our lease ran out (its outcome stands), or a delete
    /// cancelled the delivery while the attempt was in flight: the request
    /// may have reached the receiver with the content as it was before the
    /// delete, and the delivery stays `failed` as cancelled. Either is
    /// expected, once per delivery: not an error.
    async fn outcome_dropped(&self, d: &converger_storage::Delivery, why: &str) {
        let cancelled = match self.store.get_delivery(Scope::Tenant(d.tenant_id), d.id).await {
            Ok(now) => now.last_error.as_deref() == Some(converger_storage::CANCELLED_BY_DELETE),
            Err(_) => false,
        };
        if cancelled {
            info!(delivery = %d.id, activity = %d.activity_id,
                "delivery cancelled by a delete while its attempt was in flight; the attempt's outcome is not recorded");
        } else {
            debug!(delivery = %d.id, %why, "outcome dropped");
        }
    }

    /// What the attempt came to; `None` when the activity's content was
    /// erased by a delete (the delete cancelled this delivery in the same
    /// write): nothing is sent, and nothing is left to record.
    async fn perform(
        &self,
        d: &converger_storage::Delivery,
        span: &mut Option<Span>,
    ) -> Result<Option<ResponseOutcome>, StoreError> {
        let scope = Scope::Tenant(d.tenant_id);
        let activity = self.store.get_activity(scope, d.activity_id).await?;
        if self.erased(scope, &activity).await? {
            return Ok(None);
        }
        let channel = self.channel(scope, d.channel_id).await?;
        if channel.status != Status::Active {
            return Ok(Some(ResponseOutcome::Retry { error: "the channel is inactive".into() }));
        }
        if let Some(span) = span {
            span.attr("converger.channel.type", channel.kind.clone());
        }
        let Some(adapter) = adapters::adapter_for(&channel.kind) else {
            let error = format!("no adapter for channel type `{}`", channel.kind);
            return Ok(Some(ResponseOutcome::Failed { error }));
        };
        let external_id = self.external_id(scope, activity.conversation_id).await?;
        let related = match activity.target_id.or(activity.parent_id) {
            Some(other) if adapter.needs_related() => self.related(scope, &channel, other).await?,
            _ => Related::None,
        };
        let config = channel.config.to_value();
        let ctx = DeliveryContext {
            channel: ChannelView::new(&channel, &config),
            activity: &activity,
            external_id: external_id.as_deref(),
            delivery_id: d.id,
            attempt: d.attempts.max(0) as u32,
            now: Timestamp::now().as_micros() / 1_000_000,
            related: &related,
        };
        let delivery = match adapter.deliver_activity(&ctx) {
            Ok(delivery) => delivery,
            Err(e) => return Ok(Some(ResponseOutcome::Failed { error: e.to_string() })),
        };
        Ok(Some(match delivery {
            Delivery::Nothing => ResponseOutcome::Delivered { metadata: Default::default() },
            Delivery::NotYet(error) => ResponseOutcome::Retry { error },
            Delivery::Reply(reply) => match self.injector.reply(&activity, channel.id, reply).await {
                Ok(()) => ResponseOutcome::Delivered { metadata: Default::default() },
                Err(error) => ResponseOutcome::Retry { error },
            },
            Delivery::Http(request) => {
                if let (false, Err(refused)) = (self.settings.allow_private, guard::check_url(&request.url)) {
                    return Ok(Some(ResponseOutcome::Failed { error: refused.to_string() }));
                }
                match self.send(request, span.as_ref().map(Span::context)).await {
                    Ok((status, body)) => {
                        if let Some(span) = span {
                            span.attr("http.response.status_code", status);
                        }
                        adapter.interpret_response(status, &body)
                    }
                    Err(e) => send_failure(&e),
                }
            }
        }))
    }

    /// Whether a delete erased what this activity would send: a deleted
    /// message, or an edit of one (the delete erased the edits' content too).
    /// The claim may predate the delete, which cancelled the delivery after
    /// the claim read it as pending; what is read now is the truth.
    async fn erased(&self, scope: Scope, activity: &Activity) -> Result<bool, StoreError> {
        match (activity.kind.as_str(), activity.target_id) {
            (kinds::MESSAGE, _) => Ok(activity.is_deleted()),
            (kinds::EDIT, Some(target)) => match self.store.get_activity(scope, target).await {
                Ok(t) => Ok(t.is_deleted()),
                Err(StoreError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            },
            _ => Ok(false),
        }
    }

    /// The provider's side of message `id` on `channel` ([`Related`]): the id
    /// it came in with through this channel, else the one its delivery here
    /// recorded; `Pending` while that delivery is still being tried.
    async fn related(&self, scope: Scope, channel: &Channel, id: Id) -> Result<Related, StoreError> {
        let other = match self.store.get_activity(scope, id).await {
            Ok(a) => a,
            Err(StoreError::NotFound(_)) => return Ok(Related::Missing),
            Err(e) => return Err(e),
        };
        if let Some(message_id) = adapters::inbound_message_id(&other) {
            let came_here = other.metadata.to_value()["inbound"]["channel_type"] == channel.kind.as_str();
            return Ok(if came_here { Related::Sent(message_id) } else { Related::Missing });
        }
        let filter = DeliveryFilter { activity_id: Some(id), channel_id: Some(channel.id), status: None };
        let deliveries = self.store.list_deliveries(scope, filter, PageRequest::first(10)).await?.items;
        let sent =
            deliveries.iter().find_map(|d| d.metadata.to_value()[PROVIDER_MESSAGE_ID].as_str().map(str::to_string));
        Ok(match sent {
            Some(provider_id) => Related::Sent(provider_id),
            None if deliveries.iter().any(|d| d.status == DeliveryStatus::Pending) => Related::Pending,
            None => Related::Missing,
        })
    }

    /// The channel, read again after any channel change made through this
    /// process, and at least every [`CHANNEL_TTL`] (changes made through
    /// another node).
    async fn channel(&self, scope: Scope, id: Id) -> Result<Arc<Channel>, StoreError> {
        let epoch = channels_epoch();
        if let Some((c, at, seen)) = self.channels.lock().ok().and_then(|m| m.get(&id).cloned()) {
            if seen == epoch && at.elapsed() < CHANNEL_TTL {
                return Ok(c);
            }
        }
        let c = Arc::new(self.store.get_channel(scope, id).await?);
        if let Ok(mut m) = self.channels.lock() {
            if m.len() >= MAX_REMEMBERED {
                m.clear();
            }
            m.insert(id, (c.clone(), Instant::now(), epoch));
        }
        Ok(c)
    }

    /// A conversation's external_id (the recipient); it never changes.
    async fn external_id(&self, scope: Scope, conversation: Id) -> Result<Option<String>, StoreError> {
        if let Some(known) = self.recipients.lock().ok().and_then(|m| m.get(&conversation).cloned()) {
            return Ok(known);
        }
        let external_id = self.store.get_conversation(scope, conversation).await?.external_id;
        if let Ok(mut m) = self.recipients.lock() {
            if m.len() >= MAX_REMEMBERED {
                m.clear();
            }
            m.insert(conversation, external_id.clone());
        }
        Ok(external_id)
    }

    /// Sends an adapter's request; `trace` (the attempt's span, traces on)
    /// goes with it as `traceparent`, replacing any the adapter set.
    async fn send(&self, r: OutboundRequest, trace: Option<SpanContext>) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut request = self.http.request(method, &r.url).body(r.body);
        for (name, value) in &r.headers {
            if trace.is_none() || !name.eq_ignore_ascii_case("traceparent") {
                request = request.header(name, value);
            }
        }
        if let Some(trace) = trace {
            request = request.header("traceparent", trace.traceparent());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        // An answer's body only matters for the ids and errors adapters read from it.
        let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok((status, body))
    }
}

/// The span of one attempt: in the trace of the write that made the
/// delivery, when it was traced.
fn attempt_span(d: &converger_storage::Delivery) -> Option<Span> {
    let metadata = d.metadata.to_value();
    let parent = metadata.get("traceparent").and_then(|t| t.as_str()).and_then(SpanContext::parse_str);
    let mut span = trace::span("delivery attempt", trace::Kind::Client, parent)?;
    span.attr("converger.delivery.id", d.id.to_string());
    span.attr("converger.delivery.attempt", i64::from(d.attempts));
    span.attr("converger.channel.id", d.channel_id.to_string());
    Some(span)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A request through the guarded client (as the worker builds it without
    /// `--delivery-allow-private`), skipping the worker's URL check so the
    /// resolver is what refuses.
    async fn guarded_send(url: &str) -> reqwest::Error {
        let http = reqwest::Client::builder().dns_resolver(Arc::new(guard::PublicOnly)).build().expect("client");
        http.post(url).send().await.expect_err("the guard refuses before connecting")
    }

    #[tokio::test]
    async fn a_destination_refused_by_the_resolver_is_a_permanent_failure() {
        for url in ["http://localhost:1/x", "http://localhost.:1/x", "http://api.localhost:1/x"] {
            match send_failure(&guarded_send(url).await) {
                ResponseOutcome::Failed { error } => assert!(error.contains("loopback name"), "{url}: {error}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_connection_failure_is_retried() {
        // Nothing listens on port 1 of loopback; the unguarded client connects and is refused.
        let e = reqwest::Client::new().post("http://127.0.0.1:1/x").send().await.expect_err("refused");
        assert!(matches!(send_failure(&e), ResponseOutcome::Retry { .. }), "{e}");
    }
}
