//! Scenario `bin-ingest`: durable, acknowledged activities per second through
//! the binary protocol's batched publish. A few connections each keep
//! `--window` PublishBatch frames in flight; an activity counts when its item
//! in the PublishBatchAck says it was written (committed and fsynced).
//! Against several nodes (`--binary-addr a,b,c`) the connections go
//! round-robin over them, each node writing its own conversations, or with
//! `--contended` every node writing all of them (see `placement`); the report
//! gives each node's share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use converger_protocol::{Frame, PublishBatch};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::bin_client;
use crate::placement::{self, NodeLoad, NodeTally};
use crate::plot::Timeline;
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct BinIngestArgs {
    #[command(flatten)]
    target: Target,
    /// Connections publishing (round-robin over the nodes).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// PublishBatch frames in flight per connection.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Activities per PublishBatch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Conversations the activities are spread over (10, as the storage scenario's headline figure).
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Every node writes every conversation (instead of each node its own share).
    #[arg(long)]
    contended: bool,
    /// Seconds measured per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs; the report gives the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes of text per activity.
    #[arg(long, default_value_t = 128)]
    text_bytes: usize,
}

#[derive(Serialize)]
struct Report {
    activities_per_s: Spread,
    /// Send → PublishBatchAck of each frame.
    batch_ack_latency_us: Percentiles,
    /// Each node's share: connections, conversations, activities/s, batch ack
    /// latency, items refused.
    nodes: Vec<NodeLoad>,
}

pub fn run(args: BinIngestArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let binary = args.target.binary_nodes()?.to_vec();
    let nodes = binary.len();
    placement::check(nodes, args.conversations, args.contended)?;
    let mut tallies: Vec<NodeTally> = (0..nodes).map(|_| NodeTally::new()).collect();
    let mut rates = Vec::new();
    let mut all = new_histogram();
    for run in 0..args.runs {
        let (elapsed, done, timeline) = rt.block_on(one_run(&args, &binary))?;
        if let Some(t) = &timeline {
            crate::plot::throughput_run("acknowledged activities per second", t);
        }
        let mut per_node = vec![(0u64, new_histogram()); nodes];
        for d in done {
            per_node[d.node].0 += d.written;
            per_node[d.node].1.add(&d.hist).map_err(|e| e.to_string())?;
            tallies[d.node].add_failures(d.failed, d.first_failure);
        }
        let mut hist = new_histogram();
        let mut written = 0;
        for (node, (n, h)) in per_node.iter().enumerate() {
            tallies[node].add_run(*n, elapsed, h)?;
            hist.add(h).map_err(|e| e.to_string())?;
            written += n;
        }
        let rate = written as f64 / elapsed;
        let split = if nodes > 1 {
            let each: Vec<String> = per_node.iter().map(|(n, _)| format!("{:.0}", *n as f64 / elapsed)).collect();
            format!(" [per node {}]", each.join(" / "))
        } else {
            String::new()
        };
        eprintln!(
            "bin-ingest run {}/{}: {rate:.0} activities/s{split}, batch ack p50 {} µs, p99 {} µs",
            run + 1,
            args.runs,
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99)
        );
        all.add(&hist).map_err(|e| e.to_string())?;
        rates.push(rate);
    }
    let loads = tallies
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let convs = placement::conversations_of(n, nodes, args.conversations, args.contended).len();
            t.finish(n, binary[n], placement::connections_on(n, nodes, args.connections), convs)
        })
        .collect();
    let report =
        Report { activities_per_s: Spread::of(&rates), batch_ack_latency_us: Percentiles::of(&all), nodes: loads };
    crate::plot::latency(&format!("PublishBatch of {} → ack (committed)", args.batch), &all);
    emit("bin-ingest", &args, report)?;
    placement::failures(&tallies)
}

/// What a connection's task hands back.
enum Ended {
    Writer(bin_client::BinWriter),
    Reader(Done),
}

/// What one connection's reader counted in one run.
struct Done {
    node: usize,
    written: u64,
    hist: hdrhistogram::Histogram<u64>,
    failed: u64,
    first_failure: Option<String>,
}

/// One run: the seconds measured and each connection's counts.
async fn one_run(
    args: &BinIngestArgs,
    binary: &[std::net::SocketAddr],
) -> Result<(f64, Vec<Done>, Option<Timeline>), String> {
    let mut tenant = args.target.tenant("bin-ingest").await?;
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        let id = tenant.conversation().await?;
        conversations.push(*uuid::Uuid::parse_str(&id).map_err(|e| e.to_string())?.as_bytes());
    }
    let text = "x".repeat(args.text_bytes);
    // Set when the measured seconds start (before `counting`).
    let timeline: Arc<OnceLock<Timeline>> = Arc::default();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tls = args.target.tls()?;
    let mut tasks = Vec::new();
    let mut windows = Vec::new();
    for c in 0..args.connections {
        let node = placement::node_of(c, binary.len());
        let (mut reader, mut writer, _) = bin_client::connect_with(binary[node], &tenant.api_key, tls.as_ref()).await?;
        // Each connection cycles through its node's conversations from its own offset.
        let own = placement::conversations_of(node, binary.len(), conversations.len(), args.contended);
        let offset = placement::start_of(c, binary.len(), args.contended);
        let frames: Vec<PublishBatch> = (0..args.window.max(1) * 2)
            .map(|f| PublishBatch {
                request_id: 0,
                activities: (0..args.batch)
                    .map(|i| {
                        bin_client::draft(conversations[own[(offset + f * args.batch + i) % own.len()]], "bench", &text)
                    })
                    .collect(),
            })
            .collect();
        let window = Arc::new(Semaphore::new(args.window.max(1)));
        windows.push(window.clone());
        let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<u32, Instant>::new()));
        let (stop_w, window_w, sent_w) = (stop.clone(), window.clone(), sent_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut request_id = 0u32;
            while !stop_w.load(Ordering::Relaxed) {
                // Closed when the run ends.
                let Ok(permit) = window_w.acquire().await else { break };
                permit.forget();
                request_id = request_id.wrapping_add(1).max(1);
                let mut frame = frames[request_id as usize % frames.len()].clone();
                frame.request_id = request_id;
                sent_w.lock().map_err(|e| e.to_string())?.insert(request_id, Instant::now());
                writer.send(&frame.into()).await?;
            }
            // Kept open until the reader is done: closing it would end the connection.
            Ok::<_, String>(Ended::Writer(writer))
        }));
        let (stop_r, counting, addr, timeline) = (stop.clone(), counting.clone(), binary[node], timeline.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Done { node, written: 0, hist: new_histogram(), failed: 0, first_failure: None };
            while !stop_r.load(Ordering::Relaxed) {
                let frame = tokio::select! {
                    f = reader.frame() => f?,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                };
                let Frame::PublishBatchAck(ack) = frame else { return Err(format!("unexpected answer {frame:?}")) };
                let ok = ack.items.iter().filter(|i| i.is_ok()).count() as u64;
                let sent = sent_at.lock().map_err(|e| e.to_string())?.remove(&ack.request_id);
                if counting.load(Ordering::Relaxed) {
                    if let Some(t) = timeline.get() {
                        t.add(Instant::now(), ok);
                    }
                    done.written += ok;
                    // Counted and reported (a contended cluster may refuse
                    // items it could not sequence); the run goes on to its end.
                    done.failed += ack.items.len() as u64 - ok;
                    if let Some(t) = sent {
                        let _ = done.hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                }
                if let Some(e) = ack.items.iter().find(|i| i.is_err()) {
                    done.first_failure.get_or_insert_with(|| format!("node {addr}: {e:?}"));
                }
                window.add_permits(1);
            }
            Ok(Ended::Reader(done))
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    let _ = timeline.set(Timeline::new(start, Duration::from_secs_f64(args.seconds)));
    counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    windows.iter().for_each(|w| w.close());
    let mut done = Vec::new();
    let mut writers = Vec::new();
    for t in tasks {
        match t.await.map_err(|e| e.to_string())?? {
            Ended::Reader(d) => done.push(d),
            Ended::Writer(w) => writers.push(w),
        }
    }
    drop(writers);
    Ok((elapsed, done, Arc::into_inner(timeline).and_then(OnceLock::into_inner)))
}
