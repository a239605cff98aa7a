//! `/api/v1/conversations`: create (metadata, external_id), read, list with
//! filters and pages, close; inactive channels and taken external ids.

use converger_e2e::api::{assert_error, expect, Fixture};
use converger_e2e::TestServer;
use serde_json::json;

on_both_backends!(
    create_read_and_close,
    external_id_is_unique_per_channel,
    inactive_channel_refuses_new_conversations,
    list_filters_by_channel_and_status
);

fn create_read_and_close(server: &TestServer) {
    let f = Fixture::new(server, "conv");
    let c = f.client(server);
    let body = json!({"channel_id": f.channel_id(), "metadata": {"topic": "billing"}, "external_id": "+15550001"});
    let conv = expect(&c.post("/api/v1/conversations", &body), 201);
    assert_eq!(conv["status"], "active");
    assert_eq!(conv["last_seq"], 0);
    assert_eq!(conv["metadata"], json!({"topic": "billing"}));
    assert_eq!(conv["external_id"], "+15550001");
    assert_eq!(conv["channel_id"].as_str(), Some(f.channel_id()));
    let path = format!("/api/v1/conversations/{}", conv["id"].as_str().expect("id"));
    assert_eq!(expect(&c.get(&path), 200), conv);
    let closed = expect(&c.post(&format!("{path}/close"), &json!({})), 200);
    assert_eq!(closed["status"], "closed");
    let again = expect(&c.post(&format!("{path}/close"), &json!({})), 200);
    assert_eq!(again["status"], "closed", "closing twice is harmless");
    let write = c.post(&format!("{path}/activities"), &json!({"sender": "u", "text": "late"}));
    assert_error(&write, 409, "conversation_closed");
    let plain = expect(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    assert_eq!((plain["metadata"].clone(), plain["external_id"].clone()), (json!({}), json!(null)));
}

fn external_id_is_unique_per_channel(server: &TestServer) {
    let f = Fixture::new(server, "ext");
    let c = f.client(server);
    let body = json!({"channel_id": f.channel_id(), "external_id": "wa:1"});
    expect(&c.post("/api/v1/conversations", &body), 201);
    assert_error(&c.post("/api/v1/conversations", &body), 409, "conflict");
    let other = expect(&c.post("/api/v1/channels", &json!({"name": "other", "type": "echo"})), 201);
    expect(&c.post("/api/v1/conversations", &json!({"channel_id": other["id"], "external_id": "wa:1"})), 201);
}

fn inactive_channel_refuses_new_conversations(server: &TestServer) {
    let f = Fixture::new(server, "inact");
    let c = f.client(server);
    expect(&c.patch(&format!("/api/v1/channels/{}", f.channel_id()), &json!({"status": "inactive"})), 200);
    assert_error(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 409, "channel_inactive");
    let missing = json!({"channel_id": "0190f0f0-0000-7000-8000-000000000000"});
    assert_error(&c.post("/api/v1/conversations", &missing), 404, "not_found");
    let e = assert_error(&c.post("/api/v1/conversations", &json!({"channel_id": "x"})), 422, "validation_failed");
    assert_eq!(e["field"], "channel_id");
    let e = assert_error(&c.post("/api/v1/conversations", &json!({})), 422, "validation_failed");
    assert_eq!(e["field"], "channel_id");
    let body = json!({"channel_id": f.channel_id(), "metadata": [1]});
    assert_eq!(assert_error(&c.post("/api/v1/conversations", &body), 422, "validation_failed")["field"], "metadata");
}

fn list_filters_by_channel_and_status(server: &TestServer) {
    let f = Fixture::new(server, "listc");
    let c = f.client(server);
    let second = expect(&c.post("/api/v1/channels", &json!({"name": "two", "type": "echo"})), 201);
    let on_second = expect(&c.post("/api/v1/conversations", &json!({"channel_id": second["id"]})), 201);
    let closed = expect(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    let closed_id = closed["id"].as_str().expect("id");
    expect(&c.post(&format!("/api/v1/conversations/{closed_id}/close"), &json!({})), 200);
    let ids = |path: &str| -> Vec<String> {
        let page = expect(&c.get(path), 200);
        page["data"].as_array().expect("data").iter().map(|v| v["id"].as_str().expect("id").to_string()).collect()
    };
    assert_eq!(ids("/api/v1/conversations").len(), 3);
    assert_eq!(
        ids(&format!("/api/v1/conversations?channel_id={}", second["id"].as_str().expect("id"))),
        vec![on_second["id"].as_str().expect("id")]
    );
    assert_eq!(ids("/api/v1/conversations?status=closed"), vec![closed_id]);
    assert_eq!(
        ids(&format!("/api/v1/conversations?status=active&channel_id={}", f.channel_id())),
        vec![f.conversation_id()]
    );
    let first = expect(&c.get("/api/v1/conversations?limit=1"), 200);
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let rest = ids(&format!("/api/v1/conversations?limit=5&cursor={cursor}"));
    assert_eq!(rest.len(), 2);
    assert_error(&c.get("/api/v1/conversations?status=open"), 400, "invalid_parameter");
    assert_error(&c.get("/api/v1/conversations?channel_id=nope"), 400, "invalid_parameter");
}
