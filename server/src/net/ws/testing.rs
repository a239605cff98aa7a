//! Test-only client side of the codec: masked client frames and a decoder of
//! (unmasked) server frames, so tests speak raw WebSocket bytes.

/// A client frame: `first` is the whole first byte (FIN, RSV, opcode).
pub fn masked_raw(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    out
}

/// A final client frame with `opcode`.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    masked_raw(0x80 | opcode, payload)
}

/// A client close frame.
pub fn masked_close(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    masked(0x8, &p)
}

/// Parses one server frame off the front of `buf`: (first byte, payload).
pub fn server_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "server frames are never masked");
    let (len, at) = match b1 & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let payload = buf[at..at + len].to_vec();
    buf.drain(..at + len);
    Some((b0, payload))
}
