//! Cluster mode, the bus goes away (three nodes on one PostgreSQL and a NATS
//! server of the test's own): with NATS stopped mid-load the nodes report
//! not-ready while still serving their clients; with NATS back on the same
//! port they are ready again, and a subscriber on B that followed writes on A
//! has everything, gap-free (what NATS never carried is healed from
//! PostgreSQL). Each test passes without running when PostgreSQL or
//! nats-server is missing (see `TestCluster`).
//!
//! Not here: PostgreSQL restarted mid-load. The test database is one cluster
//! shared by every test of the run (`scripts/test`), so restarting it would
//! break the tests running beside this one; it needs a PostgreSQL of the
//! test's own, as `NatsServer` is for NATS.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use converger_e2e::cluster::{assert_gap_free, write_while, TestCluster};
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
        let lost = Instant::now() + NOT_READY_DEADLINE;
        for i in 0..3 {
            assert!(
                cluster.wait_ready(i, false, lost),
                "node-{i} still reports ready {NOT_READY_DEADLINE:?} after NATS stopped\n{}",
                cluster.logs()
            );
        }
        // A keeps serving its own clients meanwhile.
        writer_reaches(acked.load(Ordering::SeqCst) + PER_PHASE);

        cluster.nats().start_again();
        let back = Instant::now() + READY_AGAIN_DEADLINE;
        for i in 0..3 {
            assert!(
                cluster.wait_ready(i, true, back),
                "node-{i} not ready {READY_AGAIN_DEADLINE:?} after NATS came back\n{}",
                cluster.logs()
            );
        }
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
