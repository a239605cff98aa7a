//! Partial input: every prefix of every vector is incomplete (never an error),
//! and a stream of frames split at any byte decodes to the same frames, in
//! each protocol version (a connection's stream is all of one version).

mod common;

use common::samples::samples;
use converger_protocol::{decode_frame, Frame, Version};

/// The samples of `version` (plus Hello and Welcome, which every version
/// reads), encoded.
fn encoded(version: Version) -> Vec<(String, Frame, Vec<u8>)> {
    samples()
        .into_iter()
        .filter(|(kind, _, v, _)| *v == version || matches!(*kind, "hello" | "welcome"))
        .map(|(kind, name, v, frame)| {
            let mut buf = bytes::BytesMut::new();
            frame.encode(v, &mut buf).expect("encodes");
            (format!("{kind}/{name}"), frame, buf.to_vec())
        })
        .collect()
}

#[test]
fn every_truncation_point_is_incomplete() {
    for version in Version::ALL {
        for (name, _, bytes) in encoded(version) {
            for cut in 0..bytes.len() {
                match decode_frame(&bytes[..cut], version) {
                    Ok(None) => {}
                    other => panic!("{name} cut at {cut}/{}: {other:?}", bytes.len()),
                }
            }
        }
    }
}

/// Decodes every whole frame at the front of `buf`, removing their bytes.
fn drain(buf: &mut Vec<u8>, version: Version, out: &mut Vec<Frame>) {
    while let Some((frame, used)) = decode_frame(buf, version).expect("valid stream") {
        out.push(frame);
        buf.drain(..used);
    }
}

#[test]
fn a_stream_split_anywhere_across_two_reads_decodes_the_same() {
    for version in Version::ALL {
        let all = encoded(version);
        let frames: Vec<Frame> = all.iter().map(|(_, f, _)| f.clone()).collect();
        let stream: Vec<u8> = all.iter().flat_map(|(_, _, b)| b.clone()).collect();
        for split in 0..=stream.len() {
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            buf.extend_from_slice(&stream[..split]);
            drain(&mut buf, version, &mut out);
            buf.extend_from_slice(&stream[split..]);
            drain(&mut buf, version, &mut out);
            assert!(buf.is_empty(), "v{version} split at {split}: bytes left over");
            assert!(out == frames, "v{version} split at {split}: different frames");
        }
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_decodes_the_same() {
    for version in Version::ALL {
        let all = encoded(version);
        let frames: Vec<Frame> = all.iter().map(|(_, f, _)| f.clone()).collect();
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for (_, _, bytes) in &all {
            for b in bytes {
                buf.push(*b);
                drain(&mut buf, version, &mut out);
            }
        }
        assert!(buf.is_empty());
        assert!(out == frames);
    }
}
