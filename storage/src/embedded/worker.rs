//! The threads behind the embedded store: one writer that group-commits, and a
//! few readers on their own connections.
//!
//! Group commit: the writer takes every write job already queued (up to
//! [`MAX_GROUP`]), runs each in its own savepoint inside one transaction, commits
//! once (one WAL fsync), and only then answers the jobs. A job that fails rolls
//! back its savepoint and leaves the others alone; a failed commit fails them all.
//! Nothing is answered before its commit is durable.
//!
//! Activity batches ([`Write::Batch`]) queued next to each other run as one
//! `write_batch`, and without a savepoint when they open the transaction (the
//! usual case under load): a savepoint copies every page it changes into the
//! in-memory sub-journal, and batches spread over many conversations change a
//! page per conversation. If such a run fails, the transaction, which holds
//! only the run, is rolled back and the jobs after it go into a new one. Each
//! batch is still answered with its own items. A merged run fails whole
//! (nothing of it stored, every batch of it answered with the error) only on
//! what fails a `write_batch` call as a whole — a full disk, an I/O error, a
//! bug — never on an item's own outcome (a missing or closed conversation, a
//! replayed key), which stays that item's answer.
//!
//! A full disk: SQLite answers `SQLITE_FULL` and undoes the statement, or —
//! depending on where the write stopped — the whole transaction. Then every job
//! run so far in it is answered with the error (none of it is stored), the jobs
//! not run yet go into the next transaction, and what the writer remembers of
//! conversations ([`known`]) is forgotten, so the next batch continues every
//! conversation's seqs from what is stored: no gap, nothing acknowledged lost.
//! Nothing needs repair when space returns: the next transaction just works.
//!
//! The queues are unbounded on purpose: the callers (shards) bound what they have
//! in flight, and a blocking send would stall a shard's event loop.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use rusqlite::Connection;

use super::rows::{sql_err, watch_space_at};
use super::{activities, known};
use crate::full::FullWatch;
use crate::{NewActivity, StoreError, StoreResult, Written};

/// Most write jobs folded into one transaction.
const MAX_GROUP: usize = 512;

/// WAL pages between the writer's checkpoints (`wal_autocheckpoint`; SQLite's
/// default is 1,000).
pub(crate) const CHECKPOINT_PAGES: i64 = 10_000;

/// WAL pages between checkpoints while commits are large ([`LARGE_COMMIT`]
/// activities or more, one in the last [`LARGE_FOR`]). A checkpoint copies each
/// changed page once however often it changed, and a commit spread over many
/// conversations changes a page per conversation: over 1,000 conversations
/// this gave +7–22 % (docs/architecture.md, storage). Only while commits are
/// large: the WAL file grows to its size before it is first reused (~200 MB
/// here), and until then every commit extends the file, which makes each fsync
/// slower — measured, a lone publish's ack p50 went from ~0.25 to ~0.4 ms —
/// a cost a large commit spreads over its thousand activities.
pub(super) const CHECKPOINT_PAGES_LARGE: i64 = 50_000;
const LARGE_COMMIT: usize = 1_000;
pub(super) const LARGE_FOR: Duration = Duration::from_secs(1);

/// Answers a job once its transaction's fate is known: `Err` when the commit
/// failed (or the transaction was lost), whatever the job itself returned.
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// What the writer is sent: any job, or a batch of activities, which it
/// merges with the batches queued next to it.
pub(crate) enum Write {
    Job(Box<dyn WriteJob>),
    Batch(BatchJob),
}

/// `Store::write_batch`'s items and where its answer goes.
pub(crate) struct BatchJob {
    pub(crate) items: Vec<NewActivity>,
    pub(crate) reply: oneshot::Sender<StoreResult<Vec<StoreResult<Written>>>>,
}

impl Write {
    fn fail(self, why: &StoreError) {
        match self {
            Write::Job(job) => job.fail(why),
            Write::Batch(batch) => {
                let _ = batch.reply.send(Err(why.clone()));
            }
        }
    }
}

/// Runs batches as one `write_batch`; the answer splits its items back to each
/// batch once the commit's fate is known. First in its transaction (`first`)
/// the run needs no savepoint: if it fails, the whole transaction is rolled
/// back, which holds nothing else, and the writer goes on with the jobs after
/// it in a new one (as after a transaction SQLite itself rolled back).
fn run_batches(conn: &Connection, batches: Vec<BatchJob>, first: bool) -> (Answer, Option<StoreError>) {
    let mut items = Vec::with_capacity(batches.iter().map(|b| b.items.len()).sum());
    let mut replies = Vec::with_capacity(batches.len());
    for batch in batches {
        replies.push((batch.reply, batch.items.len()));
        items.extend(batch.items);
    }
    let result = if first {
        let result = activities::write_batch(conn, items);
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result
    } else {
        in_savepoint(conn, |c| activities::write_batch(c, items))
    };
    let failed = result.as_ref().err().cloned();
    let answer: Answer = Box::new(move |commit| {
        let written = match commit {
            Ok(()) => result,
            Err(why) => Err(why.clone()),
        };
        match written {
            Ok(written) => {
                let mut written = written.into_iter();
                for (reply, n) in replies {
                    // The caller may have gone away; the write stands either way.
                    let _ = reply.send(Ok(written.by_ref().take(n).collect()));
                }
            }
            Err(why) => {
                for (reply, _) in replies {
                    let _ = reply.send(Err(why.clone()));
                }
            }
        }
    });
    (answer, failed)
}

pub(crate) trait WriteJob: Send {
    /// Runs inside the open transaction; returns what to answer once the
    /// commit's fate is known, and the job's own error, if it failed.
    fn run(self: Box<Self>, conn: &Connection) -> (Answer, Option<StoreError>);
    /// Answers without running (the transaction could not start).
    fn fail(self: Box<Self>, why: &StoreError);
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
    fn run(self: Box<Self>, conn: &Connection) -> (Answer, Option<StoreError>) {
        let Job { f, reply } = *self;
        let result = in_savepoint(conn, f);
        let failed = result.as_ref().err().cloned();
        let answer: Answer = Box::new(move |commit| {
            let answer = match commit {
                Ok(()) => result,
                Err(why) => Err(why.clone()),
            };
            // The caller may have gone away; the write stands either way.
            let _ = reply.send(answer);
        });
        (answer, failed)
    }

    fn fail(self: Box<Self>, why: &StoreError) {
        let _ = self.reply.send(Err(why.clone()));
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
        // The job's own error says more (e.g. the disk is full, and SQLite
        // already rolled the transaction back, savepoint and all).
        return Err(result.err().unwrap_or_else(|| sql_err(e)));
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

/// A failed COMMIT (or BEGIN) as the jobs are told: a full disk as such,
/// anything else as the storage being unavailable.
fn transaction_error(what: &str, e: rusqlite::Error) -> StoreError {
    match sql_err(e) {
        full @ StoreError::Full(_) => full,
        other => StoreError::Unavailable(format!("{what}: {other}")),
    }
}

/// Logs a failed transaction, except a full disk, which `watch` reports once.
fn log_failure(watch: &FullWatch, e: &StoreError) {
    watch.refused(e);
    if !e.is_full() {
        tracing::error!("embedded storage: {e}");
    }
}

pub(crate) fn writer_loop(conn: Connection, jobs: Receiver<Write>, dir: PathBuf) {
    watch_space_at(&dir);
    let watch = FullWatch::new("embedded");
    // Jobs taken but not run: their transaction was lost before their turn.
    let mut carried: VecDeque<Write> = VecDeque::new();
    // When the last large commit ran, while checkpoints are set rarer.
    let mut large_since: Option<Instant> = None;
    loop {
        let first = match carried.pop_front() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let mut group = Vec::with_capacity(16);
        group.push(first);
        while group.len() < MAX_GROUP {
            match carried.pop_front().map(Ok).unwrap_or_else(|| jobs.try_recv()) {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // A transaction a failure left open would refuse every BEGIN after it.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let why = transaction_error("cannot begin a transaction", e);
            log_failure(&watch, &why);
            group.into_iter().for_each(|job| job.fail(&why));
            continue;
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        let mut activities = 0;
        let mut lost = None;
        let mut full = None;
        let mut group = group.into_iter().peekable();
        while let Some(next) = group.next() {
            // A run of batches that opened the transaction and failed: it was
            // not in a savepoint, so the transaction must go (if even its
            // ROLLBACK failed, the next BEGIN refuses rather than commit it).
            let mut unsaved = false;
            let (answer, failed) = match next {
                Write::Job(job) => job.run(&conn),
                Write::Batch(first) => {
                    let mut batches = vec![first];
                    while let Some(Write::Batch(_)) = group.peek() {
                        if let Some(Write::Batch(batch)) = group.next() {
                            batches.push(batch);
                        }
                    }
                    activities += batches.iter().map(|b| b.items.len()).sum::<usize>();
                    let opened = answers.is_empty();
                    let (answer, failed) = run_batches(&conn, batches, opened);
                    unsaved = opened && failed.is_some();
                    (answer, failed)
                }
            };
            answers.push(answer);
            if conn.is_autocommit() || unsaved {
                // The whole transaction was rolled back (SQLite may on SQLITE_FULL
                // or an I/O error; `run_batches` does when the run that opened
                // it failed): nothing run in it so far is stored.
                lost =
                    Some(failed.unwrap_or_else(|| StoreError::Unavailable("the transaction was rolled back".into())));
                break;
            }
            full = full.or(failed.filter(StoreError::is_full));
        }
        carried.extend(group);
        if let Some(why) = lost {
            known::forget_all();
            log_failure(&watch, &why);
            answers.into_iter().for_each(|answer| answer(Err(&why)));
            continue;
        }
        large_since = checkpoint_pace(&conn, large_since, activities >= LARGE_COMMIT, Instant::now());
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                match &full {
                    // Some jobs were stored, one was refused for want of space.
                    Some(e) => watch.refused(e),
                    None => watch.stored(),
                }
                answers.into_iter().for_each(|answer| answer(Ok(())));
            }
            Err(e) => {
                let why = transaction_error("commit failed", e);
                log_failure(&watch, &why);
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
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

/// Sets how often the writer checkpoints (at its next COMMIT) by whether
/// commits are large now; answers when the last large one ran, if recently.
pub(super) fn checkpoint_pace(
    conn: &Connection,
    large_since: Option<Instant>,
    large: bool,
    now: Instant,
) -> Option<Instant> {
    let (pages, since) = match (large, large_since) {
        (true, None) => (CHECKPOINT_PAGES_LARGE, now),
        (true, Some(_)) => return Some(now),
        (false, Some(t)) if now.duration_since(t) > LARGE_FOR => (CHECKPOINT_PAGES, now),
        (false, other) => return other,
    };
    if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", pages) {
        tracing::warn!("embedded storage: cannot set wal_autocheckpoint: {e}");
        return large_since;
    }
    large.then_some(since)
}

/// How often the background checkpointer copies new WAL frames into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies committed WAL frames into the database file in the background
/// (passive checkpoints: it never blocks the writer or a reader). The writer
/// still checkpoints itself when the WAL passes its threshold — that one lets
/// the WAL start over — but finds nearly every frame already copied, so the
/// pause it puts in front of the commits queued behind it is short. Ends when
/// `stop` is dropped.
pub(crate) fn checkpoint_loop(conn: Connection, stop: Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    // Warned once per run of failures (a full disk fails it five times a second).
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("embedded storage: background checkpoint failed (warned once until it succeeds): {e}");
            }
            Err(_) => {}
            Ok(_) if failing => {
                failing = false;
                tracing::info!("embedded storage: background checkpoints succeed again");
            }
            Ok(_) => {}
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
