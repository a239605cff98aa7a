//! One soak sample: the server's memory and descriptors from `/proc`, its
//! queues and connections from `/metrics`, and what the load did and saw in
//! the window since the previous sample.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::load::Tally;
use crate::http::Client;
use crate::process;
use crate::report::new_histogram;

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// Taken during the warm-up (not judged).
    pub warm_up: bool,
    pub rss_kib: u64,
    pub fds: u64,
    /// From `/metrics` (null when the scrape failed).
    pub publish_queue_depth: Option<f64>,
    pub delivery_lag_seconds: Option<f64>,
    /// `converger_connections` by transport.
    pub connections: BTreeMap<String, f64>,
    pub send_queue_overflows_total: Option<f64>,
    /// `converger_subscriptions`: the live subscriptions.
    pub subscriptions: Option<f64>,
    /// In the window since the previous sample.
    pub ops: u64,
    pub errors: u64,
    pub received: u64,
    /// Scheduled publish → received in the window (null when nothing arrived).
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    pub latency_max_us: Option<u64>,
}

/// What the server's `/metrics` page says that the soak follows.
#[derive(Debug, Default, PartialEq)]
pub struct Scraped {
    pub publish_queue_depth: Option<f64>,
    pub delivery_lag_seconds: Option<f64>,
    pub connections: BTreeMap<String, f64>,
    pub send_queue_overflows_total: Option<f64>,
    pub subscriptions: Option<f64>,
}

/// Picks the soak's lines out of a Prometheus text page (a cluster node's
/// labels are tolerated; the overflow counter is summed over transports).
pub fn parse_metrics(page: &str) -> Scraped {
    let mut s = Scraped::default();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = name_labels.split_once('{').unwrap_or((name_labels, ""));
        match name {
            "converger_publish_queue_depth" => s.publish_queue_depth = Some(value),
            "converger_delivery_lag_seconds" => s.delivery_lag_seconds = Some(value),
            "converger_subscriptions" => s.subscriptions = Some(value),
            "converger_send_queue_overflows_total" => {
                *s.send_queue_overflows_total.get_or_insert(0.0) += value;
            }
            "converger_connections" => {
                if let Some(t) = label(labels, "transport") {
                    *s.connections.entry(t.to_string()).or_insert(0.0) += value;
                }
            }
            _ => {}
        }
    }
    s
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let at = labels.find(&format!("{name}=\""))? + name.len() + 2;
    labels[at..].split('"').next()
}

/// Reads the server and the load's window; keeps its scrape connection.
pub struct Probe {
    pid: u32,
    http: SocketAddr,
    client: Option<Client>,
    /// The load's totals at the previous sample: ops, errors, received.
    last: (u64, u64, u64),
}

impl Probe {
    pub fn new(pid: u32, http: SocketAddr) -> Probe {
        Probe { pid, http, client: None, last: (0, 0, 0) }
    }

    pub fn fds(&self) -> Result<u64, String> {
        process::open_fds(self.pid)
    }

    pub async fn scrape(&mut self) -> Result<Scraped, String> {
        let client = match self.client.as_mut() {
            Some(c) => c,
            None => self.client.insert(Client::connect(self.http).await?),
        };
        let r = client.call("GET", "/metrics", "", None).await?;
        if r.status != 200 {
            return Err(format!("/metrics answered {}", r.status));
        }
        Ok(parse_metrics(&String::from_utf8_lossy(&r.body)))
    }

    /// One sample at `t_s`; a failed scrape leaves the metrics null (and is said on stderr).
    pub async fn sample(&mut self, t_s: f64, warm_up: bool, tally: &Tally) -> Result<Sample, String> {
        let (rss_kib, fds) = (process::rss_kib(self.pid)?, self.fds()?);
        let scraped = match tokio::time::timeout(super::load::OP_TIMEOUT, self.scrape())
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("soak: /metrics scrape failed: {e}");
                self.client = None;
                Scraped::default()
            }
        };
        let window = std::mem::replace(&mut *tally.window.lock().unwrap_or_else(|p| p.into_inner()), new_histogram());
        let now = (tally.ops_total(), tally.errors.load(Ordering::Relaxed), tally.received.load(Ordering::Relaxed));
        let last = std::mem::replace(&mut self.last, now);
        let q = |q: f64| (!window.is_empty()).then(|| window.value_at_quantile(q));
        Ok(Sample {
            t_s,
            warm_up,
            rss_kib,
            fds,
            publish_queue_depth: scraped.publish_queue_depth,
            delivery_lag_seconds: scraped.delivery_lag_seconds,
            connections: scraped.connections,
            send_queue_overflows_total: scraped.send_queue_overflows_total,
            subscriptions: scraped.subscriptions,
            ops: now.0 - last.0,
            errors: now.1 - last.1,
            received: now.2 - last.2,
            latency_p50_us: q(0.5),
            latency_p99_us: q(0.99),
            latency_max_us: (!window.is_empty()).then(|| window.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soaks_lines_are_picked_from_a_metrics_page() {
        let page = "# HELP converger_publish_queue_depth x\n# TYPE converger_publish_queue_depth gauge\n\
                    converger_publish_queue_depth 7\nconverger_delivery_lag_seconds 0.5\n\
                    converger_connections{transport=\"http\"} 3\nconverger_connections{transport=\"phoenix\"} 9\n\
                    converger_connections_open 12\n\
                    converger_send_queue_overflows_total{transport=\"phoenix\"} 1\n\
                    converger_send_queue_overflows_total{transport=\"binary_tcp\"} 2\n\
                    converger_subscriptions 5\n\
                    converger_publish_queue_depth_x 99\n";
        let s = parse_metrics(page);
        assert_eq!(s.publish_queue_depth, Some(7.0));
        assert_eq!(s.delivery_lag_seconds, Some(0.5));
        assert_eq!(s.subscriptions, Some(5.0));
        assert_eq!(s.send_queue_overflows_total, Some(3.0));
        assert_eq!(s.connections.get("phoenix"), Some(&9.0));
        assert_eq!(s.connections.len(), 2);
        let cluster = parse_metrics("converger_connections{node=\"n1\",transport=\"binary_tcp\"} 4\n");
        assert_eq!(cluster.connections.get("binary_tcp"), Some(&4.0));
        assert_eq!(parse_metrics("garbage\n{}\n"), Scraped::default());
    }
}
