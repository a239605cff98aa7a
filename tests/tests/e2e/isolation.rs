//! Tenant isolation: every endpoint called with tenant A's credentials and
//! tenant B's ids answers 404 (never 403, which would confirm the id exists)
//! and never shows B's object; lists never include B's rows; nothing of B's
//! changes.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(tenant_a_cannot_read_write_list_or_detect_tenant_b);

fn tenant_a_cannot_read_write_list_or_detect_tenant_b(server: &TestServer) {
    let a = Fixture::new(server, "tenant-a");
    let b = Fixture::new(server, "tenant-b");
    let b_activity =
        expect(&b.client(server).post(&b.activities_path(), &json!({"sender": "b", "text": "secret"})), 201);
    let (b_channel, b_conv) = (b.channel_id(), b.conversation_id());
    let b_ids = [b_channel, b_conv, b_activity["id"].as_str().expect("id")];
    let ca = a.client(server);
    let matrix: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/channels/{b_channel}"), None),
        ("PATCH", format!("/api/v1/channels/{b_channel}"), Some(json!({"name": "pwned", "status": "inactive"}))),
        ("POST", format!("/api/v1/channels/{b_channel}/rotate-secret"), Some(json!({}))),
        ("POST", "/api/v1/conversations".into(), Some(json!({"channel_id": b_channel}))),
        ("GET", format!("/api/v1/conversations/{b_conv}"), None),
        ("POST", format!("/api/v1/conversations/{b_conv}/close"), Some(json!({}))),
        ("POST", format!("/api/v1/conversations/{b_conv}/activities"), Some(json!({"sender": "a", "text": "x"}))),
        ("GET", format!("/api/v1/conversations/{b_conv}/activities"), None),
        ("POST", "/api/v1/tokens".into(), Some(json!({"conversation_id": b_conv, "sender": "a"}))),
        ("GET", format!("/api/v1/deliveries/{}", b_ids[2]), None),
    ];
    for (method, path, body) in &matrix {
        let reply = ca.send(method, path, &[], body.as_ref());
        assert_error(&reply, 404, "not_found");
        for id in b_ids {
            assert!(!reply.text().contains(id), "{method} {path} leaked {id}: {}", reply.text());
        }
    }
    // Lists: none of B's rows, even when filtering by B's ids.
    for path in [
        "/api/v1/channels".to_string(),
        "/api/v1/conversations".to_string(),
        format!("/api/v1/conversations?channel_id={b_channel}"),
        "/api/v1/deliveries".to_string(),
        format!("/api/v1/deliveries?activity_id={}", b_ids[2]),
    ] {
        let reply = ca.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        for id in b_ids {
            assert!(!reply.text().contains(id), "{path} leaked {id}");
        }
    }
    // B's channel secret opens nothing of A's.
    let b_secret = Client::bearer(server, b.channel_secret());
    assert_error(&b_secret.post("/api/v1/conversations", &json!({"channel_id": a.channel_id()})), 401, "unauthorized");
    let body = json!({"conversation_id": a.conversation_id(), "sender": "b"});
    assert_error(&b_secret.post("/api/v1/tokens", &body), 401, "unauthorized");
    // B is untouched: same channel, same secret, open conversation, one activity.
    let cb = b.client(server);
    let channel = expect(&cb.get(&format!("/api/v1/channels/{b_channel}")), 200);
    assert_eq!((channel["name"].clone(), channel["status"].clone()), (b.channel["name"].clone(), json!("active")));
    expect(&b_secret.post("/api/v1/conversations", &json!({"channel_id": b_channel})), 201);
    let conv = expect(&cb.get(&format!("/api/v1/conversations/{b_conv}")), 200);
    assert_eq!((conv["status"].clone(), conv["last_seq"].clone()), (json!("active"), json!(1)));
}
