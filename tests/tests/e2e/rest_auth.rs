//! Authentication of `/api/v1`: the API key (Bearer or X-Api-Key), inactive
//! and rotated tenants, channel secrets (Direct Line model: conversations and
//! tokens on their own channel only), and the wrong kinds of credential.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::TestServer;
use serde_json::json;

on_both_backends!(
    api_key_by_bearer_or_x_api_key_and_refusals,
    inactive_tenant_is_403_and_a_rotated_key_401,
    channel_secret_works_on_its_own_channel_only
);

fn api_key_by_bearer_or_x_api_key_and_refusals(server: &TestServer) {
    let f = Fixture::new(server, "auth");
    let key = f.tenant.api_key.as_str();
    assert_eq!(f.client(server).get("/api/v1/channels").status, 200);
    assert_eq!(server.request("GET", "/api/v1/channels", &[("x-api-key", key)], b"").status, 200);
    let both = [("authorization", &*format!("Bearer {key}")), ("x-api-key", key)];
    assert_eq!(server.request("GET", "/api/v1/channels", &both, b"").status, 200);
    let reply = Client::anonymous(server).get("/api/v1/channels");
    assert_error(&reply, 401, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_error(&Client::bearer(server, "cvg_nope").get("/api/v1/channels"), 401, "unauthorized");
    assert_error(&Client::bearer(server, "hunter2").get("/api/v1/channels"), 401, "unauthorized");
    assert_error(&server.request("GET", "/api/v1/channels", &[("authorization", key)], b""), 401, "unauthorized");
    let clash = [("authorization", &*format!("Bearer {key}")), ("x-api-key", "cvg_other")];
    assert_error(&server.request("GET", "/api/v1/channels", &clash, b""), 401, "unauthorized");
    // The admin token is not a tenant key.
    assert_error(&Client::admin(server).get("/api/v1/channels"), 401, "unauthorized");
    // Every /api/v1 route but the document itself wants credentials.
    for (method, path) in [
        ("POST", "/api/v1/channels"),
        ("GET", "/api/v1/conversations"),
        ("POST", "/api/v1/conversations"),
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens/refresh"),
        ("GET", "/api/v1/deliveries"),
    ] {
        assert_error(&Client::anonymous(server).send(method, path, &[], Some(&json!({}))), 401, "unauthorized");
    }
    assert_eq!(Client::anonymous(server).get("/api/v1/openapi.json").status, 200);
}

fn inactive_tenant_is_403_and_a_rotated_key_401(server: &TestServer) {
    let f = Fixture::new(server, "inactive");
    let admin = Client::admin(server);
    let tenant_path = format!("/admin/api/tenants/{}", f.tenant.id);
    expect(&admin.patch(&tenant_path, &json!({"status": "inactive"})), 200);
    assert_error(&f.client(server).get("/api/v1/channels"), 403, "tenant_inactive");
    let body = json!({"channel_id": f.channel_id()});
    let secret = Client::bearer(server, f.channel_secret());
    assert_error(&secret.post("/api/v1/conversations", &body), 403, "tenant_inactive");
    expect(&admin.patch(&tenant_path, &json!({"status": "active"})), 200);
    assert_eq!(f.client(server).get("/api/v1/channels").status, 200);
    let rotated = expect(&admin.post(&format!("{tenant_path}/rotate-key"), &json!({})), 200);
    let new_key = rotated["api_key"].as_str().expect("new key");
    assert_ne!(new_key, f.tenant.api_key);
    assert_error(&f.client(server).get("/api/v1/channels"), 401, "unauthorized");
    assert_eq!(Client::bearer(server, new_key).get("/api/v1/channels").status, 200);
}

fn channel_secret_works_on_its_own_channel_only(server: &TestServer) {
    let f = Fixture::new(server, "secret");
    let secret = Client::bearer(server, f.channel_secret());
    let conv = expect(&secret.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    assert_eq!(conv["channel_id"].as_str(), Some(f.channel_id()));
    let token =
        expect(&secret.post("/api/v1/tokens", &json!({"conversation_id": conv["id"], "sender": "visitor"})), 200);
    assert!(token["token"].as_str().is_some());
    // Another channel of the same tenant: the secret does not open it.
    let other = expect(&f.client(server).post("/api/v1/channels", &json!({"name": "other", "type": "echo"})), 201);
    assert_error(&secret.post("/api/v1/conversations", &json!({"channel_id": other["id"]})), 401, "unauthorized");
    let other_conv = expect(&f.client(server).post("/api/v1/conversations", &json!({"channel_id": other["id"]})), 201);
    let body = json!({"conversation_id": other_conv["id"], "sender": "v"});
    assert_error(&secret.post("/api/v1/tokens", &body), 401, "unauthorized");
    // A secret is not an API key.
    assert_error(&secret.get("/api/v1/channels"), 403, "forbidden");
    assert_error(&secret.get(&format!("/api/v1/conversations/{}", conv["id"].as_str().expect("id"))), 403, "forbidden");
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    assert_error(&secret.post(&path, &json!({"sender": "v", "text": "x"})), 403, "forbidden");
    // An inactive channel refuses its secret.
    let channel_path = format!("/api/v1/channels/{}", f.channel_id());
    expect(&f.client(server).patch(&channel_path, &json!({"status": "inactive"})), 200);
    assert_error(
        &secret.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})),
        403,
        "channel_inactive",
    );
    assert_error(
        &secret.post("/api/v1/tokens", &json!({"conversation_id": conv["id"], "sender": "v"})),
        403,
        "channel_inactive",
    );
}
