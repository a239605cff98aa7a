//! [`Ephemeral`]: signals that are broadcast and never stored (typing, later
//! presence and call signalling). Client → server to send one, server →
//! client to deliver one to the conversation's subscribers. They carry no seq
//! and take no part in resume; under load they may be dropped.

use bytes::{BufMut, BytesMut};

use crate::frame::{Body, Kind};
use crate::wire::{put_str, str_size, Id, Len, Reader};
use crate::{Version, WireError};

/// An ephemeral event.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | client: non-zero asks for an Error frame if refused (success is silent); server: 0 |
/// | 16 | `conversation_id` | UUID bytes |
/// | 1 + n | `type` | u8 length + UTF-8, e.g. `typing` |
/// | 2 + n | `sender` | u16 length + UTF-8; from a token client: empty (= the token's sender) |
/// | 4 + n | `data` | u32 length + JSON object text, e.g. `{"typing":true}` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ephemeral {
    pub request_id: u32,
    pub conversation_id: Id,
    pub kind: String,
    pub sender: String,
    pub data: String,
}

impl Body for Ephemeral {
    const KIND: Kind = Kind::Ephemeral;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 16 + str_size(&self.kind, Len::U8) + str_size(&self.sender, Len::U16) + str_size(&self.data, Len::U32)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        buf.put_slice(&self.conversation_id);
        put_str(buf, &self.kind, Len::U8, "type")?;
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_str(buf, &self.data, Len::U32, "data")
    }

    fn decode(body: &[u8], _: Version) -> Result<(Ephemeral, usize), WireError> {
        let mut r = Reader::new(body);
        let e = Ephemeral {
            request_id: r.u32("request_id")?,
            conversation_id: r.id("conversation_id")?,
            kind: r.str(Len::U8, "type")?,
            sender: r.str(Len::U16, "sender")?,
            data: r.str(Len::U32, "data")?,
        };
        Ok((e, r.position()))
    }
}
