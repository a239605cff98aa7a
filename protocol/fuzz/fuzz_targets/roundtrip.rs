//! Any frame that decodes re-encodes to exactly the bytes it came from (the
//! encoding is canonical), in the protocol version it was decoded in, with the
//! size `encoded_size` says, and those bytes decode to the same frame.
#![no_main]

use bytes::BytesMut;
use converger_protocol::{decode_frame, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in Version::ALL {
        let Ok(Some((frame, used))) = decode_frame(data, version) else { continue };
        let mut buf = BytesMut::new();
        frame.encode(version, &mut buf).expect("a decoded frame encodes");
        assert_eq!(buf.len(), frame.encoded_size(version));
        assert_eq!(&buf[..], &data[..used], "encode(decode(x)) == x");
        let (again, n) = decode_frame(&buf, version).expect("re-decodes").expect("complete");
        assert_eq!(n, buf.len());
        assert_eq!(again, frame);
    }
});
