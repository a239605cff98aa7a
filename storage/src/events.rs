//! Lifecycle events (issue 17, item 2): what a tenant's event endpoints are,
//! and the events queued for them.
//!
//! An event is written in the same transaction as the change it reports, one
//! row per active endpoint of the tenant subscribed to its type (the
//! fan-out), so there is no event without its change and no change without
//! its event. The rows are a queue like deliveries: claimed with a lease,
//! completed fenced by the claim's attempt number, retried on the same
//! schedule. A row's id is the `webhook-id` of every attempt.

use serde::{Serialize, Serializer};

use crate::json::Json;
use crate::model::{DeliveryStatus, Id};
use crate::time::Timestamp;

/// The kinds of lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ConversationCreated,
    ConversationClosed,
    MemberJoined,
    MemberLeft,
    UserOnline,
    UserOffline,
    DeliveryFailed,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::ConversationCreated,
        EventType::ConversationClosed,
        EventType::MemberJoined,
        EventType::MemberLeft,
        EventType::UserOnline,
        EventType::UserOffline,
        EventType::DeliveryFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationCreated => "conversation.created",
            EventType::ConversationClosed => "conversation.closed",
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
            EventType::UserOnline => "user.online",
            EventType::UserOffline => "user.offline",
            EventType::DeliveryFailed => "delivery.failed",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// The event a member activity (`member_joined` / `member_left`) reports.
    pub fn of_member_kind(kind: &str) -> Option<EventType> {
        match kind {
            crate::kinds::MEMBER_JOINED => Some(EventType::MemberJoined),
            crate::kinds::MEMBER_LEFT => Some(EventType::MemberLeft),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Event type names as stored (a JSON array of names).
pub(crate) fn types_to_json(types: &[EventType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// The stored names read back; a name this binary does not know is skipped
/// (written by a newer one).
pub(crate) fn types_from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<EventType> {
    names.into_iter().filter_map(EventType::parse).collect()
}

/// Where a tenant's lifecycle events go. Deleted endpoints are kept (their
/// events refer to them) but never listed, found or sent to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventEndpoint {
    pub id: Id,
    pub tenant_id: Id,
    pub url: String,
    pub events: Vec<EventType>,
    /// `whsec_…`: the Standard Webhooks key events are signed with; shown
    /// once, at creation.
    #[serde(skip)]
    pub secret: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewEventEndpoint {
    pub tenant_id: Id,
    pub url: String,
    /// Not empty, no repeats (the service checks).
    pub events: Vec<EventType>,
    pub secret: String,
}

#[derive(Clone, Debug, Default)]
pub struct EventEndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
}

/// One event queued for one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// The `webhook-id` of every attempt.
    pub id: Id,
    pub tenant_id: Id,
    pub endpoint_id: Id,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The event's `data` object.
    pub data: Json,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// When the change happened (the payload's `timestamp`).
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct EventFilter {
    pub endpoint_id: Option<Id>,
    pub status: Option<DeliveryStatus>,
    pub kind: Option<EventType>,
}

/// A claimed event with its endpoint as it is now; `None` when the endpoint
/// was deleted since the event was written (nothing to send it to).
#[derive(Clone, Debug)]
pub struct EventClaim {
    pub event: Event,
    pub endpoint: Option<EventEndpoint>,
}

/// A user's debounced presence transition, as the node that decided it
/// records it: going offline stores `last_seen = at`; `announce` (the caller
/// knows from a cache whether the tenant has endpoints for the event) writes
/// `user.online` / `user.offline` events in the same transaction.
#[derive(Clone, Copy, Debug)]
pub struct PresenceChange {
    pub online: bool,
    pub at: Timestamp,
    pub announce: bool,
}

impl PresenceChange {
    pub fn event_type(&self) -> EventType {
        if self.online {
            EventType::UserOnline
        } else {
            EventType::UserOffline
        }
    }

    pub fn data(&self, sender: &str) -> serde_json::Value {
        if self.online {
            serde_json::json!({"sender": sender, "online_at": self.at})
        } else {
            serde_json::json!({"sender": sender, "last_seen": self.at})
        }
    }
}

/// The `data` of `conversation.created` and `conversation.closed`.
pub fn conversation_data(c: &crate::Conversation) -> serde_json::Value {
    serde_json::json!({
        "conversation_id": c.id,
        "channel_id": c.channel_id,
        "external_id": c.external_id,
        "metadata": c.metadata.to_value(),
    })
}

/// The `data` of `member.joined` / `member.left`: the member activity.
pub fn member_data(a: &crate::Activity, role: Option<&str>) -> serde_json::Value {
    let mut data = serde_json::json!({
        "conversation_id": a.conversation_id,
        "sender": a.sender,
        "activity_id": a.id,
        "seq": a.seq,
    });
    if a.kind == crate::kinds::MEMBER_JOINED {
        data["role"] = role.into();
    }
    data
}

/// The `data` of `delivery.failed`.
pub fn delivery_failed_data(d: &crate::Delivery, conversation_id: Option<Id>) -> serde_json::Value {
    serde_json::json!({
        "delivery_id": d.id,
        "activity_id": d.activity_id,
        "conversation_id": conversation_id,
        "channel_id": d.channel_id,
        "attempts": d.attempts,
        "error": d.last_error,
    })
}

/// Why a pending event of a deleted endpoint failed.
pub const ENDPOINT_DELETED: &str = "the event endpoint was deleted";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_skipped() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        let json = types_to_json(&[EventType::MemberJoined, EventType::DeliveryFailed]);
        assert_eq!(json, r#"["member.joined","delivery.failed"]"#);
        assert_eq!(types_from_names(["user.online", "later.kind"]), vec![EventType::UserOnline]);
    }
}
