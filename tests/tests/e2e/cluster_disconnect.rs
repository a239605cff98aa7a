//! The server API across nodes (two nodes on one PostgreSQL and one NATS): a
//! disconnect made through node A reaches the clients on node B (answered
//! with A's own count), presence asked of A lists the clients on B, and a
//! close through A disconnects them. Passes without running when PostgreSQL
//! or nats-server is missing (see `TestCluster`).

use std::time::{Duration, Instant};

use converger_e2e::api::expect;
use converger_e2e::binary::{uuid_bytes, BinClient};
use converger_e2e::cluster::TestCluster;
use converger_e2e::phoenix::{self, join, topic, until, until_by};
use converger_protocol::{ErrorCode, Frame};
use serde_json::{json, Value};

/// How long a disconnect or a presence change may take to cross nodes.
const CROSS_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_disconnect_through_node_a_reaches_the_clients_on_node_b() {
    let Some(cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("cluster-disconnect");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut bob = phoenix::socket(b, &f, "bob");
    assert_eq!(join(&mut bob, &topic(&f), json!({}))[4]["status"], "ok");
    until(&mut bob, "presence_state");
    let mut carol = phoenix::socket(b, &f, "carol");
    assert_eq!(join(&mut carol, &topic(&f), json!({}))[4]["status"], "ok");
    let (mut bin_bob, _) = BinClient::with_token(b.binary_addr(), &f.token(b, "bob"));
    bin_bob.subscribe_one(uuid_bytes(f.conversation_id()), 0);

    // A has no client of the conversation: it asks B who is there.
    let presence = format!("/api/v1/conversations/{}/presence", f.conversation_id());
    let deadline = Instant::now() + CROSS_DEADLINE;
    let listed = loop {
        let data = expect(&f.client(a).get(&presence), 200)["data"].clone();
        if data.as_array().is_some_and(|d| d.len() == 2) || Instant::now() > deadline {
            break data;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let senders: Vec<&Value> = listed.as_array().expect("data").iter().map(|p| &p["sender"]).collect();
    assert_eq!(senders, [&json!("bob"), &json!("carol")], "{listed}\n{}", cluster.logs());

    let path = format!("/api/v1/conversations/{}/disconnect", f.conversation_id());
    let answer = expect(&f.client(a).post(&path, &json!({"sender": "bob", "reason": "moved"})), 200);
    assert_eq!(answer, json!({"disconnected": 0}), "A counts its own clients only");
    let closed = until_by(&mut bob, "phx_close", Instant::now() + CROSS_DEADLINE);
    let closed = closed.unwrap_or_else(|| panic!("no phx_close on B\n{}", cluster.logs()));
    assert_eq!(closed[4], json!({"reason": "moved", "code": "disconnected"}));
    let error = loop {
        match bin_bob.frame() {
            Frame::Error(e) => break e,
            _ => continue,
        }
    };
    assert_eq!(error.error_code(), Some(ErrorCode::Disconnected));

    // Carol stays until the conversation is closed, through A.
    expect(&f.client(a).post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    let closed = until_by(&mut carol, "phx_close", Instant::now() + CROSS_DEADLINE).expect("carol disconnected");
    assert_eq!(closed[4]["code"], "conversation_closed");
}
