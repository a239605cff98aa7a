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
//! storage is being read wait in the subscription's buffer. A live batch that
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use converger_storage::{Activity, Id, Scope, Store};
use futures_channel::oneshot;

pub use crate::engine::presence::{Meta, PresenceDiff, PresenceState, Presences};
pub use batch::SharedBatch;
pub use events::{Ephemeral, LocalEvent};
pub use subscription::{Sink, Subscription};

use crate::engine::mesh::{MeshMsg, Outbox};
use crate::engine::owner::{owner_of, Owner};
use crate::service::PublishError;

/// One shard's subscriptions.
pub struct Realtime {
    store: Arc<dyn Store>,
    owner: Rc<Owner>,
    outbox: Rc<Outbox>,
    /// Local subscriptions per conversation.
    subs: RefCell<HashMap<Id, Vec<Rc<Subscription>>>>,
    /// Presence of the conversations this shard owns.
    presences: RefCell<Presences>,
}

/// Why a subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Store(#[from] converger_storage::StoreError),
}

impl Realtime {
    pub fn new(store: Arc<dyn Store>, owner: Rc<Owner>, outbox: Rc<Outbox>) -> Rc<Realtime> {
        Rc::new(Realtime {
            store,
            owner,
            outbox,
            subs: RefCell::new(HashMap::new()),
            presences: RefCell::new(Presences::default()),
        })
    }

    /// Follows `conversation` (readable in `scope`) for `sink`: first every
    /// activity after `after_seq`, in order, then the live stream. Resolves once
    /// the backlog is delivered; the subscription stays until [`Realtime::unsubscribe`]
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
        let sub = Rc::new(Subscription::new(conversation, scope, after_seq, sink));
        self.subs.borrow_mut().entry(conversation).or_default().push(sub.clone());
        if let Err(e) = self.register(conversation).await {
            self.unsubscribe(&sub);
            return Err(e.into());
        }
        if let Err(e) = sub.catch_up(&*self.store).await {
            self.unsubscribe(&sub);
            return Err(e.into());
        }
        Ok(sub)
    }

    /// Stops `sub`; the owner stops forwarding once no local subscriber is left.
    pub fn unsubscribe(&self, sub: &Rc<Subscription>) {
        sub.close();
        let conversation = sub.conversation;
        let last_here = {
            let mut subs = self.subs.borrow_mut();
            let Some(list) = subs.get_mut(&conversation) else { return };
            list.retain(|s| !Rc::ptr_eq(s, sub));
            let empty = list.is_empty();
            if empty {
                subs.remove(&conversation);
            }
            empty
        };
        if last_here {
            let owner = owner_of(conversation, self.outbox.shards());
            if owner == self.outbox.shard() {
                self.owner.remove_subscriber_shard(conversation, owner);
            } else {
                let msg = MeshMsg::Unsubscribe { conversation, shard: self.outbox.shard() };
                // A full ring leaves the owner forwarding to us for nothing; the
                // next delivery finds no subscriber and is dropped here.
                let _ = self.outbox.send(owner, msg);
            }
        }
    }

    /// Committed activities from an owner (this shard or another), in commit
    /// order; each local subscriber gets the ones of its conversation.
    pub fn deliver(self: &Rc<Self>, activities: &Arc<[Activity]>) {
        let batch = Rc::new(SharedBatch::new(activities.clone()));
        // Runs of one conversation, in order (a batch is mostly grouped already).
        let mut start = 0;
        while start < activities.len() {
            let conversation = activities[start].conversation_id;
            let mut end = start + 1;
            while end < activities.len() && activities[end].conversation_id == conversation {
                end += 1;
            }
            let subs: Vec<Rc<Subscription>> = self.subs.borrow().get(&conversation).cloned().unwrap_or_default();
            for sub in subs {
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
    async fn register(&self, conversation: Id) -> Result<(), PublishError> {
        let (me, owner) = (self.outbox.shard(), owner_of(conversation, self.outbox.shards()));
        if owner == me {
            self.owner.add_subscriber_shard(conversation, me);
            return Ok(());
        }
        let (reply, registered) = oneshot::channel();
        let msg = MeshMsg::Subscribe { conversation, shard: me, reply };
        if self.outbox.send(owner, msg).is_err() {
            return Err(PublishError::Overloaded);
        }
        registered.await.map_err(|_| PublishError::ShuttingDown)
    }

    /// Sends a typing signal (or any ephemeral event) to every subscriber of
    /// `conversation`, through its owner. Not stored; a full ring drops it
    /// (`Overloaded`), which is the right fate for a typing signal.
    pub fn send_ephemeral(self: &Rc<Self>, conversation: Id, event: Ephemeral) -> Result<(), PublishError> {
        let event = Arc::new(event);
        let owner = owner_of(conversation, self.outbox.shards());
        if owner == self.outbox.shard() {
            self.pass_on(conversation, event);
            Ok(())
        } else {
            let msg = MeshMsg::EphemeralToOwner { conversation, event };
            self.outbox.send(owner, msg).map_err(|_| PublishError::Overloaded)
        }
    }

    /// Adds a presence to `conversation` (at its owner); resolves to the state
    /// to push to the joiner. The join itself is broadcast as a diff.
    pub async fn presence_join(
        self: &Rc<Self>,
        conversation: Id,
        key: String,
        meta: Meta,
    ) -> Result<PresenceState, PublishError> {
        let owner = owner_of(conversation, self.outbox.shards());
        if owner == self.outbox.shard() {
            return Ok(self.owner_presence_join(conversation, &key, meta));
        }
        let (reply, state) = oneshot::channel();
        let msg = MeshMsg::PresenceJoin { conversation, key, meta, reply };
        self.outbox.send(owner, msg).map_err(|_| PublishError::Overloaded)?;
        state.await.map_err(|_| PublishError::ShuttingDown)
    }

    /// Removes a presence (socket left or closed); the leave is broadcast.
    pub fn presence_leave(self: &Rc<Self>, conversation: Id, key: String, phx_ref: String) {
        let owner = owner_of(conversation, self.outbox.shards());
        if owner == self.outbox.shard() {
            self.owner_presence_leave(conversation, &key, &phx_ref);
        } else {
            let msg = MeshMsg::PresenceLeave { conversation, key, phx_ref };
            if self.outbox.send(owner, msg).is_err() {
                tracing::warn!(%conversation, "mesh ring full: presence leave lost");
            }
        }
    }

    /// Owner side of [`Realtime::presence_join`].
    pub fn owner_presence_join(self: &Rc<Self>, conversation: Id, key: &str, meta: Meta) -> PresenceState {
        let (state, diff) = self.presences.borrow_mut().join(conversation, key, meta);
        self.pass_on(conversation, Arc::new(Ephemeral::Presence(diff)));
        state
    }

    /// Owner side of [`Realtime::presence_leave`].
    pub fn owner_presence_leave(self: &Rc<Self>, conversation: Id, key: &str, phx_ref: &str) {
        let diff = self.presences.borrow_mut().leave(conversation, key, phx_ref);
        if let Some(diff) = diff {
            self.pass_on(conversation, Arc::new(Ephemeral::Presence(diff)));
        }
    }

    /// Owner side: an ephemeral event goes to every shard with subscribers.
    pub fn pass_on(self: &Rc<Self>, conversation: Id, event: Arc<Ephemeral>) {
        for shard in self.owner.subscriber_shards(conversation) {
            if shard == self.outbox.shard() {
                self.deliver_event(conversation, event.clone());
            } else if self.outbox.send(shard, MeshMsg::Ephemeral { conversation, event: event.clone() }).is_err() {
                tracing::debug!(shard, "mesh ring full: ephemeral event dropped");
            }
        }
    }

    /// An ephemeral event for this shard's subscribers of `conversation`.
    pub fn deliver_event(&self, conversation: Id, event: Arc<Ephemeral>) {
        let subs: Vec<Rc<Subscription>> = self.subs.borrow().get(&conversation).cloned().unwrap_or_default();
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

    /// Number of local subscriptions (for stats and tests).
    pub fn count(&self) -> usize {
        self.subs.borrow().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests;
