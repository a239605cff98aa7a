use converger_storage::Json;
use serde_json::json;

use super::*;
use crate::adapters::standard_webhooks::{parse_whsec, whsec};
use crate::adapters::tests::{acting_on, activity, body_json, context, events, http, request, view, NOW, SECRET};
use crate::adapters::{ResponseOutcome, ValidateConfig};

fn config() -> Value {
    json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Tenant": "acme"}})
}

#[test]
fn config_needs_a_url_and_names_every_bad_key() {
    assert_eq!(Webhook.validate_config(&config()), Ok(()));
    assert_eq!(Webhook.validate_config(&json!({"url": "https://h.example/x", "method": "PUT"})), Ok(()));
    let field = |v: Value| Webhook.validate_config(&v).expect_err("refused").field;
    assert_eq!(field(json!({})), "config.url");
    assert_eq!(field(json!({"url": "ftp://h.example"})), "config.url");
    assert_eq!(field(json!({"url": 5})), "config.url");
    assert_eq!(field(json!({"url": "https://h.example", "method": "GET"})), "config.method");
    assert_eq!(field(json!({"url": "https://h.example", "headers": []})), "config.headers");
    assert_eq!(field(json!({"url": "https://h.example", "headers": {"X-A": 1}})), "config.headers.X-A");
    assert_eq!(field(json!({"url": "https://h.example", "headers": {"bad name": "v"}})), "config.headers.bad name");
    assert_eq!(
        field(json!({"url": "https://h.example", "headers": {"Webhook-Signature": "v"}})),
        "config.headers.Webhook-Signature"
    );
    assert_eq!(field(json!({"url": "https://h.example", "headers": {"X-A": "a\r\nB: c"}})), "config.headers.X-A");
    assert_eq!(field(json!({"url": "https://h.example", "secret": "x"})), "config.secret");
}

#[test]
fn an_activity_goes_out_as_signed_json_with_the_configured_method_and_headers() {
    let a = activity("hello");
    let cfg = json!({"url": "http://127.0.0.1:9/hook", "method": "PUT", "headers": {"X-Tenant": "acme"}});
    let r = http(Webhook.deliver_activity(&context(&cfg, &a, Some("ext-1"))));
    assert_eq!((r.method.as_str(), r.url.as_str()), ("PUT", "http://127.0.0.1:9/hook"));
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-type", "X-Tenant", "webhook-id", "webhook-timestamp", "webhook-signature"]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-tenant"), Some("acme"));
    assert_eq!(r.header("webhook-id"), Some("msg_0190f0f0-0000-7000-8000-00000000de11"));
    assert_eq!(r.header("webhook-timestamp"), Some("1749416400"));
    let body = body_json(&r);
    assert_eq!(body["type"], "activity.created");
    assert_eq!(body["timestamp"], "2025-06-08T21:00:00.000000Z");
    assert_eq!(body["data"]["channel_id"], "0190f0f0-0000-7000-8000-00000000c4a1");
    assert_eq!(body["data"]["conversation_id"], a.conversation_id.to_string());
    assert_eq!(body["data"]["external_id"], "ext-1");
    let sent = &body["data"]["activity"];
    assert_eq!(
        (sent["id"].clone(), sent["seq"].clone(), sent["type"].clone()),
        (json!(a.id.to_string()), json!(7), json!("message"))
    );
    assert_eq!(
        (sent["text"].clone(), sent["sender"].clone(), sent["metadata"].clone()),
        (json!("hello"), json!("agent-1"), json!({}))
    );
    // A receiver holding only the whsec_ key verifies it, as the standard libraries would.
    let key = parse_whsec(&whsec(&channel_key(SECRET))).expect("b64");
    assert_eq!(standard_webhooks::verify(&key, &r.headers, &r.body, NOW + 10), Ok(()));
    // …and the signature is over these exact bytes.
    let mut tampered = r.body.clone();
    tampered.push(b' ');
    assert!(standard_webhooks::verify(&key, &r.headers, &tampered, NOW).is_err());
}

#[test]
fn the_default_method_is_post_and_a_retry_keeps_the_webhook_id() {
    let a = activity("x");
    let cfg = json!({"url": "https://h.example/in"});
    let first = http(Webhook.deliver_activity(&context(&cfg, &a, None)));
    let mut later = context(&cfg, &a, None);
    later.attempt = 3;
    later.now = NOW + 90;
    let retry = http(Webhook.deliver_activity(&later));
    assert_eq!(first.method, "POST");
    assert_eq!(first.header("webhook-id"), retry.header("webhook-id"));
    assert_ne!(first.header("webhook-timestamp"), retry.header("webhook-timestamp"));
    assert_eq!(body_json(&first)["data"]["external_id"], Value::Null);
}

#[test]
fn each_lifecycle_kind_is_its_own_event_naming_its_message_without_its_content() {
    assert!(Webhook.routes("edit") && Webhook.routes("member_left") && Webhook.routes("event"));
    let cases = [
        ("edit", Some("new text"), "message.edited"),
        ("delete", None, "message.deleted"),
        ("reaction_add", Some("👍"), "reaction.added"),
        ("reaction_remove", Some("👍"), "reaction.removed"),
    ];
    for (kind, text, event) in cases {
        let a = acting_on(kind, text);
        let body = body_json(&http(Webhook.deliver_activity(&context(&config(), &a, None))));
        assert_eq!(body["type"], event, "{kind}");
        let sent = &body["data"]["activity"];
        assert_eq!((&sent["type"], &sent["target_id"]), (&json!(kind), &json!(activity("").id.to_string())));
        assert_eq!(sent["text"], json!(text), "{kind}: only its own text (the new text, the emoji)");
        assert!(sent.get("reactions").is_none() && sent.get("deleted").is_none(), "{kind}: no message state: {sent}");
    }
    let mut joined = activity("");
    (joined.kind, joined.text) = ("member_joined".into(), None);
    joined.metadata = Json::parse(r#"{"role":"agent","metadata":{}}"#).expect("json");
    let body = body_json(&http(Webhook.deliver_activity(&context(&config(), &joined, None))));
    assert_eq!(
        (&body["type"], &body["data"]["activity"]["metadata"]["role"]),
        (&json!("member.joined"), &json!("agent"))
    );
    joined.kind = "member_left".into();
    assert_eq!(body_json(&http(Webhook.deliver_activity(&context(&config(), &joined, None))))["type"], "member.left");
    let mut event = activity("");
    event.kind = "event".into();
    assert_eq!(
        body_json(&http(Webhook.deliver_activity(&context(&config(), &event, None))))["type"],
        "activity.created"
    );
}

#[test]
fn inbound_activities_are_not_sent_back() {
    let mut a = activity("x");
    a.metadata = Json::parse(r#"{"inbound":{"channel_type":"webhook","message_id":"msg_1"}}"#).expect("json");
    assert_eq!(Webhook.deliver_activity(&context(&config(), &a, None)), Ok(Delivery::Nothing));
}

#[test]
fn answers_are_classified_by_status() {
    let ok = Webhook.interpret_response(204, b"");
    assert_eq!(
        ok,
        ResponseOutcome::Delivered { metadata: [("response_status".to_string(), json!(204))].into_iter().collect() }
    );
    assert!(
        matches!(Webhook.interpret_response(503, b"down"), ResponseOutcome::Retry { error } if error == "HTTP 503: down")
    );
    assert!(matches!(Webhook.interpret_response(429, b""), ResponseOutcome::Retry { error } if error == "HTTP 429"));
    assert!(matches!(Webhook.interpret_response(410, b"gone"), ResponseOutcome::Failed { .. }));
}

/// An inbound request signed with the channel's key at `ts`.
fn signed(body: &str, id: &str, ts: i64) -> InboundRequest {
    let hs = standard_webhooks::headers(&channel_key(SECRET), id, ts, body.as_bytes());
    let hs: Vec<(&str, &str)> = hs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut r = request("POST", &hs, body.as_bytes());
    r.headers.push(("Content-Type".into(), "application/json".into()));
    r
}

#[test]
fn a_signed_inbound_message_becomes_one_message_keyed_by_webhook_id() {
    let body = r#"{"external_id":"cust-42","sender":"crm","text":"Order shipped","metadata":{"order":"A1"}}"#;
    let e = events(Webhook.parse_inbound(&signed(body, "msg_abc", NOW - 60), &view(&config()), NOW));
    assert_eq!(e.messages.len(), 1);
    assert!(e.statuses.is_empty());
    let m = &e.messages[0];
    assert_eq!((m.external_id.as_str(), m.message_id.as_str(), m.sender.as_str()), ("cust-42", "msg_abc", "crm"));
    assert_eq!((m.kind.as_str(), m.text.as_deref()), ("message", Some("Order shipped")));
    assert_eq!(m.metadata, json!({"order": "A1", "inbound": {"channel_type": "webhook", "message_id": "msg_abc"}}));
    let event = r#"{"external_id":"c","sender":"s","type":"event","metadata":{"k":1}}"#;
    let e = events(Webhook.parse_inbound(&signed(event, "msg_e", NOW), &view(&config()), NOW));
    assert_eq!((e.messages[0].kind.as_str(), e.messages[0].text.as_deref()), ("event", None));
}

#[test]
fn a_bad_stale_or_missing_signature_is_401() {
    let body = r#"{"external_id":"c","sender":"s","text":"t"}"#;
    let v = config();
    let mut wrong_key = signed(body, "msg_1", NOW);
    let other = standard_webhooks::sign(&channel_key("cvs_other"), "msg_1", NOW, body.as_bytes());
    wrong_key.headers.iter_mut().filter(|(n, _)| n == "webhook-signature").for_each(|(_, s)| *s = other.clone());
    let stale = signed(body, "msg_1", NOW - 301);
    let mut unsigned = signed(body, "msg_1", NOW);
    unsigned.headers.retain(|(n, _)| n != "webhook-signature");
    let mut changed = signed(body, "msg_1", NOW);
    changed.body = br#"{"external_id":"c","sender":"s","text":"T"}"#.to_vec();
    for (name, r) in [("wrong key", wrong_key), ("stale", stale), ("unsigned", unsigned), ("changed", changed)] {
        let e = Webhook.parse_inbound(&r, &view(&v), NOW).expect_err(name);
        assert!(matches!(e, InboundError::Unauthorized(_)), "{name}: {e}");
    }
    // Not even the body's syntax is looked at before the signature.
    let e = Webhook.parse_inbound(&request("POST", &[], b"not json"), &view(&v), NOW).expect_err("unsigned");
    assert!(matches!(e, InboundError::Unauthorized(_)), "{e}");
}

#[test]
fn a_signed_but_malformed_body_is_400_or_422_naming_the_field() {
    let v = config();
    let parse = |body: &str| Webhook.parse_inbound(&signed(body, "msg_1", NOW), &view(&v), NOW).expect_err(body);
    assert!(matches!(parse("not json"), InboundError::BadRequest(_)));
    for (body, field) in [
        ("[1]", "body"),
        (r#"{"sender":"s","text":"t"}"#, "external_id"),
        (r#"{"external_id":"c","text":"t"}"#, "sender"),
        (r#"{"external_id":"c","sender":"s"}"#, "text"),
        (r#"{"external_id":"c","sender":"s","text":""}"#, "text"),
        (r#"{"external_id":1,"sender":"s","text":"t"}"#, "external_id"),
        (r#"{"external_id":"c","sender":"s","text":"t","type":"typing"}"#, "type"),
        (r#"{"external_id":"c","sender":"s","text":"t","metadata":[]}"#, "metadata"),
        (r#"{"external_id":"c","sender":"s","text":"t","colour":"red"}"#, "colour"),
        (&format!(r#"{{"external_id":"{}","sender":"s","text":"t"}}"#, "x".repeat(256)), "external_id"),
    ] {
        match parse(body) {
            InboundError::Invalid { field: f, .. } => assert_eq!(f, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn only_post_is_accepted() {
    let e = Webhook.parse_inbound(&request("GET", &[], b""), &view(&config()), NOW).expect_err("GET");
    assert_eq!(e, InboundError::MethodNotAllowed { method: "GET".into(), allow: "POST" });
    assert_eq!(e.to_string(), "method GET is not accepted here (allowed: POST)");
}

/// Stored JSON is copied into the body as stored: an activity written before
/// strict JSON (a number no double holds) is sent, not a panic in the attempt.
#[test]
fn stored_json_is_sent_as_stored_without_being_reparsed() {
    let mut a = activity("hello");
    a.metadata = Json::parse(r#"{"big":1e999}"#).expect("syntactically JSON");
    let r = http(Webhook.deliver_activity(&context(&config(), &a, None)));
    assert!(String::from_utf8_lossy(&r.body).contains(r#""metadata":{"big":1e999}"#));
}
