//! The record decoders on their own (activity and draft records, which the
//! server also encodes and shares outside a frame), in every protocol
//! version: no panic, and a record that decodes re-encodes to the same bytes
//! in that version.
#![no_main]

use bytes::BytesMut;
use converger_protocol::{Activity, Draft, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in Version::ALL {
        if let Ok((a, used)) = Activity::decode(data, version) {
            let mut buf = BytesMut::new();
            a.encode(version, &mut buf).expect("encodes");
            assert_eq!((buf.len(), &buf[..]), (a.encoded_size(version), &data[..used]));
        }
        if let Ok((d, used)) = Draft::decode(data, version) {
            let mut buf = BytesMut::new();
            d.encode(version, &mut buf).expect("encodes");
            assert_eq!((buf.len(), &buf[..]), (d.encoded_size(version), &data[..used]));
        }
    }
});
