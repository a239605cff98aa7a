//! Scenario `delivery`: activities → webhook deliveries to a local receiver.
//! A `webhook` channel points at an HTTP server inside this process that
//! answers 200 at once and records when each delivery arrived. Activities are
//! published over the binary protocol (one Publish per scheduled send, paced
//! by the pacer thread, or as fast as the window allows with `--rate 0`);
//! each carries its scheduled time, so the receiver measures publish →
//! delivered (which includes the commit, so it bounds commit → delivered from
//! above). The run ends when every activity was delivered, or at the timeout.
//! Besides the whole run's rate it reports the drain of what was left when
//! the last publish was acknowledged: the backlog alone, without the
//! publishing it competed with for the storage writer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use converger_protocol::{Frame, Publish};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::bin_client;
use crate::http::Client;
use crate::pacer;
use crate::report::{emit, new_histogram, Percentiles};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct DeliveryArgs {
    #[command(flatten)]
    target: Target,
    /// Activities published (and delivered) per run.
    #[arg(long, default_value_t = 20_000)]
    activities: usize,
    /// Publishes per second, paced; 0 publishes as fast as the window allows.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Conversations the activities are spread over.
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Longest a run may take, in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Serialize)]
struct Report {
    delivered: usize,
    seconds: f64,
    deliveries_per_s: f64,
    /// Deliveries still to come when the last publish was acknowledged.
    backlog_after_publishing: usize,
    /// How fast that backlog drained.
    backlog_drained_per_s: f64,
    /// Scheduled publish → the delivery's arrival at the receiver.
    publish_to_delivered_us: Percentiles,
}

/// What the receiver saw: each activity id once, and the latencies.
struct Seen {
    ids: HashSet<String>,
    hist: hdrhistogram::Histogram<u64>,
    duplicates: usize,
}

pub fn run(args: DeliveryArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("delivery")?;
    let binary = args.target.binary()?;
    let report = rt.block_on(async {
        let epoch = Instant::now();
        let seen = Arc::new(Mutex::new(Seen { ids: HashSet::new(), hist: new_histogram(), duplicates: 0 }));
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("receiver: {e}"))?;
        let receiver_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let accept_seen = seen.clone();
        let receiver = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(receive(stream, accept_seen.clone(), epoch));
            }
        });

        let tenant = args.target.tenant("delivery").await?;
        let mut rest = Client::connect(args.target.addr()).await?;
        let channel = json!({"name": "bench-hook", "type": "webhook", "config": {"url": format!("http://{receiver_addr}/hook")}});
        let channel = rest.call("POST", "/api/v1/channels", &tenant.api_key, Some(channel.to_string().as_bytes())).await?;
        let channel = channel.json()?;
        let mut conversations = Vec::new();
        for _ in 0..args.conversations {
            let body = json!({"channel_id": channel["id"]}).to_string();
            let c = rest.call("POST", "/api/v1/conversations", &tenant.api_key, Some(body.as_bytes())).await?.json()?;
            let id = c["id"].as_str().ok_or("no conversation id")?;
            conversations.push(*uuid::Uuid::parse_str(id).map_err(|e| e.to_string())?.as_bytes());
        }

        let (mut reader, mut writer, _) = bin_client::connect(binary, &tenant.api_key).await?;
        let total = args.activities;
        let acks_seen = seen.clone();
        let acks = tokio::spawn(async move {
            let mut acked = 0usize;
            let mut all_acked = None;
            while let Ok(frame) = reader.frame().await {
                match frame {
                    Frame::PublishAck(_) => {
                        acked += 1;
                        if acked == total {
                            let delivered = acks_seen.lock().map(|s| s.ids.len()).unwrap_or(0);
                            all_acked = Some((Instant::now(), delivered));
                        }
                    }
                    Frame::Error(e) => return Err(format!("publish refused: {}", e.message)),
                    _ => {}
                }
            }
            Ok::<_, String>(all_acked)
        });
        let start = Instant::now();
        if args.rate == 0 {
            for i in 0..total {
                let sent = epoch.elapsed().as_micros() as u64;
                let draft = bin_client::draft(conversations[i % conversations.len()], "bench", &sent.to_string());
                writer.send(&Publish { request_id: (i + 1) as u32, activity: draft }.into()).await?;
            }
        } else {
            let limit = Duration::from_secs_f64(total as f64 / args.rate as f64 + 1.0);
            let (pace, mut ticks) = pacer::start(args.rate, 1, epoch, Instant::now(), limit);
            let mut ticks = ticks.pop().ok_or("no pacer")?;
            let mut i = 0;
            while let Some(tick) = ticks.recv().await {
                if i == total {
                    break;
                }
                let draft =
                    bin_client::draft(conversations[i % conversations.len()], "bench", &tick.scheduled_us.to_string());
                writer.send(&Publish { request_id: (i + 1) as u32, activity: draft }.into()).await?;
                i += 1;
            }
            pace.stop();
        }
        let deadline = start + Duration::from_secs_f64(args.timeout);
        let mut last_progress = 0;
        loop {
            let delivered = seen.lock().map_err(|e| e.to_string())?.ids.len();
            if delivered >= total || Instant::now() > deadline {
                break;
            }
            if delivered / 5000 != last_progress {
                last_progress = delivered / 5000;
                eprintln!("delivery: {delivered} of {total} delivered after {:.1} s", start.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let end = Instant::now();
        let seconds = end.duration_since(start).as_secs_f64();
        writer.close().await;
        let (backlog, drained_per_s) = match acks.await {
            Ok(Ok(Some((at, delivered)))) => {
                let left = total.saturating_sub(delivered);
                (left, left as f64 / end.saturating_duration_since(at).as_secs_f64().max(1e-6))
            }
            _ => (0, 0.0),
        };
        receiver.abort();
        let seen = seen.lock().map_err(|e| e.to_string())?;
        if seen.ids.len() < total {
            return Err(format!("only {} of {total} delivered within {} s", seen.ids.len(), args.timeout));
        }
        eprintln!(
            "delivery: {total} delivered in {seconds:.2} s ({:.0}/s), publish → delivered p50 {} µs, p99 {} µs ({} repeats)",
            total as f64 / seconds,
            seen.hist.value_at_quantile(0.5),
            seen.hist.value_at_quantile(0.99),
            seen.duplicates
        );
        eprintln!(
            "delivery: {backlog} left when the last publish was acknowledged, drained at {drained_per_s:.0}/s"
        );
        crate::plot::latency("publish → delivered to the receiver", &seen.hist);
        Ok::<_, String>(Report {
            delivered: seen.ids.len(),
            seconds,
            deliveries_per_s: total as f64 / seconds,
            backlog_after_publishing: backlog,
            backlog_drained_per_s: drained_per_s,
            publish_to_delivered_us: Percentiles::of(&seen.hist),
        })
    })?;
    emit("delivery", &args, report)?;
    Ok(())
}

/// Serves one keep-alive connection of the delivery worker: 200 to every request.
async fn receive(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, epoch: Instant) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let Some(head_end) = find(&buf, b"\r\n\r\n") else {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let now = epoch.elapsed().as_micros() as u64;
        let body: Vec<u8> = buf.drain(..head_end + 4 + len).skip(head_end + 4).collect();
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            let activity = &v["data"]["activity"];
            let sent = activity["text"].as_str().and_then(|t| t.parse::<u64>().ok());
            if let (Some(id), Some(sent), Ok(mut seen)) = (activity["id"].as_str(), sent, seen.lock()) {
                if seen.ids.insert(id.to_string()) {
                    let _ = seen.hist.record(now.saturating_sub(sent).max(1));
                } else {
                    seen.duplicates += 1;
                }
            }
        }
        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
