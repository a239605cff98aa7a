//! How the ingest scenarios spread their load over the nodes of a cluster,
//! and what they report per node. Connections go round-robin over the nodes
//! (connection `c` to node `c % nodes`). Conversations are either contended
//! (every node writes every conversation, so nodes race for each next seq) or
//! uncontended (conversation `j` is written only through node `j % nodes`).
//! With one node both are the same load.

use std::net::SocketAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::{new_histogram, Percentiles, Spread};

/// Which node connection `c` goes to.
pub fn node_of(connection: usize, nodes: usize) -> usize {
    connection % nodes.max(1)
}

/// The conversations (indexes into the setup's list) written through `node`.
pub fn conversations_of(node: usize, nodes: usize, conversations: usize, contended: bool) -> Vec<usize> {
    let nodes = nodes.max(1);
    (0..conversations).filter(|j| contended || j % nodes == node).collect()
}

/// Where connection `c` starts cycling through its node's conversations, so
/// the connections of one node begin on different conversations.
pub fn start_of(connection: usize, nodes: usize, contended: bool) -> usize {
    if contended {
        connection
    } else {
        connection / nodes.max(1)
    }
}

/// Refuses an uncontended load that would leave a node without conversations.
pub fn check(nodes: usize, conversations: usize, contended: bool) -> Result<(), String> {
    if !contended && conversations < nodes {
        return Err(format!("{conversations} conversations for {nodes} nodes: give each node at least one"));
    }
    Ok(())
}

/// One node's share of a scenario's result.
#[derive(Debug, Serialize)]
pub struct NodeLoad {
    pub node: usize,
    pub addr: SocketAddr,
    pub connections: usize,
    pub conversations: usize,
    /// The scenario's unit (acknowledged writes or activities) per second
    /// through this node: median and spread over the runs.
    pub per_s: Spread,
    pub latency_us: Percentiles,
    /// Writes the node refused (answered, but not with success).
    pub failed: u64,
}

/// What one node accumulated over the runs.
pub struct NodeTally {
    rates: Vec<f64>,
    hist: Histogram<u64>,
    pub failed: u64,
    pub first_failure: Option<String>,
}

impl NodeTally {
    pub fn new() -> NodeTally {
        NodeTally { rates: Vec::new(), hist: new_histogram(), failed: 0, first_failure: None }
    }

    /// One run's figures for this node: `done` in `seconds`.
    pub fn add_run(&mut self, done: u64, seconds: f64, hist: &Histogram<u64>) -> Result<(), String> {
        self.rates.push(done as f64 / seconds);
        self.hist.add(hist).map_err(|e| e.to_string())
    }

    /// Failed writes seen by one connection, with its first reason.
    pub fn add_failures(&mut self, failed: u64, reason: Option<String>) {
        self.failed += failed;
        if self.first_failure.is_none() {
            self.first_failure = reason;
        }
    }

    pub fn finish(&self, node: usize, addr: SocketAddr, connections: usize, conversations: usize) -> NodeLoad {
        NodeLoad {
            node,
            addr,
            connections,
            conversations,
            per_s: Spread::of(&self.rates),
            latency_us: Percentiles::of(&self.hist),
            failed: self.failed,
        }
    }
}

/// The connections that go to `node` out of `connections`.
pub fn connections_on(node: usize, nodes: usize, connections: usize) -> usize {
    (0..connections).filter(|&c| node_of(c, nodes) == node).count()
}

/// The error a scenario ends with after reporting, when any node refused writes.
pub fn failures(tallies: &[NodeTally]) -> Result<(), String> {
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    if failed == 0 {
        return Ok(());
    }
    let first = tallies.iter().find_map(|t| t.first_failure.clone()).unwrap_or_default();
    Err(format!("{failed} writes were refused; the first: {first}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_gets_everything_either_way() {
        for contended in [false, true] {
            assert_eq!(conversations_of(0, 1, 4, contended), [0, 1, 2, 3]);
            assert_eq!(start_of(5, 1, contended), 5);
        }
        assert_eq!(connections_on(0, 1, 7), 7);
    }

    #[test]
    fn uncontended_nodes_write_disjoint_conversations_covering_all() {
        let (nodes, convs) = (3, 10);
        let sets: Vec<Vec<usize>> = (0..nodes).map(|n| conversations_of(n, nodes, convs, false)).collect();
        assert_eq!(sets[0], [0, 3, 6, 9]);
        assert_eq!(sets[1], [1, 4, 7]);
        let mut all: Vec<usize> = sets.concat();
        all.sort();
        assert_eq!(all, (0..convs).collect::<Vec<_>>());
        assert!(check(3, 2, false).is_err() && check(3, 2, true).is_ok());
    }

    #[test]
    fn contended_nodes_all_write_every_conversation() {
        for n in 0..3 {
            assert_eq!(conversations_of(n, 3, 5, true), [0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn connections_go_round_robin() {
        assert_eq!((0..7).map(|c| node_of(c, 3)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!([0, 1, 2].map(|n| connections_on(n, 3, 7)), [3, 2, 2]);
        // The connections of one node start on different conversations.
        assert_eq!([0, 3, 6].map(|c| start_of(c, 3, false)), [0, 1, 2]);
    }

    #[test]
    fn refused_writes_end_the_scenario_with_the_first_reason() {
        let mut t = [NodeTally::new(), NodeTally::new()];
        assert!(failures(&t).is_ok());
        t[1].add_failures(2, Some("status 503".into()));
        t[1].add_failures(1, Some("later".into()));
        assert_eq!(failures(&t).unwrap_err(), "3 writes were refused; the first: status 503");
    }
}
