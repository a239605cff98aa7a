use converger_storage::Json;
use serde_json::json;

use super::*;
use crate::adapters::tests::{
    acting_on, activity, body_json, context, delivered_metadata, events, http, request, view, NOW, SECRET,
};
use crate::adapters::wire::hex;
use crate::adapters::ValidateConfig;

fn config() -> Value {
    json!({
        "phone_number_id": "106540352242922",
        "access_token": "EAAG-token",
        "verify_token": "let-me-in",
        "api_base": "http://127.0.0.1:9/graph/",
    })
}

fn signed_config() -> Value {
    let mut c = config();
    c["app_secret"] = json!("It's a Secret to Everybody");
    c
}

/// The inbound message of the Cloud API documentation (INTEROP.md).
const MESSAGE: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
  "messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]}}]}]}"#;

/// Status updates in the same envelope.
const STATUSES: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "statuses":[
    {"id":"wamid.out1","status":"delivered","timestamp":"1749416390","recipient_id":"16505551234"},
    {"id":"wamid.out1","status":"read","timestamp":"1749416400","recipient_id":"16505551234"},
    {"id":"wamid.out2","status":"failed","timestamp":"1749416401","recipient_id":"16505551234",
     "errors":[{"code":131047,"title":"Re-engagement message","error_data":{"details":"More than 24 hours have passed"}}]},
    {"id":"wamid.out3","status":"deleted","timestamp":"1749416402","recipient_id":"16505551234"}]}}]}]}"#;

fn post(body: &str) -> InboundRequest {
    let mut r = request("POST", &[("content-type", "application/json")], body.as_bytes());
    r.path_secret = Some(SECRET.into());
    r
}

fn post_signed(body: &str, secret: &[u8]) -> InboundRequest {
    let sig = format!("sha256={}", hex(&hmac_sha256(secret, &[body.as_bytes()]).finalize().into_bytes()));
    request("POST", &[("X-Hub-Signature-256", &sig)], body.as_bytes())
}

#[test]
fn config_requires_ids_and_tokens_and_names_the_key() {
    assert_eq!(WhatsAppMeta.validate_config(&config()), Ok(()));
    assert_eq!(WhatsAppMeta.validate_config(&signed_config()), Ok(()));
    let field = |patch: Value| {
        let mut c = config();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        WhatsAppMeta.validate_config(&c).expect_err("refused").field
    };
    assert_eq!(field(json!({"phone_number_id": null})), "config.phone_number_id");
    assert_eq!(field(json!({"phone_number_id": "+1 555"})), "config.phone_number_id");
    assert_eq!(field(json!({"phone_number_id": 106540352242922u64})), "config.phone_number_id");
    assert_eq!(field(json!({"access_token": null})), "config.access_token");
    assert_eq!(field(json!({"verify_token": ""})), "config.verify_token");
    assert_eq!(field(json!({"app_secret": 3})), "config.app_secret");
    assert_eq!(field(json!({"api_base": "graph.facebook.com"})), "config.api_base");
    assert_eq!(field(json!({"api_version": "18"})), "config.api_version");
    assert_eq!(field(json!({"token": "x"})), "config.token");
    assert_eq!(WhatsAppMeta.validate_config(&json!({})).map_err(|e| e.field), Err("config.phone_number_id".into()));
}

#[test]
fn a_message_is_sent_as_the_cloud_api_documents() {
    let a = activity("Hello");
    let r = http(WhatsAppMeta.deliver_activity(&context(&config(), &a, Some("16505551234"))));
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "http://127.0.0.1:9/graph/v18.0/106540352242922/messages");
    assert_eq!(r.header("authorization"), Some("Bearer EAAG-token"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        body_json(&r),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"text","text":{"preview_url":false,"body":"Hello"}})
    );
    let mut c = config();
    c.as_object_mut().expect("object").remove("api_base");
    c["api_version"] = json!("v21.0");
    let r = http(WhatsAppMeta.deliver_activity(&context(&c, &a, Some("16505551234"))));
    assert_eq!(r.url, "https://graph.facebook.com/v21.0/106540352242922/messages");
}

#[test]
fn what_whatsapp_cannot_carry_fails_and_what_is_not_for_it_is_skipped() {
    let a = activity("Hello");
    assert_eq!(WhatsAppMeta.deliver_activity(&context(&config(), &a, None)), Err(AdapterError::NoRecipient));
    let mut no_text = activity("x");
    no_text.text = None;
    no_text.attachments = Some(Json::parse(r#"[{"contentType":"image/png"}]"#).expect("json"));
    assert!(matches!(
        WhatsAppMeta.deliver_activity(&context(&config(), &no_text, Some("1"))),
        Err(AdapterError::Unsupported(_))
    ));
    let long = activity(&"é".repeat(MAX_TEXT_CHARS + 1));
    assert!(matches!(
        WhatsAppMeta.deliver_activity(&context(&config(), &long, Some("1"))),
        Err(AdapterError::Unsupported(_))
    ));
    let exactly = activity(&"é".repeat(MAX_TEXT_CHARS));
    assert!(
        WhatsAppMeta.deliver_activity(&context(&config(), &exactly, Some("1"))).is_ok(),
        "the limit counts characters"
    );
    let mut event = activity("x");
    event.kind = "event".into();
    assert_eq!(WhatsAppMeta.deliver_activity(&context(&config(), &event, Some("1"))), Ok(Delivery::Nothing));
    let mut inbound = activity("x");
    inbound.metadata = Json::parse(r#"{"inbound":{"channel_type":"whatsapp_meta"}}"#).expect("json");
    assert_eq!(WhatsAppMeta.deliver_activity(&context(&config(), &inbound, Some("1"))), Ok(Delivery::Nothing));
}

#[test]
fn messages_and_reactions_are_routed_and_nothing_else_is() {
    for kind in ["message", "reaction_add", "reaction_remove"] {
        assert!(WhatsAppMeta.routes(kind), "{kind}");
    }
    for kind in ["edit", "delete", "member_joined", "member_left", "event"] {
        assert!(!WhatsAppMeta.routes(kind), "{kind}");
    }
    assert!(WhatsAppMeta.needs_related() && WhatsAppMeta.contact_receipts());
}

#[test]
fn a_reaction_is_a_reaction_message_on_its_targets_wamid_and_a_removal_has_no_emoji() {
    let (cfg, sent) = (config(), Related::Sent("wamid.TARGET".into()));
    let (missing, none) = (Related::Missing, Related::None);
    let add = acting_on("reaction_add", Some("👍"));
    let mut ctx = context(&cfg, &add, Some("16505551234"));
    ctx.related = &sent;
    let r = http(WhatsAppMeta.deliver_activity(&ctx));
    assert_eq!(r.url, "http://127.0.0.1:9/graph/v18.0/106540352242922/messages");
    assert_eq!(
        body_json(&r),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
               "type": "reaction", "reaction": {"message_id": "wamid.TARGET", "emoji": "👍"}})
    );
    let remove = acting_on("reaction_remove", Some("👍"));
    let mut ctx = context(&cfg, &remove, Some("16505551234"));
    ctx.related = &sent;
    assert_eq!(
        body_json(&http(WhatsAppMeta.deliver_activity(&ctx)))["reaction"],
        json!({"message_id": "wamid.TARGET", "emoji": ""})
    );

    // The target still on its way: later. Never on WhatsApp: a permanent failure.
    ctx.related = &Related::Pending;
    assert!(matches!(WhatsAppMeta.deliver_activity(&ctx), Ok(Delivery::NotYet(_))));
    for missing in [&missing, &none] {
        ctx.related = missing;
        assert!(
            matches!(WhatsAppMeta.deliver_activity(&ctx), Err(AdapterError::Unsupported(e)) if e.contains("no WhatsApp message id"))
        );
    }
    ctx.related = &sent;
    ctx.external_id = None;
    assert_eq!(WhatsAppMeta.deliver_activity(&ctx), Err(AdapterError::NoRecipient));
}

#[test]
fn a_reply_quotes_its_parent_when_whatsapp_knows_it() {
    let mut reply = activity("Yes, in blue.");
    reply.parent_id = Some(acting_on("edit", None).id);
    let cfg = config();
    let mut ctx = context(&cfg, &reply, Some("16505551234"));
    let parent = Related::Sent("wamid.PARENT".into());
    ctx.related = &parent;
    let body = body_json(&http(WhatsAppMeta.deliver_activity(&ctx)));
    assert_eq!(body["context"], json!({"message_id": "wamid.PARENT"}));
    assert_eq!(body["text"]["body"], "Yes, in blue.");
    ctx.related = &Related::Missing;
    let body = body_json(&http(WhatsAppMeta.deliver_activity(&ctx)));
    assert!(body.get("context").is_none(), "unquoted: {body}");
    ctx.related = &Related::Pending;
    assert!(matches!(WhatsAppMeta.deliver_activity(&ctx), Ok(Delivery::NotYet(_))), "waits for its parent");
}

#[test]
fn edits_deletes_and_members_send_nothing_even_with_a_row() {
    // Not routed; a row written before the upgrade is answered without a request.
    for kind in ["edit", "delete", "member_joined"] {
        let a = acting_on(kind, Some("x"));
        assert_eq!(WhatsAppMeta.deliver_activity(&context(&config(), &a, Some("1"))), Ok(Delivery::Nothing), "{kind}");
    }
}

#[test]
fn a_success_keeps_the_wamid_for_status_reports() {
    let body = br#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1"}]}"#;
    let m = delivered_metadata(WhatsAppMeta.interpret_response(200, body));
    assert_eq!(m.get(PROVIDER_MESSAGE_ID), Some(&json!("wamid.HBgLMTY1")));
    assert_eq!(m.get("wa_id"), Some(&json!("16505551234")));
    assert_eq!(m.get("response_status"), Some(&json!(200)));
}

#[test]
fn errors_are_retried_for_throttling_codes_and_5xx_only() {
    let err = |code: i64| {
        format!(
            r#"{{"error":{{"message":"(#{code}) x","type":"OAuthException","code":{code},"error_data":{{"messaging_product":"whatsapp","details":"d"}},"fbtrace_id":"A"}}}}"#
        )
    };
    match WhatsAppMeta.interpret_response(400, err(131047).as_bytes()) {
        ResponseOutcome::Failed { error } => assert_eq!(error, "HTTP 400: code 131047: (#131047) x (d)"),
        other => panic!("{other:?}"),
    }
    for code in [130429, 131056, 80007, 4] {
        assert!(
            matches!(WhatsAppMeta.interpret_response(400, err(code).as_bytes()), ResponseOutcome::Retry { .. }),
            "{code}"
        );
    }
    assert!(matches!(WhatsAppMeta.interpret_response(401, err(190).as_bytes()), ResponseOutcome::Failed { .. }));
    assert!(matches!(WhatsAppMeta.interpret_response(500, err(131000).as_bytes()), ResponseOutcome::Retry { .. }));
    assert!(matches!(WhatsAppMeta.interpret_response(502, b"<html>bad gateway</html>"), ResponseOutcome::Retry { .. }));
}

#[test]
fn get_verification_answers_the_challenge_only_for_the_right_token() {
    let get = |q: &str| {
        let mut r = request("GET", &[], b"");
        r.query = Some(q.into());
        WhatsAppMeta.parse_inbound(&r, &view(&config()), NOW)
    };
    assert_eq!(
        get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=let-me-in"),
        Ok(Inbound::Challenge("1158201444".into()))
    );
    assert_eq!(
        get("hub.mode=subscribe&hub.challenge=1&hub.verify_token=let%2Dme%2Din"),
        Ok(Inbound::Challenge("1".into()))
    );
    assert!(matches!(
        get("hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong"),
        Err(InboundError::Forbidden(_))
    ));
    assert!(matches!(
        get("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=let-me-in"),
        Err(InboundError::BadRequest(_))
    ));
    assert!(matches!(get("hub.mode=subscribe&hub.verify_token=let-me-in"), Err(InboundError::BadRequest(_))));
    assert!(matches!(get(""), Err(InboundError::BadRequest(_))));
}

#[test]
fn the_documented_message_becomes_a_message_keyed_by_its_wamid() {
    let e = events(WhatsAppMeta.parse_inbound(&post(MESSAGE), &view(&config()), NOW));
    assert_eq!((e.messages.len(), e.statuses.len(), e.ignored), (1, 0, 0));
    let m = &e.messages[0];
    assert_eq!((m.external_id.as_str(), m.sender.as_str()), ("16505551234", "16505551234"));
    assert_eq!(m.message_id, "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_eq!((m.kind.as_str(), m.text.as_deref()), ("message", Some("Does it come in another color?")));
    assert_eq!(
        m.metadata,
        json!({"inbound": {"channel_type": "whatsapp_meta", "message_id": m.message_id, "type": "text",
            "profile_name": "Sheena Nelson", "timestamp": "1749416383"}})
    );
}

#[test]
fn non_text_messages_become_events_carrying_the_whole_payload() {
    let body = MESSAGE.replace(
        r#""type":"text","text":{"body":"Does it come in another color?"}"#,
        r#""type":"image","image":{"id":"media-1","mime_type":"image/jpeg"}"#,
    );
    let e = events(WhatsAppMeta.parse_inbound(&post(&body), &view(&config()), NOW));
    let m = &e.messages[0];
    assert_eq!((m.kind.as_str(), m.text.as_deref()), ("event", None));
    assert_eq!(m.metadata["inbound"]["payload"]["image"]["id"], "media-1");
}

#[test]
fn statuses_are_normalised_and_unknown_ones_skipped() {
    let e = events(WhatsAppMeta.parse_inbound(&post(STATUSES), &view(&config()), NOW));
    assert!(e.messages.is_empty());
    assert_eq!(e.ignored, 1, "the `deleted` status");
    let got: Vec<(&str, &str)> = e.statuses.iter().map(|s| (s.provider_message_id.as_str(), s.status)).collect();
    assert_eq!(got, [("wamid.out1", "delivered"), ("wamid.out1", "read"), ("wamid.out2", "failed")]);
    assert_eq!(e.statuses[1].at, Some(unix_seconds(1749416400)));
    assert_eq!(e.statuses[2].error.as_deref(), Some("131047: Re-engagement message (More than 24 hours have passed)"));
    assert_eq!(e.statuses[0].error, None);
}

#[test]
fn changes_for_another_number_or_field_are_skipped() {
    let other = MESSAGE.replace(r#""phone_number_id":"106540352242922""#, r#""phone_number_id":"999""#);
    let e = events(WhatsAppMeta.parse_inbound(&post(&other), &view(&config()), NOW));
    assert_eq!((e.messages.len(), e.ignored), (0, 1));
    let template = MESSAGE.replace(r#""field":"messages""#, r#""field":"message_template_status_update""#);
    let e = events(WhatsAppMeta.parse_inbound(&post(&template), &view(&config()), NOW));
    assert_eq!((e.messages.len(), e.ignored), (0, 1));
}

#[test]
fn with_an_app_secret_the_hub_signature_is_required() {
    let v = signed_config();
    let secret = b"It's a Secret to Everybody";
    let e = events(WhatsAppMeta.parse_inbound(&post_signed(MESSAGE, secret), &view(&v), NOW));
    assert_eq!(e.messages.len(), 1);
    // The published vector (GitHub signs the same way).
    let r = request(
        "POST",
        &[("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")],
        b"Hello, World!",
    );
    assert_eq!(check_signature(&r, "It's a Secret to Everybody"), Ok(()));
    let upper = request(
        "POST",
        &[("X-Hub-Signature-256", "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17")],
        b"Hello, World!",
    );
    assert_eq!(check_signature(&upper, "It's a Secret to Everybody"), Ok(()));
    for (name, r) in [
        ("wrong secret", post_signed(MESSAGE, b"another secret")),
        ("other body", {
            let mut r = post_signed(MESSAGE, secret);
            r.body.push(b' ');
            r
        }),
        ("no header, even with the channel secret", post(MESSAGE)),
        ("not hex", request("POST", &[("X-Hub-Signature-256", "sha256=zz")], MESSAGE.as_bytes())),
        ("no prefix", request("POST", &[("X-Hub-Signature-256", "757107ea")], MESSAGE.as_bytes())),
    ] {
        let e = WhatsAppMeta.parse_inbound(&r, &view(&v), NOW).expect_err(name);
        assert!(matches!(e, InboundError::Unauthorized(_)), "{name}: {e}");
    }
}

#[test]
fn without_an_app_secret_the_channel_secret_is_required() {
    let v = config();
    let mut header = request("POST", &[("X-Converger-Secret", SECRET)], MESSAGE.as_bytes());
    assert_eq!(events(WhatsAppMeta.parse_inbound(&header, &view(&v), NOW)).messages.len(), 1);
    header.headers[0].1 = "cvs_wrong".into();
    let unauthorized = |r: &InboundRequest| {
        matches!(WhatsAppMeta.parse_inbound(r, &view(&v), NOW), Err(InboundError::Unauthorized(_)))
    };
    assert!(unauthorized(&header));
    let bare = request("POST", &[], MESSAGE.as_bytes());
    assert!(unauthorized(&bare));
    let mut wrong_path = post(MESSAGE);
    wrong_path.path_secret = Some("cvs_wrong".into());
    assert!(unauthorized(&wrong_path));
}

#[test]
fn malformed_webhooks_are_400_or_422_naming_the_path() {
    let parse = |body: &str| WhatsAppMeta.parse_inbound(&post(body), &view(&config()), NOW).expect_err(body);
    assert!(matches!(parse("{not json"), InboundError::BadRequest(_)));
    let field = |body: &str| match parse(body) {
        InboundError::Invalid { field, .. } => field,
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(field(r#"{"entry":[]}"#), "object");
    assert_eq!(field(r#"{"object":"page","entry":[]}"#), "object");
    assert_eq!(field(r#"{"object":"whatsapp_business_account","entry":{}}"#), "entry");
    assert_eq!(field(r#"{"object":"whatsapp_business_account","entry":[1]}"#), "entry[0]");
    assert_eq!(
        field(r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}"#),
        "entry[0].changes[0].value"
    );
    let no_from = MESSAGE.replace(r#""from":"16505551234","#, "");
    assert_eq!(field(&no_from), "entry[0].changes[0].value.messages[0].from");
    let no_text = MESSAGE.replace(r#","text":{"body":"Does it come in another color?"}"#, "");
    assert_eq!(field(&no_text), "entry[0].changes[0].value.messages[0].text");
    let long_id = MESSAGE.replace("wamid.HBgL", &"x".repeat(300));
    assert_eq!(field(&long_id), "entry[0].changes[0].value.messages[0].id");
    let e =
        events(WhatsAppMeta.parse_inbound(&post(r#"{"object":"whatsapp_business_account"}"#), &view(&config()), NOW));
    assert_eq!(e, Events::default(), "no entries, nothing to do");
}

#[test]
fn other_methods_are_405() {
    let e = WhatsAppMeta.parse_inbound(&request("PUT", &[], b""), &view(&config()), NOW).expect_err("PUT");
    assert_eq!(e, InboundError::MethodNotAllowed { method: "PUT".into(), allow: "GET, POST" });
}
