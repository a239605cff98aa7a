//! Arbitrary bytes into the frame decoder of every protocol version, with the
//! protocol limit and with a small server limit: any answer but a panic is
//! fine, and a decoded frame never claims more bytes than it was given.
#![no_main]

use converger_protocol::{decode_frame, decode_frame_with_limit, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in Version::ALL {
        if let Ok(Some((_, used))) = decode_frame(data, version) {
            assert!(used <= data.len());
        }
        let _ = decode_frame_with_limit(data, version, 64);
    }
});
