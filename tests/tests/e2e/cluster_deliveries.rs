//! Cluster mode, the delivery queue: every node runs a delivery worker
//! against the one queue in PostgreSQL (`FOR UPDATE SKIP LOCKED`, leased
//! claims, fenced completions). Activities written through all three nodes to
//! a webhook channel reach the receiver exactly once each, and the nodes'
//! attempts add up to one per activity: no double sends. Passes without
//! running when PostgreSQL or nats-server is missing (see `TestCluster`).

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use converger_e2e::api::{create_tenant, expect, Client};
use converger_e2e::cluster::TestCluster;
use converger_e2e::receiver::Receiver;
use serde_json::json;

/// Activities written through each node.
const PER_NODE: usize = 30;

#[test]
fn workers_on_every_node_share_the_queue_without_double_sends() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(cluster.node(0), "shared-queue");
    let api = Client::bearer(cluster.node(0), &tenant.api_key);
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": receiver.url("/hook")}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));

    let written: Vec<String> = thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|i| {
                let (node, key, path) = (cluster.node(i), &tenant.api_key, &path);
                s.spawn(move || {
                    let api = Client::bearer(node, key);
                    (0..PER_NODE)
                        .map(|n| {
                            let a = expect(
                                &api.post(path, &json!({"sender": format!("w{i}"), "text": format!("{n}")})),
                                201,
                            );
                            a["id"].as_str().expect("id").to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers.into_iter().flat_map(|w| w.join().expect("writer")).collect()
    });

    let total = 3 * PER_NODE;
    let arrived = receiver.wait_for(total, Duration::from_secs(30)).len();
    assert!(arrived >= total, "{arrived} of {total} deliveries arrived\n{}", cluster.logs());
    // A second delivery would come within a claim cycle: give it the time to.
    thread::sleep(Duration::from_secs(2));
    let got = receiver.requests();
    let mut per_activity: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_activity
            .entry(r.json()["data"]["activity"]["id"].as_str().expect("activity id").to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_activity.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    for id in &written {
        assert_eq!(per_activity.get(id), Some(&1), "activity {id} delivered {:?} times", per_activity.get(id));
    }
    assert_eq!(got.len(), total, "one request per activity");

    // Each node counts its own attempts: together, one per activity.
    let attempts: u64 = cluster
        .nodes()
        .iter()
        .map(|n| {
            let page = n.get("/metrics").text();
            page.lines()
                .find_map(|l| l.strip_prefix("converger_delivery_attempts_total{outcome=\"delivered\"} "))
                .map_or(0, |v| v.trim().parse().expect("a count"))
        })
        .sum();
    assert_eq!(attempts, total as u64, "attempts across the nodes");
}
