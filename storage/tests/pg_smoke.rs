//! Smoke tests of the PostgreSQL backend against a real server: the races the
//! full conformance suite cannot easily provoke (concurrent batches on one
//! conversation, duplicate idempotency keys, competing delivery claimers).
//!
//! Needs `DATABASE_URL` (e.g. from `scripts/pg-test-cluster start <dir>`); each
//! test works in a fresh schema of that database. Without it the tests pass
//! without running (the binary says so once, on the terminal), unless
//! `CONVERGER_REQUIRE_PG=1`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::postgres::{self, BulkInsert, PgOptions, PgStore};
use converger_storage::*;

/// Attempts a delivery may have (the server's retry policy).
const MAX_ATTEMPTS: i32 = 5;

fn database_url() -> Option<String> {
    // libtest names each test's thread after the test.
    common::database_url(std::thread::current().name().unwrap_or("this PostgreSQL test"))
}

fn fresh_schema(test: &str) -> String {
    format!("smoke_{test}_{}", new_id().simple())
}

fn connect_with(test: &str, opts: PgOptions) -> Option<Arc<PgStore>> {
    let url = database_url()?;
    let opts = PgOptions { schema: Some(fresh_schema(test)), ..opts };
    Some(Arc::new(PgStore::connect(&url, opts).expect("connect")))
}

fn connect(test: &str) -> Option<Arc<PgStore>> {
    connect_with(test, PgOptions { pool_size: 8, ..PgOptions::default() })
}

fn key_hash() -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..16].copy_from_slice(new_id().as_bytes());
    h[16..].copy_from_slice(new_id().as_bytes());
    h
}

struct World {
    tenant: Tenant,
    channel: Channel,
    conversation: Conversation,
}

async fn world(store: &PgStore) -> World {
    let tenant = store.create_tenant(NewTenant { name: "acme".into(), api_key_hash: key_hash() }).await.unwrap();
    let channel = store
        .create_channel(NewChannel {
            tenant_id: tenant.id,
            name: "hooks".into(),
            kind: "webhook".into(),
            secret: "s3cret".into(),
            config: Json::parse(r#"{"url": "http://127.0.0.1:9/x"}"#).unwrap(),
        })
        .await
        .unwrap();
    let conversation = store
        .create_conversation(NewConversation {
            tenant_id: tenant.id,
            channel_id: channel.id,
            metadata: Json::empty_object(),
            external_id: None,
            members_only: false,
        })
        .await
        .unwrap();
    World { tenant, channel, conversation }
}

fn activity(w: &World, key: Option<&str>, deliver: bool) -> NewActivity {
    NewActivity {
        id: new_id(),
        tenant_id: w.tenant.id,
        conversation_id: w.conversation.id,
        kind: "message".into(),
        text: Some("hello".into()),
        attachments: Some(Json::parse(r#"[{"type": "image", "url": "u"}]"#).unwrap()),
        sender: "user-1".into(),
        metadata: Json::parse(r#"{"k": [1, 2]}"#).unwrap(),
        idempotency_key: key.map(str::to_owned),
        created_at: Timestamp::now(),
        deliver_to: if deliver { vec![w.channel.id] } else { vec![] },
        target_id: None,
        parent_id: None,
        author_only: false,
        member: None,
        announce: false,
        traceparent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_to_one_conversation_get_gap_free_seqs() {
    for bulk in [BulkInsert::Unnest, BulkInsert::Copy] {
        let Some(store) = connect_with("gapfree", PgOptions { pool_size: 8, bulk, ..PgOptions::default() }) else {
            return;
        };
        let w = Arc::new(world(&store).await);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, w) = (store.clone(), w.clone());
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for _ in 0..10 {
                    let batch = (0..5).map(|_| activity(&w, None, true)).collect();
                    for r in store.write_batch(batch).await.unwrap() {
                        seqs.push(r.unwrap().activity().seq);
                    }
                }
                seqs
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.extend(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=400).collect::<Vec<i64>>(), "{bulk:?}");

        let scope = Scope::Tenant(w.tenant.id);
        let read = store.read_range(scope, w.conversation.id, 390, 100, None).await.unwrap();
        assert_eq!(read.iter().map(|a| a.seq).collect::<Vec<_>>(), (391..=400).collect::<Vec<i64>>());
        assert_eq!(read[0].metadata, Json::parse(r#"{"k":[1,2]}"#).unwrap());
        assert_eq!(store.get_conversation(scope, w.conversation.id).await.unwrap().last_seq, 400);
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.activities, stats.deliveries_pending), (400, 400));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_writes_replay_the_original() {
    let Some(store) = connect("idem") else { return };
    let w = world(&store).await;
    let first = store.write_batch(vec![activity(&w, Some("k1"), true)]).await.unwrap();
    let original = first.into_iter().next().unwrap().unwrap();
    assert!(!original.is_replay());

    // Later, and twice within one batch: all answer the original, nothing new is stored.
    let again = store
        .write_batch(vec![
            activity(&w, Some("k1"), true),
            activity(&w, Some("k2"), true),
            activity(&w, Some("k2"), true),
        ])
        .await
        .unwrap();
    let again: Vec<Written> = again.into_iter().map(Result::unwrap).collect();
    assert_eq!(again[0], Written::Replay(original.activity().clone()));
    assert!(!again[1].is_replay());
    assert_eq!(again[2], Written::Replay(again[1].activity().clone()));
    assert_eq!(again[1].activity().seq, 2);

    // Racing writers with one key: exactly one stores it.
    let store2 = store.clone();
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (s, a) = (store2.clone(), activity(&w, Some("race"), true));
            tokio::spawn(async move { s.write_batch(vec![a]).await.unwrap().pop().unwrap().unwrap() })
        })
        .collect();
    let mut fresh = 0;
    let mut ids = HashSet::new();
    for r in racers {
        let written = r.await.unwrap();
        fresh += usize::from(!written.is_replay());
        ids.insert(written.activity().id);
    }
    assert_eq!((fresh, ids.len()), (1, 1));
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.activities, stats.deliveries_pending), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_claimers_never_share_a_delivery() {
    let Some(store) = connect("claim") else { return };
    let w = Arc::new(world(&store).await);
    let batch = (0..60).map(|_| activity(&w, None, true)).collect();
    assert!(store.write_batch(batch).await.unwrap().iter().all(Result::is_ok));

    let now = Timestamp::now();
    let lease = Duration::from_secs(60);
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store.claim_deliveries(now, 7, lease, MAX_ATTEMPTS).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let ids: HashSet<Id> = all.iter().map(|d| d.id).collect();
    assert_eq!((all.len(), ids.len()), (60, 60));
    assert!(all.iter().all(|d| d.attempts == 1 && d.next_attempt_at == now.plus(lease)));

    // Leased rows are not due before the lease ends, and are due after it.
    assert!(store
        .claim_deliveries(now.plus(Duration::from_secs(30)), 100, lease, MAX_ATTEMPTS)
        .await
        .unwrap()
        .is_empty());
    let later = now.plus(Duration::from_secs(61));
    let again = store.claim_deliveries(later, 100, lease, MAX_ATTEMPTS).await.unwrap();
    assert_eq!(again.len(), 60);
    assert!(again.iter().all(|d| d.attempts == 2));
    assert!(again.windows(2).all(|p| p[0].id < p[1].id), "oldest due first, then by id");

    let d = store.complete_delivery(again[0].id, 2, DeliveryOutcome::Failed { error: "boom".into() }).await.unwrap();
    assert_eq!((d.status, d.last_error.as_deref()), (DeliveryStatus::Failed, Some("boom")));
    let scope = Scope::Tenant(w.tenant.id);
    let retried = store.retry_delivery(scope, d.id).await.unwrap();
    assert_eq!((retried.status, retried.attempts), (DeliveryStatus::Pending, 0));
    assert!(matches!(store.retry_delivery(scope, d.id).await, Err(StoreError::Conflict(_))));
    let merged = store.merge_delivery_metadata(scope, d.id, Json::parse(r#"{"wamid": "x"}"#).unwrap()).await.unwrap();
    assert_eq!(merged.metadata, Json::parse(r#"{"wamid":"x"}"#).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_or_create_races_create_one_conversation() {
    let Some(store) = connect("foc") else { return };
    let w = Arc::new(world(&store).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, w) = (store.clone(), w.clone());
            tokio::spawn(async move {
                store
                    .find_or_create_conversation(NewConversation {
                        tenant_id: w.tenant.id,
                        channel_id: w.channel.id,
                        metadata: Json::empty_object(),
                        external_id: Some("+15550001".into()),
                        members_only: false,
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (c, new) = t.await.unwrap();
        created += usize::from(new);
        ids.insert(c.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
}

#[tokio::test]
async fn scope_and_constraints_hold() {
    let Some(store) = connect("scope") else { return };
    let w = world(&store).await;
    let stranger = Scope::Tenant(new_id());
    assert!(matches!(store.get_conversation(stranger, w.conversation.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.read_range(stranger, w.conversation.id, 0, 10, None).await, Err(StoreError::NotFound(_))));
    let mut foreign = activity(&w, None, false);
    foreign.tenant_id = new_id();
    let r = store.write_batch(vec![foreign, activity(&w, None, false)]).await.unwrap();
    assert!(matches!(r[0], Err(StoreError::NotFound(Entity::Conversation))));
    assert_eq!(r[1].as_ref().unwrap().activity().seq, 1);

    store.close_conversation(Scope::Admin, w.conversation.id).await.unwrap();
    let r = store.write_batch(vec![activity(&w, None, false)]).await.unwrap();
    assert!(matches!(r[0], Err(StoreError::ConversationClosed)));

    // A delivery to another tenant's channel is refused by the database itself.
    let other = world(&store).await;
    let mut a = activity(&other, None, false);
    a.deliver_to = vec![w.channel.id];
    assert!(matches!(store.write_batch(vec![a]).await, Err(StoreError::ForeignKey(_))));

    let hash = [7u8; 32];
    store.create_tenant(NewTenant { name: "a".into(), api_key_hash: hash }).await.unwrap();
    let dup = store.create_tenant(NewTenant { name: "b".into(), api_key_hash: hash }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let page = store.list_tenants(PageRequest::first(2)).await.unwrap();
    let rest = store.list_tenants(PageRequest { after: page.next, limit: 2 }).await.unwrap();
    assert_eq!((page.items.len(), rest.items.len(), rest.next), (2, 1, None));
}

#[test]
fn migrations_apply_once_even_when_nodes_start_together() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema("migrate");
    let opts = PgOptions { schema: Some(schema), pool_size: 1, ..PgOptions::default() };
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let (url, opts) = (url.clone(), opts.clone());
            std::thread::spawn(move || postgres::migrate_with(&url, &opts).unwrap())
        })
        .collect();
    let applied: Vec<Vec<String>> = nodes.into_iter().map(|n| n.join().unwrap()).collect();
    assert_eq!(applied.iter().filter(|a| !a.is_empty()).count(), 1, "{applied:?}");
    assert!(postgres::migrate_with(&url, &opts).unwrap().is_empty());
}

#[test]
fn an_unreachable_server_is_unavailable_not_a_panic() {
    // Port 1 on loopback refuses at once; nothing listens there.
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/none?connect_timeout=2", PgOptions::default());
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{:?}", err.err());
    let err = PgStore::connect("postgres://[not a url", PgOptions::default());
    assert!(matches!(err, Err(StoreError::Internal(_))), "{:?}", err.err());
}

#[tokio::test]
async fn connections_killed_by_the_server_are_replaced() {
    let Some(url) = database_url() else { return };
    let app = format!("smoke_{}", new_id().simple());
    let sep = if url.contains('?') { '&' } else { '?' };
    let opts = PgOptions { schema: Some(fresh_schema("reconnect")), pool_size: 2, ..PgOptions::default() };
    let store = PgStore::connect(&format!("{url}{sep}application_name={app}"), opts).unwrap();
    store.ping().await.unwrap();
    let w = world(&store).await;
    kill_backends(&url, &app);
    // The first call may meet the dead connection; it must say so, not hang or panic.
    if let Err(e) = store.write_batch(vec![activity(&w, None, false)]).await {
        assert!(e.is_transient(), "{e:?}");
    }
    let again = store.write_batch(vec![activity(&w, None, false)]).await.unwrap();
    assert!(again[0].is_ok());
}

/// PostgreSQL's `disk_full` (53100), raised by a trigger as the server raises it
/// when it cannot extend a file: the batch is refused whole as `Full` (with
/// either bulk insert), nothing of it is stored, and once space is back (the
/// trigger dropped) the seqs go on gap-free and the refused key writes once.
#[tokio::test]
async fn disk_full_refuses_the_batch_as_full_and_writes_resume_gap_free() {
    for bulk in [BulkInsert::Unnest, BulkInsert::Copy] {
        let Some(url) = database_url() else { return };
        let schema = fresh_schema("diskfull");
        let opts = PgOptions { schema: Some(schema.clone()), pool_size: 2, bulk, ..PgOptions::default() };
        let store = PgStore::connect(&url, opts).unwrap();
        let w = world(&store).await;
        store.write_batch(vec![activity(&w, None, false)]).await.unwrap();
        run_sql(
            &url,
            &format!(
                "SET search_path TO {schema}; \
                 CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; \
                 END $$; \
                 CREATE TRIGGER no_space BEFORE INSERT ON activities FOR EACH ROW EXECUTE FUNCTION no_space()"
            ),
        );
        let refused = store.write_batch(vec![activity(&w, None, true), activity(&w, Some("k"), false)]).await;
        assert!(matches!(&refused, Err(e) if e.is_full()), "{bulk:?}: {refused:?}");
        run_sql(&url, &format!("DROP TRIGGER no_space ON {schema}.activities"));
        let stored = store.write_batch(vec![activity(&w, Some("k"), false)]).await.unwrap();
        let first = stored[0].as_ref().unwrap().activity().clone();
        assert_eq!(first.seq, 2, "{bulk:?}: gap-free after the refusal");
        let again = store.write_batch(vec![activity(&w, Some("k"), false)]).await.unwrap();
        assert!(matches!(&again[0], Ok(Written::Replay(a)) if a.id == first.id), "{bulk:?}: {again:?}");
    }
}

/// Runs `sql` on a plain tokio-postgres client on another thread.
fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        });
    })
    .join()
    .unwrap();
}

/// Terminates every backend whose application_name is `app` and waits until they
/// are gone, from a plain tokio-postgres client on another thread.
fn kill_backends(url: &str, app: &str) {
    let (url, app) = (url.to_owned(), app.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let n: i64 = client
                .query_one(
                    "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity \
                     WHERE application_name = $1",
                    &[&app],
                )
                .await
                .unwrap()
                .get(0);
            assert!(n > 0, "no backend named {app}");
        });
    })
    .join()
    .unwrap();
}

/// The server drives the store from monoio, not tokio: the futures must only
/// need wakers. This runs them on a bare thread with a minimal executor.
#[test]
fn works_without_a_tokio_runtime() {
    let Some(store) = connect("noruntime") else { return };
    block_on(async {
        store.ping().await.unwrap();
        let w = world(&store).await;
        let r = store.write_batch(vec![activity(&w, Some("x"), true)]).await.unwrap();
        assert_eq!(r[0].as_ref().unwrap().activity().seq, 1);
    });
}

fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// COPY vs UNNEST for `write_batch`: one writer, one delivery row per activity,
/// a fresh schema per run. Not a test: run it with
/// `cargo test --release -p converger-storage --test pg_smoke -- --ignored bulk_bench --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bulk_bench() {
    if database_url().is_none() {
        return;
    }
    let cases: [(usize, usize, usize); 6] = [
        (1, 10, 2000),
        (1, 1000, 2000),
        (100, 10, 20_000),
        (100, 1000, 20_000),
        (1000, 10, 40_000),
        (1000, 1000, 40_000),
    ];
    // Best of three rounds, modes alternating, so a burst of other load on the
    // machine hurts neither mode alone.
    println!("batch  convs   unnest rows/s  copy rows/s  (best of 3)");
    for (batch, convs, total) in cases {
        let mut best = [0f64; 2];
        for _round in 0..3 {
            for (m, bulk) in [BulkInsert::Unnest, BulkInsert::Copy].into_iter().enumerate() {
                let opts = PgOptions { pool_size: 1, bulk, ..PgOptions::default() };
                let store = connect_with("bench", opts).unwrap();
                let w = world(&store).await;
                let mut conversations = Vec::with_capacity(convs);
                for _ in 0..convs {
                    let c = NewConversation {
                        tenant_id: w.tenant.id,
                        channel_id: w.channel.id,
                        metadata: Json::empty_object(),
                        external_id: None,
                        members_only: false,
                    };
                    conversations.push(store.create_conversation(c).await.unwrap().id);
                }
                let make = |i: usize| {
                    let mut a = activity(&w, None, true);
                    a.conversation_id = conversations[i % convs];
                    a
                };
                // Warm up: prepares the statements on the connection.
                store.write_batch((0..batch).map(make).collect()).await.unwrap();
                let batches = total / batch;
                let mut next = 0;
                let start = std::time::Instant::now();
                for _ in 0..batches {
                    let items: Vec<NewActivity> = (next..next + batch).map(make).collect();
                    next += batch;
                    let out = store.write_batch(items).await.unwrap();
                    assert!(out.iter().all(Result::is_ok));
                }
                let rate = (batches * batch) as f64 / start.elapsed().as_secs_f64();
                best[m] = best[m].max(rate);
            }
        }
        println!("{batch:>5}  {convs:>5}  {:>13.0}  {:>11.0}", best[0], best[1]);
    }
}

/// Runs each statement on its own plain connection inside `schema`; returns the
/// SQLSTATE and constraint of each failure, `None` for a success.
fn raw_sql(url: &str, schema: &str, statements: Vec<String>) -> Vec<Option<(String, String)>> {
    let (url, schema) = (url.to_owned(), schema.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(&format!("SET search_path TO {schema}")).await.unwrap();
            let mut out = Vec::new();
            for sql in statements {
                out.push(client.batch_execute(&sql).await.err().map(|e| {
                    let db = e.as_db_error().expect("a database error");
                    (db.code().code().to_owned(), db.constraint().unwrap_or_default().to_owned())
                }));
            }
            out
        })
    })
    .join()
    .unwrap()
}

/// The keys hold for any client, not only for the store's own write path: raw
/// SQL cannot attach an activity to a missing or foreign conversation, nor
/// remove or re-key a conversation that activities reference.
#[tokio::test]
async fn the_database_enforces_every_foreign_key() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema("fkeys");
    let store = PgStore::connect(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap();
    let w = world(&store).await;
    let other = world(&store).await;
    store.write_batch(vec![activity(&w, None, false)]).await.unwrap().remove(0).unwrap();
    let insert = |tenant: Id, conversation: Id, seq: i64| {
        format!(
            "INSERT INTO activities (id, tenant_id, conversation_id, seq, kind, sender, created_at) \
             VALUES ('{}', '{tenant}', '{conversation}', {seq}, 'message', 'raw', now())",
            new_id()
        )
    };
    let fk = Some(("23503".to_owned(), "activities_conversation_fkey".to_owned()));
    let results = raw_sql(
        &url,
        &schema,
        vec![
            insert(w.tenant.id, new_id(), 1),
            insert(other.tenant.id, w.conversation.id, 2),
            format!(
                "{}, ('{}', '{}', '{}', 3, 'message', 'raw', now())",
                insert(w.tenant.id, w.conversation.id, 2),
                new_id(),
                w.tenant.id,
                new_id()
            ),
            insert(w.tenant.id, w.conversation.id, 2),
            format!("DELETE FROM conversations WHERE id = '{}'", w.conversation.id),
            format!("UPDATE conversations SET id = '{}' WHERE id = '{}'", new_id(), w.conversation.id),
            format!("DELETE FROM conversations WHERE id = '{}'", other.conversation.id),
        ],
    );
    assert_eq!(results[0], fk, "a missing conversation");
    assert_eq!(results[1], fk, "another tenant's conversation");
    assert_eq!(results[2], fk, "one bad row fails the whole statement");
    assert_eq!(results[3], None, "a good row");
    assert_eq!(results[4], fk, "deleting a referenced conversation");
    assert_eq!(results[5], fk, "re-keying a referenced conversation");
    assert_eq!(results[6], None, "a conversation without activities can go");
    let stored = store.read_range(Scope::Admin, w.conversation.id, 0, 10, None).await.unwrap();
    assert_eq!(stored.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2]);
}
