//! Scenario `soak`: a mixed load at a moderate paced rate for a bounded time
//! (a minute by default; 30 minutes for the documented run), sampling the
//! server every interval — resident memory and open descriptors from
//! `/proc/<pid>`, publish queue depth, delivery lag and connections from
//! `/metrics`, and the window's publish → receive latency, operations and
//! errors — and failing (exit 1, the reasons on stderr and in the JSON)
//! when memory, descriptors or the publish queue grow without bound or the
//! load fails. The load is in [`load`], the sampling in [`sample`], the rules
//! in [`verdict`]. The server must run on this machine: its pid comes from
//! `--server-pid` or `CONVERGER_SERVER_PID` (scripts/bench-server and
//! scripts/soak-smoke export it).

mod load;
mod sample;
mod verdict;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::pacer;
use crate::report::{emit, Percentiles};
use crate::target::Target;
use load::{Conversation, Setup, Tally, KINDS, SLOTS};
use sample::{Probe, Sample};
use verdict::{Fds, Growth};

#[derive(Args, Debug, Serialize)]
// A later flag wins over an earlier one, so scripts can pass defaults and let their callers override them.
#[command(after_long_help = VERDICT_HELP, args_override_self = true)]
pub struct SoakArgs {
    #[command(flatten)]
    target: Target,
    /// The server's process id, to read its memory and descriptors.
    #[arg(long, env = "CONVERGER_SERVER_PID")]
    server_pid: u32,
    /// How long the load runs, warm-up included (`90`, `90s`, `3m`, `1h`).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    duration: f64,
    /// Total operations per second, paced: 30 % REST creates, 20 % Phoenix
    /// pushes, 30 % binary publishes, 20 % page reads (churn apart).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds between samples (default: 1 s for runs up to a minute, else 5 s).
    #[arg(long, value_parser = parse_duration)]
    sample_interval: Option<f64>,
    /// Samples before this are shown but not judged (default: a sixth of the
    /// run, between 5 s and 2 min).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<f64>,
    /// The writers that run, comma-separated (to find which part of the load
    /// a growth comes from); the others' share of the rate goes to them.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rest-create,phoenix-publish,binary-publish,read")]
    ops: Vec<load::Op>,
    /// Conversations the load is spread over (one Phoenix subscriber each).
    #[arg(long, default_value_t = 8)]
    conversations: usize,
    /// Short-lived connections opened, used once and closed per churn cycle
    /// (Phoenix joins, binary subscribes, REST reads in turn).
    #[arg(long, default_value_t = 6)]
    churn: usize,
    /// The churn's connections, taken in turn, comma-separated (one kind
    /// alone finds which one a growth comes from).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "phoenix,binary,rest")]
    churn_kinds: Vec<load::Churn>,
    /// Seconds between churn cycles.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    churn_every: f64,
}

const VERDICT_HELP: &str = "\
The verdict (over the samples after the warm-up; exit 1 with the reasons on failure):
  memory grows without bound when the least-squares slope of RSS projected over the
    judged span exceeds max(10 % of the baseline, 16 MiB), AND the last third's 10th
    percentile is above the middle third's 90th (a climb, not noise), AND the last
    third still climbs (its slope at least a quarter of the whole): a step that
    levels off passes;
  descriptors leak when the count after the load stopped and settled exceeds the
    first third's minimum by more than max(24, 5 %);
  subscriptions leak when converger_subscriptions once the load settled exceeds
    the fewest seen after the warm-up by more than 2;
  the publish queue keeps growing when the last third's 10th percentile is above
    the middle third's 90th and at least 100;
  the load failed when errors, or deliveries missing at the long-lived subscribers,
    exceed max(3, 0.1 % of the operations).";

/// `90`, `90s`, `1.5m`, `3m`, `1h` → seconds.
fn parse_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = n.trim().parse().map_err(|_| format!("`{s}`: a number with s, m or h"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}`: the unit is ms, s, m or h")),
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("`{s}`: must be above zero"));
    }
    Ok(n * scale)
}

impl SoakArgs {
    fn interval(&self) -> f64 {
        self.sample_interval.unwrap_or(if self.duration <= 60.0 { 1.0 } else { 5.0 })
    }

    fn warmup(&self) -> f64 {
        self.warmup.unwrap_or((self.duration / 6.0).clamp(5.0, 120.0))
    }

    /// Enough judged samples for the thirds, and sane counts.
    fn check(&self) -> Result<(), String> {
        let judged = ((self.duration - self.warmup()) / self.interval()).floor() as usize;
        if judged < verdict::MIN_SAMPLES {
            return Err(format!(
                "--duration {}s with --warmup {}s and --sample-interval {}s leaves {judged} samples to judge; at least {} are needed",
                self.duration,
                self.warmup(),
                self.interval(),
                verdict::MIN_SAMPLES
            ));
        }
        if self.conversations == 0 || self.rate == 0 || self.ops.is_empty() || self.churn_kinds.is_empty() {
            return Err("--conversations, --rate, --ops and --churn-kinds must not be zero or empty".into());
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Report {
    duration_s: f64,
    warmup_s: f64,
    sample_interval_s: f64,
    passed: bool,
    /// Why it failed (empty when it passed).
    failures: Vec<String>,
    rss_kib: Option<Growth>,
    fds: Option<Fds>,
    /// Live subscriptions once the load settled, and the fewest seen after
    /// the warm-up (the long-lived subscribers' own).
    subscriptions_settled: Option<f64>,
    subscriptions_min: Option<f64>,
    publish_queue_growing: bool,
    /// Operations done by kind, over the whole run.
    ops: BTreeMap<&'static str, u64>,
    errors: u64,
    first_error: Option<String>,
    /// Activities the long-lived subscribers should have received (two each)
    /// and did receive.
    deliveries_expected: u64,
    deliveries_received: u64,
    /// Scheduled publish → received after the warm-up.
    latency_us: Option<Percentiles>,
    /// The server before the load: its RSS and descriptors.
    server_before_load: (u64, u64),
    samples: Vec<Sample>,
}

pub fn run(args: SoakArgs) -> Result<(), String> {
    args.check()?;
    let rt = args.target.runtime()?;
    args.target.single_node("soak")?;
    let report = rt.block_on(soak(&args))?;
    draw(&args, &report);
    let failures = report.failures.clone();
    emit("soak", &args, report)?;
    if failures.is_empty() {
        eprintln!("soak: passed");
        Ok(())
    } else {
        Err(format!("soak failed: {}", failures.join("; ")))
    }
}

async fn soak(args: &SoakArgs) -> Result<Report, String> {
    let mut tenant = args.target.tenant("soak").await?;
    // Tokens outlive the run (the server's default is an hour).
    let ttl = (args.duration as u64 + 600).min(86_400);
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        let id = tenant.conversation().await?;
        let uuid = *uuid::Uuid::parse_str(&id).map_err(|e| e.to_string())?.as_bytes();
        let sub_token = tenant.token_for(&id, "soak-sub", Some(ttl)).await?;
        let pub_token = tenant.token_for(&id, "soak-pub", Some(ttl)).await?;
        conversations.push(Conversation { id, uuid, sub_token, pub_token });
    }
    let setup = Arc::new(Setup {
        http: args.target.addr(),
        binary: args.target.binary()?,
        api_key: tenant.api_key.clone(),
        conversations,
    });
    let mut probe = Probe::new(args.server_pid, args.target.addr());
    let before = (crate::process::rss_kib(args.server_pid)?, probe.fds()?);
    let epoch = Instant::now();
    let tally = Arc::new(Tally::new(epoch));
    let subscribers = load::subscribers(setup.clone(), tally.clone()).await?;
    let (interval, warmup) = (args.interval(), args.warmup());
    eprintln!(
        "soak: {} s at {} ops/s over {} conversations, churn {} every {} s; sampling every {interval} s, judged after {warmup} s",
        args.duration, args.rate, args.conversations, args.churn, args.churn_every
    );
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let slots: Vec<load::Op> = SLOTS.into_iter().filter(|op| args.ops.contains(op)).collect();
    let (pace, ticks) = pacer::start(args.rate, slots.len(), epoch, start, Duration::from_secs_f64(args.duration));
    let writers: Vec<_> = ticks
        .into_iter()
        .zip(slots)
        .enumerate()
        .map(|(i, (t, op))| tokio::spawn(load::writer(op, setup.clone(), tally.clone(), t, i as u64)))
        .collect();
    let churn = tokio::spawn(load::churn(
        setup.clone(),
        tally.clone(),
        Duration::from_secs_f64(args.churn_every),
        args.churn,
        args.churn_kinds.clone(),
        end,
    ));
    let warm_end = start + Duration::from_secs_f64(warmup);
    tally.measure_from_us.store(warm_end.duration_since(epoch).as_micros() as u64, Ordering::Relaxed);
    let mut samples = Vec::new();
    let mut lost = None;
    for k in 1.. {
        let at = start + Duration::from_secs_f64(k as f64 * interval);
        if at > end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        match probe.sample(k as f64 * interval, at <= warm_end, &tally).await {
            Ok(s) => {
                eprintln!("{}", progress(&s));
                samples.push(s);
            }
            // The server went away (killed, out of memory): report what was seen.
            Err(e) => {
                lost = Some(e);
                break;
            }
        }
    }
    pace.stop();
    // The writers finish the ticks they hold; a stalled one is cut off.
    let mut held = Vec::new();
    let drained = tokio::time::timeout(load::OP_TIMEOUT * 2, async {
        for w in writers {
            held.extend(w.await.ok());
        }
        let _ = churn.await;
    })
    .await;
    if drained.is_err() {
        eprintln!("soak: the load did not drain in {} s", (load::OP_TIMEOUT * 2).as_secs());
    }
    let settled = match &lost {
        None => settle(&probe, &tally).await.map_err(|e| lost.insert(e).clone()).ok(),
        Some(_) => None,
    };
    // The churn's subscriptions are gone once it closed its connections.
    let settled_subscriptions = match (&lost, settled) {
        (None, Some(_)) => probe.scrape().await.ok().and_then(|m| m.subscriptions),
        _ => None,
    };
    drop(held);
    for s in subscribers {
        s.abort();
    }
    let mut report = judge(args, &tally, samples, (settled, settled_subscriptions), before, drained.is_ok());
    if let Some(e) = lost {
        report.failures.insert(0, format!("the server could no longer be read: {e}"));
        report.passed = false;
    }
    Ok(report)
}

/// Waits (up to 10 s) for the deliveries to arrive and the descriptor count
/// to stop changing for a second: the churn's last connections closed.
async fn settle(probe: &Probe, tally: &Tally) -> Result<u64, String> {
    let until = Instant::now() + Duration::from_secs(10);
    let (mut last, mut steady) = ((probe.fds()?, tally.received.load(Ordering::Relaxed)), 0);
    while Instant::now() < until && steady < 4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = (probe.fds()?, tally.received.load(Ordering::Relaxed));
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
    }
    Ok(last.0)
}

fn judge(
    args: &SoakArgs,
    tally: &Tally,
    samples: Vec<Sample>,
    (settled, settled_subscriptions): (Option<u64>, Option<f64>),
    before: (u64, u64),
    drained: bool,
) -> Report {
    let judged: Vec<&Sample> = samples.iter().filter(|s| !s.warm_up).collect();
    let points = |f: fn(&Sample) -> f64| judged.iter().map(|s| (s.t_s, f(s))).collect::<Vec<_>>();
    let rss = verdict::growth(&points(|s| s.rss_kib as f64), verdict::RSS_FLOOR_KIB, verdict::RSS_FRACTION);
    // Without a settled count (the server went away) the descriptors are not judged.
    let fds = settled.and_then(|settled| verdict::fds(&judged.iter().map(|s| s.fds).collect::<Vec<_>>(), settled));
    let subscriptions_min = judged.iter().filter_map(|s| s.subscriptions).reduce(f64::min);
    let subscriptions_leaked = match (settled_subscriptions, subscriptions_min) {
        (Some(end), Some(min)) => end > min + verdict::SUBSCRIPTIONS_MARGIN,
        _ => false,
    };
    let queue = points(|s| s.publish_queue_depth.unwrap_or(0.0));
    let publish_queue_growing = verdict::queue_grows(&queue);
    let ops: BTreeMap<&'static str, u64> =
        KINDS.iter().zip(&tally.ops).map(|(k, n)| (*k, n.load(Ordering::Relaxed))).collect();
    let (total_ops, errors) = (tally.ops_total(), tally.errors.load(Ordering::Relaxed));
    let published = ops["rest_create"] + ops["phoenix_publish"] + ops["binary_publish"];
    // Every write reaches its conversation's Phoenix subscriber and the binary one.
    let expected = 2 * published;
    let received = tally.received.load(Ordering::Relaxed);
    let mut failures = Vec::new();
    if let Some(g) = rss.as_ref().filter(|g| g.unbounded) {
        failures.push(format!(
            "server memory grows without bound: {:.1} MiB a minute, {:.1} MiB over the judged samples (threshold {:.1} MiB), still climbing at the end",
            g.slope_per_min / 1024.0,
            g.projected / 1024.0,
            g.threshold / 1024.0
        ));
    }
    if let Some(f) = fds.as_ref().filter(|f| f.leaked) {
        failures.push(format!(
            "descriptors leak: {} open once the load settled against {} after the warm-up (margin {})",
            f.settled, f.baseline, f.margin
        ));
    }
    if subscriptions_leaked {
        failures.push(format!(
            "subscriptions leak: {} live once the load settled against at most {} during the run (margin {})",
            settled_subscriptions.unwrap_or(0.0),
            subscriptions_min.unwrap_or(0.0),
            verdict::SUBSCRIPTIONS_MARGIN
        ));
    }
    if publish_queue_growing {
        failures.push(format!("the publish queue keeps growing (last sample {})", queue.last().map_or(0.0, |p| p.1)));
    }
    if verdict::beyond_tolerance(errors, total_ops) {
        let first = tally.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
        failures.push(format!("{errors} load errors in {total_ops} operations (first: {first})"));
    }
    let missing = expected.saturating_sub(received);
    if verdict::beyond_tolerance(missing, expected) {
        failures.push(format!("{missing} of {expected} deliveries to the long-lived subscribers missing"));
    }
    if !drained {
        failures.push("the load did not finish its last operations in time".into());
    }
    let total = tally.total.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Report {
        duration_s: args.duration,
        warmup_s: args.warmup(),
        sample_interval_s: args.interval(),
        passed: failures.is_empty(),
        failures,
        rss_kib: rss,
        fds,
        subscriptions_settled: settled_subscriptions,
        subscriptions_min,
        publish_queue_growing,
        ops,
        errors,
        first_error: tally.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        deliveries_expected: expected,
        deliveries_received: received,
        latency_us: (!total.is_empty()).then(|| Percentiles::of(&total)),
        server_before_load: before,
        samples,
    }
}

fn progress(s: &Sample) -> String {
    let ms = |us: Option<u64>| us.map_or("-".into(), |u| format!("{:.1}", u as f64 / 1000.0));
    let conns: f64 = s.connections.values().sum();
    format!(
        "soak {:>6.0} s{}: RSS {:.1} MiB, {} fds, {conns} connections, queue {}, {} ops, {} errors, {} received, p50 {} ms, p99 {} ms",
        s.t_s,
        if s.warm_up { " (warm-up)" } else { "" },
        s.rss_kib as f64 / 1024.0,
        s.fds,
        s.publish_queue_depth.map_or("-".into(), |q| q.to_string()),
        s.ops,
        s.errors,
        s.received,
        ms(s.latency_p50_us),
        ms(s.latency_p99_us),
    )
}

/// The time-series panels of `--plot`.
fn draw(args: &SoakArgs, r: &Report) {
    let line = |label: &str, f: &dyn Fn(&Sample) -> Option<f64>| {
        (label.to_string(), r.samples.iter().filter_map(|s| Some((s.t_s, f(s)?))).collect::<Vec<_>>())
    };
    crate::plot::mark(args.warmup(), "warm-up ends");
    crate::plot::series("Server resident memory (MiB)", vec![line("RSS", &|s| Some(s.rss_kib as f64 / 1024.0))]);
    crate::plot::series(
        "Server descriptors and connections",
        vec![line("open fds", &|s| Some(s.fds as f64)), line("connections", &|s| Some(s.connections.values().sum()))],
    );
    crate::plot::series(
        "Publish → receive latency per sample window (ms)",
        vec![
            line("p50", &|s| s.latency_p50_us.map(|u| u as f64 / 1000.0)),
            line("p99", &|s| s.latency_p99_us.map(|u| u as f64 / 1000.0)),
        ],
    );
    crate::plot::series(
        "Publish queue depth and load errors per window",
        vec![line("queue depth", &|s| s.publish_queue_depth), line("errors", &|s| Some(s.errors as f64))],
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SoakArgs,
    }

    fn parse(argv: &[&str]) -> SoakArgs {
        let mut all = vec!["bench", "--admin-token", "t", "--server-pid", "1"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("parses").args
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90"), Ok(90.0));
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("3m"), Ok(180.0));
        assert_eq!(parse_duration("1h"), Ok(3600.0));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert!(parse_duration("3d").is_err() && parse_duration("-1s").is_err() && parse_duration("m").is_err());
    }

    #[test]
    fn a_minute_samples_every_second_and_a_long_run_every_five() {
        let smoke = parse(&[]);
        assert_eq!((smoke.duration, smoke.interval(), smoke.warmup()), (60.0, 1.0, 10.0));
        assert!(smoke.check().is_ok());
        let long = parse(&["--duration", "30m"]);
        assert_eq!((long.interval(), long.warmup()), (5.0, 120.0));
        let short = parse(&["--duration", "20s", "--sample-interval", "5s"]);
        assert!(short.check().unwrap_err().contains("at least 6"));
    }
}
