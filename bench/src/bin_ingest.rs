//! Scenario `bin-ingest`: durable, acknowledged activities per second through
//! the binary protocol's batched publish. A few connections each keep
//! `--window` PublishBatch frames in flight; an activity counts when its item
//! in the PublishBatchAck says it was written (committed and fsynced).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use converger_protocol::{Frame, PublishBatch};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::bin_client;
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct BinIngestArgs {
    #[command(flatten)]
    target: Target,
    /// Connections publishing.
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
}

pub fn run(args: BinIngestArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let binary = args.target.binary()?;
    let mut rates = Vec::new();
    let mut all = new_histogram();
    for run in 0..args.runs {
        let (rate, hist) = rt.block_on(one_run(&args, binary))?;
        eprintln!(
            "bin-ingest run {}/{}: {rate:.0} activities/s, batch ack p50 {} µs, p99 {} µs",
            run + 1,
            args.runs,
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99)
        );
        all.add(&hist).map_err(|e| e.to_string())?;
        rates.push(rate);
    }
    emit(
        "bin-ingest",
        &args,
        Report { activities_per_s: Spread::of(&rates), batch_ack_latency_us: Percentiles::of(&all) },
    )?;
    Ok(())
}

/// What a connection's task hands back.
enum Ended {
    Writer(bin_client::BinWriter),
    Reader(hdrhistogram::Histogram<u64>),
}

async fn one_run(
    args: &BinIngestArgs,
    binary: std::net::SocketAddr,
) -> Result<(f64, hdrhistogram::Histogram<u64>), String> {
    let mut tenant = args.target.tenant("bin-ingest").await?;
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        let id = tenant.conversation().await?;
        conversations.push(*uuid::Uuid::parse_str(&id).map_err(|e| e.to_string())?.as_bytes());
    }
    let text = "x".repeat(args.text_bytes);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let tls = args.target.tls()?;
    let mut tasks = Vec::new();
    let mut windows = Vec::new();
    for c in 0..args.connections {
        let (mut reader, mut writer, _) = bin_client::connect_with(binary, &tenant.api_key, tls.as_ref()).await?;
        // Each connection cycles through the conversations from its own offset.
        let frames: Vec<PublishBatch> = (0..args.window.max(1) * 2)
            .map(|f| PublishBatch {
                request_id: 0,
                activities: (0..args.batch)
                    .map(|i| {
                        bin_client::draft(conversations[(c + f * args.batch + i) % conversations.len()], "bench", &text)
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
        let (stop_r, counting, written, batch) = (stop.clone(), counting.clone(), written.clone(), args.batch);
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            while !stop_r.load(Ordering::Relaxed) {
                let frame = tokio::select! {
                    f = reader.frame() => f?,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                };
                let Frame::PublishBatchAck(ack) = frame else { return Err(format!("unexpected answer {frame:?}")) };
                let ok = ack.items.iter().filter(|i| i.is_ok()).count();
                if ok != batch {
                    return Err(format!(
                        "{} of {batch} items failed: {:?}",
                        batch - ok,
                        ack.items.iter().find(|i| i.is_err())
                    ));
                }
                let sent = sent_at.lock().map_err(|e| e.to_string())?.remove(&ack.request_id);
                if counting.load(Ordering::Relaxed) {
                    written.fetch_add(ok as u64, Ordering::Relaxed);
                    if let Some(t) = sent {
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                }
                window.add_permits(1);
            }
            Ok(Ended::Reader(hist))
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    windows.iter().for_each(|w| w.close());
    let mut hist = new_histogram();
    let mut writers = Vec::new();
    for t in tasks {
        match t.await.map_err(|e| e.to_string())?? {
            Ended::Reader(h) => hist.add(&h).map_err(|e| e.to_string())?,
            Ended::Writer(w) => writers.push(w),
        }
    }
    drop(writers);
    Ok((written.load(Ordering::Relaxed) as f64 / elapsed, hist))
}
