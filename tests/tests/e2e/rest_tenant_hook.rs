//! A tenant's default pre-publish hook (`PATCH /api/v1/tenant` with
//! `config.pre_publish`): called for conversations whose channel has no hook
//! of its own, never instead of a channel's own; publishes ready together
//! (a broadcast) share a call per channel; removing it stops the calls.

use std::time::Duration;

use converger_e2e::api::{assert_error, expect, Client};
use converger_e2e::http::Reply;
use converger_e2e::receiver::Receiver;
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(a_tenant_default_hook_stands_in_for_a_channel_without_one, tenant_config_is_checked_field_by_field);

fn channel(client: &Client, config: Value) -> String {
    let c = expect(&client.post("/api/v1/channels", &json!({"name": "c", "type": "websocket", "config": config})), 201);
    c["id"].as_str().expect("id").to_string()
}

fn conversation(client: &Client, channel: &str) -> String {
    let c = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel})), 201);
    c["id"].as_str().expect("id").to_string()
}

fn publish(client: &Client, conversation: &str, text: &str) -> Reply {
    client.post(&format!("/api/v1/conversations/{conversation}/activities"), &json!({"sender": "u", "text": text}))
}

fn a_tenant_default_hook_stands_in_for_a_channel_without_one(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "tenant-hook");
    let client = Client::bearer(server, &tenant.api_key);
    let default = Receiver::pre_publish_hook(Duration::ZERO);
    let own = Receiver::pre_publish_hook(Duration::ZERO);
    let plain = channel(&client, json!({}));
    let hooked = channel(&client, json!({"pre_publish": {"url": own.url("/own")}}));
    let (a, b, c) = (conversation(&client, &plain), conversation(&client, &plain), conversation(&client, &plain));
    let d = conversation(&client, &hooked);

    assert_eq!(expect(&client.get("/api/v1/tenant"), 200)["config"], json!({}));
    expect(&publish(&client, &a, "bad"), 201);
    assert!(default.requests().is_empty(), "no default hook yet");

    let config = json!({"pre_publish": {"url": default.url("/default"), "timeout_ms": 2000}});
    let set = expect(&client.patch("/api/v1/tenant", &json!({"config": config})), 200);
    assert_eq!(set["config"]["pre_publish"]["url"], default.url("/default"));
    assert_eq!(expect(&client.get("/api/v1/tenant"), 200)["config"], set["config"]);

    // Channels without a hook: the tenant's.
    let refused = assert_error(&publish(&client, &a, "bad"), 422, "rejected_by_hook");
    assert_eq!(refused["message"], "no bad words");
    assert_eq!(expect(&publish(&client, &b, "rude"), 201)["text"], "[polite]");
    assert_eq!(default.requests().len(), 2);
    // A channel's own hook is its, never the tenant's.
    assert_error(&publish(&client, &d, "bad"), 422, "rejected_by_hook");
    assert_eq!((own.requests().len(), default.requests().len()), (1, 2));

    // A broadcast's publishes of one channel are ready together: each shard
    // owning some of them asks the hook once, for all of its items.
    let body = json!({"conversation_ids": [a, b, c], "activity": {"sender": "bot", "text": "to all"}});
    let results = expect(&client.post("/api/v1/broadcast", &body), 200)["results"].clone();
    assert!(results.as_array().expect("results").iter().all(|r| r["status"] == 201), "{results}");
    let calls: Vec<Value> = default.requests()[2..].iter().map(|r| r.json()).collect();
    let items: usize = calls.iter().map(|c| c["data"]["items"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(items, 3, "each broadcast publish asked once");
    assert!(calls.len() <= 2, "at most one call per owner shard (2 shards): {} calls", calls.len());
    for call in &calls {
        assert_eq!(call["data"]["channel_id"], plain);
    }

    let page = server.get("/metrics").text();
    assert!(page.contains("converger_pre_publish_items_total{outcome=\"rejected\"}"), "the hook's counter");
    assert!(page.contains("converger_pre_publish_seconds_count"), "the hook's latency");

    // Removed: publishes go straight on again.
    expect(&client.patch("/api/v1/tenant", &json!({"config": {}})), 200);
    expect(&publish(&client, &a, "bad"), 201);
    assert_eq!(default.requests().len(), 2 + calls.len(), "no call once removed");
}

fn tenant_config_is_checked_field_by_field(server: &TestServer) {
    let tenant = converger_e2e::api::create_tenant(server, "tenant-config");
    let client = Client::bearer(server, &tenant.api_key);
    let field = |body: Value| {
        let e = assert_error(&client.patch("/api/v1/tenant", &body), 422, "validation_failed");
        e["field"].as_str().map(str::to_owned).unwrap_or_else(|| e.to_string())
    };
    assert_eq!(field(json!({})), "config");
    assert_eq!(field(json!({"name": "mine"})), "name");
    assert_eq!(field(json!({"config": {"colour": "red"}})), "config.colour");
    assert_eq!(field(json!({"config": {"pre_publish": {}}})), "config.pre_publish.url");
    assert_eq!(field(json!({"config": {"pre_publish": {"url": "ftp://x"}}})), "config.pre_publish.url");
    assert_eq!(
        field(json!({"config": {"pre_publish": {"url": "http://127.0.0.1:9/h", "timeout_ms": 0}}})),
        "config.pre_publish.timeout_ms"
    );
    assert_eq!(
        field(json!({"config": {"pre_publish": {"url": "http://127.0.0.1:9/h", "on_failure": "maybe"}}})),
        "config.pre_publish.on_failure"
    );
    // A client token is not the tenant.
    assert_error(&Client::anonymous(server).get("/api/v1/tenant"), 401, "unauthorized");
}
