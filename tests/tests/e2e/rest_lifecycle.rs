//! The message lifecycle over REST (`POST …/activities` with `edit`,
//! `delete`, `reaction_add`, `reaction_remove` and replies): each kind's
//! validation (422 with the field), the refusals against stored state with
//! their codes, reads that give each message its current state (`?reader=`
//! for `me`) and the lifecycle activities in seq order, the thread listing,
//! and a deleted message's content gone from every read and its deliveries
//! not yet sent cancelled.
//!
//! REST writes use the tenant's API key, which may edit or delete anyone's
//! message: `not_author` (a client token's edit of another sender's message)
//! is refused on the sockets, not here (conformance:
//! `only_the_author_edits_or_deletes_as_a_client`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use converger_e2e::api::{assert_error, create_tenant, delivery_of, expect, Client, Fixture};
use converger_e2e::binary::{uuid_bytes, BinClient};
use converger_e2e::{phoenix, TestServer};
use converger_protocol::{Frame, History};
use serde_json::{json, Value};

on_both_backends!(
    each_kind_is_validated_with_the_field,
    refusals_against_the_stored_state_answer_their_codes,
    reads_give_each_message_its_current_state,
    reactions_are_idempotent_and_counted_per_emoji,
    the_thread_lists_a_messages_replies_in_seq_order,
    a_deleted_message_is_gone_from_every_read,
    a_delete_cancels_the_deliveries_not_yet_sent
);

fn post(c: &Client, f: &Fixture, body: Value) -> Value {
    expect(&c.post(&f.activities_path(), &body), 201)
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

fn each_kind_is_validated_with_the_field(server: &TestServer) {
    let f = Fixture::new(server, "lcvalid");
    let c = f.client(server);
    let m = post(&c, &f, json!({"sender": "alice", "text": "hi"}));
    let t = id(&m);
    for (body, field) in [
        (json!({"sender": "u", "type": "edit", "text": "x"}), "target_id"),
        (json!({"sender": "u", "type": "delete"}), "target_id"),
        (json!({"sender": "u", "type": "reaction_add", "text": "👍"}), "target_id"),
        (json!({"sender": "u", "type": "reaction_remove", "text": "👍"}), "target_id"),
        (json!({"sender": "u", "text": "x", "target_id": t}), "target_id"),
        (json!({"sender": "u", "type": "event", "target_id": t}), "target_id"),
        (json!({"sender": "u", "type": "edit", "target_id": "not-a-uuid", "text": "x"}), "target_id"),
        (json!({"sender": "u", "type": "edit", "target_id": 5, "text": "x"}), "target_id"),
        (json!({"sender": "u", "type": "edit", "target_id": t}), "text"),
        (json!({"sender": "u", "type": "edit", "target_id": t, "metadata": {}}), "text"),
        (json!({"sender": "u", "type": "delete", "target_id": t, "text": "x"}), "text"),
        (json!({"sender": "u", "type": "delete", "target_id": t, "attachments": []}), "attachments"),
        (json!({"sender": "u", "type": "reaction_add", "target_id": t}), "text"),
        (json!({"sender": "u", "type": "reaction_add", "target_id": t, "text": ""}), "text"),
        (json!({"sender": "u", "type": "reaction_add", "target_id": t, "text": "thumbs up"}), "text"),
        (json!({"sender": "u", "type": "reaction_add", "target_id": t, "text": "x".repeat(65)}), "text"),
        (json!({"sender": "u", "type": "reaction_remove", "target_id": t, "text": "a\u{7}"}), "text"),
        (
            json!({"sender": "u", "type": "reaction_add", "target_id": t, "text": "👍", "attachments": []}),
            "attachments",
        ),
        (json!({"sender": "u", "type": "event", "parent_id": t}), "parent_id"),
        (json!({"sender": "u", "type": "edit", "target_id": t, "text": "x", "parent_id": t}), "parent_id"),
        (json!({"sender": "u", "text": "x", "parent_id": "nope"}), "parent_id"),
        (json!({"sender": "u", "type": "member_joined"}), "type"),
        (json!({"sender": "u", "type": "member_left"}), "type"),
        (json!({"sender": "u", "type": "reaction", "target_id": t, "text": "👍"}), "type"),
    ] {
        let e = assert_error(&c.post(&f.activities_path(), &body), 422, "validation_failed");
        assert_eq!(e["field"], field, "{body}");
    }
    // The largest emoji accepted is 64 bytes.
    post(&c, &f, json!({"sender": "u", "type": "reaction_add", "target_id": t, "text": "x".repeat(64)}));
    assert_eq!(expect(&c.get(&f.activities_path()), 200)["last_seq"], 2, "only the good ones were written");
}

fn refusals_against_the_stored_state_answer_their_codes(server: &TestServer) {
    let f = Fixture::new(server, "lcrefuse");
    let c = f.client(server);
    let other_conv = expect(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    let other_path = format!("/api/v1/conversations/{}/activities", id(&other_conv));
    let elsewhere = expect(&c.post(&other_path, &json!({"sender": "u", "text": "elsewhere"})), 201);
    let theirs = Fixture::new(server, "lcrefuse-other");
    let their_message = post(&theirs.client(server), &theirs, json!({"sender": "u", "text": "theirs"}));
    let m = post(&c, &f, json!({"sender": "alice", "text": "root"}));
    let event = post(&c, &f, json!({"sender": "alice", "type": "event"}));
    let r = post(&c, &f, json!({"sender": "bob", "type": "reaction_add", "target_id": id(&m), "text": "👍"}));
    let answer = post(&c, &f, json!({"sender": "bob", "text": "a reply", "parent_id": id(&m)}));
    let gone = post(&c, &f, json!({"sender": "alice", "text": "soon gone"}));
    post(&c, &f, json!({"sender": "alice", "type": "delete", "target_id": id(&gone)}));
    let last_seq = expect(&c.get(&f.activities_path()), 200)["last_seq"].clone();

    let refuse = |body: Value, status: u16, code: &str, field: Option<&str>| {
        let e = assert_error(&c.post(&f.activities_path(), &body), status, code);
        assert_eq!(e["field"].as_str(), field, "{body}: {e}");
    };
    let missing = "0190f0f0-0000-7000-8000-000000000000";
    for target in [missing, id(&elsewhere), id(&their_message)] {
        refuse(
            json!({"sender": "u", "type": "edit", "target_id": target, "text": "x"}),
            404,
            "target_not_found",
            Some("target_id"),
        );
        refuse(
            json!({"sender": "u", "type": "delete", "target_id": target}),
            404,
            "target_not_found",
            Some("target_id"),
        );
        refuse(
            json!({"sender": "u", "type": "reaction_add", "target_id": target, "text": "👍"}),
            404,
            "target_not_found",
            Some("target_id"),
        );
        refuse(json!({"sender": "u", "text": "re", "parent_id": target}), 404, "target_not_found", Some("parent_id"));
    }
    for target in [id(&event), id(&r)] {
        refuse(
            json!({"sender": "u", "type": "edit", "target_id": target, "text": "x"}),
            422,
            "invalid_target",
            Some("target_id"),
        );
        refuse(
            json!({"sender": "u", "type": "reaction_add", "target_id": target, "text": "👍"}),
            422,
            "invalid_target",
            Some("target_id"),
        );
        refuse(json!({"sender": "u", "text": "re", "parent_id": target}), 422, "invalid_target", Some("parent_id"));
    }
    refuse(
        json!({"sender": "u", "text": "re: re", "parent_id": id(&answer)}),
        422,
        "invalid_target",
        Some("parent_id"),
    );
    refuse(
        json!({"sender": "u", "type": "edit", "target_id": id(&gone), "text": "x"}),
        409,
        "target_deleted",
        Some("target_id"),
    );
    refuse(json!({"sender": "u", "type": "delete", "target_id": id(&gone)}), 409, "target_deleted", Some("target_id"));
    refuse(
        json!({"sender": "u", "type": "reaction_add", "target_id": id(&gone), "text": "👍"}),
        409,
        "target_deleted",
        Some("target_id"),
    );
    refuse(json!({"sender": "u", "text": "re", "parent_id": id(&gone)}), 409, "target_deleted", Some("parent_id"));
    refuse(
        json!({"sender": "carol", "type": "reaction_remove", "target_id": id(&m), "text": "👍"}),
        404,
        "reaction_not_found",
        None,
    );
    refuse(
        json!({"sender": "bob", "type": "reaction_remove", "target_id": id(&m), "text": "🎉"}),
        404,
        "reaction_not_found",
        None,
    );
    assert_eq!(expect(&c.get(&f.activities_path()), 200)["last_seq"], last_seq, "no refusal wrote anything");
    // A closed conversation refuses lifecycle writes like any other.
    expect(&c.post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    let e = c.post(&f.activities_path(), &json!({"sender": "u", "type": "edit", "target_id": id(&m), "text": "x"}));
    assert_error(&e, 409, "conversation_closed");
}

/// The message with `id` in a REST page.
fn find<'a>(page: &'a Value, id: &str) -> &'a Value {
    page["data"].as_array().expect("data").iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("{id} in {page}"))
}

fn reads_give_each_message_its_current_state(server: &TestServer) {
    let f = Fixture::new(server, "lcread");
    let c = f.client(server);
    let m = post(&c, &f, json!({"sender": "alice", "text": "v1", "metadata": {"a": 1}, "attachments": [{"n": 1}]}));
    assert_eq!(
        (&m["edited_at"], &m["deleted"], &m["deleted_at"], &m["reply_count"], &m["reactions"]),
        (&Value::Null, &json!(false), &Value::Null, &json!(0), &json!([])),
        "a new message's state: {m}"
    );
    let e1 = post(&c, &f, json!({"sender": "alice", "type": "edit", "target_id": id(&m), "text": "v2"}));
    assert_eq!((&e1["type"], &e1["target_id"], &e1["text"]), (&json!("edit"), &m["id"], &json!("v2")));
    assert!(e1.get("reply_count").is_none() && e1.get("deleted").is_none(), "only messages carry a state: {e1}");
    let e2 = post(&c, &f, json!({"sender": "mod", "type": "edit", "target_id": id(&m), "metadata": {"b": 2}}));
    post(&c, &f, json!({"sender": "bob", "type": "reaction_add", "target_id": id(&m), "text": "👍"}));
    post(&c, &f, json!({"sender": "carol", "type": "reaction_add", "target_id": id(&m), "text": "👍"}));
    post(&c, &f, json!({"sender": "carol", "type": "reaction_add", "target_id": id(&m), "text": "🎉"}));
    post(&c, &f, json!({"sender": "bob", "text": "a reply", "parent_id": id(&m)}));

    let page = expect(&c.get(&f.activities_path()), 200);
    let now = find(&page, id(&m));
    assert_eq!(
        (&now["text"], &now["metadata"], &now["attachments"]),
        (&json!("v2"), &json!({"b": 2}), &json!([{"n": 1}]))
    );
    assert_eq!(now["edited_at"], e2["created_at"], "edited_at is the last edit's time");
    assert_eq!((&now["deleted"], &now["reply_count"]), (&json!(false), &json!(1)));
    assert_eq!(
        now["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": false}, {"emoji": "🎉", "count": 1, "me": false}])
    );
    assert_eq!((&now["seq"], &now["created_at"], &now["sender"]), (&m["seq"], &m["created_at"], &m["sender"]));
    let kinds: Vec<_> =
        page["data"].as_array().expect("data").iter().map(|a| a["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["message", "edit", "edit", "reaction_add", "reaction_add", "reaction_add", "message"]);
    let as_carol = expect(&c.get(&format!("{}?reader=carol", f.activities_path())), 200);
    assert_eq!(
        find(&as_carol, id(&m))["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}, {"emoji": "🎉", "count": 1, "me": true}])
    );
    let as_bob = expect(&c.get(&format!("{}?reader=bob&after_seq=0&limit=1", f.activities_path())), 200);
    assert_eq!(
        as_bob["data"][0]["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}, {"emoji": "🎉", "count": 1, "me": false}])
    );
    let encoded = expect(&c.get(&format!("{}?reader=%2B1555", f.activities_path())), 200);
    assert!(find(&encoded, id(&m))["reactions"].as_array().expect("reactions").iter().all(|r| r["me"] == false));
    assert_error(&c.get(&format!("{}?reader={}", f.activities_path(), "x".repeat(257))), 400, "invalid_parameter");
    // The admin's read is the same state.
    let admin = expect(
        &Client::admin(server).get(&format!("/admin/api/conversations/{}/activities", f.conversation_id())),
        200,
    );
    assert_eq!(find(&admin, id(&m)), now);

    // Replaying the log over REST gives the state the read gives.
    assert_eq!(fold(&page), states(&page), "the REST log folded client-side");
}

/// Each message's state as a client folds it from a REST log (each message
/// as read, then every lifecycle activity in seq order; docs/api.md).
fn fold(page: &Value) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let mut reactions: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for a in page["data"].as_array().expect("data") {
        let target = a["target_id"].as_str().unwrap_or_default().to_string();
        match a["type"].as_str().expect("type") {
            "message" => {
                let s = json!({"text": a["text"], "attachments": a["attachments"], "metadata": a["metadata"],
                    "edited_at": null, "deleted": false, "reply_count": 0});
                out.insert(id(a).to_string(), s);
                if let Some(parent) = a["parent_id"].as_str().and_then(|p| out.get_mut(p)) {
                    parent["reply_count"] = json!(parent["reply_count"].as_i64().unwrap_or(0) + 1);
                }
            }
            "edit" => {
                let s = out.get_mut(&target).expect("an edit of a logged message");
                for key in ["text", "attachments"] {
                    if !a[key].is_null() {
                        s[key] = a[key].clone();
                    }
                }
                if a["metadata"].as_object().is_some_and(|m| !m.is_empty()) {
                    s["metadata"] = a["metadata"].clone();
                }
                s["edited_at"] = a["created_at"].clone();
            }
            "delete" => {
                let s = out.get_mut(&target).expect("a delete of a logged message");
                (s["text"], s["attachments"], s["metadata"], s["deleted"]) =
                    (Value::Null, Value::Null, json!({}), json!(true));
                reactions.remove(&target);
            }
            kind @ ("reaction_add" | "reaction_remove") => {
                let by =
                    reactions.entry(target).or_default().entry(a["text"].as_str().expect("emoji").into()).or_default();
                let sender = a["sender"].as_str().expect("sender").to_string();
                if kind == "reaction_add" {
                    by.push(sender);
                } else {
                    by.retain(|s| *s != sender);
                }
            }
            _ => {}
        }
    }
    for (message, s) in out.iter_mut() {
        let mut summary: Vec<(i64, String)> = reactions
            .get(message)
            .into_iter()
            .flatten()
            .filter(|(_, by)| !by.is_empty())
            .map(|(emoji, by)| (-(by.len() as i64), emoji.clone()))
            .collect();
        summary.sort();
        s["reactions"] =
            summary.into_iter().map(|(n, emoji)| json!({"emoji": emoji, "count": -n, "me": false})).collect();
    }
    out
}

/// Each message's state as a REST read gives it.
fn states(page: &Value) -> BTreeMap<String, Value> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|a| a["type"] == "message")
        .map(|a| {
            let keys = ["text", "attachments", "metadata", "edited_at", "deleted", "reply_count", "reactions"];
            (id(a).to_string(), keys.iter().map(|k| (k.to_string(), a[k].clone())).collect())
        })
        .collect()
}

fn reactions_are_idempotent_and_counted_per_emoji(server: &TestServer) {
    let f = Fixture::new(server, "lcreact");
    let c = f.client(server);
    let m = post(&c, &f, json!({"sender": "alice", "text": "react"}));
    let add = json!({"sender": "bob", "type": "reaction_add", "target_id": id(&m), "text": "👍"});
    let first = post(&c, &f, add.clone());
    let again = c.post(&f.activities_path(), &add);
    assert_eq!(again.header("idempotent-replayed"), Some("true"), "a repeated reaction is a replay");
    let again = expect(&again, 200);
    assert_eq!(again, first, "the replay is the first reaction");
    assert_eq!(expect(&c.get(&f.activities_path()), 200)["last_seq"], 2, "nothing written");
    let remove = json!({"sender": "bob", "type": "reaction_remove", "target_id": id(&m), "text": "👍"});
    post(&c, &f, remove.clone());
    assert_error(&c.post(&f.activities_path(), &remove), 404, "reaction_not_found");
    let back = post(&c, &f, add);
    assert_ne!(back["id"], first["id"], "added again after taking it back: a new activity");
    for sender in ["carol", "dave"] {
        post(&c, &f, json!({"sender": sender, "type": "reaction_add", "target_id": id(&m), "text": ":tada:"}));
    }
    let page = expect(&c.get(&format!("{}?reader=dave", f.activities_path())), 200);
    assert_eq!(
        find(&page, id(&m))["reactions"],
        json!([{"emoji": ":tada:", "count": 2, "me": true}, {"emoji": "👍", "count": 1, "me": false}])
    );
}

fn the_thread_lists_a_messages_replies_in_seq_order(server: &TestServer) {
    let f = Fixture::new(server, "lcthread");
    let c = f.client(server);
    let root = post(&c, &f, json!({"sender": "alice", "text": "root"}));
    let other = post(&c, &f, json!({"sender": "alice", "text": "other root"}));
    let mut replies = Vec::new();
    for i in 0..4 {
        let parent = if i == 1 { &other } else { &root };
        let r = post(&c, &f, json!({"sender": format!("u{i}"), "text": format!("reply {i}"), "parent_id": id(parent)}));
        assert_eq!(r["parent_id"], parent["id"]);
        replies.push(r);
        post(&c, &f, json!({"sender": "noise", "text": "noise"}));
    }
    let path = |parent: &Value, q: &str| format!("{}/{}/replies{q}", f.activities_path(), id(parent));
    let thread = expect(&c.get(&path(&root, "")), 200);
    let texts: Vec<_> = thread["data"].as_array().expect("data").iter().map(|a| a["text"].clone()).collect();
    assert_eq!(texts, [json!("reply 0"), json!("reply 2"), json!("reply 3")]);
    assert_eq!(thread.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["data".to_string()]));
    let after = expect(&c.get(&path(&root, &format!("?after_seq={}&limit=1", replies[0]["seq"]))), 200);
    assert_eq!(
        after["data"].as_array().map(|d| d.iter().map(|a| a["id"].clone()).collect::<Vec<_>>()),
        Some(vec![replies[2]["id"].clone()])
    );
    assert_eq!(find(&expect(&c.get(&f.activities_path()), 200), id(&root))["reply_count"], 3);
    // The replies in their current state, `me` for a reader.
    post(&c, &f, json!({"sender": "alice", "type": "reaction_add", "target_id": id(&replies[2]), "text": "👍"}));
    post(&c, &f, json!({"sender": "u0", "type": "edit", "target_id": id(&replies[0]), "text": "reply 0, edited"}));
    let thread = expect(&c.get(&path(&root, "?reader=alice")), 200);
    assert_eq!(thread["data"][0]["text"], "reply 0, edited");
    assert!(thread["data"][0]["edited_at"].is_string());
    assert_eq!(thread["data"][1]["reactions"], json!([{"emoji": "👍", "count": 1, "me": true}]));
    assert_eq!(expect(&c.get(&path(&other, "")), 200)["data"].as_array().map(Vec::len), Some(1));
    // No thread for what is not a message of the conversation.
    let missing = json!({"id": "0190f0f0-0000-7000-8000-000000000000"});
    assert_error(&c.get(&path(&missing, "")), 404, "not_found");
    assert_error(&c.get(&path(&json!({"id": "not-a-uuid"}), "")), 404, "not_found");
    let edit = post(&c, &f, json!({"sender": "alice", "type": "edit", "target_id": id(&root), "text": "root!"}));
    assert_error(&c.get(&path(&edit, "")), 404, "not_found");
    let theirs = Fixture::new(server, "lcthread-other");
    assert_error(&theirs.client(server).get(&path(&root, "")), 404, "not_found");
    assert_error(&c.get(&path(&root, "?after_seq=-1")), 400, "invalid_parameter");
}

fn a_deleted_message_is_gone_from_every_read(server: &TestServer) {
    let f = Fixture::new(server, "lcdelete");
    let c = f.client(server);
    let secret = json!({"sender": "alice", "text": "SECRET-TEXT", "attachments": [{"url": "https://x.test/SECRET-FILE"}], "metadata": {"k": "SECRET-META"}});
    let m = post(&c, &f, secret);
    post(
        &c,
        &f,
        json!({"sender": "alice", "type": "edit", "target_id": id(&m), "text": "SECRET-EDIT", "metadata": {"k": "SECRET-EDIT-META"}}),
    );
    post(&c, &f, json!({"sender": "bob", "type": "reaction_add", "target_id": id(&m), "text": "👍"}));
    let root = post(&c, &f, json!({"sender": "bob", "text": "root"}));
    let r = post(&c, &f, json!({"sender": "alice", "text": "SECRET-REPLY", "parent_id": id(&root)}));
    let d = post(&c, &f, json!({"sender": "alice", "type": "delete", "target_id": id(&m)}));
    assert_eq!((&d["type"], &d["target_id"], &d["text"]), (&json!("delete"), &m["id"], &Value::Null));
    post(&c, &f, json!({"sender": "alice", "type": "delete", "target_id": id(&r)}));

    let page = expect(&c.get(&f.activities_path()), 200);
    let tombstone = find(&page, id(&m));
    assert_eq!(
        (
            &tombstone["text"],
            &tombstone["attachments"],
            &tombstone["metadata"],
            &tombstone["deleted"],
            &tombstone["reactions"]
        ),
        (&Value::Null, &Value::Null, &json!({}), &json!(true), &json!([])),
        "{tombstone}"
    );
    assert_eq!(tombstone["deleted_at"], d["created_at"]);
    let thread = expect(&c.get(&format!("{}/{}/replies", f.activities_path(), id(&root))), 200);
    assert_eq!((&thread["data"][0]["deleted"], &thread["data"][0]["text"]), (&json!(true), &Value::Null));
    let admin = Client::admin(server).get(&format!("/admin/api/conversations/{}/activities", f.conversation_id()));
    let admin = expect(&admin, 200);
    let everywhere = [page.to_string(), thread.to_string(), admin.to_string()];

    // The binary protocol's history and the Phoenix backlog on resume.
    let token = f.token(server, "reader");
    let (mut bin, _) = BinClient::with_token(server.binary_addr(), &token);
    bin.send(History {
        request_id: 1,
        conversation_id: uuid_bytes(f.conversation_id()),
        after_seq: 0,
        until_seq: None,
        limit: 100,
    });
    let history = match bin.frame() {
        Frame::HistoryPage(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(history.activities.len(), page["data"].as_array().map_or(0, Vec::len));
    let history_text = format!("{:?}", history.activities);
    let mut ws = phoenix::with_token(server, &token);
    assert_eq!(phoenix::join(&mut ws, &phoenix::topic(&f), json!({"last_seq": 0}))[4]["status"], "ok");
    let n = history.activities.len();
    let backlog = phoenix::activities(&mut ws, n, Instant::now() + Duration::from_secs(10), None);
    assert_eq!(backlog.len(), n, "the whole backlog");
    assert_eq!(find(&json!({"data": backlog}), id(&m))["deleted"], true, "the backlog gives the current state");
    for (shown, what) in everywhere
        .iter()
        .map(|s| (s.as_str(), "REST"))
        .chain([(history_text.as_str(), "history"), (&*Value::from(backlog).to_string(), "backlog")])
    {
        for secret in ["SECRET-TEXT", "SECRET-FILE", "SECRET-META", "SECRET-EDIT", "SECRET-REPLY"] {
            assert!(!shown.contains(secret), "{secret} is still in the {what}: {shown}");
        }
    }
}

fn a_delete_cancels_the_deliveries_not_yet_sent(server: &TestServer) {
    let tenant = create_tenant(server, "lccancel");
    let api = Client::bearer(server, &tenant.api_key);
    // Nothing listens on port 9: each attempt fails and waits for its retry.
    let channel = json!({"name": "hook", "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}});
    let channel = expect(&api.post("/api/v1/channels", &channel), 201);
    let conv = expect(&api.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
    let path = format!("/api/v1/conversations/{}/activities", id(&conv));
    let m = expect(&api.post(&path, &json!({"sender": "alice", "text": "never sent"})), 201);
    let e = expect(
        &api.post(&path, &json!({"sender": "alice", "type": "edit", "target_id": id(&m), "text": "nor this"})),
        201,
    );
    let keep = expect(&api.post(&path, &json!({"sender": "bob", "text": "another"})), 201);
    delivery_of(&api, id(&m), |d| d["attempts"].as_i64() >= Some(1));
    let d = expect(&api.post(&path, &json!({"sender": "alice", "type": "delete", "target_id": id(&m)})), 201);
    for a in [&m, &e] {
        let cancelled = delivery_of(&api, id(a), |d| d["status"] == "failed");
        assert_eq!(
            cancelled["last_error"], "cancelled: the message was deleted before it was delivered",
            "{cancelled}"
        );
    }
    for a in [&keep, &d] {
        let list = expect(&api.get(&format!("/api/v1/deliveries?activity_id={}", id(a))), 200);
        assert_eq!(list["data"][0]["status"], "pending", "{} is still to be sent: {list}", a["type"]);
    }
}
