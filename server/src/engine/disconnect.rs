//! The server ends clients' following of a conversation (the server API's
//! disconnect, a conversation's close), and says who is present in one.
//!
//! A disconnect goes to the conversation's owner, the one place that knows
//! which shards of this node have subscribers; it sends it once to each of
//! them, each ends the subscriptions it covers (one sender's, or everyone's)
//! and answers how many, and the owner answers the sum. The owner also hands
//! it to the cluster bus, which carries it on the conversation's subject to
//! every node that follows the conversation: their owners do the same, and
//! their counts are not collected (NATS core is at most once; nobody waits
//! for a node that may be gone).
//!
//! A subscription that ends this way is closed first — nothing more of the
//! conversation reaches its sink — and then its sink is told
//! ([`super::Sink::disconnected`]): the transport says why to the client and
//! lets its session forget the subscription.

use std::rc::Rc;
use std::sync::Arc;

use converger_storage::Id;
use futures_channel::oneshot;
use serde::{Deserialize, Serialize};

use super::mesh::MeshMsg;
use super::presence::PresenceState;
use super::publish::PublishError;
use super::Engine;

/// Why the server ends a client's following of a conversation: the code
/// the client is given (the catalogue's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The integration asked (`POST …/disconnect`).
    Disconnected,
    /// The conversation was closed.
    ConversationClosed,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Disconnected => "disconnected",
            Cause::ConversationClosed => "conversation_closed",
        }
    }
}

/// One disconnect: whose clients, and what they are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnect {
    /// Only the clients acting as this sender (a client token's `sub`);
    /// every client of the conversation when `None`.
    pub sender: Option<String>,
    /// For people: given to the client as is.
    pub reason: String,
    pub cause: Cause,
}

impl Disconnect {
    /// Whether a client acting as `client` (`None`: an API-key connection,
    /// or a watcher) is covered.
    pub fn covers(&self, client: Option<&str>) -> bool {
        match &self.sender {
            None => true,
            Some(sender) => client == Some(sender.as_str()),
        }
    }
}

/// The owner's answer: subscriptions ended on this node, or why it could
/// not reach every shard (a full ring: `Overloaded`; a disconnect may be repeated).
pub type DisconnectReply = oneshot::Sender<Result<usize, PublishError>>;

impl Engine {
    /// Ends the subscriptions of `conversation` that `disconnect` covers, on
    /// every shard of this node and (in a cluster) every other node;
    /// resolves to how many ended on this node.
    pub async fn disconnect(self: &Rc<Self>, conversation: Id, disconnect: Disconnect) -> Result<usize, PublishError> {
        let (reply, answer) = oneshot::channel();
        let message = MeshMsg::Disconnect { conversation, disconnect: Arc::new(disconnect), reply };
        self.to_owner(conversation, message).map_err(|_| PublishError::Overloaded)?;
        answer.await.unwrap_or(Err(PublishError::ShuttingDown))
    }

    /// Owner side: the disconnect to every shard of this node following the
    /// conversation; the sum of their counts to `reply`, when there is one.
    pub(super) fn disconnect_at_owner(
        self: &Rc<Self>,
        conversation: Id,
        disconnect: Arc<Disconnect>,
        reply: Option<DisconnectReply>,
    ) {
        let mut counts = Vec::new();
        let mut unreached = false;
        for shard in self.owner.subscriber_shards(conversation) {
            let (tell, count) = oneshot::channel();
            let message = MeshMsg::DisconnectHere { conversation, disconnect: disconnect.clone(), reply: tell };
            match self.send_to(shard, message) {
                Ok(()) => counts.push(count),
                Err(_) => {
                    tracing::warn!(shard, %conversation, "mesh ring full: disconnect not delivered");
                    unreached = true;
                }
            }
        }
        let Some(reply) = reply else { return };
        monoio::spawn(async move {
            let mut total = 0;
            for count in counts {
                total += count.await.unwrap_or(0);
            }
            let _ = reply.send(if unreached { Err(PublishError::Overloaded) } else { Ok(total) });
        });
    }

    /// This shard's subscriptions of `conversation` that `disconnect` covers
    /// end; how many.
    pub(super) fn disconnect_here(self: &Rc<Self>, conversation: Id, disconnect: &Disconnect) -> usize {
        let mut ended = 0;
        for sub in self.live.of(conversation) {
            if sub.is_closed() || !disconnect.covers(sub.client()) {
                continue;
            }
            self.unsubscribe(&sub);
            sub.disconnected(disconnect);
            ended += 1;
        }
        ended
    }

    /// Who is present in `conversation`: what its owner knows, and in a
    /// cluster, when this node does not follow the conversation (so knows
    /// nothing of the others), what the other nodes answer (within the
    /// presence sync's wait).
    pub async fn presence(self: &Rc<Self>, conversation: Id) -> Result<PresenceState, PublishError> {
        let (reply, answer) = oneshot::channel();
        self.to_owner(conversation, MeshMsg::PresenceQuery { conversation, reply })
            .map_err(|_| PublishError::Overloaded)?;
        let (mut state, following) = answer.await.map_err(|_| PublishError::ShuttingDown)?;
        if !following {
            for other in self.ask_other_nodes_presence(conversation).await {
                for (key, metas) in other.0 {
                    state.0.entry(key).or_default().metas.extend(metas.metas);
                }
            }
        }
        Ok(state)
    }
}
