//! The pre-publish hook's stage of the write path, at the owner shard: a
//! publish whose conversation has a hook (its channel's `config.pre_publish`,
//! else its tenant's default) waits here for the hook's verdict before it
//! joins the owner's queue for group commit.
//!
//! - **Never reorders a conversation**: while a conversation has a hook call
//!   out, its later publishes wait behind it here (hooked or not), and join
//!   the queue only after the earlier ones did. Other conversations do not
//!   wait: each conversation has its own place in the stage.
//! - **Batches**: a conversation's waiting publishes go in one run (at most
//!   [`MAX_ITEMS`]); the runs that become ready in the same turn of the
//!   shard (the publishes of one mesh delivery, one broadcast, one REST
//!   batch) go to their hook together, one call per hook and channel with
//!   the runs' items in order (at most [`MAX_ITEMS`] a call), one verdict
//!   per item. A conversation is in at most one call at a time, so a slow
//!   call holds only the conversations in it.
//! - **Never blocks the shard**: the call is made by a [`HookCaller`] (the
//!   delivery runtime's HTTP client, on its own thread); the shard awaits its
//!   answer in a task of its own.
//! - A call that fails (timeout, refused connection, an answer that is not a
//!   verdict per item) gives every item of it the hook's `on_failure`.
//!
//! Bounded: the stage counts against the owner's queue bound, so a publish
//! past [`super::owner::MAX_QUEUED`] waiting items is refused `Overloaded`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use converger_storage::{Id, Json, NewActivity};
use serde_json::Value;

use super::publish::{PublishError, PublishRequest};
use super::Engine;
use crate::adapters::pre_publish::{HookConfig, OnFailure, Verdict};
use crate::metrics::HookVerdict;

/// Most publishes in one hook call.
pub const MAX_ITEMS: usize = 100;

/// Where a publish's hook is: resolved by the service from the
/// conversation's channel (or tenant), shared by every publish to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRoute {
    pub channel_id: Id,
    pub config: HookConfig,
    /// The channel's Standard Webhooks key: the request is signed with it.
    pub key: [u8; 32],
}

/// One call: the activities, as they would be stored, in order.
pub struct HookCall {
    pub route: Arc<HookRoute>,
    pub items: Vec<Value>,
}

/// The verdicts, one per item in order; `Err` with why the hook could not be asked.
pub type HookAnswer = Result<Vec<Verdict>, String>;

/// Makes hook calls (off the shard threads).
pub trait HookCaller {
    fn call(&self, call: HookCall) -> Pin<Box<dyn Future<Output = HookAnswer>>>;
}

/// The conversations with publishes waiting for (or behind) a hook call.
#[derive(Default)]
pub struct HookStage {
    waiting: RefCell<HashMap<Id, VecDeque<PublishRequest>>>,
    /// Conversations whose first waiting run is ready to be sent, in the
    /// order they became ready; sent together by the next flush.
    ready: RefCell<Vec<Id>>,
    flush_due: Cell<bool>,
}

impl HookStage {
    /// Publishes waiting in the stage (for the queue bound and for shutdown).
    pub fn len(&self) -> usize {
        self.waiting.borrow().values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.borrow().is_empty()
    }

    fn holds(&self, conversation: Id) -> bool {
        self.waiting.borrow().contains_key(&conversation)
    }
}

/// A conversation's part of a call: its first `count` waiting publishes.
struct Run {
    conversation: Id,
    count: usize,
}

/// One call being put together: runs bound for one hook and channel.
struct Gathered {
    route: Arc<HookRoute>,
    runs: Vec<Run>,
    items: Vec<Value>,
}

/// The activity as the hook sees it: as it would be stored, without the seq
/// it does not have yet.
fn as_item(a: &NewActivity) -> Value {
    let mut v = serde_json::json!({
        "id": a.id,
        "tenant_id": a.tenant_id,
        "conversation_id": a.conversation_id,
        "type": a.kind,
        "text": a.text,
        "sender": a.sender,
        "metadata": a.metadata.to_value(),
        "idempotency_key": a.idempotency_key,
        "created_at": a.created_at,
    });
    if let Some(map) = v.as_object_mut() {
        map.insert("attachments".into(), a.attachments.as_ref().map_or(Value::Null, Json::to_value));
        if let Some(t) = a.target_id {
            map.insert("target_id".into(), Value::String(t.to_string()));
        }
        if let Some(p) = a.parent_id {
            map.insert("parent_id".into(), Value::String(p.to_string()));
        }
    }
    v
}

/// Every item of a call that could not be used: the hook's `on_failure`.
fn failed(config: &HookConfig, n: usize) -> Vec<Verdict> {
    let verdict = match config.on_failure {
        OnFailure::Accept => Verdict::Accept,
        OnFailure::Reject => Verdict::Reject { reason: "the pre-publish hook could not be asked".into() },
    };
    vec![verdict; n]
}

/// Why `answer` cannot be used for a call of `total` items, if it cannot.
fn unusable(answer: &HookAnswer, total: usize) -> Option<String> {
    match answer {
        Ok(v) if v.len() == total => None,
        Ok(v) => Some(format!("{} verdicts for {total} items", v.len())),
        Err(why) => Some(why.clone()),
    }
}

/// `answer`'s part for the `count` items from `from` of a call of `total`.
fn part_of(answer: &HookAnswer, from: usize, count: usize, total: usize) -> HookAnswer {
    match (unusable(answer, total), answer) {
        (None, Ok(v)) => Ok(v[from..from + count].to_vec()),
        (Some(why), _) => Err(why),
        (None, Err(why)) => Err(why.clone()),
    }
}

impl Engine {
    /// Where a publish goes at its owner: through the hook stage when its
    /// conversation has a hook (or publishes waiting in the stage), else
    /// straight to the queue.
    pub(super) fn enqueue(self: &Rc<Self>, request: PublishRequest) {
        let conversation = request.activity.conversation_id;
        let hooked = request.hook.is_some() && self.hook_caller.get().is_some();
        if hooked || self.hooks.holds(conversation) {
            self.wait_for_hook(request)
        } else {
            self.owner.enqueue(request)
        }
    }

    fn wait_for_hook(self: &Rc<Self>, request: PublishRequest) {
        if self.owner.queued() + self.hooks.len() >= super::owner::MAX_QUEUED {
            self.owner.refuse(request, PublishError::Overloaded);
            return;
        }
        let conversation = request.activity.conversation_id;
        let first = {
            let mut waiting = self.hooks.waiting.borrow_mut();
            let queue = waiting.entry(conversation).or_default();
            queue.push_back(request);
            queue.len() == 1
        };
        if first {
            self.ready_to_call(conversation);
        }
    }

    /// The conversation's first waiting run goes with the next flush, which
    /// runs once this turn of the shard is over (so what else arrives in it
    /// can share the call).
    fn ready_to_call(self: &Rc<Self>, conversation: Id) {
        self.hooks.ready.borrow_mut().push(conversation);
        if !self.hooks.flush_due.replace(true) {
            let engine = self.clone();
            monoio::spawn(async move { engine.flush() });
        }
    }

    /// Sends every ready run: one call per hook and channel (split at
    /// [`MAX_ITEMS`]); an unhooked run at a conversation's head goes straight
    /// on to the queue instead.
    fn flush(self: &Rc<Self>) {
        self.hooks.flush_due.set(false);
        let ready = std::mem::take(&mut *self.hooks.ready.borrow_mut());
        let Some(caller) = self.hook_caller.get().cloned() else {
            return ready.into_iter().for_each(|c| self.release_unhooked(c));
        };
        let mut calls: Vec<Gathered> = Vec::new();
        for conversation in ready {
            let gathered = {
                let waiting = self.hooks.waiting.borrow();
                let Some(queue) = waiting.get(&conversation) else { continue };
                match queue.front().and_then(|r| r.hook.clone()) {
                    Some(route) => {
                        let run: Vec<Value> = queue
                            .iter()
                            .take(MAX_ITEMS)
                            .take_while(|r| r.hook.as_ref() == Some(&route))
                            .map(|r| as_item(&r.activity))
                            .collect();
                        Some((route, run))
                    }
                    None => None,
                }
            };
            // Not hooked (the hook was removed meanwhile, or it queued behind
            // a hooked one): straight on.
            let Some((route, items)) = gathered else {
                self.release_unhooked(conversation);
                continue;
            };
            let run = Run { conversation, count: items.len() };
            let joins = calls.iter_mut().rev().find(|g| *g.route == *route && g.items.len() + items.len() <= MAX_ITEMS);
            match joins {
                Some(g) => {
                    g.runs.push(run);
                    g.items.extend(items);
                }
                None => calls.push(Gathered { route, runs: vec![run], items }),
            }
        }
        for Gathered { route, runs, items } in calls {
            let total = items.len();
            let answer = caller.call(HookCall { route: route.clone(), items });
            let engine = self.clone();
            let started = Instant::now();
            monoio::spawn(async move {
                let answer = answer.await;
                engine.owner.metrics().hook_called(started.elapsed());
                if let Some(why) = unusable(&answer, total) {
                    let config = &route.config;
                    tracing::warn!(url = %config.url, error = %why, on_failure = ?config.on_failure, items = total, "pre-publish hook failed");
                }
                let mut from = 0;
                for Run { conversation, count } in runs {
                    engine.after_hook(conversation, count, &route.config, part_of(&answer, from, count, total));
                    from += count;
                }
            });
        }
    }

    fn after_hook(self: &Rc<Self>, conversation: Id, count: usize, config: &HookConfig, answer: HookAnswer) {
        let run: Vec<PublishRequest> = {
            let mut waiting = self.hooks.waiting.borrow_mut();
            let Some(queue) = waiting.get_mut(&conversation) else { return };
            queue.drain(..count.min(queue.len())).collect()
        };
        let answered = matches!(&answer, Ok(v) if v.len() == run.len());
        let metrics = self.owner.metrics();
        let verdicts: Vec<Verdict> = match answer {
            Ok(v) if v.len() == run.len() => v,
            // The call's failure was logged once, for all of its items.
            _ => failed(config, run.len()),
        };
        for (mut request, verdict) in run.into_iter().zip(verdicts) {
            metrics.hook_decided(match (&verdict, answered) {
                (_, false) => HookVerdict::Failed,
                (Verdict::Accept, true) => HookVerdict::Accepted,
                (Verdict::Reject { .. }, true) => HookVerdict::Rejected,
                (Verdict::Rewrite { .. }, true) => HookVerdict::Rewritten,
            });
            match verdict {
                Verdict::Accept => self.owner.enqueue(request),
                Verdict::Reject { reason } => self.owner.refuse(request, PublishError::Rejected(reason)),
                Verdict::Rewrite { text, metadata } => {
                    if text.is_some() {
                        request.activity.text = text;
                    }
                    if let Some(m) = metadata {
                        request.activity.metadata = Json::from_value(&Value::Object(m));
                    }
                    self.owner.enqueue(request)
                }
            }
        }
        self.next_run(conversation);
    }

    /// The conversation's next waiting run goes to its hook; with none left,
    /// the conversation leaves the stage (its publishes go straight on again).
    fn next_run(self: &Rc<Self>, conversation: Id) {
        let more = self.hooks.waiting.borrow().get(&conversation).is_some_and(|q| !q.is_empty());
        if more {
            self.ready_to_call(conversation);
        } else {
            self.hooks.waiting.borrow_mut().remove(&conversation);
        }
    }

    /// The unhooked publishes at the head of the conversation's place go on
    /// to the queue; the stage goes on with the rest.
    fn release_unhooked(self: &Rc<Self>, conversation: Id) {
        let released: Vec<PublishRequest> = {
            let mut waiting = self.hooks.waiting.borrow_mut();
            let Some(queue) = waiting.get_mut(&conversation) else { return };
            let n = if self.hook_caller.get().is_none() {
                queue.len()
            } else {
                queue.iter().take_while(|r| r.hook.is_none()).count()
            };
            queue.drain(..n).collect()
        };
        for r in released {
            self.owner.enqueue(r);
        }
        self.next_run(conversation);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use converger_storage::embedded::EmbeddedStore;
    use converger_storage::{Store, Written};
    use futures_channel::oneshot;

    use super::*;
    use crate::adapters::pre_publish::DEFAULT_TIMEOUT;
    use crate::metrics::ShardMetrics;
    use crate::testing::{conversation_in, message, runtime};

    /// A hook that rejects `bad`, rewrites `rude` and accepts the rest, after
    /// 1 ms, or 300 ms for a call holding the conversation named `slow`;
    /// counts its calls and their items.
    struct FakeHook {
        slow: Cell<Option<Id>>,
        calls: Rc<RefCell<Vec<usize>>>,
    }

    impl HookCaller for FakeHook {
        fn call(&self, call: HookCall) -> Pin<Box<dyn Future<Output = HookAnswer>>> {
            self.calls.borrow_mut().push(call.items.len());
            let slow_id = self.slow.get().map(|c| c.to_string());
            let slow = call.items.iter().any(|i| i["conversation_id"].as_str().map(str::to_owned) == slow_id);
            Box::pin(async move {
                monoio::time::sleep(Duration::from_millis(if slow { 300 } else { 1 })).await;
                Ok(call
                    .items
                    .iter()
                    .map(|i| match i["text"].as_str() {
                        Some("bad") => Verdict::Reject { reason: "no bad words".into() },
                        Some("rude") => Verdict::Rewrite { text: Some("[polite]".into()), metadata: None },
                        _ => Verdict::Accept,
                    })
                    .collect())
            })
        }
    }

    fn route(on_failure: OnFailure) -> Arc<HookRoute> {
        Arc::new(HookRoute {
            channel_id: Id::nil(),
            config: HookConfig { url: "http://127.0.0.1:9/h".into(), timeout: DEFAULT_TIMEOUT, on_failure },
            key: [7; 32],
        })
    }

    #[test]
    fn verdicts_apply_in_order_and_a_slow_hook_holds_only_its_own_conversation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
        runtime().block_on(async move {
            let (tenant, slow_conv) = conversation_in(&*store).await;
            let (tenant2, fast_conv) = conversation_in(&*store).await;
            let engine = Engine::single(store.clone(), Arc::new(ShardMetrics::default()));
            let calls = Rc::new(RefCell::new(Vec::new()));
            engine.set_hook_caller(Rc::new(FakeHook { slow: Cell::new(Some(slow_conv)), calls: calls.clone() }));
            let task = monoio::spawn(engine.clone().run_owner());
            let publish = |tenant, conv, text: &str, hooked: bool| {
                let (reply, answer) = oneshot::channel();
                let mut activity = message(tenant, conv);
                activity.text = Some(text.into());
                engine.enqueue(PublishRequest {
                    activity,
                    reply,
                    hook: hooked.then(|| route(OnFailure::Reject)),
                    trace: None,
                });
                answer
            };
            // The slow conversation: a hooked publish, then one unhooked behind it.
            let mut slow = [publish(tenant, slow_conv, "first", true), publish(tenant, slow_conv, "second", false)];
            // The slow call leaves; what comes later goes in calls of its own.
            monoio::time::sleep(Duration::from_millis(1)).await;
            let fast = [
                publish(tenant2, fast_conv, "ok", true),
                publish(tenant2, fast_conv, "bad", true),
                publish(tenant2, fast_conv, "rude", true),
            ];
            let mut fast_answers = Vec::new();
            for a in fast {
                fast_answers.push(a.await.expect("answered"));
            }
            assert!(matches!(slow[0].try_recv(), Ok(None)), "the fast conversation waited for the slow hook");
            assert!(matches!(&fast_answers[0], Ok(Written::New(a)) if a.seq == 1));
            assert!(matches!(&fast_answers[1], Err(PublishError::Rejected(r)) if r == "no bad words"));
            assert!(
                matches!(&fast_answers[2], Ok(Written::New(a)) if a.seq == 2 && a.text.as_deref() == Some("[polite]"))
            );
            let mut seqs = Vec::new();
            for a in slow {
                seqs.push(a.await.expect("answered").expect("stored").activity().seq);
            }
            assert_eq!(seqs, vec![1, 2], "the unhooked publish waited behind the hooked one");
            assert!(engine.hooks.is_empty());
            engine.owner.close();
            task.await;
        });
    }

    #[test]
    fn runs_ready_in_one_turn_share_a_call_and_each_gets_its_own_verdicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
        runtime().block_on(async move {
            let mut convs = Vec::new();
            for _ in 0..3 {
                convs.push(conversation_in(&*store).await);
            }
            let engine = Engine::single(store.clone(), Arc::new(ShardMetrics::default()));
            let calls = Rc::new(RefCell::new(Vec::new()));
            engine.set_hook_caller(Rc::new(FakeHook { slow: Cell::new(None), calls: calls.clone() }));
            let task = monoio::spawn(engine.clone().run_owner());
            let publish = |(tenant, conv): (Id, Id), text: &str| {
                let (reply, answer) = oneshot::channel();
                let mut activity = message(tenant, conv);
                activity.text = Some(text.into());
                engine.enqueue(PublishRequest { activity, reply, hook: Some(route(OnFailure::Reject)), trace: None });
                answer
            };
            let answers =
                [publish(convs[0], "a"), publish(convs[1], "b"), publish(convs[0], "bad"), publish(convs[2], "rude")];
            let mut got = Vec::new();
            for a in answers {
                got.push(a.await.expect("answered"));
            }
            assert_eq!(*calls.borrow(), vec![4], "one call for the four publishes of the turn");
            assert!(matches!(&got[0], Ok(Written::New(a)) if a.seq == 1 && a.text.as_deref() == Some("a")));
            assert!(matches!(&got[1], Ok(Written::New(a)) if a.seq == 1 && a.text.as_deref() == Some("b")));
            assert!(matches!(&got[2], Err(PublishError::Rejected(r)) if r == "no bad words"));
            assert!(matches!(&got[3], Ok(Written::New(a)) if a.text.as_deref() == Some("[polite]")));

            // A later turn makes a call of its own.
            publish(convs[1], "c").await.expect("answered").expect("stored");
            assert_eq!(*calls.borrow(), vec![4, 1]);
            assert!(engine.hooks.is_empty());
            engine.owner.close();
            task.await;
        });
    }
}
