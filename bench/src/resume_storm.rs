//! Scenario `resume-storm`: many clients reconnect at once, each joining with
//! the last seq it had seen. Conversations are written first (a backlog of
//! `--backlog` activities each); then `--clients` sockets, spread over the
//! conversations, connect and join together, each with a `last_seq` of its
//! own, and read until they have the whole backlog. Every client checks that
//! it got exactly last_seq+1 … backlog, in order; the figure is the time from
//! the first connect to the last client complete.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::Client;
use crate::report::{emit, new_histogram, Percentiles};
use crate::target::Target;
use crate::ws::WsClient;

#[derive(Args, Debug, Serialize)]
pub struct ResumeStormArgs {
    #[command(flatten)]
    target: Target,
    /// Clients reconnecting at once.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Conversations they are spread over (few clients per conversation keeps
    /// presence, which is quadratic per conversation, out of the measurement).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Activities written to each conversation before the storm.
    #[arg(long, default_value_t = 20)]
    backlog: i64,
}

#[derive(Serialize)]
struct Report {
    all_complete_s: f64,
    activities_delivered: u64,
    per_client_complete_ms: Percentiles,
}

pub fn run(args: ResumeStormArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("resume-storm")?;
    rt.block_on(async {
        let mut tenant = args.target.tenant("resume-storm").await?;
        let mut rest = Client::connect(args.target.addr()).await?;
        let mut convs = Vec::new();
        for _ in 0..args.conversations {
            let id = tenant.conversation().await?;
            let token = tenant.token(&id, "returning").await?;
            let path = format!("/api/v1/conversations/{id}/activities");
            for i in 0..args.backlog {
                let body = json!({"sender": "writer", "text": format!("{i}")}).to_string();
                let r = rest.call("POST", &path, &tenant.api_key, Some(body.as_bytes())).await?;
                if r.status != 201 {
                    return Err(format!("backlog write answered {}", r.status));
                }
            }
            convs.push((format!("conversation:{id}"), token));
        }
        eprintln!("resume-storm: {} conversations written; {} clients reconnecting", convs.len(), args.clients);
        let convs = Arc::new(convs);
        let start = Instant::now();
        let clients: Vec<_> = (0..args.clients)
            .map(|i| {
                let (convs, addr, backlog) = (convs.clone(), args.target.addr(), args.backlog);
                tokio::spawn(async move {
                    let (topic, token) = &convs[i % convs.len()];
                    let last = (i as i64 / convs.len() as i64) % backlog;
                    let mut ws = WsClient::connect(addr, &format!("/socket/websocket?vsn=2.0.0&token={token}")).await?;
                    ws.send_text(&json!(["1", "1", topic, "phx_join", {"last_seq": last}]).to_string()).await?;
                    let mut expected = last + 1;
                    let mut failure = None;
                    while expected <= backlog {
                        let open = ws
                            .read_frames(|frame| {
                                let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(frame) else { return };
                                if m.get(3).and_then(Value::as_str) != Some("activity") {
                                    return;
                                }
                                let seq = m[4]["seq"].as_i64().unwrap_or(-1);
                                if seq != expected && failure.is_none() {
                                    failure = Some(format!("expected seq {expected}, got {seq}"));
                                }
                                expected = seq + 1;
                            })
                            .await?;
                        if let Some(f) = failure.take() {
                            return Err(f);
                        }
                        if !open {
                            return Err("closed by the server".into());
                        }
                    }
                    Ok::<_, String>((start.elapsed(), (backlog - last) as u64))
                })
            })
            .collect();
        let mut hist = new_histogram();
        let mut delivered = 0;
        for c in clients {
            let (took, n) = c.await.map_err(|e| e.to_string())??;
            let _ = hist.record(took.as_millis().max(1) as u64);
            delivered += n;
        }
        let all = start.elapsed().as_secs_f64();
        eprintln!(
            "resume-storm: all {} clients complete and gap-free in {all:.2} s ({delivered} activities)",
            args.clients
        );
        let report = Report {
            all_complete_s: all,
            activities_delivered: delivered,
            per_client_complete_ms: Percentiles::of(&hist),
        };
        emit("resume-storm", &args, report)?;
        Ok(())
    })
}
