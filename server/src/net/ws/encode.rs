//! Server frames (unmasked, always final): each encoder returns the complete
//! frame as `Bytes`, so one encoded frame (a broadcast) can be queued on many
//! sockets by reference count, never copied per subscriber.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Opcode;

/// The longest frame header a server writes: 2 bytes + a 64-bit length.
const MAX_HEADER: usize = 10;

/// Appends the header of a final, unmasked frame of `len` payload bytes.
fn put_header(opcode: Opcode, len: usize, out: &mut BytesMut) {
    out.put_u8(0x80 | opcode as u8);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// The size of a header for a payload of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => MAX_HEADER,
    }
}

/// A complete frame carrying `payload`.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    put_header(opcode, payload.len(), &mut out);
    out.extend_from_slice(payload);
    out.freeze()
}

/// A complete frame whose payload `write` produces in place (e.g. JSON
/// serialized straight into it): room for the longest header is left in
/// front, the real header is written right before the payload once its
/// length is known, and the unused front is skipped, so nothing is copied.
pub fn frame_with(opcode: Opcode, size_hint: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::with_capacity(MAX_HEADER + size_hint);
    out.resize(MAX_HEADER, 0);
    write(&mut out);
    let len = out.len() - MAX_HEADER;
    let start = MAX_HEADER - header_len(len);
    let mut head = BytesMut::with_capacity(MAX_HEADER);
    put_header(opcode, len, &mut head);
    out[start..MAX_HEADER].copy_from_slice(&head);
    out.split_off(start).freeze()
}

/// The header alone of a binary frame whose `len` payload bytes the caller
/// queues right after it (in shared pieces, without copying them together).
pub fn binary_header(len: usize) -> Bytes {
    header(Opcode::Binary, len)
}

/// [`binary_header`] of a text frame.
pub fn text_header(len: usize) -> Bytes {
    header(Opcode::Text, len)
}

fn header(opcode: Opcode, len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(len));
    put_header(opcode, len, &mut out);
    out.freeze()
}

pub fn text(text: &str) -> Bytes {
    frame(Opcode::Text, text.as_bytes())
}

pub fn binary(data: &[u8]) -> Bytes {
    frame(Opcode::Binary, data)
}

/// A ping; `payload` beyond 125 bytes is cut (control frames cannot carry more).
pub fn ping(payload: &[u8]) -> Bytes {
    frame(Opcode::Ping, &payload[..payload.len().min(125)])
}

pub fn pong(payload: &[u8]) -> Bytes {
    frame(Opcode::Pong, &payload[..payload.len().min(125)])
}

/// A close frame; the reason is cut at a character boundary to fit 123 bytes.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload)
}
