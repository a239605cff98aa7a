//! [`Receipt`] (version 2): a member's read and delivered watermarks, client
//! → server, answered by Ack once stored (or an Error frame with the same
//! request id). Watermarks only move forward: a seq at or below the stored
//! one changes nothing and is still acknowledged. The conversation's
//! subscribers then see the member's new watermarks as an Ephemeral of type
//! `receipt` (docs/protocol.md, "Receipts and user presence").

use bytes::{BufMut, BytesMut};

use crate::frame::{Body, Kind};
use crate::wire::{put_str, str_size, Id, Len, Reader};
use crate::{Version, WireError};

/// Client → server: moves a member's watermarks forward.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by Ack or Error |
/// | 16 | `conversation_id` | UUID bytes |
/// | 8 | `read_seq` u64 | read up to and including this seq; 0 = leave as it is |
/// | 8 | `delivered_seq` u64 | delivered up to and including this seq; 0 = leave as it is |
/// | 2 + n | `sender` | u16 length + UTF-8: the member; token clients: empty (= the token's sender) |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    pub request_id: u32,
    pub conversation_id: Id,
    /// `None` on the wire is 0 (and `Some(0)` is sent as 0: nothing to move).
    pub read_seq: Option<u64>,
    /// `None` on the wire is 0.
    pub delivered_seq: Option<u64>,
    pub sender: String,
}

impl Body for Receipt {
    const KIND: Kind = Kind::Receipt;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 16 + 8 + 8 + str_size(&self.sender, Len::U16)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        buf.put_slice(&self.conversation_id);
        buf.put_u64_le(self.read_seq.unwrap_or(0));
        buf.put_u64_le(self.delivered_seq.unwrap_or(0));
        put_str(buf, &self.sender, Len::U16, "sender")
    }

    fn decode(body: &[u8], _: Version) -> Result<(Receipt, usize), WireError> {
        let mut r = Reader::new(body);
        let receipt = Receipt {
            request_id: r.u32("request_id")?,
            conversation_id: r.id("conversation_id")?,
            read_seq: Some(r.u64("read_seq")?).filter(|s| *s != 0),
            delivered_seq: Some(r.u64("delivered_seq")?).filter(|s| *s != 0),
            sender: r.str(Len::U16, "sender")?,
        };
        Ok((receipt, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_frame, Frame};

    #[test]
    fn version_1_has_no_receipt_frame() {
        let receipt = Receipt { request_id: 1, conversation_id: [3; 16], read_seq: Some(9), ..Receipt::default() };
        let mut buf = BytesMut::new();
        assert_eq!(
            receipt.encode_frame(Version::V1, &mut buf),
            Err(WireError::NotInVersion { field: "receipt", version: 1 })
        );
        assert!(buf.is_empty());
        receipt.encode_frame(Version::V2, &mut buf).expect("version 2 has it");
        assert_eq!(decode_frame(&buf, Version::V2), Ok(Some((Frame::Receipt(receipt), buf.len()))));
        // The same bytes with header version 1 are a kind version 1 does not know.
        buf[4] = 1;
        assert_eq!(decode_frame(&buf, Version::V1), Err(WireError::UnknownKind(0x32)));
    }
}
