//! Cluster mode, the delivery queue and the admin's view: every node runs a
//! delivery worker against the one queue in PostgreSQL (`FOR UPDATE SKIP
//! LOCKED`, leased claims, fenced completions). Activities written through all
//! three nodes to a webhook channel reach the receiver exactly once each, and
//! the nodes' attempts add up to one per activity: no double sends. A channel
//! changed through one node is read again by every node's worker. The admin
//! stats list every node. Passes without running when PostgreSQL or
//! nats-server is missing (see `TestCluster`).

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
            // A cluster node labels its samples with its id.
            page.lines()
                .filter(|l| l.starts_with("converger_delivery_attempts_total{node=\""))
                .find_map(|l| l.split_once(",outcome=\"delivered\"} ").map(|(_, v)| v))
                .map_or(0, |v| v.trim().parse().expect("a count"))
        })
        .sum();
    assert_eq!(attempts, total as u64, "attempts across the nodes");
}

#[test]
fn a_channel_changed_through_one_node_is_read_again_by_every_nodes_worker() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let (old, new) = (Receiver::start(vec![200], "{}"), Receiver::start(vec![200], "{}"));
    let tenant = create_tenant(cluster.node(0), "moved-hook");
    let api = Client::bearer(cluster.node(0), &tenant.api_key);
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": old.url("/hook")}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    let write_on_every_node = |round: &str| {
        for i in 0..3 {
            for n in 0..4 {
                let api = Client::bearer(cluster.node(i), &tenant.api_key);
                expect(&api.post(&path, &json!({"sender": "w", "text": format!("{round} {i} {n}")})), 201);
            }
        }
    };
    // Every node's worker has had the chance to read (and remember) the channel.
    write_on_every_node("before");
    assert_eq!(old.wait_for(12, Duration::from_secs(30)).len(), 12, "the first round reached the old URL");

    let moved = json!({"config": {"url": new.url("/hook")}});
    expect(&api.patch(&format!("/api/v1/channels/{}", channel["id"].as_str().expect("id")), &moved), 200);
    // Well inside the workers' 1 s memory of a channel: only the change notice
    // (converger.changed) can make a node that did not take the PATCH read it again.
    thread::sleep(Duration::from_millis(300));
    write_on_every_node("after");
    assert_eq!(new.wait_for(12, Duration::from_secs(30)).len(), 12, "the second round reached the new URL");
    thread::sleep(Duration::from_secs(1));
    assert_eq!(old.requests().len(), 12, "nothing after the change went to the old URL");
}

#[test]
fn admin_stats_list_every_node_with_its_connections() {
    let Some(cluster) = TestCluster::start(3) else { return };
    let admin = Client::admin(cluster.node(1));
    let stats = expect(&admin.get("/admin/api/stats"), 200);
    let nodes = stats["nodes"].as_array().unwrap_or_else(|| panic!("no nodes in {stats}"));
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["node-1", "node-0", "node-2"], "the answering node first, then the others by id: {stats}");
    assert_eq!(nodes[0]["this_node"], true);
    assert!(nodes[1..].iter().all(|n| n["this_node"] == false && n["last_seen_ms"].as_u64().is_some()), "{stats}");
    assert_eq!(stats["connections"], nodes[0]["connections"], "{stats}");
    let metrics = cluster.node(2).get("/metrics").text();
    assert!(metrics.contains("converger_node_info{node=\"node-2\",node_id=\"node-2\"} 1"), "{metrics}");
    assert!(
        metrics.contains("converger_cluster_connected{node=\"node-2\"} 1")
            && metrics.contains("converger_cluster_nodes{node=\"node-2\"} 2"),
        "{metrics}"
    );
}
