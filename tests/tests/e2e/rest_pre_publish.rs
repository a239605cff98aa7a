//! The pre-publish hook over REST (issue 17): a channel's `config.pre_publish`
//! hook is asked before each publish is committed and accepts, rejects (422
//! `rejected_by_hook` with its reason, nothing stored) or rewrites it; a hook
//! that is down, too slow or answers nonsense gives the publish its
//! `on_failure`; a hook that holds one conversation's publish holds no other
//! conversation's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use converger_e2e::api::{assert_error, expect, Client};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    the_hook_accepts_rejects_and_rewrites,
    a_hook_down_or_too_slow_takes_its_on_failure,
    a_hook_answering_nonsense_takes_its_on_failure,
    a_hook_holding_one_conversation_holds_no_other,
);

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
    let stored = expect(&client.post(&open, &json!({"sender": "u", "text": "hi"})), 201);
    assert_eq!((stored["seq"].as_i64(), stored["text"].as_str()), (Some(1), Some("hi")), "stored as written");

    let slow = Receiver::pre_publish_hook(Duration::from_millis(800));
    let strict = conversation(&client, json!({"pre_publish": {"url": slow.url("/h"), "timeout_ms": 100}}));
    assert_error(&client.post(&strict, &json!({"sender": "u", "text": "hi"})), 422, "rejected_by_hook");
    let lenient = conversation(
        &client,
        json!({"pre_publish": {"url": slow.url("/h"), "timeout_ms": 100, "on_failure": "accept"}}),
    );
    let stored = expect(&client.post(&lenient, &json!({"sender": "u", "text": "bad"})), 201);
    assert_eq!((stored["seq"].as_i64(), stored["text"].as_str()), (Some(1), Some("bad")), "unchecked, as written");
    // Nothing was stored where the hook failed closed.
    assert_eq!(expect(&client.get(&strict), 200)["data"], json!([]));
    assert_eq!(expect(&client.get(&closed), 200)["data"], json!([]));
}

fn a_hook_answering_nonsense_takes_its_on_failure(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "hook-nonsense");
    let client = Client::bearer(server, &tenant.api_key);
    for (status, body) in [
        (500, r#"{"action": "accept"}"#),
        (200, "<html>ok</html>"),
        (200, r#"{"results": []}"#),
        (200, r#"{"action": "shrug"}"#),
        (200, r#"{"action": "rewrite"}"#),
    ] {
        let hook = Receiver::start(vec![status], body);
        let strict = conversation(&client, json!({"pre_publish": {"url": hook.url("/h")}}));
        let refused = client.post(&strict, &json!({"sender": "u", "text": "hi"}));
        assert_eq!(refused.status, 422, "HTTP {status} {body}: {}", refused.text());
        assert_error(&refused, 422, "rejected_by_hook");
        let lenient = conversation(&client, json!({"pre_publish": {"url": hook.url("/h"), "on_failure": "accept"}}));
        let stored = expect(&client.post(&lenient, &json!({"sender": "u", "text": "hi"})), 201);
        assert_eq!((stored["seq"].as_i64(), stored["text"].as_str()), (Some(1), Some("hi")), "HTTP {status} {body}");
        assert_eq!(hook.requests().len(), 2, "asked once per publish, not retried");
    }
}

/// How long the held hook waits for the test to let it answer (under the
/// channel's `timeout_ms` of 10 s, so a test that fails early never leaves a
/// publish to time out unnoticed).
const HELD_AT_MOST: Duration = Duration::from_secs(8);

fn a_hook_holding_one_conversation_holds_no_other(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "hook-slow");
    let client = Client::bearer(server, &tenant.api_key);
    // Channel A's hook holds every call until the test opens its gate (it
    // says when a call arrived); channel B's answers at once. Two hooks, so
    // B's items never share a call with A's.
    let (arrived_tx, arrived) = mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let gate = Arc::new(AtomicBool::new(false));
    let opened = gate.clone();
    let slow = Receiver::start_with(vec![200], move |r| {
        let _ = arrived_tx.lock().expect("lock").send(());
        let until = Instant::now() + HELD_AT_MOST;
        while !opened.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let n = r.json()["data"]["items"].as_array().map_or(0, Vec::len);
        json!({"results": vec![json!({"action": "accept"}); n]}).to_string()
    });
    let fast = Receiver::pre_publish_hook(Duration::ZERO);
    let held = conversation(&client, json!({"pre_publish": {"url": slow.url("/slow"), "timeout_ms": 10_000}}));
    let free = conversation(&client, json!({"pre_publish": {"url": fast.url("/fast"), "timeout_ms": 10_000}}));

    // A's publish, in a thread of its own: it waits for the hook.
    let (api_key, addr) = (tenant.api_key.clone(), server.http_addr());
    let a_done = Arc::new(AtomicBool::new(false));
    let done = a_done.clone();
    let publish_a = std::thread::spawn(move || {
        let reply = converger_e2e::http::request(
            addr,
            "POST",
            &held,
            &[("authorization", &format!("Bearer {api_key}")), ("content-type", "application/json")],
            json!({"sender": "a", "text": "held"}).to_string().as_bytes(),
        );
        done.store(true, Ordering::Release);
        reply
    });
    arrived.recv_timeout(Duration::from_secs(10)).expect("A's hook was called");

    // Meanwhile B: five publishes one after another, each through B's hook.
    for i in 1..=5 {
        let written = expect(&client.post(&free, &json!({"sender": "b", "text": format!("b{i}")})), 201);
        assert_eq!(written["seq"].as_i64(), Some(i));
    }
    let a_pending = !a_done.load(Ordering::Acquire);
    gate.store(true, Ordering::Release);
    let a = publish_a.join().expect("A's publish thread").expect("A's publish answered");
    assert!(a_pending, "B's five publishes all completed while A's was still waiting for its hook");
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(fast.requests().len(), 5);
    assert_eq!(slow.requests().len(), 1);
}
