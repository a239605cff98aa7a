use bytes::BytesMut;

use super::super::encode;
use super::super::error::WsError;
use super::super::testing::{masked, masked_close, masked_raw, server_frame};
use super::*;

fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, WsError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.decode(&mut buf)? {
        if m != Message::Fragment {
            out.push(m);
        }
    }
    Ok(out)
}

fn one(bytes: &[u8]) -> Result<Message, WsError> {
    let mut got = decode_all(&mut Decoder::new(1 << 20), bytes)?;
    assert_eq!(got.len(), 1, "{got:?}");
    Ok(got.remove(0))
}

#[test]
fn text_binary_ping_pong_close_decode() {
    assert_eq!(one(&masked(0x1, b"hello")), Ok(Message::Text(Bytes::from_static(b"hello"))));
    assert_eq!(one(&masked(0x2, &[0, 255])), Ok(Message::Binary(Bytes::from_static(&[0, 255]))));
    assert_eq!(one(&masked(0x9, b"p")), Ok(Message::Ping(Bytes::from_static(b"p"))));
    assert_eq!(one(&masked(0xA, b"")), Ok(Message::Pong(Bytes::new())));
    assert_eq!(one(&masked(0x8, b"")), Ok(Message::Close(None)));
    let close = CloseFrame { code: 1000, reason: "bye".into() };
    assert_eq!(one(&masked_close(1000, "bye")), Ok(Message::Close(Some(close))));
}

#[test]
fn every_length_encoding_boundary_round_trips() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        assert_eq!(one(&masked(0x2, &payload)), Ok(Message::Binary(Bytes::from(payload.clone()))), "{len}");
        let mut wire = encode::binary(&payload).to_vec();
        let expected_header = match len {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        };
        assert_eq!(wire.len(), expected_header + len, "{len}");
        assert_eq!(server_frame(&mut wire), Some((0x82, payload)));
        assert!(wire.is_empty());
    }
}

#[test]
fn a_frame_split_at_every_byte_decodes_once_whole() {
    let wire = [masked(0x1, &[b'x'; 300]), masked(0x9, b"hi")].concat();
    for cut in 0..wire.len() {
        let mut d = Decoder::new(1024);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(m) = d.decode(&mut buf).expect("valid") {
            got.push(m);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(m) = d.decode(&mut buf).expect("valid") {
            got.push(m);
        }
        assert_eq!(got.len(), 2, "cut at {cut}");
        assert_eq!(got[0], Message::Text(Bytes::from(vec![b'x'; 300])));
        assert_eq!(got[1], Message::Ping(Bytes::from_static(b"hi")));
    }
}

#[test]
fn fragmented_messages_reassemble_with_an_interleaved_ping() {
    let wire = [
        masked_raw(0x01, b"hel"),
        masked(0x9, b"mid"),
        masked_raw(0x00, b"lo "),
        masked_raw(0x80, "wörld".as_bytes()),
        masked_raw(0x02, &[1]),
        masked_raw(0x80, &[2]),
    ]
    .concat();
    let got = decode_all(&mut Decoder::new(64), &wire).expect("valid");
    assert_eq!(
        got,
        vec![
            Message::Ping(Bytes::from_static(b"mid")),
            Message::Text(Bytes::from("hello wörld")),
            Message::Binary(Bytes::from_static(&[1, 2])),
        ]
    );
}

#[test]
fn a_utf8_character_split_across_fragments_is_valid() {
    let bytes = "é".as_bytes();
    let wire = [masked_raw(0x01, &bytes[..1]), masked_raw(0x80, &bytes[1..])].concat();
    assert_eq!(decode_all(&mut Decoder::new(64), &wire), Ok(vec![Message::Text(Bytes::from("é"))]));
}

#[test]
fn protocol_errors_carry_1002() {
    let unmasked = encode::text("hi").to_vec();
    let mut long_len = vec![0x82, 0xFF];
    long_len.extend_from_slice(&(1u64 << 63).to_be_bytes());
    long_len.extend_from_slice(&[0; 4]);
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (unmasked, WsError::Unmasked),
        (masked_raw(0xC1, b"x"), WsError::Reserved),
        (masked_raw(0x91, b"x"), WsError::Reserved),
        (masked(0x3, b""), WsError::Opcode(3)),
        (masked(0xB, b""), WsError::Opcode(0xB)),
        (masked(0x9, &[0; 126]), WsError::ControlTooLong),
        (masked_raw(0x09, b""), WsError::FragmentedControl),
        (masked(0x0, b"x"), WsError::StrayContinuation),
        ([masked_raw(0x01, b"a"), masked(0x1, b"b")].concat(), WsError::Interleaved),
        (long_len, WsError::LengthOverflow),
        (masked(0x8, &[3]), WsError::BadClose("one-byte payload")),
        (masked_close(1005, ""), WsError::BadClose("invalid close code")),
        (masked_close(999, ""), WsError::BadClose("invalid close code")),
    ];
    for (wire, expected) in cases {
        let got = decode_all(&mut Decoder::new(1 << 20), &wire);
        assert_eq!(got, Err(expected.clone()), "{wire:02x?}");
        assert_eq!(expected.close_code(), 1002);
    }
}

#[test]
fn invalid_utf8_is_1007_once_the_message_is_whole() {
    let err = one(&masked(0x1, &[0xff, 0xfe])).expect_err("invalid");
    assert_eq!((err.clone(), err.close_code()), (WsError::InvalidUtf8, 1007));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.push(0xff);
    assert_eq!(one(&masked(0x8, &close)), Err(WsError::InvalidUtf8));
}

#[test]
fn an_oversized_message_is_1009_from_its_header_alone() {
    let mut d = Decoder::new(100);
    let wire = masked(0x2, &[0; 101]);
    // Only the header has arrived: the declared length is enough to refuse.
    let mut buf = BytesMut::from(&wire[..8]);
    let err = d.decode(&mut buf).expect_err("too big");
    assert_eq!(err, WsError::TooBig { size: 101, limit: 100 });
    assert_eq!(err.close_code(), 1009);
    // Fragments count together.
    let wire = [masked_raw(0x02, &[0; 60]), masked_raw(0x80, &[0; 41])].concat();
    let got = decode_all(&mut Decoder::new(100), &wire);
    assert_eq!(got, Err(WsError::TooBig { size: 101, limit: 100 }));
    assert_eq!(decode_all(&mut Decoder::new(100), &masked(0x2, &[0; 100])).map(|m| m.len()), Ok(1));
}

#[test]
fn server_encoders_write_unmasked_final_frames() {
    assert_eq!(encode::text("hi").to_vec(), b"\x81\x02hi");
    assert_eq!(encode::ping(b"").to_vec(), b"\x89\x00");
    assert_eq!(encode::pong(b"a").to_vec(), b"\x8a\x01a");
    assert_eq!(encode::close(1008, "slow consumer").to_vec(), b"\x88\x0f\x03\xf0slow consumer");
    let long = "é".repeat(100);
    let mut wire = encode::close(1000, &long).to_vec();
    let (_, payload) = server_frame(&mut wire).expect("frame");
    assert_eq!(payload.len(), 2 + 122, "cut at a char boundary within 123 bytes");
    for len in [0usize, 125, 126, 65535, 65536] {
        let built = encode::frame_with(Opcode::Text, 0, |out| out.extend_from_slice(&vec![b'a'; len]));
        assert_eq!(built, encode::frame(Opcode::Text, &vec![b'a'; len]), "{len}");
    }
}

#[test]
fn every_fragment_is_reported_and_a_fragmented_message_is_bounded_in_frames_and_time() {
    let first = masked_raw(0x01, b"a");
    let empty = masked_raw(0x00, b"");
    let last = masked_raw(0x80, b"b");
    let mut d = Decoder::new(1 << 20);
    let mut buf = BytesMut::from(&[first.clone(), empty.clone(), last][..].concat()[..]);
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Fragment)));
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Fragment)));
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Text(Bytes::from_static(b"ab")))));

    let mut d = Decoder::with_fragment_limits(1 << 20, 3, std::time::Duration::from_secs(60));
    let wire = [first.clone(), empty.clone(), empty.clone(), empty.clone()].concat();
    let got = decode_all(&mut d, &wire);
    assert_eq!(got, Err(WsError::TooManyFragments));
    assert_eq!(WsError::TooManyFragments.close_code(), 1008);

    let mut d = Decoder::with_fragment_limits(1 << 20, 100, std::time::Duration::ZERO);
    let mut buf = BytesMut::from(&first[..]);
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Fragment)));
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut buf = BytesMut::from(&empty[..]);
    assert_eq!(d.decode(&mut buf), Err(WsError::FragmentsTooSlow));
}
