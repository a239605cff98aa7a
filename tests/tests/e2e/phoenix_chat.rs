//! The message lifecycle over the Phoenix socket, in both namings: edits,
//! deletes, reactions, replies and receipts with Converger's own events on
//! `conversation:{id}`, and with QuckChat's (`message:send`, `message:edit` …
//! pushed back as `message:new`, `message:edited` …) on `chat:{id}`; a
//! resumed `chat:` topic replays the log under QuckChat's names; every
//! refusal names the field as the client wrote it.

use std::collections::VecDeque;

use converger_e2e::api::{expect, Fixture};
use converger_e2e::phoenix::{next, send, socket, Ws};
use converger_e2e::TestServer;
use serde_json::{json, Value};

/// A socket joined to the fixture's conversation under one topic, keeping
/// the messages read while waiting for another, so none is lost.
struct Chat {
    ws: Ws,
    topic: String,
    next_ref: u64,
    unread: VecDeque<Value>,
}

impl Chat {
    /// `prefix` is `conversation` or `chat`; the join replays after `last_seq`.
    fn join(server: &TestServer, f: &Fixture, sender: &str, prefix: &str, last_seq: i64) -> Chat {
        let ws = socket(server, f, sender);
        let topic = format!("{prefix}:{}", f.conversation_id());
        let mut chat = Chat { ws, topic, next_ref: 1, unread: VecDeque::new() };
        let reply = chat.push("phx_join", json!({"last_seq": last_seq}));
        assert_eq!(reply["status"], "ok", "join: {reply}");
        chat
    }

    /// Sends `event` and answers its reply's payload (`{status, response}`).
    fn push(&mut self, event: &str, payload: Value) -> Value {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        send(&mut self.ws, json!(["1", r, self.topic, event, payload]));
        self.take(|m| m[3] == "phx_reply" && m[1] == r.as_str())[4].clone()
    }

    /// The response of a push that must succeed.
    fn ok(&mut self, event: &str, payload: Value) -> Value {
        let reply = self.push(event, payload.clone());
        assert_eq!(reply["status"], "ok", "{event} {payload}: {reply}");
        reply["response"].clone()
    }

    /// The response of a push that must be refused with `code`.
    fn refused(&mut self, event: &str, payload: Value, code: &str) -> Value {
        let reply = self.push(event, payload.clone());
        assert_eq!(reply["status"], "error", "{event} {payload}: {reply}");
        assert_eq!(reply["response"]["code"], code, "{event} {payload}: {reply}");
        reply["response"].clone()
    }

    /// The payload of the first `event` whose payload satisfies `pred`.
    fn event(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let topic = self.topic.clone();
        let m = self.take(|m| m[3] == event && m[2] == topic.as_str() && pred(&m[4]));
        m[4].clone()
    }

    /// The first message (read before or now) that satisfies `pred`; the others stay unread.
    fn take(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.unread.iter().position(&pred) {
            return self.unread.remove(i).expect("index");
        }
        loop {
            let m = next(&mut self.ws);
            if pred(&m) {
                return m;
            }
            self.unread.push_back(m);
        }
    }

    /// The event names of the next `n` pushes about activities (in order).
    fn activity_events(&mut self, n: usize) -> Vec<(String, i64)> {
        let mut got = Vec::new();
        while got.len() < n {
            let m = self.take(|m| m[4]["seq"].is_i64() && m[3] != "phx_reply");
            got.push((m[3].as_str().expect("event").to_string(), m[4]["seq"].as_i64().expect("seq")));
        }
        got
    }
}

/// Adds the senders as members (each a `member_joined` activity): receipts need a member.
fn members(server: &TestServer, f: &Fixture, senders: &[&str]) {
    let path = format!("/api/v1/conversations/{}/members", f.conversation_id());
    for s in senders {
        expect(&f.client(server).post(&path, &json!({"sender": s})), 201);
    }
}

fn id(v: &Value) -> Value {
    v["id"].clone()
}

on_both_backends!(
    converger_names_carry_the_message_lifecycle_and_receipts,
    quckchat_names_on_a_chat_topic_beside_converger_names,
    lifecycle_refusals_name_the_fields_the_client_wrote,
);

fn converger_names_carry_the_message_lifecycle_and_receipts(server: &TestServer) {
    let f = Fixture::new(server, "phx-lifecycle");
    members(server, &f, &["alice", "bob"]);
    let mut a = Chat::join(server, &f, "alice", "conversation", 2);
    let mut b = Chat::join(server, &f, "bob", "conversation", 2);

    let m = a.ok("activity:create", json!({"text": "hello"}));
    assert_eq!(b.event("activity", |p| p["id"] == id(&m))["text"], "hello");
    let edit = a.ok("activity:create", json!({"type": "edit", "target_id": id(&m), "text": "hello, edited"}));
    assert_eq!(edit["target_id"], id(&m));
    let seen = b.event("activity", |p| p["id"] == id(&edit));
    assert_eq!((&seen["type"], &seen["text"]), (&json!("edit"), &json!("hello, edited")));

    let reply = b.ok("activity:create", json!({"text": "a reply", "parent_id": id(&m)}));
    assert_eq!(a.event("activity", |p| p["id"] == id(&reply))["parent_id"], id(&m));
    let react = b.ok("activity:create", json!({"type": "reaction_add", "target_id": id(&m), "text": "👍"}));
    assert_eq!(a.event("activity", |p| p["id"] == id(&react))["type"], "reaction_add");
    let unreact = b.ok("activity:create", json!({"type": "reaction_remove", "target_id": id(&m), "text": "👍"}));
    assert_eq!(a.event("activity", |p| p["id"] == id(&unreact))["type"], "reaction_remove");

    let read = b.ok("receipt", json!({"read_seq": reply["seq"]}));
    assert_eq!((&read["sender"], &read["read_seq"]), (&json!("bob"), &reply["seq"]), "answers the member: {read}");
    let signal = a.event("receipt", |p| p["sender"] == "bob");
    assert_eq!(signal["read_seq"], reply["seq"]);
    let delivered = b.ok("receipt", json!({"delivered_seq": unreact["seq"]}));
    assert_eq!(delivered["delivered_seq"], unreact["seq"]);
    assert_eq!(a.event("receipt", |p| p["delivered_seq"] == unreact["seq"])["read_seq"], reply["seq"]);

    let delete = a.ok("activity:create", json!({"type": "delete", "target_id": id(&m)}));
    assert_eq!(b.event("activity", |p| p["id"] == id(&delete))["target_id"], id(&m));

    // The read agrees with what the socket did.
    let read = f.all_activities(server);
    let message = read.iter().find(|x| x["id"] == id(&m)).expect("the message");
    assert_eq!((&message["deleted"], &message["text"]), (&json!(true), &Value::Null), "{message}");
    assert_eq!(message["reply_count"], 1);
}

fn quckchat_names_on_a_chat_topic_beside_converger_names(server: &TestServer) {
    let f = Fixture::new(server, "phx-quckchat");
    members(server, &f, &["alice", "bob"]);
    let mut a = Chat::join(server, &f, "alice", "chat", 2);
    let mut b = Chat::join(server, &f, "bob", "chat", 2);
    // Olive follows the same conversation under Converger's names.
    let mut o = Chat::join(server, &f, "olive", "conversation", 2);
    assert!(a.event("presence_state", |_| true)["alice"].is_object(), "presence on a chat: topic too");

    let m = a.ok("message:send", json!({"text": "hi"}));
    assert_eq!((&m["type"], &m["sender"]), (&json!("message"), &json!("alice")));
    let new = b.event("message:new", |p| p["id"] == id(&m));
    assert_eq!(new, m, "message:new carries the activity");
    assert_eq!(o.event("activity", |p| p["id"] == id(&m)), m, "the same activity under Converger's name");

    let edit = a.ok("message:edit", json!({"message_id": id(&m), "text": "hi, edited"}));
    assert_eq!(edit["type"], "edit");
    let edited = b.event("message:edited", |p| p["id"] == id(&edit));
    assert_eq!((&edited["message_id"], &edited["target_id"]), (&id(&m), &id(&m)));
    assert_eq!(edited["text"], "hi, edited");
    assert!(
        o.event("activity", |p| p["id"] == id(&edit)).get("message_id").is_none(),
        "Converger's push is the activity"
    );

    let react = b.ok("message:reaction:add", json!({"message_id": id(&m), "emoji": "🎉"}));
    let added = a.event("message:reaction:added", |p| p["id"] == id(&react));
    assert_eq!((&added["emoji"], &added["message_id"], &added["sender"]), (&json!("🎉"), &id(&m), &json!("bob")));
    let unreact = b.ok("message:reaction:remove", json!({"message_id": id(&m), "emoji": "🎉"}));
    assert_eq!(a.event("message:reaction:removed", |p| p["id"] == id(&unreact))["emoji"], "🎉");

    let reply = b.ok("message:send", json!({"text": "a reply", "parent_id": id(&m)}));
    assert_eq!(a.event("message:new", |p| p["id"] == id(&reply))["parent_id"], id(&m));

    let read = b.ok("message:read", json!({"seq": reply["seq"]}));
    assert_eq!((&read["sender"], &read["read_seq"]), (&json!("bob"), &reply["seq"]), "{read}");
    assert_eq!(a.event("message:read", |p| p["sender"] == "bob")["read_seq"], reply["seq"]);
    assert_eq!(o.event("receipt", |p| p["sender"] == "bob")["read_seq"], reply["seq"]);

    b.ok("typing:start", json!({}));
    assert_eq!(a.event("typing:start", |_| true), json!({"sender": "bob", "typing": true}));
    assert_eq!(o.event("typing", |_| true), json!({"sender": "bob", "typing": true}));
    b.ok("typing:stop", json!({}));
    assert_eq!(a.event("typing:stop", |_| true), json!({"sender": "bob", "typing": false}));

    let delete = a.ok("message:delete", json!({"message_id": id(&m)}));
    assert_eq!(b.event("message:deleted", |p| p["id"] == id(&delete))["message_id"], id(&m));
    // Converger's own client events work on a chat: topic; the push keeps the topic's names.
    let plain = a.ok("activity:create", json!({"text": "plain"}));
    b.event("message:new", |p| p["id"] == id(&plain));

    // A client resuming a chat: topic gets the log under QuckChat's names, in seq order.
    let mut late = Chat::join(server, &f, "carol", "chat", 0);
    let names: Vec<String> = late.activity_events(9).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "activity", // member_joined: QuckChat has no name for it
            "activity",
            "message:new",
            "message:edited",
            "message:reaction:added",
            "message:reaction:removed",
            "message:new",
            "message:deleted",
            "message:new",
        ]
    );
}

fn lifecycle_refusals_name_the_fields_the_client_wrote(server: &TestServer) {
    let f = Fixture::new(server, "phx-refusals");
    members(server, &f, &["alice", "bob"]);
    let mut a = Chat::join(server, &f, "alice", "chat", 2);
    let mut b = Chat::join(server, &f, "bob", "conversation", 2);
    let m = a.ok("message:send", json!({"text": "mine"}));
    let nobody = "0190f0f0-0000-7000-8000-000000000000";

    // Someone else's message: a client token edits and deletes only its sender's.
    b.refused("message:edit", json!({"message_id": id(&m), "text": "theirs"}), "not_author");
    b.refused("activity:create", json!({"type": "edit", "target_id": id(&m), "text": "theirs"}), "not_author");
    b.refused("message:delete", json!({"message_id": id(&m)}), "not_author");
    a.refused("message:edit", json!({"message_id": id(&m), "text": "x", "sender": "bob"}), "forbidden");

    let r = a.refused("message:edit", json!({"message_id": nobody, "text": "x"}), "target_not_found");
    assert_eq!(r["field"], "message_id", "{r}");
    assert!(r["reason"].as_str().expect("reason").contains("`message_id`"), "{r}");
    let r = a.refused("activity:create", json!({"type": "edit", "target_id": nobody, "text": "x"}), "target_not_found");
    assert_eq!(r["field"], "target_id", "Converger's name where the client wrote it: {r}");
    let r = a.refused("message:edit", json!({"message_id": "not-an-id", "text": "x"}), "validation_failed");
    assert_eq!(r["field"], "message_id", "{r}");
    let r = a.refused("message:delete", json!({}), "validation_failed");
    assert_eq!(r["field"], "message_id", "{r}");

    let r = a.refused("message:reaction:remove", json!({"message_id": id(&m), "emoji": "👍"}), "reaction_not_found");
    assert!(r["reason"].is_string(), "{r}");
    let r = a.refused("message:reaction:add", json!({"message_id": id(&m)}), "validation_failed");
    assert_eq!(r["field"], "emoji", "{r}");
    let r = a.refused("message:reaction:add", json!({"message_id": id(&m), "emoji": "a b"}), "validation_failed");
    assert_eq!(r["field"], "emoji", "the emoji's own rules, under the client's name: {r}");
    let react = a.ok("message:reaction:add", json!({"message_id": id(&m), "emoji": "👍"}));
    let r = a.refused("message:edit", json!({"message_id": id(&react), "text": "x"}), "invalid_target");
    assert_eq!(r["field"], "message_id", "{r}");
    let r = a.refused("message:send", json!({"type": "event", "text": "x"}), "validation_failed");
    assert_eq!(r["field"], "type", "{r}");

    a.ok("message:delete", json!({"message_id": id(&m)}));
    let r = a.refused("message:edit", json!({"message_id": id(&m), "text": "x"}), "target_deleted");
    assert_eq!(r["field"], "message_id", "{r}");
    b.refused("message:reaction:add", json!({"message_id": id(&m), "emoji": "👍"}), "target_deleted");

    // Receipts: only a member's, never past the last seq.
    let r = a.refused("message:read", json!({"seq": 1000}), "validation_failed");
    assert_eq!(r["field"], "seq", "{r}");
    let r = b.refused("receipt", json!({"read_seq": 1000}), "validation_failed");
    assert_eq!(r["field"], "read_seq", "{r}");
    b.refused("receipt", json!({}), "validation_failed");
    let mut c = Chat::join(server, &f, "carol", "chat", 0);
    c.refused("message:read", json!({"seq": 1}), "not_a_member");
    c.refused("receipt", json!({"read_seq": 1}), "not_a_member");

    let unknown = a.push("message:frobnicate", json!({}));
    assert_eq!(unknown, json!({"status": "error", "response": {"reason": "unknown event `message:frobnicate`"}}));
}
