//! `converger-chaos`: the chaos scenarios with the history checker (see the
//! `converger_e2e::chaos` module). Each scenario prints one summary line;
//! the exit status is 1 when any scenario found a violation, 2 when one
//! could not run. `scripts/chaos` builds and runs it with a PostgreSQL and
//! the tools it needs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use converger_e2e::chaos::faults::{Fault, FaultEnv};
use converger_e2e::chaos::{run, Backend, LoadShape, RunEnv, Scenario};

/// Chaos with a history checker: a mixed load (REST, Phoenix and binary
/// publishers with idempotency keys; Phoenix and binary subscribers that
/// resume) against the real server while faults are injected; then the
/// store is read back and the recorded history checked: every acknowledged
/// activity stored once under its acknowledged seq, every conversation's seq
/// gap-free, every subscriber saw a gap-free, duplicate-free prefix in
/// order, no retried key stored twice.
///
/// Scenarios: embedded-kill9, postgres-kill9, embedded-pause, postgres-pause,
/// postgres-pg-restart,
/// cluster-pg-restart, cluster-nats-restart, cluster-node-kill,
/// embedded-disk-full. The postgres and cluster ones need DATABASE_URL
/// (pg-restart also --pg-dir); the cluster ones need nats-server;
/// disk-full mounts a tmpfs (root).
#[derive(Parser, Debug)]
#[command(name = "converger-chaos")]
struct Args {
    /// A few cycles per scenario (the CI run), instead of the long run
    /// (20 kill -9 cycles per backend, 10 of each other fault, 5 disk-full;
    /// clusters of 3 nodes).
    #[arg(long)]
    short: bool,
    /// Run only this scenario (repeatable); default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Cycles per scenario, overriding --short and the long run's counts.
    #[arg(long)]
    cycles: Option<u32>,
    /// No new cycle of a scenario starts after this many seconds.
    #[arg(long, value_name = "SECS")]
    time_cap: Option<u64>,
    /// Also append the history, one JSON object a line, to this file.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// The `scripts/pg-test-cluster` directory of DATABASE_URL's server, which
    /// the pg-restart scenarios stop and start.
    #[arg(long, value_name = "DIR", env = "CHAOS_PG_DIR")]
    pg_dir: Option<PathBuf>,
    /// Nodes of the cluster scenarios (default: 2 with --short, else 3).
    #[arg(long)]
    nodes: Option<usize>,
    /// Publishers per transport (REST, Phoenix, binary).
    #[arg(long, default_value_t = 2)]
    publishers: usize,
    /// Conversations the load writes to.
    #[arg(long, default_value_t = 3)]
    conversations: usize,
}

const ALL: [(Backend, Fault); 9] = [
    (Backend::Embedded, Fault::Kill9),
    (Backend::Postgres, Fault::Kill9),
    (Backend::Embedded, Fault::Pause),
    (Backend::Postgres, Fault::Pause),
    (Backend::Postgres, Fault::PgRestart),
    (Backend::Cluster, Fault::PgRestart),
    (Backend::Cluster, Fault::NatsRestart),
    (Backend::Cluster, Fault::NodeKill),
    (Backend::Embedded, Fault::DiskFull),
];

fn cycles(fault: Fault, short: bool) -> u32 {
    match (fault, short) {
        (Fault::Kill9, true) => 3,
        (Fault::DiskFull, true) => 1,
        (_, true) => 2,
        (Fault::Kill9, false) => 20,
        (Fault::DiskFull, false) => 5,
        (_, false) => 10,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The server under test sits next to this binary (same cargo profile).
    if std::env::var_os("CONVERGER_BIN").is_none() {
        if let Some(bin) = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("converger"))) {
            if bin.is_file() {
                std::env::set_var("CONVERGER_BIN", bin);
            }
        }
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = RunEnv {
        database_url: std::env::var("DATABASE_URL").ok(),
        fault: FaultEnv { pg_dir: args.pg_dir.clone(), scripts: workspace.join("scripts"), ..FaultEnv::default() },
        history_file: args.history.clone(),
    };
    let cap = Duration::from_secs(args.time_cap.unwrap_or(if args.short { 40 } else { 900 }));
    let mut chosen = Vec::new();
    for (backend, fault) in ALL {
        let scenario = Scenario {
            backend,
            fault,
            cycles: args.cycles.unwrap_or_else(|| cycles(fault, args.short)),
            time_cap: cap,
            load: LoadShape {
                rest: args.publishers,
                phoenix: args.publishers,
                binary: args.publishers,
                conversations: args.conversations.max(1),
                ..LoadShape::default()
            },
            nodes: args.nodes.unwrap_or(if args.short { 2 } else { 3 }).max(1),
        };
        if args.scenarios.is_empty() || args.scenarios.contains(&scenario.name()) {
            chosen.push(scenario);
        }
    }
    let known: Vec<String> = ALL.iter().map(|(b, f)| format!("{}-{}", b.name(), f.name())).collect();
    if let Some(unknown) = args.scenarios.iter().find(|s| !known.contains(s)) {
        eprintln!("converger-chaos: unknown scenario {unknown}; known: {}", known.join(", "));
        return ExitCode::from(2);
    }
    let (mut violations, mut failed, mut summaries) = (0, 0usize, Vec::new());
    for scenario in &chosen {
        eprintln!("chaos: running {} ({} cycles)", scenario.name(), scenario.cycles);
        match run(scenario, &env) {
            Ok(outcome) => {
                println!("{}", outcome.summary);
                violations += outcome.report.violations.len();
                summaries.push(outcome.summary);
            }
            Err(e) => {
                eprintln!("chaos: {} could not run: {e}", scenario.name());
                failed += 1;
            }
        }
    }
    println!("chaos: scenarios={} failed_to_run={failed} violations={violations}", summaries.len());
    if violations > 0 {
        ExitCode::from(1)
    } else if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
