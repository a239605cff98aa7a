//! Scenario `mesh`: the cross-shard rings on their own, between two threads each
//! running a monoio runtime as shards do.
//!
//! - round trip: shard 0 sends a message to shard 1, which sends it back; the
//!   time from send to return, one message in flight;
//! - throughput: shard 0 streams messages to shard 1 as fast as the ring takes
//!   them (a full ring makes the sender yield and retry), measured at the receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use converger_server::engine::mesh::{self, Inbox, MeshMsg, Outbox};
use converger_storage::{new_id, Activity, Json, Timestamp};
use serde::Serialize;

use crate::report::{emit, new_histogram, Percentiles, Spread};

#[derive(Args, Debug, Serialize)]
pub struct MeshArgs {
    /// Round trips per run (one in flight).
    #[arg(long, default_value_t = 100_000)]
    round_trips: u64,
    /// Messages per throughput run.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Runs; the report gives medians and spreads.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// I/O driver of the two runtimes: io-uring or epoll.
    #[arg(long, default_value = "io-uring")]
    driver: String,
}

#[derive(Serialize)]
struct Report {
    round_trip_us: Percentiles,
    round_trips_per_s: Spread,
    messages_per_s: Spread,
}

pub fn run(args: MeshArgs) -> Result<(), String> {
    let mut hist = new_histogram();
    let mut rtt_rates = Vec::new();
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let (h, elapsed) = round_trips(&args)?;
        hist.add(&h).map_err(|e| e.to_string())?;
        rtt_rates.push(args.round_trips as f64 / elapsed.as_secs_f64());
        let elapsed = stream(&args)?;
        rates.push(args.messages as f64 / elapsed.as_secs_f64());
        eprintln!(
            "mesh run {}/{}: round trip p50 {} µs, {:.0} round trips/s, {:.0} messages/s",
            run + 1,
            args.runs,
            h.value_at_quantile(0.5),
            rtt_rates[run],
            rates[run]
        );
    }
    let report = Report {
        round_trip_us: Percentiles::of(&hist),
        round_trips_per_s: Spread::of(&rtt_rates),
        messages_per_s: Spread::of(&rates),
    };
    emit("mesh", &args, report)?;
    Ok(())
}

/// A small message: one shared activity, as a committed batch would carry.
fn message(payload: &Arc<[Activity]>) -> MeshMsg {
    MeshMsg::Committed(payload.clone())
}

fn payload() -> Arc<[Activity]> {
    let id = new_id();
    Arc::from(vec![Activity {
        id,
        tenant_id: id,
        conversation_id: id,
        seq: 1,
        kind: "message".into(),
        text: Some("x".repeat(128)),
        attachments: None,
        sender: "bench".into(),
        metadata: Json::empty_object(),
        idempotency_key: None,
        created_at: Timestamp::now(),
        target_id: None,
        parent_id: None,
        state: Some(Default::default()),
    }])
}

/// Sends `msg` to `to`, yielding to the runtime while the ring is full.
async fn send(outbox: &Outbox, to: usize, mut msg: MeshMsg) {
    loop {
        match outbox.send(to, msg) {
            Ok(()) => return,
            Err(back) => {
                msg = back;
                yield_now().await;
            }
        }
    }
}

/// Lets the runtime run other work (and the receiver drain) before retrying.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

fn on_shard<T: Send + 'static>(
    driver: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>> {
    let uring = driver != "epoll";
    std::thread::spawn(move || {
        if uring {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .build()
                .map_err(|e| format!("io_uring runtime: {e}"))?;
            Ok(rt.block_on(f()))
        } else {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .build()
                .map_err(|e| format!("epoll runtime: {e}"))?;
            Ok(rt.block_on(f()))
        }
    })
}

fn two_shards() -> Result<(Outbox, Inbox, Outbox, Inbox), String> {
    let mut ends = mesh::build(2);
    let one = ends.pop().ok_or("no shard 1")?;
    let zero = ends.pop().ok_or("no shard 0")?;
    Ok((zero.outbox, zero.inbox, one.outbox, one.inbox))
}

fn round_trips(args: &MeshArgs) -> Result<(hdrhistogram::Histogram<u64>, Duration), String> {
    let (out0, mut in0, out1, mut in1) = two_shards()?;
    let n = args.round_trips;
    let echo = on_shard(&args.driver, move || {
        Box::pin(async move {
            let mut got = Vec::new();
            let mut seen = 0;
            while seen < n {
                in1.recv_all(&mut got).await;
                for msg in got.drain(..) {
                    send(&out1, 0, msg).await;
                    seen += 1;
                }
            }
        })
    });
    let ping = on_shard(&args.driver, move || {
        Box::pin(async move {
            let payload = payload();
            let mut hist = new_histogram();
            let mut got = Vec::new();
            let start = Instant::now();
            for _ in 0..n {
                let t0 = Instant::now();
                send(&out0, 1, message(&payload)).await;
                in0.recv_all(&mut got).await;
                got.clear();
                let _ = hist.record(t0.elapsed().as_micros() as u64);
            }
            (hist, start.elapsed())
        })
    });
    let result = ping.join().map_err(|_| "ping thread panicked")??;
    echo.join().map_err(|_| "echo thread panicked")??;
    Ok(result)
}

fn stream(args: &MeshArgs) -> Result<Duration, String> {
    let (out0, _in0, _out1, mut in1) = two_shards()?;
    let n = args.messages;
    let receiver = on_shard(&args.driver, move || {
        Box::pin(async move {
            let mut got = Vec::new();
            let mut seen = 0;
            let mut start = None;
            while seen < n {
                in1.recv_all(&mut got).await;
                start.get_or_insert_with(Instant::now);
                seen += got.len() as u64;
                got.clear();
            }
            start.map(|s| s.elapsed()).unwrap_or_default()
        })
    });
    let sender = on_shard(&args.driver, move || {
        Box::pin(async move {
            let payload = payload();
            for _ in 0..n {
                send(&out0, 1, message(&payload)).await;
            }
        })
    });
    sender.join().map_err(|_| "sender panicked")??;
    receiver.join().map_err(|_| "receiver panicked")?
}
