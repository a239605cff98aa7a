//! The engine: the write path and the live stream of one shard, knowing no
//! transport. Sessions and the service layer call an [`Engine`]; what it
//! sends to other shards are [`mesh::MeshMsg`]s built from its own types.
//!
//! Where the write path lives, in order:
//! - [`publish`]: a validated activity becomes a [`publish::PublishRequest`]
//!   and goes to its conversation's owner shard;
//! - [`route`]: `owner_of` and the one function that sends a message to a
//!   shard, or handles it here when this shard is the one;
//! - [`owner`]: the owner's state (sequencer queue, group commit, the shards
//!   following each conversation, presence) and the commit loop, which
//!   answers each publisher after the commit and then fans the batch out;
//! - [`live`]: this shard's subscriptions, catch-up from storage and the
//!   delivery of committed batches and ephemeral events to local sinks;
//! - [`cluster`]: with several nodes, what crosses them over NATS (committed
//!   batches, typing, presence, invalidations) and how a shard takes part.
//!
//! Every message, whether it crossed the mesh or was meant for this very
//! shard, is handled by one function, [`Engine::handle`].

pub mod cluster;
pub mod disconnect;
pub mod event_types;
pub mod hook;
pub mod live;
pub mod mesh;
pub mod owner;
pub mod presence;
pub mod publish;
pub mod route;
pub mod users;

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use converger_storage::{Activity, Store};

use crate::metrics::ShardMetrics;
use crate::rt::latch::Latch;
use live::Live;
use mesh::{Inbox, MeshMsg, Outbox};
use owner::Owner;

pub use disconnect::{Cause, Disconnect};
pub use live::{Ephemeral, LocalEvent, PendingSubscriptions, SharedBatch, Signal, Sink, SubscribeError, Subscription};
pub use presence::{Meta, PresenceDiff, PresenceState};
pub use publish::{PublishError, PublishRequest, Publisher, Submitted};
pub use route::owner_of;

/// One shard's engine: its end of the mesh, the owner state of the
/// conversations it owns, and its local subscriptions.
pub struct Engine {
    store: Arc<dyn Store>,
    outbox: Outbox,
    owner: Owner,
    live: Live,
    /// Set when this node is one of a cluster.
    cluster: Option<cluster::Membership>,
    /// The node's users (shared by every shard and the bus; see [`users`]).
    users: Arc<users::Users>,
    /// Publishes waiting for their pre-publish hook (see [`hook`]).
    hooks: hook::HookStage,
    /// Who calls the hooks; unset, hooks are not called (tests of the layers below).
    hook_caller: std::cell::OnceCell<Rc<dyn hook::HookCaller>>,
    /// Presence changes of this owner's conversations since the last tick
    /// (see [`PRESENCE_TICK`]).
    presence_pending: std::cell::RefCell<std::collections::HashMap<converger_storage::Id, PresenceTick>>,
}

/// One conversation's presence changes within a tick: one merged diff for
/// everyone, and the joiners waiting for the state.
#[derive(Default)]
struct PresenceTick {
    diff: PresenceDiff,
    joiners: Vec<futures_channel::oneshot::Sender<bytes::Bytes>>,
}

/// How often an owner broadcasts its conversations' presence changes: every
/// join and leave within a tick go out as one `presence_diff`, so a thousand
/// members joining a room cost each member a few diffs, not a thousand (as
/// Phoenix.Tracker batches its deltas). A tick is short beside what a person
/// notices. The joiners of a tick get the state as it is at the tick, encoded
/// once for all of them (a large room's state is the big part of a join).
pub const PRESENCE_TICK: std::time::Duration = std::time::Duration::from_millis(50);

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<ShardMetrics>,
        outbox: Outbox,
        cluster: Option<cluster::ClusterLink>,
        users: Arc<users::Users>,
    ) -> Rc<Engine> {
        Rc::new(Engine {
            owner: Owner::new(store.clone(), metrics),
            live: Live::default(),
            store,
            outbox,
            cluster: cluster.map(cluster::Membership::new),
            users,
            hooks: hook::HookStage::default(),
            hook_caller: std::cell::OnceCell::new(),
            presence_pending: Default::default(),
        })
    }

    /// Sets who calls pre-publish hooks (once, when the shard starts).
    pub fn set_hook_caller(&self, caller: Rc<dyn hook::HookCaller>) {
        let _ = self.hook_caller.set(caller);
    }

    /// Rings `bell` after each commit that made delivery rows (once, when the shard starts).
    pub fn set_deliveries_due(&self, bell: crate::rt::doorbell::Doorbell) {
        self.owner.set_deliveries_due(bell);
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.outbox.shard()
    }

    /// The group-commit loop of the conversations this shard owns; returns
    /// after [`Engine::close`] once everything queued is committed and answered.
    pub async fn run_owner(self: Rc<Self>) {
        let depth = self.owner.commit_depth();
        let mut in_flight = VecDeque::new();
        while let Some(done) = self.owner.next_commit(&mut in_flight, depth).await {
            let (fresh, commit_span) = self.owner.finish(done);
            if let Some(fresh) = fresh {
                let batch: Arc<[Activity]> = fresh.into();
                let batch_len = batch.len();
                let mut span =
                    commit_span.and_then(|c| crate::trace::span("fan-out", crate::trace::Kind::Internal, Some(c)));
                self.publish_committed(&batch);
                let shards = self.fan_out_here(batch);
                if let Some(span) = &mut span {
                    span.attr("converger.fanout.shards", shards);
                    span.attr("converger.batch.activities", batch_len);
                }
            }
        }
    }

    /// Stops taking publishes once the owner's queue is empty.
    pub fn close(&self) {
        self.owner.close();
    }

    /// Handles what other shards send this one until every shard is quiet,
    /// then what is still in the rings.
    pub async fn run_mesh(self: Rc<Self>, mut inbox: Inbox, all_quiet: Latch) {
        let mut messages = Vec::new();
        loop {
            monoio::select! {
                _ = inbox.recv_all(&mut messages) => {}
                _ = all_quiet.wait() => break,
            }
            for message in messages.drain(..) {
                self.handle(message);
            }
        }
        inbox.drain_now(&mut messages);
        for message in messages.drain(..) {
            self.handle(message);
        }
        // The last presence changes (the leaves of the sockets just closed)
        // go out now, not at a tick the stopping shard may never reach: the
        // other nodes hear of them before this node's bus closes.
        self.presence_tick();
    }

    /// The one dispatch of engine messages, from the mesh or from this shard.
    fn handle(self: &Rc<Self>, message: MeshMsg) {
        match message {
            MeshMsg::Publish(request) => self.enqueue(*request),
            MeshMsg::PublishMany(requests) => requests.into_iter().for_each(|r| self.enqueue(r)),
            MeshMsg::Committed(activities) => self.deliver(&activities),
            MeshMsg::Subscribe { conversation, shard, reply } => {
                let first = self.owner.add_subscriber_shard(conversation, shard);
                self.follow(conversation, first, reply);
            }
            MeshMsg::Unsubscribe { conversation, shard } => {
                if self.owner.remove_subscriber_shard(conversation, shard) {
                    self.unfollow(conversation);
                }
            }
            MeshMsg::EphemeralToOwner { conversation, event } => self.pass_on(conversation, event),
            MeshMsg::Ephemeral { conversation, event } => self.deliver_event(conversation, event),
            MeshMsg::PresenceJoin { conversation, key, meta, reply } => {
                let diff = self.owner.presence_join(conversation, &key, meta);
                self.presence_at_tick(conversation, diff, Some(reply));
            }
            MeshMsg::PresenceLeave { conversation, key, phx_ref } => {
                if let Some(diff) = self.owner.presence_leave(conversation, &key, &phx_ref) {
                    self.presence_at_tick(conversation, diff, None);
                }
            }
            MeshMsg::Disconnect { conversation, disconnect, reply } => {
                self.publish_disconnect(conversation, &disconnect);
                self.disconnect_at_owner(conversation, disconnect, Some(reply));
            }
            MeshMsg::DisconnectHere { conversation, disconnect, reply } => {
                let _ = reply.send(self.disconnect_here(conversation, &disconnect));
            }
            MeshMsg::PresenceQuery { conversation, reply } => {
                let following = !self.owner.subscriber_shards(conversation).is_empty();
                let _ = reply.send((self.owner.presence_state(conversation), following));
            }
        }
    }

    /// Sends a committed batch (committed here, or by another node) once to
    /// each shard of this node whose clients follow any of its conversations,
    /// after the commit and never before.
    /// How many shards it went to.
    fn fan_out_here(self: &Rc<Self>, batch: Arc<[Activity]>) -> usize {
        let shards = self.owner.shards_following(&batch);
        let n = shards.len();
        for shard in shards {
            if self.send_to(shard, MeshMsg::Committed(batch.clone())).is_err() {
                // Its subscribers see the gap at their next batch and fill it from storage.
                tracing::warn!(shard, "mesh ring full: committed batch not forwarded");
            }
        }
        n
    }

    /// Owner side: `diff` goes out with the others of the tick, merged, and
    /// a `joiner` gets the state then (the first change of a tick starts it).
    fn presence_at_tick(
        self: &Rc<Self>,
        conversation: converger_storage::Id,
        diff: PresenceDiff,
        joiner: Option<futures_channel::oneshot::Sender<bytes::Bytes>>,
    ) {
        let mut pending = self.presence_pending.borrow_mut();
        let first = pending.is_empty();
        let tick = pending.entry(conversation).or_default();
        tick.diff.merge(diff);
        tick.joiners.extend(joiner);
        drop(pending);
        if first {
            let engine = self.clone();
            monoio::spawn(async move {
                monoio::time::sleep(PRESENCE_TICK).await;
                engine.presence_tick();
            });
        }
    }

    /// The joiners of the tick get the state, then everyone the diff (a
    /// joiner may read its own join twice, with the same `phx_ref`: Phoenix
    /// clients keep it once).
    fn presence_tick(self: &Rc<Self>) {
        let pending = std::mem::take(&mut *self.presence_pending.borrow_mut());
        for (conversation, tick) in pending {
            if !tick.joiners.is_empty() {
                // A map of strings always serializes.
                let state = serde_json::to_vec(&self.owner.presence_state(conversation)).unwrap_or_default();
                let state = bytes::Bytes::from(state);
                for joiner in tick.joiners {
                    let _ = joiner.send(state.clone());
                }
            }
            if !tick.diff.is_empty() {
                self.pass_on(conversation, Arc::new(Ephemeral::Presence(tick.diff)));
            }
        }
    }

    /// Owner side: an ephemeral event made on this node goes to every shard
    /// with subscribers, and to the other nodes.
    fn pass_on(self: &Rc<Self>, conversation: converger_storage::Id, event: Arc<Ephemeral>) {
        self.publish_event(conversation, &event);
        self.pass_on_here(conversation, event);
    }

    /// Owner side: an ephemeral event goes to every shard of this node with subscribers.
    fn pass_on_here(self: &Rc<Self>, conversation: converger_storage::Id, event: Arc<Ephemeral>) {
        for shard in self.owner.subscriber_shards(conversation) {
            let message = MeshMsg::Ephemeral { conversation, event: event.clone() };
            if self.send_to(shard, message).is_err() {
                tracing::debug!(shard, "mesh ring full: ephemeral event dropped");
            }
        }
    }
}

#[cfg(test)]
impl Engine {
    /// A one-shard engine (unit tests).
    pub(crate) fn single(store: Arc<dyn Store>, metrics: Arc<ShardMetrics>) -> Rc<Engine> {
        let outbox = mesh::build(1).pop().expect("one shard").outbox;
        Engine::new(store, metrics, outbox, None, Arc::default())
    }
}
