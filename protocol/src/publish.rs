//! Writes: [`Publish`] (one activity) answered by [`PublishAck`] or an Error
//! frame with the same request id, and [`PublishBatch`] (many activities)
//! answered by one [`PublishBatchAck`] listing each item's outcome.
//!
//! An ack is sent only after the activity is committed (it survives a crash).
//! A repeated idempotency key in the same conversation answers the original
//! activity with `replayed` set and creates nothing. Batch items succeed or
//! fail one by one; items of one conversation get increasing seqs in frame
//! order. A failure of the whole batch (e.g. `overloaded`) is one Error frame.

use bytes::{BufMut, BytesMut};

use crate::control::Failure;
use crate::draft::{Draft, MIN_DRAFT_SIZE};
use crate::frame::{Body, Kind};
use crate::wire::{put_count, Id, Reader};
use crate::{Version, WireError};

/// Client → server: create one activity.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by PublishAck or Error |
/// | … | `activity` | a draft record (see Draft) |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub request_id: u32,
    pub activity: Draft,
}

impl Body for Publish {
    const KIND: Kind = Kind::Publish;

    fn encoded_size(&self, version: Version) -> usize {
        4 + self.activity.encoded_size(version)
    }

    fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        self.activity.encode(version, buf)
    }

    fn decode(body: &[u8], version: Version) -> Result<(Publish, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let activity = Draft::read(&mut r, version)?;
        Ok((Publish { request_id, activity }, r.position()))
    }
}

/// What a successful write returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub activity_id: Id,
    pub seq: u64,
    /// Unix microseconds.
    pub created_at: i64,
    /// True when the idempotency key matched an earlier activity: these are
    /// its id, seq and time, and nothing new was created.
    pub replayed: bool,
}

const WRITTEN_SIZE: usize = 16 + 8 + 8 + 1;

impl Written {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.activity_id);
        buf.put_u64_le(self.seq);
        buf.put_i64_le(self.created_at);
        buf.put_u8(u8::from(self.replayed));
    }

    fn read(r: &mut Reader<'_>) -> Result<Written, WireError> {
        Ok(Written {
            activity_id: r.id("activity_id")?,
            seq: r.u64("seq")?,
            created_at: r.i64("created_at")?,
            replayed: r.bool("replayed")?,
        })
    }
}

/// Server → client: the Publish `request_id` is committed.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the Publish's id |
/// | 16 | `activity_id` | UUID bytes |
/// | 8 | `seq` u64 | |
/// | 8 | `created_at` i64 | unix microseconds |
/// | 1 | `replayed` u8 | 1 = idempotent replay of an earlier write, else 0 |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishAck {
    pub request_id: u32,
    pub written: Written,
}

impl Body for PublishAck {
    const KIND: Kind = Kind::PublishAck;

    fn encoded_size(&self, _: Version) -> usize {
        4 + WRITTEN_SIZE
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        self.written.encode(buf);
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(PublishAck, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let written = Written::read(&mut r)?;
        Ok((PublishAck { request_id, written }, r.position()))
    }
}

/// Client → server: create many activities (of one or many conversations).
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by PublishBatchAck or Error |
/// | 4 | `count` u32 | drafts that follow |
/// | … | `activities` | `count` draft records, back to back |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishBatch {
    pub request_id: u32,
    pub activities: Vec<Draft>,
}

impl Body for PublishBatch {
    const KIND: Kind = Kind::PublishBatch;

    fn encoded_size(&self, version: Version) -> usize {
        4 + 4 + self.activities.iter().map(|d| d.encoded_size(version)).sum::<usize>()
    }

    fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_count(buf, self.activities.len(), "count")?;
        self.activities.iter().try_for_each(|d| d.encode(version, buf))
    }

    fn decode(body: &[u8], version: Version) -> Result<(PublishBatch, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let n = r.count(MIN_DRAFT_SIZE, "count")?;
        let mut activities = Vec::with_capacity(n);
        for _ in 0..n {
            activities.push(Draft::read(&mut r, version)?);
        }
        Ok((PublishBatch { request_id, activities }, r.position()))
    }
}

/// Server → client: the outcome of every item of a PublishBatch, in its order,
/// sent once all of them are settled.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the PublishBatch's id |
/// | 4 | `count` u32 | items that follow (= the batch's count) |
/// | 2 | item `code` u16 | 0 = written; else a catalogue number |
/// | 33 | item `activity_id`, `seq`, `created_at`, `replayed` | if `code` = 0: as in PublishAck |
/// | 2 + n | item `message` | if `code` ≠ 0: u16 length + UTF-8 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishBatchAck {
    pub request_id: u32,
    pub items: Vec<Result<Written, Failure>>,
}

impl Body for PublishBatchAck {
    const KIND: Kind = Kind::PublishBatchAck;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 4
            + self
                .items
                .iter()
                .map(|i| i.as_ref().map_or_else(Failure::encoded_size, |_| 2 + WRITTEN_SIZE))
                .sum::<usize>()
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_count(buf, self.items.len(), "count")?;
        for item in &self.items {
            match item {
                Ok(w) => {
                    buf.put_u16_le(0);
                    w.encode(buf);
                }
                Err(f) => f.encode(buf)?,
            }
        }
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(PublishBatchAck, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let n = r.count(2 + 2, "count")?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(match r.u16("code")? {
                0 => Ok(Written::read(&mut r)?),
                code => Err(Failure::read(code, &mut r)?),
            });
        }
        Ok((PublishBatchAck { request_id, items }, r.position()))
    }
}
