//! A tenant's signing keys across nodes (two nodes on one PostgreSQL and one
//! NATS): a key created through node A signs tokens node B takes, and once
//! it is revoked through A, node B refuses them too — within a bounded poll,
//! though B had the key in its memory. Passes without running when
//! PostgreSQL or nats-server is missing (see `TestCluster`).

use std::time::{Duration, Instant};

use converger_e2e::api::expect;
use converger_e2e::binary::BinClient;
use converger_e2e::cluster::TestCluster;
use converger_e2e::jose::{claims, sign_hs256};
use converger_e2e::phoenix::{connect, join, topic, with_token};
use converger_e2e::TestServer;
use converger_protocol::Auth;
use serde_json::json;

/// How long a revocation through one node may take to be seen on another
/// (the cluster's notice is meant to take milliseconds; the auth cache's TTL
/// of 2 s is the bound should it be lost).
const CROSS_DEADLINE: Duration = Duration::from_secs(5);

/// The HTTP status a Phoenix socket upgrade with `token` gets (101 = accepted).
fn phoenix_status(server: &TestServer, token: &str) -> u16 {
    match connect(server, &format!("token={token}&vsn=2.0.0")) {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("socket upgrade failed: {e}"),
    }
}

#[test]
fn a_key_revoked_through_node_a_is_refused_on_node_b() {
    let Some(cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("cluster-keys");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let created = expect(&f.client(a).send("POST", "/api/v1/signing-keys", &[], None), 201);
    let (kid, secret) = (created["kid"].as_str().expect("kid"), created["secret"].as_str().expect("secret"));
    let token = sign_hs256(&claims(&f.tenant.id, f.conversation_id(), "alice", 600), secret, kid);

    // B takes the token on every transport (and so remembers the key: each
    // shard that verified it keeps it for a while).
    let mut ws = with_token(b, &token);
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");
    for _ in 0..4 {
        assert_eq!(phoenix_status(b, &token), 101, "node B takes a token of A's new key");
    }
    let (_bin, welcome) = BinClient::with_token(b.binary_addr(), &token);
    assert_eq!(welcome.sender, "alice");

    assert_eq!(f.client(a).send("DELETE", &format!("/api/v1/signing-keys/{kid}"), &[], None).status, 204);
    assert_eq!(phoenix_status(a, &token), 401, "refused at once on the node that revoked it");

    // B: refused within the bound, polled.
    let deadline = Instant::now() + CROSS_DEADLINE;
    let mut last = 101;
    while Instant::now() < deadline {
        last = phoenix_status(b, &token);
        if last == 401 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(last, 401, "node B still takes a revoked key's token after {CROSS_DEADLINE:?}\n{}", cluster.logs());
    // Refused on every connection from now on (both shards, both transports).
    for _ in 0..4 {
        assert_eq!(phoenix_status(b, &token), 401, "a revoked key's token on node B");
    }
    let mut refused = BinClient::tcp(b.binary_addr());
    assert!(refused.hello(Auth::Token(token.clone())).is_err(), "a revoked key's token on B's binary port");
    // The server's own tokens are untouched on both nodes.
    assert_eq!(phoenix_status(b, &f.token(b, "bob")), 101);
    assert_eq!(phoenix_status(a, &f.token(a, "bob")), 101);
}
