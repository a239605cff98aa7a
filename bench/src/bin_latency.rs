//! Scenario `bin-latency`: one binary connection, one publish in flight; the
//! time from sending a Publish to its PublishAck (the activity committed and
//! fsynced). The floor on this machine is one fsync plus one loopback round trip.

use std::time::{Duration, Instant};

use clap::Args;
use converger_protocol::{Frame, Publish};
use serde::Serialize;

use crate::bin_client;
use crate::floor::{self, Floor};
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct BinLatencyArgs {
    #[command(flatten)]
    target: Target,
    /// Seconds measured per run (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Runs; the report merges their latencies.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes of text per activity.
    #[arg(long, default_value_t = 128)]
    text_bytes: usize,
}

#[derive(Serialize)]
struct Report {
    acks_per_s: Spread,
    ack_latency_us: Percentiles,
    /// Measured before the runs ([`crate::floor`]).
    floor: Floor,
    /// The ack latency's p50 and p99 as multiples of the floor.
    p50_over_floor: f64,
    p99_over_floor: f64,
}

pub fn run(args: BinLatencyArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    args.target.single_node("bin-latency")?;
    let binary = args.target.binary()?;
    let floor = floor::measure(&floor::default_dir())?;
    eprintln!("bin-latency: {}", floor.line());
    let mut all = new_histogram();
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let (hist, rate) = rt.block_on(async {
            let mut tenant = args.target.tenant("bin-latency").await?;
            let conversation = tenant.conversation().await?;
            let (mut reader, mut writer, _) = bin_client::connect(binary, &tenant.api_key).await?;
            let conversation = *uuid::Uuid::parse_str(&conversation).map_err(|e| e.to_string())?.as_bytes();
            let draft = bin_client::draft(conversation, "bench", &"x".repeat(args.text_bytes));
            let mut hist = new_histogram();
            let start = Instant::now();
            let (warm, end) = (start + Duration::from_secs(1), start + Duration::from_secs_f64(1.0 + args.seconds));
            let mut measured = 0u64;
            let mut request_id = 0u32;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                request_id = request_id.wrapping_add(1).max(1);
                writer.send(&Publish { request_id, activity: draft.clone() }.into()).await?;
                match reader.frame().await? {
                    Frame::PublishAck(a) if a.request_id == request_id => {}
                    other => return Err(format!("expected the PublishAck of {request_id}, got {other:?}")),
                }
                if now >= warm {
                    let _ = hist.record(now.elapsed().as_micros().max(1) as u64);
                    measured += 1;
                }
            }
            Ok::<_, String>((hist, measured as f64 / args.seconds))
        })?;
        eprintln!(
            "bin-latency run {}/{}: {rate:.0} acks/s, p50 {} µs, p99 {} µs, p99.9 {} µs",
            run + 1,
            args.runs,
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99),
            hist.value_at_quantile(0.999)
        );
        all.add(&hist).map_err(|e| e.to_string())?;
        rates.push(rate);
    }
    crate::plot::latency("Publish → ack (committed), one in flight", &all);
    let ack_latency_us = Percentiles::of(&all);
    let (p50_over_floor, p99_over_floor) = floor.ratios(&ack_latency_us);
    eprintln!("bin-latency: p50 {p50_over_floor:.2}× and p99 {p99_over_floor:.2}× the floor");
    let report = Report { acks_per_s: Spread::of(&rates), ack_latency_us, floor, p50_over_floor, p99_over_floor };
    emit("bin-latency", &args, report)?;
    Ok(())
}
