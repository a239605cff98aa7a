//! The operations pack (deploy/) against a running server: every metric the
//! Grafana dashboard's queries and the Prometheus alert rules name is on
//! `/metrics` after some traffic (REST publishes, a delivery to a local
//! receiver, a socket of each transport), and the gauges the dashboard adds
//! say what they mean (connections by transport, storage readiness, delivery
//! lag, a cluster node's `node` label).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use converger_e2e::api::{create_tenant, delivery_of, expect, Client, Fixture};
use converger_e2e::binary::BinClient;
use converger_e2e::cluster::TestCluster;
use converger_e2e::phoenix::{join, socket, topic};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use converger_protocol::Auth;
use serde_json::{json, Value};

/// Exported by cluster nodes only (`--nats-url`).
const CLUSTER_ONLY: &[&str] = &[
    "converger_cluster_connected",
    "converger_cluster_nodes",
    "converger_cluster_dropped_total",
    "converger_node_info",
];

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `converger_…` name in `text`.
fn names_in(text: &str, into: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("converger_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        into.insert(name);
    }
}

/// The names in the dashboard's queries: panels' `expr` and the variables' queries.
fn dashboard_metrics() -> BTreeSet<String> {
    fn walk(v: &Value, into: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition" | "query", Value::String(q)) => names_in(q, into),
                        _ => walk(v, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, into)),
            _ => {}
        }
    }
    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana/dashboards/converger.json")).expect("dashboard JSON");
    let mut names = BTreeSet::new();
    walk(&dashboard, &mut names);
    names
}

/// The names in the alert rules (expressions and the annotations that cite them).
fn rules_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in repo_file("deploy/prometheus/rules.yml").lines().filter(|l| !l.trim_start().starts_with('#')) {
        names_in(line, &mut names);
    }
    names
}

/// The series names a page exports: each family's samples, a histogram's
/// `_bucket`, `_sum` and `_count` (a labelled family with no sample yet,
/// such as refusals before any, counts by its `# TYPE` line).
fn exported(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let (name, kind) = family.split_once(' ').expect("# TYPE name kind");
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            } else {
                names.insert(name.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).expect("a sample");
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The value of the sample `series` (name and labels as printed).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn missing(wanted: &BTreeSet<String>, page: &str, allowed: &[&str]) -> Vec<String> {
    let have = exported(page);
    wanted.iter().filter(|n| !have.contains(*n) && !allowed.contains(&n.as_str())).cloned().collect()
}

#[test]
fn the_dashboard_and_the_rules_name_metrics() {
    let (dashboard, rules) = (dashboard_metrics(), rules_metrics());
    // Guards the scan itself: an empty set would pass everything below.
    assert!(dashboard.len() >= 20 && dashboard.contains("converger_commit_seconds_bucket"), "{dashboard:?}");
    assert!(rules.contains("converger_delivery_lag_seconds") && rules.contains("converger_storage_ready"), "{rules:?}");
}

on_both_backends!(every_metric_the_dashboard_and_the_alerts_read_is_on_metrics_after_traffic);

fn every_metric_the_dashboard_and_the_alerts_read_is_on_metrics_after_traffic(server: &TestServer) {
    let f = Fixture::new(server, "ops");
    let client = f.client(server);
    for i in 0..5 {
        expect(&client.post(&f.activities_path(), &json!({"sender": "ops", "text": format!("{i}")})), 201);
    }
    // A delivery to a local receiver.
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(server, "ops-hook");
    let api = Client::bearer(server, &tenant.api_key);
    let hook = json!({"name": "hook", "type": "webhook", "config": {"url": receiver.url("/hook")}});
    let hook = expect(&api.post("/api/v1/channels", &hook), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": hook["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    let a = expect(&api.post(&path, &json!({"sender": "ops", "text": "out"})), 201);
    delivery_of(&api, a["id"].as_str().expect("id"), |d| d["status"] == "delivered");

    // One socket of each transport, held open over the scrape.
    let mut phoenix = socket(server, &f, "watcher");
    join(&mut phoenix, &topic(&f), json!({}));
    let (_tcp, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    let mut ws = BinClient::websocket(server.http_addr(), None).expect("binary over WebSocket");
    ws.hello(Auth::ApiKey(f.tenant.api_key.clone())).expect("welcome");

    let page = server.get("/metrics").text();
    for transport in ["phoenix", "binary_ws", "binary_tcp"] {
        let open = sample(&page, &format!("converger_connections{{transport=\"{transport}\"}}"));
        assert_eq!(open, Some(1.0), "{transport}: {page}");
    }
    // The scrape's own connection at least.
    assert!(sample(&page, "converger_connections{transport=\"http\"}").is_some_and(|n| n >= 1.0), "{page}");
    assert_eq!(sample(&page, "converger_storage_ready"), Some(1.0), "{page}");
    // The watcher's one joined topic.
    assert_eq!(sample(&page, "converger_subscriptions"), Some(1.0), "{page}");
    assert_eq!(sample(&page, "converger_activities_committed_total"), Some(6.0), "{page}");
    assert_eq!(sample(&page, "converger_delivery_attempts_total{outcome=\"delivered\"}"), Some(1.0), "{page}");

    let missing_dashboard = missing(&dashboard_metrics(), &page, CLUSTER_ONLY);
    assert!(missing_dashboard.is_empty(), "the dashboard reads {missing_dashboard:?}, not on\n{page}");
    let missing_rules = missing(&rules_metrics(), &page, CLUSTER_ONLY);
    assert!(missing_rules.is_empty(), "the alert rules read {missing_rules:?}, not on\n{page}");
}

#[test]
fn the_delivery_lag_is_the_age_of_the_oldest_pending_delivery() {
    // A receiver that keeps failing, and retries an hour apart: the delivery stays pending.
    let server = TestServer::embedded_with(&["--delivery-retry-base-ms", "3600000"]);
    let receiver = Receiver::start(vec![503; 4], "{}");
    let tenant = create_tenant(&server, "lagging");
    let api = Client::bearer(&server, &tenant.api_key);
    let hook = json!({"name": "hook", "type": "webhook", "config": {"url": receiver.url("/hook")}});
    let hook = expect(&api.post("/api/v1/channels", &hook), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": hook["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    let lag = || sample(&server.get("/metrics").text(), "converger_delivery_lag_seconds").expect("the lag");
    assert_eq!(lag(), 0.0, "nothing pending yet");
    let written = Instant::now();
    expect(&api.post(&path, &json!({"sender": "ops", "text": "stuck"})), 201);
    receiver.wait_for(1, Duration::from_secs(10));
    // The worker reads the oldest pending delivery every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let seen = lag();
        if seen > 0.0 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(seen > 0.0, "the pending delivery never showed as lag");
    assert!(seen <= written.elapsed().as_secs_f64() + 1.0, "{seen} s is older than the delivery");
}

#[test]
fn a_cluster_node_exports_what_the_dashboard_reads_labelled_with_its_id() {
    let Some(cluster) = TestCluster::start(2) else { return };
    let f = cluster.fixture("ops");
    expect(&f.client(cluster.node(0)).post(&f.activities_path(), &json!({"sender": "ops", "text": "x"})), 201);
    let page = cluster.node(1).get("/metrics").text();
    let wanted: BTreeSet<String> = dashboard_metrics().union(&rules_metrics()).cloned().collect();
    let missing = missing(&wanted, &page, &[]);
    assert!(missing.is_empty(), "a cluster node lacks {missing:?}:\n{page}");
    assert_eq!(sample(&page, "converger_cluster_connected{node=\"node-1\"}"), Some(1.0), "{page}");
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("{node=\"node-1\""), "a sample without the node label: {line}");
    }
}
