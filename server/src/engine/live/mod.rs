//! The live stream of one shard: which of its clients follow which
//! conversations, how a client that joins with a watermark gets exactly the
//! activities after it and then the live ones, and how a committed batch
//! reaches every local subscriber.
//!
//! **The resume seam.** A subscription is registered at the conversation's
//! owner first; from then on every batch the owner commits for that
//! conversation is forwarded here. Only then is storage read from the
//! watermark on. Every activity committed before the registration is in what
//! storage returns, every one committed after it arrives live, and an activity
//! both read and forwarded is delivered once: a subscriber keeps the last seq it
//! delivered and skips anything at or below it. Live batches that arrive while
//! storage is being read wait in the subscription's buffer, and so do
//! ephemeral events (a few), delivered after the backlog. A live batch that
//! starts past `last + 1` (a forward was dropped because a ring was full) makes
//! the subscriber fill the gap from storage before going on: no gap, no
//! duplicate, in seq order.
//!
//! **Encode once.** A committed batch is one [`SharedBatch`] on this shard;
//! each wire format encodes its activities once, on first use, and every
//! subscriber of that format shares the bytes.

mod batch;
pub mod events;
mod subscription;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use converger_storage::{Activity, Id, Scope};
use futures_channel::oneshot;

pub use batch::SharedBatch;
pub use events::{Ephemeral, LocalEvent, Signal};
pub use subscription::{Sink, Subscription};

use super::mesh::MeshMsg;
use super::presence::Meta;
use super::publish::PublishError;
use super::Engine;

/// One shard's subscriptions, per conversation.
#[derive(Default)]
pub(super) struct Live {
    subs: RefCell<HashMap<Id, Vec<Rc<Subscription>>>>,
    /// The subscriptions in `subs`, kept as they come and go (the gauge's
    /// figure, without a walk over every conversation).
    count: Cell<usize>,
}

impl Live {
    pub(super) fn of(&self, conversation: Id) -> Vec<Rc<Subscription>> {
        self.subs.borrow().get(&conversation).cloned().unwrap_or_default()
    }
}

/// Why a subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Store(#[from] converger_storage::StoreError),
}

impl Engine {
    /// Follows `conversation` (readable in `scope`) for `sink`: first every
    /// activity after `after_seq`, in order, then the live stream. Resolves once
    /// the backlog is delivered; the subscription stays until [`Engine::unsubscribe`]
    /// or until its sink refuses a delivery. The caller has authorized the
    /// subscription; the backlog read checks `scope` again, and a refusal there
    /// undoes the registration.
    pub async fn subscribe(
        self: &Rc<Self>,
        conversation: Id,
        scope: Scope,
        after_seq: i64,
        sink: Rc<dyn Sink>,
    ) -> Result<Rc<Subscription>, SubscribeError> {
        let sub = self.start_subscription(conversation, scope, after_seq, sink).await?;
        self.finish_subscription(&sub).await?;
        Ok(sub)
    }

    /// The first half of [`Engine::subscribe`]: registered at the owner (and,
    /// in a cluster, receiving the conversation from every node), nothing
    /// given to the sink yet. From here on nothing committed or signalled is
    /// missed: activities and events wait in the subscription until
    /// [`Engine::finish_subscription`] has delivered the backlog. A session
    /// answers its client's join between the two halves.
    pub async fn start_subscription(
        self: &Rc<Self>,
        conversation: Id,
        scope: Scope,
        after_seq: i64,
        sink: Rc<dyn Sink>,
    ) -> Result<Rc<Subscription>, SubscribeError> {
        let sub = Rc::new(Subscription::new(conversation, scope, after_seq, sink));
        self.live.subs.borrow_mut().entry(conversation).or_default().push(sub.clone());
        self.count_subscriptions(1, 0);
        // A caller whose connection closes drops this future, maybe while the
        // owner is asked: the subscription must not stay registered then.
        let mut pending = PendingSubscriptions::new(self);
        pending.hold(sub.clone());
        let registered = self.register(conversation).await;
        pending.release();
        if let Err(e) = registered {
            self.unsubscribe(&sub);
            return Err(e.into());
        }
        Ok(sub)
    }

    /// The second half of [`Engine::subscribe`]: the backlog from storage,
    /// then what waited, then live. On failure the subscription is undone.
    pub async fn finish_subscription(self: &Rc<Self>, sub: &Rc<Subscription>) -> Result<(), SubscribeError> {
        if let Err(e) = sub.catch_up(&*self.store).await {
            self.unsubscribe(sub);
            return Err(e.into());
        }
        Ok(())
    }

    /// Stops `sub`; the owner stops forwarding once no local subscriber is left.
    pub fn unsubscribe(self: &Rc<Self>, sub: &Rc<Subscription>) {
        sub.close();
        let conversation = sub.conversation;
        let last_here = {
            let mut subs = self.live.subs.borrow_mut();
            let Some(list) = subs.get_mut(&conversation) else { return };
            let before = list.len();
            list.retain(|s| !Rc::ptr_eq(s, sub));
            self.count_subscriptions(0, before - list.len());
            let empty = list.is_empty();
            if empty {
                subs.remove(&conversation);
            }
            empty
        };
        if last_here {
            let msg = MeshMsg::Unsubscribe { conversation, shard: self.shard() };
            // A full ring leaves the owner forwarding to us for nothing; the
            // next delivery finds no subscriber and is dropped here.
            let _ = self.to_owner(conversation, msg);
        }
    }

    /// Committed activities from an owner (this shard or another), in commit
    /// order; each local subscriber gets the ones of its conversation.
    pub(super) fn deliver(self: &Rc<Self>, activities: &Arc<[Activity]>) {
        let batch = Rc::new(SharedBatch::new(activities.clone()));
        // Runs of one conversation, in order (a batch is mostly grouped already).
        let mut start = 0;
        while start < activities.len() {
            let conversation = activities[start].conversation_id;
            let mut end = start + 1;
            while end < activities.len() && activities[end].conversation_id == conversation {
                end += 1;
            }
            for sub in self.live.of(conversation) {
                if !sub.offer(&batch, start..end) {
                    self.gap_or_overflow(&sub);
                }
            }
            start = end;
        }
    }

    /// A subscriber refused a delivery: its sink is full (drop it), or it saw a
    /// gap and must read the missing range from storage.
    fn gap_or_overflow(self: &Rc<Self>, sub: &Rc<Subscription>) {
        if sub.is_closed() {
            self.unsubscribe(sub);
            return;
        }
        let (this, sub) = (self.clone(), sub.clone());
        monoio::spawn(async move {
            if sub.catch_up(&*this.store).await.is_err() {
                this.unsubscribe(&sub);
            }
        });
    }

    /// Asks the conversation's owner to forward its commits here; resolves once
    /// the owner has registered this shard.
    async fn register(self: &Rc<Self>, conversation: Id) -> Result<(), PublishError> {
        let (reply, registered) = oneshot::channel();
        let msg = MeshMsg::Subscribe { conversation, shard: self.shard(), reply };
        self.to_owner(conversation, msg).map_err(|_| PublishError::Overloaded)?;
        registered.await.map_err(|_| PublishError::ShuttingDown)
    }

    /// Sends a typing signal (or any ephemeral event) to every subscriber of
    /// `conversation`, through its owner. Not stored; a full ring drops it
    /// (`Overloaded`), which is the right fate for a typing signal.
    pub fn send_ephemeral(self: &Rc<Self>, conversation: Id, event: Ephemeral) -> Result<(), PublishError> {
        let msg = MeshMsg::EphemeralToOwner { conversation, event: Arc::new(event) };
        self.to_owner(conversation, msg).map_err(|_| PublishError::Overloaded)
    }

    /// Adds a presence to `conversation` (at its owner) now; the returned
    /// future resolves, at the owner's next presence tick, to the state to
    /// push to the joiner, as JSON. The join itself is broadcast as a diff.
    pub fn presence_join(
        self: &Rc<Self>,
        conversation: Id,
        key: String,
        meta: Meta,
    ) -> Result<impl Future<Output = Result<bytes::Bytes, PublishError>> + 'static, PublishError> {
        let (reply, state) = oneshot::channel();
        let msg = MeshMsg::PresenceJoin { conversation, key, meta, reply };
        self.to_owner(conversation, msg).map_err(|_| PublishError::Overloaded)?;
        Ok(async move { state.await.map_err(|_| PublishError::ShuttingDown) })
    }

    /// Removes a presence (socket left or closed); the leave is broadcast.
    pub fn presence_leave(self: &Rc<Self>, conversation: Id, key: String, phx_ref: String) {
        let msg = MeshMsg::PresenceLeave { conversation, key, phx_ref };
        if self.to_owner(conversation, msg).is_err() {
            tracing::warn!(%conversation, "mesh ring full: presence leave lost");
        }
    }

    /// An ephemeral event for this shard's subscribers of `conversation`.
    pub(super) fn deliver_event(self: &Rc<Self>, conversation: Id, event: Arc<Ephemeral>) {
        let subs = self.live.of(conversation);
        if subs.is_empty() {
            return;
        }
        let local = Rc::new(LocalEvent::new(conversation, event));
        for sub in subs {
            if !sub.offer_event(&local) {
                self.unsubscribe(&sub);
            }
        }
    }

    /// Every subscriber reads storage after its last seq (something may have
    /// been missed: the cluster bus reconnected or dropped messages).
    pub(super) fn heal_all(self: &Rc<Self>) {
        let subs: Vec<Rc<Subscription>> = self.live.subs.borrow().values().flatten().cloned().collect();
        for sub in subs {
            if sub.start_heal() {
                self.gap_or_overflow(&sub);
            }
        }
    }

    /// Number of local subscriptions (for stats and tests).
    pub fn subscriptions(&self) -> usize {
        self.live.count.get()
    }

    fn count_subscriptions(&self, added: usize, removed: usize) {
        let count = self.live.count.get() + added - removed;
        self.live.count.set(count);
        self.owner.metrics().set_subscriptions(count);
    }
}

/// Subscriptions registered by a start that has not handed them over yet:
/// if the start is abandoned (its future dropped when the caller's connection
/// closes), they are unsubscribed here instead of staying registered for good,
/// buffering every live activity of their conversation.
pub struct PendingSubscriptions {
    engine: Rc<Engine>,
    subs: Vec<Rc<Subscription>>,
}

impl PendingSubscriptions {
    pub fn new(engine: &Rc<Engine>) -> PendingSubscriptions {
        PendingSubscriptions { engine: engine.clone(), subs: Vec::new() }
    }

    pub fn hold(&mut self, sub: Rc<Subscription>) {
        self.subs.push(sub);
    }

    /// The caller owns them from here on.
    pub fn release(&mut self) {
        self.subs.clear();
    }
}

impl Drop for PendingSubscriptions {
    fn drop(&mut self) {
        for sub in self.subs.drain(..) {
            self.engine.unsubscribe(&sub);
        }
    }
}

#[cfg(test)]
mod tests;
