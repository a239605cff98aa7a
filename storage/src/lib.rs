//! Converger storage: the [`Store`] trait over the whole data model, and its two
//! backends — [`embedded`] (SQLite, the default, nothing to install) and
//! [`postgres`] (tokio-postgres, when `DATABASE_URL` is set).
//!
//! Invariants every backend keeps, checked by the conformance suite in
//! `tests/conformance.rs`:
//! - seq is assigned here, inside the batch's transaction, 1, 2, 3 … per
//!   conversation with no gap, even when batches for one conversation race;
//! - an idempotency key seen before in a conversation returns the original
//!   activity and writes nothing;
//! - an activity and its delivery rows commit together or not at all;
//! - every read and write is scoped: another tenant's id answers `NotFound`;
//! - the database itself enforces unique (conversation_id, seq), unique
//!   (conversation_id, idempotency_key), unique (activity_id, channel_id) and
//!   every foreign key;
//! - a claimed delivery is leased: no second claimer gets it until the lease ends.
#![forbid(unsafe_code)]

pub mod embedded;
mod error;
mod events;
mod full;
mod json;
mod lifecycle;
mod model;
pub mod postgres;
mod signing_key;
mod tenant_limits;
mod time;

use std::time::Duration;

use async_trait::async_trait;

/// `last_error` of a delivery given up because its last attempt never recorded an outcome.
pub const UNFINISHED_ATTEMPT: &str = "the last attempt did not finish before its lease ran out";

/// `last_error` of a delivery cancelled because its message was deleted first.
pub const CANCELLED_BY_DELETE: &str = "cancelled: the message was deleted before it was delivered";

fn gave_up(max_attempts: i32) -> String {
    format!("gave up after {max_attempts} attempts: {UNFINISHED_ATTEMPT}")
}

pub use error::{Entity, Refusal, StoreError, StoreResult};
pub use events::Event;
pub use events::{
    EventClaim, EventEndpoint, EventEndpointPatch, EventFilter, EventType, NewEventEndpoint, PresenceChange,
    ENDPOINT_DELETED,
};
pub use json::Json;
pub use model::*;
pub use signing_key::{KeyMaterial, SigningKey, SigningKeyInfo};
pub use time::Timestamp;

/// The storage engine. All methods may be called concurrently from any thread;
/// the futures are runtime-agnostic (they wait on channels, not on a reactor).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and metrics: `embedded` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether `write_batch` calls commit in the order their futures are first
    /// polled, with seqs assigned in that order, so that one caller may keep
    /// several in flight and still see its commits in submission order (the
    /// embedded store: one writer thread, first in, first committed). When
    /// false, a caller that needs commit order keeps one write at a time.
    fn ordered_writes(&self) -> bool {
        false
    }

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    // Tenants (admin only: tenants are not scoped).
    async fn create_tenant(&self, new: NewTenant) -> StoreResult<Tenant>;
    async fn get_tenant(&self, id: Id) -> StoreResult<Tenant>;
    async fn tenant_by_api_key_hash(&self, hash: &[u8; 32]) -> StoreResult<Tenant>;
    async fn list_tenants(&self, page: PageRequest) -> StoreResult<Page<Tenant>>;
    async fn update_tenant(&self, id: Id, patch: TenantPatch) -> StoreResult<Tenant>;

    // Channels.
    async fn create_channel(&self, new: NewChannel) -> StoreResult<Channel>;
    async fn get_channel(&self, scope: Scope, id: Id) -> StoreResult<Channel>;
    async fn list_channels(&self, scope: Scope, filter: ChannelFilter, page: PageRequest)
        -> StoreResult<Page<Channel>>;
    async fn update_channel(&self, scope: Scope, id: Id, patch: ChannelPatch) -> StoreResult<Channel>;

    // Conversations.
    /// Fails with `NotFound(Channel)` when the channel is not the tenant's,
    /// `ChannelInactive`, or `Conflict` when the external_id is taken on the channel.
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<Conversation>;
    /// The conversation with this external_id on the channel, created when missing.
    /// Returns it and whether it was created now. `Invalid` without an external_id.
    async fn find_or_create_conversation(&self, new: NewConversation) -> StoreResult<(Conversation, bool)>;
    async fn get_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation>;
    async fn list_conversations(
        &self,
        scope: Scope,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Conversation>>;
    async fn close_conversation(&self, scope: Scope, id: Id) -> StoreResult<Conversation>;
    async fn update_conversation(&self, scope: Scope, id: Id, patch: ConversationPatch) -> StoreResult<Conversation>;

    // Activities.
    /// Commits many activities of many conversations, with their delivery rows, in
    /// one transaction. Items keep their order; each answers on its own
    /// (`NotFound(Conversation)`, `ConversationClosed`). An idempotency key already
    /// stored answers `Replay` even when the conversation has closed since: the
    /// write it repeats did succeed. A channel named twice in `deliver_to` gets one
    /// delivery row. The outer error means nothing of the batch was written.
    async fn write_batch(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>>;
    /// One activity by id (a delivery names its activity this way).
    async fn get_activity(&self, scope: Scope, id: Id) -> StoreResult<Activity>;
    /// Activities with seq > `after_seq`, in seq order, at most `limit` (clamped to
    /// 1..=[`PageRequest::MAX_LIMIT`] like every page), messages with their
    /// current state; `reader` is who `ReactionCount::me` is about.
    async fn read_range(
        &self,
        scope: Scope,
        conversation_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>>;
    /// The replies to message `parent_id` (its thread) with seq > `after_seq`,
    /// like [`Store::read_range`]. `NotFound(Activity)` when the parent is not a
    /// message of the conversation.
    async fn read_replies(
        &self,
        scope: Scope,
        conversation_id: Id,
        parent_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>>;

    // Members (joining and leaving go through `write_batch`, as activities).
    async fn get_member(&self, scope: Scope, conversation_id: Id, sender: &str) -> StoreResult<Member>;
    async fn list_members(&self, scope: Scope, conversation_id: Id, page: PageRequest) -> StoreResult<Page<Member>>;
    /// Moves the member's read and delivered seqs forward; a seq at or below
    /// the stored one changes nothing. Answers the member and whether anything
    /// moved. `Refused(NotMember)`, `Refused(ReceiptAhead)` past the last seq.
    async fn update_receipts(
        &self,
        scope: Scope,
        conversation_id: Id,
        sender: &str,
        receipts: Receipts,
    ) -> StoreResult<(Member, bool)>;
    /// Active conversations where `sender` is a member, at most `limit`, newest membership first.
    async fn member_conversations(&self, tenant_id: Id, sender: &str, limit: u32) -> StoreResult<Vec<Id>>;
    /// Records that `sender` of the tenant was last connected at `at`.
    async fn set_last_seen(&self, tenant_id: Id, sender: &str, at: Timestamp) -> StoreResult<()>;

    // Deliveries.
    async fn get_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery>;
    async fn list_deliveries(
        &self,
        scope: Scope,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// Leases up to `limit` pending deliveries due at `now`, oldest due first: each
    /// gets `attempts + 1` and `next_attempt_at = now + lease`, so it returns to the
    /// queue by itself if the claimer dies before completing it.
    ///
    /// A claim counts as an attempt even if no outcome is ever recorded for it
    /// (the worker died, the attempt panicked): a due delivery that already
    /// has `max_attempts` is not leased again but marked `failed` (its
    /// `last_error` says the last attempt never finished), so the cap holds
    /// whatever happens to the attempts.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records the outcome of the claim that made `attempts` equal to
    /// `attempt`. A claim whose lease ran out and was claimed again since (or a
    /// delivery no longer pending) answers `Conflict` and changes nothing, so a
    /// slow worker can never overwrite a later claimer's outcome.
    async fn complete_delivery(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Delivery>;
    /// Several outcomes, each fenced and answered as
    /// [`Store::complete_delivery`] answers it, in one write where the backend
    /// can (the delivery worker records outcomes in groups). `Err` as a whole
    /// only when the write itself failed: then none of them is recorded.
    async fn complete_deliveries(
        &self,
        outcomes: Vec<(Id, i32, DeliveryOutcome)>,
    ) -> StoreResult<Vec<StoreResult<Delivery>>> {
        let mut answers = Vec::with_capacity(outcomes.len());
        for (id, attempt, outcome) in outcomes {
            answers.push(self.complete_delivery(id, attempt, outcome).await);
        }
        Ok(answers)
    }
    /// Gives back the claim that made `attempts` equal to `attempt` with no
    /// attempt made (the worker held it back, e.g. to pace its channel):
    /// `attempts` goes back down by one and the delivery is due at `due`,
    /// so the claim costs none of its attempts. Fenced like
    /// [`Store::complete_delivery`]: a stale claim answers `Conflict` and
    /// changes nothing.
    async fn release_delivery(&self, id: Id, attempt: i32, due: Timestamp) -> StoreResult<Delivery>;
    /// Merges the keys of `patch` (a JSON object, else `Invalid`) into the delivery's metadata.
    async fn merge_delivery_metadata(&self, scope: Scope, id: Id, patch: Json) -> StoreResult<Delivery>;
    /// The delivery of channel `channel_id` whose metadata has
    /// `"provider_message_id": provider_message_id` (a JSON string, as the
    /// adapters record the provider's id of a sent message), or `None`. No
    /// tenant scope: a channel belongs to one tenant, so its id scopes the
    /// lookup. Should two deliveries of the channel carry the same id, the one
    /// with the lowest id answers. Indexed on both backends.
    async fn find_delivery_by_provider_id(
        &self,
        channel_id: Id,
        provider_message_id: &str,
    ) -> StoreResult<Option<Delivery>>;
    /// Puts a failed delivery back in the queue, due now, with its attempts reset.
    async fn retry_delivery(&self, scope: Scope, id: Id) -> StoreResult<Delivery>;

    // Tenants' signing keys (see `signing_key`).
    /// Stores a new key. `NotFound(Tenant)` for an unknown tenant, `Conflict`
    /// for a kid already taken.
    async fn create_signing_key(&self, key: SigningKey) -> StoreResult<SigningKey>;
    /// The key named `kid`, whatever its tenant (a token's verification looks
    /// it up before it knows the tenant); `NotFound(SigningKey)`.
    async fn signing_key(&self, kid: &str) -> StoreResult<SigningKey>;
    /// Every key of the tenant, oldest first.
    async fn list_signing_keys(&self, tenant_id: Id) -> StoreResult<Vec<SigningKey>>;
    /// Deletes the tenant's key `kid` and answers it; another tenant's key
    /// answers `NotFound(SigningKey)` like a missing one.
    async fn delete_signing_key(&self, tenant_id: Id, kid: &str) -> StoreResult<SigningKey>;

    // Lifecycle events (see `events`).
    /// Stores a new event endpoint. `NotFound(Tenant)` for an unknown tenant.
    async fn create_event_endpoint(&self, new: NewEventEndpoint) -> StoreResult<EventEndpoint>;
    /// The tenant's endpoint `id` (not deleted); `NotFound(EventEndpoint)`.
    async fn get_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint>;
    /// The tenant's endpoints (not deleted), oldest first, at most `limit`.
    async fn list_event_endpoints(&self, tenant_id: Id, limit: u32) -> StoreResult<Vec<EventEndpoint>>;
    async fn update_event_endpoint(
        &self,
        tenant_id: Id,
        id: Id,
        patch: EventEndpointPatch,
    ) -> StoreResult<EventEndpoint>;
    /// Deletes the endpoint: it gets no new events, and its pending ones fail
    /// ([`ENDPOINT_DELETED`]) in the same transaction.
    async fn delete_event_endpoint(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint>;
    /// The event types at least one of the tenant's endpoints takes (what the
    /// write paths' caches remember).
    async fn event_types(&self, tenant_id: Id) -> StoreResult<Vec<EventType>>;
    /// Records a user's debounced presence transition ([`PresenceChange`]):
    /// going offline stores the last seen time; with `announce`, the
    /// `user.online` / `user.offline` events are written in the same
    /// transaction. `NotFound(Tenant)` for an unknown tenant.
    async fn record_presence(&self, tenant_id: Id, sender: &str, change: PresenceChange) -> StoreResult<()>;
    async fn get_event(&self, scope: Scope, id: Id) -> StoreResult<Event>;
    async fn list_events(&self, scope: Scope, filter: EventFilter, page: PageRequest) -> StoreResult<Page<Event>>;
    /// Leases due pending events like [`Store::claim_deliveries`] (same
    /// attempts cap, same lease), each with its endpoint as it is now.
    async fn claim_events(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<EventClaim>>;
    /// Records an attempt's outcome, fenced like [`Store::complete_delivery`]
    /// (`Conflict` for a stale claim). A `Delivered` outcome's metadata is ignored.
    async fn complete_event(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Event>;

    async fn stats(&self) -> StoreResult<Stats>;
}
