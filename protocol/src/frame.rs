//! The frame: header, kinds, the [`Frame`] enum over every body, and the
//! incremental decoder.
//!
//! Header (8 bytes, little-endian), then the body:
//!
//! | offset | size | field | meaning |
//! | --- | --- | --- | --- |
//! | 0 | 4 | `length` u32 | bytes after this field: 4 + body length |
//! | 4 | 1 | `version` u8 | protocol version of this frame's layout ([`Version`]) |
//! | 5 | 1 | `kind` u8 | [`Kind`] |
//! | 6 | 2 | `flags` u16 | per-kind bits; bits a kind does not define must be 0 |
//! | 8 | `length` − 4 | body | the kind's layout |
//!
//! Invariants: the decoder checks the size (`4 + length`) against the limit
//! from the first four bytes, before it waits for the rest; it answers
//! `Ok(None)` (incomplete) for any prefix of a valid frame and never panics; a
//! body must be consumed exactly (left-over bytes are an error).
//!
//! Versions: a connection speaks one [`Version`], and the decoder is told
//! which. A frame whose header names another version is
//! `UnsupportedVersion`, a kind the version does not have is `UnknownKind`
//! (so a version-1 decoder sees exactly the version-1 protocol), and Hello and
//! Welcome always carry header version 1 ([`Kind::header_version`]).

use bytes::{BufMut, BytesMut};

use crate::wire::Reader;
use crate::{
    Ack, Deliver, Ephemeral, ErrorFrame, Hello, History, HistoryPage, Ping, Pong, Publish, PublishAck, PublishBatch,
    PublishBatchAck, Reauth, Receipt, Subscribe, Subscribed, Unsubscribe, Version, Welcome, WireError,
};

/// Bytes of the header, the length prefix included.
pub const HEADER_SIZE: usize = 8;

/// The largest frame (header included) the protocol allows: 16 MiB. A server
/// may announce a lower limit for what it accepts in [`Welcome::max_frame`].
pub const MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// Error flag: the sender closes the connection after this frame.
pub const FLAG_CLOSE: u16 = 0x0001;

/// A frame's kind: the header's `kind` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Hello = 0x01,
    Welcome = 0x02,
    Ping = 0x03,
    Pong = 0x04,
    Error = 0x05,
    Ack = 0x06,
    Reauth = 0x07,
    Subscribe = 0x10,
    Subscribed = 0x11,
    Unsubscribe = 0x12,
    Publish = 0x20,
    PublishAck = 0x21,
    PublishBatch = 0x22,
    PublishBatchAck = 0x23,
    Deliver = 0x30,
    Ephemeral = 0x31,
    Receipt = 0x32,
    History = 0x40,
    HistoryPage = 0x41,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Hello,
        Kind::Welcome,
        Kind::Ping,
        Kind::Pong,
        Kind::Error,
        Kind::Ack,
        Kind::Reauth,
        Kind::Subscribe,
        Kind::Subscribed,
        Kind::Unsubscribe,
        Kind::Publish,
        Kind::PublishAck,
        Kind::PublishBatch,
        Kind::PublishBatchAck,
        Kind::Deliver,
        Kind::Ephemeral,
        Kind::Receipt,
        Kind::History,
        Kind::HistoryPage,
    ];

    pub fn from_u8(b: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u8 == b)
    }

    /// The snake_case name used in docs and golden vectors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Welcome => "welcome",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Error => "error",
            Kind::Ack => "ack",
            Kind::Reauth => "reauth",
            Kind::Subscribe => "subscribe",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribe => "unsubscribe",
            Kind::Publish => "publish",
            Kind::PublishAck => "publish_ack",
            Kind::PublishBatch => "publish_batch",
            Kind::PublishBatchAck => "publish_batch_ack",
            Kind::Deliver => "deliver",
            Kind::Ephemeral => "ephemeral",
            Kind::Receipt => "receipt",
            Kind::History => "history",
            Kind::HistoryPage => "history_page",
        }
    }

    /// The first version that has this kind: a decoder of an older version
    /// answers `UnknownKind`, an encoder `NotInVersion`.
    pub fn since(self) -> Version {
        match self {
            Kind::Receipt => Version::V2,
            _ => Version::V1,
        }
    }

    /// The version a frame of this kind carries in its header on a connection
    /// speaking `version`: Hello and Welcome always say 1 (their layouts are
    /// version 1's in every version, so any server reads any client's first
    /// frame), every other kind says the connection's version.
    pub fn header_version(self, version: Version) -> Version {
        match self {
            Kind::Hello | Kind::Welcome => Version::V1,
            _ => version,
        }
    }

    /// Flag bits this kind defines.
    pub fn allowed_flags(self) -> u16 {
        match self {
            Kind::Error => FLAG_CLOSE,
            _ => 0,
        }
    }

    /// True for kinds a client sends (the server refuses the others with
    /// `unexpected_frame`). Ping, Pong and Ephemeral go both ways.
    pub fn client_sends(self) -> bool {
        matches!(
            self,
            Kind::Hello
                | Kind::Ping
                | Kind::Pong
                | Kind::Reauth
                | Kind::Subscribe
                | Kind::Unsubscribe
                | Kind::Publish
                | Kind::PublishBatch
                | Kind::Ephemeral
                | Kind::Receipt
                | Kind::History
        )
    }

    /// True for kinds the server sends.
    pub fn server_sends(self) -> bool {
        !self.client_sends() || matches!(self, Kind::Ping | Kind::Pong | Kind::Ephemeral)
    }
}

/// A frame body: one type per kind, encoded and decoded without its header,
/// in the layout of a [`Version`] (most kinds have one layout in every
/// version and ignore it).
pub trait Body: Sized {
    const KIND: Kind;

    /// Bytes of the body (the header not included) in `version`'s layout.
    fn encoded_size(&self, version: Version) -> usize;

    /// Appends the body. On error nothing useful was written; [`Frame::encode`]
    /// and [`Body::encode_frame`] take it back out of `buf`.
    fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError>;

    /// Reads a body from the start of `body`; answers it and the bytes it took.
    fn decode(body: &[u8], version: Version) -> Result<(Self, usize), WireError>;

    /// Header flags of this body (only Error defines any).
    fn flags(&self) -> u16 {
        0
    }

    /// Takes the header's flags (already checked against the kind's allowed bits).
    fn set_flags(&mut self, _flags: u16) {}

    /// Appends header and body: one whole frame of a connection speaking `version`.
    fn encode_frame(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        let start = buf.len();
        let result = put_header(buf, version, Self::KIND, self.flags(), self.encoded_size(version))
            .and_then(|()| self.encode(version, buf));
        finish(buf, start, result)
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Size of the whole frame, header included (`4 + length`).
    pub size: usize,
    /// The connection's version (the header says 1 for Hello and Welcome,
    /// which have version 1's layout in every version).
    pub version: Version,
    pub kind: Kind,
    pub flags: u16,
}

impl Header {
    /// Reads the header at the start of `buf`, on a connection speaking
    /// `version`. `Ok(None)`: fewer than 8 bytes yet (but a length over
    /// `max_size` is refused as soon as its 4 bytes are there, so a reader
    /// never buffers toward an oversized frame).
    pub fn peek(buf: &[u8], max_size: u32, version: Version) -> Result<Option<Header>, WireError> {
        let Some(len_bytes) = buf.get(..4) else { return Ok(None) };
        let mut r = Reader::new(len_bytes);
        let length = r.u32("length")?;
        let size = u64::from(length) + 4;
        if size > u64::from(max_size) {
            return Err(WireError::FrameTooLarge { size, max: max_size });
        }
        if (length as usize) < HEADER_SIZE - 4 {
            return Err(WireError::BadLength { length });
        }
        let Some(rest) = buf.get(4..HEADER_SIZE) else { return Ok(None) };
        let mut r = Reader::new(rest);
        let version_byte = r.u8("version")?;
        let kind_byte = r.u8("kind")?;
        let kind = Kind::from_u8(kind_byte);
        let expected = kind.map_or(version, |k| k.header_version(version));
        if version_byte != expected.get() {
            return Err(WireError::UnsupportedVersion(version_byte));
        }
        let kind = kind.filter(|k| k.since() <= version).ok_or(WireError::UnknownKind(kind_byte))?;
        let flags = r.u16("flags")?;
        if flags & !kind.allowed_flags() != 0 {
            return Err(WireError::UnknownFlags { kind: kind_byte, flags });
        }
        Ok(Some(Header { size: size as usize, version, kind, flags }))
    }
}

/// Appends the header of a frame of `kind` with a body of `body_size` bytes,
/// on a connection speaking `version`; refuses a kind the version does not have.
pub fn put_header(
    buf: &mut BytesMut,
    version: Version,
    kind: Kind,
    flags: u16,
    body_size: usize,
) -> Result<(), WireError> {
    if kind.since() > version {
        return Err(WireError::NotInVersion { field: kind.name(), version: version.get() });
    }
    let size = HEADER_SIZE + body_size;
    if size > MAX_FRAME_SIZE as usize {
        return Err(WireError::FrameTooLarge { size: size as u64, max: MAX_FRAME_SIZE });
    }
    buf.reserve(size);
    buf.put_u32_le((size - 4) as u32);
    buf.put_u8(kind.header_version(version).get());
    buf.put_u8(kind as u8);
    buf.put_u16_le(flags);
    Ok(())
}

/// Takes a failed encode's partial bytes back out of `buf`.
fn finish(buf: &mut BytesMut, start: usize, result: Result<(), WireError>) -> Result<(), WireError> {
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

macro_rules! frames {
    ($($variant:ident($ty:ident)),* $(,)?) => {
        /// Any frame. The variant is named for its [`Kind`].
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Frame {
            $($variant($ty),)*
        }

        impl Frame {
            pub fn kind(&self) -> Kind {
                match self { $(Frame::$variant(_) => Kind::$variant,)* }
            }

            fn flags(&self) -> u16 {
                match self { $(Frame::$variant(b) => b.flags(),)* }
            }

            fn body_size(&self, version: Version) -> usize {
                match self { $(Frame::$variant(b) => b.encoded_size(version),)* }
            }

            fn encode_body(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
                match self { $(Frame::$variant(b) => b.encode(version, buf),)* }
            }

            fn decode_body(header: Header, body: &[u8]) -> Result<Frame, WireError> {
                match header.kind {
                    $(Kind::$variant => {
                        let (mut b, used) = $ty::decode(body, header.version)?;
                        check_consumed(Kind::$variant, body, used)?;
                        b.set_flags(header.flags);
                        Ok(Frame::$variant(b))
                    })*
                }
            }
        }

        $(impl From<$ty> for Frame {
            fn from(b: $ty) -> Frame {
                Frame::$variant(b)
            }
        })*
    };
}

frames!(
    Hello(Hello),
    Welcome(Welcome),
    Ping(Ping),
    Pong(Pong),
    Error(ErrorFrame),
    Ack(Ack),
    Reauth(Reauth),
    Subscribe(Subscribe),
    Subscribed(Subscribed),
    Unsubscribe(Unsubscribe),
    Publish(Publish),
    PublishAck(PublishAck),
    PublishBatch(PublishBatch),
    PublishBatchAck(PublishBatchAck),
    Deliver(Deliver),
    Ephemeral(Ephemeral),
    Receipt(Receipt),
    History(History),
    HistoryPage(HistoryPage),
);

fn check_consumed(kind: Kind, body: &[u8], used: usize) -> Result<(), WireError> {
    match body.len().checked_sub(used) {
        Some(0) => Ok(()),
        Some(extra) => Err(WireError::TrailingBytes { kind: kind as u8, extra }),
        None => Err(WireError::Truncated { field: "body" }),
    }
}

impl Frame {
    /// Bytes of the whole frame, header included, in `version`'s layout.
    pub fn encoded_size(&self, version: Version) -> usize {
        HEADER_SIZE + self.body_size(version)
    }

    /// Appends the whole frame to `buf`, for a connection speaking `version`.
    /// On error `buf` is left as it was.
    pub fn encode(&self, version: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        let start = buf.len();
        let result = put_header(buf, version, self.kind(), self.flags(), self.body_size(version))
            .and_then(|()| self.encode_body(version, buf));
        debug_assert!(
            result.is_err() || buf.len() - start == self.encoded_size(version),
            "encoded_size disagrees with encode"
        );
        finish(buf, start, result)
    }
}

/// Decodes the frame at the start of `buf`, on a connection speaking
/// `version` (version 1 until the handshake is done), with the protocol's
/// [`MAX_FRAME_SIZE`] as the limit.
///
/// - `Ok(Some((frame, n)))`: a whole frame; it took the first `n` bytes.
/// - `Ok(None)`: `buf` holds only part of a frame; read more and call again.
/// - `Err(e)`: the bytes are not a frame; the connection cannot go on (answer
///   an Error frame with `e.code()` and close).
pub fn decode_frame(buf: &[u8], version: Version) -> Result<Option<(Frame, usize)>, WireError> {
    decode_frame_with_limit(buf, version, MAX_FRAME_SIZE)
}

/// [`decode_frame`] with a lower size limit (a server's configured limit, as
/// announced in [`Welcome::max_frame`]). A limit above [`MAX_FRAME_SIZE`]
/// counts as [`MAX_FRAME_SIZE`].
pub fn decode_frame_with_limit(
    buf: &[u8],
    version: Version,
    max_size: u32,
) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(header) = Header::peek(buf, max_size.min(MAX_FRAME_SIZE), version)? else { return Ok(None) };
    let Some(body) = buf.get(HEADER_SIZE..header.size) else { return Ok(None) };
    let frame = Frame::decode_body(header, body)?;
    Ok(Some((frame, header.size)))
}
