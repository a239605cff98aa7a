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
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::Client;
use crate::pacer;
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
    /// Schedule → broadcast received on the subscriber's socket.
    latency_us: Percentiles,
    /// Schedule → the publisher's REST answer (201).
    ack_latency_us: Percentiles,
}

pub fn run(args: WsLatencyArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let (mut delivered, mut acked) = (new_histogram(), new_histogram());
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let r = rt.block_on(one_run(&args))?;
        let h = &r.delivered;
        eprintln!(
            "ws-latency run {}/{}: {:.0} msg/s received, p50 {} µs, p99 {} µs, p99.9 {} µs (REST answer p50 {} µs, p99 {} µs)",
            run + 1,
            args.runs,
            r.rate,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            r.acked.value_at_quantile(0.5),
            r.acked.value_at_quantile(0.99),
        );
        delivered.add(h).map_err(|e| e.to_string())?;
        acked.add(&r.acked).map_err(|e| e.to_string())?;
        rates.push(r.rate);
    }
    let report = Report {
        achieved_rate: Spread::of(&rates),
        latency_us: Percentiles::of(&delivered),
        ack_latency_us: Percentiles::of(&acked),
    };
    emit("ws-latency", &args, report)?;
    Ok(())
}

/// One run's latencies: schedule → broadcast received, schedule → REST answer.
struct Run {
    delivered: Histogram<u64>,
    acked: Histogram<u64>,
    rate: f64,
}

async fn one_run(args: &WsLatencyArgs) -> Result<Run, String> {
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
    // The pacer hands each scheduled write to the publishers in turn.
    let limit = Duration::from_secs_f64(args.seconds + 2.0);
    let (pacer, ticks) = pacer::start(args.rate, args.publishers, epoch, Instant::now(), limit);
    let mut pubs = Vec::new();
    for mut ticks in ticks {
        let (key, paths, addr, measuring) = (key.clone(), paths.clone(), args.target.addr, measuring.clone());
        pubs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut acks = new_histogram();
            while let Some(tick) = ticks.recv().await {
                let body = json!({"sender": "publisher", "text": tick.scheduled_us.to_string()}).to_string();
                let path = &paths[tick.index as usize % paths.len()];
                let r = c.call("POST", path, &key, Some(body.as_bytes())).await?;
                if r.status != 201 {
                    return Err(format!("publish answered {}", r.status));
                }
                if measuring.load(Ordering::Relaxed) {
                    let now = epoch.elapsed().as_micros() as u64;
                    let _ = acks.record(now.saturating_sub(tick.scheduled_us).max(1));
                }
            }
            Ok::<_, String>(acks)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    pacer.stop();
    let mut acks = new_histogram();
    for p in pubs {
        acks.add(&p.await.map_err(|e| e.to_string())??).map_err(|e| e.to_string())?;
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
    Ok(Run { delivered: hist, acked: acks, rate: received as f64 / args.seconds })
}
