//! Connection control: [`Ping`] / [`Pong`] (either side), [`Ack`] (a request
//! done, nothing to return) and [`ErrorFrame`] (a request or the connection
//! failed, with a catalogue code).

use bytes::{BufMut, BytesMut};

use crate::frame::{Body, Kind, FLAG_CLOSE};
use crate::wire::{put_str, str_size, Len, Reader};
use crate::{ErrorCode, Version, WireError};

/// Either side → the other: answer with a Pong carrying the same `payload`.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 8 | `payload` u64 | opaque (e.g. a send time, to measure the round trip) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    pub payload: u64,
}

/// The answer to a Ping. Same layout as Ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pong {
    pub payload: u64,
}

macro_rules! payload_only {
    ($ty:ident, $kind:expr) => {
        impl Body for $ty {
            const KIND: Kind = $kind;

            fn encoded_size(&self, _: Version) -> usize {
                8
            }

            fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
                buf.put_u64_le(self.payload);
                Ok(())
            }

            fn decode(body: &[u8], _: Version) -> Result<($ty, usize), WireError> {
                let mut r = Reader::new(body);
                Ok(($ty { payload: r.u64("payload")? }, r.position()))
            }
        }
    };
}

payload_only!(Ping, Kind::Ping);
payload_only!(Pong, Kind::Pong);

/// Server → client: the request `request_id` (an Unsubscribe, a Reauth) is done.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the request's id |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub request_id: u32,
}

impl Body for Ack {
    const KIND: Kind = Kind::Ack;

    fn encoded_size(&self, _: Version) -> usize {
        4
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        Ok(())
    }

    fn decode(body: &[u8], _: Version) -> Result<(Ack, usize), WireError> {
        let mut r = Reader::new(body);
        Ok((Ack { request_id: r.u32("request_id")? }, r.position()))
    }
}

/// Server → client: a request failed, or the connection is ending.
///
/// Header flag 0x0001 (`close`): the server closes the connection after this
/// frame and reads nothing more from it.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | the failed request's id; 0 = not about one request |
/// | 2 | `code` u16 | a catalogue number ([`ErrorCode`]); a number this version does not know is kept as is |
/// | 2 + n | `message` | u16 length + UTF-8, for people |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    pub request_id: u32,
    /// Raw, so a newer peer's code survives decoding; see [`ErrorFrame::error_code`].
    pub code: u16,
    pub message: String,
    /// The header's close flag.
    pub close: bool,
}

impl ErrorFrame {
    pub fn new(request_id: u32, code: ErrorCode, message: impl Into<String>) -> ErrorFrame {
        ErrorFrame { request_id, code: code.code(), message: message.into(), close: false }
    }

    /// The same error, marked as the connection's last frame.
    pub fn closing(mut self) -> ErrorFrame {
        self.close = true;
        self
    }

    /// The catalogue entry, when this version knows the number.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}

impl Body for ErrorFrame {
    const KIND: Kind = Kind::Error;

    fn encoded_size(&self, _: Version) -> usize {
        4 + 2 + str_size(&self.message, Len::U16)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        buf.put_u16_le(self.code);
        put_str(buf, &self.message, Len::U16, "message")
    }

    fn decode(body: &[u8], _: Version) -> Result<(ErrorFrame, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let code = r.u16("code")?;
        if code == 0 {
            return Err(WireError::InvalidValue { field: "code", reason: "0 is not an error code" });
        }
        let message = r.str(Len::U16, "message")?;
        Ok((ErrorFrame { request_id, code, message, close: false }, r.position()))
    }

    fn flags(&self) -> u16 {
        if self.close {
            FLAG_CLOSE
        } else {
            0
        }
    }

    fn set_flags(&mut self, flags: u16) {
        self.close = flags & FLAG_CLOSE != 0;
    }
}

/// One item of a list answer that failed (Subscribed, PublishBatchAck): the
/// item's `code` u16 is non-zero and `message` follows it.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 2 | `code` u16 | a catalogue number, never 0 (0 marks a success item) |
/// | 2 + n | `message` | u16 length + UTF-8 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure { code: code.code(), message: message.into() }
    }

    /// Bytes of the failure, its code included.
    pub(crate) fn encoded_size(&self) -> usize {
        2 + str_size(&self.message, Len::U16)
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), WireError> {
        if self.code == 0 {
            return Err(WireError::InvalidValue { field: "code", reason: "0 is not an error code" });
        }
        buf.put_u16_le(self.code);
        put_str(buf, &self.message, Len::U16, "message")
    }

    /// Reads the message of a failure whose non-zero `code` was just read.
    pub(crate) fn read(code: u16, r: &mut Reader<'_>) -> Result<Failure, WireError> {
        Ok(Failure { code, message: r.str(Len::U16, "message")? })
    }

    /// The catalogue entry, when this version knows the number.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }
}
