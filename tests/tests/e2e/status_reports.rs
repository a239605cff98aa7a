//! Provider status reports against the real server: a WhatsApp message is
//! sent to a local stand-in for the provider's API (the outbound request is
//! checked as the provider documents it), the send's answer records the
//! provider's message id in the delivery's metadata, and a later status
//! webhook naming that id updates the delivery's metadata. Reports naming no
//! delivery of the channel are acknowledged and counted as unmatched.

use std::time::Duration;

use converger_e2e::api::{create_tenant, delivery_of, expect, Client};
use converger_e2e::receiver::{Receiver, Recorded};
use converger_e2e::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const CUSTOMER: &str = "16505551234";
const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "It's a Secret to Everybody";

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A conversation with `external_id` on `channel`, created over REST; its activities path.
fn conversation(api: &Client, channel: &Value, external_id: &str) -> String {
    let conv = json!({"channel_id": channel["id"], "external_id": external_id});
    let conv = expect(&api.post("/api/v1/conversations", &conv), 201);
    assert_eq!(conv["external_id"], external_id);
    format!("/api/v1/conversations/{}/activities", conv["id"].as_str().expect("id"))
}

/// The only request the receiver got, once it came.
fn the_request(receiver: &Receiver) -> Recorded {
    let got = receiver.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "sent exactly once: {got:?}");
    got[0].clone()
}

fn meta_status_webhook(phone_number_id: &str, statuses: Value) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
        "statuses": statuses}}]}]})
    .to_string()
}

/// Posts a Meta webhook signed with `app_secret`; the `accepted` summary.
fn post_meta(server: &TestServer, channel: &Value, app_secret: &str, body: &str) -> Value {
    let path = format!("/api/v1/channels/{}/inbound", channel["id"].as_str().expect("id"));
    let signature = format!("sha256={}", hmac_hex(app_secret.as_bytes(), body.as_bytes()));
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    let r = server.request("POST", &path, &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["accepted"].clone()
}

on_both_backends!(a_whatsapp_meta_status_webhook_updates_the_delivery_it_names);

fn a_whatsapp_meta_status_webhook_updates_the_delivery_it_names(server: &TestServer) {
    let graph = Receiver::start(
        vec![200],
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.TEST1"}]}"#,
    );
    let tenant = create_tenant(server, "meta-status");
    let api = Client::bearer(server, &tenant.api_key);
    let config = json!({
        "phone_number_id": PHONE_NUMBER_ID, "access_token": "EAAG-test", "verify_token": "let-me-in",
        "app_secret": APP_SECRET, "api_base": graph.url(""),
    });
    let meta = json!({"name": "meta", "type": "whatsapp_meta", "config": config});
    let meta = expect(&api.post("/api/v1/channels", &meta), 201);
    let path = conversation(&api, &meta, CUSTOMER);
    let a = expect(&api.post(&path, &json!({"sender": "agent", "text": "Yes, it comes in blue."})), 201);
    let activity_id = a["id"].as_str().expect("id");

    // The worker records the outcome and the answer's metadata side by side: wait for both.
    let d = delivery_of(&api, activity_id, |d| {
        d["status"] == "delivered" && d["metadata"]["provider_message_id"].is_string()
    });
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["metadata"], json!({"provider_message_id": "wamid.TEST1", "wa_id": CUSTOMER, "response_status": 200}));

    // The send, as the Graph API documents it.
    let sent = the_request(&graph);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v18.0/106540352242922/messages"));
    assert_eq!(sent.header("authorization"), Some("Bearer EAAG-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "text",
               "text": {"preview_url": false, "body": "Yes, it comes in blue."}})
    );

    // `read`, and a report on a message Converger never sent.
    let statuses = json!([
        {"id": "wamid.TEST1", "status": "read", "timestamp": "1749416400", "recipient_id": CUSTOMER},
        {"id": "wamid.SOMEONE-ELSES", "status": "delivered", "timestamp": "1749416401", "recipient_id": CUSTOMER},
    ]);
    let accepted = post_meta(server, &meta, APP_SECRET, &meta_status_webhook(PHONE_NUMBER_ID, statuses));
    assert_eq!(accepted, json!({"created": 0, "replayed": 0, "statuses_applied": 1, "statuses_unmatched": 1}));
    let d = delivery_of(&api, activity_id, |d| d["metadata"]["provider_status"] == "read");
    assert_eq!(
        d["metadata"],
        json!({"provider_message_id": "wamid.TEST1", "wa_id": CUSTOMER, "response_status": 200, "provider_status": "read",
               "status_read_at": "2025-06-08T21:00:00.000000Z"})
    );
    assert_eq!((d["status"].as_str(), &d["attempts"]), (Some("delivered"), &json!(1)), "the queue state stays");

    // A late `delivered` (reports may come out of order): the latest received
    // is `provider_status`, and each status keeps its own time.
    let late =
        json!([{"id": "wamid.TEST1", "status": "delivered", "timestamp": "1749416390", "recipient_id": CUSTOMER}]);
    let accepted = post_meta(server, &meta, APP_SECRET, &meta_status_webhook(PHONE_NUMBER_ID, late));
    assert_eq!((&accepted["statuses_applied"], &accepted["statuses_unmatched"]), (&json!(1), &json!(0)));
    let d = delivery_of(&api, activity_id, |d| d["metadata"]["provider_status"] == "delivered");
    assert_eq!(d["metadata"]["status_read_at"], "2025-06-08T21:00:00.000000Z");
    assert_eq!(d["metadata"]["status_delivered_at"], "2025-06-08T20:59:50.000000Z");

    // The same wamid reported to another channel (another phone number of
    // the tenant) names no delivery there: the report is not applied.
    let other_config = json!({
        "phone_number_id": "999", "access_token": "EAAG-other", "verify_token": "v",
        "app_secret": "other secret", "api_base": graph.url(""),
    });
    let other = json!({"name": "meta2", "type": "whatsapp_meta", "config": other_config});
    let other = expect(&api.post("/api/v1/channels", &other), 201);
    let failed = json!([{"id": "wamid.TEST1", "status": "failed", "timestamp": "1749416500", "recipient_id": CUSTOMER,
                         "errors": [{"code": 131047, "title": "Re-engagement message"}]}]);
    let accepted = post_meta(server, &other, "other secret", &meta_status_webhook("999", failed));
    assert_eq!((&accepted["statuses_applied"], &accepted["statuses_unmatched"]), (&json!(0), &json!(1)));
    let d = delivery_of(&api, activity_id, |_| true);
    assert_eq!(d["metadata"]["provider_status"], "delivered", "another channel's report changed nothing");
    assert!(d["metadata"].get("provider_error").is_none(), "{}", d["metadata"]);
    assert_eq!(graph.requests().len(), 1, "reports send nothing");
}

on_both_backends!(an_infobip_delivery_report_updates_the_delivery_it_names);

fn an_infobip_delivery_report_updates_the_delivery_it_names(server: &TestServer) {
    // Infobip answers with the messageId it was sent (Converger sends the delivery id).
    let infobip = Receiver::start_with(vec![200], |req| {
        let sent = req.json();
        json!({"to": sent["to"], "messageCount": 1, "messageId": sent["messageId"],
               "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE",
                          "description": "Message sent to next instance"}})
        .to_string()
    });
    let tenant = create_tenant(server, "infobip-status");
    let api = Client::bearer(server, &tenant.api_key);
    let config = json!({"api_key": "ib-key", "sender": "441134960000", "base_url": infobip.url(""),
                        "notify_url": "https://hub.example/reports"});
    let ib = json!({"name": "ib", "type": "whatsapp_infobip", "config": config});
    let ib = expect(&api.post("/api/v1/channels", &ib), 201);
    let (channel_id, secret) = (ib["id"].as_str().expect("id"), ib["secret"].as_str().expect("secret"));
    let path = conversation(&api, &ib, "441134960001");
    let a = expect(&api.post(&path, &json!({"sender": "agent", "text": "Some text"})), 201);
    let activity_id = a["id"].as_str().expect("id");

    // The worker records the outcome and the answer's metadata side by side: wait for both.
    let d = delivery_of(&api, activity_id, |d| {
        d["status"] == "delivered" && d["metadata"]["provider_message_id"].is_string()
    });
    let delivery_id = d["id"].as_str().expect("id").to_string();
    assert_eq!(
        d["metadata"],
        json!({"provider_message_id": delivery_id, "provider_status_detail": "PENDING_ENROUTE", "response_status": 200})
    );

    // The send, as Infobip documents it: messageId and callbackData are the delivery id.
    let sent = the_request(&infobip);
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/whatsapp/1/message/text"));
    assert_eq!(sent.header("authorization"), Some("App ib-key"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("accept"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({"from": "441134960000", "to": "441134960001", "messageId": delivery_id,
               "content": {"text": "Some text"}, "callbackData": delivery_id,
               "notifyUrl": "https://hub.example/reports"})
    );

    let report = json!({"results": [{
        "bulkId": null, "messageId": delivery_id, "to": "441134960001",
        "sentAt": "2019-07-19T11:23:26.998+0000", "doneAt": "2019-07-19T11:23:27.105+0000",
        "messageCount": 1, "callbackData": delivery_id,
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET",
                   "description": "Message delivered to handset"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error",
                  "permanent": false}}]})
    .to_string();
    let json_only = [("content-type", "application/json")];
    let inbound = format!("/api/v1/channels/{channel_id}/inbound");

    // Without the channel secret nothing is applied.
    let refused = server.request("POST", &inbound, &json_only, report.as_bytes());
    assert_eq!(refused.status, 401, "{}", refused.text());
    let d = delivery_of(&api, activity_id, |_| true);
    assert!(d["metadata"].get("provider_status").is_none(), "{}", d["metadata"]);

    let r = server.request("POST", &format!("{inbound}/{secret}"), &json_only, report.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["accepted"],
        json!({"created": 0, "replayed": 0, "statuses_applied": 1, "statuses_unmatched": 0})
    );
    let d = delivery_of(&api, activity_id, |d| d["metadata"]["provider_status"] == "delivered");
    assert_eq!(
        d["metadata"],
        json!({"provider_message_id": delivery_id, "response_status": 200, "provider_status": "delivered",
               "provider_status_detail": "DELIVERED_TO_HANDSET",
               "status_delivered_at": "2019-07-19T11:23:27.105000Z"})
    );

    // A seen report, and one for a message this channel never sent.
    let seen = json!({"results": [
        {"messageId": delivery_id, "from": "441134960001", "to": "441134960000",
         "sentAt": "2019-07-19T11:23:26.998+0000", "seenAt": "2019-07-19T11:25:00.000+0000"},
        {"messageId": "not-ours", "from": "441134960001", "to": "441134960000",
         "sentAt": "2019-07-19T11:23:26.998+0000", "seenAt": "2019-07-19T11:25:00.000+0000"}]})
    .to_string();
    let headers = [("content-type", "application/json"), ("x-converger-secret", secret)];
    let r = server.request("POST", &inbound, &headers, seen.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (&r.json()["accepted"]["statuses_applied"], &r.json()["accepted"]["statuses_unmatched"]),
        (&json!(1), &json!(1))
    );
    let d = delivery_of(&api, activity_id, |d| d["metadata"]["provider_status"] == "read");
    assert_eq!(d["metadata"]["status_read_at"], "2019-07-19T11:25:00.000000Z");
    assert_eq!(d["metadata"]["status_delivered_at"], "2019-07-19T11:23:27.105000Z");
    assert_eq!(d["status"], "delivered");
    assert_eq!(infobip.requests().len(), 1, "reports send nothing");
}
