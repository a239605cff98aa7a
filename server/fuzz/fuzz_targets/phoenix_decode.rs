//! The Phoenix Channels V2 decoders (JSON text frames and binary pushes)
//! refuse bad input with an error, never a panic; a text message they accept
//! survives re-encoding and decoding again.
#![no_main]

use bytes::Bytes;
use converger_server::net::ws::phoenix::{parse_binary, parse_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_text(data) {
        // Re-encode as the V2 array and decode it again: the same message.
        let payload: serde_json::Value = match serde_json::from_slice(&m.payload) {
            Ok(v) => v,
            Err(_) => return,
        };
        let again = serde_json::to_vec(&(&m.join_ref, &m.msg_ref, &m.topic, &m.event, &payload)).unwrap();
        let back = parse_text(&again).expect("a re-encoded message decodes");
        assert_eq!((back.join_ref, back.msg_ref, back.topic, back.event), (m.join_ref, m.msg_ref, m.topic, m.event));
    }
    let _ = parse_binary(&Bytes::copy_from_slice(data));
});
