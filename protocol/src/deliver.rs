//! [`Deliver`]: server → client, committed activities of subscribed
//! conversations (the resume backlog, then the live stream), many per frame.
//!
//! Encode once, share everywhere: a Deliver frame is a fixed 12-byte prefix
//! (header + count) followed by activity records that hold nothing about the
//! receiving connection. A server encodes each committed activity's record
//! once per protocol version its subscribers speak ([`Activity::encode`]) and,
//! per connection, writes
//! [`put_deliver_prefix`] and then the shared record bytes (a vectored write
//! or one copy); and since every subscriber of a conversation receives the
//! same run of activities, it can just as well encode the whole frame once and
//! share that.

use bytes::BytesMut;

use crate::activity::{Activity, MIN_ACTIVITY_SIZE};
use crate::frame::{put_header, Body, Kind, HEADER_SIZE};
use crate::wire::{put_count, Reader};
use crate::{Version, WireError};

/// Committed activities, in seq order per conversation.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `count` u32 | records that follow |
/// | … | `activities` | `count` activity records, back to back |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    pub activities: Vec<Activity>,
}

/// Bytes before the first record: the header and the count.
pub const DELIVER_PREFIX_SIZE: usize = HEADER_SIZE + 4;

/// Appends the header and count of a Deliver frame whose `count` records,
/// already encoded in `version`'s layout, take `records_size` bytes; the
/// caller sends the records right after. On error `buf` is left as it was.
pub fn put_deliver_prefix(
    buf: &mut BytesMut,
    version: Version,
    count: usize,
    records_size: usize,
) -> Result<(), WireError> {
    let start = buf.len();
    let result =
        put_header(buf, version, Kind::Deliver, 0, 4 + records_size).and_then(|()| put_count(buf, count, "count"));
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

impl Body for Deliver {
    const KIND: Kind = Kind::Deliver;

    fn encoded_size(&self, version: Version) -> usize {
        4 + self.activities.iter().map(|a| a.encoded_size(version)).sum::<usize>()
    }

    fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        put_count(buf, self.activities.len(), "count")?;
        self.activities.iter().try_for_each(|a| a.encode(version, buf))
    }

    fn decode(body: &[u8], version: Version) -> Result<(Deliver, usize), WireError> {
        let mut r = Reader::new(body);
        let activities = read_activities(&mut r, version)?;
        Ok((Deliver { activities }, r.position()))
    }
}

/// A `u32` count and that many activity records of `version`.
pub(crate) fn read_activities(r: &mut Reader<'_>, version: Version) -> Result<Vec<Activity>, WireError> {
    let n = r.count(MIN_ACTIVITY_SIZE, "count")?;
    let mut activities = Vec::with_capacity(n);
    for _ in 0..n {
        activities.push(Activity::read(r, version)?);
    }
    Ok(activities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_frame, Frame};

    fn activity(seq: u64) -> Activity {
        Activity {
            id: [seq as u8; 16],
            conversation_id: [7; 16],
            seq,
            created_at: 1_700_000_000_000_000,
            kind: "message".into(),
            sender: "u1".into(),
            text: Some(format!("hello {seq}")),
            attachments: None,
            metadata: "{}".into(),
            state: Some(crate::MessageState::default()),
            ..Activity::default()
        }
    }

    #[test]
    fn a_prefix_and_shared_records_make_the_same_frame_as_encode() {
        for version in Version::ALL {
            let mut activities = vec![activity(1), activity(2), activity(3)];
            if version == Version::V1 {
                activities.iter_mut().for_each(|a| a.state = None);
            }
            let records: Vec<BytesMut> = activities
                .iter()
                .map(|a| {
                    let mut b = BytesMut::new();
                    a.encode(version, &mut b).expect("record");
                    b
                })
                .collect();
            let mut frame = BytesMut::new();
            put_deliver_prefix(&mut frame, version, records.len(), records.iter().map(|r| r.len()).sum())
                .expect("prefix");
            assert_eq!(frame.len(), DELIVER_PREFIX_SIZE);
            records.iter().for_each(|r| frame.extend_from_slice(r));

            let mut whole = BytesMut::new();
            Deliver { activities: activities.clone() }.encode_frame(version, &mut whole).expect("frame");
            assert_eq!(frame, whole);
            let (decoded, used) = decode_frame(&frame, version).expect("decodes").expect("complete");
            assert_eq!((decoded, used), (Frame::Deliver(Deliver { activities }), frame.len()));
        }
    }
}
