//! Ephemeral events: typing signals, presence changes, and signals about the
//! conversation's members (receipts, users online and offline). Never stored, never
//! sequenced; they go to the conversation's owner (the one place that sees all
//! of a conversation's traffic) and from there to every shard with
//! subscribers, like committed batches but without the resume guarantees.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use converger_storage::Id;

use crate::engine::presence::PresenceDiff;

/// What happened, shared across shards.
#[derive(Clone, Debug, PartialEq)]
pub enum Ephemeral {
    Typing {
        sender: String,
        typing: bool,
    },
    Presence(PresenceDiff),
    /// A member's signal: `receipt`, `user_online` or `user_offline`
    /// ([`Signal`]), with its JSON body (docs/api.md "Receipts", "User presence").
    Signal {
        signal: Signal,
        data: serde_json::Value,
    },
}

/// The member signals, by wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A member's read or delivered watermark moved: `{sender, read_seq, delivered_seq}`.
    Receipt,
    /// A member came online somewhere in the tenant: `{sender}`.
    UserOnline,
    /// A member's last connection ended (debounced): `{sender, last_seen}`.
    UserOffline,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Receipt => "receipt",
            Signal::UserOnline => "user_online",
            Signal::UserOffline => "user_offline",
        }
    }
}

/// An ephemeral event as one shard delivers it, with its encodings cached per
/// wire format (encoded once, shared by every local subscriber).
pub struct LocalEvent {
    pub conversation: Id,
    pub event: Arc<Ephemeral>,
    encoded: RefCell<Vec<(&'static str, Bytes)>>,
}

impl LocalEvent {
    pub fn new(conversation: Id, event: Arc<Ephemeral>) -> LocalEvent {
        LocalEvent { conversation, event, encoded: RefCell::new(Vec::new()) }
    }

    /// The event encoded for `format`, by `encode` on first use.
    pub fn encoded(&self, format: &'static str, encode: impl FnOnce(&LocalEvent) -> Bytes) -> Bytes {
        if let Some((_, b)) = self.encoded.borrow().iter().find(|(f, _)| *f == format) {
            return b.clone();
        }
        let bytes = encode(self);
        self.encoded.borrow_mut().push((format, bytes.clone()));
        bytes
    }
}
