//! Test doubles (unit tests only): a [`StubStore`] whose `ping` succeeds or
//! fails on demand and whose every other method answers `Unavailable`, so the
//! API and the server can be exercised without a database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use converger_storage::*;

#[derive(Default)]
pub struct StubStore {
    pub down: AtomicBool,
}

impl StubStore {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn no<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable("stub store".into()))
}

#[async_trait]
impl Store for StubStore {
    fn backend(&self) -> &'static str {
        "stub"
    }
    async fn ping(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            no()
        } else {
            Ok(())
        }
    }
    async fn create_tenant(&self, _: NewTenant) -> StoreResult<Tenant> {
        no()
    }
    async fn get_tenant(&self, _: Id) -> StoreResult<Tenant> {
        no()
    }
    async fn tenant_by_api_key_hash(&self, _: &[u8; 32]) -> StoreResult<Tenant> {
        no()
    }
    async fn list_tenants(&self, _: PageRequest) -> StoreResult<Page<Tenant>> {
        no()
    }
    async fn update_tenant(&self, _: Id, _: TenantPatch) -> StoreResult<Tenant> {
        no()
    }
    async fn create_channel(&self, _: NewChannel) -> StoreResult<Channel> {
        no()
    }
    async fn get_channel(&self, _: Scope, _: Id) -> StoreResult<Channel> {
        no()
    }
    async fn list_channels(&self, _: Scope, _: ChannelFilter, _: PageRequest) -> StoreResult<Page<Channel>> {
        no()
    }
    async fn update_channel(&self, _: Scope, _: Id, _: ChannelPatch) -> StoreResult<Channel> {
        no()
    }
    async fn create_conversation(&self, _: NewConversation) -> StoreResult<Conversation> {
        no()
    }
    async fn find_or_create_conversation(&self, _: NewConversation) -> StoreResult<(Conversation, bool)> {
        no()
    }
    async fn get_conversation(&self, _: Scope, _: Id) -> StoreResult<Conversation> {
        no()
    }
    async fn list_conversations(
        &self,
        _: Scope,
        _: ConversationFilter,
        _: PageRequest,
    ) -> StoreResult<Page<Conversation>> {
        no()
    }
    async fn close_conversation(&self, _: Scope, _: Id) -> StoreResult<Conversation> {
        no()
    }
    async fn write_batch(&self, _: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
        no()
    }
    async fn read_range(&self, _: Scope, _: Id, _: i64, _: u32, _: Option<&str>) -> StoreResult<Vec<Activity>> {
        no()
    }
    async fn update_conversation(&self, _: Scope, _: Id, _: ConversationPatch) -> StoreResult<Conversation> {
        no()
    }
    async fn read_replies(
        &self,
        _: Scope,
        _: Id,
        _: Id,
        _: i64,
        _: u32,
        _: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        no()
    }
    async fn get_member(&self, _: Scope, _: Id, _: &str) -> StoreResult<Member> {
        no()
    }
    async fn list_members(&self, _: Scope, _: Id, _: PageRequest) -> StoreResult<Page<Member>> {
        no()
    }
    async fn update_receipts(&self, _: Scope, _: Id, _: &str, _: Receipts) -> StoreResult<(Member, bool)> {
        no()
    }
    async fn member_conversations(&self, _: Id, _: &str, _: u32) -> StoreResult<Vec<Id>> {
        no()
    }
    async fn create_event_endpoint(&self, _: NewEventEndpoint) -> StoreResult<EventEndpoint> {
        no()
    }
    async fn get_event_endpoint(&self, _: Id, _: Id) -> StoreResult<EventEndpoint> {
        no()
    }
    async fn list_event_endpoints(&self, _: Id, _: u32) -> StoreResult<Vec<EventEndpoint>> {
        no()
    }
    async fn update_event_endpoint(&self, _: Id, _: Id, _: EventEndpointPatch) -> StoreResult<EventEndpoint> {
        no()
    }
    async fn delete_event_endpoint(&self, _: Id, _: Id) -> StoreResult<EventEndpoint> {
        no()
    }
    async fn event_types(&self, _: Id) -> StoreResult<Vec<EventType>> {
        Ok(Vec::new())
    }
    async fn record_presence(&self, _: Id, _: &str, _: PresenceChange) -> StoreResult<()> {
        no()
    }
    async fn get_event(&self, _: Scope, _: Id) -> StoreResult<Event> {
        no()
    }
    async fn list_events(&self, _: Scope, _: EventFilter, _: PageRequest) -> StoreResult<Page<Event>> {
        no()
    }
    async fn claim_events(&self, _: Timestamp, _: u32, _: Duration, _: i32) -> StoreResult<Vec<EventClaim>> {
        no()
    }
    async fn complete_event(&self, _: Id, _: i32, _: DeliveryOutcome) -> StoreResult<Event> {
        no()
    }
    async fn set_last_seen(&self, _: Id, _: &str, _: Timestamp) -> StoreResult<()> {
        no()
    }
    async fn get_delivery(&self, _: Scope, _: Id) -> StoreResult<Delivery> {
        no()
    }
    async fn list_deliveries(&self, _: Scope, _: DeliveryFilter, _: PageRequest) -> StoreResult<Page<Delivery>> {
        no()
    }
    async fn claim_deliveries(&self, _: Timestamp, _: u32, _: Duration, _: i32) -> StoreResult<Vec<Delivery>> {
        no()
    }
    async fn get_activity(&self, _: Scope, _: Id) -> StoreResult<Activity> {
        Err(StoreError::NotFound(converger_storage::Entity::Activity))
    }

    async fn complete_delivery(&self, _: Id, _: i32, _: DeliveryOutcome) -> StoreResult<Delivery> {
        no()
    }
    async fn release_delivery(&self, _: Id, _: i32, _: Timestamp) -> StoreResult<Delivery> {
        no()
    }
    async fn merge_delivery_metadata(&self, _: Scope, _: Id, _: Json) -> StoreResult<Delivery> {
        no()
    }
    async fn find_delivery_by_provider_id(&self, _: Id, _: &str) -> StoreResult<Option<Delivery>> {
        no()
    }
    async fn retry_delivery(&self, _: Scope, _: Id) -> StoreResult<Delivery> {
        no()
    }
    async fn create_signing_key(&self, _: SigningKey) -> StoreResult<SigningKey> {
        no()
    }
    async fn signing_key(&self, _: &str) -> StoreResult<SigningKey> {
        no()
    }
    async fn list_signing_keys(&self, _: Id) -> StoreResult<Vec<SigningKey>> {
        no()
    }
    async fn delete_signing_key(&self, _: Id, _: &str) -> StoreResult<SigningKey> {
        no()
    }
    async fn stats(&self) -> StoreResult<Stats> {
        no()
    }
}

/// A tenant, a channel and a conversation in `store`: (tenant id, conversation id).
pub async fn conversation_in(store: &dyn Store) -> (Id, Id) {
    let t = store
        .create_tenant(NewTenant {
            name: "t".into(),
            api_key_hash: *new_id().as_bytes().repeat(2).first_chunk().expect("32 bytes"),
        })
        .await
        .expect("tenant");
    let ch = NewChannel {
        tenant_id: t.id,
        name: "c".into(),
        kind: "websocket".into(),
        secret: "s".into(),
        config: Json::empty_object(),
    };
    let ch = store.create_channel(ch).await.expect("channel");
    let conv = NewConversation {
        tenant_id: t.id,
        channel_id: ch.id,
        metadata: Json::empty_object(),
        external_id: None,
        members_only: false,
    };
    (t.id, store.create_conversation(conv).await.expect("conversation").id)
}

/// A message activity to publish.
pub fn message(tenant: Id, conversation: Id) -> NewActivity {
    NewActivity {
        id: new_id(),
        tenant_id: tenant,
        conversation_id: conversation,
        kind: "message".into(),
        text: Some("hi".into()),
        attachments: None,
        sender: "u".into(),
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

/// A monoio runtime (epoll, with timers) for tests that drive shard code.
pub fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime")
}
