//! Encode and decode of every frame kind (the golden-vector samples), plus the
//! two batch frames at a realistic size: 64 short chat messages per frame.
//!
//! `cargo bench -p converger-protocol --bench codec`

use std::hint::black_box;

use bytes::BytesMut;
use converger_protocol::{decode_frame, Activity, Deliver, Draft, Frame, PublishBatch, Version};
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
        target_id: None,
        parent_id: None,
        state: None,
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
        target_id: None,
        parent_id: None,
        traceparent: None,
    }
}

fn cases() -> Vec<(String, Version, Frame)> {
    let mut cases: Vec<(String, Version, Frame)> = common::samples::samples()
        .into_iter()
        .map(|(kind, name, version, f)| (format!("{kind}/{name}"), version, f))
        .collect();
    let chats = Deliver { activities: (1..=64).map(chat).collect() };
    // Version 2: every message carries its (fresh) state.
    let mut chats_v2 = chats.clone();
    chats_v2.activities.iter_mut().for_each(|a| a.state = Some(Default::default()));
    cases.push(("deliver/64_chat".into(), Version::V1, chats.into()));
    cases.push(("deliver/64_chat_v2".into(), Version::V2, chats_v2.into()));
    cases.push((
        "publish_batch/64_chat".into(),
        Version::V1,
        PublishBatch { request_id: 1, activities: (1..=64).map(draft).collect() }.into(),
    ));
    cases
}

fn codec(c: &mut Criterion) {
    let cases = cases();
    let mut encode = c.benchmark_group("encode");
    for (name, version, frame) in &cases {
        encode.throughput(Throughput::Bytes(frame.encoded_size(*version) as u64));
        let mut buf = BytesMut::with_capacity(frame.encoded_size(*version));
        encode.bench_function(name.as_str(), |b| {
            b.iter(|| {
                buf.clear();
                black_box(frame).encode(*version, &mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    for (name, version, frame) in &cases {
        let mut buf = BytesMut::new();
        frame.encode(*version, &mut buf).expect("encodes");
        decode.throughput(Throughput::Bytes(buf.len() as u64));
        decode.bench_function(name.as_str(), |b| {
            b.iter(|| decode_frame(black_box(&buf), *version).expect("decodes").expect("complete"))
        });
    }
    decode.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
