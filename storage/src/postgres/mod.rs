//! PostgreSQL backend (tokio-postgres).
//!
//! Layout: [`io`] runs the sockets on one "pg-io" thread; [`pool`] lends
//! clients to callers on any executor; [`migrate`] applies `migrations/`;
//! the entity files hold the queries; [`bulk`] holds the two ways of inserting
//! a batch's rows (UNNEST arrays or binary COPY).
//!
//! Every statement is tenant-scoped where the trait says so: a row of another
//! tenant is filtered out in SQL and answers `NotFound`, like a missing one.

mod activities;
mod bulk;
mod channels;
mod conversations;
mod deliveries;
mod errors;
mod events;
mod io;
mod members;
mod migrate;
mod pool;
mod query;
mod rows;
mod seqs;
mod signing_keys;
mod tenants;
mod types;

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Config;

pub use bulk::BulkInsert;

use crate::{
    Activity, Channel, ChannelFilter, ChannelPatch, Conversation, ConversationFilter, ConversationPatch, Delivery,
    DeliveryFilter, DeliveryOutcome, Event, EventClaim, EventEndpoint, EventEndpointPatch, EventFilter, EventType, Id,
    Json, Member, NewActivity, NewChannel, NewConversation, NewEventEndpoint, NewTenant, Page, PageRequest,
    PresenceChange, Receipts, Scope, SigningKey, Stats, Store, StoreError, StoreResult, Tenant, TenantPatch, Timestamp,
    Written,
};
use io::IoThread;
use pool::{quote_ident, Pool};

/// Options for [`PgStore::connect`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the pool: at most this many operations run at once.
    pub pool_size: usize,
    /// Apply pending migrations before returning.
    pub migrate: bool,
    /// Work inside this schema (created when missing) instead of the URL's
    /// search_path: every connection gets `SET search_path TO <schema>`. Lets
    /// tests share one database, a schema each.
    pub schema: Option<String>,
    /// How `write_batch` inserts activities and delivery rows.
    pub bulk: BulkInsert,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { pool_size: 4, migrate: true, schema: None, bulk: BulkInsert::default() }
    }
}

/// The PostgreSQL store; cheap to share behind an `Arc`.
pub struct PgStore {
    pool: Pool,
    bulk: BulkInsert,
    seqs: seqs::SeqCache,
    /// Whether batches fail for want of space, for the log (`full.rs`).
    full: crate::full::FullWatch,
}

impl PgStore {
    /// Connects to `url` (a libpq-style URL or key=value string). Blocking: it
    /// starts the I/O thread that drives the connections, opens the first one,
    /// creates `opts.schema` when set and applies migrations when `opts.migrate`.
    pub fn connect(url: &str, opts: PgOptions) -> StoreResult<PgStore> {
        let store = PgStore::open(url, &opts)?;
        store.init(opts.schema.clone(), opts.migrate)?;
        Ok(store)
    }

    fn open(url: &str, opts: &PgOptions) -> StoreResult<PgStore> {
        let mut config: Config = url.parse().map_err(|e| StoreError::Internal(format!("invalid database url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("converger");
        }
        let io = IoThread::start()?;
        let pool = Pool::new(config, io, opts.pool_size, opts.schema.as_deref());
        Ok(PgStore {
            pool,
            bulk: opts.bulk,
            seqs: seqs::SeqCache::default(),
            full: crate::full::FullWatch::new("postgres"),
        })
    }

    /// Blocking: creates the schema, migrates; returns the migrations applied.
    fn init(&self, schema: Option<String>, migrate: bool) -> StoreResult<Vec<String>> {
        let pool = self.pool.clone();
        self.pool.io().block_on(async move {
            let mut conn = pool.get().await?;
            if let Some(schema) = schema {
                let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&schema));
                match conn.client.batch_execute(&sql).await.map_err(errors::map_err) {
                    // IF NOT EXISTS does not cover a concurrent creation: both
                    // see no schema, one insert wins and the other hits the
                    // catalog's unique index. Either way the schema now exists.
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if migrate {
                migrate::apply(&mut conn).await
            } else {
                conn.client.batch_execute("SELECT 1").await.map_err(errors::map_err)?;
                Ok(Vec::new())
            }
        })
    }
}

/// Applies pending migrations to the database at `url` and returns the names
/// applied (empty when it was up to date). Blocking; for `converger migrate`.
pub fn migrate(url: &str) -> StoreResult<Vec<String>> {
    migrate_with(url, &PgOptions { pool_size: 1, ..PgOptions::default() })
}

/// [`migrate`] honouring `opts.schema`.
pub fn migrate_with(url: &str, opts: &PgOptions) -> StoreResult<Vec<String>> {
    PgStore::open(url, opts)?.init(opts.schema.clone(), true)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        let conn = self.pool.get().await?;
        conn.client.batch_execute("SELECT 1").await.map_err(errors::map_err)
    }

    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant> {
        self.create_tenant_impl(new).await
    }

    async fn get_tenant(&self, id: Id) -> StoreResult<Tenant> {
        self.get_tenant_impl(id).await
    }

    async fn tenant_by_api_key_hash(&self, hash: &[u8; 32]) -> StoreResult<Tenant> {
        self.tenant_by_api_key_hash_impl(hash).await
    }

    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        self.list_tenants_impl(page).await
    }

    async fn update_tenant(&self, id: Id, patch: TenantPatch) -> StoreResult<Tenant> {
        self.update_tenant_impl(id, patch).await
    }

    async fn create_channel(&self, new: NewChannel) -> StoreResult<Channel> {
        self.create_channel_impl(new).await
    }

    async fn get_channel(&self, scope: Scope, id: Id) -> StoreResult<Channel> {
        self.get_channel_impl(scope, id).await
    }

    async fn list_channels(
        &self,
        scope: Scope,
        filter: ChannelFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Channel>> {
        self.list_channels_impl(scope, filter, page).await
    }

    async fn update_channel(&self, scope: Scope, id: Id, patch: ChannelPatch) -> StoreResult<Channel> {
        self.update_channel_impl(scope, id, patch).await
    }

    async fn create_conversation(&self, new: NewConversation) -> StoreResult<Conversation> {
        self.create_conversation_impl(new).await
    }

    async fn find_or_create_conversation(&self, new: NewConversation) -> StoreResult<(Conversation, bool)> {
        self.find_or_create_conversation_impl(new).await
    }

    async fn get_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        self.get_conversation_impl(scope, id).await
    }

    async fn list_conversations(
        &self,
        scope: Scope,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Conversation>> {
        self.list_conversations_impl(scope, filter, page).await
    }

    async fn close_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        self.close_conversation_impl(scope, id).await
    }

    async fn update_conversation(&self, scope: Scope, id: Id, patch: ConversationPatch) -> StoreResult<Conversation> {
        self.update_conversation_impl(scope, id, patch).await
    }

    async fn write_batch(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
        let result = self.write_batch_impl(batch).await;
        self.full.observe(&result);
        result
    }

    async fn get_activity(&self, scope: Scope, id: Id) -> StoreResult<Activity> {
        self.get_activity_impl(scope, id).await
    }

    async fn read_range(
        &self,
        scope: Scope,
        conversation_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        self.read_range_impl(scope, conversation_id, after_seq, limit, reader).await
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
        self.read_replies_impl(scope, conversation_id, parent_id, after_seq, limit, reader).await
    }

    async fn get_member(&self, scope: Scope, conversation_id: Id, sender: &str) -> StoreResult<Member> {
        self.get_member_impl(scope, conversation_id, sender).await
    }

    async fn list_members(&self, scope: Scope, conversation_id: Id, page: PageRequest) -> StoreResult<Page<Member>> {
        self.list_members_impl(scope, conversation_id, page).await
    }

    async fn update_receipts(
        &self,
        scope: Scope,
        conversation_id: Id,
        sender: &str,
        receipts: Receipts,
    ) -> StoreResult<(Member, bool)> {
        self.update_receipts_impl(scope, conversation_id, sender, receipts).await
    }

    async fn member_conversations(&self, tenant_id: Id, sender: &str, limit: u32) -> StoreResult<Vec<Id>> {
        self.member_conversations_impl(tenant_id, sender, limit).await
    }

    async fn set_last_seen(&self, tenant_id: Id, sender: &str, at: Timestamp) -> StoreResult<()> {
        self.set_last_seen_impl(tenant_id, sender, at).await
    }

    async fn get_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        self.get_delivery_impl(scope, id).await
    }

    async fn list_deliveries(
        &self,
        scope: Scope,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        self.list_deliveries_impl(scope, filter, page).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<Delivery>> {
        self.claim_deliveries_impl(now, limit, lease, max_attempts).await
    }

    async fn complete_delivery(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Delivery> {
        self.complete_delivery_impl(id, attempt, outcome).await
    }
    async fn complete_deliveries(
        &self,
        outcomes: Vec<(Id, i32, DeliveryOutcome)>,
    ) -> StoreResult<Vec<StoreResult<Delivery>>> {
        self.complete_deliveries_impl(outcomes).await
    }

    async fn release_delivery(&self, id: Id, attempt: i32, due: Timestamp) -> StoreResult<Delivery> {
        self.release_delivery_impl(id, attempt, due).await
    }

    async fn merge_delivery_metadata(&self, scope: Scope, id: Id, patch: Json) -> StoreResult<Delivery> {
        self.merge_delivery_metadata_impl(scope, id, patch).await
    }

    async fn find_delivery_by_provider_id(
        &self,
        channel_id: Id,
        provider_message_id: &str,
    ) -> StoreResult<Option<Delivery>> {
        self.find_delivery_by_provider_id_impl(channel_id, provider_message_id).await
    }

    async fn retry_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        self.retry_delivery_impl(scope, id).await
    }

    async fn create_signing_key(&self, key: SigningKey) -> StoreResult<SigningKey> {
        self.create_signing_key_impl(key).await
    }

    async fn signing_key(&self, kid: &str) -> StoreResult<SigningKey> {
        self.signing_key_impl(kid).await
    }

    async fn list_signing_keys(&self, tenant_id: Id) -> StoreResult<Vec<SigningKey>> {
        self.list_signing_keys_impl(tenant_id).await
    }

    async fn delete_signing_key(&self, tenant_id: Id, kid: &str) -> StoreResult<SigningKey> {
        self.delete_signing_key_impl(tenant_id, kid).await
    }

    async fn create_event_endpoint(&self, new: NewEventEndpoint) -> StoreResult<EventEndpoint> {
        self.create_event_endpoint_impl(new).await
    }

    async fn get_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        self.get_event_endpoint_impl(tenant_id, id).await
    }

    async fn list_event_endpoints(&self, tenant_id: Id, limit: u32) -> StoreResult<Vec<EventEndpoint>> {
        self.list_event_endpoints_impl(tenant_id, limit).await
    }

    async fn update_event_endpoint(
        &self,
        tenant_id: Id,
        id: Id,
        patch: EventEndpointPatch,
    ) -> StoreResult<EventEndpoint> {
        self.update_event_endpoint_impl(tenant_id, id, patch).await
    }

    async fn delete_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        self.delete_event_endpoint_impl(tenant_id, id).await
    }

    async fn event_types(&self, tenant_id: Id) -> StoreResult<Vec<EventType>> {
        self.event_types_impl(tenant_id).await
    }

    async fn record_presence(&self, tenant_id: Id, sender: &str, change: PresenceChange) -> StoreResult<()> {
        self.record_presence_impl(tenant_id, sender, change).await
    }

    async fn get_event(&self, scope: Scope, id: Id) -> StoreResult<Event> {
        self.get_event_impl(scope, id).await
    }

    async fn list_events(&self, scope: Scope, filter: EventFilter, page: PageRequest) -> StoreResult<Page<Event>> {
        self.list_events_impl(scope, filter, page).await
    }

    async fn claim_events(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<EventClaim>> {
        self.claim_events_impl(now, limit, lease, max_attempts).await
    }

    async fn complete_event(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Event> {
        self.complete_event_impl(id, attempt, outcome).await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.stats_impl().await
    }
}
