//! The SDK's values: what goes in ([`Credential`], [`Draft`]) and what comes
//! out ([`Welcome`], [`Activity`] with its [`MessageState`], [`Written`],
//! [`HistoryPage`], [`TypingEvent`], [`ReceiptEvent`], [`PresenceEvent`]).
//! Ids are [`Uuid`]s, times unix microseconds (UTC) as on the wire, JSON
//! values raw JSON text (the server validates them).
//!
//! Each type converts from or to its `converger_protocol` counterpart; the
//! codec stays the one source of the wire layouts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use converger_protocol as proto;
use uuid::Uuid;

/// How a connection authenticates (docs/protocol.md, Credentials).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A client token (`POST /api/v1/tokens`): one conversation, one sender.
    /// Drafts leave `sender` empty: the token's sender is used.
    Token(String),
    /// A tenant API key (`cvg_…`), server to server: any conversation of the
    /// tenant; every draft names its sender.
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(…)"),
            Credential::ApiKey(_) => f.write_str("ApiKey(…)"),
        }
    }
}

impl Credential {
    pub(crate) fn to_auth(&self) -> proto::Auth {
        match self {
            Credential::Token(t) => proto::Auth::Token(t.clone()),
            Credential::ApiKey(k) => proto::Auth::ApiKey(k.clone()),
        }
    }
}

/// Who the server says the connection is, and its limits (the Welcome frame).
/// Refreshed at every reconnect: see [`crate::Client::welcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version in use.
    pub version: u8,
    /// The server closes a connection it has heard nothing from this long;
    /// the client pings at a third of it.
    pub idle_timeout: Duration,
    /// Largest frame the server accepts (header included).
    pub max_frame: u32,
    /// The server's send-queue bound for this connection, in bytes.
    pub send_queue_bytes: u32,
    pub tenant_id: Uuid,
    /// The token's conversation; `None` for an API key (the whole tenant).
    pub conversation_id: Option<Uuid>,
    /// Unix microseconds when the credential expires; 0 = never (API key).
    pub expires_at: i64,
    /// The token's sender; empty for an API key.
    pub sender: String,
    /// The server's name/version.
    pub server: String,
}

impl From<proto::Welcome> for Welcome {
    fn from(w: proto::Welcome) -> Welcome {
        Welcome {
            version: w.version,
            idle_timeout: Duration::from_secs(u64::from(w.idle_timeout_secs)),
            max_frame: w.max_frame,
            send_queue_bytes: w.send_queue_bytes,
            tenant_id: Uuid::from_bytes(w.tenant_id),
            conversation_id: w.conversation_id.map(Uuid::from_bytes),
            expires_at: w.expires_at,
            sender: w.sender,
            server: w.server,
        }
    }
}

/// An activity to publish. Build one with [`Draft::message`] or
/// [`Draft::event`] and the setters; the fields are public too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub conversation_id: Uuid,
    /// `message` or `event` (`typing` is ephemeral: see [`crate::Client::typing`]).
    pub kind: String,
    /// Token clients: empty (the token's sender). API-key clients: required.
    pub sender: String,
    pub text: Option<String>,
    /// A JSON array of objects, as text.
    pub attachments: Option<String>,
    /// A JSON object, as text; `None` is `{}`.
    pub metadata: Option<String>,
    /// 1–255 bytes, unique per conversation: a repeat answers the original
    /// activity with `replayed` set, and creates nothing.
    pub idempotency_key: Option<String>,
    /// The message an `edit`, `delete`, `reaction_add` or `reaction_remove`
    /// acts on (protocol version 2).
    pub target_id: Option<Uuid>,
    /// The message a reply answers: its thread (protocol version 2).
    pub parent_id: Option<Uuid>,
    /// The W3C `traceparent` of the trace this publish belongs to (protocol
    /// version 3): with the server's traces on, its span of the publish is a
    /// child of it. A malformed value is ignored by the server.
    pub traceparent: Option<String>,
}

impl Draft {
    /// A `message` with text.
    pub fn message(conversation_id: Uuid, text: impl Into<String>) -> Draft {
        Draft { text: Some(text.into()), ..Draft::new(conversation_id, "message") }
    }

    /// An `event` (text and attachments optional).
    pub fn event(conversation_id: Uuid) -> Draft {
        Draft::new(conversation_id, "event")
    }

    fn new(conversation_id: Uuid, kind: &str) -> Draft {
        Draft {
            conversation_id,
            kind: kind.into(),
            sender: String::new(),
            text: None,
            attachments: None,
            metadata: None,
            idempotency_key: None,
            target_id: None,
            parent_id: None,
            traceparent: None,
        }
    }

    /// An activity of `kind` acting on the message `target` (`edit`,
    /// `delete`, `reaction_add`, `reaction_remove`). The typed methods
    /// ([`crate::Client::edit`], …) build these; an API-key client builds
    /// them itself to name the sender.
    pub fn acting_on(conversation_id: Uuid, kind: &str, target: Uuid) -> Draft {
        Draft { target_id: Some(target), ..Draft::new(conversation_id, kind) }
    }

    /// An `edit` of message `target` with new content.
    pub fn edit(conversation_id: Uuid, target: Uuid, edit: Edit) -> Draft {
        Draft {
            text: edit.text,
            attachments: edit.attachments,
            metadata: edit.metadata,
            ..Draft::acting_on(conversation_id, "edit", target)
        }
    }

    /// A `delete` of message `target`.
    pub fn delete(conversation_id: Uuid, target: Uuid) -> Draft {
        Draft::acting_on(conversation_id, "delete", target)
    }

    /// A `reaction_add` (`add`) or `reaction_remove` of `emoji` to message `target`.
    pub fn reaction(conversation_id: Uuid, target: Uuid, emoji: impl Into<String>, add: bool) -> Draft {
        let kind = if add { "reaction_add" } else { "reaction_remove" };
        Draft { text: Some(emoji.into()), ..Draft::acting_on(conversation_id, kind, target) }
    }

    /// Makes the draft a reply in the thread of message `parent`.
    pub fn parent(mut self, parent: Uuid) -> Draft {
        self.parent_id = Some(parent);
        self
    }

    /// Sends the W3C `traceparent` (`00-{trace id}-{span id}-{flags}`) with
    /// the publish (protocol version 3; an older server refuses the publish).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Draft {
        self.traceparent = Some(traceparent.into());
        self
    }

    pub fn sender(mut self, sender: impl Into<String>) -> Draft {
        self.sender = sender.into();
        self
    }

    pub fn text(mut self, text: impl Into<String>) -> Draft {
        self.text = Some(text.into());
        self
    }

    /// Attachments as JSON text (an array of objects).
    pub fn attachments(mut self, json: impl Into<String>) -> Draft {
        self.attachments = Some(json.into());
        self
    }

    /// Metadata as JSON text (an object).
    pub fn metadata(mut self, json: impl Into<String>) -> Draft {
        self.metadata = Some(json.into());
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Draft {
        self.idempotency_key = Some(key.into());
        self
    }
}

impl From<Draft> for proto::Draft {
    fn from(d: Draft) -> proto::Draft {
        proto::Draft {
            conversation_id: d.conversation_id.into_bytes(),
            kind: d.kind,
            sender: d.sender,
            text: d.text,
            attachments: d.attachments,
            metadata: d.metadata,
            idempotency_key: d.idempotency_key,
            target_id: d.target_id.map(Uuid::into_bytes),
            parent_id: d.parent_id.map(Uuid::into_bytes),
            traceparent: d.traceparent,
        }
    }
}

impl From<proto::Draft> for Draft {
    fn from(d: proto::Draft) -> Draft {
        Draft {
            conversation_id: Uuid::from_bytes(d.conversation_id),
            kind: d.kind,
            sender: d.sender,
            text: d.text,
            attachments: d.attachments,
            metadata: d.metadata,
            idempotency_key: d.idempotency_key,
            target_id: d.target_id.map(Uuid::from_bytes),
            parent_id: d.parent_id.map(Uuid::from_bytes),
            traceparent: d.traceparent,
        }
    }
}

/// A committed activity, as a subscription or a history page gives it.
///
/// Besides `message` and `event`, the log holds what happens to messages
/// (`edit`, `delete`, `reaction_add`, `reaction_remove`, each naming its
/// `target_id`) and to members (`member_joined`, `member_left`); applied in
/// seq order they bring a message to the `state` a read shows. The fields
/// added by protocol version 2 (`target_id`, `parent_id`, `state`) are `None`
/// on a version-1 connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// 1, 2, 3 … gap-free per conversation.
    pub seq: u64,
    /// Unix microseconds, UTC.
    pub created_at: i64,
    /// The activity's `type` (`message`, `event`, …; accept types you do not know).
    pub kind: String,
    pub sender: String,
    pub text: Option<String>,
    /// JSON array text.
    pub attachments: Option<String>,
    /// JSON object text (`{}` when empty).
    pub metadata: String,
    pub idempotency_key: Option<String>,
    /// The message an `edit`, `delete` or reaction acts on.
    pub target_id: Option<Uuid>,
    /// The message a reply answers (its thread).
    pub parent_id: Option<Uuid>,
    /// A message's current state (messages only).
    pub state: Option<MessageState>,
}

/// What a message is now: edited, deleted, replied to, reacted to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageState {
    /// Unix microseconds of the last edit.
    pub edited_at: Option<i64>,
    /// Unix microseconds of the delete: text, attachments and metadata are gone.
    pub deleted_at: Option<i64>,
    /// Replies naming it as their parent.
    pub reply_count: u32,
    /// One entry per emoji, most used first.
    pub reactions: Vec<Reaction>,
}

/// How many senders reacted with one emoji.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    /// This connection's sender is one of them (always false for an API key,
    /// and in live deliveries: a message is delivered before any reaction).
    pub me: bool,
}

impl From<proto::MessageState> for MessageState {
    fn from(s: proto::MessageState) -> MessageState {
        MessageState {
            edited_at: s.edited_at,
            deleted_at: s.deleted_at,
            reply_count: s.reply_count,
            reactions: s.reactions.into_iter().map(|r| Reaction { emoji: r.emoji, count: r.count, me: r.me }).collect(),
        }
    }
}

impl Activity {
    /// `created_at` as a [`SystemTime`].
    pub fn created_time(&self) -> SystemTime {
        micros_to_time(self.created_at)
    }
}

impl From<proto::Activity> for Activity {
    fn from(a: proto::Activity) -> Activity {
        Activity {
            id: Uuid::from_bytes(a.id),
            conversation_id: Uuid::from_bytes(a.conversation_id),
            seq: a.seq,
            created_at: a.created_at,
            kind: a.kind,
            sender: a.sender,
            text: a.text,
            attachments: a.attachments,
            metadata: a.metadata,
            idempotency_key: a.idempotency_key,
            target_id: a.target_id.map(Uuid::from_bytes),
            parent_id: a.parent_id.map(Uuid::from_bytes),
            state: a.state.map(MessageState::from),
        }
    }
}

/// A publish's acknowledgement: the activity is committed (it survives a
/// crash of the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub activity_id: Uuid,
    pub seq: u64,
    /// Unix microseconds, UTC.
    pub created_at: i64,
    /// The idempotency key matched an earlier activity: these are its id, seq
    /// and time, and nothing was created.
    pub replayed: bool,
}

impl From<proto::Written> for Written {
    fn from(w: proto::Written) -> Written {
        Written {
            activity_id: Uuid::from_bytes(w.activity_id),
            seq: w.seq,
            created_at: w.created_at,
            replayed: w.replayed,
        }
    }
}

/// One page of [`crate::Client::history`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    pub conversation_id: Uuid,
    /// The conversation's last seq when the page was read.
    pub last_seq: u64,
    /// In seq order; possibly fewer than asked (the server bounds a page).
    pub activities: Vec<Activity>,
}

impl From<proto::HistoryPage> for HistoryPage {
    fn from(p: proto::HistoryPage) -> HistoryPage {
        HistoryPage {
            conversation_id: Uuid::from_bytes(p.conversation_id),
            last_seq: p.last_seq,
            activities: p.activities.into_iter().map(Activity::from).collect(),
        }
    }
}

/// Someone started or stopped typing in a subscribed conversation
/// (ephemeral: never stored, no seq, may be dropped under load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypingEvent {
    pub conversation_id: Uuid,
    pub sender: String,
    pub typing: bool,
}

impl TypingEvent {
    /// The event an Ephemeral frame carries; `None` for other ephemeral types
    /// (a newer server's), which this version ignores.
    pub fn from_frame(e: &proto::Ephemeral) -> Option<TypingEvent> {
        if e.kind != "typing" {
            return None;
        }
        let data: serde_json::Value = serde_json::from_str(&e.data).ok()?;
        let typing = data.get("typing").and_then(serde_json::Value::as_bool).unwrap_or(true);
        Some(TypingEvent { conversation_id: Uuid::from_bytes(e.conversation_id), sender: e.sender.clone(), typing })
    }
}

/// A member's read and delivered watermarks moved (protocol version 2: an
/// Ephemeral of type `receipt`). Watermarks never move back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptEvent {
    pub conversation_id: Uuid,
    /// The member.
    pub sender: String,
    /// Read up to and including this seq (0: nothing yet).
    pub read_seq: u64,
    /// Delivered up to and including this seq (0: nothing yet).
    pub delivered_seq: u64,
}

impl ReceiptEvent {
    /// The event an Ephemeral frame carries; `None` for other types.
    pub fn from_frame(e: &proto::Ephemeral) -> Option<ReceiptEvent> {
        if e.kind != "receipt" {
            return None;
        }
        let data: serde_json::Value = serde_json::from_str(&e.data).ok()?;
        let seq = |key: &str| data.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Some(ReceiptEvent {
            conversation_id: Uuid::from_bytes(e.conversation_id),
            sender: e.sender.clone(),
            read_seq: seq("read_seq"),
            delivered_seq: seq("delivered_seq"),
        })
    }
}

/// A user came online or went offline in the tenant (protocol version 2:
/// Ephemerals of type `user_online` / `user_offline`, sent to the
/// conversations the user is a member of).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceEvent {
    /// The conversation it was announced in (a subscribed one).
    pub conversation_id: Uuid,
    /// The user (a sender id).
    pub sender: String,
    pub online: bool,
    /// Going offline: when the user's last connection ended (RFC 3339, as
    /// REST shows it).
    pub last_seen: Option<String>,
}

impl PresenceEvent {
    /// The event an Ephemeral frame carries; `None` for other types.
    pub fn from_frame(e: &proto::Ephemeral) -> Option<PresenceEvent> {
        let online = match e.kind.as_str() {
            "user_online" => true,
            "user_offline" => false,
            _ => return None,
        };
        let data: serde_json::Value = serde_json::from_str(&e.data).ok()?;
        Some(PresenceEvent {
            conversation_id: Uuid::from_bytes(e.conversation_id),
            sender: e.sender.clone(),
            online,
            last_seen: data.get("last_seen").and_then(serde_json::Value::as_str).map(str::to_owned),
        })
    }
}

/// What [`crate::Client::member_events`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    Receipt(ReceiptEvent),
    Presence(PresenceEvent),
}

impl MemberEvent {
    /// The event an Ephemeral frame carries; `None` for other types.
    pub fn from_frame(e: &proto::Ephemeral) -> Option<MemberEvent> {
        ReceiptEvent::from_frame(e)
            .map(MemberEvent::Receipt)
            .or_else(|| PresenceEvent::from_frame(e).map(MemberEvent::Presence))
    }
}

/// New content for a message ([`crate::Client::edit`]): what is given
/// replaces the message's; at least one field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    pub text: Option<String>,
    /// A JSON array of objects, as text.
    pub attachments: Option<String>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
}

impl Edit {
    /// New text.
    pub fn text(text: impl Into<String>) -> Edit {
        Edit { text: Some(text.into()), ..Edit::default() }
    }

    /// New attachments (JSON text: an array of objects).
    pub fn attachments(mut self, json: impl Into<String>) -> Edit {
        self.attachments = Some(json.into());
        self
    }

    /// New metadata (JSON text: an object).
    pub fn metadata(mut self, json: impl Into<String>) -> Edit {
        self.metadata = Some(json.into());
        self
    }
}

fn micros_to_time(micros: i64) -> SystemTime {
    let d = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_never_prints_its_secret() {
        assert_eq!(format!("{:?}", Credential::ApiKey("cvg_secret".into())), "ApiKey(…)");
    }

    #[test]
    fn drafts_build_as_documented() {
        let c = Uuid::nil();
        let d = Draft::message(c, "hi").sender("bot").idempotency_key("k1").metadata("{\"a\":1}");
        let wire = proto::Draft::from(d.clone());
        assert_eq!((wire.kind.as_str(), wire.text.as_deref()), ("message", Some("hi")));
        assert_eq!(Draft::from(wire), d);
        assert_eq!(Draft::event(c).kind, "event");
        let target = Uuid::from_u128(7);
        let edit = Draft::acting_on(c, "edit", target).text("new");
        assert_eq!(proto::Draft::from(edit.clone()).target_id, Some(target.into_bytes()));
        assert_eq!(Draft::message(c, "re").parent(target).parent_id, Some(target));
    }

    #[test]
    fn times_convert() {
        assert_eq!(micros_to_time(1_500_000), UNIX_EPOCH + Duration::from_millis(1500));
    }
}
