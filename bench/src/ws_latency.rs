//! Scenario `ws-latency`: durable publish → receive. Publishers write
//! activities over REST at a paced total rate; Phoenix sockets subscribed to
//! each conversation receive them. Latency is measured from each write's
//! *scheduled* send time (so a stalled server cannot hide its stall: no
//! coordinated omission) to the broadcast's arrival, both on this process's
//! clock; the schedule time travels in the activity's text.
//!
//! With `--publish-via phoenix` each publisher is a Phoenix socket instead,
//! joined to one conversation and pushing `activity:create` without waiting
//! for the replies (a busy client: the server pipelines a socket's pushes);
//! the ack latency is then schedule → the push's `phx_reply`.
//!
//! Against several nodes (`--addr a,b,…`) the publishers write through the
//! nodes of `--publish-on` and every conversation has one subscriber socket on
//! each node of `--subscribe-on`; the publisher's node travels in the text too,
//! so one run measures the same-node path (publisher and subscriber on one
//! node) and the cross-node path (committed on one node, delivered by another
//! over the cluster bus) side by side, from the same writes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::floor::{self, Floor};
use crate::http::Client;
use crate::pacer::{self, Tick};
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;
use crate::ws::WsClient;

#[derive(Args, Debug, Serialize)]
pub struct WsLatencyArgs {
    #[command(flatten)]
    target: Target,
    /// Total writes per second, paced.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Publisher connections sharing the rate (round-robin over `--publish-on`).
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// How publishers write: REST requests (one at a time per connection) or
    /// Phoenix sockets pushing `activity:create` (publisher i writes to
    /// conversation i mod `--conversations`, replies awaited concurrently).
    #[arg(long, value_enum, default_value_t = Via::Rest)]
    publish_via: Via,
    /// Conversations written to.
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Subscriber sockets per conversation on each `--subscribe-on` node.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// The nodes the publishers write through: indexes into `--addr`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    publish_on: Vec<usize>,
    /// The nodes the subscribers join through: indexes into `--addr`,
    /// comma-separated (default: every node given).
    #[arg(long, value_delimiter = ',')]
    subscribe_on: Vec<usize>,
    /// Seconds measured per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs; the report merges their latencies.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Rest,
    Phoenix,
}

#[derive(Serialize)]
struct Report {
    /// Broadcasts received per second by the subscribers of the first
    /// `--subscribe-on` node.
    achieved_rate: Spread,
    /// Schedule → broadcast received, publisher and subscriber on one node
    /// (null when no such pair ran).
    latency_us: Option<Percentiles>,
    /// Schedule → broadcast received, publisher and subscriber on different
    /// nodes (null with one node).
    cross_node_latency_us: Option<Percentiles>,
    /// Schedule → the publisher's answer (REST 201, or the push's `phx_reply`).
    ack_latency_us: Percentiles,
    /// Every (publisher node, subscriber node) pair measured.
    placement: Vec<Pair>,
    /// Measured before the runs on the load generator's machine ([`crate::floor`]).
    floor: Floor,
    /// The same-node publish → receive p50 and p99 as multiples of the floor.
    p50_over_floor: Option<f64>,
    p99_over_floor: Option<f64>,
}

/// One placement: writes through one node, received through another (or the same).
#[derive(Serialize)]
struct Pair {
    publish_node: usize,
    publish_addr: SocketAddr,
    subscribe_node: usize,
    subscribe_addr: SocketAddr,
    cross_node: bool,
    received: u64,
    latency_us: Option<Percentiles>,
}

/// The nodes the run uses, checked against `--addr`.
struct Nodes {
    addrs: Vec<SocketAddr>,
    publish: Vec<usize>,
    subscribe: Vec<usize>,
}

impl Nodes {
    fn of(args: &WsLatencyArgs) -> Result<Nodes, String> {
        let addrs = args.target.nodes().to_vec();
        let subscribe =
            if args.subscribe_on.is_empty() { (0..addrs.len()).collect() } else { args.subscribe_on.clone() };
        for (flag, list) in [("--publish-on", &args.publish_on), ("--subscribe-on", &subscribe)] {
            if list.is_empty() {
                return Err(format!("{flag} names no node"));
            }
            if let Some(i) = list.iter().find(|&&i| i >= addrs.len()) {
                return Err(format!("{flag} {i}: only {} node(s) given with --addr (indexes start at 0)", addrs.len()));
            }
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != list.len() {
                return Err(format!("{flag} names a node twice"));
            }
        }
        Ok(Nodes { addrs, publish: args.publish_on.clone(), subscribe })
    }
}

/// Histograms indexed [subscribe node][publish node], with their counts.
type Matrix = Vec<Vec<(Histogram<u64>, u64)>>;

fn matrix(nodes: usize) -> Matrix {
    (0..nodes).map(|_| (0..nodes).map(|_| (new_histogram(), 0)).collect()).collect()
}

pub fn run(args: WsLatencyArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let nodes = Nodes::of(&args)?;
    let floor = floor::measure(&floor::default_dir())?;
    eprintln!("ws-latency: {}", floor.line());
    let mut all = matrix(nodes.addrs.len());
    let mut acked = new_histogram();
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let hook_before = crate::hook::stats();
        let r = rt.block_on(one_run(&args, &nodes))?;
        let mut line = Vec::new();
        for &s in &nodes.subscribe {
            for &p in &nodes.publish {
                let (h, n) = &r.delivered[s][p];
                line.push(format!(
                    "{p}→{s} {n} received, p50 {} µs, p99 {} µs, p99.9 {} µs",
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999)
                ));
                all[s][p].0.add(h).map_err(|e| e.to_string())?;
                all[s][p].1 += n;
            }
        }
        let first: u64 = r.delivered[nodes.subscribe[0]].iter().map(|(_, n)| n).sum();
        let rate = first as f64 / args.seconds;
        eprintln!(
            "ws-latency run {}/{}: {rate:.0} msg/s received; {} (publisher's answer p50 {} µs, p99 {} µs){}",
            run + 1,
            args.runs,
            line.join("; "),
            r.acked.value_at_quantile(0.5),
            r.acked.value_at_quantile(0.99),
            crate::hook::run_suffix(hook_before),
        );
        acked.add(&r.acked).map_err(|e| e.to_string())?;
        rates.push(rate);
    }
    let (mut same, mut cross) = (new_histogram(), new_histogram());
    let mut placement = Vec::new();
    let mut silent = Vec::new();
    for &s in &nodes.subscribe {
        for &p in &nodes.publish {
            let (h, n) = &all[s][p];
            if p == s { &mut same } else { &mut cross }.add(h).map_err(|e| e.to_string())?;
            if *n == 0 {
                silent.push(format!("{p}→{s}"));
            }
            placement.push(Pair {
                publish_node: p,
                publish_addr: nodes.addrs[p],
                subscribe_node: s,
                subscribe_addr: nodes.addrs[s],
                cross_node: p != s,
                received: *n,
                latency_us: (*n > 0).then(|| Percentiles::of(h)),
            });
        }
    }
    let of = |h: &Histogram<u64>| (!h.is_empty()).then(|| Percentiles::of(h));
    let ratios = of(&same).map(|p| floor.ratios(&p));
    if let Some((p50, p99)) = ratios {
        eprintln!("ws-latency: publish → receive p50 {p50:.2}× and p99 {p99:.2}× the floor");
    }
    let report = Report {
        floor,
        p50_over_floor: ratios.map(|r| r.0),
        p99_over_floor: ratios.map(|r| r.1),
        achieved_rate: Spread::of(&rates),
        latency_us: of(&same),
        cross_node_latency_us: of(&cross),
        ack_latency_us: Percentiles::of(&acked),
        placement,
    };
    let (label, h) =
        if same.is_empty() { ("publish → receive, across nodes", &cross) } else { ("publish → receive", &same) };
    crate::plot::latency(label, h);
    emit("ws-latency", &args, report)?;
    if !silent.is_empty() {
        return Err(format!(
            "no write reached the subscribers for {} (publish node → subscribe node): across nodes, is the cluster bus running?",
            silent.join(", ")
        ));
    }
    Ok(())
}

/// One run's latencies: schedule → broadcast received per placement, schedule → REST answer.
struct Run {
    delivered: Matrix,
    acked: Histogram<u64>,
}

async fn one_run(args: &WsLatencyArgs, nodes: &Nodes) -> Result<Run, String> {
    let mut tenant = args.target.tenant("ws-latency").await?;
    let key = tenant.api_key.clone();
    let epoch = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    // Readers stop on this even when nothing reaches them (a cluster without its bus).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut paths = Vec::new();
    let mut ids = Vec::new();
    let mut readers = Vec::new();
    let width = nodes.addrs.len();
    for _ in 0..args.conversations {
        let id = tenant.conversation().await?;
        let token = tenant.token(&id, "subscriber").await?;
        for node in nodes.subscribe.iter().flat_map(|&n| std::iter::repeat_n(n, args.subscribers.max(1))) {
            let path = format!("/socket/websocket?vsn=2.0.0&token={token}");
            let mut ws = WsClient::connect(nodes.addrs[node], &path).await?;
            ws.send_text(&json!(["1", "1", format!("conversation:{id}"), "phx_join", {}]).to_string()).await?;
            let (measuring, mut stopped) = (measuring.clone(), stopped.clone());
            readers.push(tokio::spawn(async move {
                // [publish node] → (latencies, count), for this subscriber's node.
                let mut by_publisher: Vec<(Histogram<u64>, u64)> = (0..width).map(|_| (new_histogram(), 0)).collect();
                loop {
                    let mut sent_at = Vec::new();
                    let read = ws.read_frames(|frame| {
                        if let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(frame) {
                            if m.get(3).and_then(Value::as_str) == Some("activity") {
                                if let Some(t) = m[4]["text"].as_str().and_then(parse_text) {
                                    sent_at.push(t);
                                }
                            }
                        }
                    });
                    let open = tokio::select! {
                        r = read => r?,
                        _ = stopped.changed() => break,
                    };
                    let now = epoch.elapsed().as_micros() as u64;
                    if measuring.load(Ordering::Relaxed) {
                        for (t, p) in sent_at {
                            if let Some((h, n)) = by_publisher.get_mut(p) {
                                let _ = h.record(now.saturating_sub(t).max(1));
                                *n += 1;
                            }
                        }
                    }
                    if !open {
                        return Err::<_, String>("a subscriber was closed by the server".into());
                    }
                }
                Ok((node, by_publisher))
            }));
        }
        paths.push(format!("/api/v1/conversations/{id}/activities"));
        ids.push(id);
    }
    // The pacer hands each scheduled write to the publishers in turn.
    let limit = Duration::from_secs_f64(args.seconds + 2.0);
    let (pacer, ticks) = pacer::start(args.rate, args.publishers, epoch, Instant::now(), limit);
    let mut pubs = Vec::new();
    for (i, ticks) in ticks.into_iter().enumerate() {
        let node = nodes.publish[i % nodes.publish.len()];
        let (addr, measuring) = (nodes.addrs[node], measuring.clone());
        let clock = Clock { epoch, measuring };
        pubs.push(match args.publish_via {
            Via::Rest => tokio::spawn(rest_publisher(addr, key.clone(), paths.clone(), node, ticks, clock)),
            Via::Phoenix => {
                let id = ids[i % ids.len()].clone();
                let token = tenant.token(&id, &format!("publisher-{i}")).await?;
                let ws = phoenix_publisher_socket(addr, &token, &id).await?;
                tokio::spawn(phoenix_publisher(ws, id, node, ticks, clock))
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    pacer.stop();
    let mut acks = new_histogram();
    for p in pubs {
        acks.add(&p.await.map_err(|e| e.to_string())??).map_err(|e| e.to_string())?;
    }
    let _ = stop.send(true);
    let mut delivered = matrix(width);
    for r in readers {
        let (node, by_publisher) = r.await.map_err(|e| e.to_string())??;
        for (p, (h, n)) in by_publisher.iter().enumerate() {
            delivered[node][p].0.add(h).map_err(|e| e.to_string())?;
            delivered[node][p].1 += n;
        }
    }
    Ok(Run { delivered, acked: acks })
}

/// The run's clock, and whether it is measuring yet.
struct Clock {
    epoch: Instant,
    measuring: Arc<AtomicBool>,
}

impl Clock {
    /// Records now − `scheduled_us` while measuring.
    fn record(&self, h: &mut Histogram<u64>, scheduled_us: u64) {
        if self.measuring.load(Ordering::Relaxed) {
            let now = self.epoch.elapsed().as_micros() as u64;
            let _ = h.record(now.saturating_sub(scheduled_us).max(1));
        }
    }
}

/// Writes each tick over REST on one keep-alive connection, one at a time.
async fn rest_publisher(
    addr: SocketAddr,
    key: String,
    paths: Vec<String>,
    node: usize,
    mut ticks: UnboundedReceiver<Tick>,
    clock: Clock,
) -> Result<Histogram<u64>, String> {
    let mut c = Client::connect(addr).await?;
    let mut acks = new_histogram();
    while let Some(tick) = ticks.recv().await {
        let body = json!({"sender": "publisher", "text": format!("{}@{node}", tick.scheduled_us)}).to_string();
        let path = &paths[tick.index as usize % paths.len()];
        let r = c.call("POST", path, &key, Some(body.as_bytes())).await?;
        if r.status != 201 {
            return Err(format!("publish through {addr} answered {}", r.status));
        }
        clock.record(&mut acks, tick.scheduled_us);
    }
    Ok(acks)
}

/// A Phoenix socket joined to conversation `id`, its join answered.
async fn phoenix_publisher_socket(addr: SocketAddr, token: &str, id: &str) -> Result<WsClient, String> {
    let mut ws = WsClient::connect(addr, &format!("/socket/websocket?vsn=2.0.0&token={token}")).await?;
    ws.send_text(&json!(["1", "1", format!("conversation:{id}"), "phx_join", {}]).to_string()).await?;
    let mut joined = None;
    while joined.is_none() {
        let open = ws
            .read_frames(|frame| {
                if let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(frame) {
                    if m.get(1).and_then(Value::as_str) == Some("1")
                        && m.get(3).and_then(Value::as_str) == Some("phx_reply")
                    {
                        joined = Some(m[4]["status"] == "ok");
                    }
                }
            })
            .await?;
        if !open {
            return Err("the publisher's socket was closed during its join".into());
        }
    }
    match joined {
        Some(true) => Ok(ws),
        _ => Err("the publisher's join was refused".into()),
    }
}

/// Pushes each tick as `activity:create` on a joined socket at once, and
/// reads the replies as they come: several pushes in flight.
async fn phoenix_publisher(
    mut ws: WsClient,
    id: String,
    node: usize,
    mut ticks: UnboundedReceiver<Tick>,
    clock: Clock,
) -> Result<Histogram<u64>, String> {
    let topic = format!("conversation:{id}");
    let mut acks = new_histogram();
    // The schedule of each push not yet answered, by its ref.
    let mut waiting: HashMap<u64, u64> = HashMap::new();
    let mut refused = None;
    let mut ticking = true;
    while ticking || !waiting.is_empty() {
        tokio::select! {
            tick = ticks.recv(), if ticking => match tick {
                Some(tick) => {
                    let text = format!("{}@{node}", tick.scheduled_us);
                    let push = json!(["1", tick.index.to_string(), topic, "activity:create", {"text": text}]);
                    ws.send_text(&push.to_string()).await?;
                    waiting.insert(tick.index, tick.scheduled_us);
                }
                None => ticking = false,
            },
            open = ws.read_frames(|frame| {
                let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(frame) else { return };
                if m.get(3).and_then(Value::as_str) != Some("phx_reply") {
                    return;
                }
                let Some(at) = m[1].as_str().and_then(|r| r.parse().ok()).and_then(|r: u64| waiting.remove(&r)) else {
                    return;
                };
                match m[4]["status"].as_str() {
                    Some("ok") => clock.record(&mut acks, at),
                    _ => refused = Some(m[4]["response"].to_string()),
                }
            }) => {
                if let Some(why) = refused.take() {
                    return Err(format!("a push was refused: {why}"));
                }
                if !open? {
                    return Err("the publisher's socket was closed by the server".into());
                }
            }
        }
    }
    Ok(acks)
}

/// The activity text `SCHEDULED_US@PUBLISH_NODE`.
fn parse_text(text: &str) -> Option<(u64, usize)> {
    let (t, node) = text.split_once('@')?;
    Some((t.parse().ok()?, node.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WsLatencyArgs,
    }

    fn nodes(argv: &[&str]) -> Result<Nodes, String> {
        let mut all = vec!["bench", "--admin-token", "t"];
        all.extend_from_slice(argv);
        Nodes::of(&Cli::try_parse_from(all).expect("parses").args)
    }

    #[test]
    fn one_node_is_the_same_node_figure_and_several_subscribe_on_each_by_default() {
        let one = nodes(&[]).unwrap();
        assert_eq!((one.publish, one.subscribe), (vec![0], vec![0]));
        let three = nodes(&["--addr", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"]).unwrap();
        assert_eq!((three.publish, three.subscribe), (vec![0], vec![0, 1, 2]));
        let cross = nodes(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--publish-on", "1", "--subscribe-on", "0"]).unwrap();
        assert_eq!((cross.publish, cross.subscribe), (vec![1], vec![0]));
    }

    #[test]
    fn a_node_index_past_the_list_or_named_twice_is_refused() {
        let e = nodes(&["--addr", "127.0.0.1:1,127.0.0.1:2", "--subscribe-on", "2"]).err().unwrap();
        assert!(e.contains("--subscribe-on 2: only 2 node(s)"), "{e}");
        assert!(nodes(&["--publish-on", "0,0"]).err().unwrap().contains("twice"));
    }

    #[test]
    fn the_text_carries_the_schedule_and_the_publishers_node() {
        assert_eq!(parse_text("1234@2"), Some((1234, 2)));
        assert_eq!(parse_text("1234"), None);
        assert_eq!(parse_text("x@1"), None);
    }
}
