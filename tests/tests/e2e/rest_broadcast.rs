//! `POST /api/v1/broadcast`: one activity written to many conversations, one
//! seq in each, with a result per conversation in the request's order; a
//! retried broadcast (same key) writes nothing twice; input refused whole
//! with the field; the tenant's activity budget taken for the whole broadcast.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::phoenix::{join, socket, topic, until};
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    a_broadcast_writes_each_conversation_once_and_a_retry_replays,
    broadcast_input_is_refused_whole_with_the_field
);

fn new_conversation(c: &Client, f: &Fixture) -> String {
    let conversation = expect(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    conversation["id"].as_str().expect("id").to_string()
}

fn broadcast(c: &Client, key: Option<&str>, body: &Value) -> Value {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    expect(&c.send("POST", "/api/v1/broadcast", &headers, Some(body)), 200)
}

fn a_broadcast_writes_each_conversation_once_and_a_retry_replays(server: &TestServer) {
    let f = Fixture::new(server, "broadcast");
    let c = f.client(server);
    let a = f.conversation_id().to_string();
    expect(&c.post(&f.activities_path(), &json!({"sender": "s", "text": "before"})), 201);
    let b = new_conversation(&c, &f);
    let closed = new_conversation(&c, &f);
    expect(&c.post(&format!("/api/v1/conversations/{closed}/close"), &json!({})), 200);
    let foreign = Fixture::new(server, "broadcast-other").conversation_id().to_string();

    // A live follower of `a` sees it like any write.
    let mut ws = socket(server, &f, "alice");
    join(&mut ws, &topic(&f), json!({"last_seq": 1}));

    let body = json!({"conversation_ids": [a, b, closed, foreign], "activity": {"sender": "bot", "text": "to all"}});
    let first = broadcast(&c, Some("news-1"), &body);
    let results = first["results"].as_array().expect("results");
    let statuses: Vec<&Value> = results.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(201), &json!(201), &json!(409), &json!(404)], "{first}");
    let ids: Vec<&Value> = results.iter().map(|r| &r["conversation_id"]).collect();
    assert_eq!(ids, [&json!(a), &json!(b), &json!(closed), &json!(foreign)], "in the request's order");
    assert_eq!((results[0]["activity"]["seq"].as_i64(), results[1]["activity"]["seq"].as_i64()), (Some(2), Some(1)));
    assert_eq!(results[0]["activity"]["idempotency_key"], format!("news-1:{a}"), "the derived key");
    assert_eq!(results[1]["activity"]["text"], "to all");
    assert_eq!(results[2]["error"]["code"], "conversation_closed");
    assert_eq!(results[3]["error"]["code"], "not_found");
    assert!(results[2].get("activity").is_none() && results[0].get("error").is_none());
    assert_eq!(until(&mut ws, "activity")[4]["id"], results[0]["activity"]["id"]);

    // The same key again: every written conversation answers its original, nothing new.
    let again = broadcast(&c, Some("news-1"), &body);
    let replayed = again["results"].as_array().expect("results");
    assert_eq!((&replayed[0]["status"], &replayed[1]["status"]), (&json!(200), &json!(200)));
    assert_eq!(replayed[0]["activity"], results[0]["activity"]);
    assert_eq!(replayed[1]["activity"]["id"], results[1]["activity"]["id"]);
    assert_eq!(f.all_activities(server).len(), 2, "before + one broadcast");
    // The key may come in the body instead.
    let in_body =
        json!({"conversation_ids": [b], "activity": {"sender": "bot", "text": "x"}, "idempotency_key": "news-1"});
    assert_eq!(broadcast(&c, None, &in_body)["results"][0]["status"], 200);
    // Without a key a broadcast is a new write each time.
    let plain = json!({"conversation_ids": [b], "activity": {"sender": "bot", "text": "again"}});
    assert_eq!(broadcast(&c, None, &plain)["results"][0]["activity"]["seq"], 2);
    assert_eq!(broadcast(&c, None, &plain)["results"][0]["activity"]["seq"], 3);
}

fn broadcast_input_is_refused_whole_with_the_field(server: &TestServer) {
    let f = Fixture::new(server, "broadcast-bad");
    let c = f.client(server);
    let a = f.conversation_id().to_string();
    let msg = json!({"sender": "bot", "text": "x"});
    let refused = |body: Value, field: &str| {
        let e = assert_error(&c.post("/api/v1/broadcast", &body), 422, "validation_failed");
        assert_eq!(e["field"], field, "{e}");
    };
    refused(json!({"conversation_ids": [a, a], "activity": msg}), "conversation_ids[1]");
    refused(json!({"conversation_ids": [a, "nope"], "activity": msg}), "conversation_ids[1]");
    refused(json!({"conversation_ids": [], "activity": msg}), "conversation_ids");
    let many: Vec<String> = (0..1001).map(|i| format!("0190f0f0-0000-7000-8000-{i:012}")).collect();
    refused(json!({"conversation_ids": many, "activity": msg}), "conversation_ids");
    refused(json!({"conversation_ids": [a], "activity": {"text": "x"}}), "activity.sender");
    refused(json!({"conversation_ids": [a], "activity": {"sender": "s", "type": "typing"}}), "activity.type");
    refused(
        json!({"conversation_ids": [a], "activity": {"sender": "s", "text": "x", "idempotency_key": "k"}}),
        "activity.idempotency_key",
    );
    refused(json!({"conversation_ids": [a], "activity": msg, "idempotency_key": "k".repeat(219)}), "idempotency_key");
    assert!(f.all_activities(server).is_empty(), "nothing of a refused broadcast is written");

    // The tenant's activity budget is taken for the whole broadcast at once:
    // one larger than the budget passes into debt (each shard keeps its share
    // of the budget), and what follows on an indebted shard is refused whole.
    let patch = json!({"limits": {"activities_per_second": 3}});
    expect(&Client::admin(server).patch(&format!("/admin/api/tenants/{}", f.tenant.id), &patch), 200);
    let ids: Vec<String> = (0..4).map(|_| new_conversation(&c, &f)).collect();
    let body = json!({"conversation_ids": ids, "activity": msg});
    let mut written = 0;
    let refused = (0..10).find_map(|_| {
        let reply = c.post("/api/v1/broadcast", &body);
        if reply.status == 200 {
            written += 1;
            return None;
        }
        Some(assert_error(&reply, 429, "rate_limited"))
    });
    assert!(refused.is_some() && written >= 1, "{written} broadcasts of 4 passed a budget of 3/s");
    for id in &ids {
        let page = expect(&c.get(&format!("/api/v1/conversations/{id}/activities")), 200);
        assert_eq!(page["last_seq"], written, "one seq per passed broadcast, none for the refused");
    }
}
