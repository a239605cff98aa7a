//! Cluster mode, the bus goes away (three nodes on one PostgreSQL and a NATS
//! server of the test's own): with NATS stopped mid-load the nodes report
//! not-ready while still serving their clients; with NATS back on the same
//! port they are ready again, and a subscriber on B that followed writes on A
//! has everything, gap-free (what NATS never carried is healed from
//! PostgreSQL). Each test passes without running when PostgreSQL or
//! nats-server is missing (see `TestCluster`).
//!
//!
//! PostgreSQL goes away too, on a server of the test's own
//! (`PrivatePostgres`: the shared test database serves every other test):
//! writers get 503 `storage_unavailable` with `Retry-After`, readiness
//! flips, and once it is back nothing acknowledged is missing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use converger_e2e::api::Fixture;
use converger_e2e::cluster::{acked, assert_gap_free, write_while, Acked, TestCluster};
use converger_e2e::http;
use converger_e2e::pg::{PgSchema, PrivatePostgres};
use converger_e2e::phoenix::{self, follow, join, seqs, topic, Progress};
use serde_json::json;

/// Activities the writer must have acknowledged in each phase (before the
/// outage, during it, after it).
const PER_PHASE: usize = 20;
/// Nodes must report the lost bus within this (readiness follows the NATS
/// connection, which notices a dead server within a few seconds).
const NOT_READY_DEADLINE: Duration = Duration::from_secs(10);
/// And be ready again within this once NATS is back (reconnect back-off included).
const READY_AGAIN_DEADLINE: Duration = Duration::from_secs(20);
/// Bound on the whole test's load.
const LOAD_DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn nats_lost_mid_load_makes_nodes_not_ready_and_its_return_heals_a_subscriber_on_another_node() {
    let Some(mut cluster) = TestCluster::start(3) else { return };
    let f = cluster.fixture("outage");
    for i in 0..3 {
        assert_eq!(cluster.ready_status(i), Some(200), "node-{i} is ready at first");
    }
    let http_a = cluster.node(0).http_addr();
    let mut ws = phoenix::socket(cluster.node(1), &f, "reader");
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");

    let progress = Progress::default();
    let (acked, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let deadline = Instant::now() + LOAD_DEADLINE;
    // Waits (bounded) until the writer on A has `n` acknowledged.
    let writer_reaches = |n: usize| {
        while acked.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writer on A has {} of {n}", acked.load(Ordering::SeqCst));
            // The writer runs on its own thread: look again shortly.
            thread::sleep(Duration::from_millis(10));
        }
    };
    let (writes, (got, _)) = thread::scope(|s| {
        let (f, progress, acked, stop) = (&f, &progress, &acked, &stop);
        let writer = s.spawn(move || {
            write_while(http_a, f, "on-a", Duration::from_millis(20), |n| {
                acked.store(n, Ordering::SeqCst);
                !stop.load(Ordering::SeqCst) && Instant::now() < deadline
            })
        });
        let subscriber = s.spawn(move || follow(&mut ws, progress, deadline));

        writer_reaches(PER_PHASE);
        cluster.nats().stop();
        cluster.expect_all_ready(false, NOT_READY_DEADLINE, "NATS stopped");
        // A keeps serving its own clients meanwhile.
        writer_reaches(acked.load(Ordering::SeqCst) + PER_PHASE);

        cluster.nats().start_again();
        cluster.expect_all_ready(true, READY_AGAIN_DEADLINE, "NATS came back");
        writer_reaches(acked.load(Ordering::SeqCst) + PER_PHASE);
        stop.store(true, Ordering::SeqCst);
        let writes = writer.join().expect("writer");
        progress.want(writes.acked.len());
        (writes, subscriber.join().expect("subscriber"))
    });
    assert!(writes.ended_by.is_none(), "the writer on A failed: {:?}\n{}", writes.ended_by, cluster.logs());
    let total = writes.acked.len() as i64;
    let mut acked_seqs: Vec<i64> = writes.acked.iter().map(|(_, seq)| *seq).collect();
    acked_seqs.sort_unstable();
    assert_gap_free(&acked_seqs, 1, total, "the acknowledged seqs (one writer)");
    assert_gap_free(&seqs(&got), 1, total, "the subscriber on B after the outage");
    for ((id, seq), activity) in writes.acked.iter().zip(&got) {
        assert_eq!((activity["id"].as_str(), activity["seq"].as_i64()), (Some(id.as_str()), Some(*seq)));
    }
}

/// What a writer that keeps going through refusals saw.
#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<Acked>,
    /// 503 answers: (code, Retry-After).
    refused: Vec<(String, Option<String>)>,
    /// Anything else (status and body, or an I/O error).
    other: Vec<String>,
}

/// Writes over REST on `node` until `stop`, pausing after a refusal as its
/// Retry-After asks (at most a second here), counting acknowledgements in `count`.
fn write_through(
    node: std::net::SocketAddr,
    f: &Fixture,
    sender: &str,
    count: &AtomicUsize,
    stop: &AtomicBool,
) -> Outcomes {
    let (path, auth) = (f.activities_path(), format!("Bearer {}", f.tenant.api_key));
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut out = Outcomes::default();
    while !stop.load(Ordering::SeqCst) {
        let body = json!({"sender": sender, "text": format!("{sender} {}", out.acked.len())}).to_string();
        match http::request(node, "POST", &path, &headers, body.as_bytes()) {
            Ok(r) if r.status == 201 => {
                out.acked.push(acked(&r.json()));
                count.store(out.acked.len(), Ordering::SeqCst);
            }
            Ok(r) if r.status == 503 => {
                let code = r.json()["error"]["code"].as_str().unwrap_or_default().to_string();
                out.refused.push((code, r.header("retry-after").map(str::to_owned)));
                thread::sleep(Duration::from_millis(100));
            }
            Ok(r) => out.other.push(format!("{} {}", r.status, r.text())),
            Err(e) => out.other.push(e.to_string()),
        }
        thread::sleep(Duration::from_millis(20));
    }
    out
}

#[test]
fn postgres_lost_mid_load_refuses_with_503_and_recovers_with_nothing_acknowledged_lost() {
    let Some(pg) = PrivatePostgres::start() else { return };
    let Some(cluster) = TestCluster::start_on(2, PgSchema::create_in(pg.url())) else { return };
    let f = cluster.fixture("pgoutage");
    let (counts, stop) = ([AtomicUsize::new(0), AtomicUsize::new(0)], AtomicBool::new(false));
    let deadline = Instant::now() + LOAD_DEADLINE;
    let all_reach = |n: usize| {
        for (i, c) in counts.iter().enumerate() {
            while c.load(Ordering::SeqCst) < n {
                assert!(
                    Instant::now() < deadline,
                    "the writer on node-{i} has {} of {n}\n{}",
                    c.load(Ordering::SeqCst),
                    cluster.logs()
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let outcomes: Vec<Outcomes> = thread::scope(|s| {
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let (node, f, count, stop) = (cluster.node(i).http_addr(), &f, &counts[i], &stop);
                s.spawn(move || write_through(node, f, &format!("w{i}"), count, stop))
            })
            .collect();
        all_reach(PER_PHASE);
        pg.down();
        cluster.expect_all_ready(false, NOT_READY_DEADLINE, "PostgreSQL stopped");
        // The writers meet the outage for a while.
        thread::sleep(Duration::from_secs(1));
        let during: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        pg.up();
        cluster.expect_all_ready(true, READY_AGAIN_DEADLINE, "PostgreSQL returned");
        all_reach(during.iter().max().copied().unwrap_or(0) + PER_PHASE);
        stop.store(true, Ordering::SeqCst);
        writers.into_iter().map(|w| w.join().expect("writer")).collect()
    });

    for (i, o) in outcomes.iter().enumerate() {
        assert!(!o.refused.is_empty(), "node-{i}'s writer never met the outage: {o:?}");
        for (code, retry_after) in &o.refused {
            assert_eq!(code, "storage_unavailable", "node-{i}: {o:?}");
            assert!(retry_after.is_some(), "node-{i}: a 503 without Retry-After: {o:?}");
        }
        assert!(o.other.is_empty(), "node-{i}: answers other than 201 and 503: {:?}", o.other);
    }
    let stored = f.all_activities(cluster.node(1));
    let seqs: Vec<i64> = stored.iter().map(|a| a["seq"].as_i64().expect("seq")).collect();
    assert_gap_free(&seqs, 1, seqs.len() as i64, "the conversation after the outage");
    for (id, seq) in outcomes.iter().flat_map(|o| &o.acked) {
        let found = stored.iter().filter(|a| a["id"] == json!(id)).count();
        assert_eq!(found, 1, "acknowledged {id} (seq {seq}) stored {found} times");
        assert_eq!(stored[(*seq - 1) as usize]["id"], json!(id), "acknowledged {id} under another seq");
    }
}
