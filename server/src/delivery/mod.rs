//! Outbound delivery: the worker that drains the delivery queue (`worker`),
//! apart from the shards on a thread and tokio runtime of its own, paced per
//! channel (`pace`); the fetcher of tenants' JWKS documents (`jwks`) on the
//! same runtime; the lifecycle events' sender (`events`), beside it; and the injector through which it writes replies (the
//! echo adapter's) back into conversations via a shard's normal write path.

mod drain;
pub mod events;
pub mod guard;
pub mod hooks;
pub mod jwks;
mod outcomes;
pub mod pace;
pub mod retry;
pub mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use converger_storage::{Activity, DeliveryOutcome, Id, Store};
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use tracing::warn;

use crate::adapters::Reply;
pub use crate::metrics::DeliveryMetrics;
use crate::rt::doorbell::Doorbell;
use crate::rt::shutdown::Shutdown;
use crate::service::activities::{ActivityInput, Parts};
use crate::service::{Caller, Hub, TenantEpoch};

/// How the worker runs (from the config).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Deliveries attempted at once.
    pub concurrency: usize,
    /// How long a claim holds a row before another claim may take it.
    pub lease: Duration,
    /// The pause between claims when nothing was due.
    pub poll: Duration,
    /// The base of the retry schedule: base × 3^attempt.
    pub retry_base: Duration,
    /// The longest an HTTP delivery may take.
    pub request_timeout: Duration,
    /// Whether deliveries may go to private, loopback and link-local addresses.
    pub allow_private: bool,
    /// Attempts per second per channel, unless its tenant has its own
    /// `deliveries_per_second` (`pace`).
    pub channel_deliveries: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 256,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(20),
            retry_base: retry::DEFAULT_RETRY_BASE,
            request_timeout: Duration::from_secs(10),
            allow_private: false,
            channel_deliveries: crate::config::edge::defaults::CHANNEL_DELIVERIES_PER_SECOND,
        }
    }
}

/// Records one attempt's outcome and duration; for a delivery, the time since
/// the activity was created.
fn attempted(metrics: &DeliveryMetrics, outcome: &DeliveryOutcome, took: Duration, since_created: Duration) {
    let counter = match outcome {
        DeliveryOutcome::Delivered { .. } => &metrics.delivered,
        DeliveryOutcome::Retry { .. } => &metrics.retried,
        DeliveryOutcome::Failed { .. } => &metrics.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    metrics.attempt_seconds.observe(took.as_secs_f64());
    if let DeliveryOutcome::Delivered { .. } = outcome {
        metrics.delivered_after_seconds.observe(since_created.as_secs_f64());
    }
}

/// A reply to write into a conversation, as the channel it came from.
pub struct Injection {
    tenant: Id,
    conversation: Id,
    origin: Id,
    input: ActivityInput,
    done: oneshot::Sender<Result<(), String>>,
}

/// The worker's way into the write path (cloneable, any thread).
#[derive(Clone)]
pub struct Injector {
    tx: mpsc::UnboundedSender<Injection>,
}

/// The shard side of the [`Injector`]. The channel itself has no bound; its
/// bound is the worker's: every attempt injects at most one reply and waits
/// for its answer, and at most `--delivery-concurrency` attempts run at once,
/// so no more than that many injections are ever queued.
pub type Injections = mpsc::UnboundedReceiver<Injection>;

pub fn injector() -> (Injector, Injections) {
    let (tx, rx) = mpsc::unbounded();
    (Injector { tx }, rx)
}

impl Injector {
    /// Writes `reply` into `to`'s conversation as channel `origin` (so it is
    /// not delivered back to that channel), through a shard's write path.
    async fn reply(&self, to: &Activity, origin: Id, reply: Reply) -> Result<(), String> {
        let input = ActivityInput::from_parts(Parts {
            kind: Some(reply.kind),
            text: reply.text,
            attachments: reply.attachments.map(|a| a.to_string()),
            sender: reply.sender,
            metadata: Some(reply.metadata.to_string()),
            idempotency_key: Some(reply.idempotency_key),
            ..Parts::default()
        })
        .map_err(|e| format!("reply: {e}"))?;
        let (done, answer) = oneshot::channel();
        let injection = Injection { tenant: to.tenant_id, conversation: to.conversation_id, origin, input, done };
        self.tx.unbounded_send(injection).map_err(|_| "the server is stopping".to_string())?;
        answer.await.unwrap_or_else(|_| Err("the server is stopping".into()))
    }
}

/// Runs on one shard: writes what the worker injects, until the worker is
/// gone or the shard shuts down (a reply injected after that is answered
/// "stopping" and retried by the worker after the restart).
pub async fn inject_loop(mut rx: Injections, hub: std::rc::Rc<Hub>, shutdown: crate::rt::latch::Latch) {
    loop {
        let next = monoio::select! {
            next = rx.next() => next,
            _ = shutdown.wait() => None,
        };
        let Some(i) = next else { break };
        let caller = Caller::Tenant(i.tenant);
        let result = hub.create_activity_via(caller, i.conversation, i.input, Some(i.origin)).await;
        let _ = i.done.send(result.map(|_| ()).map_err(|e| e.to_string()));
    }
}

/// The worker's thread; stops when `shutdown` triggers. `tenant_epoch` is
/// the shards' own: a tenant change through this node reaches the worker's
/// memory of tenants' limits at once. The JWKS fetcher serves `jwks` on the
/// same runtime, under the same address guard as deliveries.
#[allow(clippy::too_many_arguments)]
pub fn start(
    store: Arc<dyn Store>,
    settings: Settings,
    injector: Injector,
    metrics: Arc<DeliveryMetrics>,
    tenant_epoch: TenantEpoch,
    cluster: Option<Arc<crate::engine::cluster::Status>>,
    jwks: crate::service::jwks::JwksRequests,
    deliveries_due: Doorbell,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("delivery".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                warn!(error = %e, "delivery worker: no runtime; deliveries stay queued");
                return;
            }
        };
        rt.spawn(jwks::serve(jwks, settings.allow_private, shutdown.clone()));
        // Events run beside deliveries; the block_on below waits for both.
        let events = rt.spawn(events::run(store.clone(), settings, shutdown.clone()));
        rt.block_on(async move {
            worker::run(store, settings, injector, metrics, tenant_epoch, cluster, deliveries_due, shutdown).await;
            let _ = events.await;
        });
    })
}
