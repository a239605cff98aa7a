//! Scenario `rest-ingest`: acknowledged activity creates per second over REST,
//! from many keep-alive connections, each with one request in flight. An
//! acknowledgement (201) means the activity is committed (fsynced).
//!
//! Setup goes through the admin API (a fresh tenant, a `websocket` channel and
//! `--conversations` conversations), so it needs the server's admin token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct RestIngestArgs {
    #[command(flatten)]
    target: Target,
    /// Keep-alive connections, one request in flight each.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Conversations the writes are spread over.
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Seconds per run (after a one-second warm-up).
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
    acks_per_s: Spread,
    latency_us: Percentiles,
}

pub fn run(args: RestIngestArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let mut rates = Vec::new();
    let mut hist = new_histogram();
    for run in 0..args.runs {
        let (acks, elapsed, h) = rt.block_on(one_run(&args))?;
        let rate = acks as f64 / elapsed.as_secs_f64();
        eprintln!(
            "rest-ingest run {}/{}: {rate:.0} acks/s ({acks} in {:.1}s), p50 {} µs, p99 {} µs",
            run + 1,
            args.runs,
            elapsed.as_secs_f64(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99)
        );
        rates.push(rate);
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    let report = Report { acks_per_s: Spread::of(&rates), latency_us: Percentiles::of(&hist) };
    emit("rest-ingest", &args, report)?;
    Ok(())
}

async fn one_run(args: &RestIngestArgs) -> Result<(u64, Duration, hdrhistogram::Histogram<u64>), String> {
    let mut tenant = args.target.tenant("rest-ingest").await?;
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        conversations.push(tenant.conversation().await?);
    }
    let api_key = tenant.api_key.clone();
    let paths: Arc<Vec<String>> =
        Arc::new(conversations.iter().map(|c| format!("/api/v1/conversations/{c}/activities")).collect());
    let body = Arc::new(json!({"sender": "bench", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + Duration::from_secs_f64(args.seconds);
    let tls = args.target.tls()?;
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (paths, body, key, addr, tls) =
            (paths.clone(), body.clone(), api_key.clone(), args.target.addr, tls.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect_with(addr, tls.as_ref()).await?;
            let mut hist = new_histogram();
            let mut acks = 0u64;
            let mut i = c;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let reply = client.call("POST", &paths[i % paths.len()], &key, Some(&body)).await?;
                i += 1;
                if reply.status != 201 {
                    return Err(format!("status {}: {}", reply.status, String::from_utf8_lossy(&reply.body)));
                }
                if t0 >= warm_up {
                    acks += 1;
                    let _ = hist.record(t0.elapsed().as_micros() as u64);
                }
            }
            Ok::<_, String>((acks, hist))
        }));
    }
    let mut acks = 0;
    let mut hist = new_histogram();
    for t in tasks {
        let (n, h) = t.await.map_err(|e| e.to_string())??;
        acks += n;
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    Ok((acks, Duration::from_secs_f64(args.seconds), hist))
}
