//! The SDK's values: what goes in ([`Credential`], [`Draft`]) and what comes
//! out ([`Welcome`], [`Activity`], [`Written`], [`HistoryPage`],
//! [`TypingEvent`]). Ids are [`Uuid`]s, times unix microseconds (UTC) as on
//! the wire, JSON values raw JSON text (the server validates them).
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
        }
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
        }
    }
}

/// A committed activity, as a subscription or a history page gives it.
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
    }

    #[test]
    fn times_convert() {
        assert_eq!(micros_to_time(1_500_000), UNIX_EPOCH + Duration::from_millis(1500));
    }
}
