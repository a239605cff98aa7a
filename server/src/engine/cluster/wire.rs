//! What nodes say to each other over NATS: the subjects and the JSON bodies.
//! Pure (no I/O), so the shapes are tested here and nowhere else.
//!
//! Subjects (one cluster per NATS account; every subject starts `converger.`):
//! - `converger.c.<conversation>`: a conversation's traffic — committed
//!   activities, typing, presence diffs and full presence states. A node
//!   subscribes while it has local subscribers of the conversation, so it
//!   receives only what its clients follow.
//! - `converger.sync.<conversation>`: "who is present here?" — every node
//!   answers on the request's reply subject with its own presence state.
//! - `converger.nodes`: heartbeats (liveness, and each node's live figures).
//! - `converger.changed`: a tenant or channel changed: drop what you remember.
//! - `converger.users`: a user's first socket on a node connected, or its
//!   last one there went (user presence across nodes, `engine::users`).
//! - `converger.missed`: the sender may have failed to publish commits (it
//!   was cut from NATS, or its bus queue overflowed): every node's subscribers
//!   read storage after their last seq.
//!
//! Every body names its `origin`: the node id and a per-start incarnation
//! (`<node id>.<8 hex digits>`), so what a node said before a restart is told
//! apart from what it says after.

use converger_storage::{Activity, Id};
use serde::{Deserialize, Serialize};

use crate::engine::presence::PresenceState;

const PREFIX: &str = "converger.";

pub fn conversation_subject(conversation: Id) -> String {
    format!("{PREFIX}c.{conversation}")
}

pub fn sync_subject(conversation: Id) -> String {
    format!("{PREFIX}sync.{conversation}")
}

/// Every sync request (a node answers for all conversations).
pub const SYNC_ALL: &str = "converger.sync.*";
pub const NODES: &str = "converger.nodes";
pub const CHANGED: &str = "converger.changed";
pub const MISSED: &str = "converger.missed";
pub const USERS: &str = "converger.users";

/// `converger.users`: a user's first socket on the origin connected
/// (`online`), or its last one there went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMsg {
    pub origin: String,
    pub tenant: Id,
    pub sender: String,
    pub online: bool,
}

/// The conversation a `converger.c.<id>` or `converger.sync.<id>` subject names.
pub fn conversation_of(subject: &str) -> Option<Id> {
    let rest = subject.strip_prefix(PREFIX)?;
    let id = rest.strip_prefix("c.").or_else(|| rest.strip_prefix("sync."))?;
    Id::parse_str(id).ok()
}

/// A conversation's traffic (`converger.c.<id>`), externally tagged
/// (`{"batch": {…}}`): activities carry raw JSON (metadata, attachments),
/// which an internally tagged enum could not read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationMsg {
    /// Activities the origin committed, in seq order (one conversation's run
    /// of one batch).
    Batch {
        origin: String,
        activities: Vec<Activity>,
    },
    Typing {
        origin: String,
        sender: String,
        typing: bool,
    },
    /// A member signal (receipt, user online/offline).
    Signal {
        origin: String,
        signal: crate::engine::Signal,
        data: serde_json::Value,
    },
    /// A change to the origin's presences in the conversation.
    Presence {
        origin: String,
        joins: PresenceState,
        leaves: PresenceState,
    },
    /// The server ends clients' following of the conversation (the server
    /// API's disconnect, a close): the receiving node's subscribers it covers.
    Disconnect {
        origin: String,
        #[serde(flatten)]
        disconnect: crate::engine::Disconnect,
    },
    /// All of the origin's presences in the conversation: replaces what was
    /// known of it (an answer to a sync, or an announcement after a reconnect).
    PresenceState {
        origin: String,
        state: PresenceState,
    },
}

impl ConversationMsg {
    pub fn origin(&self) -> &str {
        match self {
            ConversationMsg::Batch { origin, .. }
            | ConversationMsg::Typing { origin, .. }
            | ConversationMsg::Signal { origin, .. }
            | ConversationMsg::Presence { origin, .. }
            | ConversationMsg::Disconnect { origin, .. }
            | ConversationMsg::PresenceState { origin, .. } => origin,
        }
    }
}

/// `converger.nodes`, once a second from every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub origin: String,
    /// Live WebSocket and binary connections on the node.
    pub connections: u64,
}

/// What changed (`converger.changed`): every node forgets what it remembers of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changed {
    /// A tenant's status, key or limits.
    Tenants,
    /// A channel's configuration or status.
    Channels,
    /// A tenant's event endpoints (which event types they take).
    EventEndpoints,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangedMsg {
    pub origin: String,
    pub what: Changed,
}

/// The node id of an origin (`<id>.<incarnation>`).
pub fn node_of(origin: &str) -> &str {
    origin.rsplit_once('.').map_or(origin, |(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::presence::{Meta, Metas};
    use converger_storage::{new_id, Json, Timestamp};
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn subjects_name_their_conversation() {
        let c = new_id();
        assert_eq!(conversation_of(&conversation_subject(c)), Some(c));
        assert_eq!(conversation_of(&sync_subject(c)), Some(c));
        assert_eq!(conversation_of("converger.nodes"), None);
        assert_eq!(conversation_of("converger.c.nope"), None);
        assert_eq!(node_of("node-a.0badf00d"), "node-a");
    }

    #[test]
    fn a_batch_round_trips_exactly() {
        let a = Activity {
            id: new_id(),
            tenant_id: new_id(),
            conversation_id: new_id(),
            seq: 7,
            kind: "message".into(),
            text: Some("héllo".into()),
            attachments: Some(Json::from_value(&json!([{"url": "https://x"}]))),
            sender: "u1".into(),
            metadata: Json::from_value(&json!({"k": [1, 2]})),
            idempotency_key: Some("k1".into()),
            created_at: Timestamp::from_micros(1_733_000_000_123_456),
            target_id: None,
            parent_id: Some(new_id()),
            state: Some(converger_storage::MessageState {
                edited_at: Some(Timestamp::from_micros(5)),
                deleted_at: None,
                reply_count: 2,
                reactions: vec![converger_storage::ReactionCount { emoji: "👍".into(), count: 3, me: true }],
            }),
        };
        // Only a message has a state: an event must come back without one.
        let event =
            Activity { kind: "reaction_add".into(), target_id: Some(a.id), parent_id: None, state: None, ..a.clone() };
        let msg = ConversationMsg::Batch { origin: "n.1".into(), activities: vec![a, event] };
        let bytes = serde_json::to_vec(&msg).expect("encode");
        assert_eq!(serde_json::from_slice::<ConversationMsg>(&bytes).expect("decode"), msg);
    }

    #[test]
    fn presence_and_typing_have_fixed_shapes() {
        let meta = Meta { phx_ref: "r1".into(), online_at: Timestamp::from_micros(0) };
        let state = PresenceState(BTreeMap::from([("alice".to_string(), Metas { metas: vec![meta] })]));
        let msg = ConversationMsg::Presence { origin: "n.1".into(), joins: state, leaves: PresenceState::default() };
        let v = serde_json::to_value(&msg).expect("encode");
        assert_eq!(v["presence"]["joins"]["alice"]["metas"][0]["phx_ref"], "r1");
        assert_eq!(serde_json::from_value::<ConversationMsg>(v).expect("decode"), msg);
        let typing = json!({"typing": {"origin": "n.1", "sender": "bob", "typing": true}});
        assert!(matches!(serde_json::from_value(typing), Ok(ConversationMsg::Typing { typing: true, .. })));
        let d = crate::engine::Disconnect {
            sender: Some("bob".into()),
            reason: "bye".into(),
            cause: crate::engine::Cause::Disconnected,
        };
        let msg = ConversationMsg::Disconnect { origin: "n.1".into(), disconnect: d };
        let v = serde_json::to_value(&msg).expect("encode");
        assert_eq!(
            v,
            json!({"disconnect": {"origin": "n.1", "sender": "bob", "reason": "bye", "cause": "disconnected"}})
        );
        assert_eq!(serde_json::from_value::<ConversationMsg>(v).expect("decode"), msg);
        let changed = serde_json::to_value(ChangedMsg { origin: "n.1".into(), what: Changed::Channels }).unwrap();
        assert_eq!(changed, json!({"origin": "n.1", "what": "channels"}));
    }
}
