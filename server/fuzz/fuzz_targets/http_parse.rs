//! The HTTP/1.1 request parser gives the same requests, the same error and
//! the same leftover bytes whether the input arrives whole, one byte at a time
//! (a parse attempted at every prefix: a split at every byte), or in two
//! pieces split where the fuzzer picks.
#![no_main]

use bytes::{Bytes, BytesMut};
use converger_server::net::http::{parse::parse, Limits, Method, ParseError};
use libfuzzer_sys::fuzz_target;

/// The parts of a request the parser sets (`Request` has no `PartialEq`).
type Parsed = (Method, String, Option<String>, u8, Vec<(String, Vec<u8>)>, Bytes);

/// Requests parsed from `chunks` fed one after the other, the error that
/// stopped the stream (if any), and the bytes left unparsed (none after an
/// error: the connection is closed, and a chunked feed stopped reading early).
fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> (Vec<Parsed>, Option<ParseError>, Vec<u8>) {
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match parse(&mut buf, limits) {
                Ok(Some(r)) => out.push((r.method, r.path, r.query, r.minor_version, r.headers, r.body)),
                Ok(None) => break,
                Err(e) => return (out, Some(e), Vec::new()),
            }
        }
    }
    (out, None, buf.to_vec())
}

/// Two runs agree: the same requests, the same error and the same leftover bytes.
fn agree(a: &(Vec<Parsed>, Option<ParseError>, Vec<u8>), b: &(Vec<Parsed>, Option<ParseError>, Vec<u8>)) -> bool {
    a == b
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    // Small limits so the fuzzer reaches every "too large" branch.
    let limits = Limits {
        max_head_bytes: 512,
        max_headers: 8,
        max_target_bytes: 128,
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let whole = run(std::iter::once(rest), &limits);
    let split = usize::from(first) * rest.len() / 255;
    let (a, b) = rest.split_at(split.min(rest.len()));
    let two = run([a, b].into_iter(), &limits);
    assert!(agree(&two, &whole), "split at {split}: {two:?} != {whole:?}");
    let bytewise = run(rest.chunks(1), &limits);
    assert!(agree(&bytewise, &whole), "one byte at a time: {bytewise:?} != {whole:?}");
    // The default limits too, whole only (the byte-wise run is quadratic).
    let _ = run(std::iter::once(rest), &Limits::default());
});
