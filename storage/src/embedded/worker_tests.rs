//! The writer's merging of queued activity batches: batches queued next to
//! each other run as one `write_batch`, yet each is answered with its own
//! items; a merged run that fails as a whole takes down only its own batches,
//! whether it opened the transaction (no savepoint) or followed another job
//! (in a savepoint). And the checkpoint pace: rarer while commits are large.

use std::path::Path;
use std::sync::mpsc;

use futures_channel::oneshot;
use rusqlite::Connection;

use super::tests::activity;
use super::worker::{self, BatchJob, Write, CHECKPOINT_PAGES, CHECKPOINT_PAGES_LARGE, LARGE_FOR};
use super::{rows::sql_err, schema, EmbeddedOptions, EmbeddedStore, DB_FILE};
use crate::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

type BatchAnswer = oneshot::Receiver<StoreResult<Vec<StoreResult<Written>>>>;

/// A tenant and a conversation, written through the store, which is then closed.
fn conversation(dir: &Path) -> Conversation {
    let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("open");
    block_on(super::full_tests::conversation(&store))
}

fn batch(c: &Conversation, n: usize, broken: bool) -> (Write, BatchAnswer) {
    let mut items: Vec<_> = (0..n).map(|_| activity(c.tenant_id, c.id, None)).collect();
    if broken {
        // A delivery to a channel that does not exist breaks a foreign key:
        // the whole `write_batch` call fails.
        items[0].deliver_to = vec![new_id()];
    }
    let (reply, answer) = oneshot::channel();
    (Write::Batch(BatchJob { items, reply }), answer)
}

/// A job that sets the conversation's metadata, to see whether it was kept.
fn mark(c: &Conversation, value: &'static str) -> (Write, oneshot::Receiver<StoreResult<()>>) {
    let id = c.id;
    let (job, answer) = worker::boxed_job(move |conn: &Connection| {
        conn.execute("UPDATE conversations SET metadata = ? WHERE id = ?", rusqlite::params![value, id])
            .map(drop)
            .map_err(sql_err)
    });
    (Write::Job(job), answer)
}

/// Runs the writer over `writes`, all queued before it starts (so one group).
fn run_writer(dir: &Path, writes: Vec<Write>) {
    let (tx, rx) = mpsc::channel();
    for w in writes {
        tx.send(w).expect("queued");
    }
    drop(tx);
    let conn = schema::open_connection(&dir.join(DB_FILE), false).expect("connection");
    worker::writer_loop(conn, rx, dir.to_path_buf());
}

fn seqs(answer: BatchAnswer) -> Vec<i64> {
    let items = block_on(answer).expect("answered").expect("batch written");
    items.into_iter().map(|i| i.expect("item written").activity().seq).collect()
}

fn stored(dir: &Path, c: &Conversation) -> (i64, String) {
    let conn = schema::open_connection(&dir.join(DB_FILE), true).expect("connection");
    conn.query_row(
        "SELECT (SELECT count(*) FROM activities WHERE conversation_id = ?1), metadata FROM conversations WHERE id = ?1",
        [c.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("row")
}

#[test]
fn queued_batches_run_together_and_each_is_answered_with_its_own_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = conversation(dir.path());
    let (a, a_answer) = batch(&c, 2, false);
    let (b, b_answer) = batch(&c, 3, false);
    run_writer(dir.path(), vec![a, b]);
    assert_eq!(seqs(a_answer), vec![1, 2]);
    assert_eq!(seqs(b_answer), vec![3, 4, 5]);
    assert_eq!(stored(dir.path(), &c).0, 5);
}

#[test]
fn a_failed_run_opening_the_transaction_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = conversation(dir.path());
    let (good, good_answer) = batch(&c, 2, false);
    let (broken, broken_answer) = batch(&c, 2, true);
    let (job, job_answer) = mark(&c, r#"{"after":true}"#);
    let (later, later_answer) = batch(&c, 1, false);
    run_writer(dir.path(), vec![good, broken, job, later]);
    // Merged with the broken batch, the good one shares its fate: nothing of either is stored.
    assert!(block_on(good_answer).expect("answered").is_err());
    assert!(block_on(broken_answer).expect("answered").is_err());
    block_on(job_answer).expect("answered").expect("the job after the run is stored");
    assert_eq!(seqs(later_answer), vec![1], "seqs go on from what is stored");
    assert_eq!(stored(dir.path(), &c), (1, r#"{"after":true}"#.to_string()));
}

#[test]
fn a_failed_run_after_another_job_rolls_back_to_its_savepoint_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = conversation(dir.path());
    let (job, job_answer) = mark(&c, r#"{"before":true}"#);
    let (broken, broken_answer) = batch(&c, 2, true);
    let (other, other_answer) = mark(&c, r#"{"before":true,"after":true}"#);
    let (later, later_answer) = batch(&c, 2, false);
    run_writer(dir.path(), vec![job, broken, other, later]);
    block_on(job_answer).expect("answered").expect("the job before the run is stored");
    assert!(block_on(broken_answer).expect("answered").is_err());
    block_on(other_answer).expect("answered").expect("the job after the run is stored");
    assert_eq!(seqs(later_answer), vec![1, 2]);
    assert_eq!(stored(dir.path(), &c), (2, r#"{"before":true,"after":true}"#.to_string()));
}

#[test]
fn checkpoints_are_rarer_while_commits_are_large_and_back_to_usual_a_while_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = schema::open_connection(&dir.path().join(DB_FILE), false).expect("connection");
    let pages = || conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get::<_, i64>(0)).expect("pragma");
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES).expect("set");
    let t0 = std::time::Instant::now();
    assert_eq!(worker::checkpoint_pace(&conn, None, false, t0), None);
    assert_eq!(pages(), CHECKPOINT_PAGES);
    let since = worker::checkpoint_pace(&conn, None, true, t0);
    assert_eq!((since, pages()), (Some(t0), CHECKPOINT_PAGES_LARGE));
    let soon = t0 + LARGE_FOR / 2;
    assert_eq!(worker::checkpoint_pace(&conn, since, false, soon), since, "one small commit changes nothing");
    assert_eq!(pages(), CHECKPOINT_PAGES_LARGE);
    let later = t0 + LARGE_FOR * 2;
    assert_eq!(worker::checkpoint_pace(&conn, since, false, later), None);
    assert_eq!(pages(), CHECKPOINT_PAGES);
}
