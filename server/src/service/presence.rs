//! The server API's view of who follows a conversation live: disconnect a
//! sender (or everyone) with a reason (`POST …/disconnect`), and list who is
//! present (`GET …/presence`). Closing a conversation disconnects everyone
//! with `conversation_closed` ([`Hub::close_conversation`]).
//!
//! Both go to the conversation's owner shard (`engine::disconnect`), which
//! knows the shards following it and, in a cluster, reaches the other nodes.

use converger_storage::{Id, Scope, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::activities::MAX_SENDER_BYTES;
use super::input::Fields;
use super::{Hub, ServiceResult};
use crate::engine::{Cause, Disconnect, PresenceState};

/// The longest reason a disconnect may give.
pub const MAX_REASON_BYTES: usize = 256;

/// `{sender?, reason}`.
pub fn disconnect_from_json(map: Map<String, Value>) -> ServiceResult<Disconnect> {
    let f = Fields::new(map, &["sender", "reason"])?;
    Ok(Disconnect {
        sender: f.non_blank_string("sender", MAX_SENDER_BYTES)?,
        reason: f.required_string("reason", MAX_REASON_BYTES)?,
        cause: Cause::Disconnected,
    })
}

/// One sender present in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Present {
    pub sender: String,
    /// Their joined sockets, on every node.
    pub connections: usize,
    /// When the earliest of them joined.
    pub online_at: Timestamp,
}

/// A presence state as a list, by sender.
pub fn present(state: PresenceState) -> Vec<Present> {
    state
        .0
        .into_iter()
        .filter_map(|(sender, metas)| {
            let online_at = metas.metas.iter().map(|m| m.online_at).min()?;
            Some(Present { sender, connections: metas.metas.len(), online_at })
        })
        .collect()
}

impl Hub {
    /// Ends the live following of the conversation by `disconnect.sender`'s
    /// clients (everyone's when none), on every node; how many ended on this
    /// node. 404 for another tenant's conversation.
    pub async fn disconnect(&self, scope: Scope, conversation: Id, disconnect: Disconnect) -> ServiceResult<usize> {
        self.store.get_conversation(scope, conversation).await?;
        Ok(self.publisher.disconnect(conversation, disconnect).await?)
    }

    /// Who is present in the conversation now, sorted by sender.
    pub async fn presence(&self, scope: Scope, conversation: Id) -> ServiceResult<Vec<Present>> {
        self.store.get_conversation(scope, conversation).await?;
        Ok(present(self.publisher.presence(conversation).await?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::presence::{Meta, Metas};
    use crate::service::ServiceError;

    #[test]
    fn a_disconnect_needs_a_reason_and_takes_a_sender() {
        let d = disconnect_from_json(json!({"reason": "bye", "sender": "bob"}).as_object().cloned().unwrap()).unwrap();
        assert_eq!((d.sender.as_deref(), d.reason.as_str(), d.cause), (Some("bob"), "bye", Cause::Disconnected));
        for (body, field) in [
            (json!({}), "reason"),
            (json!({"reason": " "}), "reason"),
            (json!({"reason": "x".repeat(MAX_REASON_BYTES + 1)}), "reason"),
            (json!({"reason": "x", "sender": ""}), "sender"),
            (json!({"reason": "x", "who": "bob"}), "who"),
        ] {
            match disconnect_from_json(body.as_object().cloned().unwrap()) {
                Err(ServiceError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn presence_lists_each_sender_once_with_their_connections() {
        let meta = |r: &str, at| Meta { phx_ref: r.into(), online_at: Timestamp::from_micros(at) };
        let state = PresenceState(
            [
                ("bob".to_string(), Metas { metas: vec![meta("b1", 5)] }),
                ("alice".to_string(), Metas { metas: vec![meta("a1", 9), meta("a2", 3)] }),
            ]
            .into_iter()
            .collect(),
        );
        let listed = present(state);
        assert_eq!(
            listed,
            vec![
                Present { sender: "alice".into(), connections: 2, online_at: Timestamp::from_micros(3) },
                Present { sender: "bob".into(), connections: 1, online_at: Timestamp::from_micros(5) },
            ]
        );
    }
}
