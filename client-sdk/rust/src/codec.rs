//! The SDK's framing over a byte stream, on top of `converger-protocol` (the
//! only codec): [`FrameDecoder`] cuts the bytes the socket gives into frames,
//! [`encode`] makes the bytes of one frame. Both work in the connection's
//! protocol [`Version`] (1 until the Welcome names the one chosen).
//!
//! Invariant: a decode error ends the connection (docs/protocol.md, Framing:
//! no resynchronisation inside a byte stream); the caller drops the decoder
//! with the socket.

use bytes::{Buf, Bytes, BytesMut};
use converger_protocol::{decode_frame_with_limit, Frame, Version, WireError, MAX_FRAME_SIZE};

/// Buffer size the decoder starts with and returns to when idle.
const INITIAL: usize = 8 * 1024;

/// Incremental decoder: append what the socket read, then take whole frames.
///
/// ```
/// use converger_client::codec::{encode, FrameDecoder};
/// use converger_protocol::{Frame, Ping, Version};
///
/// let bytes = encode(&Frame::Ping(Ping { payload: 7 }), Version::V1).unwrap();
/// let mut decoder = FrameDecoder::new();
/// decoder.extend(&bytes[..5]);
/// assert_eq!(decoder.next_frame().unwrap(), None); // incomplete
/// decoder.extend(&bytes[5..]);
/// assert_eq!(decoder.next_frame().unwrap(), Some(Frame::Ping(Ping { payload: 7 })));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: u32,
    version: Version,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to the protocol's 16 MiB, in version 1
    /// (a connection's version until its Welcome).
    pub fn new() -> FrameDecoder {
        FrameDecoder { buf: BytesMut::with_capacity(INITIAL), max_frame: MAX_FRAME_SIZE, version: Version::V1 }
    }

    /// Frames are read in `version` from now on (the Welcome's choice).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version frames are read in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read into (for `AsyncReadExt::read_buf`).
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        if self.buf.is_empty() && self.buf.capacity() > 4 * INITIAL {
            // A burst is over: do not keep its buffer while idle.
            self.buf = BytesMut::with_capacity(INITIAL);
        }
        self.buf.reserve(INITIAL);
        &mut self.buf
    }

    /// The next whole frame; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        match decode_frame_with_limit(&self.buf, self.version, self.max_frame)? {
            Some((frame, used)) => {
                self.buf.advance(used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Bytes received and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The bytes of one frame for a connection speaking `version`.
pub fn encode(frame: &Frame, version: Version) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(frame.encoded_size(version));
    frame.encode(version, &mut out)?;
    Ok(out.freeze())
}
