//! Subscriptions: [`Subscribe`] (many conversations, each with its resume
//! point), its answer [`Subscribed`], and [`Unsubscribe`] (answered by Ack).
//!
//! Order on the wire, per conversation: the Subscribed item first, then the
//! activities after `after_seq` up to the item's `last_seq` (the backlog, in
//! Deliver frames), then the live stream: no gap, no duplicate at the seam.
//! After the Ack of an Unsubscribe no Deliver carries that conversation.

use bytes::{BufMut, BytesMut};

use crate::control::Failure;
use crate::frame::{Body, Kind};
use crate::wire::{put_count, Id, Reader};
use crate::{Version, WireError};

/// `after_seq` meaning "no backlog: the live stream only".
pub const LIVE_ONLY: u64 = u64::MAX;

/// One conversation to subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeItem {
    pub conversation_id: Id,
    /// The last seq the client has (0: none, send everything; [`LIVE_ONLY`]: send no backlog).
    pub after_seq: u64,
}

/// Client → server.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by Subscribed |
/// | 4 | `count` u32 | items that follow |
/// | 16 | item `conversation_id` | UUID bytes |
/// | 8 | item `after_seq` u64 | resume point; 0 = from the start; `u64::MAX` = live only |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub request_id: u32,
    pub items: Vec<SubscribeItem>,
}

impl Body for Subscribe {
    const KIND: Kind = Kind::Subscribe;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 4 + self.items.len() * 24
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_count(buf, self.items.len(), "count")?;
        for item in &self.items {
            buf.put_slice(&item.conversation_id);
            buf.put_u64_le(item.after_seq);
        }
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(Subscribe, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let n = r.count(24, "count")?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(SubscribeItem { conversation_id: r.id("conversation_id")?, after_seq: r.u64("after_seq")? });
        }
        Ok((Subscribe { request_id, items }, r.position()))
    }
}

/// The outcome of one Subscribe item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribedItem {
    pub conversation_id: Id,
    /// `Ok(last_seq)`: subscribed; the conversation's last seq when the
    /// subscription began (the backlog ends there, live activities follow).
    pub result: Result<u64, Failure>,
}

/// Server → client: the answer to a Subscribe, one item per requested
/// conversation, in request order.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the Subscribe's id |
/// | 4 | `count` u32 | items that follow |
/// | 16 | item `conversation_id` | UUID bytes |
/// | 2 | item `code` u16 | 0 = subscribed; else a catalogue number |
/// | 8 | item `last_seq` u64 | if `code` = 0 |
/// | 2 + n | item `message` | if `code` ≠ 0: u16 length + UTF-8 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribed {
    pub request_id: u32,
    pub items: Vec<SubscribedItem>,
}

impl Body for Subscribed {
    const KIND: Kind = Kind::Subscribed;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 4
            + self
                .items
                .iter()
                .map(|i| 16 + i.result.as_ref().map_or_else(Failure::encoded_size, |_| 2 + 8))
                .sum::<usize>()
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_count(buf, self.items.len(), "count")?;
        for item in &self.items {
            buf.put_slice(&item.conversation_id);
            match &item.result {
                Ok(last_seq) => {
                    buf.put_u16_le(0);
                    buf.put_u64_le(*last_seq);
                }
                Err(f) => f.encode(buf)?,
            }
        }
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(Subscribed, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let n = r.count(16 + 2 + 2, "count")?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let conversation_id = r.id("conversation_id")?;
            let result = match r.u16("code")? {
                0 => Ok(r.u64("last_seq")?),
                code => Err(Failure::read(code, &mut r)?),
            };
            items.push(SubscribedItem { conversation_id, result });
        }
        Ok((Subscribed { request_id, items }, r.position()))
    }
}

/// Client → server: stop the subscriptions to these conversations (one not
/// subscribed is ignored). Answered by Ack.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by Ack |
/// | 4 | `count` u32 | ids that follow |
/// | 16 × count | `conversation_ids` | UUID bytes each |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub request_id: u32,
    pub conversation_ids: Vec<Id>,
}

impl Body for Unsubscribe {
    const KIND: Kind = Kind::Unsubscribe;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 4 + self.conversation_ids.len() * 16
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_count(buf, self.conversation_ids.len(), "count")?;
        for id in &self.conversation_ids {
            buf.put_slice(id);
        }
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(Unsubscribe, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let n = r.count(16, "count")?;
        let mut conversation_ids = Vec::with_capacity(n);
        for _ in 0..n {
            conversation_ids.push(r.id("conversation_id")?);
        }
        Ok((Unsubscribe { request_id, conversation_ids }, r.position()))
    }
}
