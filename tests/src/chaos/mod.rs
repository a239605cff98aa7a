//! Chaos with a history checker: a mixed load (REST, Phoenix and binary
//! publishers with idempotency keys; Phoenix and binary subscribers that
//! resume) runs against the real server while faults are injected in
//! bounded cycles ([`faults`]); every publish attempt and every activity a
//! subscriber received is recorded ([`history`]); once the load has stopped
//! the store is read back through REST and [`checker`] proves the
//! guarantees of SPEC.md on what was recorded.
//!
//! A [`Scenario`] is one backend and one fault; [`run`] runs it and returns
//! its [`Outcome`] (the checker's report and the summary line).

pub mod checker;
mod conn;
pub mod faults;
pub mod history;
pub mod load;
mod subscribers;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use checker::{Report, Store, Stored, Violation};
use faults::{Fault, FaultEnv, Target};
use history::{History, Transport};
use load::{Ctx, Endpoints, Workload};
use subscribers::Seen;

use crate::cluster::TestCluster;
use crate::http;
use crate::pg::PgSchema;
use crate::server::TestServer;
use crate::tmpfs::Tmpfs;

/// Where the server keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres,
    /// Several nodes on one PostgreSQL schema and one NATS.
    Cluster,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgres => "postgres",
            Backend::Cluster => "cluster",
        }
    }
}

/// How many clients of each kind.
#[derive(Clone, Debug)]
pub struct LoadShape {
    pub rest: usize,
    pub phoenix: usize,
    pub binary: usize,
    /// Phoenix subscribers (each follows every conversation, one socket each).
    pub phoenix_subscribers: usize,
    pub binary_subscribers: usize,
    pub conversations: usize,
    /// Pause between two publishes of one client.
    pub pace: Duration,
}

impl Default for LoadShape {
    fn default() -> Self {
        LoadShape {
            rest: 2,
            phoenix: 2,
            binary: 2,
            phoenix_subscribers: 1,
            binary_subscribers: 1,
            conversations: 3,
            pace: Duration::from_millis(5),
        }
    }
}

/// One backend, one fault, a number of cycles.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub backend: Backend,
    pub fault: Fault,
    pub cycles: u32,
    /// No new cycle starts past this.
    pub time_cap: Duration,
    pub load: LoadShape,
    /// Cluster size.
    pub nodes: usize,
}

impl Scenario {
    pub fn name(&self) -> String {
        format!("{}-{}", self.backend.name(), self.fault.name())
    }
}

/// What the run needs from outside: PostgreSQL, and where to record.
pub struct RunEnv {
    /// `DATABASE_URL` of the PostgreSQL the postgres and cluster scenarios use.
    pub database_url: Option<String>,
    pub fault: FaultEnv,
    /// JSON-lines copy of the history, if any.
    pub history_file: Option<PathBuf>,
}

/// A scenario's result.
pub struct Outcome {
    pub report: Report,
    /// Cycles actually run (fewer when the time cap or a failed recovery stopped them).
    pub cycles: u32,
    pub duration: Duration,
    pub summary: String,
}

/// Load settles for this long before the first fault and after the last.
const SETTLE: Duration = Duration::from_millis(800);
/// How long subscribers may take to catch up once the load has stopped.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Runs `scenario`; an `Err` when it could not even start (no PostgreSQL, no root).
pub fn run(scenario: &Scenario, env: &RunEnv) -> Result<Outcome, String> {
    let started = Instant::now();
    let name = scenario.name();
    // Declared before the target, so it is unmounted after the server is gone.
    let disk = match scenario.fault {
        Fault::DiskFull => Some(Tmpfs::mount(64).map_err(|e| format!("mount -t tmpfs (root is needed): {e}"))?),
        _ => None,
    };
    let mut target = start_target(scenario, env, disk.as_ref())?;
    let fault_env = FaultEnv { disk: disk.as_ref().map(|d| d.path().to_path_buf()), ..env.fault.clone() };
    let history = match &env.history_file {
        Some(path) => History::with_file(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => History::in_memory(),
    };
    let shape = &scenario.load;
    let phx_names: Vec<String> = (0..shape.phoenix)
        .map(|i| format!("phx-{i}"))
        .chain((0..shape.phoenix_subscribers).map(|i| format!("phx-sub-{i}")))
        .collect();
    let work = Arc::new(Workload::create(target.first(), shape.conversations, &phx_names));
    let endpoints = Arc::new(Endpoints::new(target.nodes()));
    let run_id = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ctx = |stop: &Arc<AtomicBool>| Ctx {
        endpoints: endpoints.clone(),
        history: history.clone(),
        work: work.clone(),
        run: run_id.clone(),
        stop: stop.clone(),
        pace: shape.pace,
    };
    let (stop_pub, stop_sub) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (pub_ctx, sub_ctx) = (ctx(&stop_pub), ctx(&stop_sub));
    let seen = Seen::default();
    let subs = spawn_subscribers(shape, &sub_ctx, &seen, target.nodes().len());
    let pubs = spawn_publishers(shape, &pub_ctx, target.nodes().len());

    thread::sleep(SETTLE);
    let (cycles, extra) = run_cycles(scenario, &mut target, &pub_ctx, &fault_env, started);
    thread::sleep(SETTLE);
    stop_pub.store(true, Ordering::SeqCst);
    for p in pubs {
        let _ = p.join();
    }

    let store = read_store(&endpoints, &work);
    if let Ok((store, _)) = &store {
        let last: HashMap<String, u64> =
            store.iter().map(|(c, acts)| (c.clone(), acts.last().map_or(0, |a| a.seq))).collect();
        let deadline = Instant::now() + CATCH_UP;
        while !seen.caught_up(&last) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
    stop_sub.store(true, Ordering::SeqCst);
    for s in subs {
        let _ = s.join();
    }
    history.flush();

    let records = history.snapshot();
    let mut report = match &store {
        Ok((store, last_seqs)) => {
            let mut report = checker::check(&records, store);
            report.violations.extend(checker::check_last_seqs(store, last_seqs));
            report
        }
        // Nothing to check against: the server did not come back.
        Err(e) => {
            eprintln!("chaos: {name}: could not read the store back: {e}\n{}", tail(&target.logs(), 40));
            let detail = format!("the store could not be read back after the load: {e}");
            Report { violations: vec![Violation::Fault { fault: "read-back".into(), detail }], ..Report::default() }
        }
    };
    report.violations.extend(extra);
    if let Ok((store, _)) = &store {
        if let Err(detail) = checker::self_check(&records, store) {
            report.violations.push(Violation::CheckerBlind { detail });
        }
    }
    for v in &report.violations {
        eprintln!("chaos: {name}: VIOLATION {v}");
    }
    let duration = started.elapsed();
    let summary = summary_line(scenario, cycles, &report, duration);
    drop(target);
    drop(disk);
    Ok(Outcome { report, cycles, duration, summary })
}

/// Phoenix subscribers (a socket per conversation) and binary ones. They
/// prefer the last nodes and publishers the first: in a cluster most
/// deliveries cross nodes.
fn spawn_subscribers(shape: &LoadShape, ctx: &Ctx, seen: &Seen, nodes: usize) -> Vec<thread::JoinHandle<()>> {
    let mut subs = Vec::new();
    for s in 0..shape.phoenix_subscribers {
        for conv in 0..shape.conversations {
            let prefer = nodes - 1 - (s % nodes);
            subs.push(subscribers::spawn_phoenix(ctx.clone(), seen.clone(), format!("phx-sub-{s}"), conv, prefer));
        }
    }
    for s in 0..shape.binary_subscribers {
        let prefer = nodes - 1 - ((s + 1) % nodes);
        subs.push(subscribers::spawn_binary(ctx.clone(), seen.clone(), format!("bin-sub-{s}"), prefer));
    }
    subs
}

fn spawn_publishers(shape: &LoadShape, ctx: &Ctx, nodes: usize) -> Vec<thread::JoinHandle<()>> {
    let mut pubs = Vec::new();
    for (transport, count, prefix) in [
        (Transport::Rest, shape.rest, "rest"),
        (Transport::Phoenix, shape.phoenix, "phx"),
        (Transport::Binary, shape.binary, "bin"),
    ] {
        for i in 0..count {
            pubs.push(load::spawn_publisher(ctx.clone(), transport, format!("{prefix}-{i}"), i % nodes));
        }
    }
    pubs
}

/// The fault cycles, bounded by count and by the scenario's time cap; the
/// cycles run and the faults that did not recover. One that did not
/// recover ends the cycles (the system is down), except a disk-full check.
fn run_cycles(
    scenario: &Scenario,
    target: &mut Target,
    ctx: &Ctx,
    env: &FaultEnv,
    started: Instant,
) -> (u32, Vec<Violation>) {
    let mut failed = Vec::new();
    let mut cycles = 0;
    while cycles < scenario.cycles && started.elapsed() < scenario.time_cap {
        cycles += 1;
        // Every fourth fault comes right after the last recovery: a server
        // killed again while its clients reconnect and resume.
        let load_for = if cycles % 4 == 0 {
            faults::jitter(cycles, Duration::ZERO, Duration::from_millis(50))
        } else {
            faults::jitter(cycles, Duration::from_millis(200), Duration::from_millis(1200))
        };
        thread::sleep(load_for);
        if let Err(detail) = faults::inject(scenario.fault, cycles, target, ctx, env) {
            let v = Violation::Fault { fault: scenario.fault.name().to_string(), detail };
            eprintln!("chaos: {}: {v}\n--- server stderr (tail) ---\n{}", scenario.name(), tail(&target.logs(), 40));
            failed.push(v);
            if scenario.fault != Fault::DiskFull {
                break;
            }
        }
    }
    (cycles, failed)
}

fn summary_line(scenario: &Scenario, cycles: u32, report: &Report, duration: Duration) -> String {
    format!(
        "chaos: backend={} fault={} cycles={cycles} acknowledged={} unknown={} refused={} retries={} replayed={} stored={} \
         observed={} resumes={} violations={} duration={:.1}s refusals=[{}]",
        scenario.backend.name(),
        scenario.fault.name(),
        report.acknowledged,
        report.unknown,
        report.refused,
        report.retries,
        report.replayed,
        report.stored,
        report.observed,
        report.resumes,
        report.violations.len(),
        duration.as_secs_f64(),
        report.refusals.iter().map(|(code, n)| format!("{code}: {n}")).collect::<Vec<_>>().join(", "),
    )
}

fn start_target(scenario: &Scenario, env: &RunEnv, disk: Option<&Tmpfs>) -> Result<Target, String> {
    let url = || env.database_url.clone().ok_or_else(|| format!("{} needs DATABASE_URL", scenario.name()));
    Ok(match scenario.backend {
        Backend::Embedded => match disk {
            Some(d) => {
                // The data directory is on the tmpfs, beside the ballast; the unmount removes it.
                let data = d.path().join("data");
                std::fs::create_dir_all(&data).map_err(|e| format!("mkdir {}: {e}", data.display()))?;
                Target::Single(TestServer::embedded_in(&data, &[]).map_err(|e| e.to_string())?)
            }
            None => Target::Single(TestServer::start(&[], None).map_err(|e| e.to_string())?),
        },
        Backend::Postgres => {
            let schema = PgSchema::create_in(&url()?);
            Target::Single(TestServer::start(&[], Some(schema)).map_err(|e| e.to_string())?)
        }
        Backend::Cluster => {
            let schema = PgSchema::create_in(&url()?);
            Target::Cluster(TestCluster::start_on(scenario.nodes, schema).ok_or("the cluster needs nats-server")?)
        }
    })
}

/// Every conversation of the workload read back through REST, page by page,
/// from any live node (retried for a while: the last fault may still be healing).
fn read_store(endpoints: &Endpoints, work: &Workload) -> Result<(Store, LastSeqs), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_read_store(endpoints, work) {
            Ok(store) => return Ok(store),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// conversation → the `last_seq` its activity list reports.
type LastSeqs = BTreeMap<String, u64>;

fn try_read_store(endpoints: &Endpoints, work: &Workload) -> Result<(Store, LastSeqs), String> {
    let node = endpoints.pick(0).ok_or("no live node")?;
    let auth = format!("Bearer {}", work.api_key);
    let (mut store, mut last_seqs) = (Store::new(), LastSeqs::new());
    for conv in &work.conversations {
        let mut all: Vec<Stored> = Vec::new();
        loop {
            let after = all.last().map_or(0, |a| a.seq);
            let path = format!("/api/v1/conversations/{conv}/activities?after_seq={after}&limit=1000");
            let reply = http::request(node.http, "GET", &path, &[("authorization", &auth)], b"")
                .map_err(|e| format!("GET {path}: {e}"))?;
            if reply.status != 200 {
                return Err(format!("GET {path}: {} {}", reply.status, reply.text()));
            }
            let page: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
            let data = page["data"].as_array().ok_or("no data array")?;
            if data.is_empty() {
                last_seqs.insert(conv.clone(), page["last_seq"].as_u64().ok_or("no last_seq")?);
                break;
            }
            for a in data {
                all.push(Stored {
                    seq: a["seq"].as_u64().ok_or("activity without seq")?,
                    id: a["id"].as_str().ok_or("activity without id")?.to_string(),
                    text: a["text"].as_str().map(str::to_owned),
                    idempotency_key: a["idempotency_key"].as_str().map(str::to_owned),
                });
            }
            // A page that does not move forward would loop for ever: the gap check reports it.
            if all.last().map_or(0, |a| a.seq) <= after {
                break;
            }
        }
        store.insert(conv.clone(), all);
    }
    Ok((store, last_seqs))
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
