//! The cross-shard mesh: one bounded single-producer/single-consumer ring per
//! ordered pair of shards, and one doorbell per shard.
//!
//! Shard `i` owns the producer end of every ring `i → j` and the consumer end
//! of every ring `j → i`, so no ring has two writers or two readers and none
//! needs a lock. A sender pushes, then rings the target's doorbell (an
//! `AtomicWaker`): if the target's mesh task is parked, monoio's cross-thread
//! waker (eventfd) wakes its runtime; if it is busy draining, the bell costs an
//! atomic swap. A full ring is answered at once — the caller reports overload
//! (503 / the protocol's overflow error) instead of queueing without bound.
//!
//! Messages to the sending shard itself never enter a ring: callers handle the
//! local case directly.

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use converger_storage::Activity;
use futures_util::task::AtomicWaker;
use rtrb::{Consumer, Producer, RingBuffer};

use crate::engine::disconnect::{Disconnect, DisconnectReply};
use crate::engine::live::events::Ephemeral;
use crate::engine::presence::{Meta, PresenceState};
use crate::engine::publish::PublishRequest;

/// Slots per ring (per ordered pair of shards). Messages are two words, so a
/// ring is 16 KiB; what cannot wait here waits in the owner's queue.
pub const RING_CAPACITY: usize = 1024;

/// What shards say to each other.
pub enum MeshMsg {
    /// A write for a conversation the target owns (boxed: keeps ring slots small).
    Publish(Box<PublishRequest>),
    /// Many writes for conversations the target owns, in order, in one slot
    /// (a batched publish crosses the mesh once per owner, not per activity).
    PublishMany(Vec<PublishRequest>),
    /// Activities the sender (their owner) just committed, in seq order, for the
    /// target's local subscribers. Shared, not copied, across targets.
    Committed(Arc<[Activity]>),
    /// The sender has subscribers of a conversation the target owns: forward its
    /// commits from now on, then answer.
    Subscribe { conversation: converger_storage::Id, shard: usize, reply: futures_channel::oneshot::Sender<()> },
    /// The sender's last subscriber of the conversation left.
    Unsubscribe { conversation: converger_storage::Id, shard: usize },
    /// An ephemeral event for a conversation the target owns, to pass on.
    EphemeralToOwner { conversation: converger_storage::Id, event: Arc<Ephemeral> },
    /// An ephemeral event from the conversation's owner, for the target's subscribers.
    Ephemeral { conversation: converger_storage::Id, event: Arc<Ephemeral> },
    /// A socket joined: add its presence, answer (at the next presence tick)
    /// with the conversation's state, encoded as JSON once for every joiner
    /// of the tick.
    PresenceJoin {
        conversation: converger_storage::Id,
        key: String,
        meta: Meta,
        reply: futures_channel::oneshot::Sender<bytes::Bytes>,
    },
    /// A socket left (or closed): remove its presence.
    PresenceLeave { conversation: converger_storage::Id, key: String, phx_ref: String },
    /// To the conversation's owner: end its subscriptions on every shard of
    /// this node (and tell the other nodes); answer how many ended here.
    Disconnect { conversation: converger_storage::Id, disconnect: Arc<Disconnect>, reply: DisconnectReply },
    /// From the owner: end the target's subscriptions of the conversation that
    /// the disconnect covers; answer how many.
    DisconnectHere {
        conversation: converger_storage::Id,
        disconnect: Arc<Disconnect>,
        reply: futures_channel::oneshot::Sender<usize>,
    },
    /// To the conversation's owner: who is present, as it knows, and whether
    /// this node follows the conversation (then other nodes' presences are in).
    PresenceQuery {
        conversation: converger_storage::Id,
        reply: futures_channel::oneshot::Sender<(PresenceState, bool)>,
    },
}

/// Builds the mesh for `n` shards: one [`MeshEnd`] per shard, in shard order.
pub fn build(n: usize) -> Vec<MeshEnd> {
    let bells: Arc<[AtomicWaker]> = (0..n).map(|_| AtomicWaker::new()).collect();
    // producers[from][to] and consumers[to][from]; the diagonal stays empty.
    let mut producers: Vec<Vec<Option<Producer<MeshMsg>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut consumers: Vec<Vec<Consumer<MeshMsg>>> = (0..n).map(|_| Vec::new()).collect();
    for (from, row) in producers.iter_mut().enumerate() {
        for (to, slot) in row.iter_mut().enumerate() {
            if from != to {
                let (p, c) = RingBuffer::new(RING_CAPACITY);
                *slot = Some(p);
                consumers[to].push(c);
            }
        }
    }
    producers
        .into_iter()
        .zip(consumers)
        .enumerate()
        .map(|(id, (outgoing, incoming))| MeshEnd {
            outbox: Outbox { id, rings: RefCell::new(outgoing), bells: bells.clone() },
            inbox: Inbox { id, rings: incoming, bells: bells.clone() },
        })
        .collect()
}

/// One shard's share of the mesh; moved into the shard's thread.
pub struct MeshEnd {
    pub outbox: Outbox,
    pub inbox: Inbox,
}

/// Sending side: used by any task of the owning shard (single-threaded, so the
/// `RefCell` borrow never spans an await).
pub struct Outbox {
    id: usize,
    rings: RefCell<Vec<Option<Producer<MeshMsg>>>>,
    bells: Arc<[AtomicWaker]>,
}

impl Outbox {
    pub fn shard(&self) -> usize {
        self.id
    }

    pub fn shards(&self) -> usize {
        self.bells.len()
    }

    /// Queues `msg` for shard `to` and wakes it; gives the message back when the
    /// ring is full (or `to` is this shard, which has no ring).
    pub fn send(&self, to: usize, msg: MeshMsg) -> Result<(), MeshMsg> {
        let pushed = match self.rings.borrow_mut().get_mut(to).and_then(Option::as_mut) {
            Some(ring) => ring.push(msg).map_err(|rtrb::PushError::Full(m)| m),
            None => Err(msg),
        };
        if pushed.is_ok() {
            self.bells[to].wake();
        }
        pushed
    }
}

/// Receiving side: drained by the shard's one mesh task.
pub struct Inbox {
    id: usize,
    rings: Vec<Consumer<MeshMsg>>,
    bells: Arc<[AtomicWaker]>,
}

impl Inbox {
    /// Waits for at least one message, then moves every queued message into
    /// `out` (ring by ring, each in send order).
    pub async fn recv_all(&mut self, out: &mut Vec<MeshMsg>) {
        poll_fn(|cx| {
            if self.drain(out) {
                return Poll::Ready(());
            }
            self.bells[self.id].register(cx.waker());
            // A message pushed between the drain and the registration rang a bell
            // nobody listened to: look once more.
            if self.drain(out) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Moves what is queued now into `out`, without waiting.
    pub fn drain_now(&mut self, out: &mut Vec<MeshMsg>) {
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<MeshMsg>) -> bool {
        let before = out.len();
        for ring in &mut self.rings {
            while let Ok(msg) = ring.pop() {
                out.push(msg);
            }
        }
        out.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converger_storage::{new_id, Timestamp};

    fn committed(seq: i64) -> MeshMsg {
        let id = new_id();
        MeshMsg::Committed(Arc::from(vec![Activity {
            id,
            tenant_id: id,
            conversation_id: id,
            seq,
            kind: "message".into(),
            text: None,
            attachments: None,
            sender: "s".into(),
            metadata: converger_storage::Json::empty_object(),
            idempotency_key: None,
            created_at: Timestamp::from_micros(0),
            target_id: None,
            parent_id: None,
            state: None,
        }]))
    }

    fn seq_of(msg: &MeshMsg) -> i64 {
        match msg {
            MeshMsg::Committed(a) => a[0].seq,
            _ => -1,
        }
    }

    #[test]
    fn messages_cross_threads_in_order_and_wake_the_receiver() {
        let mut ends = build(2);
        let end1 = ends.pop().expect("shard 1");
        let end0 = ends.pop().expect("shard 0");
        let receiver = std::thread::spawn(move || {
            let mut inbox = end1.inbox;
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("runtime");
            rt.block_on(async move {
                let mut got = Vec::new();
                while got.len() < 1000 {
                    let mut batch = Vec::new();
                    inbox.recv_all(&mut batch).await;
                    got.extend(batch.iter().map(seq_of));
                }
                got
            })
        });
        for seq in 0..1000 {
            let mut msg = committed(seq);
            // The ring may fill while the receiver sleeps: retry, as a caller would report overload.
            loop {
                match end0.outbox.send(1, msg) {
                    Ok(()) => break,
                    Err(back) => {
                        msg = back;
                        std::thread::yield_now();
                    }
                }
            }
        }
        let got = receiver.join().expect("receiver");
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_ring_gives_the_message_back_and_self_has_no_ring() {
        let ends = build(2);
        let out = &ends[0].outbox;
        for seq in 0..RING_CAPACITY as i64 {
            assert!(out.send(1, committed(seq)).is_ok());
        }
        assert!(out.send(1, committed(-5)).is_err(), "full");
        assert!(out.send(0, committed(0)).is_err(), "no ring to self");
    }
}
