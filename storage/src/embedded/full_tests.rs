//! A full database, made cheaply: `PRAGMA max_page_count` on the writer's
//! connection caps the file at its current size, so the next write that needs a
//! new page fails with `SQLITE_FULL` — the answer a full disk gives — and raising
//! the cap is space coming back. What must hold: the refusal is `Full`, nothing
//! of a refused batch is stored, reads go on, and after space returns the
//! conversation's seqs go on gap-free and a retried idempotency key writes once.

use std::sync::Arc;

use rusqlite::ffi;

use super::rows::sql_err;
use super::EmbeddedStore;
use crate::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

fn message(c: &Conversation, text: String, key: Option<&str>) -> NewActivity {
    NewActivity { text: Some(text), ..super::tests::activity(c.tenant_id, c.id, key) }
}

/// A tenant, a channel and a conversation in `store` (the other test modules use it too).
pub(super) async fn conversation(store: &EmbeddedStore) -> Conversation {
    let tenant = store.create_tenant(NewTenant { name: "t".into(), api_key_hash: [7; 32] }).await.expect("tenant");
    let channel = store
        .create_channel(NewChannel {
            tenant_id: tenant.id,
            name: "c".into(),
            kind: "websocket".into(),
            secret: "s".into(),
            config: Json::empty_object(),
        })
        .await
        .expect("channel");
    store
        .create_conversation(NewConversation {
            tenant_id: tenant.id,
            channel_id: channel.id,
            metadata: Json::empty_object(),
            external_id: None,
            members_only: false,
        })
        .await
        .expect("conversation")
}

/// Caps the database at its current size (`Some`), or lifts the cap (`None`).
async fn cap(store: &EmbeddedStore, full: bool) {
    store
        .write(move |c| {
            let pages: i64 = if full {
                c.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(sql_err)?
            } else {
                i64::from(u32::MAX >> 1)
            };
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get::<_, i64>(0)).map_err(sql_err)?;
            Ok(())
        })
        .await
        .expect("set max_page_count");
}

#[test]
fn sqlite_full_and_an_io_error_for_want_of_space_map_to_full() {
    let full = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None);
    assert!(matches!(sql_err(full), StoreError::Full(_)));
    // Without a data directory known to be out of space, an I/O error stays one.
    let io = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_IOERR_SHMSIZE), None);
    assert!(matches!(sql_err(io), StoreError::Unavailable(_)));
}

#[test]
fn a_full_database_refuses_whole_batches_and_takes_writes_again_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
    runtime().block_on(async move {
        let conv = conversation(&store).await;
        let scope = Scope::Tenant(conv.tenant_id);
        for i in 0..3 {
            store.write_batch(vec![message(&conv, format!("before {i}"), None)]).await.expect("stored");
        }
        cap(&store, true).await;
        // Big texts need new pages at once; a few small ones may still fit in free space.
        let big = "x".repeat(64 * 1024);
        let mut refused = None;
        let mut stored_while_capped = 0;
        for i in 0..20 {
            let key = format!("during-{i}");
            let batch = vec![message(&conv, big.clone(), None), message(&conv, big.clone(), Some(&key))];
            match store.write_batch(batch).await {
                Ok(items) => {
                    assert!(items.iter().all(Result::is_ok), "{items:?}");
                    stored_while_capped += 2;
                }
                Err(e) => {
                    refused = Some((e, key));
                    break;
                }
            }
        }
        let (error, key) = refused.expect("a capped database refuses a write");
        assert!(error.is_full(), "{error:?}");
        // Reads go on while full, and nothing of the refused batch is there.
        let stored = store.read_range(scope, conv.id, 0, 1000, None).await.expect("reads work while full");
        assert_eq!(stored.len(), 3 + stored_while_capped);

        cap(&store, false).await;
        let retried = store.write_batch(vec![message(&conv, "retry".into(), Some(&key))]).await.expect("stored");
        let first = retried[0].as_ref().expect("new").activity().clone();
        let again = store.write_batch(vec![message(&conv, "retry".into(), Some(&key))]).await.expect("stored");
        assert!(matches!(&again[0], Ok(Written::Replay(a)) if a.id == first.id && a.seq == first.seq), "{again:?}");
        store.write_batch(vec![message(&conv, "after".into(), None)]).await.expect("stored");

        let all = store.read_range(scope, conv.id, 0, 1000, None).await.expect("read");
        let seqs: Vec<i64> = all.iter().map(|a| a.seq).collect();
        let n = (5 + stored_while_capped) as i64;
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "gap-free across the refusal");
        assert_eq!(all.iter().filter(|a| a.idempotency_key.as_deref() == Some(key.as_str())).count(), 1);
    });
}

#[test]
fn a_transaction_sqlite_rolled_back_fails_the_jobs_run_in_it_and_runs_the_rest_in_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
    runtime().block_on(async move {
        store.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER)").map_err(sql_err)).await.expect("table");
        // The writer is held in a first job while the three are queued, so it
        // folds them into one transaction.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let hold = store.write(move |_| {
            let _ = held.recv();
            Ok(())
        });
        let insert =
            |x: i64| move |c: &rusqlite::Connection| c.execute("INSERT INTO t VALUES (?)", [x]).map_err(sql_err);
        let before = store.write(insert(1));
        // What SQLite does to the transaction on some SQLITE_FULL: rolls it back whole.
        let lost = store.write(|c| {
            c.execute_batch("ROLLBACK").map_err(sql_err)?;
            Err::<(), _>(StoreError::Full("database or disk is full".into()))
        });
        let after = store.write(insert(3));
        // join! polls in order: each job is queued by its first poll, the release comes last.
        let (held, before, lost, after, ()) = tokio::join!(hold, before, lost, after, async move {
            let _ = release.send(());
        });
        // Its own answer depends on whether the writer took it before the others came.
        drop(held);
        assert!(matches!(before, Err(StoreError::Full(_))), "rolled back with the full one: {before:?}");
        assert!(matches!(lost, Err(StoreError::Full(_))), "{lost:?}");
        assert_eq!(after.expect("run in the next transaction"), 1);
        let rows: Vec<i64> = store
            .read(|c| {
                let mut s = c.prepare("SELECT x FROM t ORDER BY x").map_err(sql_err)?;
                let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)
            })
            .await
            .expect("read");
        assert_eq!(rows, [3], "only what was answered Ok is stored");
    });
}
