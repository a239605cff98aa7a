//! Who is in a conversation right now, kept by the conversation's owner shard
//! (the one place that sees every join and leave, from every shard), in the
//! shapes of Phoenix Presence: a state is `{key: {"metas": [meta, …]}}`, a diff
//! is `{"joins": state, "leaves": state}`. A key (the sender id) may be present
//! several times at once — several tabs or devices — each with its own meta
//! and `phx_ref`.

use std::collections::{BTreeMap, HashMap};

use converger_storage::{Id, Timestamp};
use serde::{Deserialize, Serialize};

/// One presence of a key: one joined socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Unique per join; Phoenix clients match leaves to joins by it.
    pub phx_ref: String,
    pub online_at: Timestamp,
}

/// `{key: {"metas": [...]}}`, keys sorted for stable output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceState(pub BTreeMap<String, Metas>);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metas {
    pub metas: Vec<Meta>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceDiff {
    pub joins: PresenceState,
    pub leaves: PresenceState,
}

impl PresenceDiff {
    /// Folds a `later` diff into this one, as one diff saying both: a join
    /// and a leave of the same presence (`phx_ref`) cancel out. Keeps the
    /// joins' order.
    pub fn merge(&mut self, later: PresenceDiff) {
        for (key, Metas { metas }) in later.joins.0 {
            self.joins.0.entry(key).or_default().metas.extend(metas);
        }
        for (key, Metas { metas }) in later.leaves.0 {
            for meta in metas {
                let joined = self.joins.0.get_mut(&key);
                let at = joined.as_ref().and_then(|j| j.metas.iter().position(|m| m.phx_ref == meta.phx_ref));
                match (joined, at) {
                    (Some(joined), Some(at)) => {
                        joined.metas.remove(at);
                        if joined.metas.is_empty() {
                            self.joins.0.remove(&key);
                        }
                    }
                    _ => self.leaves.0.entry(key.clone()).or_default().metas.push(meta),
                }
            }
        }
    }

    /// Says nothing (everything in it cancelled out).
    pub fn is_empty(&self) -> bool {
        self.joins.0.is_empty() && self.leaves.0.is_empty()
    }
}

impl PresenceState {
    fn one(key: &str, meta: Meta) -> PresenceState {
        PresenceState(BTreeMap::from([(key.to_string(), Metas { metas: vec![meta] })]))
    }
}

/// Who is present in one conversation: key → metas.
type Table = BTreeMap<String, Vec<Meta>>;

/// The owner's presence table for all its conversations: this node's
/// presences, and in a cluster what the other nodes said of theirs (by origin,
/// so a node that stops heart-beating takes its entries with it).
#[derive(Default)]
pub struct Presences {
    by_conversation: HashMap<Id, Table>,
    /// conversation → origin → that node's presences.
    remote: HashMap<Id, HashMap<String, Table>>,
}

impl Presences {
    /// Adds a presence; returns the diff to broadcast.
    pub fn join(&mut self, conversation: Id, key: &str, meta: Meta) -> PresenceDiff {
        let table = self.by_conversation.entry(conversation).or_default();
        table.entry(key.to_string()).or_default().push(meta.clone());
        PresenceDiff { joins: PresenceState::one(key, meta), leaves: PresenceState::default() }
    }

    /// Everyone present in `conversation`, on this node and the others.
    pub fn state(&self, conversation: Id) -> PresenceState {
        let mut all = PresenceState::default();
        let remote = self.remote.get(&conversation).into_iter().flat_map(|by_origin| by_origin.values());
        for table in self.by_conversation.get(&conversation).into_iter().chain(remote) {
            for (key, metas) in table {
                all.0.entry(key.clone()).or_default().metas.extend(metas.iter().cloned());
            }
        }
        all
    }

    /// This node's presences in `conversation` (what it tells other nodes).
    pub fn local_state(&self, conversation: Id) -> PresenceState {
        self.by_conversation.get(&conversation).map(to_state).unwrap_or_default()
    }

    /// This node's presences, per conversation.
    pub fn local_states(&self) -> Vec<(Id, PresenceState)> {
        self.by_conversation.iter().map(|(c, table)| (*c, to_state(table))).collect()
    }

    /// Another node's change; the part of it that is news here (a diff seen
    /// twice, or after a full state that already had it, changes nothing).
    pub fn remote_diff(&mut self, conversation: Id, origin: &str, diff: &PresenceDiff) -> Option<PresenceDiff> {
        let old = self.remote_table(conversation, origin);
        let mut new = old.clone();
        for (key, metas) in &diff.joins.0 {
            let entry = new.entry(key.clone()).or_default();
            for m in &metas.metas {
                if !entry.iter().any(|e| e.phx_ref == m.phx_ref) {
                    entry.push(m.clone());
                }
            }
        }
        for (key, metas) in &diff.leaves.0 {
            if let Some(entry) = new.get_mut(key) {
                entry.retain(|e| !metas.metas.iter().any(|m| m.phx_ref == e.phx_ref));
                if entry.is_empty() {
                    new.remove(key);
                }
            }
        }
        self.set_remote(conversation, origin, old, new)
    }

    /// Another node's full state in `conversation`, replacing what was known of it.
    pub fn remote_state(&mut self, conversation: Id, origin: &str, state: &PresenceState) -> Option<PresenceDiff> {
        let old = self.remote_table(conversation, origin);
        let new: Table =
            state.0.iter().map(|(k, m)| (k.clone(), m.metas.clone())).filter(|(_, m)| !m.is_empty()).collect();
        self.set_remote(conversation, origin, old, new)
    }

    /// A node is gone: its presences leave every conversation.
    pub fn drop_origin(&mut self, origin: &str) -> Vec<(Id, PresenceDiff)> {
        let mut diffs = Vec::new();
        self.remote.retain(|conversation, by_origin| {
            if let Some(old) = by_origin.remove(origin) {
                if let Some(d) = diff_tables(&old, &Table::new()) {
                    diffs.push((*conversation, d));
                }
            }
            !by_origin.is_empty()
        });
        diffs
    }

    /// No one here follows `conversation` any more: what other nodes said of
    /// it will not be kept up to date, so it is dropped (a later follower asks again).
    pub fn forget_remote(&mut self, conversation: Id) {
        self.remote.remove(&conversation);
    }

    fn remote_table(&self, conversation: Id, origin: &str) -> Table {
        self.remote.get(&conversation).and_then(|o| o.get(origin)).cloned().unwrap_or_default()
    }

    fn set_remote(&mut self, conversation: Id, origin: &str, old: Table, new: Table) -> Option<PresenceDiff> {
        let diff = diff_tables(&old, &new);
        let by_origin = self.remote.entry(conversation).or_default();
        if new.is_empty() {
            by_origin.remove(origin);
            if by_origin.is_empty() {
                self.remote.remove(&conversation);
            }
        } else {
            by_origin.insert(origin.to_owned(), new);
        }
        diff
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

fn to_state(table: &Table) -> PresenceState {
    PresenceState(table.iter().map(|(k, metas)| (k.clone(), Metas { metas: metas.clone() })).collect())
}

/// The metas in `new` and not in `old` (joins), and the other way (leaves),
/// matched by `phx_ref`; `None` when nothing changed.
fn diff_tables(old: &Table, new: &Table) -> Option<PresenceDiff> {
    let only_in = |a: &Table, b: &Table| -> PresenceState {
        let mut out = PresenceState::default();
        for (key, metas) in a {
            let others = b.get(key);
            let missing: Vec<Meta> = metas
                .iter()
                .filter(|m| !others.is_some_and(|o| o.iter().any(|x| x.phx_ref == m.phx_ref)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                out.0.insert(key.clone(), Metas { metas: missing });
            }
        }
        out
    };
    let diff = PresenceDiff { joins: only_in(new, old), leaves: only_in(old, new) };
    (!diff.joins.0.is_empty() || !diff.leaves.0.is_empty()).then_some(diff)
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
    fn diffs_merge_into_one_and_a_join_and_its_leave_cancel_out() {
        let join = |k: &str, r: &str| PresenceDiff { joins: PresenceState::one(k, meta(r)), ..Default::default() };
        let leave = |k: &str, r: &str| PresenceDiff { leaves: PresenceState::one(k, meta(r)), ..Default::default() };
        let mut d = join("alice", "a1");
        d.merge(join("bob", "b1"));
        d.merge(join("alice", "a2"));
        d.merge(leave("carol", "c1"));
        d.merge(leave("alice", "a1"));
        let refs = |s: &PresenceState, k: &str| s.0[k].metas.iter().map(|m| m.phx_ref.clone()).collect::<Vec<_>>();
        assert_eq!(refs(&d.joins, "alice"), ["a2"]);
        assert_eq!(refs(&d.joins, "bob"), ["b1"]);
        assert_eq!(d.leaves.0.keys().collect::<Vec<_>>(), ["carol"], "a1 joined and left within the diff: not told");
        d.merge(leave("bob", "b1"));
        d.merge(leave("alice", "a2"));
        d.merge(PresenceDiff { leaves: PresenceState::default(), ..Default::default() });
        assert!(d.joins.0.is_empty(), "{d:?}");
        d.merge(leave("carol", "c2"));
        assert_eq!(refs(&d.leaves, "carol"), ["c1", "c2"]);
        let mut nothing = join("dan", "d1");
        nothing.merge(leave("dan", "d1"));
        assert!(nothing.is_empty());
    }

    #[test]
    fn joins_and_leaves_in_phoenix_shapes() {
        let mut p = Presences::default();
        let c = new_id();
        let diff = p.join(c, "alice", meta("r1"));
        assert_eq!(
            serde_json::to_value(&diff).unwrap(),
            json!({"joins": {"alice": {"metas": [{"phx_ref": "r1", "online_at": "1970-01-01T00:00:00.000000Z"}]}}, "leaves": {}})
        );
        p.join(c, "alice", meta("r2"));
        assert_eq!(p.state(c).0["alice"].metas.len(), 2, "two tabs, two metas");
        p.join(c, "bob", meta("r3"));
        assert_eq!(p.state(c).0.keys().collect::<Vec<_>>(), vec!["alice", "bob"]);

        let diff = p.leave(c, "alice", "r1").expect("was there");
        assert_eq!(diff.leaves.0["alice"].metas, vec![meta("r1")]);
        assert!(p.leave(c, "alice", "r1").is_none(), "a second leave changes nothing");
        p.leave(c, "alice", "r2");
        p.leave(c, "bob", "r3");
        assert_eq!(p.conversations(), 0, "an empty conversation is forgotten");
    }

    fn one(key: &str, r: &str) -> PresenceState {
        PresenceState::one(key, meta(r))
    }

    #[test]
    fn other_nodes_presences_join_the_state_and_leave_with_their_node() {
        let mut p = Presences::default();
        let c = new_id();
        p.join(c, "alice", meta("a1"));
        let join = PresenceDiff { joins: one("bob", "b1"), leaves: PresenceState::default() };
        assert_eq!(p.remote_diff(c, "n2.1", &join), Some(join.clone()));
        assert_eq!(p.remote_diff(c, "n2.1", &join), None, "a diff seen twice is news once");
        p.join(c, "carol", meta("c1"));
        assert_eq!(p.state(c).0.keys().collect::<Vec<_>>(), vec!["alice", "bob", "carol"]);
        assert_eq!(p.local_state(c).0.keys().collect::<Vec<_>>(), vec!["alice", "carol"], "only ours go out");

        // A full state replaces what was known of that node.
        let d = p.remote_state(c, "n2.1", &one("dave", "d1")).expect("changed");
        assert_eq!((d.joins, d.leaves), (one("dave", "d1"), one("bob", "b1")));

        let gone = p.drop_origin("n2.1");
        assert_eq!(gone, vec![(c, PresenceDiff { joins: PresenceState::default(), leaves: one("dave", "d1") })]);
        assert_eq!(p.state(c).0.keys().collect::<Vec<_>>(), vec!["alice", "carol"]);
        p.remote_diff(c, "n3.1", &join);
        p.forget_remote(c);
        assert!(p.drop_origin("n3.1").is_empty(), "forgotten with the conversation");
    }
}
