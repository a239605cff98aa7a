//! Who is in a conversation right now, kept by the conversation's owner shard
//! (the one place that sees every join and leave, from every shard), in the
//! shapes of Phoenix Presence: a state is `{key: {"metas": [meta, …]}}`, a diff
//! is `{"joins": state, "leaves": state}`. A key (the sender id) may be present
//! several times at once — several tabs or devices — each with its own meta
//! and `phx_ref`.

use std::collections::{BTreeMap, HashMap};

use converger_storage::{Id, Timestamp};
use serde::Serialize;

/// One presence of a key: one joined socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Unique per join; Phoenix clients match leaves to joins by it.
    pub phx_ref: String,
    pub online_at: Timestamp,
}

/// `{key: {"metas": [...]}}`, keys sorted for stable output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PresenceState(pub BTreeMap<String, Metas>);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metas {
    pub metas: Vec<Meta>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PresenceDiff {
    pub joins: PresenceState,
    pub leaves: PresenceState,
}

impl PresenceState {
    fn one(key: &str, meta: Meta) -> PresenceState {
        PresenceState(BTreeMap::from([(key.to_string(), Metas { metas: vec![meta] })]))
    }
}

/// The owner's presence table for all its conversations.
#[derive(Default)]
pub struct Presences {
    by_conversation: HashMap<Id, BTreeMap<String, Vec<Meta>>>,
}

impl Presences {
    /// Adds a presence; returns the conversation's state (for the joiner's
    /// `presence_state`) and the diff to broadcast.
    pub fn join(&mut self, conversation: Id, key: &str, meta: Meta) -> (PresenceState, PresenceDiff) {
        let table = self.by_conversation.entry(conversation).or_default();
        table.entry(key.to_string()).or_default().push(meta.clone());
        let state = PresenceState(table.iter().map(|(k, metas)| (k.clone(), Metas { metas: metas.clone() })).collect());
        (state, PresenceDiff { joins: PresenceState::one(key, meta), leaves: PresenceState::default() })
    }

    /// Removes the presence `phx_ref` of `key`; the diff to broadcast, or `None`
    /// when it was not there (already left).
    pub fn leave(&mut self, conversation: Id, key: &str, phx_ref: &str) -> Option<PresenceDiff> {
        let table = self.by_conversation.get_mut(&conversation)?;
        let metas = table.get_mut(key)?;
        let at = metas.iter().position(|m| m.phx_ref == phx_ref)?;
        let meta = metas.remove(at);
        if metas.is_empty() {
            table.remove(key);
        }
        if table.is_empty() {
            self.by_conversation.remove(&conversation);
        }
        Some(PresenceDiff { joins: PresenceState::default(), leaves: PresenceState::one(key, meta) })
    }

    /// Conversations with anyone present (stats, tests).
    pub fn conversations(&self) -> usize {
        self.by_conversation.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converger_storage::new_id;
    use serde_json::json;

    fn meta(r: &str) -> Meta {
        Meta { phx_ref: r.into(), online_at: Timestamp::from_micros(0) }
    }

    #[test]
    fn joins_and_leaves_in_phoenix_shapes() {
        let mut p = Presences::default();
        let c = new_id();
        let (_, diff) = p.join(c, "alice", meta("r1"));
        assert_eq!(
            serde_json::to_value(&diff).unwrap(),
            json!({"joins": {"alice": {"metas": [{"phx_ref": "r1", "online_at": "1970-01-01T00:00:00.000000Z"}]}}, "leaves": {}})
        );
        let (state, _) = p.join(c, "alice", meta("r2"));
        assert_eq!(state.0["alice"].metas.len(), 2, "two tabs, two metas");
        let (state, _) = p.join(c, "bob", meta("r3"));
        assert_eq!(state.0.keys().collect::<Vec<_>>(), vec!["alice", "bob"]);

        let diff = p.leave(c, "alice", "r1").expect("was there");
        assert_eq!(diff.leaves.0["alice"].metas, vec![meta("r1")]);
        assert!(p.leave(c, "alice", "r1").is_none(), "a second leave changes nothing");
        p.leave(c, "alice", "r2");
        p.leave(c, "bob", "r3");
        assert_eq!(p.conversations(), 0, "an empty conversation is forgotten");
    }
}
