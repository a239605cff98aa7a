//! The threads behind the embedded store: one writer that group-commits, and a
//! few readers on their own connections.
//!
//! Group commit: the writer takes every write job already queued (up to
//! [`MAX_GROUP`]), runs each in its own savepoint inside one transaction, commits
//! once (one WAL fsync), and only then answers the jobs. A job that fails rolls
//! back its savepoint and leaves the others alone; a failed commit fails them all.
//! Nothing is answered before its commit is durable.
//!
//! The queues are unbounded on purpose: the callers (shards) bound what they have
//! in flight, and a blocking send would stall a shard's event loop.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;
use rusqlite::Connection;

use super::known;
use super::rows::sql_err;
use crate::{StoreError, StoreResult};

/// Most write jobs folded into one transaction.
const MAX_GROUP: usize = 512;

type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;

pub(crate) trait WriteJob: Send {
    /// Runs inside the open transaction; returns what to answer once the commit's fate is known.
    fn run(self: Box<Self>, conn: &Connection) -> Answer;
    /// Answers without running (the transaction could not start).
    fn fail(self: Box<Self>, why: &str);
}

struct Job<T, F> {
    f: F,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(self: Box<Self>, conn: &Connection) -> Answer {
        let Job { f, reply } = *self;
        let result = in_savepoint(conn, f);
        Box::new(move |commit| {
            let answer = match commit {
                Ok(()) => result,
                Err(why) => Err(StoreError::Unavailable(format!("commit failed: {why}"))),
            };
            // The caller may have gone away; the write stands either way.
            let _ = reply.send(answer);
        })
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(StoreError::Unavailable(why.to_string())));
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.prepare_cached("SAVEPOINT job").and_then(|mut s| s.execute([])).map_err(sql_err)?;
    let result = f(conn);
    let end = if result.is_ok() { "RELEASE job" } else { "ROLLBACK TO job" };
    let ended = conn.prepare_cached(end).and_then(|mut s| s.execute([])).and_then(|_| {
        if result.is_err() {
            conn.prepare_cached("RELEASE job").and_then(|mut s| s.execute([]))?;
        }
        Ok(())
    });
    if let Err(e) = ended {
        known::forget_all();
        return Err(sql_err(e));
    }
    result
}

pub(crate) fn boxed_job<T, F>(f: F) -> (Box<dyn WriteJob>, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (Box::new(Job { f, reply }), rx)
}

pub(crate) fn writer_loop(conn: Connection, jobs: Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let why = format!("cannot begin a transaction: {e}");
            tracing::error!("embedded storage: {why}");
            group.into_iter().for_each(|job| job.fail(&why));
            continue;
        }
        let answers: Vec<Answer> = group.into_iter().map(|job| job.run(&conn)).collect();
        match conn.execute_batch("COMMIT") {
            Ok(()) => answers.into_iter().for_each(|answer| answer(Ok(()))),
            Err(e) => {
                let why = e.to_string();
                tracing::error!("embedded storage: commit failed: {why}");
                let _ = conn.execute_batch("ROLLBACK");
                known::forget_all();
                answers.into_iter().for_each(|answer| answer(Err(&why)));
            }
        }
    }
    // All senders are gone: the store was dropped. Fold the WAL back into the
    // database so the file is self-contained at rest.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!("embedded storage: final checkpoint failed: {e}");
    }
}

/// How often the background checkpointer copies new WAL frames into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Copies committed WAL frames into the database file in the background
/// (passive checkpoints: it never blocks the writer or a reader). The writer
/// still checkpoints itself when the WAL passes its threshold — that one lets
/// the WAL start over — but finds nearly every frame already copied, so the
/// pause it puts in front of the commits queued behind it is short. Ends when
/// `stop` is dropped.
pub(crate) fn checkpoint_loop(conn: Connection, stop: Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        if let Err(e) = done {
            tracing::warn!("embedded storage: background checkpoint failed: {e}");
        }
    }
}

pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub(crate) fn reader_loop(conn: Connection, jobs: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}

pub(crate) fn read_job<T, F>(f: F) -> (ReadJob, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: ReadJob = Box::new(move |conn| {
        let _ = reply.send(f(conn));
    });
    (job, rx)
}
