//! Scenario `rest-ingest`: acknowledged activity creates per second over REST,
//! from many keep-alive connections, each with one request in flight. An
//! acknowledgement (201) means the activity is committed (fsynced).
//!
//! Setup goes through the admin API (a fresh tenant, a `websocket` channel and
//! `--conversations` conversations), so it needs the server's admin token.
//! Against several nodes (`--addr a,b,c`) the connections go round-robin over
//! them, each node writing its own conversations, or with `--contended` every
//! node writing all of them (see `placement`); the report gives each node's share.
//!
//! `--mix chat` sends reactions and edits of recent messages among the
//! messages (see `mix`); the report then gives each kind's rate and latency,
//! and the reactions answered 200 (already there) apart from the acks.
//!
//! Against one node whose pid is known (`CONVERGER_SERVER_PID`, set by
//! scripts/bench-server) the report gives CPU per ack over the measured
//! seconds: the server's, this load generator's, and with `--db-pid` the
//! database's (PostgreSQL's postmaster and backends).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;

use crate::cpu::CpuMeter;
use crate::http::Client;
use crate::mix::{self, Kind, KindTally, Mix, MixReport, MixRuns, Outcome, Recent, Rng};
use crate::placement::{self, NodeLoad, NodeTally};
use crate::plot::Timeline;
use crate::report::{emit, new_histogram, Percentiles, Spread};
use crate::target::Target;

#[derive(Args, Debug, Serialize)]
pub struct RestIngestArgs {
    #[command(flatten)]
    target: Target,
    /// Keep-alive connections, one request in flight each (round-robin over the nodes).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Conversations the writes are spread over.
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Every node writes every conversation (instead of each node its own share).
    #[arg(long)]
    contended: bool,
    /// Seconds per run (after a one-second warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs; the report gives the median and the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Bytes of text per activity.
    #[arg(long, default_value_t = 128)]
    text_bytes: usize,
    /// What is written: `plain` messages, or `chat` (70 % messages, 20 %
    /// reactions, 10 % edits of the conversation's recent messages).
    #[arg(long, value_enum, default_value_t = Mix::Plain)]
    mix: Mix,
    /// The server's process id, for its CPU per ack (one node only).
    #[arg(long, env = "CONVERGER_SERVER_PID")]
    server_pid: Option<u32>,
    /// The database server's main process id (PostgreSQL's postmaster), for
    /// its backends' CPU per ack.
    #[arg(long, env = "CONVERGER_BENCH_DB_PID")]
    db_pid: Option<u32>,
}

#[derive(Serialize)]
struct Report {
    acks_per_s: Spread,
    latency_us: Percentiles,
    /// Each node's share: connections, conversations, acks/s, latency, refusals.
    nodes: Vec<NodeLoad>,
    /// With `--mix chat`: each kind's rate and latency, and the replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    mix: Option<MixReport>,
    /// CPU µs per ack over the measured seconds (median of the runs), when
    /// the server's pid is known and there is one node.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_us_per_ack: Option<CpuPerAck>,
}

#[derive(Serialize)]
struct CpuPerAck {
    server: f64,
    load_generator: f64,
    /// With `--db-pid`.
    database: Option<f64>,
}

/// CPU seconds over one run's measured time: server, load generator, database.
type CpuSpan = (f64, f64, f64);

/// What one connection did in one run.
struct Done {
    node: usize,
    acks: u64,
    hist: Histogram<u64>,
    failed: u64,
    first_failure: Option<String>,
    kinds: KindTally,
}

pub fn run(args: RestIngestArgs) -> Result<(), String> {
    let rt = args.target.runtime()?;
    let nodes = args.target.nodes().len();
    placement::check(nodes, args.conversations, args.contended)?;
    let mut tallies: Vec<NodeTally> = (0..nodes).map(|_| NodeTally::new()).collect();
    let mut rates = Vec::new();
    let mut hist = new_histogram();
    let mut mix_runs = MixRuns::new(args.mix);
    let meter = (nodes == 1).then(|| CpuMeter::new(args.server_pid, args.db_pid)).filter(|m| m.measures_server());
    let measures_db = meter.as_ref().is_some_and(|m| m.measures_database());
    let mut cpu_runs: Vec<[f64; 3]> = Vec::new();
    for run in 0..args.runs {
        let hook_before = crate::hook::stats();
        let (done, cpu, timeline) = rt.block_on(one_run(&args, run, meter.as_ref()))?;
        crate::plot::throughput_run("acknowledged activities per second", &timeline);
        let mut run_hist = new_histogram();
        let mut per_node = vec![(0u64, new_histogram()); nodes];
        let mut kinds = KindTally::new();
        for d in done {
            per_node[d.node].0 += d.acks;
            per_node[d.node].1.add(&d.hist).map_err(|e| e.to_string())?;
            tallies[d.node].add_failures(d.failed, d.first_failure);
            kinds.add(&d.kinds)?;
        }
        mix_runs.add_run(&kinds, args.seconds)?;
        let mix_line = if args.mix == Mix::Plain { String::new() } else { format!(" {}", MixRuns::line(&kinds)) };
        let mut acks = 0;
        for (node, (n, h)) in per_node.iter().enumerate() {
            tallies[node].add_run(*n, args.seconds, h)?;
            run_hist.add(h).map_err(|e| e.to_string())?;
            acks += n;
        }
        let rate = acks as f64 / args.seconds;
        let cpu_line = match cpu {
            Some((server, bench, db)) if acks > 0 => {
                let per = |secs: f64| secs * 1e6 / acks as f64;
                cpu_runs.push([per(server), per(bench), per(db)]);
                let db = if measures_db { format!(", database {:.1}", per(db)) } else { String::new() };
                format!(" (CPU µs per ack: server {:.1}, load generator {:.1}{db})", per(server), per(bench))
            }
            _ => String::new(),
        };
        let split = if nodes > 1 {
            let each: Vec<String> = per_node.iter().map(|(n, _)| format!("{:.0}", *n as f64 / args.seconds)).collect();
            format!(" [per node {}]", each.join(" / "))
        } else {
            String::new()
        };
        eprintln!(
            "rest-ingest run {}/{}: {rate:.0} acks/s ({acks} in {:.1}s){split}{mix_line}, p50 {} µs, p99 {} µs{cpu_line}{}",
            run + 1,
            args.runs,
            args.seconds,
            run_hist.value_at_quantile(0.5),
            run_hist.value_at_quantile(0.99),
            crate::hook::run_suffix(hook_before),
        );
        rates.push(rate);
        hist.add(&run_hist).map_err(|e| e.to_string())?;
    }
    let loads = tallies
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let convs = placement::conversations_of(n, nodes, args.conversations, args.contended).len();
            t.finish(n, args.target.nodes()[n], placement::connections_on(n, nodes, args.connections), convs)
        })
        .collect();
    let mix = (args.mix != Mix::Plain).then(|| mix_runs.report());
    let median =
        |i: usize| (Spread::of(&cpu_runs.iter().map(|r| r[i]).collect::<Vec<_>>()).median * 10.0).round() / 10.0;
    let cpu_us_per_ack = (!cpu_runs.is_empty()).then(|| CpuPerAck {
        server: median(0),
        load_generator: median(1),
        database: measures_db.then(|| median(2)),
    });
    let report = Report {
        acks_per_s: Spread::of(&rates),
        latency_us: Percentiles::of(&hist),
        nodes: loads,
        mix,
        cpu_us_per_ack,
    };
    crate::plot::latency("POST → 201 (committed)", &hist);
    emit("rest-ingest", &args, report)?;
    placement::failures(&tallies)
}

async fn one_run(
    args: &RestIngestArgs,
    run: usize,
    meter: Option<&CpuMeter>,
) -> Result<(Vec<Done>, Option<CpuSpan>, Arc<Timeline>), String> {
    let nodes = args.target.nodes().to_vec();
    let mut tenant = args.target.tenant("rest-ingest").await?;
    let mut conversations = Vec::new();
    for _ in 0..args.conversations {
        conversations.push(tenant.conversation().await?);
    }
    let api_key = tenant.api_key.clone();
    // Each node's paths, in the order its connections cycle through them,
    // with the index of their conversation (its ring of recent messages).
    let paths: Vec<Arc<Vec<(usize, String)>>> = (0..nodes.len())
        .map(|n| {
            let own = placement::conversations_of(n, nodes.len(), conversations.len(), args.contended);
            Arc::new(
                own.iter().map(|&j| (j, format!("/api/v1/conversations/{}/activities", conversations[j]))).collect(),
            )
        })
        .collect();
    let recent: Arc<Vec<Mutex<Recent>>> = Arc::new(conversations.iter().map(|_| Mutex::new(Recent::new())).collect());
    let weights = args.mix.weights();
    let body = Arc::new(json!({"sender": "bench", "text": "x".repeat(args.text_bytes)}).to_string().into_bytes());
    let edit_text: Arc<str> = "e".repeat(args.text_bytes).into();
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + Duration::from_secs_f64(args.seconds);
    let timeline = Arc::new(Timeline::new(warm_up, end - warm_up));
    let tls = args.target.tls()?;
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let node = placement::node_of(c, nodes.len());
        let timeline = timeline.clone();
        let (paths, body, key, addr, tls, recent, edit_text) = (
            paths[node].clone(),
            body.clone(),
            api_key.clone(),
            nodes[node],
            tls.clone(),
            recent.clone(),
            edit_text.clone(),
        );
        let mut i = placement::start_of(c, nodes.len(), args.contended);
        let mut rng = Rng::new(((run as u64) << 32) | c as u64);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect_with(addr, tls.as_ref()).await?;
            let mut done =
                Done { node, acks: 0, hist: new_histogram(), failed: 0, first_failure: None, kinds: KindTally::new() };
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let (conversation, path) = &paths[i % paths.len()];
                i += 1;
                // Plain messages send the one body built above and read no answer.
                let write = (!weights.is_plain())
                    .then(|| mix::next_write(&weights, &mut rng, &recent[*conversation], &body, &edit_text));
                let (kind, sent) = write.as_ref().map_or((Kind::Message, &body[..]), |w| (w.kind, &w.body[..]));
                let reply = client.call("POST", path, &key, Some(sent)).await?;
                let outcome = mix::outcome(kind, reply.status);
                if write.is_some() && outcome == Outcome::Created {
                    mix::remember(kind, &reply.body, &recent[*conversation]);
                }
                if t0 < warm_up {
                    continue;
                }
                if outcome == Outcome::Created {
                    timeline.record(Instant::now());
                    let micros = t0.elapsed().as_micros() as u64;
                    done.acks += 1;
                    let _ = done.hist.record(micros);
                    done.kinds.record(kind, micros);
                } else if outcome == Outcome::Replayed {
                    done.kinds.replayed += 1;
                } else {
                    // Counted and reported (a contended cluster may refuse
                    // writes it could not sequence); the run goes on to its end.
                    done.failed += 1;
                    done.first_failure.get_or_insert_with(|| {
                        format!("node {addr}: status {}: {}", reply.status, String::from_utf8_lossy(&reply.body))
                    });
                }
            }
            Ok::<_, String>(done)
        }));
    }
    // CPU over the measured seconds only (the connections stop at `end`).
    let cpu = match meter {
        Some(meter) => {
            let me = CpuMeter::new(Some(std::process::id()), None);
            tokio::time::sleep_until(warm_up.into()).await;
            let (s0, b0) = (meter.now(), me.now());
            tokio::time::sleep_until(end.into()).await;
            let (s1, b1) = (meter.now(), me.now());
            Some((s1.server - s0.server, b1.server - b0.server, s1.database - s0.database))
        }
        None => None,
    };
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok((done, cpu, timeline))
}
