//! The pre-publish hook on the Phoenix socket: a rejected push is answered
//! with an error reply carrying `rejected_by_hook` and the hook's reason, and
//! nothing is broadcast; a rewritten one is stored and broadcast rewritten.

use std::time::Duration;

use converger_e2e::api::{create_tenant, expect, Client};
use converger_e2e::phoenix::{join, next, send, with_token};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(a_push_the_hook_rejects_is_an_error_reply_and_a_rewrite_is_broadcast_rewritten);

fn a_push_the_hook_rejects_is_an_error_reply_and_a_rewrite_is_broadcast_rewritten(server: &TestServer) {
    let tenant = create_tenant(server, "hook-ws");
    let client = Client::bearer(server, &tenant.api_key);
    let hook = Receiver::pre_publish_hook(Duration::ZERO);
    let config = json!({"pre_publish": {"url": hook.url("/hook"), "timeout_ms": 2000}});
    let channel =
        expect(&client.post("/api/v1/channels", &json!({"name": "c", "type": "websocket", "config": config})), 201);
    let conversation = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let id = conversation["id"].as_str().expect("id");
    let token = expect(&client.post("/api/v1/tokens", &json!({"conversation_id": id, "sender": "alice"})), 200);
    let mut ws = with_token(server, token["token"].as_str().expect("token"));
    let topic = format!("conversation:{id}");
    assert_eq!(join(&mut ws, &topic, json!({}))[4]["status"], "ok");

    send(&mut ws, json!(["1", "2", topic, "activity:create", {"text": "bad"}]));
    let reply = reply_to(&mut ws, "2");
    assert_eq!(reply[4]["status"], "error");
    assert_eq!(reply[4]["response"], json!({"reason": "no bad words", "code": "rejected_by_hook"}));

    send(&mut ws, json!(["1", "3", topic, "activity:create", {"text": "rude"}]));
    // The broadcast may come before the reply.
    let (mut reply, mut broadcast) = (None, None);
    while reply.is_none() || broadcast.is_none() {
        let m = next(&mut ws);
        match m[3].as_str() {
            Some("phx_reply") if m[1] == "3" => reply = Some(m),
            Some("activity") => broadcast = Some(m),
            _ => {}
        }
    }
    let (reply, broadcast) = (reply.expect("reply"), broadcast.expect("broadcast"));
    assert_eq!((reply[4]["status"].as_str(), reply[4]["response"]["text"].as_str()), (Some("ok"), Some("[polite]")));
    let first = (broadcast[4]["seq"].as_i64(), broadcast[4]["text"].as_str());
    assert_eq!(first, (Some(1), Some("[polite]")), "the rejected push took no seq and was not broadcast");
}

/// The reply to the push with ref `msg_ref` (presence and other messages skipped).
fn reply_to(ws: &mut converger_e2e::phoenix::Ws, msg_ref: &str) -> Value {
    loop {
        let m = next(ws);
        if m[3] == "phx_reply" && m[1] == msg_ref {
            return m;
        }
        assert_ne!(m[3], "activity", "a rejected push was broadcast: {m}");
    }
}
