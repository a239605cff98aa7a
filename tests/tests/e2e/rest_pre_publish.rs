//! The pre-publish hook over REST (issue 17): a channel's `config.pre_publish`
//! hook is asked before each publish is committed and accepts, rejects (422
//! `rejected_by_hook` with its reason, nothing stored) or rewrites it; a hook
//! that is down or too slow gives the publish its `on_failure`.

use std::time::Duration;

use converger_e2e::api::{assert_error, expect, Client};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(the_hook_accepts_rejects_and_rewrites, a_hook_down_or_too_slow_takes_its_on_failure);

/// A conversation on a new channel whose config is `config`; its activities path.
fn conversation(client: &Client, config: Value) -> String {
    let channel = expect(
        &client.post("/api/v1/channels", &json!({"name": "hooked", "type": "websocket", "config": config})),
        201,
    );
    let c = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    format!("/api/v1/conversations/{}/activities", c["id"].as_str().expect("id"))
}

fn the_hook_accepts_rejects_and_rewrites(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "hook");
    let client = Client::bearer(server, &tenant.api_key);
    let receiver = Receiver::pre_publish_hook(Duration::ZERO);
    let path = conversation(&client, json!({"pre_publish": {"url": receiver.url("/hook"), "timeout_ms": 2000}}));

    let ok = expect(&client.post(&path, &json!({"sender": "u", "text": "hello"})), 201);
    assert_eq!((ok["seq"].as_i64(), ok["text"].as_str()), (Some(1), Some("hello")));
    let refused = assert_error(&client.post(&path, &json!({"sender": "u", "text": "bad"})), 422, "rejected_by_hook");
    assert_eq!(refused["message"], "no bad words");
    let rewritten = expect(&client.post(&path, &json!({"sender": "u", "text": "rude"})), 201);
    assert_eq!((rewritten["seq"].as_i64(), rewritten["text"].as_str()), (Some(2), Some("[polite]")));
    assert_eq!(rewritten["metadata"], json!({"rewritten": true}));

    let asked = receiver.requests();
    assert_eq!(asked.len(), 3);
    let first = asked[0].json();
    assert_eq!(first["type"], "activity.pre_publish");
    assert_eq!(first["data"]["items"][0]["text"], "hello");
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(asked[0].header(name).is_some(), "no {name} header");
    }
    let stored: Vec<Value> = expect(&client.get(&path), 200)["data"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = stored.iter().filter_map(|a| a["text"].as_str()).collect();
    assert_eq!(texts, ["hello", "[polite]"], "the rejected publish is nowhere");
}

fn a_hook_down_or_too_slow_takes_its_on_failure(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "hook-down");
    let client = Client::bearer(server, &tenant.api_key);
    // Nothing listens on port 1.
    let closed = conversation(&client, json!({"pre_publish": {"url": "http://127.0.0.1:1/hook"}}));
    assert_error(&client.post(&closed, &json!({"sender": "u", "text": "hi"})), 422, "rejected_by_hook");
    let open =
        conversation(&client, json!({"pre_publish": {"url": "http://127.0.0.1:1/hook", "on_failure": "accept"}}));
    expect(&client.post(&open, &json!({"sender": "u", "text": "hi"})), 201);

    let slow = Receiver::pre_publish_hook(Duration::from_millis(800));
    let strict = conversation(&client, json!({"pre_publish": {"url": slow.url("/h"), "timeout_ms": 100}}));
    assert_error(&client.post(&strict, &json!({"sender": "u", "text": "hi"})), 422, "rejected_by_hook");
    let lenient = conversation(
        &client,
        json!({"pre_publish": {"url": slow.url("/h"), "timeout_ms": 100, "on_failure": "accept"}}),
    );
    expect(&client.post(&lenient, &json!({"sender": "u", "text": "hi"})), 201);
}
