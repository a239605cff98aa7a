//! Publishing an activity: the one way an activity gets written.
//!
//! The caller hands over a fully validated [`NewActivity`]; the publisher sends
//! it to the conversation's owner shard — straight into the local owner's queue
//! when this shard owns it, else over the mesh — and waits for the owner's
//! answer, which comes only after the batch holding it committed: the answer
//! means the activity is durable (or was already stored, for a replay).

use std::rc::Rc;
use std::sync::Arc;

use converger_storage::{Id, NewActivity, Store, StoreError, Written};
use futures_channel::oneshot;
use futures_util::future::LocalBoxFuture;

use super::hook::HookRoute;
use super::mesh::MeshMsg;
use super::{Disconnect, Engine, Ephemeral, PresenceState, Signal};
use crate::trace::{self, SpanContext};

/// Why a publish did not produce a stored (or replayed) activity.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A queue on the way to the owner is full: retry after a moment (503 + Retry-After).
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    /// The server is stopping and no longer takes writes.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store refused the item or the batch (not found, closed, unavailable …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The channel's pre-publish hook refused it, with its reason.
    #[error("{0}")]
    Rejected(String),
}

/// A publish on its way to the owner, with the way back to the publisher.
pub struct PublishRequest {
    pub activity: NewActivity,
    pub reply: Reply,
    /// The conversation's pre-publish hook, when its channel has one.
    pub hook: Option<Arc<super::hook::HookRoute>>,
    /// The span of the request or publish that asked for it (traces on):
    /// the owner's commit span links to it.
    pub trace: Option<SpanContext>,
}

/// Where a publish's answer goes.
pub type Reply = oneshot::Sender<Result<Written, PublishError>>;

/// A publish handed to its owner ([`Publisher::submit`]): resolves once it is
/// committed (or replayed).
pub type Submitted = LocalBoxFuture<'static, Result<Written, PublishError>>;

/// This shard's way to the owners of conversations.
#[derive(Clone)]
pub struct Publisher {
    route: Route,
}

#[derive(Clone)]
enum Route {
    /// Straight to the store, one activity per transaction: for tests of the
    /// layers above that run without shards.
    Direct(Arc<dyn Store>),
    /// Through the owner shards (the server).
    Owners(Rc<Engine>),
}

impl Publisher {
    pub fn direct(store: Arc<dyn Store>) -> Publisher {
        Publisher { route: Route::Direct(store) }
    }

    pub fn through_owners(engine: Rc<Engine>) -> Publisher {
        Publisher { route: Route::Owners(engine) }
    }

    /// Persists one activity, past its conversation's pre-publish `hook`
    /// when it has one; resolves once it is committed (or replayed). (Without
    /// shards, in tests of the layers above, hooks are not called.)
    pub async fn publish(&self, activity: NewActivity, hook: Option<Arc<HookRoute>>) -> Result<Written, PublishError> {
        self.submit(activity, hook)?.await
    }

    /// [`Publisher::publish`] in two steps: the activity is handed to its
    /// owner now (so publishes submitted one after another take their
    /// conversation's seqs in that order), and the returned future resolves
    /// once it is committed. A full queue on the way refuses it at once.
    pub fn submit(&self, mut activity: NewActivity, hook: Option<Arc<HookRoute>>) -> Result<Submitted, PublishError> {
        let trace = traced(&mut activity);
        let engine = match &self.route {
            Route::Direct(store) => {
                let store = store.clone();
                return Ok(Box::pin(async move { direct(&store, activity).await }));
            }
            Route::Owners(engine) => engine,
        };
        let (reply, answer) = oneshot::channel();
        let conversation = activity.conversation_id;
        let request = PublishRequest { activity, reply, hook, trace };
        if engine.to_owner(conversation, MeshMsg::Publish(Box::new(request))).is_err() {
            return Err(PublishError::Overloaded);
        }
        // The owner drops the sender only when its shard stops before answering.
        Ok(Box::pin(async move { answer.await.unwrap_or(Err(PublishError::ShuttingDown)) }))
    }

    /// Sends a member signal to every subscriber of `conversation` (through
    /// its owner, and to the other nodes). Without shards (tests of the
    /// layers above) there is nobody to tell.
    pub fn signal(&self, conversation: Id, signal: Signal, data: serde_json::Value) -> Result<(), PublishError> {
        match &self.route {
            Route::Direct(_) => Ok(()),
            Route::Owners(engine) => engine.send_ephemeral(conversation, Ephemeral::Signal { signal, data }),
        }
    }
}

impl Publisher {
    /// Ends clients' following of `conversation` ([`Engine::disconnect`]);
    /// how many on this node. Without shards nobody follows anything.
    pub async fn disconnect(&self, conversation: Id, disconnect: Disconnect) -> Result<usize, PublishError> {
        match &self.route {
            Route::Direct(_) => Ok(0),
            Route::Owners(engine) => engine.disconnect(conversation, disconnect).await,
        }
    }

    /// Who is present in `conversation` ([`Engine::presence`]).
    pub async fn presence(&self, conversation: Id) -> Result<PresenceState, PublishError> {
        match &self.route {
            Route::Direct(_) => Ok(PresenceState::default()),
            Route::Owners(engine) => engine.presence(conversation).await,
        }
    }
}

impl Publisher {
    /// Persists many activities, as one publish each but crossing to each owner
    /// shard once; the answers keep the input's order, and activities of one
    /// conversation commit in that order.
    pub async fn publish_many(
        &self,
        activities: Vec<(NewActivity, Option<Arc<HookRoute>>)>,
    ) -> Vec<Result<Written, PublishError>> {
        let engine = match &self.route {
            Route::Direct(store) => {
                let n = activities.len();
                let activities = activities.into_iter().map(|(a, _)| a).collect();
                return match store.write_batch(activities).await {
                    Ok(items) => items.into_iter().map(|i| i.map_err(PublishError::from)).collect(),
                    Err(e) => (0..n).map(|_| Err(PublishError::Store(e.clone()))).collect(),
                };
            }
            Route::Owners(engine) => engine,
        };
        let mut per_owner: Vec<Vec<PublishRequest>> = (0..engine.shards()).map(|_| Vec::new()).collect();
        let answers: Vec<_> = activities
            .into_iter()
            .map(|(mut activity, hook)| {
                let (reply, answer) = oneshot::channel();
                let trace = traced(&mut activity);
                let owner = engine.owner_of(activity.conversation_id);
                per_owner[owner].push(PublishRequest { activity, reply, hook, trace });
                answer
            })
            .collect();
        for (owner, requests) in per_owner.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            if let Err(MeshMsg::PublishMany(requests)) = engine.send_to(owner, MeshMsg::PublishMany(requests)) {
                // The ring is full: every request of this owner answers Overloaded.
                for r in requests {
                    let _ = r.reply.send(Err(PublishError::Overloaded));
                }
            }
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.await.unwrap_or(Err(PublishError::ShuttingDown)));
        }
        out
    }
}

/// The span context of the request or publish being handled (traces on),
/// written with the activity into its delivery rows so that their attempts
/// join its trace.
fn traced(activity: &mut NewActivity) -> Option<SpanContext> {
    let trace = trace::current()?;
    if !activity.deliver_to.is_empty() {
        activity.traceparent = Some(trace.traceparent());
    }
    Some(trace)
}

async fn direct(store: &Arc<dyn Store>, activity: NewActivity) -> Result<Written, PublishError> {
    let mut out = store.write_batch(vec![activity]).await?;
    match out.pop() {
        Some(item) => Ok(item?),
        None => Err(PublishError::Store(StoreError::Internal("the store answered no item".into()))),
    }
}
