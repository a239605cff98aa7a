//! Encode and decode of every frame kind (the golden-vector samples), plus the
//! two batch frames at a realistic size: 64 short chat messages per frame.
//!
//! `cargo bench -p converger-protocol --bench codec`

use std::hint::black_box;

use bytes::BytesMut;
use converger_protocol::{decode_frame, Activity, Deliver, Draft, Frame, PublishBatch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../tests/common/mod.rs"]
mod common;

fn chat(seq: u64) -> Activity {
    Activity {
        id: [seq as u8; 16],
        conversation_id: common::samples::CONV,
        seq,
        created_at: common::samples::T0 + seq as i64,
        kind: "message".into(),
        sender: "user-42".into(),
        text: Some("a short chat message, about sixty bytes long, like most are".into()),
        attachments: None,
        metadata: "{}".into(),
        idempotency_key: None,
    }
}

fn draft(i: u64) -> Draft {
    Draft {
        conversation_id: common::samples::CONV,
        kind: "message".into(),
        sender: String::new(),
        text: Some("a short chat message, about sixty bytes long, like most are".into()),
        attachments: None,
        metadata: None,
        idempotency_key: Some(format!("req-{i}")),
    }
}

fn cases() -> Vec<(String, Frame)> {
    let mut cases: Vec<(String, Frame)> =
        common::samples::samples().into_iter().map(|(kind, name, f)| (format!("{kind}/{name}"), f)).collect();
    cases.push(("deliver/64_chat".into(), Deliver { activities: (1..=64).map(chat).collect() }.into()));
    cases.push((
        "publish_batch/64_chat".into(),
        PublishBatch { request_id: 1, activities: (1..=64).map(draft).collect() }.into(),
    ));
    cases
}

fn codec(c: &mut Criterion) {
    let cases = cases();
    let mut encode = c.benchmark_group("encode");
    for (name, frame) in &cases {
        encode.throughput(Throughput::Bytes(frame.encoded_size() as u64));
        let mut buf = BytesMut::with_capacity(frame.encoded_size());
        encode.bench_function(name.as_str(), |b| {
            b.iter(|| {
                buf.clear();
                black_box(frame).encode(&mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    for (name, frame) in &cases {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encodes");
        decode.throughput(Throughput::Bytes(buf.len() as u64));
        decode.bench_function(name.as_str(), |b| {
            b.iter(|| decode_frame(black_box(&buf)).expect("decodes").expect("complete"))
        });
    }
    decode.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
