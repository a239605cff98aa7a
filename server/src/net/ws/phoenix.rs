//! Phoenix Channels V2 serializer (`vsn=2.0.0`), as a pure codec.
//!
//! Text frames are JSON arrays `[join_ref, ref, topic, event, payload]`: refs
//! are strings or null, payload an object. Client binary frames are Phoenix's
//! push (kind 0): `0, jr_len, ref_len, topic_len, event_len` (u8 each), then
//! those UTF-8 fields, then the raw data.
//!
//! Every encoder returns the complete WebSocket text frame (header + JSON) as
//! `Bytes`, serialized in place: a broadcast is encoded once and the same
//! bytes are queued on every subscriber's socket.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::encode;
use super::frame::Opcode;

/// A client message (from a text frame).
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    /// The payload's JSON text, unchecked beyond being an object's syntax.
    pub payload: Bytes,
}

/// A client binary push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryPush {
    pub join_ref: String,
    pub msg_ref: String,
    pub topic: String,
    pub event: String,
    pub data: Bytes,
}

/// Why a client frame is not a Phoenix message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoenixError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("a message is a JSON array [join_ref, ref, topic, event, payload]")]
    NotArray,
    #[error("a message has 5 elements, not {0}")]
    Arity(usize),
    #[error("{0} must be a string or null")]
    BadRef(&'static str),
    #[error("{0} must be a string")]
    NotString(&'static str),
    #[error("payload must be a JSON object")]
    PayloadNotObject,
    #[error("binary frame kind {0} is not a client push (0)")]
    BinaryKind(u8),
    #[error("binary frame is truncated")]
    Truncated,
    #[error("binary frame {0} is not UTF-8")]
    BinaryUtf8(&'static str),
}

/// Parses a client text frame. The payload is kept as the client wrote it:
/// its content is the service layer's to check (strict JSON, like every
/// other JSON input), so a bad payload gets an error reply, not a close.
pub fn parse_text(text: &[u8]) -> Result<Inbound, PhoenixError> {
    let items: Vec<&RawValue> = match serde_json::from_slice(text) {
        Ok(items) => items,
        Err(e) => {
            let first = text.iter().find(|b| !b.is_ascii_whitespace());
            return match (first, serde_json::from_slice::<IgnoredAny>(text)) {
                (Some(b'['), _) | (_, Err(_)) => Err(PhoenixError::Json(e.to_string())),
                (_, Ok(_)) => Err(PhoenixError::NotArray),
            };
        }
    };
    let Ok([join_ref, msg_ref, topic, event, payload]) = <[&RawValue; 5]>::try_from(items.as_slice()) else {
        return Err(PhoenixError::Arity(items.len()));
    };
    let reference = |v: &RawValue, name| match serde_json::from_str::<Value>(v.get()) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::String(s)) => Ok(Some(s)),
        _ => Err(PhoenixError::BadRef(name)),
    };
    let string = |v: &RawValue, name| match serde_json::from_str::<Value>(v.get()) {
        Ok(Value::String(s)) => Ok(s),
        _ => Err(PhoenixError::NotString(name)),
    };
    if !payload.get().starts_with('{') {
        return Err(PhoenixError::PayloadNotObject);
    }
    Ok(Inbound {
        join_ref: reference(join_ref, "join_ref")?,
        msg_ref: reference(msg_ref, "ref")?,
        topic: string(topic, "topic")?,
        event: string(event, "event")?,
        payload: Bytes::copy_from_slice(payload.get().as_bytes()),
    })
}

/// Parses a client binary push frame.
pub fn parse_binary(frame: &Bytes) -> Result<BinaryPush, PhoenixError> {
    match frame.first() {
        Some(0) => {}
        Some(&kind) => return Err(PhoenixError::BinaryKind(kind)),
        None => return Err(PhoenixError::Truncated),
    }
    let lens: [u8; 4] = frame.get(1..5).and_then(|h| h.try_into().ok()).ok_or(PhoenixError::Truncated)?;
    let mut at = 5;
    let mut field = |len: u8, name: &'static str| {
        let end = at + usize::from(len);
        let bytes = frame.get(at..end).ok_or(PhoenixError::Truncated)?;
        at = end;
        String::from_utf8(bytes.to_vec()).map_err(|_| PhoenixError::BinaryUtf8(name))
    };
    let join_ref = field(lens[0], "join_ref")?;
    let msg_ref = field(lens[1], "ref")?;
    let topic = field(lens[2], "topic")?;
    let event = field(lens[3], "event")?;
    Ok(BinaryPush { join_ref, msg_ref, topic, event, data: frame.slice(at..) })
}

/// A `phx_reply` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

#[derive(Serialize)]
struct Reply<'a, T: Serialize + ?Sized> {
    status: Status,
    response: &'a T,
}

/// Any message, as a complete WebSocket text frame.
pub fn message<T: Serialize + ?Sized>(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &T,
) -> Result<Bytes, serde_json::Error> {
    let mut result = Ok(());
    let frame = encode::frame_with(Opcode::Text, 64, |out| {
        result = serde_json::to_writer(out.writer(), &(join_ref, msg_ref, topic, event, payload));
    });
    result.map(|()| frame)
}

/// `phx_reply` to the client message `msg_ref` (joins, pushes, heartbeats, leaves).
pub fn reply<T: Serialize + ?Sized>(
    join_ref: Option<&str>,
    msg_ref: &str,
    topic: &str,
    status: Status,
    response: &T,
) -> Result<Bytes, serde_json::Error> {
    message(join_ref, Some(msg_ref), topic, "phx_reply", &Reply { status, response })
}

/// A server push to one joined channel: `[join_ref, null, topic, event, payload]`.
pub fn push<T: Serialize + ?Sized>(
    join_ref: &str,
    topic: &str,
    event: &str,
    payload: &T,
) -> Result<Bytes, serde_json::Error> {
    message(Some(join_ref), None, topic, event, payload)
}

/// [`push`] of a payload already encoded (`payload` is JSON), shared with
/// other sockets: the frame in three pieces to queue together (see
/// `WsSender::send_chunks`), the payload's bytes not copied.
pub fn push_encoded(join_ref: &str, topic: &str, event: &str, payload: &Bytes) -> [Bytes; 3] {
    // `["join_ref",null,"topic","event"]` always serializes; its `]` becomes `,`.
    let mut head = serde_json::to_vec(&(join_ref, None::<&str>, topic, event)).unwrap_or_default();
    head.pop();
    head.push(b',');
    let len = head.len() + payload.len() + 1;
    let mut first = BytesMut::from(&encode::text_header(len)[..]);
    first.extend_from_slice(&head);
    [first.freeze(), payload.clone(), Bytes::from_static(b"]")]
}

/// A broadcast, `[null, null, topic, event, payload]`: encode once, send to all.
pub fn broadcast<T: Serialize + ?Sized>(topic: &str, event: &str, payload: &T) -> Result<Bytes, serde_json::Error> {
    message(None, None, topic, event, payload)
}

/// `phx_close`: the server left the channel.
pub fn close(join_ref: &str, topic: &str) -> Bytes {
    let frame = message(Some(join_ref), Some(join_ref), topic, "phx_close", &serde_json::Map::new());
    // Strings and an empty map always serialize.
    frame.unwrap_or_else(|_| Bytes::new())
}

/// `phx_close` with a payload: the server ended the channel and says why
/// (the client's `channel.onClose` gets `payload`; the channel does not rejoin).
pub fn close_with<T: Serialize + ?Sized>(join_ref: &str, topic: &str, payload: &T) -> Result<Bytes, serde_json::Error> {
    message(Some(join_ref), Some(join_ref), topic, "phx_close", payload)
}

/// `phx_error`: the channel crashed or was refused after the join; the
/// client rejoins.
pub fn error(join_ref: &str, topic: &str, reason: &str) -> Bytes {
    let frame = message(Some(join_ref), Some(join_ref), topic, "phx_error", &serde_json::json!({ "reason": reason }));
    frame.unwrap_or_else(|_| Bytes::new())
}

#[cfg(test)]
#[path = "phoenix_tests.rs"]
mod tests;
