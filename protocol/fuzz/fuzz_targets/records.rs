//! The record decoders on their own (activity and draft records, which the
//! server also encodes and shares outside a frame): no panic, and a record
//! that decodes re-encodes to the same bytes.
#![no_main]

use bytes::BytesMut;
use converger_protocol::{Activity, Draft};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((a, used)) = Activity::decode(data) {
        let mut buf = BytesMut::new();
        a.encode(&mut buf).expect("encodes");
        assert_eq!((buf.len(), &buf[..]), (a.encoded_size(), &data[..used]));
    }
    if let Ok((d, used)) = Draft::decode(data) {
        let mut buf = BytesMut::new();
        d.encode(&mut buf).expect("encodes");
        assert_eq!((buf.len(), &buf[..]), (d.encoded_size(), &data[..used]));
    }
});
