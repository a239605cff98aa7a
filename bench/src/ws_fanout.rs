//! Scenario `ws-fanout`: one conversation, `--subscribers` Phoenix sockets
//! joined to it, and publishers writing activities over REST; counts the
//! `activity` broadcasts the subscribers receive per second. Every broadcast
//! is durable before it is sent (publish → commit → fan-out).
//!
//! With `--mix chat` the publishers also send reactions and edits of the
//! conversation's recent messages (see `mix`); every one committed is
//! broadcast and counted like a message; a reaction already there answers 200
//! and is broadcast to nobody (counted as a replay). One subscriber, the
//! probe, reads each broadcast's id, so the report gives publish → receive
//! latency under this load (from the write being sent to the probe reading
//! it; unpaced, so it includes the queueing a saturating load causes: the
//! paced figure is `ws-latency`'s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use crate::http::Client;
use crate::mix::{self, Kind, KindTally, Mix, MixReport, MixRuns, Outcome, Recent, Rng};
use crate::plot::Timeline;
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;
use crate::ws::WsClient;

/// The most broadcast ids the probe keeps in one run (bounded memory; a run
/// at today's rates sees about 10,000).
const PROBE_MAX: usize = 1 << 20;

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
    /// What the publishers write: `plain` messages, or `chat` (70 % messages,
    /// 20 % reactions, 10 % edits of the conversation's recent messages).
    #[arg(long, value_enum, default_value_t = Mix::Plain)]
    mix: Mix,
}

#[derive(Serialize)]
struct Report {
    deliveries_per_s: Spread,
    /// Committed publishes per second (every kind; replays not included).
    publishes_per_s: Spread,
    /// A publish sent → the probe subscriber reading its broadcast, every run merged.
    latency_us: Percentiles,
    /// Publishes committed in the measured time whose broadcast the probe
    /// had not read when the run ended (the last few in flight).
    unmatched: u64,
    /// With `--mix chat`: each kind's rate and publish → receive latency, and the replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    mix: Option<MixReport>,
}

/// What one run measured.
struct RunResult {
    deliveries_per_s: f64,
    publishes_per_s: f64,
    seconds: f64,
    kinds: KindTally,
    unmatched: u64,
}

/// One committed publish of the measured time: its id, when it was sent, its kind.
type Sent = (String, Instant, Kind);

pub fn run(args: WsFanoutArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("ws-fanout")?;
    let (mut deliveries, mut publishes, mut unmatched) = (Vec::new(), Vec::new(), 0);
    let mut hist = new_histogram();
    let mut mix_runs = MixRuns::new(args.mix);
    for run in 0..args.runs {
        let r = rt.block_on(one_run(&args, run))?;
        let mut run_hist = new_histogram();
        for h in &r.kinds.hists {
            run_hist.add(h).map_err(|e| e.to_string())?;
        }
        let mix_line = if args.mix == Mix::Plain { String::new() } else { format!(" {}", MixRuns::line(&r.kinds)) };
        eprintln!(
            "ws-fanout run {}/{}: {:.0} deliveries/s from {:.0} publishes/s{mix_line}, publish → receive p50 {} µs, p99 {} µs",
            run + 1,
            args.runs,
            r.deliveries_per_s,
            r.publishes_per_s,
            run_hist.value_at_quantile(0.5),
            run_hist.value_at_quantile(0.99)
        );
        deliveries.push(r.deliveries_per_s);
        publishes.push(r.publishes_per_s);
        unmatched += r.unmatched;
        hist.add(&run_hist).map_err(|e| e.to_string())?;
        mix_runs.add_run(&r.kinds, r.seconds)?;
    }
    let report = Report {
        deliveries_per_s: Spread::of(&deliveries),
        publishes_per_s: Spread::of(&publishes),
        latency_us: Percentiles::of(&hist),
        unmatched,
        mix: (args.mix != Mix::Plain).then(|| mix_runs.report()),
    };
    crate::plot::latency("publish → a subscriber receives it", &hist);
    emit("ws-fanout", &args, report)?;
    Ok(())
}

async fn one_run(args: &WsFanoutArgs, run: usize) -> Result<RunResult, String> {
    let mut tenant = args.target.tenant("ws-fanout").await?;
    let conversation = tenant.conversation().await?;
    let token = tenant.token(&conversation, "subscriber").await?;
    let api_key = tenant.api_key.clone();
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    // Set when the measured seconds start (before `counting`).
    let timeline: Arc<OnceLock<Timeline>> = Arc::default();
    let topic = format!("conversation:{conversation}");
    // A broadcast of an activity begins with exactly this: no JSON parsing needed to count it.
    let prefix: Arc<[u8]> = format!("[null,null,\"{topic}\",\"activity\",").into_bytes().into();
    // What the probe (the first subscriber) read: broadcast id → when.
    let probe: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut subs = Vec::new();
    for s in 0..args.subscribers {
        let path = format!("/socket/websocket?vsn=2.0.0&token={token}");
        let mut ws = WsClient::connect(args.target.addr(), &path).await?;
        ws.send_text(&json!(["1", "1", topic, "phx_join", {}]).to_string()).await?;
        let (counting, stop, delivered, prefix) = (counting.clone(), stop.clone(), delivered.clone(), prefix.clone());
        let timeline = timeline.clone();
        let probe = (s == 0).then(|| probe.clone());
        subs.push(tokio::spawn(async move {
            let mut local = 0u64;
            let mut seen: Vec<(String, Instant)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let open = ws
                    .read_frames(|frame| {
                        if frame.starts_with(&prefix) {
                            local += 1;
                            if probe.is_some() {
                                // The payload, between the prefix and the closing `]`.
                                let payload = &frame[prefix.len()..frame.len().saturating_sub(1).max(prefix.len())];
                                if let Some(id) = mix::id_of(payload) {
                                    seen.push((id, Instant::now()));
                                }
                            }
                        }
                    })
                    .await?;
                if counting.load(Ordering::Relaxed) && local > 0 {
                    delivered.fetch_add(local, Ordering::Relaxed);
                    if let Some(t) = timeline.get() {
                        t.add(Instant::now(), local);
                    }
                }
                local = 0;
                if let Some(probe) = &probe {
                    let mut map = probe.lock().unwrap_or_else(|e| e.into_inner());
                    let room = PROBE_MAX.saturating_sub(map.len());
                    map.extend(seen.drain(..).take(room));
                    seen.clear();
                }
                if !open {
                    return Err::<(), String>("a subscriber was closed by the server".into());
                }
            }
            Ok(())
        }));
    }
    let path = format!("/api/v1/conversations/{conversation}/activities");
    let body = Arc::new(json!({"sender": "publisher", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let edit_text: Arc<str> = "e".repeat(args.text_bytes).into();
    let recent = Arc::new(Mutex::new(Recent::new()));
    let weights = args.mix.weights();
    let mut pubs = Vec::new();
    for p in 0..args.publishers {
        let (path, body, key, stop, counting, recent, edit_text) = (
            path.clone(),
            body.clone(),
            api_key.clone(),
            stop.clone(),
            counting.clone(),
            recent.clone(),
            edit_text.clone(),
        );
        let addr = args.target.addr();
        let mut rng = Rng::new(((run as u64) << 32) | p as u64);
        pubs.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let (mut sent, mut replays): (Vec<Sent>, u64) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let write =
                    (!weights.is_plain()).then(|| mix::next_write(&weights, &mut rng, &recent, &body, &edit_text));
                let (kind, payload) = write.as_ref().map_or((Kind::Message, &body[..]), |w| (w.kind, &w.body[..]));
                let t0 = Instant::now();
                let r = c.call("POST", &path, &key, Some(payload)).await?;
                match mix::outcome(kind, r.status) {
                    Outcome::Created => {
                        if write.is_some() {
                            mix::remember(kind, &r.body, &recent);
                        }
                        if counting.load(Ordering::Relaxed) {
                            let id = mix::id_of(&r.body).ok_or("a 201 without an id")?;
                            sent.push((id, t0, kind));
                        }
                    }
                    Outcome::Replayed => replays += u64::from(counting.load(Ordering::Relaxed)),
                    Outcome::Refused => {
                        return Err(format!(
                            "publish ({}) answered {}: {}",
                            kind.name(),
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ))
                    }
                }
            }
            Ok::<_, String>((sent, replays))
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    let _ = timeline.set(Timeline::new(start, Duration::from_secs_f64(args.seconds)));
    counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    let mut kinds = KindTally::new();
    for p in pubs {
        let (s, replays) = p.await.map_err(|e| e.to_string())??;
        sent.extend(s);
        kinds.replayed += replays;
    }
    // The probe reads on (it stops at its next read): give the last
    // broadcasts up to a second to arrive before the subscribers go.
    let wait_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < wait_until {
        let seen = probe.lock().unwrap_or_else(|e| e.into_inner()).len();
        if seen >= sent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in subs {
        s.abort();
    }
    let seen = std::mem::take(&mut *probe.lock().unwrap_or_else(|e| e.into_inner()));
    let mut unmatched = 0;
    for (id, t0, kind) in &sent {
        match seen.get(id) {
            Some(at) => kinds.record(*kind, at.saturating_duration_since(*t0).as_micros() as u64),
            None => {
                kinds.count(*kind);
                unmatched += 1;
            }
        }
    }
    if let Some(t) = timeline.get() {
        crate::plot::throughput_run("deliveries per second (all subscribers)", t);
    }
    Ok(RunResult {
        deliveries_per_s: delivered.load(Ordering::Relaxed) as f64 / elapsed,
        publishes_per_s: sent.len() as f64 / elapsed,
        seconds: elapsed,
        kinds,
        unmatched,
    })
}
