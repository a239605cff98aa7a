//! `/api/v1/channels`: create with the secret shown once (and, for webhook
//! channels, the signing key derived from it), read, list with cursor pages
//! and filters, update, rotate the secret, and every refusal.

use base64::Engine;
use converger_e2e::api::{assert_error, create_tenant, expect, Client};
use converger_e2e::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

on_both_backends!(
    create_shows_the_secret_once_and_read_never,
    webhook_channels_show_their_signing_key_with_the_secret_and_others_none,
    list_pages_with_a_cursor_and_filters,
    update_changes_name_config_and_status_and_refuses_type,
    rotate_secret_returns_a_new_secret_and_the_old_one_stops_working,
    bad_channel_input_is_422_naming_the_field
);

fn create_shows_the_secret_once_and_read_never(server: &TestServer) {
    let tenant = create_tenant(server, "acme");
    let c = Client::bearer(server, &tenant.api_key);
    let body = json!({"name": "hooks", "type": "webhook", "config": {"url": "https://example.test/hook"}});
    let created = expect(&c.post("/api/v1/channels", &body), 201);
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("cvs_")), "{created}");
    assert_eq!(created["type"], "webhook");
    assert_eq!(created["status"], "active");
    assert_eq!(created["tenant_id"].as_str(), Some(tenant.id.as_str()));
    assert_eq!(created["config"]["url"], "https://example.test/hook");
    let id = created["id"].as_str().expect("id");
    let read = expect(&c.get(&format!("/api/v1/channels/{id}")), 200);
    assert!(read.get("secret").is_none(), "{read}");
    assert_eq!(read["name"], "hooks");
    let list = expect(&c.get("/api/v1/channels"), 200);
    assert!(list["data"][0].get("secret").is_none(), "{list}");
    let no_config = expect(&c.post("/api/v1/channels", &json!({"name": "e", "type": "echo"})), 201);
    assert_eq!(no_config["config"], json!({}));
}

/// `whsec_` + base64(HMAC-SHA256(channel secret, "converger-webhook-signing-v1")),
/// as docs/webhooks.md tells a receiver to compute it.
fn expected_signing_key(channel: &Value) -> String {
    let secret = channel["secret"].as_str().expect("secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"converger-webhook-signing-v1");
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn webhook_channels_show_their_signing_key_with_the_secret_and_others_none(server: &TestServer) {
    let tenant = create_tenant(server, "keys");
    let c = Client::bearer(server, &tenant.api_key);
    let body = json!({"name": "hooks", "type": "webhook", "config": {"url": "https://example.test/hook"}});
    let hook = expect(&c.post("/api/v1/channels", &body), 201);
    let key = hook["webhook_signing_key"].as_str().expect("webhook_signing_key on create").to_string();
    assert_eq!(key, expected_signing_key(&hook));
    let path = format!("/api/v1/channels/{}", hook["id"].as_str().expect("id"));
    // Only where the secret is shown: not on read, list or update.
    assert!(expect(&c.get(&path), 200).get("webhook_signing_key").is_none());
    assert!(expect(&c.get("/api/v1/channels"), 200)["data"][0].get("webhook_signing_key").is_none());
    assert!(expect(&c.patch(&path, &json!({"name": "h2"})), 200).get("webhook_signing_key").is_none());
    // Rotating the secret rotates the key.
    let rotated = expect(&c.post(&format!("{path}/rotate-secret"), &json!({})), 200);
    let new_key = rotated["webhook_signing_key"].as_str().expect("webhook_signing_key on rotate");
    assert_eq!(new_key, expected_signing_key(&rotated));
    assert_ne!(new_key, key);
    // Other types sign their pre-publish hook's calls with theirs: shown on create and rotate.
    for kind in ["echo", "websocket"] {
        let ch = expect(&c.post("/api/v1/channels", &json!({"name": kind, "type": kind})), 201);
        assert_eq!(ch["webhook_signing_key"].as_str(), Some(expected_signing_key(&ch).as_str()), "{ch}");
        let rotated = expect(
            &c.post(&format!("/api/v1/channels/{}/rotate-secret", ch["id"].as_str().expect("id")), &json!({})),
            200,
        );
        assert_eq!(rotated["webhook_signing_key"].as_str(), Some(expected_signing_key(&rotated).as_str()));
    }
}

fn list_pages_with_a_cursor_and_filters(server: &TestServer) {
    let tenant = create_tenant(server, "pager");
    let c = Client::bearer(server, &tenant.api_key);
    let mut ids = Vec::new();
    for i in 0..5 {
        let ch = expect(&c.post("/api/v1/channels", &json!({"name": format!("c{i}"), "type": "echo"})), 201);
        ids.push(ch["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/channels?limit=2".to_string();
    loop {
        let page = expect(&c.get(&path), 200);
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|ch| ch["id"].as_str().expect("id").to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/channels?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every channel once, in creation order");
    expect(&c.patch(&format!("/api/v1/channels/{}", ids[1]), &json!({"status": "inactive"})), 200);
    let inactive = expect(&c.get("/api/v1/channels?status=inactive"), 200);
    assert_eq!(inactive["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(inactive["data"][0]["id"].as_str(), Some(ids[1].as_str()));
    assert_eq!(inactive["next_cursor"], serde_json::Value::Null);
    assert_error(&c.get("/api/v1/channels?cursor=not-a-cursor"), 400, "invalid_parameter");
    assert_error(&c.get("/api/v1/channels?limit=0"), 400, "invalid_parameter");
    assert_error(&c.get("/api/v1/channels?limit=1001"), 400, "invalid_parameter");
    assert_error(&c.get("/api/v1/channels?status=paused"), 400, "invalid_parameter");
}

fn update_changes_name_config_and_status_and_refuses_type(server: &TestServer) {
    let tenant = create_tenant(server, "upd");
    let c = Client::bearer(server, &tenant.api_key);
    let ch = expect(&c.post("/api/v1/channels", &json!({"name": "a", "type": "echo"})), 201);
    let path = format!("/api/v1/channels/{}", ch["id"].as_str().expect("id"));
    let updated =
        expect(&c.patch(&path, &json!({"name": "b", "config": {"sender": "bot"}, "status": "inactive"})), 200);
    assert_eq!(
        (updated["name"].clone(), updated["config"].clone(), updated["status"].clone()),
        (json!("b"), json!({"sender": "bot"}), json!("inactive"))
    );
    assert!(updated.get("secret").is_none());
    assert_eq!(expect(&c.get(&path), 200)["name"], "b");
    let e = assert_error(&c.patch(&path, &json!({"type": "webhook"})), 422, "validation_failed");
    assert_eq!(e["field"], "type");
    let e = assert_error(&c.patch(&path, &json!({"config": "x"})), 422, "validation_failed");
    assert_eq!(e["field"], "config");
    // The patch is checked by the channel's adapter: echo knows no `url`.
    let e = assert_error(&c.patch(&path, &json!({"config": {"url": "https://h.example"}})), 422, "validation_failed");
    assert_eq!(e["field"], "config.url");
    assert_error(&c.patch(&path, &json!({})), 422, "validation_failed");
    assert_error(&c.patch(&path, &json!({"status": "paused"})), 422, "validation_failed");
}

fn rotate_secret_returns_a_new_secret_and_the_old_one_stops_working(server: &TestServer) {
    let tenant = create_tenant(server, "rot");
    let c = Client::bearer(server, &tenant.api_key);
    let ch = expect(&c.post("/api/v1/channels", &json!({"name": "a", "type": "websocket"})), 201);
    let id = ch["id"].as_str().expect("id");
    let old = ch["secret"].as_str().expect("secret");
    let rotated = expect(&c.post(&format!("/api/v1/channels/{id}/rotate-secret"), &json!({})), 200);
    let new = rotated["secret"].as_str().expect("new secret");
    assert!(new.starts_with("cvs_") && new != old);
    let body = json!({"channel_id": id});
    assert_error(&Client::bearer(server, old).post("/api/v1/conversations", &body), 401, "unauthorized");
    expect(&Client::bearer(server, new).post("/api/v1/conversations", &body), 201);
}

fn bad_channel_input_is_422_naming_the_field(server: &TestServer) {
    let tenant = create_tenant(server, "bad");
    let c = Client::bearer(server, &tenant.api_key);
    for (body, field) in [
        (json!({"type": "echo"}), "name"),
        (json!({"name": " ", "type": "echo"}), "name"),
        (json!({"name": "n"}), "type"),
        (json!({"name": "n", "type": "fax"}), "type"),
        (json!({"name": "n", "type": "echo", "config": [1]}), "config"),
        (json!({"name": "n", "type": "echo", "colour": "red"}), "colour"),
    ] {
        let e = assert_error(&c.post("/api/v1/channels", &body), 422, "validation_failed");
        assert_eq!(e["field"], field, "{body}");
    }
    // Each type's adapter checks its config and names the key.
    for (kind, field) in
        [("webhook", "config.url"), ("whatsapp_meta", "config.phone_number_id"), ("whatsapp_infobip", "config.api_key")]
    {
        let e = assert_error(
            &c.post("/api/v1/channels", &json!({"name": kind, "type": kind, "config": {}})),
            422,
            "validation_failed",
        );
        assert_eq!(e["field"], field, "{kind}");
    }
    let e = assert_error(
        &c.post("/api/v1/channels", &json!({"name": "w", "type": "websocket", "config": {"k": 1}})),
        422,
        "validation_failed",
    );
    assert_eq!(e["field"], "config.k");
    for (kind, config) in [
        ("echo", json!({})),
        ("websocket", json!({})),
        ("webhook", json!({"url": "https://h.example/in", "method": "PUT", "headers": {"X-Tenant": "t"}})),
        ("whatsapp_meta", json!({"phone_number_id": "106540352242922", "access_token": "t", "verify_token": "v"})),
        ("whatsapp_infobip", json!({"api_key": "k", "sender": "441134960000"})),
    ] {
        expect(&c.post("/api/v1/channels", &json!({"name": kind, "type": kind, "config": config})), 201);
    }
}
