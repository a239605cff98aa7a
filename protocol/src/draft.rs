//! The [`Draft`] record: an activity to create, as Publish and PublishBatch
//! carry it. Version 2 adds `target_id` (what an edit, delete or reaction acts
//! on) and `parent_id` (a reply's thread); a version-1 draft has neither, and
//! its decoder refuses their presence bits. Version 3 adds `traceparent` (the
//! W3C trace context the publish belongs to), refused likewise before it.
//!
//! JSON values (`attachments`, `metadata`) are raw UTF-8 JSON text: the codec
//! checks UTF-8 and nothing more; the server validates JSON at its edge.

use bytes::{BufMut, BytesMut};

use crate::activity::{HAS_ATTACHMENTS, HAS_IDEMPOTENCY_KEY, HAS_TEXT};
use crate::wire::{not_in, opt_size, put_opt_id, put_opt_str, put_str, str_size, Id, Len, Reader};
use crate::{Version, WireError};

/// Presence bit: `metadata` follows; absent means `{}`.
pub const HAS_METADATA: u8 = 0x08;
/// Presence bit (version 2): `target_id` follows.
pub const HAS_TARGET: u8 = 0x10;
/// Presence bit (version 2): `parent_id` follows.
pub const HAS_PARENT: u8 = 0x20;
/// Presence bit (version 3): `traceparent` follows.
pub const HAS_TRACEPARENT: u8 = 0x40;

/// An activity to create: what Publish and PublishBatch carry.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 16 | `conversation_id` | UUID bytes |
/// | 1 | `present` u8 | bits: 0x01 text, 0x02 attachments, 0x04 idempotency_key, 0x08 metadata; version 2: 0x10 target_id, 0x20 parent_id; version 3: 0x40 traceparent; others must be 0 |
/// | 1 + n | `type` | u8 length + UTF-8 |
/// | 2 + n | `sender` | u16 length + UTF-8; empty = the token's sender |
/// | 4 + n | `text` | u32 length + UTF-8, only if present |
/// | 4 + n | `attachments` | u32 length + JSON array text, only if present |
/// | 4 + n | `metadata` | u32 length + JSON object text, only if present (absent = `{}`) |
/// | 1 + n | `idempotency_key` | u8 length + UTF-8, only if present |
/// | 16 | `target_id` | version 2, only if present: the message an `edit`, `delete`, `reaction_add` or `reaction_remove` acts on |
/// | 16 | `parent_id` | version 2, only if present: the message a reply answers |
/// | 1 + n | `traceparent` | version 3, only if present: u8 length + the W3C `traceparent` text; the codec checks UTF-8 only, the server ignores a malformed one |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    pub conversation_id: Id,
    pub kind: String,
    pub sender: String,
    pub text: Option<String>,
    pub attachments: Option<String>,
    pub metadata: Option<String>,
    pub idempotency_key: Option<String>,
    /// Version 2.
    pub target_id: Option<Id>,
    /// Version 2.
    pub parent_id: Option<Id>,
    /// Version 3: the W3C `traceparent` of the publish (`00-{trace}-{span}-{flags}`).
    pub traceparent: Option<String>,
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
        if self.target_id.is_some() {
            bits |= HAS_TARGET;
        }
        if self.parent_id.is_some() {
            bits |= HAS_PARENT;
        }
        if self.traceparent.is_some() {
            bits |= HAS_TRACEPARENT;
        }
        bits
    }

    /// The presence bits `version` defines.
    fn known_bits(version: Version) -> u8 {
        let v1 = HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY | HAS_METADATA;
        match version {
            v if v >= Version::V3 => v1 | HAS_TARGET | HAS_PARENT | HAS_TRACEPARENT,
            Version::V2 => v1 | HAS_TARGET | HAS_PARENT,
            _ => v1,
        }
    }

    pub fn encoded_size(&self, version: Version) -> usize {
        let ids = if version >= Version::V2 {
            16 * (usize::from(self.target_id.is_some()) + usize::from(self.parent_id.is_some()))
        } else {
            0
        };
        16 + 1
            + str_size(&self.kind, Len::U8)
            + str_size(&self.sender, Len::U16)
            + opt_size(&self.text, Len::U32)
            + opt_size(&self.attachments, Len::U32)
            + opt_size(&self.metadata, Len::U32)
            + opt_size(&self.idempotency_key, Len::U8)
            + ids
            + if version >= Version::V3 { opt_size(&self.traceparent, Len::U8) } else { 0 }
    }

    /// Appends the record in `version`'s layout; a version-1 draft with a
    /// `target_id` or `parent_id`, or a draft before version 3 with a
    /// `traceparent`, is `NotInVersion`.
    pub fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        let present = self.present();
        let later = [(HAS_TARGET, "target_id"), (HAS_PARENT, "parent_id"), (HAS_TRACEPARENT, "traceparent")];
        if let Some(field) = not_in(present, Draft::known_bits(version), &later) {
            return Err(WireError::NotInVersion { field, version: version.get() });
        }
        buf.put_slice(&self.conversation_id);
        buf.put_u8(present);
        put_str(buf, &self.kind, Len::U8, "type")?;
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_opt_str(buf, &self.text, Len::U32, "text")?;
        put_opt_str(buf, &self.attachments, Len::U32, "attachments")?;
        put_opt_str(buf, &self.metadata, Len::U32, "metadata")?;
        put_opt_str(buf, &self.idempotency_key, Len::U8, "idempotency_key")?;
        put_opt_id(buf, &self.target_id);
        put_opt_id(buf, &self.parent_id);
        put_opt_str(buf, &self.traceparent, Len::U8, "traceparent")?;
        Ok(())
    }

    pub fn decode(buf: &[u8], version: Version) -> Result<(Draft, usize), WireError> {
        let mut r = Reader::new(buf);
        let d = Draft::read(&mut r, version)?;
        Ok((d, r.position()))
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: Version) -> Result<Draft, WireError> {
        let conversation_id = r.id("conversation_id")?;
        let present = r.u8("present")?;
        if present & !Draft::known_bits(version) != 0 {
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
            target_id: r.opt_id(present & HAS_TARGET != 0, "target_id")?,
            parent_id: r.opt_id(present & HAS_PARENT != 0, "parent_id")?,
            traceparent: r.opt_str(present & HAS_TRACEPARENT != 0, Len::U8, "traceparent")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Draft {
        Draft {
            conversation_id: [1; 16],
            kind: "message".into(),
            text: Some("yes".into()),
            parent_id: Some([2; 16]),
            ..Draft::default()
        }
    }

    #[test]
    fn version_1_refuses_the_version_2_fields_both_ways() {
        let mut buf = BytesMut::new();
        assert_eq!(
            reply().encode(Version::V1, &mut buf),
            Err(WireError::NotInVersion { field: "parent_id", version: 1 })
        );
        reply().encode(Version::V2, &mut buf).expect("version 2 has parent_id");
        assert_eq!(buf.len(), reply().encoded_size(Version::V2));
        assert_eq!(Draft::decode(&buf, Version::V2), Ok((reply(), buf.len())));
        assert_eq!(
            Draft::decode(&buf, Version::V1),
            Err(WireError::InvalidValue { field: "present", reason: "unknown presence bit" })
        );
    }

    #[test]
    fn a_draft_without_version_2_fields_is_the_same_bytes_in_both_versions() {
        let plain = Draft { parent_id: None, ..reply() };
        let (mut v1, mut v2) = (BytesMut::new(), BytesMut::new());
        plain.encode(Version::V1, &mut v1).expect("v1");
        plain.encode(Version::V2, &mut v2).expect("v2");
        assert_eq!(v1, v2);
    }

    #[test]
    fn an_unknown_bit_is_refused_in_version_2_and_3_too() {
        let mut buf = BytesMut::new();
        reply().encode(Version::V2, &mut buf).expect("encodes");
        buf[16] |= 0x40;
        assert!(matches!(Draft::decode(&buf, Version::V2), Err(WireError::InvalidValue { field: "present", .. })));
        let mut buf = BytesMut::new();
        reply().encode(Version::V3, &mut buf).expect("encodes");
        buf[16] |= 0x80;
        assert!(matches!(Draft::decode(&buf, Version::V3), Err(WireError::InvalidValue { field: "present", .. })));
    }

    #[test]
    fn the_traceparent_is_version_3_and_comes_last() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = Draft { traceparent: Some(tp.into()), ..reply() };
        let mut buf = BytesMut::new();
        assert_eq!(
            traced.encode(Version::V2, &mut buf),
            Err(WireError::NotInVersion { field: "traceparent", version: 2 })
        );
        traced.encode(Version::V3, &mut buf).expect("version 3 has traceparent");
        assert_eq!(buf.len(), traced.encoded_size(Version::V3));
        assert_eq!(&buf[buf.len() - 56..], [&[55u8][..], tp.as_bytes()].concat().as_slice());
        assert_eq!(Draft::decode(&buf, Version::V3), Ok((traced, buf.len())));
        assert!(Draft::decode(&buf, Version::V2).is_err());
        // Without it, version 3 is version 2's bytes.
        let (mut v2, mut v3) = (BytesMut::new(), BytesMut::new());
        reply().encode(Version::V2, &mut v2).expect("v2");
        reply().encode(Version::V3, &mut v3).expect("v3");
        assert_eq!(v2, v3);
    }
}
