//! The delivery queue as clients see it: an activity on a channel whose adapter
//! delivers gets its delivery row in the same write; one on a channel that does
//! not deliver (websocket) gets none. The worker delivers to a local receiver,
//! retries on schedule, gives up after five attempts, and admin retry requeues.
//! A channel's deliveries wait for its pace (deliveries per second), the
//! server's or its tenant's own, without spending attempts.

use std::time::Duration;

use converger_e2e::api::{create_tenant, delivery_of, expect, Client};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(an_activity_on_a_delivering_channel_is_queued_for_it_in_the_same_write);

fn an_activity_on_a_delivering_channel_is_queued_for_it_in_the_same_write(server: &TestServer) {
    let tenant = create_tenant(server, "routes");
    let api = Client::bearer(server, &tenant.api_key);
    let hook = json!({"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}});
    let hook = expect(&api.post("/api/v1/channels", &hook), 201);
    let ws = expect(&api.post("/api/v1/channels", &json!({"name": "ws", "type": "websocket"})), 201);
    for (channel, queued) in [(&hook, 1), (&ws, 0)] {
        let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
        let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
        for i in 0..3 {
            let a = expect(&api.post(&path, &json!({"sender": "u", "text": format!("{i}")})), 201);
            let list =
                expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", a["id"].as_str().expect("id"))), 200);
            let rows = list["data"].as_array().expect("data");
            assert_eq!(rows.len(), queued, "{} channel: {list}", channel["type"]);
            if let Some(d) = rows.first() {
                assert_eq!((&d["channel_id"], d["status"].as_str()), (&channel["id"], Some("pending")));
            }
        }
    }
}

/// A webhook channel pointing at `url`, a conversation on it, and the activities path.
fn webhook_conversation(api: &Client, url: &str) -> (Value, String) {
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": url}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    (channel, format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id")))
}

on_both_backends!(a_webhook_delivery_reaches_the_receiver_signed);

fn a_webhook_delivery_reaches_the_receiver_signed(server: &TestServer) {
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(server, "hooked");
    let api = Client::bearer(server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "hello"})), 201);
    let id = a["id"].as_str().expect("id");
    let d = delivery_of(&api, id, |d| d["status"] == "delivered");
    assert_eq!(d["attempts"], 1);
    let got = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "delivered once");
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert!(r.header("webhook-id").is_some() && r.header("webhook-timestamp").is_some());
    assert!(r.header("webhook-signature").is_some_and(|s| s.starts_with("v1,")), "{:?}", r.headers);
    assert_eq!(r.json()["data"]["activity"]["id"], a["id"]);
    assert_eq!(r.json()["data"]["activity"]["text"], "hello");
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("converger_delivery_attempts_total{outcome=\"delivered\"} 1"), "{metrics}");
    assert!(metrics.contains("converger_delivery_delivered_after_seconds_count 1"), "{metrics}");
}

#[test]
fn a_failing_receiver_is_retried_on_schedule_until_it_answers() {
    let server = TestServer::embedded_with(&["--delivery-retry-base-ms", "100"]);
    let receiver = Receiver::start(vec![503, 503, 200], "{}");
    let tenant = create_tenant(&server, "retried");
    let api = Client::bearer(&server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "again"})), 201);
    let d = delivery_of(&api, a["id"].as_str().expect("id"), |d| d["status"] == "delivered");
    assert_eq!(d["attempts"], 3);
    let got = receiver.requests();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got.iter().map(|r| r.header("webhook-id").map(str::to_string)).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one webhook-id across retries: {ids:?}");
    // base × 3^attempt: ~100 ms, then ~300 ms.
    let (first, second) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(first >= Duration::from_millis(90), "first retry after {first:?}");
    assert!(second >= Duration::from_millis(280), "second retry after {second:?}");
}

#[test]
fn five_failures_leave_the_delivery_failed_with_the_error_and_admin_retry_requeues_it() {
    let server = TestServer::embedded_with(&["--delivery-retry-base-ms", "10"]);
    let receiver = Receiver::start(vec![500, 500, 500, 500, 500, 200], "{}");
    let tenant = create_tenant(&server, "failing");
    let api = Client::bearer(&server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "doomed"})), 201);
    let id = a["id"].as_str().expect("id");
    let d = delivery_of(&api, id, |d| d["status"] == "failed");
    assert_eq!(d["attempts"], 5);
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("500")), "{d}");
    assert_eq!(receiver.requests().len(), 5);

    let admin = Client::admin(&server);
    expect(&admin.post(&format!("/admin/api/deliveries/{}/retry", d["id"].as_str().expect("id")), &json!({})), 200);
    let d = delivery_of(&api, id, |d| d["status"] == "delivered");
    assert_eq!(d["attempts"], 1, "a retried delivery starts over");
}

#[test]
fn the_echo_channel_answers_once_through_the_write_path() {
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "echoed");
    let api = Client::bearer(&server, &tenant.api_key);
    let channel = json!({"name": "echo", "type": "echo", "config": {"sender": "bot", "prefix": "you said: "}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "hi"})), 201);
    delivery_of(&api, a["id"].as_str().expect("id"), |d| d["status"] == "delivered");
    let list = expect(&api.get(&path), 200);
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "the original and one reply: {list}");
    assert_eq!((data[1]["seq"].as_i64(), data[1]["sender"].as_str()), (Some(2), Some("bot")));
    assert_eq!(data[1]["text"], "you said: hi");
    // The reply is not echoed again: no delivery for it.
    let replies =
        expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", data[1]["id"].as_str().expect("id"))), 200);
    assert_eq!(replies["data"].as_array().map(Vec::len), Some(0), "{replies}");
}

#[test]
fn deliveries_pending_when_the_server_is_killed_are_all_delivered_after_the_restart() {
    let args = ["--delivery-retry-base-ms", "200", "--delivery-lease-ms", "500"];
    let mut server = TestServer::embedded_with(&args);
    // Down at first: every attempt fails and is rescheduled.
    let receiver = Receiver::start(vec![503; 1000], "{}");
    let tenant = create_tenant(&server, "survivor");
    let api_key = tenant.api_key.clone();
    let ids: Vec<String> = {
        let api = Client::bearer(&server, &api_key);
        let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
        (0..20)
            .map(|i| {
                let a = expect(&api.post(&path, &json!({"sender": "u", "text": format!("{i}")})), 201);
                a["id"].as_str().expect("id").to_string()
            })
            .collect()
    };
    receiver.wait_for(5, Duration::from_secs(5));
    server.kill_and_restart();
    let healthy = Receiver::start(vec![200], "{}");
    let api = Client::bearer(&server, &api_key);
    // Point the channel at the receiver that is up now (the rows keep their channel).
    let channels = expect(&api.get("/api/v1/channels"), 200);
    let hook =
        channels["data"].as_array().expect("data").iter().find(|c| c["type"] == "webhook").expect("hook").clone();
    let patch = json!({"config": {"url": healthy.url("/hook")}});
    expect(&api.patch(&format!("/api/v1/channels/{}", hook["id"].as_str().expect("id")), &patch), 200);
    for id in &ids {
        delivery_of(&api, id, |d| d["status"] == "delivered");
    }
    let got = healthy.wait_for(20, Duration::from_secs(5));
    let mut delivered: Vec<String> =
        got.iter().map(|r| r.json()["data"]["activity"]["id"].as_str().expect("id").to_string()).collect();
    delivered.sort();
    delivered.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(delivered, want, "every acknowledged activity delivered after the restart");
}

#[test]
fn deliveries_to_private_addresses_are_refused_unless_allowed() {
    let server = TestServer::embedded_with(&["--delivery-allow-private", "false"]);
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(&server, "guarded");
    let api = Client::bearer(&server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "inward"})), 201);
    let d = delivery_of(&api, a["id"].as_str().expect("id"), |d| d["status"] == "failed");
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("not a public address")), "{d}");
    assert!(receiver.requests().is_empty(), "nothing reached the loopback receiver");
}

#[test]
fn a_delivery_to_a_loopback_name_fails_at_once_without_retries() {
    // Without --delivery-allow-private, and a fast retry schedule: a retry, if
    // there were one, would show within the poll.
    let server = TestServer::embedded_with(&["--delivery-allow-private", "false", "--delivery-retry-base-ms", "10"]);
    let tenant = create_tenant(&server, "loopback");
    let api = Client::bearer(&server, &tenant.api_key);
    for url in ["http://localhost:1/x", "http://localhost.:1/x"] {
        let (_, path) = webhook_conversation(&api, url);
        let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "inward"})), 201);
        let d = delivery_of(&api, a["id"].as_str().expect("id"), |d| d["status"] != "pending");
        assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("failed"), Some(1)), "{url}: {d}");
        let error = d["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("localhost") && error.contains("--delivery-allow-private"), "{url}: {d}");
        assert!(!error.contains("gave up"), "refused, not retried: {d}");
    }
}

/// `converger_delivery_throttled_total` as `/metrics` shows it.
fn throttled(server: &TestServer) -> u64 {
    let page = server.get("/metrics").text();
    let line = page.lines().find_map(|l| l.strip_prefix("converger_delivery_throttled_total "));
    line.and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("no throttled counter: {page}"))
}

/// Writes `n` activities at `path`; their ids, sorted.
fn publish(api: &Client, path: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n)
        .map(|i| {
            let a = expect(&api.post(path, &json!({"sender": "u", "text": format!("{i}")})), 201);
            a["id"].as_str().expect("id").to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// The activity ids the receiver got, sorted (a repeat would show twice).
fn arrived(got: &[converger_e2e::receiver::Recorded]) -> Vec<String> {
    let mut ids: Vec<String> =
        got.iter().map(|r| r.json()["data"]["activity"]["id"].as_str().expect("id").to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn a_channels_deliveries_wait_for_its_pace_and_a_tenant_override_raises_it() {
    let server = TestServer::embedded_with(&["--channel-deliveries-per-second", "5"]);
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(&server, "paced");
    let api = Client::bearer(&server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let ids = publish(&api, &path, 20);
    let got = receiver.wait_for(20, Duration::from_secs(30));
    assert_eq!(arrived(&got), ids, "every activity delivered, once");
    // A burst of one second's worth (5), then 5 a second: the other 15 take
    // 3 s, less what the bucket regained while the 20 were being written.
    let span = got[got.len() - 1].at - got[0].at;
    assert!(span >= Duration::from_millis(2500), "20 deliveries at 5/s arrived within {span:?}");
    for id in &ids {
        let d = delivery_of(&api, id, |d| d["status"] == "delivered");
        assert_eq!(d["attempts"], 1, "waiting for the pace is not an attempt: {d}");
    }
    let held = throttled(&server);
    assert!(held > 0, "the waits are counted");

    // The tenant's own pace, raised through the admin API, holds at once: 20
    // more on a new channel (a full bucket of 1,000) go without a wait.
    let admin = Client::admin(&server);
    let raise = json!({"limits": {"deliveries_per_second": 1000}});
    expect(&admin.patch(&format!("/admin/api/tenants/{}", tenant.id), &raise), 200);
    let fast = Receiver::start(vec![200], "{}");
    let (_, path) = webhook_conversation(&api, &fast.url("/hook"));
    let ids = publish(&api, &path, 20);
    assert_eq!(arrived(&fast.wait_for(20, Duration::from_secs(30))), ids);
    assert_eq!(throttled(&server), held, "no delivery of the raised tenant waited");
}

/// 1 a second with a 1 s lease: a claimed delivery may wait 500 ms at most,
/// so every one but the first of a quick batch is handed back to the queue
/// (`Store::release_delivery`, on both backends), due at its turn, and
/// claimed again then. The hand-back itself is held by delivery::pace's
/// tests and the storage conformance suite.
const HAND_BACK_ARGS: [&str; 4] = ["--channel-deliveries-per-second", "1", "--delivery-lease-ms", "1000"];

mod a_turn_past_half_the_lease_is_handed_back_unattempted_and_delivered_later {
    use converger_e2e::pg::PgSchema;
    use converger_e2e::TestServer;

    #[test]
    fn embedded() {
        let server = TestServer::embedded_with(&super::HAND_BACK_ARGS);
        super::a_turn_past_half_the_lease_is_handed_back_unattempted_and_delivered_later(&server);
    }

    #[test]
    fn postgres() {
        if let Some(schema) = PgSchema::create() {
            let server = TestServer::start(&super::HAND_BACK_ARGS, Some(schema)).unwrap_or_else(|e| panic!("{e}"));
            super::a_turn_past_half_the_lease_is_handed_back_unattempted_and_delivered_later(&server);
        }
    }
}

fn a_turn_past_half_the_lease_is_handed_back_unattempted_and_delivered_later(server: &TestServer) {
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(server, "handed-back");
    let api = Client::bearer(server, &tenant.api_key);
    let (_, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let ids = publish(&api, &path, 5);
    assert_eq!(arrived(&receiver.wait_for(5, Duration::from_secs(60))), ids, "every activity delivered, once");
    for id in &ids {
        let d = delivery_of(&api, id, |d| d["status"] == "delivered");
        assert_eq!(d["attempts"], 1, "handing back costs no attempt: {d}");
    }
    assert!(throttled(server) >= 1, "held back for the pace");
}
