//! Partial input: every prefix of every vector is incomplete (never an error),
//! and a stream of frames split at any byte decodes to the same frames.

mod common;

use common::samples::samples;
use converger_protocol::{decode_frame, Frame};

fn encoded() -> Vec<(String, Frame, Vec<u8>)> {
    samples()
        .into_iter()
        .map(|(kind, name, frame)| {
            let mut buf = bytes::BytesMut::new();
            frame.encode(&mut buf).expect("encodes");
            (format!("{kind}/{name}"), frame, buf.to_vec())
        })
        .collect()
}

#[test]
fn every_truncation_point_is_incomplete() {
    for (name, _, bytes) in encoded() {
        for cut in 0..bytes.len() {
            match decode_frame(&bytes[..cut]) {
                Ok(None) => {}
                other => panic!("{name} cut at {cut}/{}: {other:?}", bytes.len()),
            }
        }
    }
}

/// Decodes every whole frame at the front of `buf`, removing their bytes.
fn drain(buf: &mut Vec<u8>, out: &mut Vec<Frame>) {
    while let Some((frame, used)) = decode_frame(buf).expect("valid stream") {
        out.push(frame);
        buf.drain(..used);
    }
}

#[test]
fn a_stream_split_anywhere_across_two_reads_decodes_the_same() {
    let all = encoded();
    let frames: Vec<Frame> = all.iter().map(|(_, f, _)| f.clone()).collect();
    let stream: Vec<u8> = all.iter().flat_map(|(_, _, b)| b.clone()).collect();
    for split in 0..=stream.len() {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        buf.extend_from_slice(&stream[..split]);
        drain(&mut buf, &mut out);
        buf.extend_from_slice(&stream[split..]);
        drain(&mut buf, &mut out);
        assert!(buf.is_empty(), "split at {split}: bytes left over");
        assert!(out == frames, "split at {split}: different frames");
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_decodes_the_same() {
    let all = encoded();
    let frames: Vec<Frame> = all.iter().map(|(_, f, _)| f.clone()).collect();
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for (_, _, bytes) in &all {
        for b in bytes {
            buf.push(*b);
            drain(&mut buf, &mut out);
        }
    }
    assert!(buf.is_empty());
    assert!(out == frames);
}
