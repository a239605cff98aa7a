//! Cluster mode under test: [`TestCluster`] starts n real `converger` nodes on
//! one PostgreSQL schema and one NATS server ([`NatsServer`], a `nats-server`
//! child of the test on a free loopback port), each with `--nats-url`,
//! `--node-id node-<i>` and the harness's shared admin token and JWT secret.
//!
//! Every cluster has a NATS server of its own, even though `scripts/test`
//! also starts a shared one (`CONVERGER_TEST_NATS_URL`): the outage tests stop
//! and restart theirs, and a bus of its own keeps one test's traffic out of
//! another's. Starting one takes a few tens of milliseconds.
//!
//! Without `DATABASE_URL` or without a `nats-server` binary the cluster is
//! not started and the test passes without running, with a notice (as
//! [`PgSchema`] does); `CONVERGER_REQUIRE_NATS=1` makes a missing
//! `nats-server` fail the test instead.

use std::env;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use crate::api::Fixture;
use crate::http;
use crate::pg::PgSchema;
use crate::server::{collect, TestServer};
use crate::skip::skip;

/// How long nats-server may take to accept connections.
const NATS_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node may take, after its ready line, to answer 200 on
/// `/health/ready` (it connects to NATS first).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `nats-server` binary: from `PATH`, else Debian's `/usr/sbin/nats-server`
/// (as `scripts/nats-test-server` finds it). `None` when there is none: the
/// caller skips its cluster case, or fails it under `CONVERGER_REQUIRE_NATS=1`.
pub fn nats_server_bin() -> Option<PathBuf> {
    let on_path = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).map(|dir| dir.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(bin) = on_path.into_iter().chain([PathBuf::from("/usr/sbin/nats-server")]).find(|p| is_executable(p)) {
        return Some(bin);
    }
    static BANNER: Once = Once::new();
    let missing = "nats-server is neither on PATH nor at /usr/sbin/nats-server";
    let notice = "nats-server is not installed; skipping this cluster test";
    skip("CONVERGER_REQUIRE_NATS", missing, notice, SKIP_BANNER, &BANNER);
    None
}

/// Printed once per test binary when cluster cases are skipped for lack of NATS.
const SKIP_BANNER: &str = "
################################################################################
# converger-e2e: cluster cases SKIPPED (nats-server is not installed).
# They pass here without having run.
# To run them: scripts/test (installs nats-server when missing), or install
# Debian's nats-server package. CONVERGER_REQUIRE_NATS=1 makes a skip fail.
################################################################################
";

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A `nats-server` child on 127.0.0.1 (NATS core only: no JetStream, no
/// auth). It can be stopped and started again on the same port, as an outage
/// looks to its clients; it is killed on drop.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl NatsServer {
    /// A running server on a free port (nats-server picks it: `-p -1`);
    /// `None` when nats-server is missing (see [`nats_server_bin`]).
    pub fn start() -> Option<NatsServer> {
        let bin = nats_server_bin()?;
        let mut nats = NatsServer { bin, port: 0, child: None, log: Default::default() };
        nats.spawn().unwrap_or_else(|e| panic!("nats-server did not start: {e}"));
        Some(nats)
    }

    /// `nats://127.0.0.1:PORT`, the same across a stop and a start.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `kill -9`: every client loses its connection at once, as when the
    /// server or its machine dies.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new server on the same port (clients reconnect to the URL they
    /// know). The port is retried for a few seconds should it still be held.
    pub fn start_again(&mut self) {
        self.stop();
        let deadline = Instant::now() + NATS_READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("nats-server did not start again: {e}"),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the server logged so far (all its runs).
    pub fn log(&self) -> String {
        self.log.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Starts nats-server on `self.port`, or on a port of its choice when
    /// that is 0 (then kept), and waits for its ready line.
    fn spawn(&mut self) -> Result<(), String> {
        let port = if self.port == 0 { "-1".to_string() } else { self.port.to_string() };
        let mut child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        // The log accumulates over runs: look only at this run's lines.
        let from = self.log().len();
        collect(child.stderr.take().expect("stderr pipe"), self.log.clone());
        let deadline = Instant::now() + NATS_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            let log = self.log();
            let run = log.get(from..).unwrap_or_default();
            if run.contains("Server is ready") {
                let port = listening_port(run).ok_or_else(|| format!("no listening port in its log:\n{run}"))?;
                if TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
                    self.port = port;
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready within {NATS_READY_TIMEOUT:?}:\n{run}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The port of nats-server's `Listening for client connections on 127.0.0.1:PORT` line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .find_map(|l| l.split("Listening for client connections on 127.0.0.1:").nth(1))
        .and_then(|rest| rest.trim().parse().ok())
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// n nodes on one schema and one NATS. Field order matters: the nodes are
/// killed before NATS stops and before the schema is dropped.
pub struct TestCluster {
    nodes: Vec<TestServer>,
    nats: NatsServer,
    schema: Arc<PgSchema>,
}

impl TestCluster {
    /// `n` nodes, `node-0` … `node-{n-1}`, each answering 200 on
    /// `/health/ready` (so connected to NATS); `None` when
    /// `DATABASE_URL` is unset or nats-server is missing (the test then
    /// passes without running, with a notice).
    pub fn start(n: usize) -> Option<TestCluster> {
        TestCluster::start_on(n, PgSchema::create()?)
    }

    /// [`TestCluster::start`] on a given schema (e.g. in a [`crate::pg::PrivatePostgres`]).
    pub fn start_on(n: usize, schema: PgSchema) -> Option<TestCluster> {
        assert!(n >= 1, "a cluster has nodes");
        let schema = Arc::new(schema);
        let nats = NatsServer::start()?;
        // The first node alone applies the migrations to the fresh schema; the
        // others then start together.
        let url = nats.url();
        let mut nodes = vec![start_node(0, &url, &schema)];
        let rest: Vec<TestServer> = thread::scope(|s| {
            let (url, schema) = (&url, &schema);
            let started: Vec<_> = (1..n).map(|i| s.spawn(move || start_node(i, url, schema))).collect();
            started.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        nodes.extend(rest);
        let cluster = TestCluster { nodes, nats, schema };
        // The ready line means ready; a load balancer would check too.
        cluster.expect_all_ready(true, NODE_READY_TIMEOUT, "its start");
        Some(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }

    /// Node `i`, to stop it (`terminate`) or signal it.
    pub fn node_mut(&mut self, i: usize) -> &mut TestServer {
        &mut self.nodes[i]
    }

    pub fn nodes(&self) -> &[TestServer] {
        &self.nodes
    }

    /// `node-<i>`, the node's `--node-id`.
    pub fn node_id(i: usize) -> String {
        format!("node-{i}")
    }

    /// `kill -9` of node `i`: no shutdown path runs, its sockets reset.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Node `i` again (killed first if it runs), with the same node id, on
    /// new ports, once it answers 200 on `/health/ready`.
    pub fn restart_node(&mut self, i: usize) {
        self.nodes[i].restart().unwrap_or_else(|e| panic!("node-{i}: {e}"));
        assert!(
            self.wait_ready(i, true, Instant::now() + NODE_READY_TIMEOUT),
            "node-{i} not ready {NODE_READY_TIMEOUT:?} after its restart\n{}",
            self.logs()
        );
    }

    /// The cluster's NATS server, to stop and start again.
    pub fn nats(&mut self) -> &mut NatsServer {
        &mut self.nats
    }

    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// The schema every node uses.
    pub fn schema(&self) -> &PgSchema {
        &self.schema
    }

    /// A tenant with a channel and a conversation, created through node 0.
    pub fn fixture(&self, name: &str) -> Fixture {
        Fixture::new(self.node(0), name)
    }

    /// `/health/ready`'s status on node `i`, or `None` when it does not answer.
    pub fn ready_status(&self, i: usize) -> Option<u16> {
        http::request(self.node(i).http_addr(), "GET", "/health/ready", &[], b"").ok().map(|r| r.status)
    }

    /// Asserts that every node answers `/health/ready` with 200 (`ready`) or
    /// with anything else (`!ready`) within `within`; `after` names what
    /// started the wait, for the failure message.
    #[track_caller]
    pub fn expect_all_ready(&self, ready: bool, within: Duration, after: &str) {
        let deadline = Instant::now() + within;
        for i in 0..self.nodes.len() {
            if !self.wait_ready(i, ready, deadline) {
                let state = if ready { "not ready" } else { "still ready" };
                let status = self.ready_status(i);
                panic!("node-{i} {state} (/health/ready {status:?}) {within:?} after {after}\n{}", self.logs());
            }
        }
    }

    /// Polls node `i` until `/health/ready` answers 200 (`ready`) or answers
    /// anything else (`!ready`); false if that has not happened by `deadline`.
    pub fn wait_ready(&self, i: usize, ready: bool, deadline: Instant) -> bool {
        loop {
            if let Some(status) = self.ready_status(i) {
                if (status == 200) == ready {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's stderr and NATS's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            all.push_str(&format!("--- node-{i} stderr ---\n{}\n", node.stderr()));
        }
        all.push_str(&format!("--- nats-server ---\n{}", self.nats.log()));
        all
    }
}

fn start_node(i: usize, nats_url: &str, schema: &Arc<PgSchema>) -> TestServer {
    let id = TestCluster::node_id(i);
    TestServer::start_shared(
        &["--nats-url", nats_url, "--node-id", &id, "--log", "info,converger_server::engine::cluster=debug"],
        schema.clone(),
    )
    .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// One acknowledged write: the activity's id and seq as the answer gave them.
pub type Acked = (String, i64);

/// What one writer had acknowledged, and why it stopped early (if it did).
#[derive(Debug, Default)]
pub struct Writes {
    pub acked: Vec<Acked>,
    /// The first answer other than 201, or the I/O error (e.g. its node died).
    pub ended_by: Option<String>,
}

/// Creates activities over REST on the node at `http` as `sender`, one after
/// another and at most one per `pace`, while `go_on(acknowledged so far)`
/// says so; stops at the first failure (a killed node's writer ends there)
/// and says what it was. It takes an address, not the node, so that the test
/// can kill or restart nodes while writers run.
pub fn write_while(
    http: SocketAddr,
    f: &Fixture,
    sender: &str,
    pace: Duration,
    go_on: impl Fn(usize) -> bool,
) -> Writes {
    let path = f.activities_path();
    let auth = format!("Bearer {}", f.tenant.api_key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut writes = Writes::default();
    while go_on(writes.acked.len()) {
        let started = Instant::now();
        let body = serde_json::json!({"sender": sender, "text": format!("{sender} {}", writes.acked.len())});
        match http::request(http, "POST", &path, &headers, body.to_string().as_bytes()) {
            Ok(reply) if reply.status == 201 => writes.acked.push(acked(&reply.json())),
            Ok(reply) => {
                writes.ended_by = Some(format!("{} {}", reply.status, reply.text()));
                break;
            }
            Err(e) => {
                writes.ended_by = Some(e.to_string());
                break;
            }
        }
        // A load, not a flood: the machine running the tests is small.
        thread::sleep(pace.saturating_sub(started.elapsed()));
    }
    writes
}

/// The id and seq of a created (or replayed) activity.
pub fn acked(activity: &serde_json::Value) -> Acked {
    let id = activity["id"].as_str().unwrap_or_else(|| panic!("no id in {activity}")).to_string();
    (id, activity["seq"].as_i64().unwrap_or_else(|| panic!("no seq in {activity}")))
}

/// Asserts that `seqs` are exactly `1..=last`, in order: no gap, no
/// duplicate; the message names the first difference.
#[track_caller]
pub fn assert_gap_free(seqs: &[i64], first: i64, last: i64, what: &str) {
    let want: Vec<i64> = (first..=last).collect();
    if seqs == want.as_slice() {
        return;
    }
    let at = seqs.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(seqs.len().min(want.len()));
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    // The first 20 of each: enough to see the pattern.
    let dups: Vec<i64> = sorted.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).take(20).collect();
    let missing: Vec<i64> = want.iter().copied().filter(|s| sorted.binary_search(s).is_err()).take(20).collect();
    panic!(
        "{what}: expected seqs {first}..={last} in order; got {} seqs, first difference at index {at} \
         (got {:?}, want {:?}); missing {missing:?}; duplicated {dups:?}; around it: {:?}",
        seqs.len(),
        seqs.get(at),
        want.get(at),
        &seqs[at.saturating_sub(3)..(at + 3).min(seqs.len())],
    );
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn the_port_is_read_from_nats_servers_log() {
        let log = "[1] 2026/01/01 00:00:00.000000 [INF] Starting nats-server\n\
                   [1] 2026/01/01 00:00:00.000001 [INF] Listening for client connections on 127.0.0.1:41234\n\
                   [1] 2026/01/01 00:00:00.000002 [INF] Server is ready\n";
        assert_eq!(listening_port(log), Some(41234));
        assert_eq!(listening_port("[INF] Server is ready\n"), None);
    }
}
