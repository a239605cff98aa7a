//! The harness: opens a fresh store per case on each backend, runs the case on a
//! multi-thread tokio runtime under a time limit, and offers the fixtures and
//! assertions the cases share.
//!
//! Invariants: every case gets an empty database of its own (a tempdir for
//! `embedded`, a schema `conf_<uuid>` for `postgres` and `postgres_copy`), so
//! cases never see each other's rows and may assert exact counts. Constructors
//! block, so stores are opened outside the runtime (or in `spawn_blocking`).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use converger_storage::postgres::{BulkInsert, PgOptions, PgStore};
use converger_storage::{
    new_id, Activity, Channel, Conversation, Entity, Id, Json, MemberChange, NewActivity, NewChannel, NewConversation,
    NewTenant, Page, PageRequest, Refusal, Store, StoreError, StoreResult, Tenant, Timestamp, Written,
};

/// A case that hangs (a lost wakeup, a deadlock between claimers) fails instead of
/// stalling the whole run.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(120);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("build the tokio runtime")
}

/// Opens the case's database again, as a restarted server would: the same
/// directory (`embedded`) or schema (`postgres`). The caller drops every handle
/// to the previous store first.
#[derive(Clone)]
pub struct Reopen(Arc<dyn Fn() -> Arc<dyn Store> + Send + Sync>);

impl Reopen {
    pub async fn reopen(&self) -> Arc<dyn Store> {
        let open = self.0.clone();
        tokio::task::spawn_blocking(move || open()).await.expect("reopen the store")
    }
}

fn run_case<F, Fut>(name: &str, open: Reopen, case: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    // Constructors block: the first store is opened before the runtime exists.
    let store = (open.0)();
    let rt = runtime();
    // The timer must be made inside the runtime, hence the async block.
    let outcome = rt.block_on(async { tokio::time::timeout(CASE_TIME_LIMIT, case(store, open)).await });
    if outcome.is_err() {
        panic!("case {name} did not finish within {CASE_TIME_LIMIT:?}");
    }
}

/// Runs `case` against a fresh embedded (SQLite) store in its own tempdir.
pub fn run_embedded<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("create a tempdir");
    let path = dir.path().to_path_buf();
    let open = Reopen(Arc::new(move || -> Arc<dyn Store> {
        let store = EmbeddedStore::open(&path, EmbeddedOptions::default())
            .unwrap_or_else(|e| panic!("open the embedded store: {e}"));
        assert_eq!(store.backend(), "embedded");
        Arc::new(store)
    }));
    run_case(name, open, case);
    // The store (and its threads) is gone with the runtime, before the directory.
    drop(dir);
}

/// Runs `case` against PostgreSQL (default bulk insert: `unnest`).
pub fn run_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    run_postgres_with(name, BulkInsert::Unnest, case)
}

/// Runs `case` against PostgreSQL writing batches with binary COPY, the other
/// write path of that backend.
pub fn run_postgres_copy<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    run_postgres_with(name, BulkInsert::Copy, case)
}

/// Runs `case` against PostgreSQL in a fresh schema when `DATABASE_URL` is set.
/// Unset: skips and passes, unless `CONVERGER_REQUIRE_PG=1` (see `common::database_url`).
fn run_postgres_with<F, Fut>(name: &str, bulk: BulkInsert, case: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = crate::common::database_url(&format!("{name} on PostgreSQL ({bulk:?})")) else { return };
    let schema = format!("conf_{}", new_id().simple());
    // On failure the schema is kept (and named) for inspection.
    eprintln!("{name} runs on PostgreSQL ({bulk:?}) in schema {schema}");
    let (u, sc) = (url.clone(), schema.clone());
    let open = Reopen(Arc::new(move || open_postgres(&u, &sc, bulk)));
    run_case(name, open, case);
    drop_schema(&url, &schema);
}

/// Connects to PostgreSQL with `schema` (created if missing) as the search_path.
fn open_postgres(url: &str, schema: &str, bulk: BulkInsert) -> Arc<dyn Store> {
    let opts = PgOptions { schema: Some(schema.to_string()), bulk, ..Default::default() };
    let store = PgStore::connect(url, opts).unwrap_or_else(|e| panic!("connect to PostgreSQL (schema {schema}): {e}"));
    assert_eq!(store.backend(), "postgres");
    Arc::new(store)
}

/// Removes a passed case's schema so repeated runs do not pile them up.
fn drop_schema(url: &str, schema: &str) {
    let rt = runtime();
    let result: Result<(), tokio_postgres::Error> = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(connection);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
        drop(client);
        let _ = conn.await;
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("warning: could not drop schema {schema}: {e}");
    }
}

// ---------------------------------------------------------------------------
// Fixtures

/// A distinct API key hash (two fresh UUIDs side by side).
pub fn key_hash() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(new_id().as_bytes());
    out[16..].copy_from_slice(new_id().as_bytes());
    out
}

pub fn json(text: &str) -> Json {
    Json::parse(text).unwrap_or_else(|e| panic!("test JSON {text:?} is invalid: {e}"))
}

pub async fn tenant(store: &dyn Store, name: &str) -> Tenant {
    store
        .create_tenant(NewTenant { name: name.to_string(), api_key_hash: key_hash() })
        .await
        .unwrap_or_else(|e| panic!("create tenant {name}: {e}"))
}

pub fn new_channel(tenant_id: Id, name: &str) -> NewChannel {
    NewChannel {
        tenant_id,
        name: name.to_string(),
        kind: "webhook".to_string(),
        secret: format!("secret-{}", new_id().simple()),
        config: json(r#"{"url": "http://127.0.0.1:9/hook", "headers": {"X-A": "1"}}"#),
    }
}

pub async fn channel(store: &dyn Store, tenant_id: Id, name: &str) -> Channel {
    store.create_channel(new_channel(tenant_id, name)).await.unwrap_or_else(|e| panic!("create channel {name}: {e}"))
}

pub fn new_conversation(channel: &Channel, external_id: Option<&str>) -> NewConversation {
    NewConversation {
        tenant_id: channel.tenant_id,
        channel_id: channel.id,
        metadata: json(r#"{"topic": "support", "n": 1}"#),
        external_id: external_id.map(str::to_string),
        members_only: false,
    }
}

pub async fn conversation(store: &dyn Store, channel: &Channel) -> Conversation {
    store
        .create_conversation(new_conversation(channel, None))
        .await
        .unwrap_or_else(|e| panic!("create conversation: {e}"))
}

/// One tenant with one channel and one conversation on it.
pub struct World {
    pub tenant: Tenant,
    pub channel: Channel,
    pub conversation: Conversation,
}

pub async fn world(store: &dyn Store, name: &str) -> World {
    let tenant = tenant(store, name).await;
    let channel = channel(store, tenant.id, &format!("{name}-channel")).await;
    let conversation = conversation(store, &channel).await;
    World { tenant, channel, conversation }
}

/// A plain message for `conversation`, with a fresh id and no deliveries.
pub fn message(conversation: &Conversation, text: &str) -> NewActivity {
    NewActivity {
        id: new_id(),
        tenant_id: conversation.tenant_id,
        conversation_id: conversation.id,
        kind: "message".to_string(),
        text: Some(text.to_string()),
        attachments: None,
        sender: "user-1".to_string(),
        metadata: Json::empty_object(),
        idempotency_key: None,
        created_at: Timestamp::now(),
        deliver_to: Vec::new(),
        target_id: None,
        parent_id: None,
        author_only: false,
        member: None,
        announce: false,
        traceparent: None,
    }
}

pub fn keyed(conversation: &Conversation, text: &str, key: &str) -> NewActivity {
    NewActivity { idempotency_key: Some(key.to_string()), ..message(conversation, text) }
}

/// Writes a batch whose outer call must succeed and answers one result per item.
pub async fn write(store: &dyn Store, batch: Vec<NewActivity>) -> Vec<StoreResult<Written>> {
    let n = batch.len();
    let results = store.write_batch(batch).await.unwrap_or_else(|e| panic!("write_batch failed as a whole: {e}"));
    assert_eq!(results.len(), n, "write_batch must answer once per item");
    results
}

/// Writes one activity that must be stored (new or replayed).
pub async fn write_one(store: &dyn Store, activity: NewActivity) -> Written {
    let mut results = write(store, vec![activity]).await;
    results.pop().expect("one result").unwrap_or_else(|e| panic!("write of one activity failed: {e}"))
}

/// Every activity of a conversation, as the admin sees them, read in chunks (a
/// backend may answer fewer than `limit`, e.g. capped at `PageRequest::MAX_LIMIT`).
pub async fn all_activities(store: &dyn Store, conversation_id: Id) -> Vec<Activity> {
    let mut all: Vec<Activity> = Vec::new();
    loop {
        let after = all.last().map_or(0, |a| a.seq);
        let chunk = store
            .read_range(converger_storage::Scope::Admin, conversation_id, after, 500, None)
            .await
            .unwrap_or_else(|e| panic!("read_range: {e}"));
        if chunk.is_empty() {
            return all;
        }
        all.extend(chunk);
    }
}

/// Follows `next` from the first page to the last; returns each page's ids.
pub async fn page_ids<T, F, Fut>(limit: u32, mut fetch: F, id_of: impl Fn(&T) -> Id) -> Vec<Vec<Id>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = fetch(PageRequest { after, limit }).await.unwrap_or_else(|e| panic!("list page: {e}"));
        pages.push(page.items.iter().map(&id_of).collect::<Vec<_>>());
        assert!(pages.len() <= 10_000, "pagination does not end");
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
    }
}

/// A message by `sender`.
pub fn message_by(conversation: &Conversation, sender: &str, text: &str) -> NewActivity {
    NewActivity { sender: sender.to_string(), ..message(conversation, text) }
}

/// A lifecycle activity (`edit`, `delete`, `reaction_add`, `reaction_remove`)
/// by `sender` acting on `target`, with no content: an API key's write
/// (`author_only` false) unless the caller sets it.
pub fn acting(conversation: &Conversation, kind: &str, sender: &str, target: Id) -> NewActivity {
    NewActivity {
        kind: kind.to_string(),
        text: None,
        sender: sender.to_string(),
        target_id: Some(target),
        ..message(conversation, "")
    }
}

/// An edit of `target` by `sender` with new text.
pub fn edit(conversation: &Conversation, sender: &str, target: Id, text: &str) -> NewActivity {
    NewActivity { text: Some(text.to_string()), ..acting(conversation, "edit", sender, target) }
}

/// A `reaction_add` (`add`) or `reaction_remove` of `emoji` by `sender` on `target`.
pub fn reaction(conversation: &Conversation, add: bool, sender: &str, target: Id, emoji: &str) -> NewActivity {
    let kind = if add { "reaction_add" } else { "reaction_remove" };
    NewActivity { text: Some(emoji.to_string()), ..acting(conversation, kind, sender, target) }
}

/// A reply by `sender` to message `parent`.
pub fn reply(conversation: &Conversation, sender: &str, parent: Id, text: &str) -> NewActivity {
    NewActivity { parent_id: Some(parent), ..message_by(conversation, sender, text) }
}

/// `sender` joins the conversation (or has its role and metadata replaced).
pub fn join(conversation: &Conversation, sender: &str, role: Option<&str>, metadata: &str) -> NewActivity {
    NewActivity {
        kind: "member_joined".to_string(),
        text: None,
        sender: sender.to_string(),
        member: Some(MemberChange::Join { role: role.map(str::to_string), metadata: json(metadata) }),
        announce: false,
        ..message(conversation, "")
    }
}

/// `sender` leaves the conversation.
pub fn leave(conversation: &Conversation, sender: &str) -> NewActivity {
    NewActivity {
        kind: "member_left".to_string(),
        text: None,
        sender: sender.to_string(),
        member: Some(MemberChange::Leave),
        announce: false,
        ..message(conversation, "")
    }
}

/// Writes one activity that must be stored now (not a replay); answers it.
pub async fn write_new(store: &dyn Store, activity: NewActivity) -> Activity {
    match write_one(store, activity).await {
        Written::New(a) => a,
        Written::Replay(a) => panic!("expected a new activity, got a replay of seq {}", a.seq),
    }
}

/// The one activity with `id` in the conversation's log, as `read_range` shows it.
pub async fn read_one(store: &dyn Store, conversation_id: Id, id: Id) -> Activity {
    let all = all_activities(store, conversation_id).await;
    all.into_iter().find(|a| a.id == id).unwrap_or_else(|| panic!("activity {id} is not in the log"))
}

// ---------------------------------------------------------------------------
// Assertions

/// The item must have been refused with exactly `refusal`.
#[track_caller]
pub fn assert_refused(result: &StoreResult<Written>, refusal: Refusal, what: &str) {
    match result {
        Err(StoreError::Refused(r)) if *r == refusal => {}
        other => panic!("{what}: expected Refused({refusal:?}), got {other:?}"),
    }
}

/// Writes one item that must be refused with exactly `refusal`, and checks
/// that it wrote nothing (the conversation's last seq did not move).
pub async fn assert_write_refused(store: &dyn Store, item: NewActivity, refusal: Refusal, what: &str) {
    let conversation_id = item.conversation_id;
    let before = store.get_conversation(converger_storage::Scope::Admin, conversation_id).await.map(|c| c.last_seq);
    let result = write(store, vec![item]).await.pop().expect("one result");
    assert_refused(&result, refusal, what);
    let after = store.get_conversation(converger_storage::Scope::Admin, conversation_id).await.map(|c| c.last_seq);
    assert_eq!(before.ok(), after.ok(), "{what}: a refused item writes nothing");
}

/// The call must answer exactly `NotFound(entity)`.
#[track_caller]
pub fn assert_not_found<T: Debug>(result: StoreResult<T>, entity: Entity, what: &str) {
    match result {
        Err(StoreError::NotFound(e)) if e == entity => {}
        other => panic!("{what}: expected NotFound({entity}), got {other:?}"),
    }
}

/// Ids must be strictly increasing (id order = creation order, no duplicate).
#[track_caller]
pub fn assert_ascending(ids: &[Id], what: &str) {
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{what}: ids not strictly ascending: {} then {}", pair[0], pair[1]);
    }
}
