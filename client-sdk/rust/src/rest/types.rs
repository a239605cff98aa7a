//! What the REST calls answer, as the API shows it (docs/api.md "Objects").

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// A channel (`POST /api/v1/channels`).
#[derive(Clone, Debug, Deserialize)]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub config: Value,
    pub status: String,
    /// Only in the answer to create (and rotate-secret).
    #[serde(default)]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A conversation.
#[derive(Clone, Debug, Deserialize)]
pub struct Conversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
    pub status: String,
    pub metadata: Value,
    pub external_id: Option<String>,
    pub last_seq: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// A client token for one conversation and sender (`POST /api/v1/tokens`).
#[derive(Clone, Debug, Deserialize)]
pub struct Token {
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub conversation_id: Uuid,
}

/// A tenant's key for signing its own client tokens (`/api/v1/signing-keys`).
#[derive(Clone, Debug, Deserialize)]
pub struct SigningKey {
    /// `key_…`: an HS256 token names it in its header's `kid`.
    pub kid: String,
    /// `HS256` or `JWKS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// JWKS keys: where the public keys are published.
    pub jwks_url: Option<String>,
    /// HS256 keys, in the answer that created them only (`cvk_…`; the HMAC
    /// key is its UTF-8 bytes).
    pub secret: Option<String>,
    pub created_at: String,
}

/// Where the tenant's lifecycle events go (`/api/v1/event-endpoints`,
/// docs/api.md "Lifecycle events").
#[derive(Clone, Debug, Deserialize)]
pub struct EventEndpoint {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    /// `conversation.created`, `conversation.closed`, `member.joined`,
    /// `member.left`, `user.online`, `user.offline`, `delivery.failed`.
    pub events: Vec<String>,
    /// `whsec_…`, the Standard Webhooks key the events are signed with: in
    /// the answer that created the endpoint only.
    #[serde(default)]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A lifecycle event queued for an endpoint (`GET /api/v1/events`).
#[derive(Clone, Debug, Deserialize)]
pub struct LifecycleEvent {
    /// The request's `webhook-id` is `msg_` + this id.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// RFC 3339: when the change happened.
    pub created_at: String,
}

#[derive(Deserialize)]
pub(super) struct Listed<T> {
    pub(super) data: Vec<T>,
}

/// A member of a conversation, with its receipts (`…/members`).
#[derive(Clone, Debug, Deserialize)]
pub struct Member {
    pub conversation_id: Uuid,
    pub sender: String,
    pub role: Option<String>,
    pub metadata: Value,
    /// RFC 3339.
    pub joined_at: String,
    /// Read up to and including this seq (0: nothing yet).
    pub read_seq: u64,
    pub delivered_seq: u64,
    /// Messages after `read_seq` from other senders, not deleted.
    pub unread_count: u64,
    /// RFC 3339, when the user was last connected; `None` while online or never seen.
    pub last_seen: Option<String>,
}

/// An activity as REST shows it (times are RFC 3339, JSON values parsed).
#[derive(Clone, Debug, Deserialize)]
pub struct RestActivity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub attachments: Option<Value>,
    pub sender: String,
    pub metadata: Value,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

/// A page of `GET /api/v1/conversations/{id}/activities`.
#[derive(Clone, Debug, Deserialize)]
pub struct ActivityList {
    /// In seq order.
    pub data: Vec<RestActivity>,
    /// The conversation's highest seq.
    pub last_seq: u64,
}

/// One conversation's answer in a [`Rest::broadcast`].
#[derive(Clone, Debug, Deserialize)]
pub struct BroadcastResult {
    pub conversation_id: Uuid,
    /// 201 written now, 200 a replay of the derived idempotency key, else
    /// the HTTP status of the refusal (`error` says why).
    pub status: u16,
    #[serde(default)]
    pub activity: Option<RestActivity>,
    #[serde(default)]
    pub error: Option<ApiError>,
}

/// An error in the API's shape, as one item of a list answer carries it.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiError {
    /// The catalogue name (`not_found`, `conversation_closed`, …).
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct BroadcastResults {
    pub(super) results: Vec<BroadcastResult>,
}

/// One sender present in a conversation ([`Rest::presence`]).
#[derive(Clone, Debug, Deserialize)]
pub struct Present {
    pub sender: String,
    /// Their joined sockets, on every node.
    pub connections: u32,
    /// When the earliest of them joined (RFC 3339).
    pub online_at: String,
}

#[derive(Deserialize)]
pub(super) struct PresenceList {
    pub(super) data: Vec<Present>,
}

#[derive(Deserialize)]
pub(super) struct Disconnected {
    pub(super) disconnected: u64,
}
