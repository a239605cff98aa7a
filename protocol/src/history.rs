//! History: [`History`] asks for a seq range of one conversation,
//! [`HistoryPage`] answers it (or an Error frame with the same request id).
//!
//! Seqs are gap-free, so ranges are plain arithmetic: the latest 50 of a
//! conversation whose last seq is L are `after_seq = L - 50`. A page holds at
//! most `limit` activities (the server may return fewer, to bound the frame
//! size); the range is done when the page's last seq reaches `until_seq` or
//! `last_seq`, otherwise ask again after the page's last seq.

use bytes::{BufMut, BytesMut};

use crate::activity::Activity;
use crate::deliver::read_activities;
use crate::frame::{Body, Kind};
use crate::wire::{put_count, Id, Reader};
use crate::{Version, WireError};

/// Client → server: activities with `after_seq < seq <= until_seq`.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by HistoryPage or Error |
/// | 16 | `conversation_id` | UUID bytes |
/// | 8 | `after_seq` u64 | exclusive lower bound (0 = from the first) |
/// | 8 | `until_seq` u64 | inclusive upper bound; 0 = none |
/// | 4 | `limit` u32 | most activities wanted (the server caps it, at 1000 today) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub request_id: u32,
    pub conversation_id: Id,
    pub after_seq: u64,
    /// `None` on the wire is 0.
    pub until_seq: Option<u64>,
    pub limit: u32,
}

impl Body for History {
    const KIND: Kind = Kind::History;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 16 + 8 + 8 + 4
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        buf.put_slice(&self.conversation_id);
        buf.put_u64_le(self.after_seq);
        buf.put_u64_le(self.until_seq.unwrap_or(0));
        buf.put_u32_le(self.limit);
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(History, usize), WireError> {
        let mut r = Reader::new(body);
        let h = History {
            request_id: r.u32("request_id")?,
            conversation_id: r.id("conversation_id")?,
            after_seq: r.u64("after_seq")?,
            until_seq: Some(r.u64("until_seq")?).filter(|s| *s != 0),
            limit: r.u32("limit")?,
        };
        Ok((h, r.position()))
    }
}

/// Server → client: one page of history, in seq order.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the History's id |
/// | 16 | `conversation_id` | UUID bytes |
/// | 8 | `last_seq` u64 | the conversation's last seq now |
/// | 4 | `count` u32 | records that follow |
/// | … | `activities` | `count` activity records |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    pub request_id: u32,
    pub conversation_id: Id,
    pub last_seq: u64,
    pub activities: Vec<Activity>,
}

impl Body for HistoryPage {
    const KIND: Kind = Kind::HistoryPage;

    fn encoded_size(&self, version: Version) -> usize {
        4 + 16 + 8 + 4 + self.activities.iter().map(|a| a.encoded_size(version)).sum::<usize>()
    }

    fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        buf.put_slice(&self.conversation_id);
        buf.put_u64_le(self.last_seq);
        put_count(buf, self.activities.len(), "count")?;
        self.activities.iter().try_for_each(|a| a.encode(version, buf))
    }

    fn decode(body: &[u8], version: Version) -> Result<(HistoryPage, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let conversation_id = r.id("conversation_id")?;
        let last_seq = r.u64("last_seq")?;
        let activities = read_activities(&mut r, version)?;
        Ok((HistoryPage { request_id, conversation_id, last_seq, activities }, r.position()))
    }
}
