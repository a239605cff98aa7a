//! A byte stream read in two pieces (split at a point the fuzzer picks)
//! decodes to the same frames, and stops at the same error, as read whole, in
//! every protocol version.
#![no_main]

use converger_protocol::{decode_frame, Frame, Version, WireError};
use libfuzzer_sys::fuzz_target;

/// Frames decoded from `chunks` fed one after the other, and the error that
/// stopped the stream, if any.
fn run(chunks: &[&[u8]], version: Version) -> (Vec<Frame>, Option<WireError>) {
    let (mut buf, mut frames) = (Vec::new(), Vec::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decode_frame(&buf, version) {
                Ok(Some((frame, used))) => {
                    frames.push(frame);
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let split = usize::from(first) * rest.len() / 255;
    let (a, b) = rest.split_at(split.min(rest.len()));
    for version in Version::ALL {
        assert_eq!(run(&[a, b], version), run(&[rest], version));
    }
});
