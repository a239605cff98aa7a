//! Cluster mode, the live stream across nodes (three nodes on one PostgreSQL
//! and one NATS): what is written on A and C reaches a client on B in seq
//! order, without gap or repeat, on the Phoenix socket and on the binary
//! protocol; typing and presence cross nodes too, and the admin console's live
//! tail (a watcher) follows another node's writes unseen. Each test passes without
//! running when PostgreSQL or nats-server is missing (see `TestCluster`).

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use converger_e2e::binary::{message, uuid_bytes, BinClient, Next};
use converger_e2e::cluster::{assert_gap_free, write_while, TestCluster, Writes};
use converger_e2e::phoenix::{self, activities, join, send, seqs, topic, until_by, PresenceView};
use converger_protocol::{Ephemeral, Frame, Publish};
use serde_json::json;

/// Activities each publisher writes.
const N: usize = 60;
/// How long a subscriber may wait for everything to arrive.
const STREAM_DEADLINE: Duration = Duration::from_secs(20);
/// How long an ephemeral event or a presence change may take to cross nodes.
const CROSS_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_phoenix_client_on_b_gets_rest_writes_from_a_and_c_in_seq_order_without_gap_or_repeat() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("stream");
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut ws = phoenix::socket(b, &f, "reader");
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");

    let writes: Vec<Writes> = thread::scope(|s| {
        let f = &f;
        let writers: Vec<_> = [(a, "on-a"), (c, "on-c")]
            .map(|(node, sender)| {
                s.spawn(move || write_while(node.http_addr(), f, sender, Duration::from_millis(2), |n| n < N))
            })
            .into_iter()
            .collect();
        writers.into_iter().map(|w| w.join().expect("writer")).collect()
    });
    for w in &writes {
        assert!(w.ended_by.is_none(), "a writer failed: {:?}\n{}", w.ended_by, cluster.logs());
    }

    let got = activities(&mut ws, 2 * N, Instant::now() + STREAM_DEADLINE, None);
    assert_gap_free(&seqs(&got), 1, 2 * N as i64, "the Phoenix client on node B");
    let by_seq: HashMap<i64, &str> =
        got.iter().map(|a| (a["seq"].as_i64().expect("seq"), a["id"].as_str().expect("id"))).collect();
    for (id, seq) in writes.iter().flat_map(|w| &w.acked) {
        assert_eq!(by_seq.get(seq), Some(&id.as_str()), "the activity acknowledged as seq {seq}");
    }
}

#[test]
fn a_binary_subscriber_on_b_gets_binary_publishes_from_a_and_c_in_seq_order_without_gap_or_repeat() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("binstream");
    let conv = uuid_bytes(f.conversation_id());
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (mut sub, _) = BinClient::with_token(b.binary_addr(), &f.token(b, "reader"));
    assert_eq!(sub.subscribe_one(conv, 0), 0, "a fresh conversation");

    let acked: Vec<(u64, [u8; 16])> = thread::scope(|s| {
        let key = &f.tenant.api_key;
        let publishers: Vec<_> = [(a, "on-a"), (c, "on-c")]
            .map(|(node, sender)| {
                s.spawn(move || {
                    let (mut p, _) = BinClient::with_api_key(node.binary_addr(), key);
                    (0..N)
                        .map(|i| {
                            let activity = message(conv, sender, &format!("{sender} {i}"));
                            p.send(Publish { request_id: i as u32 + 1, activity });
                            match p.frame() {
                                Frame::PublishAck(ack) => (ack.written.seq, ack.written.activity_id),
                                other => panic!("{sender}: expected PublishAck, got {other:?}"),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .into_iter()
            .collect();
        publishers.into_iter().flat_map(|p| p.join().expect("publisher")).collect()
    });
    let mut acked_seqs: Vec<i64> = acked.iter().map(|(seq, _)| *seq as i64).collect();
    acked_seqs.sort_unstable();
    assert_gap_free(&acked_seqs, 1, 2 * N as i64, "the acknowledged seqs");

    let got = sub.delivered_by(2 * N, Instant::now() + STREAM_DEADLINE);
    let got: Vec<i64> = got.into_iter().map(|s| s as i64).collect();
    assert_gap_free(&got, 1, 2 * N as i64, "the binary subscriber on node B");
}

#[test]
fn typing_on_a_reaches_a_phoenix_subscriber_on_b() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("typing");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = phoenix::socket(a, &f, "alice");
    join(&mut alice, &topic(&f), json!({}));
    let mut bob = phoenix::socket(b, &f, "bob");
    join(&mut bob, &topic(&f), json!({}));
    send(&mut alice, json!(["1", "3", topic(&f), "typing", {"typing": true}]));
    let typing = until_by(&mut bob, "typing", Instant::now() + CROSS_DEADLINE)
        .unwrap_or_else(|| panic!("no typing from node A on node B\n{}", cluster.logs()));
    assert_eq!(typing[4], json!({"sender": "alice", "typing": true}));
    let listed = f.all_activities(b);
    assert!(listed.is_empty(), "typing is never stored: {listed:?}");
}

#[test]
fn typing_on_a_reaches_a_binary_subscriber_on_b() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("bintyping");
    let conv = uuid_bytes(f.conversation_id());
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (mut carol, _) = BinClient::with_token(a.binary_addr(), &f.token(a, "carol"));
    let (mut dave, _) = BinClient::with_token(b.binary_addr(), &f.token(b, "dave"));
    carol.subscribe_one(conv, 0);
    dave.subscribe_one(conv, 0);
    carol.send(Ephemeral {
        request_id: 0,
        conversation_id: conv,
        kind: "typing".into(),
        sender: String::new(),
        data: r#"{"typing":true}"#.into(),
    });
    let deadline = Instant::now() + CROSS_DEADLINE;
    loop {
        match dave.next_by(deadline) {
            Some(Next::Frame(Frame::Ephemeral(e))) if e.sender == "carol" => {
                assert_eq!(e.kind, "typing");
                assert_eq!(serde_json::from_str::<serde_json::Value>(&e.data).expect("json"), json!({"typing": true}));
                break;
            }
            Some(Next::Frame(_)) => {}
            Some(Next::Closed) => panic!("dave's connection closed\n{}", cluster.logs()),
            None => panic!("no binary typing from node A on node B\n{}", cluster.logs()),
        }
    }
}

#[test]
fn presence_crosses_nodes_joins_and_leaves() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("presence");
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let deadline = || Instant::now() + CROSS_DEADLINE;

    let mut bob = phoenix::socket(b, &f, "bob");
    join(&mut bob, &topic(&f), json!({}));
    let mut on_b = PresenceView::default();
    assert!(on_b.wait(&mut bob, deadline(), |v| v.contains("bob")), "bob sees himself: {:?}", on_b.keys());

    // Alice joins on A: B hears of it.
    let mut alice = phoenix::socket(a, &f, "alice");
    join(&mut alice, &topic(&f), json!({}));
    assert!(
        on_b.wait(&mut bob, deadline(), |v| v.contains("alice")),
        "alice (on node A) never showed in bob's presence on node B: {:?}\n{}",
        on_b.keys(),
        cluster.logs()
    );

    // Carol joins on C later: her state (and what follows) holds both.
    let mut carol = phoenix::socket(c, &f, "carol");
    join(&mut carol, &topic(&f), json!({}));
    let mut on_c = PresenceView::default();
    assert!(
        on_c.wait(&mut carol, deadline(), |v| v.contains("alice") && v.contains("bob") && v.contains("carol")),
        "carol on node C does not see alice (A) and bob (B): {:?}\n{}",
        on_c.keys(),
        cluster.logs()
    );
    let mut on_a = PresenceView::default();
    assert!(
        on_a.wait(&mut alice, deadline(), |v| v.contains("bob") && v.contains("carol")),
        "alice on node A does not see bob (B) and carol (C): {:?}",
        on_a.keys()
    );

    // Alice's socket closes: she leaves everywhere.
    drop(alice);
    assert!(
        on_b.wait(&mut bob, deadline(), |v| !v.contains("alice")),
        "alice's leave never reached node B: {:?}",
        on_b.keys()
    );
    assert!(
        on_c.wait(&mut carol, deadline(), |v| !v.contains("alice")),
        "alice's leave never reached node C: {:?}",
        on_c.keys()
    );
}

#[test]
fn the_consoles_live_tail_on_one_node_follows_writes_on_another_unseen() {
    let Some(cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("tail");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut bob = phoenix::socket(b, &f, "bob");
    join(&mut bob, &topic(&f), json!({}));
    let mut on_b = PresenceView::default();
    assert!(on_b.wait(&mut bob, Instant::now() + CROSS_DEADLINE, |v| v.contains("bob")), "{:?}", on_b.keys());

    // The console asks node B for a watcher token and tails on node A.
    let path = format!("/admin/api/conversations/{}/live-token", f.conversation_id());
    let token = converger_e2e::api::expect(&converger_e2e::api::Client::admin(b).post(&path, &json!({})), 200);
    let mut tail = phoenix::with_token(a, token["token"].as_str().expect("token"));
    assert_eq!(join(&mut tail, &topic(&f), json!({}))[4]["status"], "ok");
    converger_e2e::api::expect(&f.client(b).post(&f.activities_path(), &json!({"sender": "s", "text": "on b"})), 201);
    let seen = activities(&mut tail, 1, Instant::now() + CROSS_DEADLINE, None);
    assert_eq!(seen[0]["text"], "on b", "the tail on A got B's write");
    // Bob, on the other node, never saw the watcher join.
    let mut carol = phoenix::socket(b, &f, "carol");
    join(&mut carol, &topic(&f), json!({}));
    assert!(on_b.wait(&mut bob, Instant::now() + CROSS_DEADLINE, |v| v.contains("carol")), "{:?}", on_b.keys());
    assert!(!on_b.contains("admin"), "the console's watcher shows in presence on B: {:?}", on_b.keys());
}
