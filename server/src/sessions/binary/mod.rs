//! One binary-protocol connection (TCP or `/socket/binary`): the handshake
//! (`identity`), then requests answered by request id
//! (docs/protocol.md).
//!
//! Every request goes through the same service layer as REST and the Phoenix
//! socket. Requests are pipelined: each is a future of its own, answered when
//! done, so a publisher keeps up to [`MAX_IN_FLIGHT`] requests committing at
//! once; past that the session stops reading and TCP slows the client
//! (the protocol's client → server flow control). Subscriptions use the same
//! resume seam and encode-once fan-out as the Phoenix socket.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use converger_protocol as proto;
use converger_protocol::{
    Ack, ErrorCode, ErrorFrame, Failure, Frame, HistoryPage, PublishAck, PublishBatchAck, Subscribed, SubscribedItem,
    LIVE_ONLY,
};
use converger_storage::{Id, Scope, Written};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

mod identity;
pub mod link;
mod sink;

use crate::auth::Claims;
use crate::engine::{Engine, Ephemeral, Subscription};
use crate::net::binary::Inbound;
use crate::rt::latch::Latch;
use crate::service::activities::{fill_in_order, typing_state, ActivityInput};
use crate::service::caller::unix_now;
use crate::service::json;
use crate::service::{Caller, Hub, ServiceError};
use identity::{failure, handshake, welcome, wire_error, Identity};
use link::Link;
use sink::{to_wire, BinarySender, BinarySink};

/// Requests of one connection being answered at once; past this the session
/// stops reading until one is done.
pub const MAX_IN_FLIGHT: usize = 256;
/// Activities a History page holds at most (as a REST page).
const MAX_HISTORY: u32 = 1000;

/// How long a new connection may take to send its Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which a connection is closed (announced in Welcome).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits a connection runs with (from the config; announced in Welcome).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_frame: u32,
    pub send_queue_bytes: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The WebSocket limits apply (one frame is one message), with no
    /// per-message rate (TCP backpressure paces clients).
    pub fn from_config(config: &crate::config::Config) -> Limits {
        Limits {
            max_frame: config.ws_max_message_bytes.min(converger_protocol::MAX_FRAME_SIZE as usize) as u32,
            send_queue_bytes: config.ws_send_queue_bytes,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What a finished request leaves for the session to record.
enum Done {
    Nothing,
    /// A Subscribe's subscriptions that started, and the conversations whose
    /// did not (their places are free again).
    Subscribed {
        started: Vec<(Id, Rc<Subscription>, Active)>,
        refused: Vec<(Id, Active)>,
    },
    /// A new token took effect: its expiry.
    Reauthorized(Claims),
    /// The connection cannot go on as the client believes (a subscription
    /// that was answered could not start): close it; the client resumes.
    Close(ErrorFrame),
}

type Pending = LocalBoxFuture<'static, Done>;

/// A subscription's switch: cleared by Unsubscribe, and it names the attempt
/// (a conversation unsubscribed and subscribed again has a new one).
type Active = Rc<Cell<bool>>;

/// A subscription of this connection.
enum Sub {
    /// Being set up (the Subscribed answer and the backlog are on their way).
    Starting {
        active: Active,
    },
    Live {
        sub: Rc<Subscription>,
        active: Active,
    },
}

struct Session {
    hub: Rc<Hub>,
    engine: Rc<Engine>,
    identity: Identity,
    out: BinarySender,
    subs: HashMap<Id, Sub>,
}

/// Serves one connection until it closes. `upgrade_token` is the token a
/// `/socket/binary` upgrade was checked with: the Hello must carry the same.
pub(crate) async fn run<L: Link>(
    mut link: L,
    hub: Rc<Hub>,
    engine: Rc<Engine>,
    shutdown: Latch,
    limits: Limits,
    upgrade_token: Option<String>,
) {
    let out = link.sender();
    let identity = match handshake(&mut link, &hub, limits, upgrade_token.as_deref(), &shutdown).await {
        Ok(identity) => identity,
        Err(error) => return link.close(error).await,
    };
    let _ = out.send(welcome(&identity, limits));
    let mut session = Session { hub, engine, identity, out, subs: HashMap::new() };
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let expiry = monoio::time::sleep(session.expires_in());
    futures_util::pin_mut!(expiry);
    let mut heard = Instant::now();
    let closing = loop {
        let idle = monoio::time::sleep((heard + limits.idle_timeout).saturating_duration_since(Instant::now()));
        monoio::select! {
            inbound = link.recv(), if pending.len() < MAX_IN_FLIGHT => {
                heard = Instant::now();
                match inbound {
                    Inbound::Frame(frame) => match session.handle(frame) {
                        Ok(Some(request)) => pending.push(request),
                        Ok(None) => {}
                        Err(error) => break Some(error),
                    },
                    Inbound::Bad(e) => break Some(ErrorFrame::new(0, e.code(), e.to_string())),
                    Inbound::Closed => break None,
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => match done {
                Done::Close(error) => break Some(error),
                done => {
                    if let Some(claims) = session.record(done) {
                        expiry.set(monoio::time::sleep(expires_in(&claims)));
                    }
                }
            },
            _ = &mut expiry => break Some(ErrorFrame::new(0, ErrorCode::TokenExpired, "the client token expired")),
            _ = idle => break Some(ErrorFrame::new(0, ErrorCode::IdleTimeout, "nothing heard from the client")),
            _ = shutdown.wait() => break Some(ErrorFrame::new(0, ErrorCode::ShuttingDown, "the server is stopping")),
        }
    };
    session.unsubscribe_all();
    if let Some(error) = closing {
        link.close(error).await;
    }
}

fn expires_in(claims: &Claims) -> Duration {
    Duration::from_secs(claims.exp.saturating_sub(unix_now()).max(0) as u64)
}

impl Session {
    fn expires_in(&self) -> Duration {
        match &self.identity {
            Identity::Token(c) => expires_in(c),
            // An API key does not expire; a day-long timer that re-arms never fires in practice.
            Identity::Tenant(_) => Duration::from_secs(u32::MAX as u64),
        }
    }

    /// Answers a frame at once, or returns the future that will; an error closes the connection.
    fn handle(&mut self, frame: Frame) -> Result<Option<Pending>, ErrorFrame> {
        match frame {
            Frame::Ping(p) => self.reply(proto::Pong { payload: p.payload }),
            Frame::Pong(_) => {}
            Frame::Subscribe(s) => return Ok(self.subscribe(s)),
            Frame::Unsubscribe(u) => self.unsubscribe(u),
            Frame::Publish(p) => return Ok(self.publish(p)),
            Frame::PublishBatch(b) => return Ok(self.publish_batch(b)),
            Frame::Ephemeral(e) => return Ok(self.ephemeral(e)),
            Frame::History(h) => return Ok(self.history(h)),
            Frame::Reauth(r) => return Ok(self.reauth(r)),
            Frame::Hello(_) => return Err(ErrorFrame::new(0, ErrorCode::UnexpectedFrame, "a second Hello")),
            other => {
                let why = format!("{} is sent by the server only", other.kind().name());
                return Err(ErrorFrame::new(0, ErrorCode::UnexpectedFrame, why));
            }
        }
        Ok(None)
    }

    fn reply(&self, frame: impl Into<Frame>) {
        send(&self.out, frame.into());
    }

    /// Records what a finished request changed; a new token's claims when one took effect.
    fn record(&mut self, done: Done) -> Option<Claims> {
        match done {
            Done::Nothing => {}
            Done::Subscribed { started, refused } => {
                for (id, attempt) in refused {
                    if matches!(self.subs.get(&id), Some(Sub::Starting { active }) if Rc::ptr_eq(active, &attempt)) {
                        self.subs.remove(&id);
                    }
                }
                for (id, sub, attempt) in started {
                    let current =
                        matches!(self.subs.get(&id), Some(Sub::Starting { active }) if Rc::ptr_eq(active, &attempt));
                    if current && attempt.get() {
                        self.subs.insert(id, Sub::Live { sub, active: attempt });
                    } else {
                        // Unsubscribed while starting.
                        attempt.set(false);
                        self.engine.unsubscribe(&sub);
                    }
                }
            }
            Done::Reauthorized(claims) => {
                self.identity = Identity::Token(claims.clone());
                return Some(claims);
            }
            Done::Close(_) => {}
        }
        None
    }

    fn subscribe(&mut self, s: proto::Subscribe) -> Option<Pending> {
        // Items answered now (refused) keep their place in the answer; the rest start below.
        let mut items: Vec<Result<(Id, u64, Active), SubscribedItem>> = Vec::with_capacity(s.items.len());
        for item in &s.items {
            let conversation = Id::from_bytes(item.conversation_id);
            let refusal = if self.subs.contains_key(&conversation) {
                Some(Failure::new(ErrorCode::AlreadySubscribed, "already subscribed on this connection"))
            } else {
                self.identity.covers(conversation).err()
            };
            match refusal {
                Some(f) => items.push(Err(SubscribedItem { conversation_id: item.conversation_id, result: Err(f) })),
                None => {
                    let active = Rc::new(Cell::new(true));
                    self.subs.insert(conversation, Sub::Starting { active: active.clone() });
                    items.push(Ok((conversation, item.after_seq, active)));
                }
            }
        }
        let (hub, engine, out, identity) =
            (self.hub.clone(), self.engine.clone(), self.out.clone(), self.identity.clone());
        Some(Box::pin(async move {
            let scope = identity.scope();
            // First every item's check, for the one Subscribed answer; then the backlogs.
            let mut answer = Vec::with_capacity(items.len());
            let mut starting = Vec::new();
            let mut refused = Vec::new();
            for item in items {
                match item {
                    Err(refusal) => answer.push(refusal),
                    Ok((conversation, after_seq, active)) => {
                        let result = match follow(&hub, scope, conversation).await {
                            Ok(last_seq) => {
                                // Live only: from the conversation's last seq on.
                                let after_seq = if after_seq == LIVE_ONLY { last_seq } else { after_seq };
                                starting.push((conversation, after_seq, active));
                                Ok(last_seq)
                            }
                            Err(f) => {
                                refused.push((conversation, active));
                                Err(f)
                            }
                        };
                        answer.push(SubscribedItem { conversation_id: *conversation.as_bytes(), result });
                    }
                }
            }
            send(&out, Frame::Subscribed(Subscribed { request_id: s.request_id, items: answer }));
            let mut started = Vec::new();
            let mut broken = None;
            for (conversation, after_seq, active) in starting {
                let sink = Rc::new(BinarySink { sender: out.clone(), active: active.clone() });
                let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
                match engine.subscribe(conversation, scope, after, sink).await {
                    Ok(sub) => started.push((conversation, sub, active)),
                    Err(e) => {
                        // Already answered as subscribed: rather than a silent hole, the
                        // connection closes and the client resubscribes from its last seq.
                        tracing::warn!(%conversation, error = %e, "binary subscription could not start; closing");
                        let message = format!("the subscription to {conversation} could not start: {e}");
                        broken = Some(ErrorFrame::new(s.request_id, ErrorCode::StorageUnavailable, message));
                        refused.push((conversation, active));
                    }
                }
            }
            match broken {
                // `record` of the others is moot: the connection is closing.
                Some(error) => {
                    started.iter().for_each(|(_, sub, active)| {
                        active.set(false);
                        engine.unsubscribe(sub);
                    });
                    Done::Close(error)
                }
                None => Done::Subscribed { started, refused },
            }
        }))
    }

    fn unsubscribe(&mut self, u: proto::Unsubscribe) {
        for id in u.conversation_ids {
            match self.subs.remove(&Id::from_bytes(id)) {
                Some(Sub::Live { sub, active }) => {
                    active.set(false);
                    self.engine.unsubscribe(&sub);
                }
                // `record` unsubscribes it when it has started.
                Some(Sub::Starting { active }) => active.set(false),
                None => {}
            }
        }
        self.reply(Ack { request_id: u.request_id });
    }

    fn unsubscribe_all(&mut self) {
        for (_, sub) in self.subs.drain() {
            match sub {
                Sub::Live { sub, active } => {
                    active.set(false);
                    self.engine.unsubscribe(&sub);
                }
                Sub::Starting { active } => active.set(false),
            }
        }
    }

    /// The activity a draft asks for, or why not (answered at once).
    fn input(&self, draft: proto::Draft) -> Result<(Id, ActivityInput), Failure> {
        let conversation = Id::from_bytes(draft.conversation_id);
        self.identity.covers(conversation)?;
        let sender = self.identity.sender(&draft.sender)?;
        let kind = if draft.kind.is_empty() { None } else { Some(draft.kind) };
        ActivityInput::from_parts(kind, draft.text, draft.attachments, sender, draft.metadata, draft.idempotency_key)
            .map(|input| (conversation, input))
            .map_err(|e| failure(&e))
    }

    fn publish(&self, p: proto::Publish) -> Option<Pending> {
        let (conversation, input) = match self.input(p.activity) {
            Ok(ok) => ok,
            Err(f) => {
                self.reply(ErrorFrame::new(p.request_id, code_of(&f), f.message));
                return None;
            }
        };
        let (hub, out, caller) = (self.hub.clone(), self.out.clone(), Caller::Tenant(self.identity.tenant()));
        Some(Box::pin(async move {
            let frame = match hub.create_activity(caller, conversation, input).await {
                Ok(w) => Frame::PublishAck(PublishAck { request_id: p.request_id, written: written(&w) }),
                Err(e) => {
                    let (code, message) = wire_error(&e);
                    Frame::Error(ErrorFrame::new(p.request_id, code, message))
                }
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    fn publish_batch(&self, b: proto::PublishBatch) -> Option<Pending> {
        let inputs: Vec<Result<(Id, ActivityInput), Failure>> =
            b.activities.into_iter().map(|d| self.input(d)).collect();
        let (hub, out, caller) = (self.hub.clone(), self.out.clone(), Caller::Tenant(self.identity.tenant()));
        Some(Box::pin(async move {
            // The valid items go to their owners together (one mesh message per owner).
            let mut results: Vec<Option<Result<proto::Written, Failure>>> = Vec::with_capacity(inputs.len());
            let mut valid = Vec::new();
            for input in inputs {
                match input {
                    Ok(item) => {
                        valid.push(item);
                        results.push(None);
                    }
                    Err(f) => results.push(Some(Err(f))),
                }
            }
            let answers = hub.create_activities(caller, valid).await.into_iter().map(|r| match r {
                Ok(w) => Ok(written(&w)),
                Err(e) => Err(failure(&e)),
            });
            let results = fill_in_order(results, answers, || Err(Failure::new(ErrorCode::Internal, "internal error")));
            let whole = results.iter().all(|r| matches!(r, Err(f) if is_whole_frame(f)));
            let frame = match results.first() {
                Some(Err(f)) if whole => Frame::Error(ErrorFrame::new(b.request_id, code_of(f), f.message.clone())),
                _ => Frame::PublishBatchAck(PublishBatchAck { request_id: b.request_id, items: results }),
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    fn ephemeral(&self, e: proto::Ephemeral) -> Option<Pending> {
        let conversation = Id::from_bytes(e.conversation_id);
        let checked = (|| {
            self.identity.covers(conversation)?;
            let sender = self.identity.sender(&e.sender)?;
            if e.kind != "typing" {
                let why = format!("unknown ephemeral type `{}` (expected typing)", e.kind);
                return Err(Failure::new(ErrorCode::ValidationFailed, why));
            }
            let payload = json::object(e.data.as_bytes()).map_err(|e| failure(&ServiceError::bad_json("data", e)))?;
            let typing = typing_state(payload).map_err(|e| failure(&e))?;
            Ok(Ephemeral::Typing { sender, typing })
        })();
        let event = match checked {
            Ok(event) => event,
            Err(f) => {
                if e.request_id != 0 {
                    self.reply(ErrorFrame::new(e.request_id, code_of(&f), f.message));
                }
                return None;
            }
        };
        // A subscription here proves the conversation is the tenant's; otherwise look once.
        let subscribed = matches!(self.subs.get(&conversation), Some(Sub::Live { .. }));
        let (hub, engine, out, scope, request_id) =
            (self.hub.clone(), self.engine.clone(), self.out.clone(), self.identity.scope(), e.request_id);
        Some(Box::pin(async move {
            let result = match subscribed {
                true => Ok(()),
                false => follow(&hub, scope, conversation).await.map(|_| ()),
            }
            .and_then(|()| engine.send_ephemeral(conversation, event).map_err(|e| failure(&ServiceError::from(e))));
            if let (Err(f), true) = (result, request_id != 0) {
                send(&out, Frame::Error(ErrorFrame::new(request_id, code_of(&f), f.message)));
            }
            Done::Nothing
        }))
    }

    fn history(&self, h: proto::History) -> Option<Pending> {
        let conversation = Id::from_bytes(h.conversation_id);
        if let Err(f) = self.identity.covers(conversation) {
            self.reply(ErrorFrame::new(h.request_id, code_of(&f), f.message));
            return None;
        }
        let (hub, out, scope) = (self.hub.clone(), self.out.clone(), self.identity.scope());
        Some(Box::pin(async move {
            let after = i64::try_from(h.after_seq).unwrap_or(i64::MAX);
            let frame = match hub.list_activities(scope, conversation, after, h.limit.clamp(1, MAX_HISTORY)).await {
                Ok((activities, last_seq)) => Frame::HistoryPage(HistoryPage {
                    request_id: h.request_id,
                    conversation_id: h.conversation_id,
                    last_seq: last_seq.max(0) as u64,
                    activities: activities
                        .iter()
                        .filter(|a| h.until_seq.is_none_or(|until| a.seq.max(0) as u64 <= until))
                        .map(to_wire)
                        .collect(),
                }),
                Err(e) => {
                    let (code, message) = wire_error(&e);
                    Frame::Error(ErrorFrame::new(h.request_id, code, message))
                }
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    fn reauth(&self, r: proto::Reauth) -> Option<Pending> {
        let request_id = r.request_id;
        let answer = match (&self.identity, self.hub.verify_token(&r.token)) {
            (Identity::Tenant(_), _) => Err(Failure::new(ErrorCode::Forbidden, "an API-key connection has no token")),
            (_, Err(e)) => Err(failure(&e)),
            (Identity::Token(old), Ok(new))
                if new.tenant_id != old.tenant_id
                    || new.conversation_id != old.conversation_id
                    || new.sub != old.sub =>
            {
                Err(Failure::new(
                    ErrorCode::Forbidden,
                    "the new token must name the same tenant, conversation and sender",
                ))
            }
            (_, Ok(new)) => Ok(new),
        };
        match answer {
            Ok(claims) => {
                self.reply(Ack { request_id });
                Some(Box::pin(async move { Done::Reauthorized(claims) }))
            }
            Err(f) => {
                self.reply(ErrorFrame::new(request_id, code_of(&f), f.message));
                None
            }
        }
    }
}

/// Whether the tenant may follow `conversation`: its last seq, or why not.
async fn follow(hub: &Hub, scope: Scope, conversation: Id) -> Result<u64, Failure> {
    let Scope::Tenant(tenant) = scope else { return Err(Failure::new(ErrorCode::Forbidden, "no tenant")) };
    match hub.conversation_to_follow(tenant, conversation).await {
        Ok(c) => Ok(c.last_seq.max(0) as u64),
        Err(e) => Err(failure(&e)),
    }
}

fn send(out: &BinarySender, frame: Frame) {
    if let Err(e) = out.send(frame) {
        tracing::debug!(error = %e, "binary answer not sent");
    }
}

fn written(w: &Written) -> proto::Written {
    let a = w.activity();
    proto::Written {
        activity_id: *a.id.as_bytes(),
        seq: a.seq.max(0) as u64,
        created_at: a.created_at.as_micros(),
        replayed: matches!(w, Written::Replay(_)),
    }
}

fn code_of(f: &Failure) -> ErrorCode {
    f.error_code().unwrap_or(ErrorCode::Internal)
}

/// Failures that are the whole frame's, not one item's.
fn is_whole_frame(f: &Failure) -> bool {
    matches!(code_of(f), ErrorCode::Overloaded | ErrorCode::ShuttingDown | ErrorCode::StorageUnavailable)
}
