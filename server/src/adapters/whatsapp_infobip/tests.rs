use converger_storage::Json;
use serde_json::json;

use super::*;
use crate::adapters::tests::{
    activity, body_json, context, delivered_metadata, events, http, request, view, NOW, SECRET,
};
use crate::adapters::ValidateConfig;

fn config() -> Value {
    json!({"base_url": "http://127.0.0.1:9/ib/", "api_key": "ib-key", "sender": "441134960000"})
}

/// The inbound message of Infobip's documentation (INTEROP.md).
const MESSAGE: &str = r#"{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP","receivedAt":"2019-07-19T11:23:26.998+0000",
  "messageId":"ABEGOFl3VCVlAhBvNcOVb_kbH3ibbjFjAaQg","message":{"type":"TEXT","text":"Support hello"},"contact":{"name":"Frank"}}],
 "messageCount":1,"pendingMessageCount":0}"#;

/// Delivery reports: delivered, undeliverable, and a group a delivery does not track.
const REPORTS: &str = r#"{"results":[
  {"messageId":"0190f0f0-0000-7000-8000-00000000de11","to":"385919998888","sentAt":"2019-07-19T11:23:27.000+0000","doneAt":"2019-07-19T11:23:29.500+0000",
   "status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},
   "error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","description":"No Error","permanent":false}},
  {"messageId":"m2","to":"385919998888","doneAt":"2019-07-19T11:24:00.000+0000",
   "status":{"groupId":2,"groupName":"UNDELIVERABLE","id":9,"name":"UNDELIVERABLE_NOT_DELIVERED","description":"Message sent not delivered"},
   "error":{"groupId":1,"groupName":"HANDSET_ERRORS","id":7001,"name":"EC_OUTSIDE_SESSION","description":"Outside the 24 hour window","permanent":true}},
  {"messageId":"m3","status":{"groupName":"SOMETHING_NEW","name":"X"}},
  {"messageId":"m4","to":"385919998888","sentAt":"2019-07-19T11:23:27.000+0000","seenAt":"2019-07-19T11:30:00.000+0000"}]}"#;

fn post(body: &str) -> InboundRequest {
    request("POST", &[("X-Converger-Secret", SECRET)], body.as_bytes())
}

#[test]
fn config_requires_a_key_and_a_sender_and_names_the_key() {
    assert_eq!(WhatsAppInfobip.validate_config(&config()), Ok(()));
    assert_eq!(
        WhatsAppInfobip
            .validate_config(&json!({"api_key": "k", "sender": "1", "notify_url": "https://me.example/dlr"})),
        Ok(())
    );
    let field = |v: Value| WhatsAppInfobip.validate_config(&v).expect_err("refused").field;
    assert_eq!(field(json!({"sender": "1"})), "config.api_key");
    assert_eq!(field(json!({"api_key": "k"})), "config.sender");
    assert_eq!(field(json!({"api_key": "k", "sender": "+44 113"})), "config.sender");
    assert_eq!(field(json!({"api_key": "k", "sender": "1", "base_url": "api.infobip.com"})), "config.base_url");
    assert_eq!(field(json!({"api_key": "k", "sender": "1", "notify_url": 1})), "config.notify_url");
    assert_eq!(field(json!({"api_key": "k", "sender": "1", "apikey": "k"})), "config.apikey");
}

#[test]
fn a_message_is_sent_as_infobip_documents_with_the_delivery_id_as_message_id() {
    let a = activity("Some text");
    let r = http(WhatsAppInfobip.deliver_activity(&context(&config(), &a, Some("441134960001"))));
    assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "http://127.0.0.1:9/ib/whatsapp/1/message/text"));
    assert_eq!(r.header("authorization"), Some("App ib-key"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        body_json(&r),
        json!({"from": "441134960000", "to": "441134960001", "messageId": "0190f0f0-0000-7000-8000-00000000de11",
            "content": {"text": "Some text"}, "callbackData": "0190f0f0-0000-7000-8000-00000000de11"})
    );
    let c = json!({"api_key": "k", "sender": "1", "notify_url": "https://me.example/dlr"});
    let r = http(WhatsAppInfobip.deliver_activity(&context(&c, &a, Some("2"))));
    assert_eq!(r.url, "https://api.infobip.com/whatsapp/1/message/text");
    assert_eq!(body_json(&r)["notifyUrl"], "https://me.example/dlr");
}

#[test]
fn no_recipient_or_no_text_fails_and_inbound_activities_are_skipped() {
    let a = activity("x");
    assert_eq!(WhatsAppInfobip.deliver_activity(&context(&config(), &a, None)), Err(AdapterError::NoRecipient));
    let mut empty = activity("  ");
    assert!(matches!(
        WhatsAppInfobip.deliver_activity(&context(&config(), &empty, Some("1"))),
        Err(AdapterError::Unsupported(_))
    ));
    empty.metadata = Json::parse(r#"{"inbound":{"channel_type":"whatsapp_infobip"}}"#).expect("json");
    assert_eq!(WhatsAppInfobip.deliver_activity(&context(&config(), &empty, Some("1"))), Ok(Delivery::Nothing));
}

#[test]
fn answers_keep_the_message_id_and_refusals_say_why() {
    let ok = br#"{"to":"441134960001","messageCount":1,"messageId":"0190f0f0-0000-7000-8000-00000000de11",
        "status":{"groupId":1,"groupName":"PENDING","id":7,"name":"PENDING_ENROUTE","description":"Message sent to next instance"}}"#;
    let m = delivered_metadata(WhatsAppInfobip.interpret_response(200, ok));
    assert_eq!(m.get(PROVIDER_MESSAGE_ID), Some(&json!("0190f0f0-0000-7000-8000-00000000de11")));
    assert_eq!(m.get("provider_status_detail"), Some(&json!("PENDING_ENROUTE")));
    let rejected = br#"{"messageId":"x","status":{"groupName":"REJECTED","name":"REJECTED_DESTINATION","description":"Invalid destination"}}"#;
    assert_eq!(
        WhatsAppInfobip.interpret_response(200, rejected),
        ResponseOutcome::Failed { error: "rejected by Infobip: Invalid destination".into() }
    );
    let unauthorized =
        br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
    assert_eq!(
        WhatsAppInfobip.interpret_response(401, unauthorized),
        ResponseOutcome::Failed { error: "HTTP 401: UNAUTHORIZED: Invalid login details".into() }
    );
    let limited =
        br#"{"requestError":{"serviceException":{"messageId":"TOO_MANY_REQUESTS","text":"Too many requests"}}}"#;
    assert!(matches!(WhatsAppInfobip.interpret_response(429, limited), ResponseOutcome::Retry { .. }));
    assert!(matches!(WhatsAppInfobip.interpret_response(503, b""), ResponseOutcome::Retry { .. }));
}

#[test]
fn the_documented_message_becomes_a_message_keyed_by_its_message_id() {
    let e = events(WhatsAppInfobip.parse_inbound(&post(MESSAGE), &view(&config()), NOW));
    assert_eq!((e.messages.len(), e.statuses.len()), (1, 0));
    let m = &e.messages[0];
    assert_eq!((m.external_id.as_str(), m.sender.as_str()), ("385919998888", "385919998888"));
    assert_eq!(m.message_id, "ABEGOFl3VCVlAhBvNcOVb_kbH3ibbjFjAaQg");
    assert_eq!((m.kind.as_str(), m.text.as_deref()), ("message", Some("Support hello")));
    assert_eq!(
        m.metadata,
        json!({"inbound": {"channel_type": "whatsapp_infobip", "message_id": m.message_id, "type": "TEXT",
            "profile_name": "Frank", "received_at": "2019-07-19T11:23:26.998+0000", "to": "1234"}})
    );
    let image =
        MESSAGE.replace(r#"{"type":"TEXT","text":"Support hello"}"#, r#"{"type":"IMAGE","url":"https://x/y.jpg"}"#);
    let e = events(WhatsAppInfobip.parse_inbound(&post(&image), &view(&config()), NOW));
    assert_eq!((e.messages[0].kind.as_str(), e.messages[0].text.as_deref()), ("event", None));
    assert_eq!(e.messages[0].metadata["inbound"]["payload"]["message"]["url"], "https://x/y.jpg");
}

#[test]
fn delivery_and_seen_reports_become_normalised_statuses() {
    let e = events(WhatsAppInfobip.parse_inbound(&post(REPORTS), &view(&config()), NOW));
    assert_eq!((e.messages.len(), e.ignored), (0, 1));
    let got: Vec<(&str, &str)> = e.statuses.iter().map(|s| (s.provider_message_id.as_str(), s.status)).collect();
    assert_eq!(got, [("0190f0f0-0000-7000-8000-00000000de11", "delivered"), ("m2", "failed"), ("m4", "read")]);
    let delivered = &e.statuses[0];
    assert_eq!(delivered.at, Timestamp::parse_rfc3339("2019-07-19T11:23:29.500Z"));
    assert_eq!((delivered.error.as_deref(), delivered.detail.as_deref()), (None, Some("DELIVERED_TO_HANDSET")));
    assert_eq!(e.statuses[1].error.as_deref(), Some("EC_OUTSIDE_SESSION: Outside the 24 hour window"));
    assert_eq!(e.statuses[2].at, Timestamp::parse_rfc3339("2019-07-19T11:30:00Z"));
}

#[test]
fn the_channel_secret_is_required_in_the_path_or_the_header() {
    let v = config();
    let mut in_path = request("POST", &[], MESSAGE.as_bytes());
    in_path.path_secret = Some(SECRET.into());
    assert_eq!(events(WhatsAppInfobip.parse_inbound(&in_path, &view(&v), NOW)).messages.len(), 1);
    let bare = request("POST", &[], MESSAGE.as_bytes());
    let wrong = request("POST", &[("x-converger-secret", "cvs_nope")], MESSAGE.as_bytes());
    let mut wrong_path = post(MESSAGE);
    wrong_path.path_secret = Some(format!("{SECRET}x"));
    for (name, r) in [("no secret", bare), ("wrong header", wrong), ("wrong path wins over a right header", wrong_path)]
    {
        let e = WhatsAppInfobip.parse_inbound(&r, &view(&v), NOW).expect_err(name);
        assert!(matches!(e, InboundError::Unauthorized(_)), "{name}: {e}");
    }
    // Checked before the body is parsed.
    let e = WhatsAppInfobip.parse_inbound(&request("POST", &[], b"junk"), &view(&v), NOW).expect_err("junk");
    assert!(matches!(e, InboundError::Unauthorized(_)), "{e}");
}

#[test]
fn malformed_payloads_are_400_or_422_naming_the_path() {
    let parse = |body: &str| WhatsAppInfobip.parse_inbound(&post(body), &view(&config()), NOW).expect_err(body);
    assert!(matches!(parse("<xml/>"), InboundError::BadRequest(_)));
    let field = |body: &str| match parse(body) {
        InboundError::Invalid { field, .. } => field,
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(field("{}"), "results");
    assert_eq!(field(r#"{"results":{}}"#), "results");
    assert_eq!(field(r#"{"results":["x"]}"#), "results[0]");
    assert_eq!(field(r#"{"results":[{"messageId":"m"}]}"#), "results[0]");
    assert_eq!(field(r#"{"results":[{"messageId":"m","message":{"type":"TEXT","text":"t"}}]}"#), "results[0].from");
    assert_eq!(
        field(r#"{"results":[{"from":"1","messageId":"m","message":{"type":"TEXT"}}]}"#),
        "results[0].message.text"
    );
    assert_eq!(field(r#"{"results":[{"from":"1","messageId":"m","message":"hi"}]}"#), "results[0].message");
    assert_eq!(field(r#"{"results":[{"messageId":"m","status":{"name":"X"}}]}"#), "results[0].status.groupName");
    assert_eq!(
        WhatsAppInfobip.parse_inbound(&request("GET", &[], b""), &view(&config()), NOW),
        Err(InboundError::MethodNotAllowed { method: "GET".into(), allow: "POST" })
    );
}

#[test]
fn infobip_times_with_a_colonless_offset_parse() {
    assert_eq!(parse_time("2019-07-19T11:23:26.998+0000"), Timestamp::parse_rfc3339("2019-07-19T11:23:26.998Z"));
    assert_eq!(parse_time("2019-07-19T13:23:26.998+0200"), Timestamp::parse_rfc3339("2019-07-19T11:23:26.998Z"));
    assert_eq!(parse_time("2019-07-19T11:23:26Z"), Timestamp::parse_rfc3339("2019-07-19T11:23:26Z"));
    assert_eq!(parse_time("yesterday"), None);
}

#[test]
fn only_messages_are_routed_and_a_reply_goes_as_plain_text() {
    assert!(WhatsAppInfobip.routes("message"));
    for kind in ["reaction_add", "reaction_remove", "edit", "delete", "member_joined", "member_left", "event"] {
        assert!(!WhatsAppInfobip.routes(kind), "{kind}");
    }
    assert!(!WhatsAppInfobip.needs_related() && WhatsAppInfobip.contact_receipts());
    let mut reply = activity("Sure.");
    reply.parent_id = Some(reply.id);
    let body = body_json(&http(WhatsAppInfobip.deliver_activity(&context(&config(), &reply, Some("441134960001")))));
    assert_eq!(body["content"], json!({"text": "Sure."}));
}
