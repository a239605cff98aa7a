//! What a consumer reads: a [`Subscription`] (one conversation's activities,
//! in order, across reconnects) and the ephemeral event streams ([`Events`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use converger_protocol::Frame;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::state::SubSignal;
use crate::types::{Activity, MemberEvent, TypingEvent};
use crate::Client;

/// One conversation's activities: the backlog after the subscription's
/// `after_seq`, then the live stream, in seq order, each exactly once.
///
/// **Reconnects.** When the connection is lost the client reconnects and
/// subscribes again from the last seq this subscription queued; the server
/// sends what came after it, and anything at or below it is dropped. The
/// consumer sees no gap and no duplicate.
///
/// **A slow consumer.** The subscription holds at most
/// [`Options::subscription_buffer`](crate::Options::subscription_buffer)
/// activities. When that is full, the subscription *pauses*: activities that
/// keep arriving are dropped instead of queued, and nothing else on the
/// connection waits (other subscriptions, acks). Once the consumer has taken
/// everything queued, [`Subscription::next`] subscribes again from the last
/// seq queued and the server sends the rest. Memory stays bounded, nothing is
/// lost; a consumer that falls behind pays with a resubscription (one round
/// trip, and the server reading the missed range from storage).
///
/// Dropping it unsubscribes.
pub struct Subscription {
    client: Client,
    conversation: Uuid,
    rx: mpsc::Receiver<Activity>,
    signal: Arc<SubSignal>,
    last_seq: Option<u64>,
    /// Set by [`Subscription::unsubscribe`]: nothing left to do on drop.
    done: bool,
}

impl Subscription {
    pub(crate) fn new(
        client: Client,
        conversation: Uuid,
        rx: mpsc::Receiver<Activity>,
        signal: Arc<SubSignal>,
    ) -> Self {
        Subscription { client, conversation, rx, signal, last_seq: None, done: false }
    }

    pub fn conversation_id(&self) -> Uuid {
        self.conversation
    }

    /// The seq of the last activity [`Subscription::next`] returned.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// How many times this subscription paused because its consumer was a
    /// full buffer behind (each pause costs a resubscription, loses nothing).
    pub fn pauses(&self) -> u64 {
        self.signal.pauses.load(Ordering::Relaxed)
    }

    /// The next activity; `None` once the subscription has ended (see
    /// [`Subscription::end_reason`]). Cancel-safe.
    pub async fn next(&mut self) -> Option<Activity> {
        loop {
            match self.rx.try_recv() {
                Ok(a) => return Some(self.took(a)),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            // Everything queued is taken: a paused subscription resumes now.
            if self.signal.lagging.swap(false, Ordering::AcqRel) {
                self.resume().await;
                continue;
            }
            tokio::select! {
                a = self.rx.recv() => return a.map(|a| self.took(a)),
                _ = self.signal.wake.notified() => {}
            }
        }
    }

    fn took(&mut self, a: Activity) -> Activity {
        self.last_seq = Some(a.seq);
        a
    }

    async fn resume(&self) {
        let Some((conn, frames)) = self.client.shared().resume(self.conversation) else { return };
        for bytes in frames {
            if conn.outbox.send(bytes).await.is_err() {
                return; // connection gone: the next one subscribes it
            }
        }
    }

    /// Why the subscription ended: the server refused it on a resubscription,
    /// or a reconnect was refused (an expired token…). `None` while it runs,
    /// or when it ended because the client was closed.
    pub fn end_reason(&self) -> Option<Error> {
        self.signal.end.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Unsubscribes and waits for the server's Ack: after it, nothing more of
    /// the conversation arrives on this connection.
    pub async fn unsubscribe(mut self) -> Result<()> {
        self.done = true;
        let shared = self.client.shared().clone();
        let registered = {
            let mut state = shared.lock();
            let mine = state.subs.get(&self.conversation).is_some_and(|s| Arc::ptr_eq(&s.signal, &self.signal));
            mine && state.subs.remove(&self.conversation).is_some()
        };
        if !registered {
            return Ok(());
        }
        let id = shared.next_id();
        let frame = Frame::Unsubscribe(converger_protocol::Unsubscribe {
            request_id: id,
            conversation_ids: vec![self.conversation.into_bytes()],
        });
        match self.client.call_with_id(id, frame).await {
            // A connection lost has no subscription left either.
            Ok(_) | Err(Error::ConnectionLost) | Err(Error::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.done {
            self.client.shared().drop_subscription(self.conversation, &self.signal);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("conversation", &self.conversation)
            .field("last_seq", &self.last_seq)
            .finish()
    }
}

/// Events of the client's subscribed conversations, of one kind:
/// [`TypingEvents`] ([`Client::typing_events`]) or [`MemberEvents`]
/// ([`Client::member_events`]).
#[derive(Debug)]
pub struct Events<T> {
    rx: Option<broadcast::Receiver<T>>,
}

/// Typing events ([`Client::typing_events`]).
pub type TypingEvents = Events<TypingEvent>;
/// Receipts and users online and offline ([`Client::member_events`]).
pub type MemberEvents = Events<MemberEvent>;

impl<T: Clone> Events<T> {
    pub(crate) fn new(rx: Option<broadcast::Receiver<T>>) -> Events<T> {
        Events { rx }
    }

    /// The next event; `None` once the client is closed. Events this
    /// receiver was too slow for are skipped. Cancel-safe.
    pub async fn next(&mut self) -> Option<T> {
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
