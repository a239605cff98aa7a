//! The soak's load: long-lived clients on every transport at a paced rate,
//! and connection churn beside them.
//!
//! - **Writers** share one paced schedule ([`crate::pacer`]), round-robin over
//!   [`SLOTS`]: REST creates, Phoenix `activity:create` pushes and binary
//!   Publishes (each writer one request in flight), and REST reads of an
//!   activities page at a random seq. Every write carries its scheduled time
//!   in its text, so the subscribers measure scheduled publish → receive.
//! - **Subscribers**: one Phoenix socket per conversation and one binary
//!   connection subscribed to all of them, held for the whole run (with
//!   heartbeats and pings, as a real client keeps them alive).
//! - **Churn**: every `--churn-every` seconds, `--churn` short-lived
//!   connections (Phoenix sockets joined to a conversation, binary
//!   connections subscribed to one, REST connections reading a page) are
//!   opened, used once and closed: a descriptor or per-connection memory
//!   leak grows with them.
//!
//! No operation waits for ever: each has [`OP_TIMEOUT`]; a failure is counted
//! (the first kept for the report), the connection dropped and made again at
//! the next operation, and the run goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use converger_protocol::{Frame, Ping, Publish, Subscribe, SubscribeItem, LIVE_ONLY};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

use crate::bin_client::{self, BinReader, BinWriter};
use crate::http::Client;
use crate::mix::Rng;
use crate::pacer::Tick;
use crate::report::new_histogram;
use crate::ws::WsClient;

/// Longest any one operation (a request, a join, a connect) may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the long-lived subscribers show they are alive (the server
/// closes a socket silent for 60 s).
const KEEPALIVE: Duration = Duration::from_secs(20);

/// What each writer does with its share of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    RestCreate,
    PhoenixPublish,
    BinaryPublish,
    Read,
}

/// The writers, in the pacer's round-robin order: 30 % REST creates, 20 %
/// Phoenix pushes, 30 % binary publishes, 20 % page reads.
pub const SLOTS: [Op; 10] = [
    Op::RestCreate,
    Op::PhoenixPublish,
    Op::BinaryPublish,
    Op::Read,
    Op::RestCreate,
    Op::BinaryPublish,
    Op::PhoenixPublish,
    Op::RestCreate,
    Op::BinaryPublish,
    Op::Read,
];

/// The short-lived connections of the churn, taken in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Churn {
    /// A Phoenix socket joined to a conversation.
    Phoenix,
    /// A binary connection subscribed (live only) to one.
    Binary,
    /// A REST connection reading one activity.
    Rest,
}

/// The kinds counted apart in the report.
pub const KINDS: [&str; 5] = ["rest_create", "phoenix_publish", "binary_publish", "read", "churn_connection"];
const CHURN: usize = 4;

impl Op {
    fn kind(self) -> usize {
        self as usize
    }
}

/// Counts and latencies shared by every task; the sampler reads and resets
/// the window's histogram.
pub struct Tally {
    pub ops: [AtomicU64; 5],
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    pub received: AtomicU64,
    /// Scheduled publish → received, since the sampler last took it.
    pub window: Mutex<Histogram<u64>>,
    /// The same over the whole run after the warm-up.
    pub total: Mutex<Histogram<u64>>,
    /// Writes scheduled from this point on (µs since the epoch) count in `total`.
    pub measure_from_us: AtomicU64,
    pub epoch: Instant,
}

impl Tally {
    pub fn new(epoch: Instant) -> Tally {
        Tally {
            ops: Default::default(),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            received: AtomicU64::new(0),
            window: Mutex::new(new_histogram()),
            total: Mutex::new(new_histogram()),
            measure_from_us: AtomicU64::new(u64::MAX),
            epoch,
        }
    }

    fn done(&self, kind: usize) {
        self.ops[kind].fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, what: &str, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("{what}: {e}"));
    }

    /// One activity received that was scheduled at `scheduled_us`.
    fn received(&self, scheduled_us: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_micros() as u64;
        let us = now.saturating_sub(scheduled_us).max(1);
        let _ = self.window.lock().unwrap_or_else(|p| p.into_inner()).record(us);
        if scheduled_us >= self.measure_from_us.load(Ordering::Relaxed) {
            let _ = self.total.lock().unwrap_or_else(|p| p.into_inner()).record(us);
        }
    }

    pub fn ops_total(&self) -> u64 {
        self.ops.iter().map(|o| o.load(Ordering::Relaxed)).sum()
    }
}

/// One conversation and the tokens its sockets use.
pub struct Conversation {
    pub id: String,
    pub uuid: [u8; 16],
    /// For the subscribers and the churn (sender `soak-sub`).
    pub sub_token: String,
    /// For the Phoenix writers (sender `soak-pub`).
    pub pub_token: String,
}

/// Where the load goes.
pub struct Setup {
    pub http: std::net::SocketAddr,
    pub binary: std::net::SocketAddr,
    pub api_key: String,
    pub conversations: Vec<Conversation>,
}

/// The activity text: the scheduled time.
fn text(scheduled_us: u64) -> String {
    format!("soak {scheduled_us}")
}

fn parse_text(text: &str) -> Option<u64> {
    text.strip_prefix("soak ")?.parse().ok()
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    timeout(OP_TIMEOUT, f).await.map_err(|_| format!("{what}: no answer in {} s", OP_TIMEOUT.as_secs()))?
}

/// Sends one Phoenix message and reads until its reply; `Ok(response)` for status ok.
async fn phx_call(ws: &mut WsClient, msg_ref: u64, topic: &str, event: &str, payload: Value) -> Result<Value, String> {
    let r = msg_ref.to_string();
    ws.send_text(&json!(["1", r, topic, event, payload]).to_string()).await?;
    loop {
        let mut reply = None;
        let open = ws.read_frames(|f| {
            if let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(f) {
                if m.get(1).and_then(Value::as_str) == Some(&r) && m.get(3).and_then(Value::as_str) == Some("phx_reply")
                {
                    reply = m.get(4).cloned();
                }
            }
        });
        let open = open.await?;
        if let Some(reply) = reply {
            return match reply["status"].as_str() {
                Some("ok") => Ok(reply["response"].clone()),
                _ => Err(format!("{event} refused: {}", reply["response"])),
            };
        }
        if !open {
            return Err("the server closed the socket".into());
        }
    }
}

/// A Phoenix socket joined to the conversation.
async fn phx_join(setup: &Setup, c: &Conversation, token: &str) -> Result<WsClient, String> {
    let mut ws = WsClient::connect(setup.http, &format!("/socket/websocket?vsn=2.0.0&token={token}")).await?;
    phx_call(&mut ws, 1, &format!("conversation:{}", c.id), "phx_join", json!({})).await?;
    Ok(ws)
}

/// A binary connection subscribed (live only) to `conversations`.
async fn bin_subscribe(setup: &Setup, conversations: &[[u8; 16]]) -> Result<(BinReader, BinWriter), String> {
    let (mut reader, mut writer, _) = bin_client::connect(setup.binary, &setup.api_key).await?;
    let items = conversations.iter().map(|&c| SubscribeItem { conversation_id: c, after_seq: LIVE_ONLY }).collect();
    writer.send(&Subscribe { request_id: 1, items }.into()).await?;
    loop {
        match reader.frame().await? {
            Frame::Subscribed(s) if s.items.iter().all(|i| i.result.is_ok()) => return Ok((reader, writer)),
            Frame::Subscribed(s) => return Err(format!("subscribe refused: {:?}", s.items)),
            Frame::Deliver(_) | Frame::Pong(_) | Frame::Ephemeral(_) => {}
            other => return Err(format!("expected Subscribed, got {other:?}")),
        }
    }
}

/// The long-lived subscribers; they run until aborted.
pub async fn subscribers(setup: Arc<Setup>, tally: Arc<Tally>) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut tasks = Vec::new();
    for c in &setup.conversations {
        let mut ws = bounded("subscriber join", phx_join(&setup, c, &c.sub_token)).await?;
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            // The server counts silence from the client's side: a socket that
            // only reads must still send a heartbeat every so often.
            let mut beat = Instant::now() + KEEPALIVE;
            loop {
                let mut sent = Vec::new();
                let read = ws.read_frames(|f| {
                    if let Ok(Value::Array(m)) = serde_json::from_slice::<Value>(f) {
                        if m.get(3).and_then(Value::as_str) == Some("activity") {
                            sent.extend(m[4]["text"].as_str().and_then(parse_text));
                        }
                    }
                });
                match tokio::time::timeout_at(beat.into(), read).await {
                    Ok(Ok(open)) => {
                        sent.into_iter().for_each(|t| tally.received(t));
                        if !open {
                            return tally.failed("phoenix subscriber", "closed by the server".into());
                        }
                    }
                    Ok(Err(e)) => return tally.failed("phoenix subscriber", e),
                    Err(_) => {
                        if let Err(e) = ws.send_text(r#"[null,"hb","phoenix","heartbeat",{}]"#).await {
                            return tally.failed("phoenix subscriber heartbeat", e);
                        }
                        beat = Instant::now() + KEEPALIVE;
                    }
                }
            }
        }));
    }
    let all: Vec<[u8; 16]> = setup.conversations.iter().map(|c| c.uuid).collect();
    let (mut reader, mut writer) = bounded("binary subscribe", bin_subscribe(&setup, &all)).await?;
    tasks.push(tokio::spawn(async move {
        let mut ping = tokio::time::interval(KEEPALIVE);
        loop {
            tokio::select! {
                f = reader.frame() => match f {
                    Ok(Frame::Deliver(d)) => {
                        d.activities.iter().filter_map(|a| a.text.as_deref().and_then(parse_text)).for_each(|t| tally.received(t));
                    }
                    Ok(Frame::Error(e)) => return tally.failed("binary subscriber", e.message),
                    Ok(_) => {}
                    Err(e) => return tally.failed("binary subscriber", e),
                },
                _ = ping.tick() => {
                    if let Err(e) = writer.send(&Ping { payload: 0 }.into()).await {
                        return tally.failed("binary subscriber ping", e);
                    }
                }
            }
        }
    }));
    Ok(tasks)
}

/// A writer's connections, kept open after its schedule ends until the
/// final descriptor count is read: the baseline was counted with them open.
pub struct Held {
    _rest: Option<Client>,
    _bin: Option<(BinReader, BinWriter)>,
    _phx: Vec<Option<WsClient>>,
}

/// One writer: takes its ticks until the schedule ends.
pub async fn writer(
    op: Op,
    setup: Arc<Setup>,
    tally: Arc<Tally>,
    mut ticks: UnboundedReceiver<Tick>,
    seed: u64,
) -> Held {
    let n = setup.conversations.len();
    let mut rest: Option<Client> = None;
    let mut bin: Option<(BinReader, BinWriter)> = None;
    let mut phx: Vec<Option<WsClient>> = (0..n).map(|_| None).collect();
    let mut rng = Rng::new(seed);
    let mut last_seq = vec![0u64; n];
    let mut msg_ref = 1u64;
    let mut turn = 0usize;
    while let Some(tick) = ticks.recv().await {
        // Each writer goes round the conversations in turn.
        let c = turn % n;
        turn += 1;
        let conv = &setup.conversations[c];
        let path = format!("/api/v1/conversations/{}/activities", conv.id);
        let result = match op {
            Op::RestCreate | Op::Read => {
                bounded(&format!("{op:?}"), async {
                    let client = match rest.as_mut() {
                        Some(client) => client,
                        None => rest.insert(Client::connect(setup.http).await?),
                    };
                    if op == Op::RestCreate {
                        let body = json!({"sender": "soak-rest", "text": text(tick.scheduled_us)}).to_string();
                        let r = client.call("POST", &path, &setup.api_key, Some(body.as_bytes())).await?;
                        (r.status == 201).then_some(()).ok_or(format!("status {}", r.status))
                    } else {
                        let after = rng.below(last_seq[c].max(1));
                        let page = format!("{path}?after_seq={after}&limit=50");
                        let r = client.call("GET", &page, &setup.api_key, None).await?;
                        let v = (r.status == 200).then(|| r.json()).ok_or(format!("status {}", r.status))??;
                        last_seq[c] = v["last_seq"].as_u64().unwrap_or(last_seq[c]);
                        Ok(())
                    }
                })
                .await
            }
            Op::PhoenixPublish => {
                msg_ref += 1;
                bounded("phoenix publish", async {
                    let ws = match phx[c].as_mut() {
                        Some(ws) => ws,
                        None => phx[c].insert(phx_join(&setup, conv, &conv.pub_token).await?),
                    };
                    let topic = format!("conversation:{}", conv.id);
                    let payload = json!({"text": text(tick.scheduled_us)});
                    phx_call(ws, msg_ref, &topic, "activity:create", payload).await.map(drop)
                })
                .await
            }
            Op::BinaryPublish => {
                let request_id = (tick.index as u32).max(1);
                bounded("binary publish", async {
                    let (reader, writer) = match bin.as_mut() {
                        Some(b) => b,
                        None => {
                            bin.insert(bin_client::connect(setup.binary, &setup.api_key).await.map(|(r, w, _)| (r, w))?)
                        }
                    };
                    let draft = bin_client::draft(conv.uuid, "soak-bin", &text(tick.scheduled_us));
                    writer.send(&Publish { request_id, activity: draft }.into()).await?;
                    loop {
                        match reader.frame().await? {
                            Frame::PublishAck(a) if a.request_id == request_id => return Ok(()),
                            Frame::Error(e) => return Err(format!("error {}: {}", e.code, e.message)),
                            Frame::Ping(_) | Frame::Pong(_) => {}
                            other => return Err(format!("expected a PublishAck, got {other:?}")),
                        }
                    }
                })
                .await
            }
        };
        match result {
            Ok(()) => tally.done(op.kind()),
            Err(e) => {
                tally.failed(&format!("{op:?}"), e);
                // Made again at the next operation: a broken or stalled connection is not reused.
                match op {
                    Op::RestCreate | Op::Read => rest = None,
                    Op::PhoenixPublish => phx[c] = None,
                    Op::BinaryPublish => bin = None,
                }
            }
        }
    }
    Held { _rest: rest, _bin: bin, _phx: phx }
}

/// Opens, uses and closes `count` connections every `every` until `until`.
pub async fn churn(
    setup: Arc<Setup>,
    tally: Arc<Tally>,
    every: Duration,
    count: usize,
    kinds: Vec<Churn>,
    until: Instant,
) {
    let mut tick = tokio::time::interval(every);
    let mut i = 0usize;
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return;
        }
        for _ in 0..count {
            let conv = &setup.conversations[i % setup.conversations.len()];
            let result = match kinds[i % kinds.len()] {
                Churn::Phoenix => bounded("churn phoenix", phx_join(&setup, conv, &conv.sub_token)).await.map(drop),
                Churn::Binary => bounded("churn binary", bin_subscribe(&setup, &[conv.uuid])).await.map(drop),
                Churn::Rest => {
                    bounded("churn rest", async {
                        let mut client = Client::connect(setup.http).await?;
                        let path = format!("/api/v1/conversations/{}/activities?limit=1", conv.id);
                        let r = client.call("GET", &path, &setup.api_key, None).await?;
                        (r.status == 200).then_some(()).ok_or(format!("status {}", r.status))
                    })
                    .await
                }
            };
            match result {
                Ok(()) => tally.done(CHURN),
                Err(e) => tally.failed("churn", e),
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_carries_the_schedule() {
        assert_eq!(parse_text(&text(1234)), Some(1234));
        assert_eq!(parse_text("hello"), None);
        assert_eq!(parse_text("soak x"), None);
    }

    #[test]
    fn the_slots_give_each_kind_its_share() {
        let share = |op| SLOTS.iter().filter(|&&s| s == op).count();
        assert_eq!([Op::RestCreate, Op::PhoenixPublish, Op::BinaryPublish, Op::Read].map(share), [3, 2, 3, 2]);
        assert_eq!(KINDS[Op::Read.kind()], "read");
        assert_eq!(KINDS[CHURN], "churn_connection");
    }
}
