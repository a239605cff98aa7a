//! The server API's live side: `POST …/disconnect` ends one sender's (or
//! everyone's) Phoenix joins and binary subscriptions of the conversation on
//! every shard (enough sockets that both shards hold some), with the
//! reason; `GET …/presence` lists who is joined; closing a conversation
//! disconnects its clients with `conversation_closed`.

use std::time::{Duration, Instant};

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::binary::{uuid_bytes, BinClient, Next};
use converger_e2e::phoenix::{join, next, send, socket, topic, until, Ws};
use converger_e2e::TestServer;
use converger_protocol::{ErrorCode, Frame};
use serde_json::{json, Value};

on_both_backends!(
    a_disconnect_ends_one_senders_joins_and_subscriptions_on_every_shard_then_everyones,
    closing_a_conversation_disconnects_its_clients,
    disconnect_and_presence_refusals
);

/// Sockets per sender: with two shards the kernel spreads them over both.
const SOCKETS: usize = 8;

fn joined(server: &TestServer, f: &Fixture, sender: &str) -> Ws {
    let mut ws = socket(server, f, sender);
    assert_eq!(join(&mut ws, &topic(f), json!({}))[4]["status"], "ok");
    until(&mut ws, "presence_state");
    ws
}

/// The socket's `phx_close` for the topic (skipping what comes before it).
fn closed_with(ws: &mut Ws, f: &Fixture) -> Value {
    let m = until(ws, "phx_close");
    assert_eq!(m[2], topic(f));
    m[4].clone()
}

/// The Ephemeral `disconnected` and the Error that follow it, on a binary connection.
fn binary_disconnected(c: &mut BinClient, conversation: &str) -> (Value, converger_protocol::ErrorFrame) {
    let mut notice = None;
    loop {
        match c.frame() {
            Frame::Ephemeral(e) if e.kind == "disconnected" => {
                assert_eq!(e.conversation_id, uuid_bytes(conversation));
                notice = Some(serde_json::from_str(&e.data).expect("json data"));
            }
            Frame::Error(e) => {
                assert!(!e.close, "the connection stays open: {e:?}");
                assert_eq!(e.request_id, 0);
                return (notice.expect("the notice comes first"), e);
            }
            _ => {}
        }
    }
}

fn disconnect(c: &Client, f: &Fixture, body: Value) -> u64 {
    let path = format!("/api/v1/conversations/{}/disconnect", f.conversation_id());
    expect(&c.post(&path, &body), 200)["disconnected"].as_u64().expect("count")
}

/// The presence listing once `done` holds of it (leaves reach the owner a moment later).
fn presence_when(c: &Client, f: &Fixture, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/conversations/{}/presence", f.conversation_id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = expect(&c.get(&path), 200);
        if done(&p["data"]) || Instant::now() > deadline {
            return p["data"].clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn a_disconnect_ends_one_senders_joins_and_subscriptions_on_every_shard_then_everyones(server: &TestServer) {
    let f = Fixture::new(server, "disconnect");
    let c = f.client(server);
    let mut bobs: Vec<Ws> = (0..SOCKETS).map(|_| joined(server, &f, "bob")).collect();
    let mut alices: Vec<Ws> = (0..SOCKETS).map(|_| joined(server, &f, "alice")).collect();
    let conversation = uuid_bytes(f.conversation_id());
    let (mut bin_bob, _) = BinClient::with_token(server.binary_addr(), &f.token(server, "bob"));
    bin_bob.subscribe_one(conversation, 0);
    let (mut bin_api, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    bin_api.subscribe_one(conversation, 0);

    let present = presence_when(&c, &f, |d| d.as_array().is_some_and(|d| d.len() == 2));
    assert_eq!((&present[0]["sender"], &present[0]["connections"]), (&json!("alice"), &json!(SOCKETS)));
    assert_eq!((&present[1]["sender"], &present[1]["connections"]), (&json!("bob"), &json!(SOCKETS)));
    assert!(present[0]["online_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let n = disconnect(&c, &f, json!({"sender": "bob", "reason": "spam"}));
    assert_eq!(n, SOCKETS as u64 + 1, "bob's Phoenix joins and his binary subscription");
    for ws in &mut bobs {
        assert_eq!(closed_with(ws, &f), json!({"reason": "spam", "code": "disconnected"}));
    }
    let (notice, error) = binary_disconnected(&mut bin_bob, f.conversation_id());
    assert_eq!(notice, json!({"code": "disconnected", "reason": "spam"}));
    assert_eq!(error.error_code(), Some(ErrorCode::Disconnected));

    // Nothing more of the conversation reaches bob; alice and the API key go on.
    expect(&c.post(&f.activities_path(), &json!({"sender": "s", "text": "after"})), 201);
    for ws in &mut alices {
        assert_eq!(until(ws, "activity")[4]["text"], "after");
    }
    assert!(matches!(bin_api.delivered_by(1, Instant::now() + Duration::from_secs(10))[..], [1]));
    for ws in &mut bobs {
        // The socket stays open: a heartbeat is answered, and no activity came before it.
        send(ws, json!([null, "9", "phoenix", "heartbeat", {}]));
        loop {
            let m = next(ws);
            assert_ne!(m[3], "activity", "bob still got {m}");
            if m[3] == "phx_reply" && m[1] == "9" {
                break;
            }
        }
    }
    let present = presence_when(&c, &f, |d| d.as_array().is_some_and(|d| d.len() == 1));
    assert_eq!(present, json!([{"sender": "alice", "connections": SOCKETS, "online_at": present[0]["online_at"]}]));

    // Not a ban: bob may follow again, on both transports.
    assert_eq!(join(&mut bobs[0], &topic(&f), json!({"last_seq": 1}))[4]["status"], "ok");
    assert_eq!(bin_bob.subscribe_one(conversation, 1), 1, "subscribed again");

    let n = disconnect(&c, &f, json!({"reason": "maintenance"}));
    assert_eq!(n, SOCKETS as u64 + 3, "alice's joins, bob's new join, both binary subscriptions");
    for ws in alices.iter_mut().chain(bobs.iter_mut().take(1)) {
        assert_eq!(closed_with(ws, &f), json!({"reason": "maintenance", "code": "disconnected"}));
    }
    for bin in [&mut bin_bob, &mut bin_api] {
        assert_eq!(binary_disconnected(bin, f.conversation_id()).0["reason"], "maintenance");
    }
    assert_eq!(presence_when(&c, &f, |d| d == &json!([])), json!([]));
    assert_eq!(disconnect(&c, &f, json!({"reason": "again"})), 0, "nobody left");
}

fn closing_a_conversation_disconnects_its_clients(server: &TestServer) {
    let f = Fixture::new(server, "close-disconnects");
    let c = f.client(server);
    let mut sockets: Vec<Ws> = (0..SOCKETS).map(|i| joined(server, &f, &format!("u{i}"))).collect();
    let (mut bin, _) = BinClient::with_token(server.binary_addr(), &f.token(server, "bin"));
    bin.subscribe_one(uuid_bytes(f.conversation_id()), 0);
    expect(&c.post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    for ws in &mut sockets {
        assert_eq!(closed_with(ws, &f), json!({"reason": "conversation_closed", "code": "conversation_closed"}));
    }
    let (notice, error) = binary_disconnected(&mut bin, f.conversation_id());
    assert_eq!(notice["code"], "conversation_closed");
    assert_eq!(error.error_code(), Some(ErrorCode::ConversationClosed));
    // A closed conversation cannot be followed again.
    let again = join(&mut sockets[0], &topic(&f), json!({}));
    assert_eq!(again[4]["response"]["code"], "conversation_closed");
    assert!(!matches!(bin.next_by(Instant::now() + Duration::from_millis(200)), Some(Next::Closed)));
}

fn disconnect_and_presence_refusals(server: &TestServer) {
    let f = Fixture::new(server, "disconnect-refusals");
    let other = Fixture::new(server, "disconnect-other");
    let c = f.client(server);
    let foreign = format!("/api/v1/conversations/{}", other.conversation_id());
    assert_error(&c.post(&format!("{foreign}/disconnect"), &json!({"reason": "x"})), 404, "not_found");
    assert_error(&c.get(&format!("{foreign}/presence")), 404, "not_found");
    let path = format!("/api/v1/conversations/{}/disconnect", f.conversation_id());
    for (body, field) in [
        (json!({}), "reason"),
        (json!({"reason": " "}), "reason"),
        (json!({"reason": "x", "sender": ""}), "sender"),
        (json!({"reason": "x", "user": "bob"}), "user"),
    ] {
        let e = assert_error(&c.post(&path, &body), 422, "validation_failed");
        assert_eq!(e["field"], field);
    }
    assert_eq!(disconnect(&c, &f, json!({"reason": "nobody here"})), 0);
    let token = f.token(server, "alice");
    let as_client = Client::bearer(server, &token);
    assert_error(&as_client.post(&path, &json!({"reason": "x"})), 403, "forbidden");
}
