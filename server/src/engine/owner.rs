//! The owner side of the write path: every conversation has one owner shard
//! ([`super::route::owner_of`]), and the owner is the single sequencer of its
//! conversations on this node. All the state kept for the conversations a
//! shard owns is here: the publish queue, the shards that follow each
//! conversation, and who is present in it.
//!
//! Group commit: publishes for this shard's conversations — from its own
//! connections or over the mesh — queue here; one task takes everything queued
//! (up to [`MAX_BATCH`]), commits it with one `Store::write_batch`, answers each
//! publisher, and hands the new activities to the live fan-out. A lone publish
//! waits for no timer, and what arrives while a batch commits becomes the next
//! batch. With a store that commits in submission order (the embedded store's
//! single writer) up to [`MAX_IN_FLIGHT`] batches are at the store at once, so
//! the writer finds the next one queued when a commit ends; with any other
//! store one batch is in flight. Either way commits are answered and fanned
//! out strictly in submission order, which is the seq order: the owner stays
//! the one sequencer of its conversations.
//!
//! The queue is bounded: past [`MAX_QUEUED`] a publish is refused at once with
//! `Overloaded` rather than waiting without bound.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use converger_storage::{Activity, Id, Store, StoreError, StoreResult, Written};

use super::presence::{Meta, PresenceDiff, PresenceState, Presences};
use super::publish::{PublishError, PublishRequest, Reply};
use crate::metrics::{BatchFailure, ShardMetrics};
use crate::rt::doorbell::Doorbell;
use crate::trace::{self, Span, SpanContext};

/// Most activities committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// Most batches committing at once on one owner, when the store commits in
/// submission order ([`Store::ordered_writes`]): the next batch is already at
/// the store when the previous commit returns, instead of one cross-thread
/// round trip later. Otherwise one at a time: PostgreSQL commits concurrent
/// transactions in any order, and splitting an owner's conversations into
/// lanes with a batch in flight each was measured and dropped — no gain
/// while the database is short of CPU, and smaller batches with more
/// transactions each paying their own round trips and locks collapsed a
/// paced 10k/s (docs/benchmarks.md, "PostgreSQL ingest (issue 20)").
const MAX_IN_FLIGHT: usize = 4;

/// What `Store::write_batch` answers: the batch's fate, then each item's.
type BatchResult = StoreResult<Vec<StoreResult<Written>>>;

/// One batch at the store.
pub(super) struct InFlight<'a> {
    commit: Pin<Box<dyn Future<Output = BatchResult> + Send + 'a>>,
    replies: Vec<Reply>,
    size: usize,
    started: Instant,
    result: Option<BatchResult>,
    /// The batch's span (traces on), linking the publishes' spans.
    span: Option<Span>,
    /// Whether an item of the batch makes delivery rows.
    deliveries: bool,
}

/// Most publishes waiting for a batch on one owner before new ones are refused.
pub const MAX_QUEUED: usize = 16 * 1024;

pub struct Owner {
    store: Arc<dyn Store>,
    metrics: Arc<ShardMetrics>,
    queue: RefCell<VecDeque<PublishRequest>>,
    waker: RefCell<Option<Waker>>,
    closing: Cell<bool>,
    /// For each conversation with live subscribers, the shards they sit on.
    /// Filled by the live layer's subscribe / unsubscribe messages.
    subscribers: RefCell<HashMap<Id, Vec<usize>>>,
    /// Who is present in the conversations this shard owns.
    presences: RefCell<Presences>,
    /// Rung after a commit that made delivery rows (see [`Owner::set_deliveries_due`]).
    deliveries_due: OnceCell<Doorbell>,
}

impl Owner {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<ShardMetrics>) -> Owner {
        Owner {
            store,
            metrics,
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            closing: Cell::new(false),
            subscribers: RefCell::new(HashMap::new()),
            presences: RefCell::new(Presences::default()),
            deliveries_due: OnceCell::new(),
        }
    }

    /// From now on, rings `bell` after each commit that made delivery rows,
    /// so the delivery worker claims them at once (set once, at start).
    pub fn set_deliveries_due(&self, bell: Doorbell) {
        let _ = self.deliveries_due.set(bell);
    }

    /// This shard's counters.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// Publishes waiting for a batch.
    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Answers a publish that will not be written.
    pub fn refuse(&self, request: PublishRequest, why: PublishError) {
        self.metrics.publish_refused();
        let _ = request.reply.send(Err(why));
    }

    /// Queues a publish for the next batch, or refuses it at once.
    pub fn enqueue(&self, request: PublishRequest) {
        let refused = if self.closing.get() {
            Some(PublishError::ShuttingDown)
        } else if self.queue.borrow().len() >= MAX_QUEUED {
            Some(PublishError::Overloaded)
        } else {
            None
        };
        if let Some(why) = refused {
            self.metrics.publish_refused();
            let _ = request.reply.send(Err(why));
            return;
        }
        self.queue.borrow_mut().push_back(request);
        self.metrics.set_queue_depth(self.queue.borrow().len());
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// From now on, every batch committed with an activity of `conversation` is
    /// sent to `shard`. Called between the owner's polls, so it falls cleanly
    /// before or after any commit's fan-out: the subscriber reads from storage
    /// what was committed before, and receives what is committed after.
    /// True when `shard` is the first on this node to follow `conversation`.
    pub fn add_subscriber_shard(&self, conversation: Id, shard: usize) -> bool {
        let mut subs = self.subscribers.borrow_mut();
        let shards = subs.entry(conversation).or_default();
        let first = shards.is_empty();
        if !shards.contains(&shard) {
            shards.push(shard);
        }
        first
    }

    /// The shards `conversation`'s commits are forwarded to.
    pub fn subscriber_shards(&self, conversation: Id) -> Vec<usize> {
        self.subscribers.borrow().get(&conversation).cloned().unwrap_or_default()
    }

    /// The shards following any conversation of `activities`, each once.
    pub fn shards_following(&self, activities: &[Activity]) -> Vec<usize> {
        let subscribers = self.subscribers.borrow();
        let mut shards: Vec<usize> = Vec::new();
        for a in activities {
            for s in subscribers.get(&a.conversation_id).into_iter().flatten() {
                if !shards.contains(s) {
                    shards.push(*s);
                }
            }
        }
        shards
    }

    /// Adds a presence; the diff to pass on.
    pub fn presence_join(&self, conversation: Id, key: &str, meta: Meta) -> PresenceDiff {
        self.presences.borrow_mut().join(conversation, key, meta)
    }

    /// Removes a presence; the diff to pass on, unless it had already left.
    pub fn presence_leave(&self, conversation: Id, key: &str, phx_ref: &str) -> Option<PresenceDiff> {
        self.presences.borrow_mut().leave(conversation, key, phx_ref)
    }

    /// Another node's presence change; what is news, to pass on.
    pub fn presence_remote_diff(&self, conversation: Id, origin: &str, diff: &PresenceDiff) -> Option<PresenceDiff> {
        self.presences.borrow_mut().remote_diff(conversation, origin, diff)
    }

    /// Another node's full presence state; what is news, to pass on.
    pub fn presence_remote_state(&self, conversation: Id, origin: &str, state: &PresenceState) -> Option<PresenceDiff> {
        self.presences.borrow_mut().remote_state(conversation, origin, state)
    }

    /// A node is gone: the leaves of its presences, per conversation.
    pub fn presence_drop_origin(&self, origin: &str) -> Vec<(Id, PresenceDiff)> {
        self.presences.borrow_mut().drop_origin(origin)
    }

    pub fn presence_forget_remote(&self, conversation: Id) {
        self.presences.borrow_mut().forget_remote(conversation);
    }

    /// Everyone present in `conversation` as this owner knows: this node's
    /// presences, and other nodes' while this node follows the conversation.
    pub fn presence_state(&self, conversation: Id) -> PresenceState {
        self.presences.borrow().state(conversation)
    }

    /// This node's presences in `conversation`.
    pub fn local_presence(&self, conversation: Id) -> PresenceState {
        self.presences.borrow().local_state(conversation)
    }

    /// This node's presences in every conversation this shard owns.
    pub fn local_presences(&self) -> Vec<(Id, PresenceState)> {
        self.presences.borrow().local_states()
    }

    /// True when no shard of this node follows `conversation` any more.
    pub fn remove_subscriber_shard(&self, conversation: Id, shard: usize) -> bool {
        let mut subs = self.subscribers.borrow_mut();
        if let Some(shards) = subs.get_mut(&conversation) {
            shards.retain(|s| *s != shard);
            if shards.is_empty() {
                subs.remove(&conversation);
                return true;
            }
        }
        false
    }

    /// Stops taking publishes once the queue is empty; `run` then returns.
    pub fn close(&self) {
        self.closing.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// How many batches may be at the store at once (see [`MAX_IN_FLIGHT`]).
    pub fn commit_depth(&self) -> usize {
        if self.store.ordered_writes() {
            MAX_IN_FLIGHT
        } else {
            1
        }
    }

    /// Starts batches while fewer than `depth` are in flight, and resolves to
    /// the oldest once it has committed: commits are answered and fanned out
    /// in the order they were submitted, which is their seq order. `None` once
    /// closed with nothing queued or in flight.
    pub(super) async fn next_commit<'a>(
        &'a self,
        in_flight: &mut VecDeque<InFlight<'a>>,
        depth: usize,
    ) -> Option<InFlight<'a>> {
        poll_fn(|cx| {
            while in_flight.len() < depth {
                let mut queue = self.queue.borrow_mut();
                if queue.is_empty() {
                    break;
                }
                let n = queue.len().min(MAX_BATCH);
                let mut span = trace::span("owner commit", trace::Kind::Internal, None);
                let (mut activities, mut replies) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for r in queue.drain(..n) {
                    if let (Some(span), Some(publish)) = (&mut span, r.trace) {
                        span.link(publish);
                    }
                    activities.push(r.activity);
                    replies.push(r.reply);
                }
                self.metrics.set_queue_depth(queue.len());
                drop(queue);
                let size = activities.len();
                let deliveries = activities.iter().any(|a| !a.deliver_to.is_empty());
                let commit = self.store.write_batch(activities);
                let started = Instant::now();
                in_flight.push_back(InFlight { commit, replies, size, started, result: None, span, deliveries });
            }
            // In submission order: a store with ordered writes takes each at its first poll.
            for f in in_flight.iter_mut().filter(|f| f.result.is_none()) {
                if let Poll::Ready(result) = f.commit.as_mut().poll(cx) {
                    f.result = Some(result);
                }
            }
            if in_flight.front().is_some_and(|f| f.result.is_some()) {
                return Poll::Ready(in_flight.pop_front());
            }
            if in_flight.is_empty() && self.closing.get() && self.queue.borrow().is_empty() {
                return Poll::Ready(None);
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Answers each publisher of a committed (or failed) batch; the new
    /// activities, for the fan-out, with the batch's span context (traces on)
    /// for the fan-out's span.
    pub(super) fn finish(&self, done: InFlight<'_>) -> (Option<Vec<Activity>>, Option<SpanContext>) {
        let InFlight { replies, size, started, result, mut span, deliveries, .. } = done;
        let result = result.unwrap_or_else(|| Err(StoreError::Internal("a batch finished without an answer".into())));
        if let (true, Ok(_), Some(bell)) = (deliveries, &result, self.deliveries_due.get()) {
            bell.ring();
        }
        self.metrics.batch_committed(size, started.elapsed(), result.as_ref().err().map(failure));
        if let Some(span) = &mut span {
            span.attr("converger.batch.size", size);
            match &result {
                Ok(items) => span.attr("converger.batch.written", items.iter().filter(|i| i.is_ok()).count()),
                Err(e) => span.error(e.to_string()),
            }
        }
        let context = span.as_ref().map(Span::context);
        (self.answer(replies, result), context)
    }

    fn answer(&self, replies: Vec<Reply>, result: BatchResult) -> Option<Vec<Activity>> {
        match result {
            Ok(items) => {
                let mut fresh = Vec::new();
                let mut items = items.into_iter();
                for reply in replies {
                    let answer = match items.next() {
                        Some(Ok(written)) => {
                            if let Written::New(a) = &written {
                                fresh.push(a.clone());
                            }
                            Ok(written)
                        }
                        Some(Err(e)) => Err(PublishError::Store(e)),
                        None => Err(PublishError::Store(StoreError::Internal("the store answered fewer items".into()))),
                    };
                    // A publisher that went away (connection closed) still had its write stored.
                    let _ = reply.send(answer);
                }
                self.metrics.activities_committed(fresh.len());
                Some(fresh).filter(|f| !f.is_empty())
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(PublishError::Store(e.clone())));
                }
                None
            }
        }
    }
}

/// Why a batch was refused whole, for its counter.
fn failure(e: &StoreError) -> BatchFailure {
    match e {
        StoreError::Full(_) => BatchFailure::StorageFull,
        StoreError::Unavailable(_) => BatchFailure::StorageUnavailable,
        _ => BatchFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::testing::{conversation_in, message, runtime};
    use converger_storage::embedded::EmbeddedStore;
    use converger_storage::new_id;
    use futures_channel::oneshot;

    #[test]
    fn a_burst_commits_in_few_batches_with_gap_free_seqs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
        runtime().block_on(async move {
            let (tenant, conv) = conversation_in(&*store).await;
            let metrics = Arc::new(ShardMetrics::default());
            let engine = Engine::single(store.clone(), metrics.clone());
            let task = monoio::spawn(engine.clone().run_owner());
            let owner = &engine.owner;
            let answers: Vec<_> = (0..300)
                .map(|_| {
                    let (reply, answer) = oneshot::channel();
                    owner.enqueue(PublishRequest { activity: message(tenant, conv), reply, hook: None, trace: None });
                    answer
                })
                .collect();
            let mut seqs = Vec::new();
            for answer in answers {
                seqs.push(answer.await.expect("answered").expect("stored").activity().seq);
            }
            assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "publish order is seq order");
            let (_, _, batches) = metrics.batch_size.snapshot();
            assert!(batches < 300, "a burst is grouped: {batches} batches for 300 publishes");
            owner.close();
            task.await;
        });
    }

    #[test]
    fn batches_committing_together_answer_and_fan_out_in_submission_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
        assert!(store.ordered_writes(), "the embedded store lets an owner keep batches in flight");
        runtime().block_on(async move {
            let (tenant, conv) = conversation_in(&*store).await;
            let engine = Engine::single(store.clone(), Arc::new(ShardMetrics::default()));
            let task = monoio::spawn(engine.clone().run_owner());
            let owner = &engine.owner;
            // Waves arriving while earlier batches commit, so several are at the store at once.
            let mut answers = Vec::new();
            for _ in 0..30 {
                for _ in 0..10 {
                    let (reply, answer) = oneshot::channel();
                    owner.enqueue(PublishRequest { activity: message(tenant, conv), reply, hook: None, trace: None });
                    answers.push(answer);
                }
                monoio::time::sleep(std::time::Duration::from_micros(100)).await;
            }
            let mut seqs = Vec::new();
            for answer in answers {
                seqs.push(answer.await.expect("answered").expect("stored").activity().seq);
            }
            assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "publish order is seq order");
            owner.close();
            task.await;
        });
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_a_closed_owner_says_so() {
        let store: Arc<dyn Store> = Arc::new(crate::testing::StubStore::default());
        runtime().block_on(async move {
            let owner = Owner::new(store, Arc::new(ShardMetrics::default()));
            let mut answers = Vec::new();
            for _ in 0..=MAX_QUEUED {
                let (reply, answer) = oneshot::channel();
                owner.enqueue(PublishRequest { activity: message(new_id(), new_id()), reply, hook: None, trace: None });
                answers.push(answer);
            }
            let last = answers.pop().expect("one").await.expect("answered");
            assert!(matches!(last, Err(PublishError::Overloaded)), "{last:?}");
            owner.close();
            let (reply, answer) = oneshot::channel();
            owner.enqueue(PublishRequest { activity: message(new_id(), new_id()), reply, hook: None, trace: None });
            assert!(matches!(answer.await.expect("answered"), Err(PublishError::ShuttingDown)));
        });
    }
}
