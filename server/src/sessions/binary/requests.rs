//! The requests of a binary session after the handshake, one method each:
//! Subscribe / Unsubscribe, Publish, PublishBatch, Ephemeral (typing),
//! Receipt (version 2), History and Reauth. A request answered at once replies here; one that
//! waits (storage, the owner shard) returns the future that will, and the
//! session's loop runs it beside the others (docs/protocol.md).

use std::cell::Cell;
use std::rc::Rc;

use converger_protocol as proto;
use converger_protocol::{
    Ack, ErrorCode, ErrorFrame, Failure, Frame, HistoryPage, PublishAck, PublishBatchAck, Subscribed, SubscribedItem,
    LIVE_ONLY,
};
use converger_storage::{Id, Receipts, Scope, Written};

use super::identity::{error_frame, failure, Identity};
use super::sink::{to_wire, BinarySink};
use super::{send, Active, Done, Pending, Session, Sub};
use crate::engine::{Ephemeral, PendingSubscriptions};
use crate::service::activities::{fill_in_order, typing_state, ActivityInput, Parts};
use crate::service::json;
use crate::service::{Caller, Hub, ServiceError};
use crate::trace::{self, Span, SpanContext};

/// Activities a History page holds at most (as a REST page).
const MAX_HISTORY: u32 = 1000;

impl Session {
    pub(super) fn subscribe(&mut self, s: proto::Subscribe) -> Option<Pending> {
        // Items answered now (refused) keep their place in the answer; the rest start below.
        let mut items: Vec<Result<(Id, u64, Active), SubscribedItem>> = Vec::with_capacity(s.items.len());
        for item in &s.items {
            let conversation = Id::from_bytes(item.conversation_id);
            let cap = self.hub.config.edge.max_subscriptions_per_connection;
            let refusal = if self.subs.contains_key(&conversation) {
                Some(Failure::new(ErrorCode::AlreadySubscribed, "already subscribed on this connection"))
            } else if self.subs.len() >= cap {
                let why = format!("this connection already follows {cap} conversations, the most allowed");
                Some(Failure::new(ErrorCode::TooManySubscriptions, why))
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
        let ended = self.ended.clone();
        Some(Box::pin(async move {
            let scope = identity.scope();
            // What it registers is unsubscribed if the connection closes mid-request.
            let mut registered_here = PendingSubscriptions::new(&engine);
            // First every item's check, for the one Subscribed answer; then the backlogs.
            let mut answer = Vec::with_capacity(items.len());
            let mut starting = Vec::new();
            let mut refused = Vec::new();
            for item in items {
                match item {
                    Err(refusal) => answer.push(refusal),
                    Ok((conversation, after_seq, active)) => {
                        // Registered before the answer: what is committed or
                        // signalled after it reaches this connection.
                        let registered = match follow(&hub, scope, conversation).await {
                            Ok(last_seq) => {
                                // Live only: from the conversation's last seq on.
                                let after_seq = if after_seq == LIVE_ONLY { last_seq } else { after_seq };
                                let sink = Rc::new(BinarySink {
                                    sender: out.clone(),
                                    conversation,
                                    active: active.clone(),
                                    client: identity.client(),
                                    ended: ended.clone(),
                                });
                                let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
                                engine
                                    .start_subscription(conversation, scope, after, sink)
                                    .await
                                    .map(|sub| (sub, last_seq))
                                    .map_err(|e| failure(&ServiceError::from(e)))
                            }
                            Err(f) => Err(f),
                        };
                        let result = match registered {
                            Ok((sub, last_seq)) => {
                                registered_here.hold(sub.clone());
                                starting.push((conversation, sub, active));
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
            for (conversation, sub, active) in starting {
                if broken.is_some() {
                    engine.unsubscribe(&sub);
                    refused.push((conversation, active));
                    continue;
                }
                match engine.finish_subscription(&sub).await.map(|()| sub) {
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
            // From here on `record` (or the close below) owns them.
            registered_here.release();
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

    pub(super) fn unsubscribe(&mut self, u: proto::Unsubscribe) {
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

    /// The server ended the subscription whose switch is `attempt` (its
    /// notice is sent): forget it, so the conversation may be subscribed again.
    pub(super) fn forget_ended(&mut self, attempt: Active) {
        let id = self.subs.iter().find(|(_, sub)| match sub {
            Sub::Starting { active } | Sub::Live { active, .. } => Rc::ptr_eq(active, &attempt),
        });
        let Some(id) = id.map(|(id, _)| *id) else { return };
        match self.subs.remove(&id) {
            Some(Sub::Live { sub, .. }) => self.engine.unsubscribe(&sub),
            // `record` unsubscribes it when it has started (its switch is off).
            Some(Sub::Starting { .. }) | None => {}
        }
    }

    pub(super) fn unsubscribe_all(&mut self) {
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
        ActivityInput::from_parts(Parts {
            kind,
            text: draft.text,
            attachments: draft.attachments,
            sender,
            metadata: draft.metadata,
            idempotency_key: draft.idempotency_key,
            target_id: draft.target_id.map(Id::from_bytes),
            parent_id: draft.parent_id.map(Id::from_bytes),
        })
        .map(|input| (conversation, if self.identity.is_client() { input.by_client() } else { input }))
        .map_err(|e| failure(&e))
    }

    pub(super) fn publish(&self, mut p: proto::Publish) -> Option<Pending> {
        let mut span = publish_span(p.activity.traceparent.take().as_deref(), "binary publish", p.request_id);
        let (conversation, input) = match self.input(p.activity) {
            Ok(ok) => ok,
            Err(f) => {
                self.reply(ErrorFrame::new(p.request_id, code_of(&f), f.message));
                return None;
            }
        };
        let (hub, out, caller) = (self.hub.clone(), self.out.clone(), Caller::Tenant(self.identity.tenant()));
        Some(Box::pin(async move {
            let created = traced(&span, hub.create_activity(caller, conversation, input)).await;
            let frame = match created {
                Ok(w) => Frame::PublishAck(PublishAck { request_id: p.request_id, written: written(&w) }),
                Err(e) => {
                    if let Some(span) = &mut span {
                        span.error(e.to_string());
                    }
                    Frame::Error(error_frame(p.request_id, &e))
                }
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    /// One span for the whole batch (traces on), child of the first
    /// `traceparent` among its drafts; without one, none.
    pub(super) fn publish_batch(&self, mut b: proto::PublishBatch) -> Option<Pending> {
        let first = b.activities.iter_mut().filter_map(|d| d.traceparent.take()).next();
        let mut span = publish_span(first.as_deref(), "binary publish batch", b.request_id);
        if let Some(span) = &mut span {
            span.attr("converger.batch.size", b.activities.len());
        }
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
            let answers = traced(&span, hub.create_activities(caller, valid)).await.into_iter().map(|r| match r {
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

    pub(super) fn ephemeral(&self, e: proto::Ephemeral) -> Option<Pending> {
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

    pub(super) fn history(&self, h: proto::History) -> Option<Pending> {
        let conversation = Id::from_bytes(h.conversation_id);
        if let Err(f) = self.identity.covers(conversation) {
            self.reply(ErrorFrame::new(h.request_id, code_of(&f), f.message));
            return None;
        }
        let (hub, out, scope) = (self.hub.clone(), self.out.clone(), self.identity.scope());
        let reader = self.identity.reader().map(str::to_owned);
        let version = self.out.version();
        Some(Box::pin(async move {
            let after = i64::try_from(h.after_seq).unwrap_or(i64::MAX);
            let limit = h.limit.clamp(1, MAX_HISTORY);
            let frame = match hub.list_activities(scope, conversation, after, limit, reader.as_deref()).await {
                Ok((activities, last_seq)) => Frame::HistoryPage(HistoryPage {
                    request_id: h.request_id,
                    conversation_id: h.conversation_id,
                    last_seq: last_seq.max(0) as u64,
                    activities: activities
                        .iter()
                        .filter(|a| h.until_seq.is_none_or(|until| a.seq.max(0) as u64 <= until))
                        .map(|a| to_wire(a, version))
                        .collect(),
                }),
                Err(e) => Frame::Error(error_frame(h.request_id, &e)),
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    /// Moves the member's watermarks forward (docs/protocol.md, Receipt):
    /// Ack once stored; the service tells the conversation's subscribers.
    pub(super) fn receipt(&self, r: proto::Receipt) -> Option<Pending> {
        let conversation = Id::from_bytes(r.conversation_id);
        let checked = (|| {
            self.identity.covers(conversation)?;
            let sender = self.identity.sender(&r.sender)?;
            let seq = |field: &str, seq: Option<u64>| {
                seq.map(|s| {
                    i64::try_from(s).map_err(|_| {
                        Failure::new(ErrorCode::ValidationFailed, format!("`{field}` is over {}", i64::MAX))
                    })
                })
                .transpose()
            };
            let receipts = Receipts {
                read_seq: seq("read_seq", r.read_seq)?,
                delivered_seq: seq("delivered_seq", r.delivered_seq)?,
            };
            if receipts.read_seq.is_none() && receipts.delivered_seq.is_none() {
                return Err(Failure::new(ErrorCode::ValidationFailed, "give `read_seq`, `delivered_seq` or both"));
            }
            Ok((sender, receipts))
        })();
        let (sender, receipts) = match checked {
            Ok(ok) => ok,
            Err(f) => {
                self.reply(ErrorFrame::new(r.request_id, code_of(&f), f.message));
                return None;
            }
        };
        let (hub, out, scope) = (self.hub.clone(), self.out.clone(), self.identity.scope());
        Some(Box::pin(async move {
            let frame = match hub.update_receipts(scope, conversation, &sender, receipts).await {
                Ok(_) => Frame::Ack(Ack { request_id: r.request_id }),
                Err(e) => Frame::Error(error_frame(r.request_id, &e)),
            };
            send(&out, frame);
            Done::Nothing
        }))
    }

    pub(super) fn reauth(&self, r: proto::Reauth) -> Option<Pending> {
        let request_id = r.request_id;
        let Identity::Token(old) = &self.identity else {
            let f = Failure::new(ErrorCode::Forbidden, "an API-key connection has no token");
            self.reply(ErrorFrame::new(request_id, code_of(&f), f.message));
            return None;
        };
        let (hub, out, old) = (self.hub.clone(), self.out.clone(), old.clone());
        // The new token may be a tenant-signed one whose key set is fetched: async.
        Some(Box::pin(async move {
            let answer = match hub.verify_token(&r.token).await {
                Err(e) => Err(failure(&e)),
                Ok(new)
                    if new.tenant_id != old.tenant_id
                        || new.conversation_id != old.conversation_id
                        || new.sub != old.sub =>
                {
                    Err(Failure::new(
                        ErrorCode::Forbidden,
                        "the new token must name the same tenant, conversation and sender",
                    ))
                }
                Ok(new) => Ok(new),
            };
            match answer {
                Ok(claims) => {
                    send(&out, Frame::Ack(Ack { request_id }));
                    Done::Reauthorized(claims)
                }
                Err(f) => {
                    send(&out, Frame::Error(ErrorFrame::new(request_id, code_of(&f), f.message)));
                    Done::Nothing
                }
            }
        }))
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
    matches!(
        code_of(f),
        ErrorCode::Overloaded
            | ErrorCode::ShuttingDown
            | ErrorCode::StorageUnavailable
            | ErrorCode::StorageFull
            | ErrorCode::RateLimited
    )
}

/// The SERVER span of a binary publish that carries a valid `traceparent`
/// (traces on): its child. A publish without one, or with a malformed one,
/// is not traced (a socket's every message would otherwise start a trace).
fn publish_span(traceparent: Option<&str>, name: &'static str, request_id: u32) -> Option<Span> {
    if !trace::enabled() {
        return None;
    }
    let parent = SpanContext::parse_str(traceparent?)?;
    let mut span = trace::span(name, trace::Kind::Server, Some(parent))?;
    span.attr("converger.binary.request_id", i64::from(request_id));
    Some(span)
}

/// Runs `work` as the span's (so the write links to it), or as is.
async fn traced<T>(span: &Option<Span>, work: impl std::future::Future<Output = T>) -> T {
    match span {
        Some(span) => trace::in_context(span.context(), work).await,
        None => work.await,
    }
}
