//! Which other nodes are alive, as this node hears them: every node sends a
//! heartbeat each [`HEARTBEAT`]; a node not heard from for [`EXPIRY`] is gone,
//! and everything it said (its presences) is dropped. A node that restarts
//! comes back under a new origin (same id, new incarnation): its old origin is
//! gone at once. Pure: the bus feeds it messages and the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::wire::{node_of, Heartbeat};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which a node counts as gone: three missed heartbeats and a
/// margin for a busy box.
pub const EXPIRY: Duration = Duration::from_millis(3_500);

/// One other node as last heard.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    last_seen: Instant,
    connections: u64,
}

/// What the admin statistics show of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub id: String,
    pub connections: u64,
    /// Milliseconds since its last heartbeat (0 for this node).
    pub last_seen_ms: u64,
    /// True for the node that answered.
    pub this_node: bool,
}

#[derive(Debug, Default)]
pub struct Nodes {
    by_origin: HashMap<String, Node>,
}

/// What hearing from a node changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// The origin was not known: answer with a heartbeat so it learns of us now.
    pub new: bool,
    /// Older incarnations of the same node id, now gone.
    pub replaced: Vec<String>,
}

impl Nodes {
    /// A heartbeat arrived.
    pub fn heartbeat(&mut self, hb: &Heartbeat, now: Instant) -> Heard {
        let mut heard = self.touch(&hb.origin, now);
        if let Some(node) = self.by_origin.get_mut(&hb.origin) {
            node.connections = hb.connections;
        }
        if heard.new {
            let id = node_of(&hb.origin);
            heard.replaced = self.by_origin.keys().filter(|o| *o != &hb.origin && node_of(o) == id).cloned().collect();
            for old in &heard.replaced {
                self.by_origin.remove(old);
            }
        }
        heard
    }

    /// Any message from `origin` shows it alive.
    pub fn touch(&mut self, origin: &str, now: Instant) -> Heard {
        match self.by_origin.get_mut(origin) {
            Some(node) => {
                node.last_seen = now;
                Heard::default()
            }
            None => {
                self.by_origin.insert(origin.to_owned(), Node { last_seen: now, connections: 0 });
                Heard { new: true, replaced: Vec::new() }
            }
        }
    }

    /// Removes and returns the origins silent for [`EXPIRY`].
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .by_origin
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.last_seen) >= EXPIRY)
            .map(|(o, _)| o.clone())
            .collect();
        for o in &gone {
            self.by_origin.remove(o);
        }
        gone
    }

    /// Other nodes alive.
    /// The origins of the other nodes alive.
    pub fn origins(&self) -> Vec<String> {
        self.by_origin.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_origin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_origin.is_empty()
    }

    /// Every other node, by id.
    pub fn views(&self, now: Instant) -> Vec<NodeView> {
        let mut views: Vec<NodeView> = self
            .by_origin
            .iter()
            .map(|(origin, n)| NodeView {
                id: node_of(origin).to_owned(),
                connections: n.connections,
                last_seen_ms: now.saturating_duration_since(n.last_seen).as_millis() as u64,
                this_node: false,
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(origin: &str, connections: u64) -> Heartbeat {
        Heartbeat { origin: origin.into(), connections }
    }

    #[test]
    fn a_silent_node_expires_and_a_talking_one_stays() {
        let t0 = Instant::now();
        let mut nodes = Nodes::default();
        assert!(nodes.heartbeat(&hb("a.1", 3), t0).new);
        assert!(!nodes.heartbeat(&hb("a.1", 4), t0).new, "known");
        nodes.touch("b.1", t0);
        nodes.touch("b.1", t0 + Duration::from_secs(3));
        assert!(nodes.expire(t0 + EXPIRY - Duration::from_millis(1)).is_empty());
        assert_eq!(nodes.expire(t0 + EXPIRY), vec!["a.1".to_string()]);
        assert_eq!(nodes.len(), 1);
        let views = nodes.views(t0 + Duration::from_secs(4));
        assert_eq!((views[0].id.as_str(), views[0].last_seen_ms), ("b", 1000));
    }

    #[test]
    fn a_restarted_node_replaces_its_old_incarnation_at_once() {
        let t0 = Instant::now();
        let mut nodes = Nodes::default();
        nodes.heartbeat(&hb("a.1", 3), t0);
        nodes.heartbeat(&hb("ab.1", 3), t0);
        let heard = nodes.heartbeat(&hb("a.2", 0), t0);
        assert_eq!(heard, Heard { new: true, replaced: vec!["a.1".to_string()] });
        assert_eq!(nodes.len(), 2, "ab is another node");
    }
}
