//! Query parameters and ids are read one way only: a parameter the server
//! reads is given once with a value that parses (else 400 `invalid_parameter`
//! naming it), integers are plain digits, and an id is the canonical
//! hyphenated UUID (either case) wherever a client writes one: 404 in a path,
//! 400 in a query, 422 in a body.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::TestServer;
use serde_json::json;

on_both_backends!(present_query_parameters_must_have_one_value_that_parses, ids_are_read_only_in_the_canonical_form);

fn present_query_parameters_must_have_one_value_that_parses(server: &TestServer) {
    let f = Fixture::new(server, "params");
    let c = f.client(server);
    let activities = f.activities_path();
    let on = |base: &str, query: &str| format!("{base}?{query}");
    let refused = [
        (on("/api/v1/channels", "limit="), "limit"),
        (on("/api/v1/channels", "limit"), "limit"),
        (on("/api/v1/channels", "limit=+5"), "limit"),
        (on("/api/v1/channels", "limit=%2B5"), "limit"),
        (on("/api/v1/channels", "limit=-5"), "limit"),
        (on("/api/v1/channels", "limit=1&limit=2"), "limit"),
        (on("/api/v1/channels", "status="), "status"),
        (on("/api/v1/channels", "status=active&status=inactive"), "status"),
        (on("/api/v1/channels", "cursor="), "cursor"),
        (on("/api/v1/conversations", "channel_id="), "channel_id"),
        (on("/api/v1/deliveries", "channel_id="), "channel_id"),
        (on("/api/v1/deliveries", "status="), "status"),
        (on(&activities, "after_seq="), "after_seq"),
        (on(&activities, "after_seq=+1"), "after_seq"),
        (on(&activities, "after_seq=0&after_seq=1"), "after_seq"),
    ];
    for (path, name) in refused {
        let error = assert_error(&c.get(&path), 400, "invalid_parameter");
        assert!(error["message"].as_str().is_some_and(|m| m.contains(&format!("`{name}`"))), "{path}: {error}");
    }
    let admin = Client::admin(server);
    assert_error(&admin.get("/admin/api/tenants?limit="), 400, "invalid_parameter");
    assert_error(&admin.get("/admin/api/channels?tenant_id="), 400, "invalid_parameter");
    // What is well formed still reads, and parameters the server does not read are ignored.
    expect(&c.get("/api/v1/channels?limit=5&status=active&_=&utm=a&utm=b"), 200);
    expect(&c.get(&format!("{activities}?after_seq=0&limit=007")), 200);
    // The socket's parameters follow the same rule, before any upgrade.
    assert_error(&server.get("/socket/websocket?vsn=2.0.0&token=a.b.c&token=d.e.f"), 400, "invalid_parameter");
    assert_error(&server.get("/socket/websocket?vsn=&token=a.b.c"), 400, "invalid_parameter");
}

fn ids_are_read_only_in_the_canonical_form(server: &TestServer) {
    let f = Fixture::new(server, "ids");
    let c = f.client(server);
    let (channel, conversation) = (f.channel_id().to_string(), f.conversation_id().to_string());
    let lenient = |id: &str| [id.replace('-', ""), format!("{{{id}}}"), format!("urn:uuid:{id}")];
    // Either case of the hex digits is the same id.
    expect(&c.get(&format!("/api/v1/channels/{}", channel.to_uppercase())), 200);
    expect(&c.get(&format!("/api/v1/conversations/{}", conversation.to_uppercase())), 200);
    expect(&c.get(&format!("/api/v1/conversations?channel_id={}", channel.to_uppercase())), 200);
    for id in lenient(&conversation) {
        assert_error(&c.get(&format!("/api/v1/conversations/{id}")), 404, "not_found");
        assert_error(&c.get(&format!("/api/v1/conversations/{id}/activities")), 404, "not_found");
        let body = json!({"conversation_id": id, "sender": "a"});
        let error = assert_error(&c.post("/api/v1/tokens", &body), 422, "validation_failed");
        assert_eq!(error["field"], "conversation_id", "{id}");
    }
    for id in lenient(&channel) {
        assert_error(&c.get(&format!("/api/v1/channels/{id}")), 404, "not_found");
        assert_error(&c.get(&format!("/api/v1/conversations?channel_id={id}")), 400, "invalid_parameter");
        assert_error(&c.get(&format!("/api/v1/deliveries?channel_id={id}")), 400, "invalid_parameter");
        let error =
            assert_error(&c.post("/api/v1/conversations", &json!({"channel_id": id})), 422, "validation_failed");
        assert_eq!(error["field"], "channel_id", "{id}");
    }
    let admin = Client::admin(server);
    for id in lenient(&f.tenant.id) {
        assert_error(&admin.get(&format!("/admin/api/tenants/{id}")), 404, "not_found");
        assert_error(&admin.get(&format!("/admin/api/channels?tenant_id={id}")), 400, "invalid_parameter");
    }
    let page = expect(&c.get("/api/v1/channels?limit=1"), 200);
    assert!(page["next_cursor"].is_null(), "one channel: {page}");
    let cursor = channel.replace('-', "");
    assert_error(&c.get(&format!("/api/v1/channels?cursor={cursor}")), 400, "invalid_parameter");
}
