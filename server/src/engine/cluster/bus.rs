//! The bus thread: one tokio runtime and one NATS connection (async-nats) per
//! node. It publishes what the shards hand it, subscribes to the
//! conversations this node follows, answers presence questions, sends and
//! hears heartbeats, and hands what it receives to the owner shard of each
//! conversation. Shards never wait on it; it waits on a shard only to hand
//! over a message (bounded inbox, see [`super::INBOX`]).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, Message, ServerAddr, Subscriber};
use bytes::Bytes;
use converger_storage::{Activity, Id};
use futures_channel::oneshot;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle as TaskHandle, LocalSet};

use super::nodes::HEARTBEAT;
use super::wire::{self, ChangedMsg, ConversationMsg, Heartbeat, UserMsg};
use super::{Changed, Control, Inbound, Outbound, Status};
use crate::engine::live::events::Ephemeral;
use crate::engine::route::owner_of;
use crate::rt::shutdown::Shutdown;

/// How long a follow waits for NATS to confirm the subscription and for the
/// other nodes' presence answers before the subscriber goes on regardless.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// How long a presence sync waits for every live node to answer.
const SYNC_WAIT: Duration = Duration::from_millis(300);

/// Messages the NATS client buffers per subscription before it reports a
/// slow consumer (and drops; subscribers then heal from storage).
const SUBSCRIPTION_BUFFER: usize = 64 * 1024;

/// What the bus thread keeps of the channels built by [`super::channels`].
pub struct Ends {
    pub(super) data: mpsc::Receiver<Outbound>,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) inboxes: Vec<mpsc::Sender<Inbound>>,
    pub(super) status: Arc<Status>,
}

/// How to run the bus.
pub struct Setup {
    pub urls: Vec<String>,
    /// Called (on the bus thread) when another node says tenants or channels changed.
    pub on_changed: Box<dyn Fn(Changed) + Send>,
    pub shutdown: Shutdown,
}

/// Starts the bus thread. The NATS connection is made there, and made again
/// whenever lost: until it is up the node reports not ready.
pub fn start(setup: Setup, ends: Ends) -> io::Result<JoinHandle<()>> {
    let addrs = setup
        .urls
        .iter()
        .map(|u| u.parse::<ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad NATS URL: {e}")))?;
    std::thread::Builder::new().name("cluster-bus".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the cluster bus runtime; this node stays not ready");
                return;
            }
        };
        let local = LocalSet::new();
        local.block_on(&rt, run(setup, ends, addrs));
    })
}

/// The bus's state, on its one thread.
struct Bus {
    client: Client,
    status: Arc<Status>,
    inboxes: Vec<mpsc::Sender<Inbound>>,
    /// The pump task of every conversation this node follows.
    following: HashMap<Id, TaskHandle<()>>,
    /// [`Status::dropped`] when other nodes were last told to heal.
    dropped_seen: u64,
}

async fn run(setup: Setup, mut ends: Ends, addrs: Vec<ServerAddr>) {
    let status = ends.status.clone();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let options = ConnectOptions::new()
        .name(format!("converger {}", status.origin))
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(2))
        .subscription_capacity(SUBSCRIPTION_BUFFER)
        .client_capacity(SUBSCRIPTION_BUFFER)
        .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).clamp(100, 1000)))
        .event_callback(move |event| {
            let tx = events_tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    let client = match options.connect(addrs).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot use NATS; this node stays not ready");
            setup.shutdown.wait().await;
            return;
        }
    };
    let subscribe = |subject: &'static str| {
        let client = client.clone();
        async move { client.subscribe(subject).await }
    };
    let (Ok(mut nodes_sub), Ok(mut changed_sub), Ok(mut sync_sub), Ok(mut missed_sub), Ok(mut users_sub)) = (
        subscribe(wire::NODES).await,
        subscribe(wire::CHANGED).await,
        subscribe(wire::SYNC_ALL).await,
        subscribe(wire::MISSED).await,
        subscribe(wire::USERS).await,
    ) else {
        tracing::error!("cannot subscribe to the cluster's subjects; this node stays not ready");
        setup.shutdown.wait().await;
        return;
    };
    let mut bus = Bus { client, status, inboxes: ends.inboxes, following: HashMap::new(), dropped_seen: 0 };
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = setup.shutdown.wait();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events.recv() => bus.on_event(event).await,
            Some(control) = ends.control.recv() => bus.on_control(control).await,
            Some(out) = ends.data.recv() => bus.on_outbound(out).await,
            Some(m) = nodes_sub.next() => bus.on_heartbeat(&m).await,
            Some(m) = changed_sub.next() => {
                match serde_json::from_slice::<ChangedMsg>(&m.payload) {
                    Ok(c) => (setup.on_changed)(c.what),
                    Err(e) => tracing::warn!(error = %e, "unreadable change notice on the bus"),
                }
            }
            Some(m) = sync_sub.next() => bus.on_sync_request(m),
            Some(_) = missed_sub.next() => bus.to_every_shard(|| Inbound::HealAll).await,
            Some(m) = users_sub.next() => bus.on_user(&m),
            _ = tick.tick() => bus.on_tick().await,
        }
    }
    // The stop comes once the shards have stopped: what they handed over on
    // their way out (the leaves of the sockets they closed) still goes.
    while let Ok(out) = ends.data.try_recv() {
        bus.on_outbound(out).await;
    }
    // Published is only queued in the client: on the wire before it closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), bus.client.flush()).await;
    bus.status.set_connected(false);
    for (_, pump) in bus.following.drain() {
        pump.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), bus.client.drain()).await;
}

impl Bus {
    fn owner_inbox(&self, conversation: Id) -> &mpsc::Sender<Inbound> {
        &self.inboxes[owner_of(conversation, self.inboxes.len())]
    }

    /// A message for every shard; waits for room (these are rare and must arrive).
    async fn to_every_shard(&self, make: impl Fn() -> Inbound) {
        for inbox in &self.inboxes {
            let _ = inbox.send(make()).await;
        }
    }

    async fn publish(&self, subject: String, body: Vec<u8>) {
        if !self.status.connected() {
            self.status.count_dropped();
            return;
        }
        if let Err(e) = self.client.publish(subject, Bytes::from(body)).await {
            self.status.count_dropped();
            tracing::debug!(error = %e, "bus publish failed");
        }
    }

    async fn publish_conversation(&self, conversation: Id, message: &ConversationMsg) {
        match serde_json::to_vec(message) {
            Ok(body) => self.publish(wire::conversation_subject(conversation), body).await,
            Err(e) => tracing::warn!(error = %e, "cannot encode a bus message"),
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                tracing::info!(node = %self.status.node_id, "connected to NATS");
                self.status.set_connected(true);
                self.heartbeat().await;
                // Whatever crossed while we were away is in storage; presence
                // may have been dropped on either side.
                let _ = tokio::time::timeout(FOLLOW_WAIT, self.client.flush()).await;
                self.to_every_shard(|| Inbound::HealAll).await;
                self.to_every_shard(|| Inbound::Announce).await;
                // What the others said of their users may be stale: they say it again.
                self.status.users.forget_remote();
                self.tell_users_here().await;
                // And what this node committed while cut off, on the others.
                self.tell_missed().await;
                let conversations: Vec<Id> = self.following.keys().copied().collect();
                for conversation in conversations {
                    self.spawn_sync(conversation, false);
                }
            }
            Event::Disconnected => {
                tracing::warn!(node = %self.status.node_id, "lost NATS; not ready until it is back");
                self.status.set_connected(false);
            }
            Event::Closed => self.status.set_connected(false),
            Event::SlowConsumer(_) => {
                tracing::warn!("NATS dropped messages for this slow node; subscribers read them from storage");
                self.to_every_shard(|| Inbound::HealAll).await;
            }
            other => tracing::debug!(event = %other, "NATS event"),
        }
    }

    async fn on_control(&mut self, control: Control) {
        match control {
            Control::Follow(conversation) => {
                if !self.following.contains_key(&conversation) {
                    match self.client.subscribe(wire::conversation_subject(conversation)).await {
                        Ok(sub) => {
                            let pump = tokio::task::spawn_local(pump(
                                sub,
                                conversation,
                                self.owner_inbox(conversation).clone(),
                                self.status.clone(),
                            ));
                            self.following.insert(conversation, pump);
                        }
                        Err(e) => tracing::warn!(%conversation, error = %e, "cannot follow a conversation on NATS"),
                    }
                }
                self.spawn_sync(conversation, true);
            }
            Control::Unfollow(conversation) => {
                if let Some(pump) = self.following.remove(&conversation) {
                    // Dropping the subscriber unsubscribes.
                    pump.abort();
                }
            }
            Control::AskPresence { conversation, reply } => {
                let (client, status) = (self.client.clone(), self.status.clone());
                tokio::task::spawn_local(async move {
                    let expected = status.with_nodes(|n| n.len());
                    let states = if status.connected() && expected > 0 {
                        ask_presence(&client, conversation, expected).await
                    } else {
                        Vec::new()
                    };
                    let _ = reply.send(states.into_iter().map(|(_, state)| state).collect());
                });
            }
            Control::Changed(what) => {
                let msg = ChangedMsg { origin: self.status.origin.clone(), what };
                if let Ok(body) = serde_json::to_vec(&msg) {
                    self.publish(wire::CHANGED.to_owned(), body).await;
                }
            }
        }
    }

    /// Makes a follow effective (the subscription reached the server) and asks
    /// every live node who is present; the answers reach the owner shard before
    /// `Followed` (when `answer`), in one inbox, in order.
    fn spawn_sync(&self, conversation: Id, answer: bool) {
        let client = self.client.clone();
        let status = self.status.clone();
        let inbox = self.owner_inbox(conversation).clone();
        tokio::task::spawn_local(async move {
            if status.connected() {
                let _ = tokio::time::timeout(FOLLOW_WAIT, client.flush()).await;
                let expected = status.with_nodes(|n| n.len());
                if expected > 0 {
                    let states = ask_presence(&client, conversation, expected).await;
                    tracing::debug!(%conversation, expected, answers = states.len(), "presence asked of the other nodes");
                    for (origin, state) in states {
                        let _ = inbox.send(Inbound::PresenceState { conversation, origin, state }).await;
                    }
                }
            }
            if answer {
                let _ = inbox.send(Inbound::Followed(conversation)).await;
            }
        });
    }

    async fn on_outbound(&self, out: Outbound) {
        let origin = self.status.origin.clone();
        match out {
            Outbound::Batch(batch) => {
                for (conversation, activities) in by_conversation(&batch) {
                    let msg = ConversationMsg::Batch { origin: origin.clone(), activities };
                    self.publish_conversation(conversation, &msg).await;
                }
            }
            Outbound::Event { conversation, event } => {
                let msg = match &*event {
                    Ephemeral::Typing { sender, typing } => {
                        ConversationMsg::Typing { origin, sender: sender.clone(), typing: *typing }
                    }
                    Ephemeral::Signal { signal, data } => {
                        ConversationMsg::Signal { origin, signal: *signal, data: data.clone() }
                    }
                    Ephemeral::Presence(diff) => {
                        tracing::debug!(%conversation, joins = diff.joins.0.len(), leaves = diff.leaves.0.len(), "presence change to the other nodes");
                        ConversationMsg::Presence { origin, joins: diff.joins.clone(), leaves: diff.leaves.clone() }
                    }
                };
                self.publish_conversation(conversation, &msg).await;
            }
            Outbound::Disconnect { conversation, disconnect } => {
                let msg = ConversationMsg::Disconnect { origin, disconnect: (*disconnect).clone() };
                self.publish_conversation(conversation, &msg).await;
            }
            Outbound::PresenceState { conversation, state } => {
                self.publish_conversation(conversation, &ConversationMsg::PresenceState { origin, state }).await;
            }
            Outbound::User { key: (tenant, sender), online } => {
                let msg = UserMsg { origin, tenant, sender, online };
                if let Ok(body) = serde_json::to_vec(&msg) {
                    self.publish(wire::USERS.to_owned(), body).await;
                }
            }
        }
    }

    /// Another node's user came or went.
    fn on_user(&self, m: &Message) {
        match serde_json::from_slice::<UserMsg>(&m.payload) {
            Ok(u) if u.origin != self.status.origin => {
                self.status.users.remote(&u.origin, &(u.tenant, u.sender), u.online, Instant::now());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "unreadable user presence on the bus"),
        }
    }

    /// Tells the other nodes every user with a socket here (after a
    /// reconnect, or to a node that just joined).
    async fn tell_users_here(&self) {
        for (tenant, sender) in self.status.users.here() {
            let msg = UserMsg { origin: self.status.origin.clone(), tenant, sender, online: true };
            if let Ok(body) = serde_json::to_vec(&msg) {
                self.publish(wire::USERS.to_owned(), body).await;
            }
        }
    }

    /// A node is gone: its users leave; those online nowhere now are
    /// announced offline by one node, the live one whose origin sorts first.
    async fn node_gone(&self, origin: &str) {
        self.to_every_shard(|| Inbound::NodeGone(origin.to_owned())).await;
        let offline = self.status.users.node_gone(origin);
        let first = self.status.with_nodes(|n| n.origins().into_iter().min()).is_none_or(|o| self.status.origin <= o);
        if !offline.is_empty() && first {
            let _ = self.inboxes[0].send(Inbound::UsersOffline(offline)).await;
        }
    }

    async fn on_heartbeat(&mut self, m: &Message) {
        let hb: Heartbeat = match serde_json::from_slice(&m.payload) {
            Ok(hb) => hb,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable heartbeat on the bus");
                return;
            }
        };
        if hb.origin == self.status.origin {
            return;
        }
        let heard = self.status.with_nodes(|n| n.heartbeat(&hb, Instant::now()));
        for old in heard.replaced {
            tracing::info!(node = wire::node_of(&old), "node restarted; its old presences leave");
            self.node_gone(&old).await;
        }
        if heard.new {
            tracing::info!(node = wire::node_of(&hb.origin), "node joined the cluster");
            // So the newcomer knows of us now, not in up to a second (it
            // waits for these answers before it says it is ready).
            self.heartbeat().await;
            self.tell_users_here().await;
        }
    }

    /// Another node asks who is present in a conversation here: the owner
    /// shard answers, then the answer goes to the asker's inbox.
    fn on_sync_request(&self, m: Message) {
        let (Some(conversation), Some(reply_to)) = (wire::conversation_of(&m.subject), m.reply) else { return };
        tracing::debug!(%conversation, "another node asks who is present");
        let (reply, state) = oneshot::channel();
        if self.owner_inbox(conversation).try_send(Inbound::PresenceQuery { conversation, reply }).is_err() {
            return; // the asker stops waiting after SYNC_WAIT
        }
        let client = self.client.clone();
        let origin = self.status.origin.clone();
        tokio::task::spawn_local(async move {
            let Ok(state) = state.await else { return };
            if let Ok(body) = serde_json::to_vec(&ConversationMsg::PresenceState { origin, state }) {
                let _ = client.publish(reply_to, Bytes::from(body)).await;
            }
        });
    }

    /// Tells every node to read storage for what this one may not have
    /// published (each time publishes were dropped since the last notice).
    async fn tell_missed(&mut self) {
        self.dropped_seen = self.status.dropped();
        self.publish(wire::MISSED.to_owned(), self.status.origin.clone().into_bytes()).await;
    }

    async fn on_tick(&mut self) {
        self.heartbeat().await;
        if self.status.connected() && self.status.dropped() != self.dropped_seen {
            self.tell_missed().await;
        }
        let gone = self.status.with_nodes(|n| n.expire(Instant::now()));
        for origin in gone {
            tracing::warn!(node = wire::node_of(&origin), "node silent; its presences leave");
            self.node_gone(&origin).await;
        }
        self.status.users.sweep(Instant::now());
    }

    async fn heartbeat(&mut self) {
        if !self.status.connected() {
            return; // nothing to tell while cut off; not a dropped message either
        }
        let hb = Heartbeat { origin: self.status.origin.clone(), connections: self.status.connections() };
        if let Ok(body) = serde_json::to_vec(&hb) {
            self.publish(wire::NODES.to_owned(), body).await;
        }
    }
}

/// Runs of one batch per conversation, each in seq order (the batch's order).
fn by_conversation(batch: &[Activity]) -> Vec<(Id, Vec<Activity>)> {
    let mut runs: Vec<(Id, Vec<Activity>)> = Vec::new();
    for a in batch {
        match runs.iter_mut().find(|(c, _)| *c == a.conversation_id) {
            Some((_, run)) => run.push(a.clone()),
            None => runs.push((a.conversation_id, vec![a.clone()])),
        }
    }
    runs
}

/// Asks every live node who is present in `conversation`; each answer is a
/// node's full state. Stops at `expected` answers or after [`SYNC_WAIT`].
async fn ask_presence(
    client: &Client,
    conversation: Id,
    expected: usize,
) -> Vec<(String, crate::engine::presence::PresenceState)> {
    let inbox = client.new_inbox();
    let Ok(mut answers) = client.subscribe(inbox.clone()).await else { return Vec::new() };
    if client.publish_with_reply(wire::sync_subject(conversation), inbox, Bytes::new()).await.is_err() {
        return Vec::new();
    }
    let deadline = tokio::time::Instant::now() + SYNC_WAIT;
    let mut states = Vec::new();
    while states.len() < expected {
        match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(m)) => {
                if let Ok(ConversationMsg::PresenceState { origin, state }) = serde_json::from_slice(&m.payload) {
                    states.push((origin, state));
                }
            }
            _ => break,
        }
    }
    states
}

/// Hands one followed conversation's traffic to its owner shard.
async fn pump(mut sub: Subscriber, conversation: Id, inbox: mpsc::Sender<Inbound>, status: Arc<Status>) {
    while let Some(m) = sub.next().await {
        let msg: ConversationMsg = match serde_json::from_slice(&m.payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(%conversation, error = %e, "unreadable conversation message on the bus");
                continue;
            }
        };
        status.with_nodes(|n| n.touch(msg.origin(), Instant::now()));
        let inbound = match msg {
            ConversationMsg::Batch { activities, .. } => {
                if activities.is_empty() || activities.iter().any(|a| a.conversation_id != conversation) {
                    continue;
                }
                Inbound::Committed(activities.into())
            }
            ConversationMsg::Typing { sender, typing, .. } => Inbound::Typing { conversation, sender, typing },
            ConversationMsg::Signal { signal, data, .. } => Inbound::Signal { conversation, signal, data },
            ConversationMsg::Presence { origin, joins, leaves } => Inbound::Presence {
                conversation,
                origin,
                diff: crate::engine::presence::PresenceDiff { joins, leaves },
            },
            ConversationMsg::PresenceState { origin, state } => Inbound::PresenceState { conversation, origin, state },
            ConversationMsg::Disconnect { disconnect, .. } => Inbound::Disconnect { conversation, disconnect },
        };
        if inbox.send(inbound).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::message;
    use converger_storage::new_id;

    #[test]
    fn a_batch_splits_into_runs_per_conversation_in_order() {
        let (t, a, b) = (new_id(), new_id(), new_id());
        let stored = |conv, seq| message(t, conv).into_stored(seq);
        let batch = vec![stored(a, 1), stored(b, 1), stored(a, 2)];
        let runs = by_conversation(&batch);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].0, a);
        assert_eq!(runs[0].1.iter().map(|x| x.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(runs[1].1.len(), 1);
    }
}
