//! Several nodes over one PostgreSQL and one NATS: what crosses nodes, and how
//! a shard takes part.
//!
//! PostgreSQL is the truth. Sequencing needs nothing from here: any node's
//! owner shard sequences, and the store's unique (conversation, seq) and
//! (conversation, idempotency key) indexes make a writer that raced another
//! node roll back, re-read and retry (see the PostgreSQL store's write path).
//! NATS core carries, at most once, what other nodes' clients need live:
//! - every committed batch, per conversation, once per batch;
//! - typing signals and presence changes;
//! - "tenants/channels changed" (each node retires its caches; the TTL stays
//!   the fallback);
//! - heartbeats, so a dead node's presences expire.
//!
//! Nothing correct depends on a message arriving: a subscriber that sees a
//! seq gap reads the hole from PostgreSQL (the live layer's catch-up), and
//! when this node's NATS connection comes back every subscriber reads
//! whatever it missed and presence is asked again.
//!
//! The NATS client runs on its own thread ([`bus`], tokio + async-nats); shards
//! never wait on it. A shard hands it work through two bounded queues
//! ([`ClusterLink`]) and receives what other nodes said through its own
//! bounded inbox ([`Inbound`]), handled by [`Engine::run_cluster`].

pub mod bus;
pub mod nodes;
pub mod wire;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use converger_storage::{Activity, Id};
use futures_channel::oneshot;
use tokio::sync::mpsc;

use super::disconnect::Disconnect;
use super::live::events::Ephemeral;
use super::presence::{PresenceDiff, PresenceState};
use super::Engine;
use crate::rt::admission::ConnCaps;
use crate::rt::latch::Latch;
use nodes::{NodeView, Nodes};
pub use wire::Changed;

/// How long a node starting, once connected, waits for the other nodes to
/// answer its first heartbeat (they do at once) before it says it is ready.
pub const DISCOVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Publishes and presence changes waiting for the bus thread; past it they
/// are dropped (counted): other nodes' subscribers heal from storage.
pub const DATA_QUEUE: usize = 16 * 1024;

/// Follows, unfollows and invalidations waiting for the bus thread; past it
/// a subscribe answers at once (its gaps heal from storage) and a change is
/// seen on other nodes after the caches' TTL.
pub const CONTROL_QUEUE: usize = 16 * 1024;

/// What other nodes said, waiting for one shard; when full, the bus waits
/// (and NATS, past its own buffer, reports a slow consumer: every subscriber
/// then reads storage again).
pub const INBOX: usize = 4 * 1024;

/// For the bus thread.
pub(crate) enum Outbound {
    /// Activities this node committed, in seq order.
    Batch(Arc<[Activity]>),
    Event {
        conversation: Id,
        event: Arc<Ephemeral>,
    },
    PresenceState {
        conversation: Id,
        state: PresenceState,
    },
    /// A disconnect made on this node, for the conversation's subscribers on the others.
    Disconnect {
        conversation: Id,
        disconnect: Arc<Disconnect>,
    },
    /// A user's first socket on this node connected (`online`), or its last one went.
    User {
        key: crate::engine::users::UserKey,
        online: bool,
    },
}

pub(crate) enum Control {
    /// This node has subscribers of the conversation now: receive its traffic,
    /// learn who is present on other nodes, then answer [`Inbound::Followed`].
    Follow(Id),
    Unfollow(Id),
    Changed(Changed),
    /// Who is present in a conversation this node does not follow: every
    /// live node's own presences, as many as answer within the sync's wait.
    AskPresence {
        conversation: Id,
        reply: oneshot::Sender<Vec<PresenceState>>,
    },
}

/// From the bus thread to one shard.
pub enum Inbound {
    /// Activities another node committed, for conversations this shard owns.
    Committed(Arc<[Activity]>),
    Typing {
        conversation: Id,
        sender: String,
        typing: bool,
    },
    Signal {
        conversation: Id,
        signal: crate::engine::Signal,
        data: serde_json::Value,
    },
    Presence {
        conversation: Id,
        origin: String,
        diff: PresenceDiff,
    },
    PresenceState {
        conversation: Id,
        origin: String,
        state: PresenceState,
    },
    /// Another node's disconnect, for this node's subscribers of the conversation.
    Disconnect {
        conversation: Id,
        disconnect: Disconnect,
    },
    /// The follow of a conversation is in effect: its subscribers may read storage.
    Followed(Id),
    /// Another node asks who is present here.
    PresenceQuery {
        conversation: Id,
        reply: oneshot::Sender<PresenceState>,
    },
    /// A node stopped heart-beating (or restarted): its presences leave.
    NodeGone(String),
    /// Something may have been missed (NATS reconnected, or dropped messages):
    /// every subscriber reads storage after its last seq.
    HealAll,
    /// Tell other nodes every presence of this node (after a reconnect, they
    /// may have dropped them).
    Announce,
    /// Users online nowhere since a node died: this node announces them offline.
    UsersOffline(Vec<crate::engine::users::UserKey>),
}

/// The receiving end of one shard's inbox.
pub type InboundRx = mpsc::Receiver<Inbound>;

/// What every part of the node may ask of the cluster: connected or not,
/// which other nodes are alive.
pub struct Status {
    pub node_id: String,
    /// `<node id>.<incarnation>`: this start of this node.
    pub origin: String,
    connected: AtomicBool,
    nodes: Mutex<Nodes>,
    /// Outbound messages dropped because the bus queue was full or NATS was down.
    dropped: AtomicU64,
    /// The node's connections (counted by its admission caps).
    caps: Arc<ConnCaps>,
    /// The node's users, shared with the shards (see `engine::users`).
    pub(crate) users: Arc<crate::engine::users::Users>,
}

impl Status {
    pub fn new(
        node_id: String,
        origin: String,
        caps: Arc<ConnCaps>,
        users: Arc<crate::engine::users::Users>,
    ) -> Status {
        users.set_origin(&origin);
        Status {
            node_id,
            origin,
            connected: AtomicBool::new(false),
            nodes: Mutex::default(),
            dropped: AtomicU64::new(0),
            caps,
            users,
        }
    }

    /// Live connections on this node.
    pub fn connections(&self) -> u64 {
        self.caps.open() as u64
    }

    /// Whether the NATS connection is up (readiness).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Waits (blocking: start-up only) until connected, at most `limit`.
    pub fn wait_connected(&self, limit: std::time::Duration) -> bool {
        let until = Instant::now() + limit;
        while !self.connected() {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
    }

    /// Other nodes heard from within the expiry.
    pub fn other_nodes(&self) -> usize {
        self.with_nodes(|n| n.len())
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f` on the table of other nodes.
    pub(crate) fn with_nodes<T>(&self, f: impl FnOnce(&mut Nodes) -> T) -> T {
        match self.nodes.lock() {
            Ok(mut n) => f(&mut n),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Every node of the cluster as this one sees it, this one first.
    pub fn views(&self) -> Vec<NodeView> {
        let me =
            NodeView { id: self.node_id.clone(), connections: self.connections(), last_seen_ms: 0, this_node: true };
        let others = self.with_nodes(|n| n.views(Instant::now()));
        std::iter::once(me).chain(others).collect()
    }
}

/// A shard's way to the bus thread. Cheap to clone.
#[derive(Clone)]
pub struct ClusterLink {
    data: mpsc::Sender<Outbound>,
    control: mpsc::Sender<Control>,
    pub status: Arc<Status>,
}

impl ClusterLink {
    fn send_data(&self, message: Outbound) {
        if !self.status.connected() || self.data.try_send(message).is_err() {
            self.status.count_dropped();
        }
    }

    fn send_control(&self, message: Control) -> bool {
        self.control.try_send(message).is_ok()
    }

    /// Tells every other node that tenants or channels changed.
    pub fn announce_change(&self, what: Changed) {
        if !self.send_control(Control::Changed(what)) {
            tracing::warn!(?what, "cluster control queue full: other nodes see the change after their cache TTL");
        }
    }
}

/// A shard's part in the cluster: its link, and the subscribes waiting for a
/// follow to take effect.
pub(super) struct Membership {
    pub(super) link: ClusterLink,
    /// Conversation → subscribers waiting for [`Inbound::Followed`].
    waiting: RefCell<HashMap<Id, Vec<oneshot::Sender<()>>>>,
}

impl Membership {
    pub(super) fn new(link: ClusterLink) -> Membership {
        Membership { link, waiting: RefCell::default() }
    }
}

impl Engine {
    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.cluster.as_ref().map(|m| &m.link)
    }

    /// Handles what the bus thread brings this shard until `shutdown`.
    pub async fn run_cluster(self: Rc<Self>, mut inbox: InboundRx, shutdown: Latch) {
        loop {
            monoio::select! {
                message = inbox.recv() => match message {
                    Some(m) => self.on_cluster(m),
                    None => break,
                },
                _ = shutdown.wait() => break,
            }
        }
    }

    fn on_cluster(self: &Rc<Self>, message: Inbound) {
        match message {
            Inbound::Committed(activities) => {
                self.fan_out_here(activities);
            }
            Inbound::Typing { conversation, sender, typing } => {
                self.pass_on_here(conversation, Arc::new(Ephemeral::Typing { sender, typing }));
            }
            Inbound::Signal { conversation, signal, data } => {
                self.pass_on_here(conversation, Arc::new(Ephemeral::Signal { signal, data }));
            }
            Inbound::Presence { conversation, origin, diff } => {
                if let Some(news) = self.owner.presence_remote_diff(conversation, &origin, &diff) {
                    self.pass_on_here(conversation, Arc::new(Ephemeral::Presence(news)));
                }
            }
            Inbound::PresenceState { conversation, origin, state } => {
                if let Some(news) = self.owner.presence_remote_state(conversation, &origin, &state) {
                    self.pass_on_here(conversation, Arc::new(Ephemeral::Presence(news)));
                }
            }
            Inbound::Disconnect { conversation, disconnect } => {
                self.disconnect_at_owner(conversation, Arc::new(disconnect), None);
            }
            Inbound::Followed(conversation) => {
                let waiting = self.cluster.as_ref().and_then(|m| m.waiting.borrow_mut().remove(&conversation));
                for reply in waiting.into_iter().flatten() {
                    let _ = reply.send(());
                }
            }
            Inbound::PresenceQuery { conversation, reply } => {
                let _ = reply.send(self.owner.local_presence(conversation));
            }
            Inbound::NodeGone(origin) => {
                for (conversation, diff) in self.owner.presence_drop_origin(&origin) {
                    self.pass_on_here(conversation, Arc::new(Ephemeral::Presence(diff)));
                }
            }
            Inbound::HealAll => self.heal_all(),
            Inbound::Announce => {
                if let Some(m) = &self.cluster {
                    for (conversation, state) in self.owner.local_presences() {
                        m.link.send_data(Outbound::PresenceState { conversation, state });
                    }
                }
            }
            Inbound::UsersOffline(keys) => {
                let at = converger_storage::Timestamp::now();
                for key in keys {
                    let engine = self.clone();
                    monoio::spawn(async move { engine.announce_user(key, Some(at)).await });
                }
            }
        }
    }

    /// Owner side: `shard` is the first on this node to follow `conversation`
    /// (`first`) or joins followers; `reply` once the node receives the
    /// conversation's traffic from every node, so the subscriber's storage
    /// read cannot miss a commit made elsewhere.
    pub(super) fn follow(self: &Rc<Self>, conversation: Id, first: bool, reply: oneshot::Sender<()>) {
        let Some(m) = &self.cluster else {
            let _ = reply.send(());
            return;
        };
        let mut waiting = m.waiting.borrow_mut();
        if first {
            if !m.link.send_control(Control::Follow(conversation)) {
                tracing::warn!(%conversation, "cluster control queue full: following without waiting");
                let _ = reply.send(());
                return;
            }
            waiting.insert(conversation, vec![reply]);
        } else if let Some(list) = waiting.get_mut(&conversation) {
            list.push(reply);
        } else {
            let _ = reply.send(());
        }
    }

    /// Owner side: no one on this node follows `conversation` any more.
    pub(super) fn unfollow(self: &Rc<Self>, conversation: Id) {
        if let Some(m) = &self.cluster {
            self.owner.presence_forget_remote(conversation);
            if !m.link.send_control(Control::Unfollow(conversation)) {
                tracing::warn!(%conversation, "cluster control queue full: still receiving an unfollowed conversation");
            }
        }
    }

    /// Tells other nodes a user's first socket here connected, or its last one went.
    pub(crate) fn tell_nodes_user(&self, key: &crate::engine::users::UserKey, online: bool) {
        if let Some(m) = &self.cluster {
            m.link.send_data(Outbound::User { key: key.clone(), online });
        }
    }

    /// Owner side: tells other nodes what this one committed.
    pub(super) fn publish_committed(&self, batch: &Arc<[Activity]>) {
        if let Some(m) = &self.cluster {
            m.link.send_data(Outbound::Batch(batch.clone()));
        }
    }

    /// Owner side: tells other nodes of a disconnect made here.
    pub(super) fn publish_disconnect(&self, conversation: Id, disconnect: &Arc<Disconnect>) {
        if let Some(m) = &self.cluster {
            m.link.send_data(Outbound::Disconnect { conversation, disconnect: disconnect.clone() });
        }
    }

    /// What the other nodes say of their presences in `conversation` (none
    /// without a cluster, or when the control queue is full).
    pub(super) async fn ask_other_nodes_presence(&self, conversation: Id) -> Vec<PresenceState> {
        let Some(m) = &self.cluster else { return Vec::new() };
        let (reply, answer) = oneshot::channel();
        if !m.link.send_control(Control::AskPresence { conversation, reply }) {
            tracing::warn!(%conversation, "cluster control queue full: presence of the other nodes not asked");
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Owner side: tells other nodes of a typing signal or presence change made here.
    pub(super) fn publish_event(&self, conversation: Id, event: &Arc<Ephemeral>) {
        if let Some(m) = &self.cluster {
            m.link.send_data(Outbound::Event { conversation, event: event.clone() });
        }
    }
}

/// Builds the links and inboxes of `shards` shards: the link every shard
/// shares, each shard's inbox, and what the bus thread keeps.
pub fn channels(shards: usize, status: Arc<Status>) -> (ClusterLink, Vec<InboundRx>, bus::Ends) {
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::channel(INBOX)).unzip();
    let link = ClusterLink { data, control, status: status.clone() };
    (link, receivers, bus::Ends { data: data_rx, control: control_rx, inboxes, status })
}

#[cfg(test)]
mod tests;
