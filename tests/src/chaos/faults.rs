//! The faults, each one bounded cycle that injects a failure under load and
//! brings the system back, updating [`Endpoints`] as nodes die and return:
//!
//! - `kill9`: `kill -9` of the server, restarted on the same data (directory or schema);
//! - `pg-restart`: the PostgreSQL server stopped (fast shutdown) and started
//!   again (one server on PostgreSQL, or every node of a cluster);
//! - `nats-restart`: the cluster's NATS killed and started again on its port;
//! - `node-kill`: `kill -9` of one cluster node, restarted after a while;
//! - `pause`: the server stopped (SIGSTOP) for longer than a client waits
//!   for an answer, then continued: clients retry on new connections while
//!   their first attempts are still queued, so one key arrives twice at once;
//! - `disk-full`: the embedded data directory's filesystem (a tmpfs) filled
//!   with a ballast file, then freed: writes must be refused with
//!   `storage_full` while it is full and resume after.
//!
//! A fault that cannot bring the system back (a server that will not start)
//! is a [`Violation`](super::checker::Violation), and ends the scenario.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::history::{Outcome, Record};
use super::load::{Ctx, Node};
use crate::cluster::TestCluster;
use crate::http;
use crate::server::TestServer;
use crate::tmpfs::fill;

/// The shortest `pause`: past a client's answer timeout.
const PAUSE_AT_LEAST: Duration = Duration::from_millis(3500);

/// How long the system may take to come back after a fault.
const RECOVERY: Duration = Duration::from_secs(30);

/// What the load runs against.
pub enum Target {
    Single(TestServer),
    Cluster(TestCluster),
}

impl Target {
    pub fn nodes(&self) -> Vec<Node> {
        match self {
            Target::Single(s) => vec![Node::of(s)],
            Target::Cluster(c) => c.nodes().iter().map(Node::of).collect(),
        }
    }

    /// The first server, for set-up through REST.
    pub fn first(&self) -> &TestServer {
        match self {
            Target::Single(s) => s,
            Target::Cluster(c) => c.node(0),
        }
    }

    /// Every server's stderr, for a failure report.
    pub fn logs(&self) -> String {
        match self {
            Target::Single(s) => s.stderr(),
            Target::Cluster(c) => c.logs(),
        }
    }
}

/// Which fault a scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill9,
    PgRestart,
    NatsRestart,
    NodeKill,
    Pause,
    DiskFull,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::PgRestart => "pg-restart",
            Fault::NatsRestart => "nats-restart",
            Fault::NodeKill => "node-kill",
            Fault::Pause => "pause",
            Fault::DiskFull => "disk-full",
        }
    }
}

/// What a fault needs besides the target.
#[derive(Clone, Debug, Default)]
pub struct FaultEnv {
    /// `scripts/pg-test-cluster`'s directory of the PostgreSQL the target uses (pg-restart).
    pub pg_dir: Option<PathBuf>,
    /// The workspace's `scripts/` (pg-test-cluster).
    pub scripts: PathBuf,
    /// The filesystem the embedded data directory is on (disk-full).
    pub disk: Option<PathBuf>,
}

/// A small deterministic pause in `lo..hi`, varied by `cycle` (no RNG dependency).
pub fn jitter(cycle: u32, lo: Duration, hi: Duration) -> Duration {
    let span = hi.saturating_sub(lo).as_millis().max(1) as u64;
    let x = (u64::from(cycle) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    lo + Duration::from_millis(x % span)
}

/// Injects `fault` once (cycle `cycle`) and waits for recovery; `Err`
/// says what did not come back (the caller records it as a [`Violation`]).
pub fn inject(fault: Fault, cycle: u32, target: &mut Target, ctx: &Ctx, env: &FaultEnv) -> Result<(), String> {
    ctx.history.push(Record::Fault { cycle, fault: fault.name().into(), detail: String::new() });
    match (fault, target) {
        (Fault::Kill9, Target::Single(server)) => {
            ctx.endpoints.set(0, None);
            server.kill();
            // A moment with no server: clients see refused connections.
            thread::sleep(jitter(cycle, Duration::from_millis(0), Duration::from_millis(300)));
            server.restart().map_err(|e| format!("no restart after kill -9 in cycle {cycle}: {e}"))?;
            ctx.endpoints.set(0, Some(Node::of(server)));
            Ok(())
        }
        (Fault::PgRestart, target) => {
            let dir = env.pg_dir.as_deref().ok_or_else(|| "pg-restart needs --pg-dir".to_string())?;
            let from = ctx.history.snapshot().len();
            pg_cluster(&env.scripts, "down", dir)?;
            thread::sleep(jitter(cycle, Duration::from_millis(500), Duration::from_millis(2000)));
            pg_cluster(&env.scripts, "up", dir)?;
            let deadline = Instant::now() + RECOVERY;
            if let Some(node) = target.nodes().iter().position(|n| !ready(n.http, deadline)) {
                return Err(format!("node {node} not ready {RECOVERY:?} after PostgreSQL came back (cycle {cycle})"));
            }
            // An outage of the database is the server's to report as such: 503.
            let other: Vec<_> =
                refusal_codes(&ctx.history.snapshot()[from..]).into_iter().filter(|(s, _)| *s != 503).collect();
            if !other.is_empty() {
                return Err(format!("cycle {cycle}: refusals other than 503 while PostgreSQL was down: {other:?}"));
            }
            Ok(())
        }
        (Fault::NatsRestart, Target::Cluster(cluster)) => {
            cluster.nats().stop();
            thread::sleep(jitter(cycle, Duration::from_millis(500), Duration::from_millis(2000)));
            cluster.nats().start_again();
            let deadline = Instant::now() + RECOVERY;
            if let Some(i) = (0..cluster.len()).find(|&i| !cluster.wait_ready(i, true, deadline)) {
                return Err(format!("node-{i} not ready {RECOVERY:?} after NATS came back (cycle {cycle})"));
            }
            Ok(())
        }
        (Fault::NodeKill, Target::Cluster(cluster)) => {
            let i = cycle as usize % cluster.len();
            ctx.endpoints.set(i, None);
            cluster.kill_node(i);
            // The survivors carry the load for a while.
            thread::sleep(jitter(cycle, Duration::from_millis(500), Duration::from_millis(1500)));
            cluster.node_mut(i).restart().map_err(|e| format!("node-{i} did not restart: {e}"))?;
            if !cluster.wait_ready(i, true, Instant::now() + RECOVERY) {
                return Err(format!("node-{i} not ready {RECOVERY:?} after its restart (cycle {cycle})"));
            }
            ctx.endpoints.set(i, Some(Node::of(cluster.node(i))));
            Ok(())
        }
        (Fault::Pause, Target::Single(server)) => {
            server.signal("STOP");
            thread::sleep(jitter(cycle, PAUSE_AT_LEAST, PAUSE_AT_LEAST + Duration::from_secs(2)));
            server.signal("CONT");
            if !ready(server.http_addr(), Instant::now() + RECOVERY) {
                return Err(format!("not ready {RECOVERY:?} after SIGCONT (cycle {cycle})"));
            }
            Ok(())
        }
        (Fault::DiskFull, Target::Single(server)) => {
            let disk = env.disk.as_deref().ok_or_else(|| "disk-full needs its tmpfs".to_string())?;
            disk_full(cycle, disk, server, ctx)
        }
        (fault, _) => Err(format!("{} does not apply to this backend", fault.name())),
    }
}

/// `GET /health/ready` answers 200 before `deadline`.
fn ready(addr: std::net::SocketAddr, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if http::request(addr, "GET", "/health/ready", &[], b"").is_ok_and(|r| r.status == 200) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn pg_cluster(scripts: &Path, command: &str, dir: &Path) -> Result<(), String> {
    let out = Command::new(scripts.join("pg-test-cluster"))
        .arg(command)
        .arg(dir)
        .output()
        .map_err(|e| format!("run pg-test-cluster {command}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("pg-test-cluster {command}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// How long the disk stays full under load.
const FULL_FOR: Duration = Duration::from_secs(2);

/// Fills the disk, checks that writes are refused with `storage_full`,
/// frees it, checks that writes resume.
fn disk_full(cycle: u32, disk: &Path, server: &TestServer, ctx: &Ctx) -> Result<(), String> {
    let ballast = disk.join("ballast");
    let filled = fill(&ballast);
    let full_from = ctx.history.snapshot().len();
    thread::sleep(FULL_FOR);
    let during = ctx.history.snapshot().split_off(full_from);
    let _ = std::fs::remove_file(&ballast);
    let freed_at = ctx.history.snapshot().len();
    let filled = filled.map_err(|e| format!("could not fill {}: {e}", disk.display()))?;
    let refusals = refusal_codes(&during);
    let is_full = |(s, c): &(u16, String)| *s == 503 && c == "storage_full";
    let mut problems = Vec::new();
    if !refusals.iter().any(is_full) {
        problems.push(format!(
            "cycle {cycle}: with the disk full ({filled} bytes of ballast) no write was refused 503 storage_full; \
             refusals seen: {refusals:?}; unknown outcomes: {}",
            during.iter().filter(|r| matches!(r, Record::Publish { outcome: Outcome::Unknown { .. }, .. })).count()
        ));
    } else if refusals.iter().any(|r| !is_full(r)) {
        problems.push(format!("cycle {cycle}: with the disk full, refusals other than 503 storage_full: {refusals:?}"));
    }
    // Writes resume once space returns.
    let deadline = Instant::now() + RECOVERY;
    let resumed = loop {
        let acked = ctx.history.snapshot()[freed_at..]
            .iter()
            .any(|r| matches!(r, Record::Publish { outcome: Outcome::Acked { .. }, .. }));
        if acked {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(50));
    };
    if !resumed {
        let alive = ready(server.http_addr(), Instant::now() + Duration::from_secs(1));
        problems.push(format!(
            "cycle {cycle}: no write acknowledged {RECOVERY:?} after the disk was freed (server ready: {alive})"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// (status, code) of every refused attempt among `records`.
fn refusal_codes(records: &[Record]) -> Vec<(u16, String)> {
    let mut codes: Vec<(u16, String)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Publish { outcome: Outcome::Refused { status, code }, .. } => Some((*status, code.clone())),
            _ => None,
        })
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_its_range_and_varies() {
        let (lo, hi) = (Duration::from_millis(200), Duration::from_millis(1200));
        let all: Vec<Duration> = (0..50).map(|c| jitter(c, lo, hi)).collect();
        assert!(all.iter().all(|d| (lo..hi).contains(d)), "{all:?}");
        assert!(all.windows(2).any(|w| w[0] != w[1]), "{all:?}");
        assert_eq!(jitter(3, Duration::ZERO, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn refusals_are_listed_once_each() {
        let refused = |status, code: &str| Record::Publish {
            client: "c".into(),
            transport: crate::chaos::history::Transport::Rest,
            conversation: "x".into(),
            key: "k".into(),
            attempt: 1,
            outcome: Outcome::Refused { status, code: code.into() },
        };
        let records = [refused(503, "storage_full"), refused(503, "storage_full"), refused(500, "internal")];
        assert_eq!(refusal_codes(&records), vec![(500, "internal".into()), (503, "storage_full".into())]);
    }
}
