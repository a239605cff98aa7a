//! The two activity records: [`Activity`] (a committed activity, as Deliver and
//! HistoryPage carry it) and [`Draft`] (one to create, as Publish and
//! PublishBatch carry it).
//!
//! An activity record holds nothing about the connection or subscription it
//! goes to, so the server encodes each committed activity once and shares the
//! same bytes with every subscriber (see [`crate::deliver`]). JSON values
//! (`attachments`, `metadata`, `data`) are raw UTF-8 JSON text: the codec checks
//! UTF-8 and nothing more; the server validates JSON at its edge.

use bytes::{BufMut, BytesMut};

use crate::wire::{opt_size, put_opt_str, put_str, str_size, Id, Len, Reader};
use crate::WireError;

/// Presence bit: `text` follows.
pub const HAS_TEXT: u8 = 0x01;
/// Presence bit: `attachments` follows.
pub const HAS_ATTACHMENTS: u8 = 0x02;
/// Presence bit: `idempotency_key` follows.
pub const HAS_IDEMPOTENCY_KEY: u8 = 0x04;
/// Presence bit (drafts only): `metadata` follows; absent means `{}`.
pub const HAS_METADATA: u8 = 0x08;

/// A committed activity.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 16 | `id` | UUID bytes |
/// | 16 | `conversation_id` | UUID bytes |
/// | 8 | `seq` u64 | 1, 2, 3 … per conversation |
/// | 8 | `created_at` i64 | unix microseconds, UTC |
/// | 1 | `present` u8 | bits: 0x01 text, 0x02 attachments, 0x04 idempotency_key; others must be 0 |
/// | 1 + n | `type` | u8 length + UTF-8 (`message`, `event`, …) |
/// | 2 + n | `sender` | u16 length + UTF-8 |
/// | 4 + n | `text` | u32 length + UTF-8, only if present |
/// | 4 + n | `attachments` | u32 length + JSON array text, only if present |
/// | 4 + n | `metadata` | u32 length + JSON object text |
/// | 1 + n | `idempotency_key` | u8 length + UTF-8, only if present |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub id: Id,
    pub conversation_id: Id,
    pub seq: u64,
    pub created_at: i64,
    pub kind: String,
    pub sender: String,
    pub text: Option<String>,
    pub attachments: Option<String>,
    pub metadata: String,
    pub idempotency_key: Option<String>,
}

/// The smallest record: fixed fields and empty strings.
pub(crate) const MIN_ACTIVITY_SIZE: usize = 16 + 16 + 8 + 8 + 1 + 1 + 2 + 4;

impl Activity {
    fn present(&self) -> u8 {
        let mut bits = 0;
        if self.text.is_some() {
            bits |= HAS_TEXT;
        }
        if self.attachments.is_some() {
            bits |= HAS_ATTACHMENTS;
        }
        if self.idempotency_key.is_some() {
            bits |= HAS_IDEMPOTENCY_KEY;
        }
        bits
    }

    pub fn encoded_size(&self) -> usize {
        16 + 16
            + 8
            + 8
            + 1
            + str_size(&self.kind, Len::U8)
            + str_size(&self.sender, Len::U16)
            + opt_size(&self.text, Len::U32)
            + opt_size(&self.attachments, Len::U32)
            + str_size(&self.metadata, Len::U32)
            + opt_size(&self.idempotency_key, Len::U8)
    }

    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_slice(&self.id);
        buf.put_slice(&self.conversation_id);
        buf.put_u64_le(self.seq);
        buf.put_i64_le(self.created_at);
        buf.put_u8(self.present());
        put_str(buf, &self.kind, Len::U8, "type")?;
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_opt_str(buf, &self.text, Len::U32, "text")?;
        put_opt_str(buf, &self.attachments, Len::U32, "attachments")?;
        put_str(buf, &self.metadata, Len::U32, "metadata")?;
        put_opt_str(buf, &self.idempotency_key, Len::U8, "idempotency_key")
    }

    pub fn decode(buf: &[u8]) -> Result<(Activity, usize), WireError> {
        let mut r = Reader::new(buf);
        let a = Activity::read(&mut r)?;
        Ok((a, r.position()))
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Activity, WireError> {
        let id = r.id("id")?;
        let conversation_id = r.id("conversation_id")?;
        let seq = r.u64("seq")?;
        let created_at = r.i64("created_at")?;
        let present = r.u8("present")?;
        if present & !(HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY) != 0 {
            return Err(WireError::InvalidValue { field: "present", reason: "unknown presence bit" });
        }
        Ok(Activity {
            id,
            conversation_id,
            seq,
            created_at,
            kind: r.str(Len::U8, "type")?,
            sender: r.str(Len::U16, "sender")?,
            text: r.opt_str(present & HAS_TEXT != 0, Len::U32, "text")?,
            attachments: r.opt_str(present & HAS_ATTACHMENTS != 0, Len::U32, "attachments")?,
            metadata: r.str(Len::U32, "metadata")?,
            idempotency_key: r.opt_str(present & HAS_IDEMPOTENCY_KEY != 0, Len::U8, "idempotency_key")?,
        })
    }
}

/// An activity to create: what Publish and PublishBatch carry.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 16 | `conversation_id` | UUID bytes |
/// | 1 | `present` u8 | bits: 0x01 text, 0x02 attachments, 0x04 idempotency_key, 0x08 metadata; others must be 0 |
/// | 1 + n | `type` | u8 length + UTF-8 |
/// | 2 + n | `sender` | u16 length + UTF-8; empty = the token's sender |
/// | 4 + n | `text` | u32 length + UTF-8, only if present |
/// | 4 + n | `attachments` | u32 length + JSON array text, only if present |
/// | 4 + n | `metadata` | u32 length + JSON object text, only if present (absent = `{}`) |
/// | 1 + n | `idempotency_key` | u8 length + UTF-8, only if present |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub conversation_id: Id,
    pub kind: String,
    pub sender: String,
    pub text: Option<String>,
    pub attachments: Option<String>,
    pub metadata: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(crate) const MIN_DRAFT_SIZE: usize = 16 + 1 + 1 + 2;

impl Draft {
    fn present(&self) -> u8 {
        let mut bits = 0;
        if self.text.is_some() {
            bits |= HAS_TEXT;
        }
        if self.attachments.is_some() {
            bits |= HAS_ATTACHMENTS;
        }
        if self.idempotency_key.is_some() {
            bits |= HAS_IDEMPOTENCY_KEY;
        }
        if self.metadata.is_some() {
            bits |= HAS_METADATA;
        }
        bits
    }

    pub fn encoded_size(&self) -> usize {
        16 + 1
            + str_size(&self.kind, Len::U8)
            + str_size(&self.sender, Len::U16)
            + opt_size(&self.text, Len::U32)
            + opt_size(&self.attachments, Len::U32)
            + opt_size(&self.metadata, Len::U32)
            + opt_size(&self.idempotency_key, Len::U8)
    }

    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_slice(&self.conversation_id);
        buf.put_u8(self.present());
        put_str(buf, &self.kind, Len::U8, "type")?;
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_opt_str(buf, &self.text, Len::U32, "text")?;
        put_opt_str(buf, &self.attachments, Len::U32, "attachments")?;
        put_opt_str(buf, &self.metadata, Len::U32, "metadata")?;
        put_opt_str(buf, &self.idempotency_key, Len::U8, "idempotency_key")
    }

    pub fn decode(buf: &[u8]) -> Result<(Draft, usize), WireError> {
        let mut r = Reader::new(buf);
        let d = Draft::read(&mut r)?;
        Ok((d, r.position()))
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Draft, WireError> {
        let conversation_id = r.id("conversation_id")?;
        let present = r.u8("present")?;
        if present & !(HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY | HAS_METADATA) != 0 {
            return Err(WireError::InvalidValue { field: "present", reason: "unknown presence bit" });
        }
        Ok(Draft {
            conversation_id,
            kind: r.str(Len::U8, "type")?,
            sender: r.str(Len::U16, "sender")?,
            text: r.opt_str(present & HAS_TEXT != 0, Len::U32, "text")?,
            attachments: r.opt_str(present & HAS_ATTACHMENTS != 0, Len::U32, "attachments")?,
            metadata: r.opt_str(present & HAS_METADATA != 0, Len::U32, "metadata")?,
            idempotency_key: r.opt_str(present & HAS_IDEMPOTENCY_KEY != 0, Len::U8, "idempotency_key")?,
        })
    }
}
