//! The error shape and statuses shared by every endpoint: 400 invalid_json,
//! 404 for unknown or malformed ids, 413, 415, 422 for unknown fields, and the
//! OpenAPI document.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::{Conn, TestServer};
use serde_json::json;

on_both_backends!(malformed_and_mistyped_bodies_are_400_and_415);

fn malformed_and_mistyped_bodies_are_400_and_415(server: &TestServer) {
    let f = Fixture::new(server, "errs");
    let auth = format!("Bearer {}", f.tenant.api_key);
    let post = |content_type: &str, body: &[u8]| {
        server.request("POST", "/api/v1/channels", &[("authorization", &auth), ("content-type", content_type)], body)
    };
    assert_error(&post("application/json", b"{\"name\": "), 400, "invalid_json");
    assert_error(&post("application/json", b"[1, 2]"), 400, "invalid_json");
    assert_error(&post("application/json", b"\"text\""), 400, "invalid_json");
    assert_error(&post("text/plain", b"{\"name\": \"n\", \"type\": \"echo\"}"), 415, "unsupported_media_type");
    assert_error(&post("application/x-www-form-urlencoded", b"name=n&type=echo"), 415, "unsupported_media_type");
    let no_type = server.request("POST", "/api/v1/channels", &[("authorization", &auth)], b"{}");
    assert_error(&no_type, 415, "unsupported_media_type");
    expect(&post("application/json; charset=utf-8", br#"{"name": "n", "type": "echo"}"#), 201);
    // Ids that name nothing answer 404, malformed or not.
    let c = f.client(server);
    for path in [
        "/api/v1/channels/nope",
        "/api/v1/conversations/nope",
        "/api/v1/deliveries/nope",
        "/api/v1/channels/0190f0f0-0000-7000-8000-000000000000",
    ] {
        assert_error(&c.get(path), 404, "not_found");
    }
}

#[test]
fn oversized_activity_is_413() {
    let server = TestServer::embedded_with(&["--max-body-bytes", "2048"]);
    let f = Fixture::new(&server, "big");
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    let body = json!({"sender": "u", "text": "x".repeat(4096)}).to_string();
    let auth = format!("Bearer {}", f.tenant.api_key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    conn.send_request("POST", &f.activities_path(), &headers, body.as_bytes()).expect("send");
    assert_error(&conn.read_reply(false).expect("reply"), 413, "payload_too_large");
}

#[test]
fn openapi_document_is_served_and_lists_the_rest_surface() {
    let server = TestServer::embedded();
    let reply = Client::anonymous(&server).get("/api/v1/openapi.json");
    let doc = expect(&reply, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    for path in
        ["/api/v1/channels", "/api/v1/conversations/{id}/activities", "/api/v1/tokens/refresh", "/admin/api/tenants"]
    {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}
