//! The chat features over the binary protocol, per version (docs/protocol.md
//! "Chat"): a version-2 connection publishes drafts naming a target or a
//! parent and reads them back with each message's state; a version-1
//! connection to the same conversation reads the same activities without
//! those fields; Receipt is a version-2 frame answered by Ack, and its
//! signal reaches the conversation's subscribers of both versions.

use std::time::{Duration, Instant};

use converger_e2e::api::{expect, Fixture};
use converger_e2e::binary::{uuid_bytes as id, BinClient, Next};
use converger_e2e::TestServer;
use converger_protocol::{Activity, Auth, Draft, ErrorCode, Frame, MessageState, Publish, Receipt, Version};
use serde_json::json;

fn connect(server: &TestServer, f: &Fixture, max_version: u8) -> BinClient {
    let mut c = BinClient::tcp(server.binary_addr());
    let welcome = c.hello_versions(1, max_version, Auth::ApiKey(f.tenant.api_key.clone())).expect("welcome");
    assert_eq!(welcome.version, max_version, "the server speaks 1 to 3 and picks the highest offered");
    c
}

/// Publishes `draft` and waits for its ack; activities delivered meanwhile
/// go to `delivered`.
fn publish(c: &mut BinClient, delivered: &mut Vec<Activity>, request_id: u32, draft: Draft) -> [u8; 16] {
    c.send(Publish { request_id, activity: draft });
    loop {
        match c.frame() {
            Frame::PublishAck(a) if a.request_id == request_id => return a.written.activity_id,
            Frame::Deliver(d) => delivered.extend(d.activities),
            Frame::Error(e) => panic!("publish {request_id} refused: {e:?}"),
            _ => {}
        }
    }
}

/// Delivered activities until there are `n` in `out` (other frames skipped).
fn activities(c: &mut BinClient, mut out: Vec<Activity>, n: usize) -> Vec<Activity> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        match c.next_by(deadline) {
            Some(Next::Frame(Frame::Deliver(d))) => out.extend(d.activities),
            Some(Next::Frame(_)) => {}
            other => panic!("only {} of {n} activities: {other:?}", out.len()),
        }
    }
    out
}

/// The next Ephemeral of type `kind` (other frames skipped).
fn ephemeral(c: &mut BinClient, kind: &str) -> converger_protocol::Ephemeral {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.next_by(deadline) {
            Some(Next::Frame(Frame::Ephemeral(e))) if e.kind == kind => return e,
            Some(Next::Frame(_)) => {}
            other => panic!("no {kind} event: {other:?}"),
        }
    }
}

fn bot(conversation: [u8; 16], kind: &str) -> Draft {
    Draft { conversation_id: conversation, kind: kind.into(), sender: "bot".into(), ..Draft::default() }
}

fn lifecycle_by_version(server: &TestServer) {
    let f = Fixture::new(server, "binary-chat");
    let conv = id(f.conversation_id());
    let mut v2 = connect(server, &f, 2);
    let mut v1 = connect(server, &f, 1);
    v2.subscribe_one(conv, 0);
    v1.subscribe_one(conv, 0);

    let mut early = Vec::new();
    let message = publish(&mut v2, &mut early, 1, Draft { text: Some("hello".into()), ..bot(conv, "message") });
    let edit = Draft { text: Some("hello, edited".into()), target_id: Some(message), ..bot(conv, "edit") };
    publish(&mut v2, &mut early, 2, edit);
    let reply = Draft { text: Some("a reply".into()), parent_id: Some(message), ..bot(conv, "message") };
    publish(&mut v2, &mut early, 3, reply);

    let seen = activities(&mut v2, early, 3);
    assert_eq!(seen[0].state, Some(MessageState::default()), "a message is delivered with its (fresh) state");
    assert_eq!((seen[1].kind.as_str(), seen[1].target_id, seen[1].state.as_ref()), ("edit", Some(message), None));
    assert_eq!((seen[2].parent_id, seen[2].state.is_some()), (Some(message), true));
    // Version 1 sees the same activities, without what it cannot carry.
    let old = activities(&mut v1, Vec::new(), 3);
    assert_eq!(old.iter().map(|a| a.seq).collect::<Vec<_>>(), seen.iter().map(|a| a.seq).collect::<Vec<_>>());
    assert!(old.iter().all(|a| a.target_id.is_none() && a.parent_id.is_none() && a.state.is_none()), "{old:?}");
    assert_eq!(old[1].text.as_deref(), Some("hello, edited"));

    // History reads each message as it is now.
    v2.send(converger_protocol::History {
        request_id: 4,
        conversation_id: conv,
        after_seq: 0,
        until_seq: Some(1),
        limit: 1,
    });
    let page = loop {
        if let Frame::HistoryPage(p) = v2.frame() {
            break p;
        }
    };
    let state = page.activities[0].state.clone().expect("state");
    assert_eq!((state.reply_count, state.edited_at.is_some()), (1, true));
    assert_eq!(page.activities[0].text.as_deref(), Some("hello, edited"));

    // Receipts: a version-2 frame, answered by Ack once stored, signalled to both versions.
    let not_member =
        Receipt { request_id: 5, conversation_id: conv, read_seq: Some(1), sender: "bot".into(), ..Default::default() };
    v2.send(not_member.clone());
    match v2.frame() {
        Frame::Error(e) => assert_eq!((e.request_id, e.error_code(), e.close), (5, Some(ErrorCode::NotAMember), false)),
        other => panic!("{other:?}"),
    }
    expect(
        &f.client(server)
            .post(&format!("/api/v1/conversations/{}/members", f.conversation_id()), &json!({"sender": "bot"})),
        201,
    );
    v2.send(Receipt { request_id: 6, ..not_member });
    // The signal and the Ack are not ordered with each other.
    let mut signalled = None;
    loop {
        match v2.frame() {
            Frame::Ack(a) => break assert_eq!(a.request_id, 6),
            Frame::Ephemeral(e) if e.kind == "receipt" => signalled = Some(e),
            Frame::Error(e) => panic!("{e:?}"),
            _ => {}
        }
    }
    let v2_receipt = signalled.unwrap_or_else(|| ephemeral(&mut v2, "receipt"));
    for e in [v2_receipt, ephemeral(&mut v1, "receipt")] {
        assert_eq!((e.conversation_id, e.sender.as_str()), (conv, "bot"));
        let data: serde_json::Value = serde_json::from_str(&e.data).expect("json");
        assert_eq!(data["read_seq"], 1);
    }

    // Version 1 has no Receipt frame: the same bytes are a kind it does not know.
    let mut bytes = bytes::BytesMut::new();
    Frame::from(Receipt { request_id: 7, conversation_id: conv, read_seq: Some(1), ..Default::default() })
        .encode(Version::V2, &mut bytes)
        .expect("encodes");
    bytes[4] = 1;
    v1.send_raw(&bytes);
    v1.expect_closing_error(ErrorCode::BadFrame);
}

on_both_backends!(lifecycle_by_version);
