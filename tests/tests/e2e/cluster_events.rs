//! Lifecycle events in a cluster: an endpoint created through one node is
//! used by the others at once (the bus tells their caches); member events
//! written on any node, and a user's online/offline transitions decided once
//! across the nodes (a user on two nodes, a node killed under its users),
//! each reach the endpoint once, whichever node's worker sends them. Passes
//! without running when PostgreSQL or nats-server is missing (see `TestCluster`).

use std::time::{Duration, Instant};

use converger_e2e::api::expect;
use converger_e2e::cluster::TestCluster;
use converger_e2e::phoenix;
use converger_e2e::receiver::Receiver;
use serde_json::{json, Value};

/// Past the server's offline debounce (5 s), with room for a busy machine.
const PAST_DEBOUNCE: Duration = Duration::from_secs(9);

/// The received events of `kind` about `sender`.
fn about(receiver: &Receiver, kind: &str, sender: &str) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|v| v["type"] == kind && v["data"]["sender"] == sender)
        .collect()
}

/// Waits until `n` events of `kind` about `sender` have arrived (or `wait` passed); answers how many did.
fn wait_about(receiver: &Receiver, kind: &str, sender: &str, n: usize, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let got = about(receiver, kind, sender).len();
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn member_and_user_events_are_written_once_across_two_nodes() {
    let Some(mut cluster) = TestCluster::start(2) else { return };
    let receiver = Receiver::start(vec![200], "{}");
    let f = cluster.fixture("events");
    let members = format!("/api/v1/conversations/{}/members", f.conversation_id());
    // Node B looks first and remembers: this tenant has no endpoints.
    expect(&f.client(cluster.node(1)).post(&members, &json!({"sender": "early"})), 201);
    let all = ["member.joined", "member.left", "user.online", "user.offline"];
    let body = json!({"url": receiver.url("/events"), "events": all});
    expect(&f.client(cluster.node(0)).post("/api/v1/event-endpoints", &body), 201);
    // The bus tells B within milliseconds (its memory would expire in 2 s anyway).
    std::thread::sleep(Duration::from_millis(500));
    expect(&f.client(cluster.node(1)).post(&members, &json!({"sender": "alice"})), 201);
    assert_eq!(wait_about(&receiver, "member.joined", "alice", 1, Duration::from_secs(10)), 1, "{}", cluster.logs());

    // Alice on both nodes, then gone from both: online once, offline once.
    let on_a = phoenix::socket(cluster.node(0), &f, "alice");
    assert_eq!(wait_about(&receiver, "user.online", "alice", 1, Duration::from_secs(10)), 1, "{}", cluster.logs());
    let on_b = phoenix::socket(cluster.node(1), &f, "alice");
    std::thread::sleep(Duration::from_millis(300));
    drop(on_a);
    std::thread::sleep(Duration::from_millis(300));
    drop(on_b);
    assert_eq!(wait_about(&receiver, "user.offline", "alice", 1, PAST_DEBOUNCE + PAST_DEBOUNCE), 1);
    // A second announcement, were there one, would show within a debounce.
    std::thread::sleep(PAST_DEBOUNCE);
    assert_eq!(about(&receiver, "user.online", "alice").len(), 1, "online once");
    assert_eq!(about(&receiver, "user.offline", "alice").len(), 1, "offline once");
    assert_eq!(about(&receiver, "member.joined", "early").len(), 0, "before the endpoint: nothing");

    // Carol's only node is killed: the survivor announces her offline, once.
    let carol = phoenix::socket(cluster.node(1), &f, "carol");
    assert_eq!(wait_about(&receiver, "user.online", "carol", 1, Duration::from_secs(10)), 1);
    // Let its sender record the delivery first: a kill mid-attempt would (rightly) send it again.
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill_node(1);
    drop(carol);
    assert_eq!(wait_about(&receiver, "user.offline", "carol", 1, Duration::from_secs(30)), 1, "{}", cluster.logs());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(about(&receiver, "user.offline", "carol").len(), 1, "offline once");
    let ids: Vec<String> =
        receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no event sent twice: {ids:?}");
}
