//! Lifecycle webhooks (issue 17, item 2): a tenant's event endpoints
//! (`/api/v1/event-endpoints`), and the events written with the changes they
//! report — conversation created and closed, members joined and left, users
//! online and offline (debounced), deliveries failed for good — each sent
//! once, signed per Standard Webhooks, with the deliveries' retries, and none
//! lost to a `kill -9`. (`tests/js-webhooks` verifies the signatures with the
//! `standardwebhooks` npm package.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use converger_e2e::api::{assert_error, create_tenant, expect, Client, Fixture};
use converger_e2e::pg::PgSchema;
use converger_e2e::phoenix::socket;
use converger_e2e::receiver::{Receiver, Recorded};
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(endpoints_are_validated_and_scoped_to_their_tenant, each_change_sends_its_event_once);

/// Deliveries' test-speed retries: 10 ms × 3ⁿ.
const FAST_RETRIES: [&str; 2] = ["--delivery-retry-base-ms", "10"];

/// Every event type.
const ALL: [&str; 7] = [
    "conversation.created",
    "conversation.closed",
    "member.joined",
    "member.left",
    "user.online",
    "user.offline",
    "delivery.failed",
];

fn endpoint(client: &Client, url: &str, events: &[&str]) -> Value {
    expect(&client.post("/api/v1/event-endpoints", &json!({"url": url, "events": events})), 201)
}

/// Waits until the receiver holds requests whose body satisfies `want`, `n` of them.
fn received(receiver: &Receiver, n: usize, within: Duration, want: impl Fn(&Value) -> bool) -> Vec<Recorded> {
    let deadline = Instant::now() + within;
    loop {
        let got: Vec<Recorded> = receiver.requests().into_iter().filter(|r| want(&r.json())).collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tenant's events matching `query`, once `done` holds for them (or the deadline passed).
fn events_until(client: &Client, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = expect(&client.get(&format!("/api/v1/events?{query}")), 200);
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if done(&data) || Instant::now() > deadline {
            return data;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn endpoints_are_validated_and_scoped_to_their_tenant(server: &TestServer) {
    let tenant = create_tenant(server, "ev-valid");
    let client = Client::bearer(server, &tenant.api_key);
    let post = |body: Value| client.post("/api/v1/event-endpoints", &body);
    let e = assert_error(
        &post(json!({"url": "https://x.example/", "events": ["member.joined", "user.away"]})),
        422,
        "validation_failed",
    );
    assert_eq!(e["field"], "events[1]");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("delivery.failed")), "lists the known types: {e}");
    assert_eq!(
        assert_error(&post(json!({"url": "https://x.example/", "events": []})), 422, "validation_failed")["field"],
        "events"
    );
    assert_eq!(
        assert_error(&post(json!({"url": "ftp://x.example/", "events": ["member.left"]})), 422, "validation_failed")
            ["field"],
        "url"
    );
    assert_eq!(assert_error(&post(json!({"events": ["member.left"]})), 422, "validation_failed")["field"], "url");

    let created = endpoint(&client, "https://x.example/hooks", &["member.joined", "conversation.closed"]);
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/v1/event-endpoints/{id}");
    let read = expect(&client.get(&path), 200);
    assert!(read.get("secret").is_none(), "the secret is shown once: {read}");
    assert_eq!(read["events"], json!(["member.joined", "conversation.closed"]));
    let list = expect(&client.get("/api/v1/event-endpoints"), 200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert!(list["data"][0].get("secret").is_none());
    let patched = expect(&client.patch(&path, &json!({"events": ["user.online"]})), 200);
    assert_eq!((patched["events"].clone(), patched["url"].clone()), (json!(["user.online"]), read["url"].clone()));

    let other = create_tenant(server, "ev-other");
    let other = Client::bearer(server, &other.api_key);
    assert_error(&other.get(&path), 404, "not_found");
    assert_error(&other.send("DELETE", &path, &[], None), 404, "not_found");
    assert_eq!(expect(&other.get("/api/v1/event-endpoints"), 200)["data"], json!([]));
    assert_eq!(client.send("DELETE", &path, &[], None).status, 204);
    assert_error(&client.get(&path), 404, "not_found");
}

fn each_change_sends_its_event_once(server: &TestServer) {
    let receiver = Receiver::start(vec![200], "{}");
    let f = Fixture::new(server, "ev-once");
    let client = f.client(server);
    let ep = endpoint(&client, &receiver.url("/events"), &ALL);
    let conv = expect(&client.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    let conv_id = conv["id"].as_str().expect("id").to_string();
    let members = format!("/api/v1/conversations/{conv_id}/members");
    expect(&client.post(&members, &json!({"sender": "alice", "role": "agent"})), 201);
    assert_eq!(client.send("DELETE", &format!("{members}/alice"), &[], None).status, 204);
    expect(&client.post(&format!("/api/v1/conversations/{conv_id}/close"), &json!({})), 200);
    expect(&client.post(&format!("/api/v1/conversations/{conv_id}/close"), &json!({})), 200);

    let of_conv = |v: &Value| v["data"]["conversation_id"] == conv_id.as_str();
    let got = received(&receiver, 4, Duration::from_secs(20), of_conv);
    // A duplicate, were there one, would show within this.
    std::thread::sleep(Duration::from_millis(300));
    let got_all: Vec<Recorded> = receiver.requests().into_iter().filter(|r| of_conv(&r.json())).collect();
    assert_eq!(got_all.len(), 4, "{:?}", got_all.iter().map(Recorded::json).collect::<Vec<_>>());
    // Sent concurrently: they may arrive in any order; their timestamps say when each change happened.
    let mut got = got;
    got.sort_by_key(|r| r.json()["timestamp"].as_str().unwrap_or_default().to_string());
    let types: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(types, ["conversation.created", "member.joined", "member.left", "conversation.closed"]);
    let ids: BTreeSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 4, "one webhook-id per event");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert!(r.header("webhook-timestamp").is_some());
        assert!(r.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "{:?}", r.headers);
        assert!(r.json()["timestamp"].is_string());
    }
    assert_eq!(got[1].json()["data"]["sender"], "alice");
    assert_eq!(got[1].json()["data"]["role"], "agent");

    // A user's first socket, then their last gone past the debounce (5 s).
    let ws = socket(server, &f, "zoe");
    let of_zoe = |v: &Value| v["data"]["sender"] == "zoe";
    let online = received(&receiver, 1, Duration::from_secs(10), of_zoe);
    assert_eq!(online.len(), 1);
    assert_eq!(online[0].json()["type"], "user.online");
    drop(ws);
    let both = received(&receiver, 2, Duration::from_secs(20), of_zoe);
    assert_eq!(both.len(), 2);
    assert_eq!(both[1].json()["type"], "user.offline");
    assert!(both[1].json()["data"]["last_seen"].is_string());

    // As listed: delivered, one attempt each, webhook-id = msg_ + id.
    let query = format!("endpoint_id={}&status=delivered", ep["id"].as_str().expect("id"));
    let listed = events_until(&client, &query, |d| d.len() >= 6);
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert!(listed.iter().all(|e| e["attempts"] == 1), "{listed:?}");
    let listed_ids: BTreeSet<String> =
        listed.iter().map(|e| format!("msg_{}", e["id"].as_str().unwrap_or(""))).collect();
    let sent_ids: BTreeSet<String> =
        receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_string)).collect();
    assert_eq!(listed_ids, sent_ids);
    let one = expect(&client.get(&format!("/api/v1/events/{}", listed[0]["id"].as_str().expect("id"))), 200);
    assert_eq!(one["type"], "conversation.created");
}

/// An embedded server, and one on PostgreSQL when it is set up, with `args`.
fn servers(args: &[&str]) -> Vec<TestServer> {
    let mut servers = vec![TestServer::embedded_with(args)];
    if let Some(schema) = PgSchema::create() {
        servers.push(TestServer::start(args, Some(schema)).unwrap_or_else(|e| panic!("{e}")));
    }
    servers
}

#[test]
fn a_failing_receiver_gets_retries_then_failed() {
    for server in servers(&FAST_RETRIES) {
        let receiver = Receiver::start(vec![500], "{}");
        let tenant = create_tenant(&server, "ev-fail");
        let client = Client::bearer(&server, &tenant.api_key);
        endpoint(&client, &receiver.url("/events"), &["conversation.created"]);
        let channel = expect(&client.post("/api/v1/channels", &json!({"name": "ws", "type": "websocket"})), 201);
        expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
        let failed = events_until(&client, "status=failed", |d| !d.is_empty());
        assert_eq!(failed.len(), 1, "{} : {failed:?}", server.backend());
        assert_eq!(failed[0]["attempts"], 5);
        assert!(failed[0]["last_error"].as_str().is_some_and(|e| e.contains("HTTP 500")), "{failed:?}");
        let got = receiver.requests();
        assert_eq!(got.len(), 5, "five attempts");
        let ids: BTreeSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
        assert_eq!(ids.len(), 1, "one webhook-id across the retries");
    }
}

#[test]
fn events_pending_at_a_kill_are_delivered_after_the_restart() {
    let args = ["--delivery-retry-base-ms", "200", "--delivery-lease-ms", "500"];
    for mut server in servers(&args) {
        // Down at first: every attempt fails and is rescheduled.
        let down = Receiver::start(vec![503; 1000], "{}");
        let tenant = create_tenant(&server, "ev-kill");
        let api_key = tenant.api_key.clone();
        let (endpoint_id, want) = {
            let client = Client::bearer(&server, &api_key);
            let ep = endpoint(&client, &down.url("/events"), &["conversation.created"]);
            let channel = expect(&client.post("/api/v1/channels", &json!({"name": "ws", "type": "websocket"})), 201);
            let want: BTreeSet<String> = (0..15)
                .map(|_| {
                    let c = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
                    c["id"].as_str().expect("id").to_string()
                })
                .collect();
            (ep["id"].as_str().expect("id").to_string(), want)
        };
        down.wait_for(3, Duration::from_secs(5));
        server.kill_and_restart();
        let up = Receiver::start(vec![200], "{}");
        let client = Client::bearer(&server, &api_key);
        let path = format!("/api/v1/event-endpoints/{endpoint_id}");
        expect(&client.patch(&path, &json!({"url": up.url("/events")})), 200);
        let delivered = events_until(&client, "status=delivered", |d| d.len() >= want.len());
        assert_eq!(delivered.len(), want.len(), "{}: {delivered:?}", server.backend());
        let got = received(&up, want.len(), Duration::from_secs(10), |_| true);
        let sent: BTreeSet<String> =
            got.iter().map(|r| r.json()["data"]["conversation_id"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(sent, want, "every conversation's event, none lost");
    }
}
