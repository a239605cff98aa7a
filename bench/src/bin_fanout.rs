//! Scenario `bin-fanout`: one conversation, `--subscribers` binary connections
//! subscribed to it, and one publisher connection sending PublishBatch frames
//! with a window in flight; counts the activities the subscribers receive per
//! second (Deliver frames are walked by their headers and counts, not decoded).
//! Every delivery is durable before it is sent (publish → commit → fan-out).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use converger_protocol::{Frame, Kind, PublishBatch, Subscribe, SubscribeItem, LIVE_ONLY};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::bin_client;
use crate::report::{emit, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct BinFanoutArgs {
    #[command(flatten)]
    target: Target,
    /// Binary connections subscribed to the conversation.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Activities per PublishBatch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// PublishBatch frames in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Seconds measured per run (after the subscriptions and a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
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
    deliveries_per_s: Spread,
    publishes_per_s: Spread,
}

pub fn run(args: BinFanoutArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("bin-fanout")?;
    let binary = args.target.binary()?;
    let (mut deliveries, mut publishes) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let (d, p) = rt.block_on(one_run(&args, binary))?;
        eprintln!("bin-fanout run {}/{}: {d:.0} deliveries/s from {p:.0} publishes/s", run + 1, args.runs);
        deliveries.push(d);
        publishes.push(p);
    }
    emit(
        "bin-fanout",
        &args,
        Report { deliveries_per_s: Spread::of(&deliveries), publishes_per_s: Spread::of(&publishes) },
    )?;
    Ok(())
}

async fn one_run(args: &BinFanoutArgs, binary: std::net::SocketAddr) -> Result<(f64, f64), String> {
    let mut tenant = args.target.tenant("bin-fanout").await?;
    let conversation = tenant.conversation().await?;
    let conversation = *uuid::Uuid::parse_str(&conversation).map_err(|e| e.to_string())?.as_bytes();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for i in 0..args.subscribers {
        let (mut reader, mut writer, _) = bin_client::connect(binary, &tenant.api_key).await?;
        let items = vec![SubscribeItem { conversation_id: conversation, after_seq: LIVE_ONLY }];
        writer.send(&Subscribe { request_id: 1, items }.into()).await?;
        match reader.frame().await.map_err(|e| format!("subscriber {i}: {e}"))? {
            Frame::Subscribed(s) if s.items.iter().all(|i| i.result.is_ok()) => {}
            other => return Err(format!("subscribe refused: {other:?}")),
        }
        let (counting, stop, delivered) = (counting.clone(), stop.clone(), delivered.clone());
        subs.push(tokio::spawn(async move {
            let _writer = writer;
            while !stop.load(Ordering::Relaxed) {
                let mut local = 0u64;
                let open = reader
                    .walk(|kind, body| {
                        if kind == Kind::Deliver {
                            local += body.get(..4).map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])) as u64;
                        }
                    })
                    .await?;
                if counting.load(Ordering::Relaxed) {
                    delivered.fetch_add(local, Ordering::Relaxed);
                }
                if !open {
                    return Err::<(), String>("a subscriber was closed by the server".into());
                }
            }
            Ok(())
        }));
    }
    let (mut reader, mut writer, _) = bin_client::connect(binary, &tenant.api_key).await?;
    let draft = bin_client::draft(conversation, "publisher", &"x".repeat(args.text_bytes));
    let window = Arc::new(Semaphore::new(args.window.max(1)));
    let published = Arc::new(AtomicU64::new(0));
    let (stop_w, window_w, batch) = (stop.clone(), window.clone(), args.batch);
    let pub_writer = tokio::spawn(async move {
        let mut request_id = 0u32;
        let frame = PublishBatch { request_id: 0, activities: vec![draft; batch] };
        while !stop_w.load(Ordering::Relaxed) {
            let Ok(permit) = window_w.acquire().await else { break };
            permit.forget();
            request_id = request_id.wrapping_add(1).max(1);
            writer.send(&PublishBatch { request_id, ..frame.clone() }.into()).await?;
        }
        // Kept open until the reader is done: closing it would end the connection.
        Ok::<_, String>(writer)
    });
    let (stop_r, counting_r, published_r, window_r) =
        (stop.clone(), counting.clone(), published.clone(), window.clone());
    let pub_reader = tokio::spawn(async move {
        while !stop_r.load(Ordering::Relaxed) {
            let frame = tokio::select! {
                f = reader.frame() => f.map_err(|e| format!("publisher: {e}"))?,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let Frame::PublishBatchAck(ack) = frame else { return Err(format!("unexpected answer {frame:?}")) };
            if counting_r.load(Ordering::Relaxed) {
                published_r.fetch_add(ack.items.iter().filter(|i| i.is_ok()).count() as u64, Ordering::Relaxed);
            }
            window_r.add_permits(1);
        }
        Ok::<(), String>(())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    window.close();
    let writer = pub_writer.await.map_err(|e| e.to_string())??;
    pub_reader.await.map_err(|e| e.to_string())??;
    drop(writer);
    // Subscribers stop at their next read; abort the ones left waiting.
    for s in subs {
        s.abort();
    }
    Ok((delivered.load(Ordering::Relaxed) as f64 / elapsed, published.load(Ordering::Relaxed) as f64 / elapsed))
}
