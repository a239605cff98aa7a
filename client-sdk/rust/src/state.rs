//! What every handle of one client shares: the current connection (if any),
//! the requests waiting for answers, the subscriptions and their resume
//! points. The connection's reader hands each frame to [`Shared::dispatch`].
//!
//! Invariants:
//! - The reader never waits on anyone: answers go to one-shot channels,
//!   activities to bounded per-subscription queues with `try_send`, typing
//!   and member
//!   events to a bounded broadcast. So the server's send queue drains at
//!   the pace of the socket, never at the pace of a consumer.
//! - A subscription hands out activities of its conversation in seq order,
//!   each exactly once, without gaps: an activity is queued only when its
//!   seq is the last queued one plus one. Anything else is a repeat
//!   (dropped) or follows a loss (the subscription resumes from its last
//!   seq, see [`Flow`]).
//! - A pending request belongs to the connection it was written on: when
//!   that connection ends its entry is dropped and the caller gets
//!   [`Error::ConnectionLost`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use converger_protocol::{ErrorCode, Frame, Subscribe, SubscribeItem, Subscribed, Unsubscribe, Version};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify, Semaphore};
use tracing::debug;
use uuid::Uuid;

use crate::codec::encode;
use crate::error::{Error, ProtocolError, ServerError};
use crate::types::{Activity, Credential, MemberEvent, TypingEvent, Welcome};
use crate::Options;

/// Subscribe items per frame when a reconnect subscribes everything again
/// (24 bytes each: about 100 KB per frame).
const RESUBSCRIBE_CHUNK: usize = 4096;

pub(crate) struct Shared {
    pub options: Options,
    state: Mutex<State>,
    next_id: AtomicU32,
    /// The number of connections made so far; it notifies when one is up and
    /// when the client closes, so requests waiting for a connection look again.
    pub conn_changed: watch::Sender<u64>,
    pub closed: watch::Sender<bool>,
    typing: Mutex<Option<broadcast::Sender<TypingEvent>>>,
    /// Receipts and users online and offline (protocol version 2).
    members: Mutex<Option<broadcast::Sender<MemberEvent>>>,
    pub in_flight: Semaphore,
}

pub(crate) struct State {
    pub addr: String,
    pub credential: Credential,
    pub welcome: Welcome,
    pub conn: Option<Conn>,
    generation: u64,
    pending: HashMap<u32, Pending>,
    pub subs: HashMap<Uuid, SubState>,
    /// `Some` once closed, with the reason (`None`: closed by the application).
    pub closed: Option<Option<Error>>,
}

/// The connection requests are written to.
#[derive(Clone)]
pub(crate) struct Conn {
    pub generation: u64,
    /// The protocol version its frames are encoded in.
    pub version: Version,
    pub outbox: mpsc::Sender<Bytes>,
    /// Ends the connection (the client then reconnects).
    pub kill: Arc<Notify>,
}

struct Pending {
    generation: u64,
    /// `None`: nobody waits (the client's own Subscribe and Unsubscribe).
    reply: Option<oneshot::Sender<Frame>>,
}

/// Where a subscription's stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Subscribed on the current connection: activities are queued.
    Live,
    /// A Subscribe is on its way (first one, after a reconnect, after a lag):
    /// activities that follow the last one are queued, others dropped; the
    /// backlog of the new subscription brings the rest.
    Resuming,
    /// The consumer's queue was full (or an activity was missing): nothing
    /// more is queued until the consumer has taken everything, then it
    /// resubscribes from its last seq ([`crate::Subscription::next`]).
    Lagging,
}

pub(crate) struct SubState {
    tx: mpsc::Sender<Activity>,
    /// The last seq queued (the resume point); `None` for a live-only
    /// subscription before its Subscribed answer.
    pub last: Option<u64>,
    pub flow: Flow,
    /// The Subscribe whose answer counts (earlier ones are stale).
    pub request: u32,
    pub signal: Arc<SubSignal>,
}

/// What became of an activity offered to a subscription.
enum Offer {
    /// Queued, or dropped as a repeat or while paused.
    Taken,
    /// Not queued: the subscription just paused.
    Paused,
    /// The consumer is gone.
    Gone,
}

/// Shared between a [`SubState`] and its [`crate::Subscription`].
#[derive(Default)]
pub(crate) struct SubSignal {
    pub lagging: AtomicBool,
    /// Times the subscription paused (a statistic for the consumer).
    pub pauses: AtomicU64,
    pub wake: Notify,
    pub end: Mutex<Option<Error>>,
}

impl SubState {
    pub fn new(tx: mpsc::Sender<Activity>, last: Option<u64>, request: u32, signal: Arc<SubSignal>) -> SubState {
        SubState { tx, last, flow: Flow::Resuming, request, signal }
    }

    fn lag(&mut self) {
        self.flow = Flow::Lagging;
        self.signal.pauses.fetch_add(1, Ordering::Relaxed);
        self.signal.lagging.store(true, Ordering::Release);
        self.signal.wake.notify_one();
    }

    /// Queues `a` if it is the next one.
    fn offer(&mut self, a: Activity) -> Offer {
        let next = match self.last {
            Some(last) if a.seq <= last => return Offer::Taken, // a repeat: seen already
            Some(last) => last + 1,
            None => a.seq,
        };
        if self.flow == Flow::Lagging {
            return Offer::Taken;
        }
        if a.seq != next {
            if self.flow == Flow::Live {
                debug!(seq = a.seq, expected = next, "activity missing: resuming the subscription");
                self.lag();
                return Offer::Paused;
            }
            return Offer::Taken;
        }
        let seq = a.seq;
        match self.tx.try_send(a) {
            Ok(()) => {
                self.last = Some(seq);
                Offer::Taken
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(seq, "subscriber queue full: pausing until the consumer catches up");
                self.lag();
                Offer::Paused
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }

    /// Ends the stream: the consumer takes what is queued, then `None`.
    fn end(self, reason: Option<Error>) {
        *self.signal.end.lock().unwrap_or_else(|e| e.into_inner()) = reason;
        self.signal.wake.notify_one();
    }
}

impl Shared {
    pub fn new(options: Options, addr: String, credential: Credential, welcome: Welcome) -> Shared {
        let (typing, _) = broadcast::channel(options.typing_buffer.max(1));
        let (members, _) = broadcast::channel(options.typing_buffer.max(1));
        Shared {
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            options,
            state: Mutex::new(State {
                addr,
                credential,
                welcome,
                conn: None,
                generation: 0,
                pending: HashMap::new(),
                subs: HashMap::new(),
                closed: None,
            }),
            next_id: AtomicU32::new(1),
            conn_changed: watch::channel(0).0,
            closed: watch::channel(false).0,
            typing: Mutex::new(Some(typing)),
            members: Mutex::new(Some(members)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent maps: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request id: never 0 (0 means "no request" in Error frames).
    pub fn next_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    pub fn typing_receiver(&self) -> Option<broadcast::Receiver<TypingEvent>> {
        self.typing.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(broadcast::Sender::subscribe)
    }

    pub fn member_receiver(&self) -> Option<broadcast::Receiver<MemberEvent>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(broadcast::Sender::subscribe)
    }

    /// Registers request `id` on the current connection, if there is one
    /// (then `reply` moves into the pending map).
    pub fn register(&self, id: u32, reply: &mut Option<oneshot::Sender<Frame>>) -> Result<Option<Conn>, Error> {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Err(Error::Closed);
        }
        let Some(conn) = state.conn.clone() else { return Ok(None) };
        state.pending.insert(id, Pending { generation: conn.generation, reply: reply.take() });
        Ok(Some(conn))
    }

    pub fn forget(&self, id: u32) {
        self.lock().pending.remove(&id);
    }

    /// A new connection is up: requests may use it, and every subscription
    /// not lagging is subscribed again from its last seq. `None` when the
    /// client was closed meanwhile.
    pub fn connected(
        &self,
        outbox: mpsc::Sender<Bytes>,
        kill: Arc<Notify>,
        welcome: Welcome,
        version: Version,
    ) -> Option<u64> {
        let mut state = self.lock();
        if state.closed.is_some() {
            return None;
        }
        state.generation += 1;
        let generation = state.generation;
        state.welcome = welcome;
        let mut items = Vec::new();
        for (id, sub) in state.subs.iter_mut().filter(|(_, s)| s.flow != Flow::Lagging) {
            sub.flow = Flow::Resuming;
            items.push((*id, sub.last));
        }
        for chunk in items.chunks(RESUBSCRIBE_CHUNK) {
            let request_id = self.next_id();
            let items = chunk
                .iter()
                .map(|(id, last)| SubscribeItem {
                    conversation_id: id.into_bytes(),
                    after_seq: last.unwrap_or(converger_protocol::LIVE_ONLY),
                })
                .collect();
            for (id, _) in chunk {
                if let Some(sub) = state.subs.get_mut(id) {
                    sub.request = request_id;
                }
            }
            // The outbox is new and has room for this many frames.
            let queued = encode(&Frame::Subscribe(Subscribe { request_id, items }), version)
                .is_ok_and(|bytes| outbox.try_send(bytes).is_ok());
            if queued {
                state.pending.insert(request_id, Pending { generation, reply: None });
            } else {
                debug!("could not queue a resubscription");
            }
        }
        state.conn = Some(Conn { generation, version, outbox, kill });
        drop(state);
        self.conn_changed.send_modify(|n| *n += 1);
        Some(generation)
    }

    /// Connection `generation` ended: its requests fail, subscriptions wait
    /// for the next one.
    pub fn disconnected(&self, generation: u64) {
        let mut state = self.lock();
        if state.conn.as_ref().is_some_and(|c| c.generation == generation) {
            state.conn = None;
        }
        state.pending.retain(|_, p| p.generation != generation);
        for sub in state.subs.values_mut().filter(|s| s.flow == Flow::Live) {
            sub.flow = Flow::Resuming;
        }
    }

    /// Closes the client for good: requests fail with `Closed`, subscriptions
    /// end (with `reason`, if any) once their queues are drained.
    pub fn close(&self, reason: Option<Error>) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        state.closed = Some(reason.clone());
        state.conn = None;
        state.pending.clear();
        for (_, sub) in state.subs.drain() {
            sub.end(reason.clone());
        }
        drop(state);
        self.typing.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.members.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.closed.send_replace(true);
        // Wakes requests waiting for a connection (the count stays).
        self.conn_changed.send_modify(|_| {});
    }

    /// Handles one frame from the server, which came on a connection
    /// speaking `version` whose outbox is `outbox`. `Some(error)`: the
    /// connection ends.
    pub fn dispatch(&self, frame: Frame, outbox: &mpsc::Sender<Bytes>, version: Version) -> Option<Error> {
        match frame {
            Frame::Deliver(d) => {
                let mut state = self.lock();
                for a in d.activities {
                    let conversation = Uuid::from_bytes(a.conversation_id);
                    let Some(sub) = state.subs.get_mut(&conversation) else { continue };
                    match sub.offer(a.into()) {
                        Offer::Taken => {}
                        // Stop the stream until the consumer resumes it (best effort:
                        // what still comes is dropped). Nobody waits for the Ack.
                        Offer::Paused => self.unsubscribe_now(conversation, outbox, version),
                        Offer::Gone => {
                            state.subs.remove(&conversation);
                            self.unsubscribe_now(conversation, outbox, version);
                        }
                    }
                }
            }
            Frame::Subscribed(s) => {
                self.on_subscribed(&s);
                self.resolve(s.request_id, Frame::Subscribed(s));
            }
            Frame::PublishAck(ref a) => {
                self.resolve(a.request_id, frame);
            }
            Frame::PublishBatchAck(ref a) => {
                let id = a.request_id;
                self.resolve(id, frame);
            }
            Frame::HistoryPage(ref p) => {
                let id = p.request_id;
                self.resolve(id, frame);
            }
            Frame::Ack(a) => {
                self.resolve(a.request_id, frame);
            }
            Frame::Pong(p) => {
                // Keepalive pings carry 0; `Client::ping` uses its request id.
                if let Ok(id @ 1..) = u32::try_from(p.payload) {
                    self.resolve(id, frame);
                }
            }
            Frame::Ping(p) => {
                let pong = Frame::Pong(converger_protocol::Pong { payload: p.payload });
                // A full outbox means the server is hearing from us anyway.
                if let Ok(bytes) = encode(&pong, version) {
                    let _ = outbox.try_send(bytes);
                }
            }
            // The server ended the subscription (docs/api.md "Disconnecting
            // clients"): it ends here with the reason, and is not resumed.
            Frame::Ephemeral(ref e) if e.kind == "disconnected" => {
                let conversation = Uuid::from_bytes(e.conversation_id);
                let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
                let code = data["code"].as_str().and_then(ErrorCode::from_name).unwrap_or(ErrorCode::Disconnected);
                let reason = data["reason"].as_str().unwrap_or_default();
                if let Some(sub) = self.lock().subs.remove(&conversation) {
                    sub.end(Some(Error::Server(ServerError::new(code, reason))));
                }
            }
            Frame::Ephemeral(ref e) => {
                // No receiver: nobody listens. Types this version does not know are ignored.
                if let Some(event) = TypingEvent::from_frame(e) {
                    if let Some(tx) = self.typing.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        let _ = tx.send(event);
                    }
                } else if let Some(event) = MemberEvent::from_frame(e) {
                    if let Some(tx) = self.members.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        let _ = tx.send(event);
                    }
                }
            }
            Frame::Error(e) => {
                let error = ServerError::from(&e);
                if e.request_id != 0 && !self.resolve(e.request_id, Frame::Error(e.clone())) {
                    self.on_late_error(e.request_id, &error);
                }
                if e.close {
                    return Some(Error::Server(error));
                }
                if e.request_id == 0 {
                    debug!(%error, "error from the server");
                }
            }
            other => return Some(Error::Protocol(ProtocolError::Unexpected(other.kind().name()))),
        }
        None
    }

    /// Hands an answer to whoever waits for request `id`; false if nobody
    /// had asked it.
    fn resolve(&self, id: u32, frame: Frame) -> bool {
        let Some(pending) = self.lock().pending.remove(&id) else { return false };
        match (pending.reply, &frame) {
            (Some(reply), _) => {
                let _ = reply.send(frame); // the caller may have given up
            }
            (None, Frame::Error(e)) => debug!(request = id, error = %ServerError::from(e), "refused"),
            (None, _) => {}
        }
        true
    }

    fn on_subscribed(&self, s: &Subscribed) {
        let mut state = self.lock();
        for item in &s.items {
            let id = Uuid::from_bytes(item.conversation_id);
            let Some(sub) = state.subs.get_mut(&id).filter(|sub| sub.request == s.request_id) else { continue };
            match &item.result {
                Ok(last_seq) => {
                    if sub.flow == Flow::Resuming {
                        sub.flow = Flow::Live;
                    }
                    sub.last.get_or_insert(*last_seq);
                }
                // Our own repeat (a reconnect and a resume crossed): the stream is on.
                Err(f) if f.code == ErrorCode::AlreadySubscribed.code() => {}
                Err(f) => {
                    let reason = Error::Server(ServerError::from(f.clone()));
                    if let Some(sub) = state.subs.remove(&id) {
                        sub.end(Some(reason));
                    }
                }
            }
        }
    }

    /// An Error for a request already answered: a subscription that was
    /// accepted and then could not start. It resumes like a lagging one.
    fn on_late_error(&self, request: u32, error: &ServerError) {
        let mut state = self.lock();
        for sub in state.subs.values_mut().filter(|s| s.request == request) {
            debug!(%error, "subscription did not start: resuming it");
            sub.lag();
        }
    }

    /// The consumer of a lagging subscription has taken everything: pause no
    /// more, and subscribe again from its last seq. The frames to send, if a
    /// connection is up (otherwise the next connection subscribes it).
    pub fn resume(&self, conversation: Uuid) -> Option<(Conn, [Bytes; 2])> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let request = self.next_id();
        let sub = state.subs.get_mut(&conversation).filter(|s| s.flow == Flow::Lagging)?;
        sub.flow = Flow::Resuming;
        sub.request = request;
        let after_seq = sub.last.unwrap_or(converger_protocol::LIVE_ONLY);
        let conn = state.conn.clone()?;
        let unsubscribe = self.next_id();
        let frames = [
            Frame::Unsubscribe(Unsubscribe {
                request_id: unsubscribe,
                conversation_ids: vec![conversation.into_bytes()],
            }),
            Frame::Subscribe(Subscribe {
                request_id: request,
                items: vec![SubscribeItem { conversation_id: conversation.into_bytes(), after_seq }],
            }),
        ];
        let [Ok(a), Ok(b)] = frames.map(|f| encode(&f, conn.version)) else { return None };
        for id in [unsubscribe, request] {
            state.pending.insert(id, Pending { generation: conn.generation, reply: None });
        }
        Some((conn, [a, b]))
    }

    /// Queues an Unsubscribe if the outbox has room (never waits).
    fn unsubscribe_now(&self, conversation: Uuid, outbox: &mpsc::Sender<Bytes>, version: Version) {
        let request_id = self.next_id();
        let frame = Frame::Unsubscribe(Unsubscribe { request_id, conversation_ids: vec![conversation.into_bytes()] });
        if let Ok(bytes) = encode(&frame, version) {
            let _ = outbox.try_send(bytes);
        }
    }

    /// A [`crate::Subscription`] is gone: forget it (if it is still the one
    /// registered) and tell the server, if that can be done without waiting.
    pub fn drop_subscription(&self, conversation: Uuid, signal: &Arc<SubSignal>) {
        let mut state = self.lock();
        if !state.subs.get(&conversation).is_some_and(|s| Arc::ptr_eq(&s.signal, signal)) {
            return;
        }
        state.subs.remove(&conversation);
        // If the outbox is full the server keeps sending it and the reader
        // drops it: harmless, and gone at the next reconnect.
        if let Some(conn) = &state.conn {
            self.unsubscribe_now(conversation, &conn.outbox, conn.version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(seq: u64) -> Activity {
        Activity {
            id: Uuid::nil(),
            conversation_id: Uuid::nil(),
            seq,
            created_at: 0,
            kind: "message".into(),
            sender: "u".into(),
            text: None,
            attachments: None,
            metadata: "{}".into(),
            idempotency_key: None,
            target_id: None,
            parent_id: None,
            state: None,
        }
    }

    fn sub(buffer: usize, last: Option<u64>) -> (SubState, mpsc::Receiver<Activity>) {
        let (tx, rx) = mpsc::channel(buffer);
        let mut s = SubState::new(tx, last, 1, Arc::new(SubSignal::default()));
        s.flow = Flow::Live;
        (s, rx)
    }

    fn queued(rx: &mut mpsc::Receiver<Activity>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|a| a.seq).collect()
    }

    #[test]
    fn repeats_are_dropped_and_the_next_seq_is_queued() {
        let (mut s, mut rx) = sub(8, Some(2));
        for seq in [1, 2, 3, 3, 4, 2, 5] {
            assert!(matches!(s.offer(activity(seq)), Offer::Taken));
        }
        assert_eq!(queued(&mut rx), [3, 4, 5]);
        assert_eq!((s.last, s.flow), (Some(5), Flow::Live));
    }

    #[test]
    fn a_gap_pauses_a_live_subscription_and_is_ignored_while_resuming() {
        let (mut s, mut rx) = sub(8, Some(0));
        assert!(matches!(s.offer(activity(1)), Offer::Taken));
        assert!(matches!(s.offer(activity(3)), Offer::Paused));
        assert_eq!((s.flow, s.signal.lagging.load(Ordering::Acquire)), (Flow::Lagging, true));
        assert!(matches!(s.offer(activity(2)), Offer::Taken), "nothing is queued while paused");
        s.flow = Flow::Resuming;
        assert!(matches!(s.offer(activity(4)), Offer::Taken));
        assert!(matches!(s.offer(activity(2)), Offer::Taken));
        assert_eq!(queued(&mut rx), [1, 2]);
        assert_eq!((s.last, s.flow, s.signal.pauses.load(Ordering::Relaxed)), (Some(2), Flow::Resuming, 1));
    }

    #[test]
    fn a_full_queue_pauses_without_losing_the_resume_point() {
        let (mut s, mut rx) = sub(2, None);
        assert!(matches!(s.offer(activity(7)), Offer::Taken), "live only: the first one sets the start");
        assert!(matches!(s.offer(activity(8)), Offer::Taken));
        assert!(matches!(s.offer(activity(9)), Offer::Paused));
        assert!(matches!(s.offer(activity(10)), Offer::Taken));
        assert_eq!((queued(&mut rx), s.last), (vec![7, 8], Some(8)));
        drop(rx);
        s.flow = Flow::Live;
        assert!(matches!(s.offer(activity(9)), Offer::Gone));
    }
}
