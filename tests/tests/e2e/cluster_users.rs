//! User presence across nodes: a user with sockets on two nodes stays online
//! until the last one goes; moving from one node to another within the
//! debounce says nothing; a killed node's users are announced offline once,
//! by one surviving node. Passes without running when PostgreSQL or
//! nats-server is missing (see `TestCluster`).

use std::time::{Duration, Instant};

use converger_e2e::api::expect;
use converger_e2e::cluster::TestCluster;
use converger_e2e::phoenix::{self, join, topic, until_by, Ws};
use serde_json::{json, Value};

/// Longer than the server's debounce (5 s), with room for a busy machine.
const PAST_DEBOUNCE: Duration = Duration::from_secs(9);

/// The next `event` about `sender` on `ws`, within `wait`.
fn about(ws: &mut Ws, event: &str, sender: &str, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let m = until_by(ws, event, deadline)?;
        if m[4]["sender"] == sender {
            return Some(m);
        }
    }
}

#[test]
fn a_user_on_two_nodes_is_online_until_the_last_socket_and_a_move_between_nodes_says_nothing() {
    let Some(cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("users");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let members = format!("/api/v1/conversations/{}/members", f.conversation_id());
    expect(&f.client(a).post(&members, &json!({"sender": "alice"})), 201);

    let mut bob = phoenix::socket(b, &f, "bob");
    assert_eq!(join(&mut bob, &topic(&f), json!({}))[4]["status"], "ok");

    let on_a = phoenix::socket(a, &f, "alice");
    assert!(about(&mut bob, "user_online", "alice", PAST_DEBOUNCE).is_some(), "alice online\n{}", cluster.logs());
    // A second socket on B, then A's goes: still online (on B).
    let on_b = phoenix::socket(b, &f, "alice");
    std::thread::sleep(Duration::from_millis(300));
    drop(on_a);
    let quiet = about(&mut bob, "user_offline", "alice", PAST_DEBOUNCE);
    assert!(quiet.is_none(), "offline while on B: {quiet:?}");
    // Move back to A within the debounce: nothing either way.
    drop(on_b);
    let back_on_a = phoenix::socket(a, &f, "alice");
    let quiet = about(&mut bob, "user_offline", "alice", PAST_DEBOUNCE)
        .or_else(|| about(&mut bob, "user_online", "alice", Duration::from_millis(10)));
    assert!(quiet.is_none(), "a move between nodes announced: {quiet:?}");
    drop(back_on_a);
    let offline = about(&mut bob, "user_offline", "alice", PAST_DEBOUNCE + PAST_DEBOUNCE).expect("offline at last");
    assert!(offline[4]["last_seen"].is_string());
}

#[test]
fn a_killed_nodes_users_are_announced_offline_once_by_a_survivor() {
    let Some(mut cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("users-kill");
    let members = format!("/api/v1/conversations/{}/members", f.conversation_id());
    expect(&f.client(cluster.node(0)).post(&members, &json!({"sender": "carol"})), 201);
    let mut bob = phoenix::socket(cluster.node(1), &f, "bob");
    assert_eq!(join(&mut bob, &topic(&f), json!({}))[4]["status"], "ok");
    let _carol = phoenix::socket(cluster.node(2), &f, "carol");
    assert!(about(&mut bob, "user_online", "carol", PAST_DEBOUNCE).is_some(), "carol online\n{}", cluster.logs());

    cluster.kill_node(2);
    let offline = about(&mut bob, "user_offline", "carol", Duration::from_secs(20));
    assert!(offline.is_some(), "carol not announced offline after her node died\n{}", cluster.logs());
    let again = about(&mut bob, "user_offline", "carol", Duration::from_secs(3));
    assert!(again.is_none(), "announced twice: {again:?}");
}
