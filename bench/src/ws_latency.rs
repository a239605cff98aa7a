//! Scenario `ws-latency`: durable publish → receive. Publishers write
//! activities over REST at a paced total rate; one Phoenix socket subscribed
//! to the conversation receives them. Latency is measured from each write's
//! *scheduled* send time (so a stalled server cannot hide its stall: no
//! coordinated omission) to the broadcast's arrival, both on this process's
//! clock; the schedule time travels in the activity's text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::Client;
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
    /// REST connections sharing the rate.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// Conversations written to (one subscriber socket each).
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Seconds measured per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs; the report merges their latencies.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(Serialize)]
struct Report {
    achieved_rate: Spread,
    latency_us: Percentiles,
}

pub fn run(args: WsLatencyArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let mut hist = new_histogram();
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let (h, rate) = rt.block_on(one_run(&args))?;
        eprintln!(
            "ws-latency run {}/{}: {rate:.0} msg/s received, p50 {} µs, p99 {} µs, p99.9 {} µs",
            run + 1,
            args.runs,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999)
        );
        hist.add(&h).map_err(|e| e.to_string())?;
        rates.push(rate);
    }
    let report = Report { achieved_rate: Spread::of(&rates), latency_us: Percentiles::of(&hist) };
    emit("ws-latency", &args, report)?;
    Ok(())
}

async fn one_run(args: &WsLatencyArgs) -> Result<(hdrhistogram::Histogram<u64>, f64), String> {
    let mut tenant = args.target.tenant("ws-latency").await?;
    let key = tenant.api_key.clone();
    let mut c = Client::connect(args.target.addr).await?;
    let epoch = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut paths = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..args.conversations {
        let id = tenant.conversation().await?;
        let token = tenant.token(&id, "subscriber").await?;
        let mut ws = WsClient::connect(args.target.addr, &format!("/socket/websocket?vsn=2.0.0&token={token}")).await?;
        ws.send_text(&json!(["1", "1", format!("conversation:{id}"), "phx_join", {}]).to_string()).await?;
        let (measuring, stop) = (measuring.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut received = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut sent_at = Vec::new();
                let open = ws
                    .read_frames(|frame| {
                        if let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(frame) {
                            if m.get(3).and_then(Value::as_str) == Some("activity") {
                                if let Some(t) = m[4]["text"].as_str().and_then(|t| t.parse::<u64>().ok()) {
                                    sent_at.push(t);
                                }
                            }
                        }
                    })
                    .await?;
                let now = epoch.elapsed().as_micros() as u64;
                if measuring.load(Ordering::Relaxed) {
                    for t in sent_at {
                        let _ = hist.record(now.saturating_sub(t).max(1));
                        received += 1;
                    }
                }
                if !open {
                    return Err::<_, String>("a subscriber was closed by the server".into());
                }
            }
            Ok((hist, received))
        }));
        paths.push(format!("/api/v1/conversations/{id}/activities"));
    }
    // Each publisher owns a slot in the schedule: writes k, k+P, k+2P, … of the total.
    let interval = Duration::from_secs_f64(args.publishers as f64 / args.rate as f64);
    let start = Instant::now() + Duration::from_millis(200);
    let mut pubs = Vec::new();
    for p in 0..args.publishers {
        let (key, paths, stop, addr) = (key.clone(), paths.clone(), stop.clone(), args.target.addr);
        let offset = Duration::from_secs_f64(p as f64 / args.rate as f64);
        pubs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut next = start + offset;
            let mut i = p;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(next.into()).await;
                let scheduled = next.duration_since(epoch).as_micros() as u64;
                let body = json!({"sender": "publisher", "text": scheduled.to_string()}).to_string();
                let r = c.call("POST", &paths[i % paths.len()], &key, Some(body.as_bytes())).await?;
                if r.status != 201 {
                    return Err(format!("publish answered {}", r.status));
                }
                next += interval;
                i += 1;
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        p.await.map_err(|e| e.to_string())??;
    }
    // One more write per conversation wakes every reader so it sees `stop`.
    for path in &paths {
        let body = json!({"sender": "publisher", "text": "0"}).to_string();
        c.call("POST", path, &key, Some(body.as_bytes())).await?;
    }
    let mut hist = new_histogram();
    let mut received = 0;
    for r in readers {
        let (h, n) = r.await.map_err(|e| e.to_string())??;
        hist.add(&h).map_err(|e| e.to_string())?;
        received += n;
    }
    Ok((hist, received as f64 / args.seconds))
}
