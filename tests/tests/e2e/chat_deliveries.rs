//! The message lifecycle on delivering channels (docs/webhooks.md): on a
//! webhook, each edit, delete, reaction and member change is an event of its
//! own, and a delete carries nothing of the message it deletes; a delete
//! cancels what was not sent yet and nothing erased goes out afterwards. On
//! WhatsApp (Meta), reactions become reaction messages on the target's
//! wamid and a reply quotes its parent, while edits, deletes and member
//! changes get no delivery row at all. The WhatsApp contact is a member of
//! their conversation, and the provider's delivered / read reports are their
//! receipts. Every provider is a local recording server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use converger_e2e::api::{create_tenant, delivery_of, expect, Client};
use converger_e2e::phoenix;
use converger_e2e::receiver::{Receiver, Recorded};
use converger_e2e::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const CUSTOMER: &str = "16505551234";
const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "It's a Secret to Everybody";
const CANCELLED: &str = "cancelled: the message was deleted before it was delivered";

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

/// The deliveries of one activity.
fn deliveries(api: &Client, activity: &Value) -> Vec<Value> {
    let list = expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", id(activity))), 200);
    list["data"].as_array().expect("data").clone()
}

/// A webhook channel to `url` and a conversation on it: (conversation id, activities path).
fn webhook_conversation(api: &Client, url: &str) -> (String, String) {
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": url}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let conv = id(&conv).to_string();
    let path = format!("/api/v1/conversations/{conv}/activities");
    (conv, path)
}

/// The bodies received, in the order of the activities' seqs (attempts run concurrently).
fn by_seq(got: &[Recorded]) -> Vec<Value> {
    let mut bodies: Vec<Value> = got.iter().map(Recorded::json).collect();
    bodies.sort_by_key(|b| b["data"]["activity"]["seq"].as_i64());
    bodies
}

on_both_backends!(each_lifecycle_activity_reaches_a_webhook_as_its_own_event_and_a_delete_carries_no_content);

fn each_lifecycle_activity_reaches_a_webhook_as_its_own_event_and_a_delete_carries_no_content(server: &TestServer) {
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(server, "hook-lifecycle");
    let api = Client::bearer(server, &tenant.api_key);
    let (conv, path) = webhook_conversation(&api, &receiver.url("/hook"));
    let m = expect(&api.post(&path, &json!({"sender": "alice", "text": "the original words"})), 201);
    let target = id(&m);
    let act = |body: Value| expect(&api.post(&path, &body), 201);
    act(json!({"type": "edit", "sender": "alice", "target_id": target, "text": "the edited words"}));
    act(json!({"type": "reaction_add", "sender": "bob", "target_id": target, "text": "👍"}));
    act(json!({"type": "reaction_remove", "sender": "bob", "target_id": target, "text": "👍"}));
    let members = format!("/api/v1/conversations/{conv}/members");
    expect(&api.post(&members, &json!({"sender": "carol", "role": "agent"})), 201);
    let left = api.send("DELETE", &format!("{members}/carol"), &[], None);
    assert!(left.status < 300, "{}", left.text());
    let got = receiver.wait_for(6, Duration::from_secs(10));
    assert_eq!(got.len(), 6, "one event each: {got:?}");
    // The delete only once everything before it went out: what it cancels is the next test's.
    let delete = act(json!({"type": "delete", "sender": "alice", "target_id": target}));
    let got = receiver.wait_for(7, Duration::from_secs(10));
    assert_eq!(got.len(), 7);

    let bodies = by_seq(&got);
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().expect("type")).collect();
    assert_eq!(
        types,
        [
            "activity.created",
            "message.edited",
            "reaction.added",
            "reaction.removed",
            "member.joined",
            "member.left",
            "message.deleted"
        ]
    );
    let kinds: Vec<&str> = bodies.iter().map(|b| b["data"]["activity"]["type"].as_str().expect("type")).collect();
    assert_eq!(kinds, ["message", "edit", "reaction_add", "reaction_remove", "member_joined", "member_left", "delete"]);
    for b in &bodies[1..4] {
        assert_eq!(b["data"]["activity"]["target_id"], target, "{b}");
    }
    assert_eq!(bodies[1]["data"]["activity"]["text"], "the edited words");
    assert_eq!(bodies[2]["data"]["activity"]["text"], "👍");
    assert_eq!(bodies[4]["data"]["activity"]["sender"], "carol");
    assert_eq!(bodies[4]["data"]["activity"]["metadata"]["role"], "agent");

    let deleted = &bodies[6];
    assert_eq!(deleted["data"]["activity"]["id"], delete["id"]);
    assert_eq!(deleted["data"]["activity"]["target_id"], target);
    assert_eq!(deleted["data"]["conversation_id"], conv.as_str());
    let raw = String::from_utf8_lossy(&got.iter().find(|r| r.json()["type"] == "message.deleted").expect("it").body)
        .to_string();
    assert!(!raw.contains("words"), "the delete carries nothing of the message: {raw}");
    assert!(deleted["data"]["activity"].get("text").is_none_or(Value::is_null), "{deleted}");
    let d = delivery_of(&api, id(&delete), |d| d["status"] == "delivered");
    assert_eq!(d["attempts"], 1);
}

on_both_backends!(a_delete_cancels_the_deliveries_not_sent_yet_and_nothing_erased_goes_out);

fn a_delete_cancels_the_deliveries_not_sent_yet_and_nothing_erased_goes_out(server: &TestServer) {
    // Nothing listens where the channel points at first: the message and its
    // edit fail their first attempt without reaching anyone, and wait for the
    // next (10 s later by default) while the delete lands.
    let receiver = Receiver::start(vec![200], "{}");
    let tenant = create_tenant(server, "hook-cancel");
    let api = Client::bearer(server, &tenant.api_key);
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:1/nobody"}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", id(&conv));
    let doomed = expect(&api.post(&path, &json!({"sender": "alice", "text": "never seen"})), 201);
    let edit = json!({"type": "edit", "sender": "alice", "target_id": id(&doomed), "text": "never seen either"});
    let edit = expect(&api.post(&path, &edit), 201);
    for waiting in [&doomed, &edit] {
        // Claimed is attempts 1 too: wait for the attempt's outcome.
        let d = delivery_of(&api, id(waiting), |d| d["attempts"] == 1 && d["last_error"].is_string());
        assert_eq!(d["status"], "pending", "{d}");
        assert!(d["last_error"].as_str().is_some_and(|e| e.starts_with("network")), "{d}");
    }
    let to_receiver = json!({"config": {"url": receiver.url("/hook")}});
    expect(&api.patch(&format!("/api/v1/channels/{}", id(&channel)), &to_receiver), 200);
    let delete = json!({"type": "delete", "sender": "alice", "target_id": id(&doomed)});
    let delete = expect(&api.post(&path, &delete), 201);

    for cancelled in [&doomed, &edit] {
        let d = delivery_of(&api, id(cancelled), |_| true);
        assert_eq!((d["status"].as_str(), d["last_error"].as_str()), (Some("failed"), Some(CANCELLED)), "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
    }
    delivery_of(&api, id(&delete), |d| d["status"] == "delivered");
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["type"], "message.deleted");

    // An admin putting a cancelled delivery back in the queue sends nothing
    // either: the attempt finds the message erased and cancels it again.
    let d = delivery_of(&api, id(&doomed), |_| true);
    let admin = Client::admin(server);
    let retried = expect(&admin.post(&format!("/admin/api/deliveries/{}/retry", id(&d)), &json!({})), 200);
    assert_eq!(retried["status"], "pending");
    let d = delivery_of(&api, id(&doomed), |d| d["status"] != "pending");
    assert_eq!((d["status"].as_str(), d["last_error"].as_str()), (Some("failed"), Some(CANCELLED)), "{d}");
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "nothing more was sent: {got:?}");
    for r in &got {
        let raw = String::from_utf8_lossy(&r.body);
        assert!(!raw.contains("never seen"), "nothing erased is sent: {raw}");
    }
    let log = server.stderr();
    for error in ["delivery failed for good", "delivery outcome not recorded", "attempt panicked"] {
        assert!(!log.contains(error), "a cancellation is no error: {log}");
    }
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn meta_webhook(value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

/// Posts a signed Meta webhook; the `accepted` summary.
fn post_meta(server: &TestServer, channel: &Value, body: &str) -> Value {
    let path = format!("/api/v1/channels/{}/inbound", id(channel));
    let signature = format!("sha256={}", hmac_hex(APP_SECRET.as_bytes(), body.as_bytes()));
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    let r = server.request("POST", &path, &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["accepted"].clone()
}

fn customer_message(wamid: &str, text: &str) -> String {
    meta_webhook(json!({
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
        "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": "1749416383", "type": "text", "text": {"body": text}}],
    }))
}

fn status(wamid: &str, status: &str) -> String {
    meta_webhook(
        json!({"statuses": [{"id": wamid, "status": status, "timestamp": "1749416400", "recipient_id": CUSTOMER}]}),
    )
}

/// A Graph API stand-in answering each send with the next `wamid.OUT<n>`, and a Meta channel on it.
fn graph_and_channel(api: &Client) -> (Receiver, Value) {
    let n = AtomicUsize::new(0);
    let graph = Receiver::start_with(vec![200], move |_| {
        let k = n.fetch_add(1, Ordering::SeqCst) + 1;
        json!({"messaging_product": "whatsapp", "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
               "messages": [{"id": format!("wamid.OUT{k}")}]})
        .to_string()
    });
    let config = json!({"phone_number_id": PHONE_NUMBER_ID, "access_token": "EAAG-test", "verify_token": "v",
                        "app_secret": APP_SECRET, "api_base": graph.url("")});
    let channel = json!({"name": "meta", "type": "whatsapp_meta", "config": config});
    (graph, expect(&api.post("/api/v1/channels", &channel), 201))
}

fn the_sends(graph: &Receiver, n: usize) -> Vec<Value> {
    let got = graph.wait_for(n, Duration::from_secs(10));
    assert_eq!(got.len(), n, "{got:?}");
    got.iter().map(Recorded::json).collect()
}

on_both_backends!(on_whatsapp_reactions_are_reaction_messages_replies_quote_and_edits_deletes_members_are_not_routed);

fn on_whatsapp_reactions_are_reaction_messages_replies_quote_and_edits_deletes_members_are_not_routed(
    server: &TestServer,
) {
    let tenant = create_tenant(server, "meta-lifecycle");
    let api = Client::bearer(server, &tenant.api_key);
    let (graph, meta) = graph_and_channel(&api);

    // The customer writes first: the conversation, the contact as its member, the message.
    let accepted = post_meta(server, &meta, &customer_message("wamid.IN1", "Does it come in blue?"));
    assert_eq!(accepted["created"], 1);
    let convs = expect(&api.get(&format!("/api/v1/conversations?channel_id={}", id(&meta))), 200);
    let conv = id(&convs["data"][0]).to_string();
    let path = format!("/api/v1/conversations/{conv}/activities");
    let log = expect(&api.get(&path), 200)["data"].as_array().expect("data").clone();
    let kinds: Vec<&str> = log.iter().map(|a| a["type"].as_str().expect("type")).collect();
    assert_eq!(kinds, ["member_joined", "message"], "the contact joins just before their first message");
    assert_eq!((log[0]["sender"].as_str(), log[0]["metadata"]["role"].as_str()), (Some(CUSTOMER), Some("contact")));
    let question = log[1].clone();
    let member = expect(&api.get(&format!("/api/v1/conversations/{conv}/members/{CUSTOMER}")), 200);
    assert_eq!(member["metadata"], json!({"profile_name": "Sheena Nelson"}));

    // A reply quotes the customer's message.
    let reply = json!({"sender": "agent", "text": "Yes, it does.", "parent_id": id(&question)});
    let reply = expect(&api.post(&path, &reply), 201);
    delivery_of(&api, id(&reply), |d| d["metadata"]["provider_message_id"] == "wamid.OUT1");
    // Reactions on the customer's message: a reaction message, then its removal.
    let thumbs = json!({"type": "reaction_add", "sender": "agent", "target_id": id(&question), "text": "👍"});
    let thumbs = expect(&api.post(&path, &thumbs), 201);
    delivery_of(&api, id(&thumbs), |d| d["status"] == "delivered");
    let undo = json!({"type": "reaction_remove", "sender": "agent", "target_id": id(&question), "text": "👍"});
    let undo = expect(&api.post(&path, &undo), 201);
    delivery_of(&api, id(&undo), |d| d["status"] == "delivered");
    // A reaction on the agent's own reply names the wamid its delivery recorded.
    let heart = json!({"type": "reaction_add", "sender": "agent", "target_id": id(&reply), "text": "❤️"});
    let heart = expect(&api.post(&path, &heart), 201);
    delivery_of(&api, id(&heart), |d| d["status"] == "delivered");

    // Edits, deletes and member changes have no WhatsApp form: no delivery row.
    let edit = json!({"type": "edit", "sender": "agent", "target_id": id(&reply), "text": "Yes, in blue."});
    let edit = expect(&api.post(&path, &edit), 201);
    let member = expect(&api.post(&format!("/api/v1/conversations/{conv}/members"), &json!({"sender": "agent"})), 201);
    let delete = expect(&api.post(&path, &json!({"type": "delete", "sender": "agent", "target_id": id(&reply)})), 201);
    let joined = expect(&api.get(&format!("{path}?after_seq={}", edit["seq"])), 200)["data"][0].clone();
    assert_eq!((joined["type"].as_str(), member["sender"].as_str()), (Some("member_joined"), Some("agent")));
    for unrouted in [&edit, &joined, &delete] {
        assert_eq!(deliveries(&api, unrouted), Vec::<Value>::new(), "{unrouted}");
    }

    let sends = the_sends(&graph, 4);
    let to_customer = |mut v: Value| {
        v["messaging_product"] = json!("whatsapp");
        v["recipient_type"] = json!("individual");
        v["to"] = json!(CUSTOMER);
        v
    };
    assert_eq!(
        sends,
        [
            to_customer(json!({"type": "text", "text": {"preview_url": false, "body": "Yes, it does."},
                               "context": {"message_id": "wamid.IN1"}})),
            to_customer(json!({"type": "reaction", "reaction": {"message_id": "wamid.IN1", "emoji": "👍"}})),
            to_customer(json!({"type": "reaction", "reaction": {"message_id": "wamid.IN1", "emoji": ""}})),
            to_customer(json!({"type": "reaction", "reaction": {"message_id": "wamid.OUT1", "emoji": "❤️"}})),
        ]
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(graph.requests().len(), 4, "nothing else was sent");
}

on_both_backends!(whatsapp_status_reports_become_the_contacts_receipts);

fn whatsapp_status_reports_become_the_contacts_receipts(server: &TestServer) {
    let tenant = create_tenant(server, "meta-receipts");
    let api = Client::bearer(server, &tenant.api_key);
    let (_graph, meta) = graph_and_channel(&api);
    // The business writes first (a conversation made over REST): the contact is no member yet.
    let conv = json!({"channel_id": meta["id"], "external_id": CUSTOMER});
    let conv = id(&expect(&api.post("/api/v1/conversations", &conv), 201)).to_string();
    let path = format!("/api/v1/conversations/{conv}/activities");
    let members = format!("/api/v1/conversations/{conv}/members");
    let first = expect(&api.post(&path, &json!({"sender": "agent", "text": "Your order shipped."})), 201);
    let second = expect(&api.post(&path, &json!({"sender": "agent", "text": "It arrives Monday."})), 201);
    delivery_of(&api, id(&first), |d| d["metadata"]["provider_message_id"].is_string());
    let d = delivery_of(&api, id(&second), |d| d["metadata"]["provider_message_id"].is_string());
    let (first_wamid, second_wamid) = {
        let d1 = delivery_of(&api, id(&first), |_| true);
        (
            d1["metadata"]["provider_message_id"].as_str().expect("wamid").to_string(),
            d["metadata"]["provider_message_id"].as_str().expect("wamid").to_string(),
        )
    };
    assert!(expect(&api.get(&members), 200)["data"].as_array().expect("data").is_empty());

    // Someone following the conversation sees the receipts as they move.
    let token = json!({"conversation_id": conv, "sender": "agent"});
    let token = expect(&api.post("/api/v1/tokens", &token), 200)["token"].as_str().expect("token").to_string();
    let mut ws = phoenix::with_token(server, &token);
    let reply = phoenix::join(&mut ws, &format!("conversation:{conv}"), json!({}));
    assert_eq!(reply[4]["status"], "ok", "{reply}");

    // `delivered` of the second message: the contact becomes a member, delivered up to it.
    let accepted = post_meta(server, &meta, &status(&second_wamid, "delivered"));
    assert_eq!(accepted["statuses_applied"], 1);
    let contact = expect(&api.get(&format!("{members}/{CUSTOMER}")), 200);
    assert_eq!(
        (contact["role"].as_str(), &contact["delivered_seq"], &contact["read_seq"]),
        (Some("contact"), &second["seq"], &json!(0))
    );
    assert_eq!(contact["unread_count"], 2);
    let receipt = receipt_event(&mut ws);
    assert_eq!((receipt["sender"].as_str(), &receipt["delivered_seq"]), (Some(CUSTOMER), &second["seq"]));

    // `read` of the first, then of the second: read_seq follows; a late `delivered` of the first moves nothing back.
    post_meta(server, &meta, &status(&first_wamid, "read"));
    let contact = expect(&api.get(&format!("{members}/{CUSTOMER}")), 200);
    assert_eq!((&contact["read_seq"], &contact["unread_count"]), (&first["seq"], &json!(1)));
    assert_eq!(receipt_event(&mut ws)["read_seq"], first["seq"]);
    post_meta(server, &meta, &status(&second_wamid, "read"));
    post_meta(server, &meta, &status(&first_wamid, "delivered"));
    let contact = expect(&api.get(&format!("{members}/{CUSTOMER}")), 200);
    assert_eq!(
        (&contact["read_seq"], &contact["delivered_seq"], &contact["unread_count"]),
        (&second["seq"], &second["seq"], &json!(0))
    );
    assert_eq!(receipt_event(&mut ws)["read_seq"], second["seq"]);

    // The same report again, and the customer writing: still one member_joined.
    post_meta(server, &meta, &status(&second_wamid, "delivered"));
    post_meta(server, &meta, &customer_message("wamid.IN9", "Thanks!"));
    let log = expect(&api.get(&path), 200)["data"].as_array().expect("data").clone();
    let joins = log.iter().filter(|a| a["type"] == "member_joined").count();
    assert_eq!(joins, 1, "{log:?}");
    let list = expect(&api.get(&members), 200);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
}

/// The next `receipt` broadcast on the socket.
fn receipt_event(ws: &mut phoenix::Ws) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = phoenix::until_by(ws, "receipt", deadline).expect("a receipt event");
    m[4].clone()
}

on_both_backends!(an_infobip_seen_report_becomes_the_contacts_read_receipt);

fn an_infobip_seen_report_becomes_the_contacts_read_receipt(server: &TestServer) {
    let infobip = Receiver::start_with(vec![200], |req| {
        let sent = req.json();
        json!({"to": sent["to"], "messageCount": 1, "messageId": sent["messageId"],
               "status": {"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE"}})
        .to_string()
    });
    let tenant = create_tenant(server, "infobip-receipts");
    let api = Client::bearer(server, &tenant.api_key);
    let config = json!({"api_key": "ib-key", "sender": "441134960000", "base_url": infobip.url("")});
    let ib = expect(
        &api.post("/api/v1/channels", &json!({"name": "ib", "type": "whatsapp_infobip", "config": config})),
        201,
    );
    let conv = json!({"channel_id": ib["id"], "external_id": "441134960001"});
    let conv = id(&expect(&api.post("/api/v1/conversations", &conv), 201)).to_string();
    let path = format!("/api/v1/conversations/{conv}/activities");
    let m = expect(&api.post(&path, &json!({"sender": "agent", "text": "Some text"})), 201);
    let d = delivery_of(&api, id(&m), |d| d["metadata"]["provider_message_id"].is_string());
    // A reaction is not routed to Infobip.
    let r = json!({"type": "reaction_add", "sender": "agent", "target_id": id(&m), "text": "👍"});
    let r = expect(&api.post(&path, &r), 201);
    assert!(deliveries(&api, &r).is_empty());

    let seen = json!({"results": [{"messageId": d["id"], "from": "441134960001", "to": "441134960000",
                                   "sentAt": "2019-07-19T11:23:26.998+0000", "seenAt": "2019-07-19T11:25:00.000+0000"}]})
    .to_string();
    let headers =
        [("content-type", "application/json"), ("x-converger-secret", ib["secret"].as_str().expect("secret"))];
    let r = server.request("POST", &format!("/api/v1/channels/{}/inbound", id(&ib)), &headers, seen.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let contact = expect(&api.get(&format!("/api/v1/conversations/{conv}/members/441134960001")), 200);
    assert_eq!((&contact["read_seq"], &contact["delivered_seq"]), (&m["seq"], &m["seq"]), "read implies delivered");
    assert_eq!(infobip.requests().len(), 1, "the message only");
}
