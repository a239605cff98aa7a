//! The [`Activity`] record: a committed activity, as Deliver and HistoryPage
//! carry it (the record to create one is [`crate::Draft`]).
//!
//! An activity record holds nothing about the connection or subscription it
//! goes to, so the server encodes each committed activity once (per version)
//! and shares the same bytes with every subscriber (see [`crate::deliver`]).
//! The one reader-relative field, a reaction's `me`, is false in every live
//! record (a message is committed with no reactions; reactions arrive later
//! as `reaction_add` activities); it can be true only in records read for one
//! connection (a History page).
//!
//! Version 2 appends `target_id`, `parent_id` and a message's `state` after
//! the version-1 fields, each behind a presence bit; a version-1 record has
//! none of them and its decoder refuses their bits, so version 1 is exactly
//! the bytes it always was. JSON values (`attachments`, `metadata`) are raw
//! UTF-8 JSON text: the codec checks UTF-8 and nothing more.

use bytes::{BufMut, BytesMut};

use crate::wire::{not_in, opt_size, put_opt_id, put_opt_str, put_str, str_size, Id, Len, Reader};
use crate::{Version, WireError};

/// Presence bit: `text` follows.
pub const HAS_TEXT: u8 = 0x01;
/// Presence bit: `attachments` follows.
pub const HAS_ATTACHMENTS: u8 = 0x02;
/// Presence bit: `idempotency_key` follows.
pub const HAS_IDEMPOTENCY_KEY: u8 = 0x04;
/// Presence bit (version 2): `target_id` follows.
pub const HAS_TARGET: u8 = 0x08;
/// Presence bit (version 2): `parent_id` follows.
pub const HAS_PARENT: u8 = 0x10;
/// Presence bit (version 2): `state` follows.
pub const HAS_STATE: u8 = 0x20;

/// State bit: `edited_at` follows.
pub const STATE_EDITED: u8 = 0x01;
/// State bit: `deleted_at` follows.
pub const STATE_DELETED: u8 = 0x02;

/// A committed activity.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 16 | `id` | UUID bytes |
/// | 16 | `conversation_id` | UUID bytes |
/// | 8 | `seq` u64 | 1, 2, 3 … per conversation |
/// | 8 | `created_at` i64 | unix microseconds, UTC |
/// | 1 | `present` u8 | bits: 0x01 text, 0x02 attachments, 0x04 idempotency_key; version 2: 0x08 target_id, 0x10 parent_id, 0x20 state; others must be 0 |
/// | 1 + n | `type` | u8 length + UTF-8 (`message`, `event`, `edit`, …) |
/// | 2 + n | `sender` | u16 length + UTF-8 |
/// | 4 + n | `text` | u32 length + UTF-8, only if present |
/// | 4 + n | `attachments` | u32 length + JSON array text, only if present |
/// | 4 + n | `metadata` | u32 length + JSON object text |
/// | 1 + n | `idempotency_key` | u8 length + UTF-8, only if present |
/// | 16 | `target_id` | version 2, only if present |
/// | 16 | `parent_id` | version 2, only if present |
/// | … | `state` | version 2, only if present: a [`MessageState`] |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Version 2: the message an `edit`, `delete`, `reaction_add` or
    /// `reaction_remove` acts on.
    pub target_id: Option<Id>,
    /// Version 2: the message a reply answers (its thread).
    pub parent_id: Option<Id>,
    /// Version 2: a message's current state (messages only).
    pub state: Option<MessageState>,
}

/// What a message is now, after the edits, deletes, reactions and replies
/// logged after it.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 1 | `present` u8 | bits: 0x01 edited_at, 0x02 deleted_at; others must be 0 |
/// | 8 | `edited_at` i64 | unix microseconds of the last edit, only if present |
/// | 8 | `deleted_at` i64 | unix microseconds of the delete, only if present (text, attachments and metadata are then gone) |
/// | 4 | `reply_count` u32 | replies naming it as their `parent_id` |
/// | 2 | `count` u16 | reactions that follow, most used first |
/// | 1 + n | reaction `emoji` | u8 length + UTF-8 |
/// | 4 | reaction `count` u32 | senders who reacted with it |
/// | 1 | reaction `me` bool | the reading connection's sender is one of them |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageState {
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub reply_count: u32,
    pub reactions: Vec<Reaction>,
}

/// How many senders reacted to a message with one emoji.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    /// The reader reacted with it (relative to the reading connection).
    pub me: bool,
}

/// The smallest record: fixed fields and empty strings.
pub(crate) const MIN_ACTIVITY_SIZE: usize = 16 + 16 + 8 + 8 + 1 + 1 + 2 + 4;
/// The smallest reaction: an empty emoji, the count and `me`.
const MIN_REACTION_SIZE: usize = 1 + 4 + 1;

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
        if self.target_id.is_some() {
            bits |= HAS_TARGET;
        }
        if self.parent_id.is_some() {
            bits |= HAS_PARENT;
        }
        if self.state.is_some() {
            bits |= HAS_STATE;
        }
        bits
    }

    /// The presence bits `version` defines.
    fn known_bits(version: Version) -> u8 {
        let v1 = HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY;
        if version >= Version::V2 {
            v1 | HAS_TARGET | HAS_PARENT | HAS_STATE
        } else {
            v1
        }
    }

    pub fn encoded_size(&self, version: Version) -> usize {
        let v2 = if version >= Version::V2 {
            16 * (usize::from(self.target_id.is_some()) + usize::from(self.parent_id.is_some()))
                + self.state.as_ref().map_or(0, MessageState::encoded_size)
        } else {
            0
        };
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
            + v2
    }

    /// Appends the record in `version`'s layout. A version-2 field in a
    /// version-1 record is `NotInVersion`: leave those fields out for a
    /// version-1 connection.
    pub fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        let present = self.present();
        let v2_fields = [(HAS_TARGET, "target_id"), (HAS_PARENT, "parent_id"), (HAS_STATE, "state")];
        if let Some(field) = not_in(present, Activity::known_bits(version), &v2_fields) {
            return Err(WireError::NotInVersion { field, version: version.get() });
        }
        buf.put_slice(&self.id);
        buf.put_slice(&self.conversation_id);
        buf.put_u64_le(self.seq);
        buf.put_i64_le(self.created_at);
        buf.put_u8(present);
        put_str(buf, &self.kind, Len::U8, "type")?;
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_opt_str(buf, &self.text, Len::U32, "text")?;
        put_opt_str(buf, &self.attachments, Len::U32, "attachments")?;
        put_str(buf, &self.metadata, Len::U32, "metadata")?;
        put_opt_str(buf, &self.idempotency_key, Len::U8, "idempotency_key")?;
        put_opt_id(buf, &self.target_id);
        put_opt_id(buf, &self.parent_id);
        match &self.state {
            Some(state) => state.encode(buf),
            None => Ok(()),
        }
    }

    pub fn decode(buf: &[u8], version: Version) -> Result<(Activity, usize), WireError> {
        let mut r = Reader::new(buf);
        let a = Activity::read(&mut r, version)?;
        Ok((a, r.position()))
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: Version) -> Result<Activity, WireError> {
        let id = r.id("id")?;
        let conversation_id = r.id("conversation_id")?;
        let seq = r.u64("seq")?;
        let created_at = r.i64("created_at")?;
        let present = r.u8("present")?;
        if present & !Activity::known_bits(version) != 0 {
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
            target_id: r.opt_id(present & HAS_TARGET != 0, "target_id")?,
            parent_id: r.opt_id(present & HAS_PARENT != 0, "parent_id")?,
            state: if present & HAS_STATE != 0 { Some(MessageState::read(r)?) } else { None },
        })
    }
}

impl MessageState {
    fn present(&self) -> u8 {
        let mut bits = 0;
        if self.edited_at.is_some() {
            bits |= STATE_EDITED;
        }
        if self.deleted_at.is_some() {
            bits |= STATE_DELETED;
        }
        bits
    }

    pub fn encoded_size(&self) -> usize {
        1 + 8 * (usize::from(self.edited_at.is_some()) + usize::from(self.deleted_at.is_some()))
            + 4
            + 2
            + self.reactions.iter().map(|r| str_size(&r.emoji, Len::U8) + 4 + 1).sum::<usize>()
    }

    fn encode(&self, buf: &mut BytesMut) -> Result<(), WireError> {
        let count = u16::try_from(self.reactions.len()).map_err(|_| WireError::TooLong {
            field: "reactions",
            len: self.reactions.len(),
            max: u16::MAX as usize,
        })?;
        buf.put_u8(self.present());
        if let Some(t) = self.edited_at {
            buf.put_i64_le(t);
        }
        if let Some(t) = self.deleted_at {
            buf.put_i64_le(t);
        }
        buf.put_u32_le(self.reply_count);
        buf.put_u16_le(count);
        for reaction in &self.reactions {
            put_str(buf, &reaction.emoji, Len::U8, "emoji")?;
            buf.put_u32_le(reaction.count);
            buf.put_u8(u8::from(reaction.me));
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<MessageState, WireError> {
        let present = r.u8("state")?;
        if present & !(STATE_EDITED | STATE_DELETED) != 0 {
            return Err(WireError::InvalidValue { field: "state", reason: "unknown state bit" });
        }
        let edited_at = if present & STATE_EDITED != 0 { Some(r.i64("edited_at")?) } else { None };
        let deleted_at = if present & STATE_DELETED != 0 { Some(r.i64("deleted_at")?) } else { None };
        let reply_count = r.u32("reply_count")?;
        let n = r.count16(MIN_REACTION_SIZE, "reactions")?;
        let mut reactions = Vec::with_capacity(n);
        for _ in 0..n {
            reactions.push(Reaction { emoji: r.str(Len::U8, "emoji")?, count: r.u32("count")?, me: r.bool("me")? });
        }
        Ok(MessageState { edited_at, deleted_at, reply_count, reactions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited_message() -> Activity {
        Activity {
            id: [1; 16],
            conversation_id: [2; 16],
            seq: 3,
            created_at: 10,
            kind: "message".into(),
            sender: "u1".into(),
            text: Some("hi".into()),
            metadata: "{}".into(),
            parent_id: Some([4; 16]),
            state: Some(MessageState {
                edited_at: Some(11),
                deleted_at: None,
                reply_count: 2,
                reactions: vec![Reaction { emoji: "👍".into(), count: 2, me: true }],
            }),
            ..Activity::default()
        }
    }

    fn encode(a: &Activity, version: Version) -> Result<BytesMut, WireError> {
        let mut buf = BytesMut::new();
        a.encode(version, &mut buf).map(|()| buf)
    }

    #[test]
    fn a_version_2_record_round_trips_and_its_size_is_known() {
        let a = edited_message();
        let bytes = encode(&a, Version::V2).expect("encodes");
        assert_eq!(bytes.len(), a.encoded_size(Version::V2));
        assert_eq!(Activity::decode(&bytes, Version::V2), Ok((a, bytes.len())));
    }

    #[test]
    fn version_1_carries_none_of_the_version_2_fields() {
        assert_eq!(
            encode(&edited_message(), Version::V1),
            Err(WireError::NotInVersion { field: "parent_id", version: 1 })
        );
        let state_only = Activity { parent_id: None, ..edited_message() };
        assert_eq!(encode(&state_only, Version::V1), Err(WireError::NotInVersion { field: "state", version: 1 }));
        let bytes = encode(&edited_message(), Version::V2).expect("encodes");
        assert!(matches!(Activity::decode(&bytes, Version::V1), Err(WireError::InvalidValue { field: "present", .. })));
    }

    #[test]
    fn without_version_2_fields_both_versions_are_the_same_bytes() {
        let plain = Activity { parent_id: None, state: None, ..edited_message() };
        assert_eq!(encode(&plain, Version::V1), encode(&plain, Version::V2));
    }

    #[test]
    fn state_bits_and_booleans_are_checked() {
        let mut bytes = encode(&edited_message(), Version::V2).expect("encodes");
        let state_at = bytes.len() - edited_message().state.expect("state").encoded_size();
        bytes[state_at] |= 0x04;
        assert_eq!(
            Activity::decode(&bytes, Version::V2),
            Err(WireError::InvalidValue { field: "state", reason: "unknown state bit" })
        );
        let mut bytes = encode(&edited_message(), Version::V2).expect("encodes");
        let last = bytes.len() - 1;
        bytes[last] = 2;
        assert!(matches!(Activity::decode(&bytes, Version::V2), Err(WireError::InvalidValue { field: "me", .. })));
    }

    #[test]
    fn a_reaction_count_past_the_bytes_left_is_refused_before_allocating() {
        let mut bytes = encode(&edited_message(), Version::V2).expect("encodes");
        // The reactions' u16 count sits right before the one reaction (1 + 4 bytes of emoji, 4, 1).
        let count_at = bytes.len() - (1 + "👍".len() + 4 + 1) - 2;
        bytes[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(Activity::decode(&bytes, Version::V2), Err(WireError::Truncated { field: "reactions" }));
    }
}
