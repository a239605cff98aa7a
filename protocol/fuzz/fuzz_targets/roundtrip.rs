//! Any frame that decodes re-encodes to exactly the bytes it came from (the
//! encoding is canonical), with the size `encoded_size` says, and those bytes
//! decode to the same frame.
#![no_main]

use bytes::BytesMut;
use converger_protocol::decode_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((frame, used))) = decode_frame(data) else { return };
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).expect("a decoded frame encodes");
    assert_eq!(buf.len(), frame.encoded_size());
    assert_eq!(&buf[..], &data[..used], "encode(decode(x)) == x");
    let (again, n) = decode_frame(&buf).expect("re-decodes").expect("complete");
    assert_eq!(n, buf.len());
    assert_eq!(again, frame);
});
