//! The pre-publish hook's stage of the write path, at the owner shard: a
//! publish whose conversation's channel has a hook (`config.pre_publish`)
//! waits here for the hook's verdict before it joins the owner's queue for
//! group commit.
//!
//! - **Never reorders a conversation**: while a conversation has a hook call
//!   out, its later publishes wait behind it here (hooked or not), and join
//!   the queue only after the earlier ones did. Other conversations do not
//!   wait: each conversation has its own place in the stage.
//! - **Batches**: the publishes of a conversation waiting when its hook is
//!   free go in one call (at most [`MAX_ITEMS`]), one verdict per item.
//! - **Never blocks the shard**: the call is made by a [`HookCaller`] (the
//!   delivery runtime's HTTP client, on its own thread); the shard awaits its
//!   answer in a task of its own.
//! - A call that fails (timeout, refused connection, an answer that is not a
//!   verdict per item) gives every item of it the hook's `on_failure`.
//!
//! Bounded: the stage counts against the owner's queue bound, so a publish
//! past [`super::owner::MAX_QUEUED`] waiting items is refused `Overloaded`.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use converger_storage::{Id, Json, NewActivity};
use serde_json::Value;

use super::publish::{PublishError, PublishRequest};
use super::Engine;
use crate::adapters::pre_publish::{HookConfig, OnFailure, Verdict};

/// Most publishes of one conversation in one hook call.
pub const MAX_ITEMS: usize = 100;

/// Where a publish's hook is: resolved by the service from the
/// conversation's channel, shared by every publish to it.
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
            self.call_hook(conversation);
        }
    }

    /// Sends the conversation's first waiting run to its hook; when it
    /// answers, the accepted (or rewritten) join the owner's queue in order,
    /// the rejected are answered, and the next run goes.
    fn call_hook(self: &Rc<Self>, conversation: Id) {
        let (route, count, items) = {
            let waiting = self.hooks.waiting.borrow();
            let Some(queue) = waiting.get(&conversation) else { return };
            let Some(route) = queue.front().and_then(|r| r.hook.clone()) else {
                // Not hooked (the channel's hook was removed meanwhile, or it
                // queued behind a hooked one): straight on.
                drop(waiting);
                return self.release_unhooked(conversation);
            };
            let run: Vec<&PublishRequest> =
                queue.iter().take(MAX_ITEMS).take_while(|r| r.hook.as_ref() == Some(&route)).collect();
            (route.clone(), run.len(), run.iter().map(|r| as_item(&r.activity)).collect::<Vec<_>>())
        };
        let Some(caller) = self.hook_caller.get().cloned() else { return self.release_unhooked(conversation) };
        let answer = caller.call(HookCall { route: route.clone(), items });
        let engine = self.clone();
        monoio::spawn(async move {
            let answer = answer.await;
            engine.after_hook(conversation, count, &route.config, answer);
        });
    }

    fn after_hook(self: &Rc<Self>, conversation: Id, count: usize, config: &HookConfig, answer: HookAnswer) {
        let run: Vec<PublishRequest> = {
            let mut waiting = self.hooks.waiting.borrow_mut();
            let Some(queue) = waiting.get_mut(&conversation) else { return };
            queue.drain(..count.min(queue.len())).collect()
        };
        let verdicts: Vec<Verdict> = match answer {
            Ok(v) if v.len() == run.len() => v,
            Ok(v) => self.failed(config, &format!("{} verdicts for {} items", v.len(), run.len()), run.len()),
            Err(why) => self.failed(config, &why, run.len()),
        };
        for (mut request, verdict) in run.into_iter().zip(verdicts) {
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
            self.call_hook(conversation);
        } else {
            self.hooks.waiting.borrow_mut().remove(&conversation);
        }
    }

    /// Every item of a call that could not be used, by the hook's `on_failure`.
    fn failed(&self, config: &HookConfig, why: &str, n: usize) -> Vec<Verdict> {
        tracing::warn!(url = %config.url, error = %why, on_failure = ?config.on_failure, "pre-publish hook failed");
        let verdict = match config.on_failure {
            OnFailure::Accept => Verdict::Accept,
            OnFailure::Reject => Verdict::Reject { reason: "the pre-publish hook could not be asked".into() },
        };
        vec![verdict; n]
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
    /// 1 ms, or 300 ms for the conversation named `slow`; counts its calls.
    struct FakeHook {
        slow: Cell<Option<Id>>,
        calls: Rc<Cell<usize>>,
    }

    impl HookCaller for FakeHook {
        fn call(&self, call: HookCall) -> Pin<Box<dyn Future<Output = HookAnswer>>> {
            self.calls.set(self.calls.get() + 1);
            let slow = call.items.first().and_then(|i| i["conversation_id"].as_str().map(str::to_owned))
                == self.slow.get().map(|c| c.to_string());
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
            let calls = Rc::new(Cell::new(0));
            engine.set_hook_caller(Rc::new(FakeHook { slow: Cell::new(Some(slow_conv)), calls: calls.clone() }));
            let task = monoio::spawn(engine.clone().run_owner());
            let publish = |tenant, conv, text: &str, hooked: bool| {
                let (reply, answer) = oneshot::channel();
                let mut activity = message(tenant, conv);
                activity.text = Some(text.into());
                engine.enqueue(PublishRequest { activity, reply, hook: hooked.then(|| route(OnFailure::Reject)) });
                answer
            };
            // The slow conversation: a hooked publish, then one unhooked behind it.
            let slow = [publish(tenant, slow_conv, "first", true), publish(tenant, slow_conv, "second", false)];
            let fast = [
                publish(tenant2, fast_conv, "ok", true),
                publish(tenant2, fast_conv, "bad", true),
                publish(tenant2, fast_conv, "rude", true),
            ];
            let started = std::time::Instant::now();
            let mut fast_answers = Vec::new();
            for a in fast {
                fast_answers.push(a.await.expect("answered"));
            }
            assert!(started.elapsed() < Duration::from_millis(250), "the fast conversation waited for the slow hook");
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
}
