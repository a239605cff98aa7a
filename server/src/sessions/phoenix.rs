//! One Phoenix Channels V2 socket: `phx_join` / `phx_leave` of
//! `conversation:{id}` and `chat:{id}` topics, heartbeats on `phoenix`, and
//! the client events of either naming ([`super::phoenix_events`]): writes
//! (persisted through the service layer, replied with the stored activity),
//! typing (ephemeral) and receipts (replied with the member). The topic picks
//! the names of the server's pushes: Converger's on `conversation:`,
//! QuckChat's on `chat:`.
//!
//! The socket's client token names one tenant, one conversation and the
//! sender the client acts as: a join of another topic is refused, writes carry
//! the token's sender. A join replies `ok` first, then the backlog after the
//! join's `last_seq` arrives as `activity` events in seq order, then the live
//! stream (see the module above for the seam). The token's expiry closes the
//! socket (1008 `token expired`); so does silence longer than the heartbeat
//! timeout.
//!
//! Writes are pipelined: a push is admitted and handed to its conversation's
//! owner before the next message is read, and its reply waits for the commit
//! in a queue of up to [`MAX_IN_FLIGHT`] answers. Replies leave in the order
//! the messages came (so writes are answered in seq order); with the queue
//! full the session stops reading and TCP slows the client. A join or leave
//! first lets the answers before it out.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::future::{self, LocalBoxFuture};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use converger_storage::{Id, Receipts, Scope, Timestamp};
use serde_json::{json, Map, Value};

use super::phoenix_events::{client_event, rename_fields, ClientEvent, Command, Naming};
use super::phoenix_sink::PhoenixSink;
use crate::auth::Claims;
use crate::engine::{Engine, Ephemeral, Meta, Subscription};
use crate::metrics::Transport;
use crate::net::ws::phoenix::{self, Inbound, Status as Reply};
use crate::net::ws::{Incoming, WsSender, WsSocket};
use crate::rt::coarse;
use crate::service::activities::ActivityInput;
use crate::service::caller::{token_sender, unix_now};
use crate::service::input::parse_id;
use crate::service::json;
use crate::service::{Caller, Hub, ServiceError};

/// Phoenix clients heartbeat every 30 s; a socket silent for this long is gone.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// Answers of one socket waiting for their turn (writes committing); past
/// this the session stops reading until the oldest is sent.
pub const MAX_IN_FLIGHT: usize = 256;

/// A reply (or the joiner's `presence_state`) on its way out: what to send
/// once its answer is known.
type Queued = LocalBoxFuture<'static, Out>;

/// What a queued answer sends.
enum Out {
    /// Nothing (a message that wanted no reply).
    Nothing,
    Frame(Bytes),
    /// One frame in pieces, a shared payload among them.
    Pieces([Bytes; 3]),
}

impl From<Option<Bytes>> for Out {
    fn from(frame: Option<Bytes>) -> Out {
        frame.map_or(Out::Nothing, Out::Frame)
    }
}

/// What an event answers once done.
type Answer = LocalBoxFuture<'static, Result<Value, ServiceError>>;

struct Joined {
    topic: String,
    join_ref: Option<String>,
    /// The session's number for this join (see [`PhoenixSink::join`]).
    join: u64,
    conversation: Id,
    sub: Rc<Subscription>,
    phx_ref: String,
}

struct Session {
    hub: Rc<Hub>,
    engine: Rc<Engine>,
    claims: Claims,
    sender: WsSender,
    /// What this socket joined (a token names one conversation: rarely more than one).
    joined: Vec<Joined>,
    /// Rate-limit refusals since the last write that passed: past
    /// [`MAX_REFUSED_IN_A_ROW`] the client is not slowing down, and is closed.
    refused_in_a_row: u32,
    /// Joins the server ended (a disconnect, a close), by number; see
    /// [`PhoenixSink::ended`] for the bound.
    ended: mpsc::UnboundedSender<u64>,
    joins: u64,
    /// Replies in the order their messages came, each sent once it and all
    /// before it are ready.
    replies: Replies,
}

/// The replies waiting for their turn; nothing allocated while there are none
/// (most of the time, for most sockets).
#[derive(Default)]
struct Replies(Option<FuturesOrdered<Queued>>);

impl Replies {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&mut self, reply: Queued) {
        self.0.get_or_insert_with(FuturesOrdered::new).push_back(reply);
    }

    /// The next reply in order, once ready; `None` when there are none.
    async fn next(&mut self) -> Option<Out> {
        let queue = self.0.as_mut()?;
        let next = queue.next().await;
        if queue.is_empty() {
            self.0 = None;
        }
        next
    }
}

/// Rate-limited writes in a row after which the socket is closed 1008.
const MAX_REFUSED_IN_A_ROW: u32 = 20;

/// Serves one upgraded socket until it closes.
pub async fn run(mut ws: WsSocket, hub: Rc<Hub>, engine: Rc<Engine>, claims: Claims) {
    let open = hub.metrics.socket_opened(Transport::Phoenix);
    ws.sender().on_overflow(open.overflow_counter());
    let expires_at = Instant::now() + Duration::from_secs(claims.exp.saturating_sub(unix_now()).max(0) as u64);
    // The user is online while this socket lives (a watcher, the console, is nobody).
    let _online = (!claims.watch).then(|| engine.user_connected(claims.tenant_id, &claims.sub));
    let (ended, mut ended_joins) = mpsc::unbounded();
    let mut session = Session {
        hub,
        engine,
        claims,
        sender: ws.sender(),
        joined: Vec::new(),
        refused_in_a_row: 0,
        ended,
        joins: 0,
        replies: Replies::default(),
    };
    let mut heard = Instant::now();
    let (code, reason) = loop {
        // One coarse timer for both deadlines: a timer is a large part of an idle socket.
        let wake = coarse::sleep_until(expires_at.min(heard + HEARTBEAT_TIMEOUT));
        let incoming = monoio::select! {
            m = ws.recv(), if session.replies.len() < MAX_IN_FLIGHT => m,
            Some(frame) = session.replies.next(), if !session.replies.is_empty() => {
                session.send(frame);
                continue;
            }
            Some(join) = ended_joins.next() => {
                session.forget_ended(join);
                continue;
            }
            _ = wake => match Instant::now() >= expires_at {
                true => break (1008, "token expired".to_string()),
                false => break (1000, "heartbeat timeout".to_string()),
            },
        };
        heard = Instant::now();
        let parsed = match incoming {
            Incoming::Text(text) => phoenix::parse_text(&text),
            // A binary push's data is the payload; Converger's events take JSON objects.
            Incoming::Binary(frame) => phoenix::parse_binary(&frame).map(|push| Inbound {
                join_ref: Some(push.join_ref),
                msg_ref: Some(push.msg_ref),
                topic: push.topic,
                event: push.event,
                payload: push.data,
            }),
            Incoming::Closed(_) => {
                session.leave_all();
                return;
            }
        };
        match parsed {
            Ok(message) => {
                // Boxed: handling a join awaits deep futures (the store, the
                // owner), and unboxed their state would be part of every idle
                // socket's session, several KiB each.
                Box::pin(session.handle(message)).await;
                if session.refused_in_a_row > MAX_REFUSED_IN_A_ROW {
                    session.drain().await;
                    break (1008, "rate limit".to_string());
                }
            }
            Err(e) => break (1003, format!("not a Phoenix V2 message: {e}")),
        }
    };
    session.leave_all();
    ws.close(code, &reason).await;
}

impl Session {
    async fn handle(&mut self, m: Inbound) {
        // Every payload is strict JSON, checked as REST bodies are; empty reads as `{}`.
        let payload = match m.payload.iter().all(u8::is_ascii_whitespace) {
            true => Ok(Map::new()),
            false => json::object(&m.payload).map_err(ServiceError::from),
        };
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => return self.reply(&m, Reply::Error, error_response(&e)),
        };
        match (m.topic.as_str(), m.event.as_str()) {
            ("phoenix", "heartbeat") => self.reply(&m, Reply::Ok, json!({})),
            (_, "phx_join") => {
                self.drain().await;
                self.join(m, payload).await
            }
            (_, "phx_leave") => {
                self.drain().await;
                self.leave(m)
            }
            _ => self.client_event(m, payload).await,
        }
    }

    /// An event of either naming on a joined topic.
    async fn client_event(&mut self, m: Inbound, payload: Map<String, Value>) {
        let Some(conversation) = self.joined.iter().find(|j| j.topic == m.topic).map(|j| j.conversation) else {
            return self.reply(&m, Reply::Error, json!({"reason": "unmatched topic"}));
        };
        let event = match client_event(&m.event, payload) {
            None => return self.reply(&m, Reply::Error, json!({"reason": format!("unknown event `{}`", m.event)})),
            Some(Err(e)) => return self.reply(&m, Reply::Error, error_response(&e)),
            Some(Ok(event)) => event,
        };
        let ClientEvent { command, renames } = event;
        let limited = !matches!(command, Command::Typing(_));
        let answer = match command {
            Command::Write(payload) => self.write(conversation, payload).await,
            Command::Typing(typing) => self.typing(conversation, typing),
            Command::Receipt(receipts) => self.receipt(conversation, receipts).await,
        };
        // A client that goes on writing while refused is closed (see the loop in `run`).
        if limited {
            self.refused_in_a_row = match &answer {
                Err(ServiceError::RateLimited { .. }) => self.refused_in_a_row + 1,
                _ => 0,
            };
        }
        let answer = answer.unwrap_or_else(|e| Box::pin(future::ready(Err(e))));
        let to = ReplyTo::of(&m);
        self.replies.push_back(Box::pin(async move {
            let frame = match answer.await {
                Ok(response) => to.frame(Reply::Ok, &response),
                Err(e) => {
                    let mut response = error_response(&e);
                    rename_fields(&renames, &mut response);
                    to.frame(Reply::Error, &response)
                }
            };
            frame.into()
        }));
    }

    async fn join(&mut self, m: Inbound, payload: Map<String, Value>) {
        let Some((naming, conversation)) =
            Naming::of_topic(&m.topic).and_then(|(naming, id)| Some((naming, parse_id(id)?)))
        else {
            return self.reply(&m, Reply::Error, json!({"reason": "unmatched topic"}));
        };
        if conversation != self.claims.conversation_id {
            return self.reply(
                &m,
                Reply::Error,
                json!({"reason": "unauthorized: the token is for another conversation"}),
            );
        }
        // By conversation, not by topic text: the id may be written in either
        // case, and two spellings must not subscribe twice.
        if self.joined.iter().any(|j| j.conversation == conversation) {
            return self.reply(&m, Reply::Error, json!({"reason": "already joined"}));
        }
        let cap = self.hub.config.edge.max_subscriptions_per_connection;
        if self.joined.len() >= cap {
            let reason = format!("this socket already follows {cap} conversations, the most allowed");
            return self.reply(&m, Reply::Error, json!({"reason": reason, "code": "too_many_subscriptions"}));
        }
        let last_seq = match payload.get("last_seq") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_i64().filter(|n| *n >= 0) {
                Some(n) => n,
                None => {
                    let reason = "last_seq must be a non-negative integer";
                    let response = json!({"reason": reason, "code": "validation_failed", "field": "last_seq"});
                    return self.reply(&m, Reply::Error, response);
                }
            },
        };
        if let Err(e) = self.hub.conversation_to_follow(self.claims.tenant_id, conversation).await {
            return self.reply(&m, Reply::Error, error_response(&e));
        }
        let scope = Scope::Tenant(self.claims.tenant_id);
        self.joins += 1;
        let join = self.joins;
        let sink = Rc::new(PhoenixSink {
            sender: self.sender.clone(),
            naming,
            topic: m.topic.clone(),
            join_ref: m.join_ref.clone().unwrap_or_default(),
            join,
            client: (!self.claims.watch).then(|| self.claims.sub.clone()),
            ended: self.ended.clone(),
        });
        // Registered first (as Phoenix subscribes before it answers): what is
        // committed or signalled after the `ok` reaches this socket. Then the
        // reply, then the backlog, then the live stream.
        let sub = match self.engine.start_subscription(conversation, scope, last_seq, sink).await {
            Ok(sub) => sub,
            Err(e) => return self.reply(&m, Reply::Error, error_response(&ServiceError::from(e))),
        };
        self.reply(&m, Reply::Ok, json!({}));
        if let Err(e) = self.engine.finish_subscription(&sub).await {
            let join_ref = m.join_ref.as_deref().unwrap_or_default();
            let _ = self.sender.send_frame(phoenix::error(join_ref, &m.topic, &ServiceError::from(e).public().message));
            return;
        }
        let phx_ref = format!("{}", converger_storage::new_id().simple());
        let meta = Meta { phx_ref: phx_ref.clone(), online_at: Timestamp::now() };
        // A watcher (the admin console) reads the stream without being seen.
        // The state comes at the owner's next presence tick, shared with the
        // tick's other joiners; it waits in the reply queue, so the socket
        // reads on meanwhile and what it is answered later comes after it.
        if !self.claims.watch {
            match self.engine.presence_join(conversation, self.claims.sub.clone(), meta) {
                Ok(state) => {
                    let (join_ref, topic) = (m.join_ref.clone().unwrap_or_default(), m.topic.clone());
                    self.replies.push_back(Box::pin(async move {
                        match state.await {
                            Ok(state) => {
                                Out::Pieces(phoenix::push_encoded(&join_ref, &topic, "presence_state", &state))
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "presence join failed");
                                Out::Nothing
                            }
                        }
                    }));
                }
                Err(e) => tracing::debug!(error = %e, "presence join failed"),
            }
        }
        self.joined.reserve_exact(1);
        self.joined.push(Joined { topic: m.topic, join_ref: m.join_ref, join, conversation, sub, phx_ref });
    }

    fn leave(&mut self, m: Inbound) {
        match self.joined.iter().position(|j| j.topic == m.topic) {
            Some(at) => {
                let j = self.joined.swap_remove(at);
                self.drop_joined(j);
                self.reply(&m, Reply::Ok, json!({}));
                let _ = self.sender.send_frame(phoenix::close(m.join_ref.as_deref().unwrap_or_default(), &m.topic));
            }
            None => self.reply(&m, Reply::Error, json!({"reason": "unmatched topic"})),
        }
    }

    /// Writes an activity as the token's sender: admitted and at its owner
    /// when this returns; answers the stored activity once committed.
    async fn write(&mut self, conversation: Id, mut payload: Map<String, Value>) -> Result<Answer, ServiceError> {
        // The socket acts as the token's sender: a payload may name it, never another.
        let sender = match payload.remove("sender") {
            None | Some(Value::Null) => token_sender(&self.claims, None),
            Some(Value::String(given)) => token_sender(&self.claims, Some(&given)),
            Some(_) => Err(ServiceError::invalid("sender", "`sender` must be a string")),
        }?;
        payload.insert("sender".into(), Value::String(sender));
        let input = ActivityInput::from_json(payload, None)?.by_client();
        let caller = Caller::Tenant(self.claims.tenant_id);
        let pending = self.hub.submit_activity(caller, conversation, input, None).await?;
        Ok(Box::pin(async move {
            let written = pending.await?;
            Ok(serde_json::to_value(written.activity()).unwrap_or_default())
        }))
    }

    fn typing(&mut self, conversation: Id, typing: bool) -> Result<Answer, ServiceError> {
        let event = Ephemeral::Typing { sender: self.claims.sub.clone(), typing };
        self.engine.send_ephemeral(conversation, event)?;
        Ok(Box::pin(future::ready(Ok(json!({})))))
    }

    /// Moves the token's sender's receipts forward; answers the member. It
    /// costs what its REST twin (`POST …/members/{sender}/receipts`) does: one
    /// of the tenant's requests.
    async fn receipt(&mut self, conversation: Id, receipts: Receipts) -> Result<Answer, ServiceError> {
        self.hub.admit_request(self.claims.tenant_id).await?;
        let scope = Scope::Tenant(self.claims.tenant_id);
        let (hub, sub) = (self.hub.clone(), self.claims.sub.clone());
        Ok(Box::pin(async move {
            let member = hub.update_receipts(scope, conversation, &sub, receipts).await?;
            Ok(serde_json::to_value(member).unwrap_or_default())
        }))
    }

    /// Answers a client message that carried a ref (Phoenix pushes do; a
    /// ref-less one gets nothing): at once, or after the answers before it.
    fn reply(&mut self, m: &Inbound, status: Reply, response: Value) {
        let out = Out::from(reply_frame(m.join_ref.as_deref(), m.msg_ref.as_deref(), &m.topic, status, &response));
        match self.replies.is_empty() {
            true => self.send(out),
            false => self.replies.push_back(Box::pin(future::ready(out))),
        }
    }

    fn send(&self, out: Out) {
        let _ = match out {
            Out::Nothing => Ok(()),
            Out::Frame(frame) => self.sender.send_frame(frame),
            Out::Pieces(pieces) => self.sender.send_chunks(pieces),
        };
    }

    /// Sends every queued reply, waiting for those still committing.
    async fn drain(&mut self) {
        while let Some(frame) = self.replies.next().await {
            self.send(frame);
        }
    }

    fn drop_joined(&self, j: Joined) {
        self.engine.unsubscribe(&j.sub);
        if !self.claims.watch {
            self.engine.presence_leave(j.conversation, self.claims.sub.clone(), j.phx_ref);
        }
        let _ = j.join_ref;
    }

    /// The server ended join number `join` (its `phx_close` is sent): the
    /// topic is no longer joined, and its presence leaves.
    fn forget_ended(&mut self, join: u64) {
        if let Some(at) = self.joined.iter().position(|j| j.join == join) {
            let j = self.joined.swap_remove(at);
            self.drop_joined(j);
        }
    }

    fn leave_all(&mut self) {
        for j in std::mem::take(&mut self.joined) {
            self.drop_joined(j);
        }
    }
}

/// Where a reply goes: the refs and topic of the message it answers, kept
/// for a reply that waits for its answer (one sent at once borrows them).
struct ReplyTo {
    join_ref: Option<String>,
    msg_ref: Option<String>,
    topic: String,
}

impl ReplyTo {
    fn of(m: &Inbound) -> ReplyTo {
        ReplyTo { join_ref: m.join_ref.clone(), msg_ref: m.msg_ref.clone(), topic: m.topic.clone() }
    }

    fn frame(&self, status: Reply, response: &Value) -> Option<Bytes> {
        reply_frame(self.join_ref.as_deref(), self.msg_ref.as_deref(), &self.topic, status, response)
    }
}

/// The `phx_reply` to a message with these refs (none to a ref-less one).
fn reply_frame(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    status: Reply,
    response: &Value,
) -> Option<Bytes> {
    phoenix::reply(join_ref, msg_ref?, topic, status, response).ok()
}

/// The `response` of an error reply: the reason and code every transport
/// gives ([`ServiceError::public`]), and the field the error names.
fn error_response(e: &ServiceError) -> Value {
    if let ServiceError::RateLimited { retry_after, .. } = e {
        let ms = retry_after.as_millis().max(1) as u64;
        return json!({"reason": "rate_limited", "code": "rate_limited", "retry_after_ms": ms});
    }
    let public = e.public();
    let mut response = json!({"reason": public.message, "code": public.code});
    if let Some(field) = public.field {
        response["field"] = Value::String(field);
    }
    response
}
