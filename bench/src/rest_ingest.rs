//! Scenario `rest-ingest`: acknowledged activity creates per second over REST,
//! from many keep-alive connections, each with one request in flight. An
//! acknowledgement (201) means the activity is committed (fsynced).
//!
//! Setup goes through the admin API (a fresh tenant, a `websocket` channel and
//! `--conversations` conversations), so it needs the server's admin token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;
use crate::report::{git_commit, new_histogram, Machine, Percentiles, Spread};

#[derive(Args, Debug, Serialize)]
pub struct RestIngestArgs {
    /// The server's HTTP address (loopback).
    #[arg(long, default_value = "127.0.0.1:4000")]
    addr: SocketAddr,
    /// The server's admin token (for the setup).
    #[arg(long, env = "CONVERGER_ADMIN_TOKEN")]
    #[serde(skip)]
    admin_token: String,
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
struct Report<'a> {
    scenario: &'static str,
    machine: Machine,
    git_commit: String,
    params: &'a RestIngestArgs,
    acks_per_s: Spread,
    latency_us: Percentiles,
}

pub fn run(args: RestIngestArgs) -> Result<(), String> {
    if !args.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address: load runs only against this machine", args.addr));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
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
    let report = Report {
        scenario: "rest-ingest",
        machine: Machine::detect(),
        git_commit: git_commit(),
        params: &args,
        acks_per_s: Spread::of(&rates),
        latency_us: Percentiles::of(&hist),
    };
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    Ok(())
}

async fn one_run(args: &RestIngestArgs) -> Result<(u64, Duration, hdrhistogram::Histogram<u64>), String> {
    let (api_key, conversations) = setup(args).await?;
    let paths: Arc<Vec<String>> =
        Arc::new(conversations.iter().map(|c| format!("/api/v1/conversations/{c}/activities")).collect());
    let body = Arc::new(json!({"sender": "bench", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (paths, body, key, addr) = (paths.clone(), body.clone(), api_key.clone(), args.addr);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await?;
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

/// A fresh tenant with a channel and its conversations: (api key, conversation ids).
async fn setup(args: &RestIngestArgs) -> Result<(String, Vec<String>), String> {
    let mut c = Client::connect(args.addr).await?;
    let body = json!({"name": "rest-ingest"}).to_string();
    let tenant = c.call("POST", "/admin/api/tenants", &args.admin_token, Some(body.as_bytes())).await?.json()?;
    let key = tenant["api_key"].as_str().ok_or(format!("no api_key in {tenant}"))?.to_string();
    let body = json!({"name": "bench", "type": "websocket", "config": {}}).to_string();
    let channel = c.call("POST", "/api/v1/channels", &key, Some(body.as_bytes())).await?.json()?;
    let channel_id = channel["id"].as_str().ok_or(format!("no channel id in {channel}"))?.to_string();
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        let body = json!({"channel_id": channel_id}).to_string();
        let conv = c.call("POST", "/api/v1/conversations", &key, Some(body.as_bytes())).await?.json()?;
        conversations.push(conv["id"].as_str().ok_or(format!("no conversation id in {conv}"))?.to_string());
    }
    Ok((key, conversations))
}
