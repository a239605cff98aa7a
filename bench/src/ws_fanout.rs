//! Scenario `ws-fanout`: one conversation, `--subscribers` Phoenix sockets
//! joined to it, and publishers writing activities over REST; counts the
//! `activity` broadcasts the subscribers receive per second. Every broadcast
//! is durable before it is sent (publish → commit → fan-out).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;
use crate::report::{emit, Spread};
use crate::target::Target;
use crate::ws::WsClient;

#[derive(Args, Debug, Serialize)]
pub struct WsFanoutArgs {
    #[command(flatten)]
    target: Target,
    /// Phoenix sockets joined to the conversation.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// REST connections publishing (one write in flight each); few publishers
    /// bound the rate by their commit round trips, not by the fan-out.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// Seconds measured per run (after the sockets joined and a 1 s warm-up).
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

pub fn run(args: WsFanoutArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("ws-fanout")?;
    let (mut deliveries, mut publishes) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let (d, p) = rt.block_on(one_run(&args))?;
        eprintln!("ws-fanout run {}/{}: {d:.0} deliveries/s from {p:.0} publishes/s", run + 1, args.runs);
        deliveries.push(d);
        publishes.push(p);
    }
    let report = Report { deliveries_per_s: Spread::of(&deliveries), publishes_per_s: Spread::of(&publishes) };
    emit("ws-fanout", &args, report)?;
    Ok(())
}

async fn one_run(args: &WsFanoutArgs) -> Result<(f64, f64), String> {
    let mut tenant = args.target.tenant("ws-fanout").await?;
    let conversation = tenant.conversation().await?;
    let token = tenant.token(&conversation, "subscriber").await?;
    let api_key = tenant.api_key.clone();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let topic = format!("conversation:{conversation}");
    // A broadcast of an activity begins with exactly this: no JSON parsing needed to count it.
    let prefix: Arc<[u8]> = format!("[null,null,\"{topic}\",\"activity\",").into_bytes().into();
    let mut subs = Vec::new();
    for _ in 0..args.subscribers {
        let path = format!("/socket/websocket?vsn=2.0.0&token={token}");
        let mut ws = WsClient::connect(args.target.addr(), &path).await?;
        ws.send_text(&json!(["1", "1", topic, "phx_join", {}]).to_string()).await?;
        let (counting, stop, delivered, prefix) = (counting.clone(), stop.clone(), delivered.clone(), prefix.clone());
        subs.push(tokio::spawn(async move {
            let mut local = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let open = ws
                    .read_frames(|frame| {
                        if frame.starts_with(&prefix) {
                            local += 1;
                        }
                    })
                    .await?;
                if counting.load(Ordering::Relaxed) && local > 0 {
                    delivered.fetch_add(local, Ordering::Relaxed);
                }
                local = 0;
                if !open {
                    return Err::<(), String>("a subscriber was closed by the server".into());
                }
            }
            Ok(())
        }));
    }
    let path = format!("/api/v1/conversations/{conversation}/activities");
    let body = Arc::new(json!({"sender": "publisher", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let published = Arc::new(AtomicU64::new(0));
    let mut pubs = Vec::new();
    for _ in 0..args.publishers {
        let (path, body, key, stop, counting, published) =
            (path.clone(), body.clone(), api_key.clone(), stop.clone(), counting.clone(), published.clone());
        let addr = args.target.addr();
        pubs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            while !stop.load(Ordering::Relaxed) {
                let r = c.call("POST", &path, &key, Some(&body)).await?;
                if r.status != 201 {
                    return Err(format!("publish answered {}", r.status));
                }
                if counting.load(Ordering::Relaxed) {
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        p.await.map_err(|e| e.to_string())??;
    }
    // Subscribers stop at their next read; abort the ones left waiting.
    for s in subs {
        s.abort();
    }
    Ok((delivered.load(Ordering::Relaxed) as f64 / elapsed, published.load(Ordering::Relaxed) as f64 / elapsed))
}
