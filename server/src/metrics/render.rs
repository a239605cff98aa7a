//! The Prometheus text exposition of every shard's metrics, merged.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{BatchFailure, Histogram, HookVerdict, Registry, ShardMetrics, Transport};

/// The `/metrics` page.
pub fn render(registry: &Registry) -> String {
    let shards = registry.shards();
    let mut out = String::with_capacity(4096);
    let sum = |f: fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();

    let mut requests: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
    for s in shards {
        if let Ok(map) = s.requests.lock() {
            for (k, v) in map.iter() {
                *requests.entry(*k).or_insert(0) += v;
            }
        }
    }
    header(&mut out, "converger_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for ((route, status), n) in &requests {
        let _ = writeln!(out, "converger_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
    }
    let mut refusals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in shards {
        if let Ok(map) = s.refusals.lock() {
            for (k, v) in map.iter() {
                *refusals.entry(*k).or_insert(0) += v;
            }
        }
    }
    header(
        &mut out,
        "converger_limit_refusals_total",
        "counter",
        "Requests, writes, connections and subscriptions refused, by the rate limit or cap that refused them.",
    );
    for (limit, n) in &refusals {
        let _ = writeln!(out, "converger_limit_refusals_total{{limit=\"{limit}\"}} {n}");
    }
    histogram(&mut out, "converger_http_request_seconds", "Time to answer an HTTP request.", shards, |s| {
        &s.request_seconds
    });

    header(&mut out, "converger_activities_committed_total", "counter", "Activities committed (replays excluded).");
    let _ = writeln!(
        out,
        "converger_activities_committed_total {}",
        sum(|s| s.activities_committed.load(Ordering::Relaxed))
    );
    header(
        &mut out,
        "converger_batches_failed_total",
        "counter",
        "Group-commit batches the store refused whole, by reason (storage_full, storage_unavailable, other).",
    );
    for r in BatchFailure::ALL {
        let n: u64 = shards.iter().map(|s| s.batches_failed[r as usize].load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "converger_batches_failed_total{{reason=\"{}\"}} {n}", r.label());
    }
    header(&mut out, "converger_publishes_refused_total", "counter", "Publishes refused because a queue was full.");
    let _ = writeln!(out, "converger_publishes_refused_total {}", sum(|s| s.publishes_refused.load(Ordering::Relaxed)));
    header(&mut out, "converger_publish_queue_depth", "gauge", "Publishes waiting for a batch, all shards.");
    let _ = writeln!(out, "converger_publish_queue_depth {}", sum(|s| s.queue_depth.load(Ordering::Relaxed)));
    header(
        &mut out,
        "converger_subscriptions",
        "gauge",
        "Live subscriptions on the node (joined Phoenix topics, binary subscriptions), all shards.",
    );
    let _ = writeln!(out, "converger_subscriptions {}", sum(|s| s.subscriptions.load(Ordering::Relaxed)));
    histogram(&mut out, "converger_batch_size", "Activities per group-commit batch.", shards, |s| &s.batch_size);
    histogram(&mut out, "converger_commit_seconds", "Time to commit one batch.", shards, |s| &s.commit_seconds);
    histogram(
        &mut out,
        "converger_pre_publish_seconds",
        "Time a pre-publish hook call takes (answered, failed or timed out).",
        shards,
        |s| &s.hook_seconds,
    );
    header(
        &mut out,
        "converger_pre_publish_items_total",
        "counter",
        "Publishes put to a pre-publish hook, by outcome.",
    );
    for v in HookVerdict::ALL {
        let n: u64 = shards.iter().map(|s| s.hook_items[v as usize].load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "converger_pre_publish_items_total{{outcome=\"{}\"}} {n}", v.label());
    }

    let d = &registry.delivery;
    header(&mut out, "converger_delivery_attempts_total", "counter", "Delivery attempts, by what they came to.");
    for (outcome, n) in [("delivered", &d.delivered), ("retry", &d.retried), ("failed", &d.failed)] {
        let _ =
            writeln!(out, "converger_delivery_attempts_total{{outcome=\"{outcome}\"}} {}", n.load(Ordering::Relaxed));
    }
    header(
        &mut out,
        "converger_delivery_throttled_total",
        "counter",
        "Deliveries held back by their channel's pace (deliveries per second): waited for, never failed.",
    );
    let _ = writeln!(out, "converger_delivery_throttled_total {}", d.throttled.load(Ordering::Relaxed));
    single_histogram(
        &mut out,
        "converger_delivery_attempt_seconds",
        "Time one delivery attempt takes.",
        &d.attempt_seconds,
    );
    single_histogram(
        &mut out,
        "converger_delivery_delivered_after_seconds",
        "Time from an activity's creation to its delivery.",
        &d.delivered_after_seconds,
    );
    header(
        &mut out,
        "converger_delivery_lag_seconds",
        "gauge",
        "Age of the oldest pending delivery (read from the store every few seconds); 0 when none is pending.",
    );
    let oldest = d.oldest_pending_micros.load(Ordering::Relaxed);
    let lag = if oldest > 0 { (now_micros() - oldest).max(0) as f64 / 1e6 } else { 0.0 };
    let _ = writeln!(out, "converger_delivery_lag_seconds {lag}");

    let sockets: Vec<(Transport, u64)> = Transport::ALL
        .iter()
        .map(|t| (*t, shards.iter().map(|s| s.sockets_open[*t as usize].load(Ordering::Relaxed)).sum()))
        .collect();
    if let Some(open) = registry.connections() {
        header(
            &mut out,
            "converger_connections_open",
            "gauge",
            "Open connections on the node: HTTP, WebSocket and binary.",
        );
        let _ = writeln!(out, "converger_connections_open {open}");
        header(
            &mut out,
            "converger_connections",
            "gauge",
            "Open connections on the node by transport (http: not upgraded to a socket); they add up to converger_connections_open.",
        );
        // Read apart from the sockets' counts: an upgrade between the reads may show for a scrape.
        let http = open.saturating_sub(sockets.iter().map(|(_, n)| n).sum());
        let _ = writeln!(out, "converger_connections{{transport=\"http\"}} {http}");
        for (t, n) in &sockets {
            let _ = writeln!(out, "converger_connections{{transport=\"{}\"}} {n}", t.label());
        }
    }
    header(
        &mut out,
        "converger_send_queue_overflows_total",
        "counter",
        "Sockets closed as slow consumers (their send queue passed --ws-send-queue-bytes), by transport.",
    );
    for t in Transport::ALL {
        let n: u64 = shards.iter().map(|s| s.send_queue_overflows[t as usize].load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "converger_send_queue_overflows_total{{transport=\"{}\"}} {n}", t.label());
    }
    super::spans::render(&mut out);
    out
}

/// Whether storage answered a ping at this scrape (what `/health/ready` asks).
pub fn render_storage(out: &mut String, ready: bool) {
    header(
        out,
        "converger_storage_ready",
        "gauge",
        "1 when storage answered a ping at this scrape, else 0 (not ready).",
    );
    let _ = writeln!(out, "converger_storage_ready {}", u8::from(ready));
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// What a cluster node adds to its page.
pub struct ClusterFigures<'a> {
    pub node_id: &'a str,
    pub connected: bool,
    /// Other nodes heard from within the expiry.
    pub other_nodes: usize,
    pub dropped: u64,
}

/// The cluster's lines, appended to [`render`]'s page on a cluster node;
/// then every sample of the page gets a `node` label with the node's id, so
/// the nodes' series stay apart wherever they are collected.
pub fn render_cluster(out: &mut String, c: &ClusterFigures<'_>) {
    header(out, "converger_node_info", "gauge", "This node's id in the cluster (always 1).");
    let _ = writeln!(out, "converger_node_info{{node_id=\"{}\"}} 1", c.node_id);
    header(out, "converger_cluster_connected", "gauge", "1 while the NATS connection is up, else 0 (not ready).");
    let _ = writeln!(out, "converger_cluster_connected {}", u8::from(c.connected));
    header(out, "converger_cluster_nodes", "gauge", "Other nodes heard from within the heartbeat expiry.");
    let _ = writeln!(out, "converger_cluster_nodes {}", c.other_nodes);
    header(
        out,
        "converger_cluster_dropped_total",
        "counter",
        "Messages for other nodes not sent (bus queue full or NATS down); their subscribers read the activities from storage.",
    );
    let _ = writeln!(out, "converger_cluster_dropped_total {}", c.dropped);
    *out = with_label(out, "node", c.node_id);
}

/// `page` with `name="value"` as the first label of every sample. The value
/// is a node id (letters, digits, `-`, `_`), which needs no escaping.
fn with_label(page: &str, name: &str, value: &str) -> String {
    let mut labelled = String::with_capacity(page.len() + page.len() / 4);
    for line in page.lines() {
        if line.starts_with('#') || line.is_empty() {
            labelled.push_str(line);
        } else if let Some(brace) = line.find('{').filter(|b| !line[..*b].contains(' ')) {
            let _ = write!(labelled, "{}{{{name}=\"{value}\",{}", &line[..brace], &line[brace + 1..]);
        } else if let Some(space) = line.find(' ') {
            let _ = write!(labelled, "{}{{{name}=\"{value}\"}}{}", &line[..space], &line[space..]);
        } else {
            labelled.push_str(line);
        }
        labelled.push('\n');
    }
    labelled
}

fn single_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    header(out, name, "histogram", help);
    let (buckets, sum, count) = h.snapshot();
    write_buckets(out, name, h.bounds(), &buckets, sum, count);
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    shards: &[std::sync::Arc<ShardMetrics>],
    pick: fn(&ShardMetrics) -> &Histogram,
) {
    header(out, name, "histogram", help);
    let Some(first) = shards.first() else { return };
    let bounds = pick(first).bounds();
    let mut buckets = vec![0u64; bounds.len() + 1];
    let (mut sum, mut count) = (0.0, 0u64);
    for s in shards {
        let (b, s_sum, s_count) = pick(s).snapshot();
        buckets.iter_mut().zip(b).for_each(|(acc, v)| *acc += v);
        sum += s_sum;
        count += s_count;
    }
    write_buckets(out, name, bounds, &buckets, sum, count);
}

fn write_buckets(out: &mut String, name: &str, bounds: &[f64], buckets: &[u64], sum: f64, count: u64) {
    let mut cumulative = 0;
    for (bound, n) in bounds.iter().zip(buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn merges_shards_into_one_page() {
        let registry = Registry::new(2);
        registry.shard(0).request("/health", 200, Duration::from_micros(50));
        registry.shard(1).request("/health", 200, Duration::from_micros(70));
        registry.shard(1).batch_committed(10, Duration::from_millis(2), None);
        registry.shard(0).batch_committed(100, Duration::from_millis(1), Some(BatchFailure::StorageFull));
        registry.shard(1).activities_committed(10);
        registry.shard(0).rate_limited("tenant_requests");
        registry.shard(1).rate_limited("tenant_requests");
        registry.delivery().throttled.fetch_add(3, Ordering::Relaxed);
        let page = render(&registry);
        assert!(page.contains("# TYPE converger_delivery_throttled_total counter"), "{page}");
        assert!(page.contains("converger_delivery_throttled_total 3"), "{page}");
        assert!(page.contains("converger_limit_refusals_total{limit=\"tenant_requests\"} 2"), "{page}");
        assert!(page.contains("converger_http_requests_total{route=\"/health\",status=\"200\"} 2"), "{page}");
        assert!(page.contains("converger_activities_committed_total 10"));
        assert!(page.contains("converger_batch_size_bucket{le=\"16\"} 1"));
        assert!(page.contains("converger_commit_seconds_count 2"));
        assert!(page.contains("converger_batches_failed_total{reason=\"storage_full\"} 1"), "{page}");
        assert!(page.contains("converger_batches_failed_total{reason=\"other\"} 0"), "{page}");
    }

    #[test]
    fn sockets_by_transport_and_their_overflows() {
        let caps = crate::rt::admission::ConnCaps::new(10, 10);
        let held: Vec<_> = (0..4).map(|_| caps.admit([127, 0, 0, 1].into()).expect("admitted")).collect();
        let registry = Registry::new(2).counting_connections(caps);
        let phoenix = registry.shard(0).socket_opened(Transport::Phoenix);
        let tcp = registry.shard(1).socket_opened(Transport::BinaryTcp);
        (phoenix.overflow_counter())();
        let page = render(&registry);
        assert!(page.contains("converger_connections_open 4"), "{page}");
        assert!(page.contains("converger_connections{transport=\"http\"} 2"), "{page}");
        assert!(page.contains("converger_connections{transport=\"phoenix\"} 1"), "{page}");
        assert!(page.contains("converger_connections{transport=\"binary_ws\"} 0"), "{page}");
        assert!(page.contains("converger_connections{transport=\"binary_tcp\"} 1"), "{page}");
        assert!(page.contains("converger_send_queue_overflows_total{transport=\"phoenix\"} 1"), "{page}");
        drop((phoenix, tcp));
        let page = render(&registry);
        assert!(page.contains("converger_connections{transport=\"phoenix\"} 0"), "{page}");
        assert!(page.contains("converger_connections{transport=\"http\"} 4"), "{page}");
        drop(held);
    }

    #[test]
    fn delivery_lag_is_the_oldest_pending_age_at_the_scrape() {
        let registry = Registry::new(1);
        assert!(render(&registry).contains("converger_delivery_lag_seconds 0\n"));
        let a_minute_ago = now_micros() - 60_000_000;
        registry.delivery().oldest_pending_micros.store(a_minute_ago, Ordering::Relaxed);
        let page = render(&registry);
        let lag: f64 = page
            .lines()
            .find_map(|l| l.strip_prefix("converger_delivery_lag_seconds "))
            .and_then(|v| v.parse().ok())
            .expect("the lag");
        assert!((60.0..120.0).contains(&lag), "{lag}");
    }

    #[test]
    fn a_cluster_node_labels_every_sample_with_its_id() {
        let registry = Registry::new(1);
        let mut page = render(&registry);
        render_storage(&mut page, true);
        let figures = ClusterFigures { node_id: "n-1", connected: true, other_nodes: 2, dropped: 0 };
        render_cluster(&mut page, &figures);
        assert!(page.contains("converger_storage_ready{node=\"n-1\"} 1\n"), "{page}");
        assert!(page.contains("converger_node_info{node=\"n-1\",node_id=\"n-1\"} 1\n"), "{page}");
        assert!(page.contains("converger_commit_seconds_bucket{node=\"n-1\",le=\"+Inf\"} 0\n"), "{page}");
        assert!(page.contains("converger_pre_publish_items_total{node=\"n-1\",outcome=\"failed\"} 0\n"), "{page}");
        assert!(page.contains("# TYPE converger_cluster_nodes gauge\n"), "{page}");
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("{node=\"n-1\""), "{line}");
        }
    }
}
