//! Cluster mode, a node dies or an admin acts on one node (three nodes on one
//! PostgreSQL and one NATS): `kill -9` of a node under load loses no
//! acknowledged activity, its subscriber resumes on another node without gap,
//! and the node restarted with its id streams again; the dead node's presence
//! expires elsewhere; a tenant disabled, or a key rotated, on one node is
//! refused by the others within a second. Each test passes without running
//! when PostgreSQL or nats-server is missing (see `TestCluster`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use converger_e2e::api::{expect, Client};
use converger_e2e::cluster::{assert_gap_free, write_while, TestCluster};
use converger_e2e::phoenix::{self, activities, follow, join, seqs, topic, PresenceView, Progress};
use serde_json::{json, Value};

/// Activities the subscriber on A must have seen before A is killed.
const BEFORE_KILL: usize = 30;
/// Activities B's writer adds once A's writer has stopped.
const AFTER_KILL: usize = 20;
/// Bound on every wait of the load phase.
const LOAD_DEADLINE: Duration = Duration::from_secs(30);
/// A dead node's presence must be gone from the others by then (its entries
/// expire after a few seconds without the node's heartbeat).
const PRESENCE_EXPIRY_DEADLINE: Duration = Duration::from_secs(10);
/// SPEC: a tenant disabled or a key rotated on one node is refused by every
/// node within a second.
const INVALIDATION_DEADLINE: Duration = Duration::from_secs(1);

#[test]
fn a_node_killed_under_load_loses_no_acknowledged_activity_and_its_subscriber_resumes_on_another_node() {
    let Some(mut cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("failover");
    let (http_a, http_b) = (cluster.node(0).http_addr(), cluster.node(1).http_addr());
    // Issued by A, used on B after A is gone: every node checks every node's tokens.
    let token = f.token(cluster.node(0), "alice");
    let mut ws = phoenix::with_token(cluster.node(0), &token);
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");

    let progress = Progress::default();
    let (b_acked, stop_b) = (AtomicUsize::new(0), AtomicBool::new(false));
    let deadline = Instant::now() + LOAD_DEADLINE;
    let (writes_a, writes_b, (before, closed)) = thread::scope(|s| {
        let (f, progress, b_acked, stop_b) = (&f, &progress, &b_acked, &stop_b);
        let on_a =
            s.spawn(move || write_while(http_a, f, "on-a", Duration::from_millis(5), |_| Instant::now() < deadline));
        let on_b = s.spawn(move || {
            write_while(http_b, f, "on-b", Duration::from_millis(5), |n| {
                b_acked.store(n, Ordering::SeqCst);
                !stop_b.load(Ordering::SeqCst) && Instant::now() < deadline
            })
        });
        let subscriber = s.spawn(move || follow(&mut ws, progress, deadline));

        assert!(progress.wait_seen(BEFORE_KILL, deadline), "the subscriber on A saw {} activities", progress.seen());
        cluster.node(0).signal("KILL");
        let writes_a = on_a.join().expect("writer on A");
        let b_then = b_acked.load(Ordering::SeqCst);
        while b_acked.load(Ordering::SeqCst) < b_then + AFTER_KILL && Instant::now() < deadline && !on_b.is_finished() {
            // B's writer runs on its own thread: look again shortly.
            thread::sleep(Duration::from_millis(10));
        }
        stop_b.store(true, Ordering::SeqCst);
        (writes_a, on_b.join().expect("writer on B"), subscriber.join().expect("subscriber"))
    });
    cluster.kill_node(0);
    assert!(writes_a.ended_by.is_some(), "the writer on A ran to the deadline: was A killed?");
    assert!(writes_b.ended_by.is_none(), "the writer on B failed: {:?}\n{}", writes_b.ended_by, cluster.logs());
    assert!(writes_b.acked.len() >= AFTER_KILL, "B wrote {} in all", writes_b.acked.len());
    assert!(closed, "the subscriber's socket on A ended with A");

    // Every acknowledged activity is stored, once, with its seq; the log has no gap.
    let stored = f.all_activities(cluster.node(1));
    let last = stored.last().and_then(|a| a["seq"].as_i64()).expect("activities were stored");
    assert_gap_free(&seqs(&stored), 1, last, "the stored log after A died");
    let by_id: HashMap<&str, i64> =
        stored.iter().map(|a| (a["id"].as_str().expect("id"), a["seq"].as_i64().expect("seq"))).collect();
    for (id, seq) in writes_a.acked.iter().chain(&writes_b.acked) {
        assert_eq!(by_id.get(id.as_str()), Some(seq), "acknowledged {id} as seq {seq}");
    }

    // What the subscriber had from A was gap-free; on B it resumes from its last seq.
    let had = before.len() as i64;
    assert_gap_free(&seqs(&before), 1, had, "the subscriber on A before the kill");
    let mut ws = phoenix::with_token(cluster.node(1), &token);
    assert_eq!(join(&mut ws, &topic(&f), json!({"last_seq": had}))[4]["status"], "ok");
    let resumed = activities(&mut ws, (last - had) as usize, Instant::now() + LOAD_DEADLINE, None);
    assert_gap_free(&seqs(&resumed), had + 1, last, "the subscriber resumed on B");
    // Then the live stream, from a write on C.
    let live =
        expect(&f.client(cluster.node(2)).post(&f.activities_path(), &json!({"sender": "c", "text": "live"})), 201);
    let next = activities(&mut ws, 1, Instant::now() + LOAD_DEADLINE, None);
    assert_eq!(seqs(&next), vec![last + 1], "then the live stream, written on C");
    assert_eq!(next[0]["id"], live["id"]);

    // A back, with the same node id: its clients get the stream again.
    cluster.restart_node(0);
    let mut again = phoenix::with_token(cluster.node(0), &token);
    assert_eq!(join(&mut again, &topic(&f), json!({"last_seq": last}))[4]["status"], "ok");
    expect(&f.client(cluster.node(1)).post(&f.activities_path(), &json!({"sender": "b", "text": "after"})), 201);
    let caught_up = activities(&mut again, 2, Instant::now() + LOAD_DEADLINE, None);
    assert_eq!(seqs(&caught_up), vec![last + 1, last + 2], "the restarted node A streams what B writes");
}

#[test]
fn a_killed_nodes_presence_expires_on_the_other_nodes() {
    let Some(mut cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("ghost");
    let deadline = || Instant::now() + PRESENCE_EXPIRY_DEADLINE;
    // Bob first, so that he hears alice's join as it happens (learning the
    // presences of a conversation already followed elsewhere is
    // `presence_crosses_nodes_joins_and_leaves`'s business).
    let mut bob = phoenix::socket(cluster.node(1), &f, "bob");
    join(&mut bob, &topic(&f), json!({}));
    let mut alice = phoenix::socket(cluster.node(0), &f, "alice");
    join(&mut alice, &topic(&f), json!({}));
    let mut on_b = PresenceView::default();
    assert!(
        on_b.wait(&mut bob, deadline(), |v| v.contains("alice") && v.contains("bob")),
        "bob on node B never saw alice on node A: {:?}\n{}",
        on_b.keys(),
        cluster.logs()
    );

    cluster.kill_node(0);
    assert!(
        on_b.wait(&mut bob, deadline(), |v| !v.contains("alice")),
        "alice's presence outlived node A by {PRESENCE_EXPIRY_DEADLINE:?}: {:?}",
        on_b.keys()
    );
    // A newcomer on C sees bob and no ghost.
    let mut carol = phoenix::socket(cluster.node(2), &f, "carol");
    join(&mut carol, &topic(&f), json!({}));
    let mut on_c = PresenceView::default();
    assert!(
        on_c.wait(&mut carol, deadline(), |v| v.contains("bob") && v.contains("carol")),
        "carol on node C does not see bob on node B: {:?}",
        on_c.keys()
    );
    assert!(!on_c.contains("alice"), "node C shows the dead node's alice: {:?}", on_c.keys());
}

#[test]
fn a_node_stopped_gracefully_takes_its_presences_with_it_at_once() {
    let Some(mut cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("goodbye");
    let mut bob = phoenix::socket(cluster.node(1), &f, "bob");
    join(&mut bob, &topic(&f), json!({}));
    let mut alice = phoenix::socket(cluster.node(0), &f, "alice");
    join(&mut alice, &topic(&f), json!({}));
    let mut on_b = PresenceView::default();
    let deadline = || Instant::now() + PRESENCE_EXPIRY_DEADLINE;
    assert!(on_b.wait(&mut bob, deadline(), |v| v.contains("alice")), "bob never saw alice: {:?}", on_b.keys());

    // SIGTERM: A closes its sockets, and their leaves cross before its bus stops.
    cluster.node(0).signal("TERM");
    assert!(on_b.wait(&mut bob, deadline(), |v| !v.contains("alice")), "alice never left: {:?}", on_b.keys());
    let logs = cluster.node(1).stderr();
    assert!(
        !logs.contains("node silent"),
        "alice left only when node A's heartbeats expired, not when it stopped:\n{}",
        cluster.logs()
    );
    assert!(cluster.node_mut(0).terminate(Duration::from_secs(15)).is_some_and(|s| s.success()), "A exits 0");
}

/// Status and error code of an answer.
fn refusal(reply: &converger_e2e::Reply) -> (u16, Value) {
    let code = serde_json::from_slice::<Value>(&reply.body).map(|b| b["error"]["code"].clone()).unwrap_or_default();
    (reply.status, code)
}

/// Polls `GET path` with `key` on nodes 1 and 2 until each answers `want`;
/// panics naming the nodes that did not by `deadline`.
fn refused_elsewhere_by(cluster: &TestCluster, key: &str, path: &str, want: &(u16, Value), deadline: Instant) {
    let mut pending = vec![1, 2];
    let mut last = HashMap::new();
    while !pending.is_empty() {
        pending.retain(|&i| {
            let got = refusal(&Client::bearer(cluster.node(i), key).get(path));
            let done = &got == want;
            last.insert(i, got);
            !done
        });
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {pending:?} still answer {last:?} {INVALIDATION_DEADLINE:?} after the change on node 0 (want {want:?})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tenant_disabled_on_one_node_is_refused_by_the_others_within_a_second() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("disabled");
    let path = format!("/api/v1/conversations/{}", f.conversation_id());
    // Warm every node's caches with a success first.
    for i in 0..3 {
        expect(&f.client(cluster.node(i)).get(&path), 200);
    }
    let tenant = format!("/admin/api/tenants/{}", f.tenant.id);
    expect(&Client::admin(cluster.node(0)).patch(&tenant, &json!({"status": "inactive"})), 200);
    let deadline = Instant::now() + INVALIDATION_DEADLINE;
    let want = refusal(&f.client(cluster.node(0)).get(&path));
    assert!(matches!(want.0, 401 | 403), "node 0 refuses the disabled tenant: {want:?}");
    refused_elsewhere_by(&cluster, &f.tenant.api_key, &path, &want, deadline);
}

#[test]
fn a_key_rotated_on_one_node_is_refused_by_the_others_within_a_second() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("rotated");
    let path = format!("/api/v1/conversations/{}", f.conversation_id());
    for i in 0..3 {
        expect(&f.client(cluster.node(i)).get(&path), 200);
    }
    let rotate = format!("/admin/api/tenants/{}/rotate-key", f.tenant.id);
    let rotated = expect(&Client::admin(cluster.node(0)).post(&rotate, &json!({})), 200);
    let deadline = Instant::now() + INVALIDATION_DEADLINE;
    let want = refusal(&f.client(cluster.node(0)).get(&path));
    assert!(matches!(want.0, 401 | 403), "node 0 refuses the old key: {want:?}");
    refused_elsewhere_by(&cluster, &f.tenant.api_key, &path, &want, deadline);
    let new_key = rotated["api_key"].as_str().expect("api_key");
    for i in 1..3 {
        expect(&Client::bearer(cluster.node(i), new_key).get(&path), 200);
    }
}
