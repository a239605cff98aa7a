//! Inbound webhooks against the real server: a tenant's signed webhook, the
//! WhatsApp Meta fixture (GET verification, X-Hub-Signature-256) and the
//! Infobip fixture (channel secret). Each message becomes one activity in the
//! conversation found by its external_id; a repeat writes nothing; a bad
//! signature, a malformed body or an inactive channel create nothing.

use base64::Engine;
use converger_e2e::api::{assert_error, create_tenant, expect, Client};
use converger_e2e::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn channel(api: &Client, kind: &str, config: Value) -> Value {
    expect(&api.post("/api/v1/channels", &json!({"name": kind, "type": kind, "config": config})), 201)
}

/// The conversation of `external_id` on `channel`, with its activities.
fn activities_of(api: &Client, channel: &Value, external_id: &str) -> Vec<Value> {
    let list =
        expect(&api.get(&format!("/api/v1/conversations?channel_id={}", channel["id"].as_str().expect("id"))), 200);
    let Some(conv) = list["data"].as_array().expect("data").iter().find(|c| c["external_id"] == external_id) else {
        return Vec::new();
    };
    let acts = expect(&api.get(&format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"))), 200);
    acts["data"].as_array().expect("data").clone()
}

#[test]
fn a_signed_webhook_creates_one_activity_and_a_repeat_or_a_forgery_creates_none() {
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "inbound");
    let api = Client::bearer(&server, &tenant.api_key);
    let hook = channel(&api, "webhook", json!({"url": "http://127.0.0.1:9/out"}));
    let path = format!("/api/v1/channels/{}/inbound", hook["id"].as_str().expect("id"));
    let key = hmac(hook["secret"].as_str().expect("secret").as_bytes(), b"converger-webhook-signing-v1");
    let body = json!({"external_id": "crm-42", "sender": "customer", "text": "hello from outside"}).to_string();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs().to_string();
    let sign = |id: &str, body: &str, key: &[u8]| {
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac(key, format!("{id}.{ts}.{body}").as_bytes()));
        format!("v1,{sig}")
    };
    let post = |id: &str, signature: &str, body: &str| {
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature),
        ];
        server.request("POST", &path, &headers, body.as_bytes())
    };

    let forged = post("msg_1", &sign("msg_1", &body, b"not the key"), &body);
    assert_eq!(forged.status, 401, "{}", forged.text());
    assert!(activities_of(&api, &hook, "crm-42").is_empty(), "a forgery creates nothing");

    let ok = post("msg_1", &sign("msg_1", &body, &key), &body);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["accepted"]["created"], 1);
    let again = post("msg_1", &sign("msg_1", &body, &key), &body);
    assert_eq!(again.json()["accepted"]["replayed"], 1, "the same webhook-id writes nothing new");
    let acts = activities_of(&api, &hook, "crm-42");
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!((acts[0]["sender"].as_str(), acts[0]["text"].as_str()), (Some("customer"), Some("hello from outside")));
    let deliveries =
        expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", acts[0]["id"].as_str().expect("id"))), 200);
    assert_eq!(deliveries["data"].as_array().map(Vec::len), Some(0), "not delivered back to the channel it came from");

    let garbage = "{not json";
    let bad = post("msg_2", &sign("msg_2", garbage, &key), garbage);
    assert_eq!(bad.status, 400, "{}", bad.text());
    // Like every 422, a refused shape names its field.
    let shapeless = json!({"sender": "x"}).to_string();
    let refused = assert_error(&post("msg_3", &sign("msg_3", &shapeless, &key), &shapeless), 422, "validation_failed");
    assert_eq!(refused["field"], "text", "{refused}");
    let typo = json!({"external_id": "crm-42", "sender": "x", "text": "t", "metdata": {}}).to_string();
    let refused = assert_error(&post("msg_5", &sign("msg_5", &typo, &key), &typo), 422, "validation_failed");
    assert_eq!(refused["field"], "metdata", "{refused}");

    let patch = json!({"status": "inactive"});
    expect(&api.patch(&format!("/api/v1/channels/{}", hook["id"].as_str().expect("id")), &patch), 200);
    let body2 = json!({"external_id": "crm-42", "sender": "customer", "text": "while off"}).to_string();
    assert_error(&post("msg_4", &sign("msg_4", &body2, &key), &body2), 403, "channel_inactive");
    assert_eq!(activities_of(&api, &hook, "crm-42").len(), 1);
}

#[test]
fn whatsapp_meta_verifies_the_subscription_and_turns_messages_into_activities() {
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "meta");
    let api = Client::bearer(&server, &tenant.api_key);
    let config = json!({
        "phone_number_id": "106540352242922", "access_token": "EAAG-test", "verify_token": "let-me-in",
        "app_secret": "It's a Secret to Everybody", "api_base": "http://127.0.0.1:9"
    });
    let meta = channel(&api, "whatsapp_meta", config);
    let path = format!("/api/v1/channels/{}/inbound", meta["id"].as_str().expect("id"));

    let verify = server.get(&format!("{path}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=let-me-in"));
    assert_eq!((verify.status, verify.text().as_str()), (200, "1158201444"));
    let wrong = server.get(&format!("{path}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope"));
    assert_eq!(wrong.status, 403);

    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [{"from": "16505551234", "id": "wamid.HBgL-1", "timestamp": "1749416383", "type": "text",
                      "text": {"body": "Does it come in another color?"}}]}}]}]})
    .to_string();
    let signature = format!("sha256={}", hex(&hmac(b"It's a Secret to Everybody", body.as_bytes())));
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    let r = server.request("POST", &path, &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let acts = activities_of(&api, &meta, "16505551234");
    // The contact became a member just before their first message (docs/webhooks.md "Contacts as members").
    let kinds: Vec<&Value> = acts.iter().map(|a| &a["type"]).collect();
    assert_eq!(kinds, [&json!("member_joined"), &json!("message")]);
    assert_eq!(acts[1]["text"], "Does it come in another color?");

    let bad = [("content-type", "application/json"), ("x-hub-signature-256", "sha256=00")];
    assert_eq!(server.request("POST", &path, &bad, body.as_bytes()).status, 401);
    assert_eq!(activities_of(&api, &meta, "16505551234").len(), 2);
}

#[test]
fn infobip_results_are_accepted_with_the_channel_secret_only() {
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "infobip");
    let api = Client::bearer(&server, &tenant.api_key);
    let config = json!({"api_key": "ib-key", "sender": "441134960000", "base_url": "http://127.0.0.1:9"});
    let ib = channel(&api, "whatsapp_infobip", config);
    let (id, secret) = (ib["id"].as_str().expect("id"), ib["secret"].as_str().expect("secret"));
    let body = json!({"results": [{"from": "385919998888", "to": "1234", "integrationType": "WHATSAPP",
        "receivedAt": "2019-07-19T11:23:26.998+0000", "messageId": "ABEGOFl3-1",
        "message": {"type": "TEXT", "text": "Support hello"}, "contact": {"name": "Frank"}}],
        "messageCount": 1, "pendingMessageCount": 0})
    .to_string();
    let json_only = [("content-type", "application/json")];
    let path = format!("/api/v1/channels/{id}/inbound");
    assert_eq!(server.request("POST", &path, &json_only, body.as_bytes()).status, 401, "no secret, no entry");
    let with_secret = format!("{path}/{secret}");
    let r = server.request("POST", &with_secret, &json_only, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let acts = activities_of(&api, &ib, "385919998888");
    let kinds: Vec<&Value> = acts.iter().map(|a| &a["type"]).collect();
    assert_eq!(kinds, [&json!("member_joined"), &json!("message")], "the contact joins before their first message");
    assert_eq!(acts[1]["text"], "Support hello");
    let shapeless = json!({"results": [{"from": "385919998888", "messageId": "ABEGOFl3-2"}]}).to_string();
    let refused =
        assert_error(&server.request("POST", &with_secret, &json_only, shapeless.as_bytes()), 422, "validation_failed");
    assert_eq!(refused["field"], "results[0]", "neither a message nor a report: {refused}");
}

#[test]
fn get_is_405_with_allow_on_types_that_take_post_only_and_head_verifies_like_get() {
    let server = TestServer::embedded();
    let tenant = create_tenant(&server, "inbound-methods");
    let api = Client::bearer(&server, &tenant.api_key);
    let hook = channel(&api, "webhook", json!({"url": "http://127.0.0.1:9/out"}));
    let ib =
        channel(&api, "whatsapp_infobip", json!({"api_key": "k", "sender": "1", "base_url": "http://127.0.0.1:9"}));
    for (c, suffix) in [(&hook, String::new()), (&ib, format!("/{}", ib["secret"].as_str().expect("secret")))] {
        let path = format!("/api/v1/channels/{}/inbound{suffix}", c["id"].as_str().expect("id"));
        let r = server.get(&path);
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("POST"), "{path}: {:?}", r.headers);
    }
    let config =
        json!({"phone_number_id": "1", "access_token": "t", "verify_token": "v", "api_base": "http://127.0.0.1:9"});
    let meta = channel(&api, "whatsapp_meta", config);
    let path = format!(
        "/api/v1/channels/{}/inbound?hub.mode=subscribe&hub.challenge=77&hub.verify_token=v",
        meta["id"].as_str().expect("id")
    );
    let head = server.request("HEAD", &path, &[], b"");
    assert_eq!(head.status, 200, "HEAD answers like GET: {:?}", head.headers);
    assert_eq!(head.header("content-length"), Some("2"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
