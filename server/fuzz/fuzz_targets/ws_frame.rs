//! The WebSocket frame decoder gives the same messages and stops at the same
//! error whether the stream arrives whole, one byte at a time, or in two
//! pieces split where the fuzzer picks; nothing it accepts exceeds its limit.
#![no_main]

use bytes::BytesMut;
use converger_server::net::ws::{Decoder, Message, WsError};
use libfuzzer_sys::fuzz_target;

/// The largest message the decoders here accept.
const MAX_MESSAGE: usize = 4096;

fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Message>, Option<WsError>) {
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    // A small fragment bound so the fuzzer reaches it.
    let mut decoder = Decoder::with_fragment_limits(MAX_MESSAGE, 8, std::time::Duration::from_secs(3600));
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => {
                    if let Message::Text(b) | Message::Binary(b) = &m {
                        assert!(b.len() <= MAX_MESSAGE);
                    }
                    if let Message::Text(b) = &m {
                        assert!(std::str::from_utf8(b).is_ok());
                    }
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let whole = run(std::iter::once(rest));
    let split = usize::from(first) * rest.len() / 255;
    let (a, b) = rest.split_at(split.min(rest.len()));
    assert_eq!(run([a, b].into_iter()), whole, "split at {split}");
    assert_eq!(run(rest.chunks(1)), whole, "one byte at a time");
});
