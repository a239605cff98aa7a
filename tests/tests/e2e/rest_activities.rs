//! `/api/v1/conversations/{id}/activities`: create (201), idempotent replays
//! (200, same id and seq) keyed by header or field, reads after a watermark
//! with `last_seq`, and the refusals.

use converger_e2e::api::{assert_error, expect, Fixture};
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    create_then_read_in_seq_order_after_a_watermark,
    idempotency_key_by_header_or_field_replays_the_original,
    bad_activities_are_refused_with_the_field,
    replay_still_answers_after_the_conversation_closed
);

fn create_then_read_in_seq_order_after_a_watermark(server: &TestServer) {
    let f = Fixture::new(server, "act");
    let c = f.client(server);
    let body = json!({"text": "hello", "sender": "user-1", "metadata": {"lang": "en"}, "attachments": [{"url": "https://x.test/a.png"}]});
    let first = expect(&c.post(&f.activities_path(), &body), 201);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["type"], "message");
    assert_eq!(first["sender"], "user-1");
    assert_eq!(first["attachments"], json!([{"url": "https://x.test/a.png"}]));
    assert_eq!(first["metadata"], json!({"lang": "en"}));
    assert_eq!(first["conversation_id"].as_str(), Some(f.conversation_id()));
    let event = expect(&c.post(&f.activities_path(), &json!({"type": "event", "sender": "bot"})), 201);
    assert_eq!((event["seq"].clone(), event["type"].clone()), (json!(2), json!("event")));
    for i in 3..=5 {
        let a = expect(&c.post(&f.activities_path(), &json!({"text": format!("m{i}"), "sender": "u"})), 201);
        assert_eq!(a["seq"], i);
    }
    let all = expect(&c.get(&f.activities_path()), 200);
    let seqs: Vec<i64> =
        all["data"].as_array().expect("data").iter().map(|a| a["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(all["last_seq"], 5);
    assert_eq!(all["data"][0], first);
    let after = expect(&c.get(&format!("{}?after_seq=3&limit=1", f.activities_path())), 200);
    assert_eq!(after["data"].as_array().map(Vec::len), Some(1));
    assert_eq!((after["data"][0]["seq"].clone(), after["last_seq"].clone()), (json!(4), json!(5)));
    let past = expect(&c.get(&format!("{}?after_seq=5", f.activities_path())), 200);
    assert_eq!(past, json!({"data": [], "last_seq": 5}));
    let conv = expect(&c.get(&format!("/api/v1/conversations/{}", f.conversation_id())), 200);
    assert_eq!(conv["last_seq"], 5);
    assert_error(&c.get(&format!("{}?after_seq=-1", f.activities_path())), 400, "invalid_parameter");
    assert_error(&c.get(&format!("{}?after_seq=x", f.activities_path())), 400, "invalid_parameter");
}

fn idempotency_key_by_header_or_field_replays_the_original(server: &TestServer) {
    let f = Fixture::new(server, "idem");
    let c = f.client(server);
    let path = f.activities_path();
    let body = json!({"text": "once", "sender": "u"});
    let send = |headers: &[(&str, &str)], body: &Value| c.send("POST", &path, headers, Some(body));
    let created = send(&[("idempotency-key", "k-1")], &body);
    let created_body = expect(&created, 201);
    assert_eq!(created_body["idempotency_key"], "k-1");
    assert_eq!(created.header("idempotent-replayed"), None);
    let replay = send(&[("idempotency-key", "k-1")], &json!({"text": "twice?", "sender": "u"}));
    let replay_body = expect(&replay, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        (replay_body["id"].clone(), replay_body["seq"].clone()),
        (created_body["id"].clone(), created_body["seq"].clone())
    );
    assert_eq!(replay_body["text"], "once", "the original, not the repeat");
    // The other header spelling and the field name the same key.
    assert_eq!(expect(&send(&[("x-idempotency-key", "k-1")], &body), 200)["id"], created_body["id"]);
    let keyed = json!({"text": "once", "sender": "u", "idempotency_key": "k-1"});
    assert_eq!(expect(&send(&[], &keyed), 200)["id"], created_body["id"]);
    assert_eq!(expect(&send(&[("idempotency-key", "k-1")], &keyed), 200)["id"], created_body["id"]);
    // Header and field must agree, and so must the two headers.
    let e = assert_error(&send(&[("idempotency-key", "k-2")], &keyed), 422, "validation_failed");
    assert_eq!(e["field"], "idempotency_key");
    let both = [("idempotency-key", "a"), ("x-idempotency-key", "b")];
    assert_eq!(assert_error(&send(&both, &body), 422, "validation_failed")["field"], "idempotency_key");
    // A new key is a new activity.
    assert_eq!(expect(&send(&[("idempotency-key", "k-2")], &body), 201)["seq"], 2);
    assert_eq!(expect(&c.get(&path), 200)["last_seq"], 2);
}

fn bad_activities_are_refused_with_the_field(server: &TestServer) {
    let f = Fixture::new(server, "badact");
    let c = f.client(server);
    for (body, field) in [
        (json!({"text": "x"}), "sender"),
        (json!({"text": "x", "sender": ""}), "sender"),
        (json!({"sender": "u"}), "text"),
        (json!({"sender": "u", "type": "typing"}), "type"),
        (json!({"sender": "u", "type": "shout", "text": "x"}), "type"),
        (json!({"sender": "u", "text": 5}), "text"),
        (json!({"sender": "u", "text": "x", "attachments": {"a": 1}}), "attachments"),
        (json!({"sender": "u", "text": "x", "attachments": ["a"]}), "attachments"),
        (json!({"sender": "u", "text": "x", "metadata": [1]}), "metadata"),
        (json!({"sender": "u", "text": "x", "idempotencyKey": "k"}), "idempotencyKey"),
    ] {
        let e = assert_error(&c.post(&f.activities_path(), &body), 422, "validation_failed");
        assert_eq!(e["field"], field, "{body}");
    }
    let unknown = "/api/v1/conversations/0190f0f0-0000-7000-8000-000000000000/activities";
    assert_error(&c.post(unknown, &json!({"sender": "u", "text": "x"})), 404, "not_found");
    assert_error(&c.get(unknown), 404, "not_found");
    assert_error(
        &c.post("/api/v1/conversations/not-an-id/activities", &json!({"sender": "u", "text": "x"})),
        404,
        "not_found",
    );
    assert_eq!(expect(&c.get(&f.activities_path()), 200), json!({"data": [], "last_seq": 0}), "nothing was written");
}

fn replay_still_answers_after_the_conversation_closed(server: &TestServer) {
    let f = Fixture::new(server, "closedreplay");
    let c = f.client(server);
    let headers = [("idempotency-key", "before-close")];
    let body = json!({"sender": "u", "text": "x"});
    let created = expect(&c.send("POST", &f.activities_path(), &headers, Some(&body)), 201);
    expect(&c.post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    let replay = expect(&c.send("POST", &f.activities_path(), &headers, Some(&body)), 200);
    assert_eq!(replay["id"], created["id"]);
    assert_error(&c.post(&f.activities_path(), &body), 409, "conversation_closed");
}
