//! Embedded backend: SQLite in WAL mode with `synchronous=FULL`, one writer
//! thread doing group commit, reader threads on their own connections. The
//! database is one file, `converger.db`, in the data directory.
//!
//! Every operation is a closure shipped to the right thread; its answer comes back
//! on a oneshot channel, so the futures run on any executor.

mod activities;
mod crud;
mod deliveries;
mod events;
#[cfg(test)]
mod full_tests;
mod known;
mod members;
mod query;
mod rows;
mod schema;
mod signing_keys;
mod worker;
#[cfg(test)]
mod worker_tests;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use crate::*;
use worker::{BatchJob, ReadJob, Write};

/// The database file inside the data directory.
pub const DB_FILE: &str = "converger.db";

/// Options for [`EmbeddedStore::open`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Reader threads (each with its own connection).
    pub readers: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { readers: 2 }
    }
}

/// The embedded store; share it behind an `Arc`. Dropping it lets the writer
/// finish what is queued, checkpoint the WAL, and stop.
pub struct EmbeddedStore {
    path: PathBuf,
    writer: Option<mpsc::Sender<Write>>,
    readers: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped to stop the background checkpointer (joined first, before the
    /// writer's final checkpoint).
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `dir`. Blocking: call before
    /// entering an async runtime or from a blocking context.
    pub fn open(dir: &Path, opts: EmbeddedOptions) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create data directory {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let mut conn = schema::open_connection(&path, false)?;
        schema::prepare(&mut conn)?;

        let mut threads = Vec::new();
        let (writer_tx, writer_rx) = mpsc::channel::<Write>();
        let writer_dir = dir.to_path_buf();
        threads.push(spawn("store-writer", move || worker::writer_loop(conn, writer_rx, writer_dir))?);

        let (reader_tx, reader_rx) = mpsc::channel::<ReadJob>();
        let reader_rx = Arc::new(Mutex::new(reader_rx));
        for i in 0..opts.readers.max(1) {
            let conn = schema::open_connection(&path, true)?;
            let rx = Arc::clone(&reader_rx);
            threads.push(spawn(&format!("store-reader-{i}"), move || worker::reader_loop(conn, rx))?);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let conn = schema::open_connection(&path, false)?;
        let checkpointer = spawn("store-checkpoint", move || worker::checkpoint_loop(conn, stopped))?;
        Ok(EmbeddedStore {
            path,
            writer: Some(writer_tx),
            readers: Some(reader_tx),
            threads,
            checkpointer: Some((stop, checkpointer)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (job, answer) = worker::boxed_job(f);
        self.writer.as_ref().ok_or_else(closed)?.send(Write::Job(job)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (job, answer) = worker::read_job(f);
        self.readers.as_ref().ok_or_else(closed)?.send(job).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        self.writer.take();
        self.readers.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> StoreResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| StoreError::Unavailable(format!("cannot start thread {name}: {e}")))
}

fn closed() -> StoreError {
    StoreError::Unavailable("the embedded store is shut down".into())
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    /// One writer thread takes jobs first in, first committed; a job is sent
    /// when its future is first polled.
    fn ordered_writes(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(rows::sql_err)).await
    }

    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant> {
        self.write(move |c| crud::create_tenant(c, new)).await
    }

    async fn get_tenant(&self, id: Id) -> StoreResult<Tenant> {
        self.read(move |c| crud::get_tenant(c, id)).await
    }

    async fn tenant_by_api_key_hash(&self, hash: &[u8; 32]) -> StoreResult<Tenant> {
        let hash = *hash;
        self.read(move |c| crud::tenant_by_api_key_hash(c, &hash)).await
    }

    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        self.read(move |c| crud::list_tenants(c, page)).await
    }

    async fn update_tenant(&self, id: Id, patch: TenantPatch) -> StoreResult<Tenant> {
        self.write(move |c| crud::update_tenant(c, id, patch)).await
    }

    async fn create_channel(&self, new: NewChannel) -> StoreResult<Channel> {
        self.write(move |c| crud::create_channel(c, new)).await
    }

    async fn get_channel(&self, scope: Scope, id: Id) -> StoreResult<Channel> {
        self.read(move |c| crud::get_channel(c, scope, id)).await
    }

    async fn list_channels(
        &self,
        scope: Scope,
        filter: ChannelFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Channel>> {
        self.read(move |c| crud::list_channels(c, scope, filter, page)).await
    }

    async fn update_channel(&self, scope: Scope, id: Id, patch: ChannelPatch) -> StoreResult<Channel> {
        self.write(move |c| crud::update_channel(c, scope, id, patch)).await
    }

    async fn create_conversation(&self, new: NewConversation) -> StoreResult<Conversation> {
        self.write(move |c| crud::create_conversation(c, new)).await
    }

    async fn find_or_create_conversation(&self, new: NewConversation) -> StoreResult<(Conversation, bool)> {
        self.write(move |c| crud::find_or_create_conversation(c, new)).await
    }

    async fn get_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        self.read(move |c| crud::get_conversation(c, scope, id)).await
    }

    async fn list_conversations(
        &self,
        scope: Scope,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Conversation>> {
        self.read(move |c| crud::list_conversations(c, scope, filter, page)).await
    }

    async fn close_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        self.write(move |c| crud::close_conversation(c, scope, id)).await
    }

    async fn update_conversation(&self, scope: Scope, id: Id, patch: ConversationPatch) -> StoreResult<Conversation> {
        self.write(move |c| crud::update_conversation(c, scope, id, patch)).await
    }

    async fn write_batch(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Sent as data, not a closure: the writer merges it with the batches
        // queued next to it into one savepoint (see `worker`).
        let (reply, answer) = futures_channel::oneshot::channel();
        let job = Write::Batch(BatchJob { items: batch, reply });
        self.writer.as_ref().ok_or_else(closed)?.send(job).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn get_activity(&self, scope: Scope, id: Id) -> StoreResult<Activity> {
        self.read(move |c| activities::get_activity(c, scope, id)).await
    }

    async fn read_range(
        &self,
        scope: Scope,
        conversation_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        let reader = reader.map(str::to_owned);
        self.read(move |c| activities::read_range(c, scope, conversation_id, after_seq, limit, reader.as_deref())).await
    }

    async fn read_replies(
        &self,
        scope: Scope,
        conversation_id: Id,
        parent_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        let reader = reader.map(str::to_owned);
        self.read(move |c| {
            activities::read_replies(c, scope, conversation_id, parent_id, after_seq, limit, reader.as_deref())
        })
        .await
    }

    async fn get_member(&self, scope: Scope, conversation_id: Id, sender: &str) -> StoreResult<Member> {
        let sender = sender.to_owned();
        self.read(move |c| members::get_member(c, scope, conversation_id, &sender)).await
    }

    async fn list_members(&self, scope: Scope, conversation_id: Id, page: PageRequest) -> StoreResult<Page<Member>> {
        self.read(move |c| members::list_members(c, scope, conversation_id, page)).await
    }

    async fn update_receipts(
        &self,
        scope: Scope,
        conversation_id: Id,
        sender: &str,
        receipts: Receipts,
    ) -> StoreResult<(Member, bool)> {
        let sender = sender.to_owned();
        self.write(move |c| members::update_receipts(c, scope, conversation_id, &sender, receipts)).await
    }

    async fn member_conversations(&self, tenant_id: Id, sender: &str, limit: u32) -> StoreResult<Vec<Id>> {
        let sender = sender.to_owned();
        self.read(move |c| members::member_conversations(c, tenant_id, &sender, limit)).await
    }

    async fn set_last_seen(&self, tenant_id: Id, sender: &str, at: Timestamp) -> StoreResult<()> {
        let sender = sender.to_owned();
        self.write(move |c| members::set_last_seen(c, tenant_id, &sender, at)).await
    }

    async fn get_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        self.read(move |c| deliveries::get_delivery(c, scope, id)).await
    }

    async fn list_deliveries(
        &self,
        scope: Scope,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        self.read(move |c| deliveries::list_deliveries(c, scope, filter, page)).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<Delivery>> {
        self.write(move |c| deliveries::claim_deliveries(c, now, limit, lease, max_attempts)).await
    }

    async fn complete_delivery(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Delivery> {
        self.write(move |c| deliveries::complete_delivery(c, id, attempt, outcome)).await
    }
    async fn complete_deliveries(
        &self,
        outcomes: Vec<(Id, i32, DeliveryOutcome)>,
    ) -> StoreResult<Vec<StoreResult<Delivery>>> {
        self.write(move |c| deliveries::complete_deliveries(c, outcomes)).await
    }

    async fn release_delivery(&self, id: Id, attempt: i32, due: Timestamp) -> StoreResult<Delivery> {
        self.write(move |c| deliveries::release_delivery(c, id, attempt, due)).await
    }

    async fn merge_delivery_metadata(&self, scope: Scope, id: Id, patch: Json) -> StoreResult<Delivery> {
        self.write(move |c| deliveries::merge_delivery_metadata(c, scope, id, patch)).await
    }

    async fn find_delivery_by_provider_id(
        &self,
        channel_id: Id,
        provider_message_id: &str,
    ) -> StoreResult<Option<Delivery>> {
        let provider_message_id = provider_message_id.to_owned();
        self.read(move |c| deliveries::find_delivery_by_provider_id(c, channel_id, &provider_message_id)).await
    }

    async fn retry_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        self.write(move |c| deliveries::retry_delivery(c, scope, id)).await
    }

    async fn create_signing_key(&self, key: SigningKey) -> StoreResult<SigningKey> {
        self.write(move |c| signing_keys::create(c, key)).await
    }

    async fn signing_key(&self, kid: &str) -> StoreResult<SigningKey> {
        let kid = kid.to_string();
        self.read(move |c| signing_keys::get(c, &kid)).await
    }

    async fn list_signing_keys(&self, tenant_id: Id) -> StoreResult<Vec<SigningKey>> {
        self.read(move |c| signing_keys::list(c, tenant_id)).await
    }

    async fn delete_signing_key(&self, tenant_id: Id, kid: &str) -> StoreResult<SigningKey> {
        let kid = kid.to_string();
        self.write(move |c| signing_keys::delete(c, tenant_id, &kid)).await
    }

    async fn create_event_endpoint(&self, new: NewEventEndpoint) -> StoreResult<EventEndpoint> {
        self.write(move |c| events::create_endpoint(c, new)).await
    }

    async fn get_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        self.read(move |c| events::get_endpoint(c, tenant_id, id)).await
    }

    async fn list_event_endpoints(&self, tenant_id: Id, limit: u32) -> StoreResult<Vec<EventEndpoint>> {
        self.read(move |c| events::list_endpoints(c, tenant_id, limit)).await
    }

    async fn update_event_endpoint(
        &self,
        tenant_id: Id,
        id: Id,
        patch: EventEndpointPatch,
    ) -> StoreResult<EventEndpoint> {
        self.write(move |c| events::update_endpoint(c, tenant_id, id, patch)).await
    }

    async fn delete_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        self.write(move |c| events::delete_endpoint(c, tenant_id, id)).await
    }

    async fn event_types(&self, tenant_id: Id) -> StoreResult<Vec<EventType>> {
        self.read(move |c| events::event_types(c, tenant_id)).await
    }

    async fn record_presence(&self, tenant_id: Id, sender: &str, change: PresenceChange) -> StoreResult<()> {
        let sender = sender.to_owned();
        self.write(move |c| events::record_presence(c, tenant_id, &sender, change)).await
    }

    async fn get_event(&self, scope: Scope, id: Id) -> StoreResult<Event> {
        self.read(move |c| events::get_event(c, scope, id)).await
    }

    async fn list_events(&self, scope: Scope, filter: EventFilter, page: PageRequest) -> StoreResult<Page<Event>> {
        self.read(move |c| events::list_events(c, scope, filter, page)).await
    }

    async fn claim_events(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<EventClaim>> {
        self.write(move |c| events::claim_events(c, now, limit, lease, max_attempts)).await
    }

    async fn complete_event(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Event> {
        self.write(move |c| events::complete_event(c, id, attempt, outcome)).await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.read(deliveries::stats).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    pub(super) fn activity(tenant: Id, conversation: Id, key: Option<&str>) -> NewActivity {
        NewActivity {
            id: new_id(),
            tenant_id: tenant,
            conversation_id: conversation,
            kind: "message".into(),
            text: Some("hi".into()),
            attachments: None,
            sender: "u1".into(),
            metadata: Json::empty_object(),
            idempotency_key: key.map(str::to_string),
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

    #[test]
    fn writes_survive_reopen_with_seq_and_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tenant, conversation) = {
            let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open");
            block_on(async {
                let t = store.create_tenant(NewTenant { name: "t".into(), api_key_hash: [7; 32] }).await.unwrap();
                let ch = store
                    .create_channel(NewChannel {
                        tenant_id: t.id,
                        name: "c".into(),
                        kind: "websocket".into(),
                        secret: "s".into(),
                        config: Json::empty_object(),
                    })
                    .await
                    .unwrap();
                let conv = store
                    .create_conversation(NewConversation {
                        tenant_id: t.id,
                        channel_id: ch.id,
                        metadata: Json::empty_object(),
                        external_id: None,
                        members_only: false,
                    })
                    .await
                    .unwrap();
                let out = store
                    .write_batch(vec![
                        activity(t.id, conv.id, None),
                        activity(t.id, conv.id, Some("k")),
                        activity(t.id, conv.id, Some("k")),
                    ])
                    .await
                    .unwrap();
                let seqs: Vec<(i64, bool)> =
                    out.iter().map(|w| w.as_ref().map(|w| (w.activity().seq, w.is_replay())).unwrap()).collect();
                assert_eq!(seqs, vec![(1, false), (2, false), (2, true)]);
                (t.id, conv.id)
            })
        };
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("reopen");
        block_on(async {
            let got = store.read_range(Scope::Tenant(tenant), conversation, 0, 100, None).await.unwrap();
            assert_eq!(got.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2]);
            let other = store.read_range(Scope::Tenant(new_id()), conversation, 0, 100, None).await;
            assert!(matches!(other, Err(StoreError::NotFound(Entity::Conversation))));
            let out = store.write_batch(vec![activity(tenant, conversation, Some("k"))]).await.unwrap();
            assert_eq!(out[0].as_ref().unwrap().activity().seq, 2);
            assert_eq!(store.stats().await.unwrap().activities, 2);
        });
    }
}
