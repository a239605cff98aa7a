//! The delivery queue as clients see it: an activity on a channel whose adapter
//! delivers gets its delivery row in the same write (pending until a worker
//! takes it); one on a channel that does not deliver (websocket) gets none.

use converger_e2e::api::{create_tenant, expect, Client};
use converger_e2e::TestServer;
use serde_json::json;

on_both_backends!(an_activity_on_a_delivering_channel_is_queued_for_it_in_the_same_write);

fn an_activity_on_a_delivering_channel_is_queued_for_it_in_the_same_write(server: &TestServer) {
    let tenant = create_tenant(server, "routes");
    let api = Client::bearer(server, &tenant.api_key);
    let hook = json!({"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}});
    let hook = expect(&api.post("/api/v1/channels", &hook), 201);
    let ws = expect(&api.post("/api/v1/channels", &json!({"name": "ws", "type": "websocket"})), 201);
    for (channel, queued) in [(&hook, 1), (&ws, 0)] {
        let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
        let path = format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"));
        for i in 0..3 {
            let a = expect(&api.post(&path, &json!({"sender": "u", "text": format!("{i}")})), 201);
            let list =
                expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", a["id"].as_str().expect("id"))), 200);
            let rows = list["data"].as_array().expect("data");
            assert_eq!(rows.len(), queued, "{} channel: {list}", channel["type"]);
            if let Some(d) = rows.first() {
                assert_eq!((&d["channel_id"], d["status"].as_str()), (&channel["id"], Some("pending")));
            }
        }
    }
}
