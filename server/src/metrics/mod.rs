//! Metrics: each shard counts into its own [`ShardMetrics`] (relaxed atomics
//! that only that shard writes, so counting never contends), and a scrape of
//! `/metrics` merges every shard's counters into one Prometheus text page.

mod histogram;
mod render;
mod spans;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use histogram::Histogram;

use crate::rt::admission::ConnCaps;
pub use render::{render, render_cluster, render_storage, ClusterFigures};
pub use spans::{trace_spans_dropped, SpanDrop};

/// Upper bounds of the batch-size histogram (activities per commit).
const BATCH_SIZE_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Upper bounds of the latency histograms, in seconds.
const LATENCY_BOUNDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// One shard's counters.
pub struct ShardMetrics {
    /// (route pattern, status) → count. A mutex only this shard locks, except
    /// for the rare scrape.
    requests: Mutex<HashMap<(&'static str, u16), u64>>,
    request_seconds: Histogram,
    activities_committed: AtomicU64,
    /// By [`BatchFailure`].
    batches_failed: [AtomicU64; BatchFailure::ALL.len()],
    publishes_refused: AtomicU64,
    queue_depth: AtomicU64,
    /// Live subscriptions held by the shard (joined topics, binary subscriptions).
    subscriptions: AtomicU64,
    pub(crate) batch_size: Histogram,
    commit_seconds: Histogram,
    /// Limit or cap → refusals (rate limits, connection and subscription caps).
    refusals: Mutex<HashMap<&'static str, u64>>,
    /// Pre-publish hook calls: their time (answered or not), and the
    /// publishes they decided, by [`HookVerdict`].
    hook_seconds: Histogram,
    hook_items: [AtomicU64; HookVerdict::ALL.len()],
    /// Open sockets of this shard, by [`Transport`] (a socket lives on the
    /// shard that accepted it, so only this shard moves its count).
    sockets_open: [AtomicU64; Transport::ALL.len()],
    /// Sockets closed because their send queue overflowed, by [`Transport`].
    send_queue_overflows: [AtomicU64; Transport::ALL.len()],
}

/// What a long-lived connection speaks, for the per-transport counts. A
/// connection that is none of these (yet) is an HTTP one: the node's total
/// less these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `/socket/websocket`: Phoenix Channels JSON.
    Phoenix,
    /// `/socket/binary`: the binary protocol over WebSocket.
    BinaryWs,
    /// The binary port (`--binary-addr`).
    BinaryTcp,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Phoenix, Transport::BinaryWs, Transport::BinaryTcp];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Phoenix => "phoenix",
            Transport::BinaryWs => "binary_ws",
            Transport::BinaryTcp => "binary_tcp",
        }
    }
}

/// One open socket, counted until this drops.
pub struct OpenSocket {
    metrics: Arc<ShardMetrics>,
    transport: Transport,
}

impl OpenSocket {
    /// What the socket's send queue calls when it overflows (the socket is
    /// then closed as a slow consumer).
    pub fn overflow_counter(&self) -> impl Fn() + 'static {
        let (metrics, transport) = (self.metrics.clone(), self.transport);
        move || {
            metrics.send_queue_overflows[transport as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.metrics.sockets_open[self.transport as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why the store refused a whole batch, for `converger_batches_failed_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchFailure {
    /// The storage has no space left (the answer was `storage_full`).
    StorageFull,
    /// The storage could not be reached or failed underneath (`storage_unavailable`).
    StorageUnavailable,
    /// Anything else (a bug, a schema problem).
    Other,
}

impl BatchFailure {
    pub const ALL: [BatchFailure; 3] =
        [BatchFailure::StorageFull, BatchFailure::StorageUnavailable, BatchFailure::Other];

    pub fn label(self) -> &'static str {
        match self {
            BatchFailure::StorageFull => "storage_full",
            BatchFailure::StorageUnavailable => "storage_unavailable",
            BatchFailure::Other => "other",
        }
    }
}

/// What a pre-publish hook made of a publish, for its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookVerdict {
    Accepted,
    Rejected,
    Rewritten,
    /// The hook could not be asked; the publish took its `on_failure`.
    Failed,
}

impl HookVerdict {
    pub const ALL: [HookVerdict; 4] =
        [HookVerdict::Accepted, HookVerdict::Rejected, HookVerdict::Rewritten, HookVerdict::Failed];

    pub fn label(self) -> &'static str {
        match self {
            HookVerdict::Accepted => "accepted",
            HookVerdict::Rejected => "rejected",
            HookVerdict::Rewritten => "rewritten",
            HookVerdict::Failed => "failed",
        }
    }
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            requests: Mutex::new(HashMap::new()),
            request_seconds: Histogram::new(LATENCY_BOUNDS),
            activities_committed: AtomicU64::new(0),
            batches_failed: Default::default(),
            publishes_refused: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
            refusals: Mutex::new(HashMap::new()),
            hook_seconds: Histogram::new(LATENCY_BOUNDS),
            hook_items: Default::default(),
            sockets_open: Default::default(),
            send_queue_overflows: Default::default(),
        }
    }
}

impl ShardMetrics {
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route, status)).or_insert(0) += 1;
        }
        self.request_seconds.observe(elapsed.as_secs_f64());
    }

    /// Something was refused by `limit` (a rate limit or a cap).
    pub fn rate_limited(&self, limit: &'static str) {
        if let Ok(mut map) = self.refusals.lock() {
            *map.entry(limit).or_insert(0) += 1;
        }
    }

    /// A batch's commit ended after `elapsed`: stored, or refused whole (`failed`).
    pub fn batch_committed(&self, size: usize, elapsed: Duration, failed: Option<BatchFailure>) {
        self.batch_size.observe(size as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
        if let Some(reason) = failed {
            self.batches_failed[reason as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn activities_committed(&self, n: usize) {
        self.activities_committed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn publish_refused(&self) {
        self.publishes_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A pre-publish hook call took `elapsed` (answered or not).
    pub fn hook_called(&self, elapsed: Duration) {
        self.hook_seconds.observe(elapsed.as_secs_f64());
    }

    /// A pre-publish hook decided a publish.
    pub fn hook_decided(&self, verdict: HookVerdict) {
        self.hook_items[verdict as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as u64, Ordering::Relaxed);
    }

    /// The shard's live subscriptions, as it counts them.
    pub fn set_subscriptions(&self, count: usize) {
        self.subscriptions.store(count as u64, Ordering::Relaxed);
    }

    /// Counts an open socket of `transport` until the returned guard drops.
    pub fn socket_opened(self: &Arc<Self>, transport: Transport) -> OpenSocket {
        self.sockets_open[transport as usize].fetch_add(1, Ordering::Relaxed);
        OpenSocket { metrics: self.clone(), transport }
    }
}

/// Every shard's metrics, shared by all shards for scraping.
#[derive(Clone)]
pub struct Registry {
    shards: Arc<[Arc<ShardMetrics>]>,
    delivery: Arc<DeliveryMetrics>,
    /// The node's connection caps, whose count is the open connections.
    connections: Option<Arc<ConnCaps>>,
}

/// The delivery worker's counters: attempts by outcome, deliveries held back
/// by their channel's pace, the time an attempt takes, and the time from an
/// activity's creation to its delivery.
pub struct DeliveryMetrics {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    /// Claimed deliveries that waited for their channel's pace, or were
    /// handed back to the queue for it (`delivery::pace`).
    pub throttled: AtomicU64,
    pub attempt_seconds: Histogram,
    pub delivered_after_seconds: Histogram,
    /// When the oldest pending delivery was created (Unix microseconds), as
    /// the worker last read it from the store; 0 when none was pending. The
    /// lag on `/metrics` is its age at the scrape.
    pub oldest_pending_micros: AtomicI64,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            attempt_seconds: Histogram::new(LATENCY_BOUNDS),
            delivered_after_seconds: Histogram::new(LATENCY_BOUNDS),
            oldest_pending_micros: AtomicI64::new(0),
        }
    }
}

impl Registry {
    pub fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1)).map(|_| Arc::new(ShardMetrics::default())).collect(),
            delivery: Arc::new(DeliveryMetrics::default()),
            connections: None,
        }
    }

    /// Reports the node's open connections, as `caps` counts them.
    pub fn counting_connections(mut self, caps: Arc<ConnCaps>) -> Registry {
        self.connections = Some(caps);
        self
    }

    /// Open connections on the node (HTTP, WebSocket, binary), when counted.
    pub fn connections(&self) -> Option<u64> {
        self.connections.as_ref().map(|c| c.open() as u64)
    }

    pub fn delivery(&self) -> Arc<DeliveryMetrics> {
        self.delivery.clone()
    }

    pub fn shard(&self, id: usize) -> Arc<ShardMetrics> {
        self.shards[id % self.shards.len()].clone()
    }

    pub fn shards(&self) -> &[Arc<ShardMetrics>] {
        &self.shards
    }
}
