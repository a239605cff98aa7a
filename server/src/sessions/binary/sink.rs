//! The binary-protocol side of a subscription, and the sender both binary
//! transports share. An activity's record holds nothing about the connection
//! (docs/protocol.md, Deliver), so each committed activity is encoded once per
//! shard and protocol version, and its bytes are shared by every binary
//! subscriber of that version, over TCP and over WebSocket alike; per
//! connection only the Deliver prefix (and on WebSocket the message header) is
//! written.

use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use converger_protocol as proto;
use converger_protocol::{put_deliver_prefix, ErrorCode, ErrorFrame, Frame, Version, WireError, DELIVER_PREFIX_SIZE};
use converger_storage::{Activity, Id, MessageState};

use crate::engine::live::{Ephemeral, LocalEvent, SharedBatch, Sink};
use crate::engine::{Cause, Disconnect};
use crate::net::send_queue::{FrameSender, SendError};
use crate::net::ws::encode;
use crate::net::ws::Opcode;

/// The activity records' cache key per version: the same bytes serve both
/// transports, and versions 2 and 3 (version 3 changes only drafts).
fn records_key(version: Version) -> &'static str {
    match version.get() {
        1 => "binary-records-v1",
        _ => "binary-records-v2",
    }
}
/// Records per Deliver frame, and the bytes they may take, at most: a big
/// committed batch goes out as several frames a client can take in turn.
const DELIVER_MAX_RECORDS: usize = 512;
const DELIVER_MAX_BYTES: usize = 256 * 1024;

/// Why a frame was not sent.
#[derive(Debug, thiserror::Error)]
pub enum BinarySendError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("cannot encode: {0}")]
    Encode(#[from] WireError),
}

/// Queues protocol frames on one connection, in its transport's framing and
/// its protocol version's layouts.
#[derive(Clone)]
pub struct BinarySender {
    inner: FrameSender,
    /// On `/socket/binary` each frame travels as one WebSocket binary message.
    websocket: bool,
    /// Version 1 until the handshake chose one.
    version: Version,
}

impl BinarySender {
    pub fn tcp(inner: FrameSender) -> BinarySender {
        BinarySender { inner, websocket: false, version: Version::V1 }
    }

    pub fn websocket(inner: FrameSender) -> BinarySender {
        BinarySender { inner, websocket: true, version: Version::V1 }
    }

    /// The protocol version this connection speaks.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The same connection, speaking `version` (the handshake's choice).
    pub fn with_version(self, version: Version) -> BinarySender {
        BinarySender { version, ..self }
    }

    /// The cache key of this transport's and version's whole-frame encodings
    /// (each frame header carries the version: one key per version).
    fn format(&self) -> &'static str {
        match (self.websocket, self.version.get()) {
            (true, 1) => "binary-ws-v1",
            (true, 2) => "binary-ws-v2",
            (true, _) => "binary-ws-v3",
            (false, 1) => "binary-tcp-v1",
            (false, 2) => "binary-tcp-v2",
            (false, _) => "binary-tcp-v3",
        }
    }

    /// Encodes and queues one frame.
    pub fn send(&self, frame: impl Into<Frame>) -> Result<(), BinarySendError> {
        let bytes = self.encode(&frame.into())?;
        Ok(self.inner.send_frame(bytes)?)
    }

    /// One frame in this transport's framing.
    pub fn encode(&self, frame: &Frame) -> Result<Bytes, WireError> {
        if self.websocket {
            let mut result = Ok(());
            let size = frame.encoded_size(self.version);
            let bytes = encode::frame_with(Opcode::Binary, size, |out| result = frame.encode(self.version, out));
            result.map(|()| bytes)
        } else {
            let mut out = BytesMut::with_capacity(frame.encoded_size(self.version));
            frame.encode(self.version, &mut out)?;
            Ok(out.freeze())
        }
    }

    /// A Deliver frame of already-encoded activity records.
    fn send_records(&self, records: &[Bytes]) -> Result<(), BinarySendError> {
        // An activity that failed to encode (logged there) is left out, never sent empty.
        let records = || records.iter().filter(|r| !r.is_empty());
        let size: usize = records().map(Bytes::len).sum();
        let mut prefix = BytesMut::with_capacity(DELIVER_PREFIX_SIZE);
        put_deliver_prefix(&mut prefix, self.version, records().count(), size)?;
        let head = if self.websocket {
            let mut head = BytesMut::from(&encode::binary_header(DELIVER_PREFIX_SIZE + size)[..]);
            head.extend_from_slice(&prefix);
            head.freeze()
        } else {
            prefix.freeze()
        };
        Ok(self.inner.send_chunks(std::iter::once(head).chain(records().cloned()))?)
    }
}

/// A storage activity as a protocol record of `version`: version 1 leaves out
/// what it cannot carry (the target, the parent, a message's state).
pub fn to_wire(a: &Activity, version: Version) -> proto::Activity {
    let v2 = version >= Version::V2;
    proto::Activity {
        id: *a.id.as_bytes(),
        conversation_id: *a.conversation_id.as_bytes(),
        seq: a.seq.max(0) as u64,
        created_at: a.created_at.as_micros(),
        kind: a.kind.clone(),
        sender: a.sender.clone(),
        text: a.text.clone(),
        attachments: a.attachments.as_ref().map(|j| j.as_str().to_string()),
        metadata: a.metadata.as_str().to_string(),
        idempotency_key: a.idempotency_key.clone(),
        target_id: a.target_id.filter(|_| v2).map(|id| *id.as_bytes()),
        parent_id: a.parent_id.filter(|_| v2).map(|id| *id.as_bytes()),
        state: a.state.as_ref().filter(|_| v2).map(state_to_wire),
    }
}

fn state_to_wire(s: &MessageState) -> proto::MessageState {
    let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    proto::MessageState {
        edited_at: s.edited_at.map(|t| t.as_micros()),
        deleted_at: s.deleted_at.map(|t| t.as_micros()),
        reply_count: count(s.reply_count),
        reactions: s
            .reactions
            .iter()
            .map(|r| proto::Reaction { emoji: r.emoji.clone(), count: count(r.count), me: r.me })
            .collect(),
    }
}

pub struct BinarySink {
    pub sender: BinarySender,
    pub conversation: Id,
    /// Cleared by Unsubscribe: from its Ack on, nothing more of the
    /// conversation goes out, even a backlog still being read.
    pub active: Rc<Cell<bool>>,
    /// The sender the connection acts as (a client token's).
    pub client: Option<String>,
    /// Where the session hears that the server ended a subscription (its
    /// switch). At most one message per subscription, and a connection holds
    /// at most `max_subscriptions_per_connection`: bounded by construction.
    pub ended: futures_channel::mpsc::UnboundedSender<Rc<Cell<bool>>>,
}

impl Sink for BinarySink {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        if !self.active.get() {
            return false;
        }
        let version = self.sender.version;
        let records = batch.encoded(records_key(version), |activities| encode_records(activities, version));
        let records = &records[range];
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len()
                && end - start < DELIVER_MAX_RECORDS
                && (end == start || bytes < DELIVER_MAX_BYTES)
            {
                bytes += records[end].len();
                end += 1;
            }
            if let Err(e) = self.sender.send_records(&records[start..end]) {
                tracing::debug!(error = %e, "binary delivery refused");
                return false;
            }
            start = end;
        }
        true
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        if !self.active.get() {
            return false;
        }
        // Typing and the member signals (receipts, users online and offline);
        // conversation presence is a Phoenix feature (docs/protocol.md, Ephemeral).
        if let Ephemeral::Presence(_) = &*event.event {
            return true;
        }
        let sender = self.sender.clone();
        let frame = event.encoded(self.sender.format(), |e| encode_event(&sender, e));
        frame.is_empty() || self.sender.inner.send_frame(frame).is_ok()
    }

    fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.sender.inner.poll_room(cx)
    }

    fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// Two frames: an Ephemeral `disconnected` on the conversation (its id,
    /// the disconnect's sender, `{"code", "reason"}`), which tells an SDK
    /// which subscription ended, then an Error (request id 0, code
    /// `disconnected` or `conversation_closed`, the reason in its message).
    /// The subscription is over: nothing more of it is sent, and the
    /// session forgets it, so the client may subscribe again.
    fn disconnected(&self, d: &Disconnect) {
        self.active.set(false);
        let data = serde_json::json!({"code": d.cause.as_str(), "reason": d.reason});
        let notice = Frame::Ephemeral(proto::Ephemeral {
            request_id: 0,
            conversation_id: *self.conversation.as_bytes(),
            kind: "disconnected".into(),
            sender: d.sender.clone().unwrap_or_default(),
            data: data.to_string(),
        });
        let code = match d.cause {
            Cause::Disconnected => ErrorCode::Disconnected,
            Cause::ConversationClosed => ErrorCode::ConversationClosed,
        };
        let error = ErrorFrame::new(0, code, format!("conversation {}: {}", self.conversation, d.reason));
        for frame in [notice, Frame::Error(error)] {
            if let Err(e) = self.sender.send(frame) {
                tracing::debug!(error = %e, "disconnect notice not sent");
            }
        }
        let _ = self.ended.unbounded_send(self.active.clone());
    }
}

fn encode_records(activities: &[Activity], version: Version) -> Vec<Bytes> {
    activities
        .iter()
        .map(|a| {
            let mut out = BytesMut::new();
            match to_wire(a, version).encode(version, &mut out) {
                Ok(()) => out.freeze(),
                Err(e) => {
                    // Stored activities fit the wire's limits; this would be a bug.
                    tracing::error!(error = %e, activity = %a.id, "activity does not encode");
                    Bytes::new()
                }
            }
        })
        .collect()
}

fn encode_event(sender: &BinarySender, e: &LocalEvent) -> Bytes {
    let (kind, who, data) = match &*e.event {
        Ephemeral::Typing { sender: who, typing } => {
            ("typing", who.clone(), serde_json::json!({ "typing": typing }).to_string())
        }
        Ephemeral::Signal { signal, data } => {
            let who = data.get("sender").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
            (signal.as_str(), who, data.to_string())
        }
        Ephemeral::Presence(_) => return Bytes::new(),
    };
    let frame = Frame::Ephemeral(proto::Ephemeral {
        request_id: 0,
        conversation_id: *e.conversation.as_bytes(),
        kind: kind.into(),
        sender: who,
        data,
    });
    sender.encode(&frame).unwrap_or_default()
}
