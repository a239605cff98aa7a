//! Cluster mode, one sequence per conversation across nodes (three nodes on
//! one PostgreSQL and one NATS): concurrent writers on every node get one
//! gap-free seq, each acknowledged activity stored exactly once; an
//! idempotency key raced on all nodes at once makes one activity, and every
//! answer names it. Each test passes without running when PostgreSQL or
//! nats-server is missing (see `TestCluster`).

use std::collections::HashMap;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use converger_e2e::cluster::{acked, assert_gap_free, write_while, Acked, TestCluster, Writes};
use serde_json::json;

/// Writers per node, and activities per writer.
const WRITERS_PER_NODE: usize = 2;
const PER_WRITER: usize = 50;

#[test]
fn writers_on_every_node_share_one_gap_free_sequence() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("sequence");
    let writes: Vec<Writes> = thread::scope(|s| {
        let f = &f;
        let writers: Vec<_> = (0..cluster.len() * WRITERS_PER_NODE)
            .map(|w| {
                let http = cluster.node(w % cluster.len()).http_addr();
                let sender = format!("node{}-w{w}", w % cluster.len());
                s.spawn(move || write_while(http, f, &sender, Duration::ZERO, |n| n < PER_WRITER))
            })
            .collect();
        writers.into_iter().map(|w| w.join().expect("writer")).collect()
    });
    for w in &writes {
        assert!(w.ended_by.is_none(), "a writer failed: {:?}\n{}", w.ended_by, cluster.logs());
    }
    let total = (cluster.len() * WRITERS_PER_NODE * PER_WRITER) as i64;

    let stored = f.all_activities(cluster.node(1));
    let stored_seqs: Vec<i64> = stored.iter().map(|a| a["seq"].as_i64().expect("seq")).collect();
    assert_gap_free(&stored_seqs, 1, total, "the stored activities");
    let stored_ids: HashMap<&str, i64> =
        stored.iter().map(|a| (a["id"].as_str().expect("id"), a["seq"].as_i64().expect("seq"))).collect();
    assert_eq!(stored_ids.len(), stored.len(), "every stored activity has its own id");
    for (id, seq) in writes.iter().flat_map(|w| &w.acked) {
        assert_eq!(stored_ids.get(id.as_str()), Some(seq), "activity {id}, acknowledged as seq {seq}");
    }
    // Every node reads the same log.
    for i in [0, 2] {
        let other: Vec<Acked> = f.all_activities(cluster.node(i)).iter().map(acked).collect();
        assert_eq!(other, stored.iter().map(acked).collect::<Vec<_>>(), "node-{i} lists what node-1 lists");
    }
}

#[test]
fn an_idempotency_key_raced_on_every_node_makes_one_activity_and_every_answer_names_it() {
    const ROUNDS: usize = 8;
    let Some(cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("idem-race");
    let racers = cluster.len() * WRITERS_PER_NODE;
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let start = Barrier::new(racers);
        let answers: Vec<(u16, Acked)> = thread::scope(|s| {
            let (f, key, start) = (&f, &key, &start);
            let racers: Vec<_> = (0..racers)
                .map(|r| {
                    let node = cluster.node(r % cluster.len());
                    s.spawn(move || {
                        let body = json!({"sender": format!("racer{r}"), "text": format!("round {round} by {r}")});
                        let client = f.client(node);
                        start.wait();
                        let reply = client.send("POST", &f.activities_path(), &[("idempotency-key", key)], Some(&body));
                        assert!(matches!(reply.status, 200 | 201), "racer {r}: {} {}", reply.status, reply.text());
                        (reply.status, acked(&reply.json()))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().expect("racer")).collect()
        });
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        assert_eq!(created, 1, "round {round}: one answer creates (201), the others replay (200): {answers:?}");
        let first = &answers[0].1;
        assert!(answers.iter().all(|(_, a)| a == first), "round {round}: every answer names one activity: {answers:?}");
        assert_eq!(first.1, round as i64 + 1, "round {round}: the one activity takes the next seq");
    }
    let stored = f.all_activities(cluster.node(2));
    let keys: Vec<&str> = stored.iter().map(|a| a["idempotency_key"].as_str().unwrap_or("-")).collect();
    let want: Vec<String> = (0..ROUNDS).map(|r| format!("race-{r}")).collect();
    assert_eq!(keys, want, "one activity per key, in round order");
}
