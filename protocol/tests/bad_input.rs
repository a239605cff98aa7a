//! Bad input answers a typed error and never panics; bad values are refused
//! by the encoder without leaving half a frame behind.

mod common;

use bytes::BytesMut;
use common::samples::{bare_draft, samples};
use converger_protocol::*;

#[test]
fn an_oversize_length_is_refused_from_its_four_bytes() {
    let len = MAX_FRAME_SIZE - 3; // frame size MAX + 1
    assert_eq!(
        decode_frame(&len.to_le_bytes(), Version::V1),
        Err(WireError::FrameTooLarge { size: u64::from(MAX_FRAME_SIZE) + 1, max: MAX_FRAME_SIZE })
    );
    assert!(matches!(decode_frame(&u32::MAX.to_le_bytes(), Version::V1), Err(WireError::FrameTooLarge { .. })));
    // The frame at exactly the limit is merely incomplete.
    assert_eq!(decode_frame(&(MAX_FRAME_SIZE - 4).to_le_bytes(), Version::V1), Ok(None));
}

#[test]
fn a_server_limit_below_the_protocol_maximum_applies() {
    let mut buf = BytesMut::new();
    Ping { payload: 1 }.encode_frame(Version::V1, &mut buf).expect("ping");
    assert!(decode_frame_with_limit(&buf, Version::V1, 16).expect("fits").is_some());
    assert_eq!(decode_frame_with_limit(&buf, Version::V1, 15), Err(WireError::FrameTooLarge { size: 16, max: 15 }));
}

#[test]
fn header_errors_are_typed() {
    let frame = |version: u8, kind: u8, flags: u16| {
        let mut b = vec![12, 0, 0, 0, version, kind];
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b
    };
    assert_eq!(
        decode_frame(&frame(1, 0x03, 0), Version::V1).map(|f| f.map(|(f, _)| f)),
        Ok(Some(Frame::Ping(Ping { payload: 0 })))
    );
    assert_eq!(decode_frame(&frame(9, 0x03, 0), Version::V1), Err(WireError::UnsupportedVersion(9)));
    assert_eq!(decode_frame(&frame(1, 0x00, 0), Version::V1), Err(WireError::UnknownKind(0)));
    assert_eq!(
        decode_frame(&frame(1, 0x03, 0x8000), Version::V1),
        Err(WireError::UnknownFlags { kind: 3, flags: 0x8000 })
    );
    // Header errors show as soon as the header is there, before the body.
    assert_eq!(decode_frame(&frame(1, 0xee, 0)[..8], Version::V1), Err(WireError::UnknownKind(0xee)));
    assert_eq!(decode_frame(&[2, 0, 0, 0], Version::V1), Err(WireError::BadLength { length: 2 }));
}

#[test]
fn unknown_presence_bits_and_bad_booleans_are_refused() {
    let mut buf = BytesMut::new();
    Publish { request_id: 1, activity: bare_draft() }.encode_frame(Version::V1, &mut buf).expect("publish");
    let present = 8 + 4 + 16; // header, request_id, conversation_id
    buf[present] = 0x10;
    assert_eq!(
        decode_frame(&buf, Version::V1),
        Err(WireError::InvalidValue { field: "present", reason: "unknown presence bit" })
    );

    let mut buf = BytesMut::new();
    let written = Written { activity_id: [1; 16], seq: 1, created_at: 0, replayed: false };
    PublishAck { request_id: 1, written }.encode_frame(Version::V1, &mut buf).expect("ack");
    let last = buf.len() - 1;
    buf[last] = 2;
    assert_eq!(
        decode_frame(&buf, Version::V1),
        Err(WireError::InvalidValue { field: "replayed", reason: "a boolean is 0 or 1" })
    );
}

#[test]
fn a_body_longer_than_its_fields_is_refused() {
    let mut buf = BytesMut::new();
    Ack { request_id: 1 }.encode_frame(Version::V1, &mut buf).expect("ack");
    buf[0] += 1;
    buf.extend_from_slice(&[0]);
    assert_eq!(decode_frame(&buf, Version::V1), Err(WireError::TrailingBytes { kind: Kind::Ack as u8, extra: 1 }));
}

#[test]
fn every_byte_of_every_vector_mutated_never_panics() {
    for (_, _, version, frame) in samples() {
        let mut buf = BytesMut::new();
        frame.encode(version, &mut buf).expect("encodes");
        for i in 0..buf.len() {
            for v in [0x00, 0xff, buf[i] ^ 0x80, buf[i].wrapping_add(1)] {
                let mut m = buf.to_vec();
                m[i] = v;
                let _ = decode_frame(&m, version);
            }
        }
    }
}

#[test]
fn an_over_long_value_is_refused_and_the_buffer_left_as_it_was() {
    let mut buf = BytesMut::from(&b"prior"[..]);
    let mut draft = bare_draft();
    draft.kind = "x".repeat(256);
    let err = Frame::from(Publish { request_id: 1, activity: draft }).encode(Version::V1, &mut buf);
    assert_eq!(err, Err(WireError::TooLong { field: "type", len: 256, max: 255 }));
    assert_eq!(&buf[..], b"prior");

    let big = "x".repeat(MAX_FRAME_SIZE as usize);
    let mut draft = bare_draft();
    draft.text = Some(big);
    let err = Publish { request_id: 1, activity: draft }.encode_frame(Version::V1, &mut buf);
    assert!(matches!(err, Err(WireError::FrameTooLarge { .. })), "{err:?}");
    assert_eq!(&buf[..], b"prior");

    let err = Failure { code: 0, message: String::new() };
    let ack = PublishBatchAck { request_id: 1, items: vec![Err(err)] };
    assert!(ack.encode_frame(Version::V1, &mut buf).is_err());
    assert_eq!(&buf[..], b"prior");
}

#[test]
fn decode_errors_map_to_catalogue_codes() {
    assert_eq!(WireError::UnknownKind(1).code(), ErrorCode::BadFrame);
    assert_eq!(WireError::UnsupportedVersion(2).code(), ErrorCode::UnsupportedVersion);
    assert_eq!(WireError::FrameTooLarge { size: 1, max: 0 }.code(), ErrorCode::FrameTooLarge);
}
