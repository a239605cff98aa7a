//! RFC 6455 frames, server side, as a pure codec (no I/O): [`Decoder`] turns
//! the bytes a client sent into complete [`Message`]s, coping with a frame
//! split at any byte, and the encoders in [`super::encode`] write server frames.
//!
//! Layout (§5.2): `FIN RSV1-3 opcode(4) | MASK len(7) | [len 16 or 64 bit] |
//! [mask key 4] | payload`. Client frames must be masked; server frames never are.
//!
//! Invariants the decoder enforces: no RSV bits (no extension is negotiated),
//! control frames are final and ≤ 125 bytes and may arrive between the
//! fragments of a data message, a text message is valid UTF-8 once whole, and
//! a message's size is checked against the limit from the declared frame
//! length, before any of its payload is buffered. A fragmented message is
//! also bounded in frames ([`MAX_FRAGMENTS`]) and time ([`MAX_FRAGMENTED_TIME`]),
//! and every frame is reported ([`Message::Fragment`]) so it counts against
//! the connection's rate limit.

use bytes::{Buf, Bytes, BytesMut};

use super::error::WsError;

/// Frame opcodes (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    fn from_u8(b: u8) -> Result<Opcode, WsError> {
        Ok(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => return Err(WsError::Opcode(other)),
        })
    }

    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// The code and reason of a close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

/// One complete message from the client. `Text` holds bytes already checked
/// to be UTF-8 (kept as `Bytes` so JSON parsing needs no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// `None` when the close frame carried no code.
    Close(Option<CloseFrame>),
    /// A data frame that does not end its message: nothing to hand on, but
    /// reported so the reader counts every frame against the rate limit
    /// (an endless run of empty continuations must cost the client, not us).
    Fragment,
}

/// Frames one fragmented message may take; more closes 1008.
pub const MAX_FRAGMENTS: u32 = 256;
/// Time from a fragmented message's first frame to its last; longer closes 1008.
pub const MAX_FRAGMENTED_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// A data message whose fragments are still arriving.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: BytesMut,
    frames: u32,
    started: std::time::Instant,
}

/// A frame header as read from the wire.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// Parses the header at the start of `buf`; `Ok(None)` when it is incomplete.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, WsError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Reserved);
    }
    let opcode = Opcode::from_u8(b0 & 0x0F)?;
    if b1 & 0x80 == 0 {
        return Err(WsError::Unmasked);
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(WsError::LengthOverflow);
    }
    let Some(mask) = buf.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return Ok(None);
    };
    Ok(Some(Header { fin: b0 & 0x80 != 0, opcode, mask, len, header_len: at + 4 }))
}

/// XORs `data` with the client's mask key (§5.3).
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The reassembly state of one connection's incoming stream.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    max_fragments: u32,
    max_fragmented_time: std::time::Duration,
    /// The fragments so far of a data message.
    partial: Option<Partial>,
}

impl Decoder {
    /// A decoder refusing messages (the sum of their fragments) over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder::with_fragment_limits(max_message, MAX_FRAGMENTS, MAX_FRAGMENTED_TIME)
    }

    /// A decoder with other bounds on a fragmented message's frames and time.
    pub fn with_fragment_limits(max_message: usize, frames: u32, time: std::time::Duration) -> Decoder {
        Decoder { max_message, max_fragments: frames, max_fragmented_time: time, partial: None }
    }

    /// Takes the next frame off the front of `buf`: a complete message, or
    /// [`Message::Fragment`] for a fragment kept here. `Ok(None)` means more
    /// bytes are needed.
    /// After an error the connection must be closed with its code.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        let Some(h) = parse_header(buf)? else {
            return Ok(None);
        };
        self.check(&h)?;
        // `check` bounded `len` by the message limit (or 125), so it fits a usize.
        let total = h.header_len + h.len as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut payload = buf.split_to(total);
        payload.advance(h.header_len);
        unmask(&mut payload, h.mask);
        match (h.opcode, self.partial.take()) {
            (Opcode::Close, partial) => {
                self.partial = partial;
                parse_close(&payload).map(|c| Some(Message::Close(c)))
            }
            (Opcode::Ping, partial) => {
                self.partial = partial;
                Ok(Some(Message::Ping(payload.freeze())))
            }
            (Opcode::Pong, partial) => {
                self.partial = partial;
                Ok(Some(Message::Pong(payload.freeze())))
            }
            (op, None) if h.fin => finish(op == Opcode::Text, payload).map(Some),
            (op, None) => {
                let started = std::time::Instant::now();
                self.partial = Some(Partial { text: op == Opcode::Text, data: payload, frames: 1, started });
                Ok(Some(Message::Fragment))
            }
            (_, Some(mut p)) => {
                p.frames += 1;
                p.data.extend_from_slice(&payload);
                if h.fin {
                    return finish(p.text, p.data).map(Some);
                }
                self.partial = Some(p);
                Ok(Some(Message::Fragment))
            }
        }
    }

    /// Refuses a frame from its header alone, before its payload is buffered.
    fn check(&self, h: &Header) -> Result<(), WsError> {
        if h.opcode.is_control() {
            if !h.fin {
                return Err(WsError::FragmentedControl);
            }
            if h.len > 125 {
                return Err(WsError::ControlTooLong);
            }
            return Ok(());
        }
        let so_far = match (&self.partial, h.opcode) {
            (None, Opcode::Continuation) => return Err(WsError::StrayContinuation),
            (Some(_), Opcode::Text | Opcode::Binary) => return Err(WsError::Interleaved),
            (Some(p), _) if p.frames >= self.max_fragments => return Err(WsError::TooManyFragments),
            (Some(p), _) if p.started.elapsed() > self.max_fragmented_time => return Err(WsError::FragmentsTooSlow),
            (Some(p), _) => p.data.len() as u64,
            (None, _) => 0,
        };
        let size = so_far.saturating_add(h.len);
        if size > self.max_message as u64 {
            return Err(WsError::TooBig { size, limit: self.max_message });
        }
        Ok(())
    }
}

/// A whole data message; text must be UTF-8.
fn finish(text: bool, data: BytesMut) -> Result<Message, WsError> {
    if !text {
        return Ok(Message::Binary(data.freeze()));
    }
    std::str::from_utf8(&data).map_err(|_| WsError::InvalidUtf8)?;
    Ok(Message::Text(data.freeze()))
}

/// A close payload: empty, or a valid code then a UTF-8 reason (§5.5.1, §7.4).
fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::BadClose("one-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // 1004-1006 and 1015 are reserved for reporting, never sent.
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(WsError::BadClose("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason: reason.to_string() }))
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
