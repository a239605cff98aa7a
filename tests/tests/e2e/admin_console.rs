//! The admin console and the admin API it needs: the page and its assets
//! from an allowed address without a token (strict headers), channels of a
//! tenant created, toggled and re-keyed by the admin, an operator's activity,
//! the live tail's token, per-channel delivery counts and retrying every
//! failed delivery of a channel.

use converger_e2e::api::{assert_error, create_tenant, delivery_of, expect, Client, Fixture};
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::json;

#[test]
fn the_console_is_served_without_a_token_with_strict_headers() {
    let server = TestServer::embedded();
    for (path, kind) in [("/admin", "text/html"), ("/admin/", "text/html"), ("/admin/assets/app.js", "text/javascript")]
    {
        let reply = Client::anonymous(&server).send("GET", path, &[], None);
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with(kind)), "{path}");
        let csp = reply.header("content-security-policy").expect("csp");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    }
    assert_eq!(Client::anonymous(&server).get("/admin").header("cache-control"), Some("no-store"));
    assert_error(&Client::anonymous(&server).get("/admin/assets/secret.txt"), 404, "not_found");
    // The data stays behind the token.
    assert_error(&Client::anonymous(&server).get("/admin/api/stats"), 401, "unauthorized");
}

#[test]
fn outside_the_allow_list_the_console_is_403_too() {
    let server = TestServer::embedded_with(&["--admin-allow", "10.0.0.0/8"]);
    for path in ["/admin", "/admin/", "/admin/assets/app.js"] {
        assert_error(&Client::anonymous(&server).get(path), 403, "forbidden");
    }
}

on_both_backends!(the_admin_creates_toggles_and_rekeys_a_tenants_channels, an_operator_posts_into_a_conversation);

fn the_admin_creates_toggles_and_rekeys_a_tenants_channels(server: &TestServer) {
    let tenant = create_tenant(server, "acme");
    let admin = Client::admin(server);
    let path = format!("/admin/api/tenants/{}/channels", tenant.id);
    let refused = assert_error(&admin.post(&path, &json!({"name": "h", "type": "webhook"})), 422, "validation_failed");
    assert_eq!(refused["field"], "config.url");
    let hook = json!({"name": "h", "type": "webhook", "config": {"url": "https://example.com/hook"}});
    let channel = expect(&admin.post(&path, &hook), 201);
    assert!(channel["secret"].as_str().is_some_and(|s| s.starts_with("cvs_")));
    assert_eq!(channel["tenant_id"], json!(tenant.id));
    let id = channel["id"].as_str().expect("id");
    let off = expect(&admin.patch(&format!("/admin/api/channels/{id}"), &json!({"status": "inactive"})), 200);
    assert_eq!(off["status"], "inactive");
    let rotated = expect(&admin.post(&format!("/admin/api/channels/{id}/rotate-secret"), &json!({})), 200);
    assert_ne!(rotated["secret"], channel["secret"]);
    // The tenant sees the channel the admin made.
    let mine = expect(&Client::bearer(server, &tenant.api_key).get(&format!("/api/v1/channels/{id}")), 200);
    assert_eq!(mine["status"], "inactive");
    assert_error(
        &admin.post("/admin/api/tenants/0190f0f0-0000-7000-8000-000000000000/channels", &hook),
        404,
        "not_found",
    );
}

fn an_operator_posts_into_a_conversation(server: &TestServer) {
    let f = Fixture::new(server, "ops");
    let admin = Client::admin(server);
    let path = format!("/admin/api/conversations/{}/activities", f.conversation_id());
    let a = expect(&admin.post(&path, &json!({"sender": "operator", "text": "hello from ops"})), 201);
    assert_eq!((a["seq"].clone(), a["tenant_id"].clone()), (json!(1), json!(f.tenant.id)));
    let listed = expect(&f.client(server).get(&f.activities_path()), 200);
    assert_eq!(listed["data"][0]["text"], "hello from ops");
    assert_eq!(assert_error(&admin.post(&path, &json!({"text": "x"})), 422, "validation_failed")["field"], "sender");
    let token =
        expect(&admin.post(&format!("/admin/api/conversations/{}/live-token", f.conversation_id()), &json!({})), 200);
    assert_eq!(token["conversation_id"], json!(f.conversation_id()));
    assert!(token["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
}

#[test]
fn a_channels_deliveries_are_counted_and_its_failed_ones_retried_at_once() {
    let server = TestServer::embedded_with(&["--delivery-retry-base-ms", "10"]);
    let receiver = Receiver::start([vec![500; 10], vec![200]].concat(), "{}");
    let tenant = create_tenant(&server, "failing");
    let api = Client::bearer(&server, &tenant.api_key);
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": receiver.url("/hook")}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
    let a = expect(&api.post(&path, &json!({"sender": "alice", "text": "one"})), 201);
    let b = expect(&api.post(&path, &json!({"sender": "alice", "text": "two"})), 201);
    for act in [&a, &b] {
        delivery_of(&api, act["id"].as_str().expect("id"), |d| d["status"] == "failed");
    }
    let admin = Client::admin(&server);
    let id = channel["id"].as_str().expect("id");
    let counts = expect(&admin.get(&format!("/admin/api/channels/{id}/delivery-counts")), 200);
    assert_eq!(counts, json!({"channel_id": id, "pending": 0, "delivered": 0, "failed": 2, "capped": false}));
    let retried = expect(&admin.post(&format!("/admin/api/channels/{id}/retry-failed"), &json!({})), 200);
    assert_eq!(retried, json!({"requeued": 2, "capped": false}));
    for act in [&a, &b] {
        delivery_of(&api, act["id"].as_str().expect("id"), |d| d["status"] == "delivered");
    }
    let counts = expect(&admin.get(&format!("/admin/api/channels/{id}/delivery-counts")), 200);
    assert_eq!((counts["delivered"].clone(), counts["failed"].clone()), (json!(2), json!(0)));
    assert_error(&admin.get("/admin/api/channels/nope/delivery-counts"), 404, "not_found");
}
