//! The pre-publish hook on the binary protocol (docs/api.md "Pre-publish
//! hook"): a Publish the hook rejects is answered by Error 4012
//! `rejected_by_hook` carrying the hook's reason (the connection stays open),
//! a PublishBatch gets a failed item with that code for each rejected
//! activity; a rejected activity takes no seq and is delivered to nobody; a
//! rewritten one is stored, acked and delivered rewritten.

use std::time::{Duration, Instant};

use converger_e2e::api::{create_tenant, expect, Client};
use converger_e2e::binary::{message, uuid_bytes, BinClient, Next};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use converger_protocol::{Activity, Draft, ErrorCode, Frame, Publish, PublishBatch};
use serde_json::{json, Value};

on_both_backends!(a_rejected_publish_is_error_4012_takes_no_seq_and_a_rewrite_is_stored_rewritten);

fn draft(conversation: [u8; 16], text: &str) -> Draft {
    message(conversation, "bot", text)
}

/// The answer to request `request_id` (delivered activities meanwhile go to `delivered`).
fn answer(c: &mut BinClient, request_id: u32, delivered: &mut Vec<Activity>) -> Frame {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.next_by(deadline) {
            Some(Next::Frame(Frame::Deliver(d))) => delivered.extend(d.activities),
            Some(Next::Frame(f @ (Frame::PublishAck(_) | Frame::PublishBatchAck(_) | Frame::Error(_)))) => {
                let id = match &f {
                    Frame::PublishAck(a) => a.request_id,
                    Frame::PublishBatchAck(a) => a.request_id,
                    Frame::Error(e) => e.request_id,
                    _ => unreachable!(),
                };
                assert_eq!(id, request_id, "an answer to another request: {f:?}");
                return f;
            }
            Some(Next::Frame(_)) => {}
            other => panic!("no answer to request {request_id}: {other:?}"),
        }
    }
}

/// The seq a Publish was acked with; panics on anything else.
fn acked(frame: Frame) -> u64 {
    match frame {
        Frame::PublishAck(a) => a.written.seq,
        other => panic!("expected PublishAck, got {other:?}"),
    }
}

fn a_rejected_publish_is_error_4012_takes_no_seq_and_a_rewrite_is_stored_rewritten(server: &TestServer) {
    let tenant = create_tenant(server, "hook-bin");
    let api = Client::bearer(server, &tenant.api_key);
    let hook = Receiver::pre_publish_hook(Duration::ZERO);
    let config = json!({"pre_publish": {"url": hook.url("/hook"), "timeout_ms": 2000}});
    let channel =
        expect(&api.post("/api/v1/channels", &json!({"name": "bin", "type": "websocket", "config": config})), 201);
    let conversation = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let id = conversation["id"].as_str().expect("id");
    let conv = uuid_bytes(id);
    let (mut c, _) = BinClient::with_api_key(server.binary_addr(), &tenant.api_key);
    c.subscribe_one(conv, 0);
    let mut delivered = Vec::new();

    c.send(Publish { request_id: 1, activity: draft(conv, "hello") });
    assert_eq!(acked(answer(&mut c, 1, &mut delivered)), 1);
    c.send(Publish { request_id: 2, activity: draft(conv, "bad") });
    match answer(&mut c, 2, &mut delivered) {
        Frame::Error(e) => {
            assert_eq!((e.code, e.error_code()), (4012, Some(ErrorCode::RejectedByHook)), "{e:?}");
            assert_eq!(ErrorCode::RejectedByHook.name(), "rejected_by_hook");
            assert_eq!(e.message, "no bad words", "the hook's reason");
            assert!(!e.close, "a rejection does not close the connection");
        }
        other => panic!("expected Error rejected_by_hook, got {other:?}"),
    }
    c.send(Publish { request_id: 3, activity: draft(conv, "rude") });
    assert_eq!(acked(answer(&mut c, 3, &mut delivered)), 2, "the rejected publish took no seq");

    // A batch: each rejected item fails alone, the others take the next seqs.
    let batch = ["one", "bad", "rude", "two"].map(|t| draft(conv, t)).to_vec();
    c.send(PublishBatch { request_id: 4, activities: batch });
    let items = match answer(&mut c, 4, &mut delivered) {
        Frame::PublishBatchAck(a) => a.items,
        other => panic!("expected PublishBatchAck, got {other:?}"),
    };
    let seqs: Vec<Option<u64>> = items.iter().map(|i| i.as_ref().ok().map(|w| w.seq)).collect();
    assert_eq!(seqs, [Some(3), None, Some(4), Some(5)], "{items:?}");
    let failure = items[1].as_ref().expect_err("the rejected item");
    assert_eq!((failure.code, failure.message.as_str()), (4012, "no bad words"));

    // Delivered: five activities, seqs 1..=5, the rewrites rewritten, no "bad".
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.len() < 5 {
        match c.next_by(deadline) {
            Some(Next::Frame(Frame::Deliver(d))) => delivered.extend(d.activities),
            Some(Next::Frame(_)) => {}
            other => panic!("only {} of 5 activities delivered: {other:?}", delivered.len()),
        }
    }
    let seen: Vec<(u64, Option<&str>)> = delivered.iter().map(|a| (a.seq, a.text.as_deref())).collect();
    let want = [(1, "hello"), (2, "[polite]"), (3, "one"), (4, "[polite]"), (5, "two")];
    assert_eq!(seen, want.map(|(s, t)| (s, Some(t))));
    let metadata: Value = serde_json::from_str(&delivered[1].metadata).expect("metadata JSON");
    assert_eq!(metadata, json!({"rewritten": true}));

    // Stored the same way.
    let path = format!("/api/v1/conversations/{id}/activities");
    let stored: Vec<Value> = expect(&api.get(&path), 200)["data"].as_array().cloned().unwrap_or_default();
    let stored: Vec<(i64, &str)> =
        stored.iter().map(|a| (a["seq"].as_i64().unwrap_or(0), a["text"].as_str().unwrap_or(""))).collect();
    assert_eq!(stored, want.map(|(s, t)| (s as i64, t)));
    assert!(hook.requests().iter().all(|r| r.path == "/hook"));
}
