//! `/api/v1/conversations/{id}/members`: add (201, 200 when already a
//! member), read, list in pages, remove (204), each a `member_joined` /
//! `member_left` activity in the log; a member's receipts moving forward
//! only; `members_only` conversations issuing and refreshing tokens for
//! members only; PATCH of a conversation.

use converger_e2e::api::{assert_error, expect, Client, Fixture};
use converger_e2e::TestServer;
use serde_json::{json, Value};

on_both_backends!(
    members_are_added_read_listed_and_removed,
    member_input_is_validated_with_the_field,
    receipts_move_forward_only,
    members_only_conversations_issue_tokens_to_members_only,
    patch_changes_metadata_and_members_only
);

fn members_path(f: &Fixture) -> String {
    format!("/api/v1/conversations/{}/members", f.conversation_id())
}

fn members_are_added_read_listed_and_removed(server: &TestServer) {
    let f = Fixture::new(server, "members");
    let c = f.client(server);
    let path = members_path(&f);
    let alice = expect(&c.post(&path, &json!({"sender": "alice", "role": "agent", "metadata": {"team": "red"}})), 201);
    assert_eq!(
        alice,
        json!({"conversation_id": f.conversation_id(), "sender": "alice", "role": "agent", "metadata": {"team": "red"},
            "joined_at": alice["joined_at"], "read_seq": 0, "delivered_seq": 0, "unread_count": 0, "last_seen": null}),
    );
    assert!(alice["joined_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Added again: 200, role and metadata replaced, the rest kept.
    let again = expect(&c.post(&path, &json!({"sender": "alice", "metadata": {"team": "blue"}})), 200);
    assert_eq!(
        (&again["role"], &again["metadata"], &again["joined_at"]),
        (&Value::Null, &json!({"team": "blue"}), &alice["joined_at"])
    );
    assert_eq!(expect(&c.get(&format!("{path}/alice")), 200), again);
    assert_error(&c.get(&format!("{path}/nobody")), 404, "not_found");

    // A sender id is one path segment, percent-encoded: `+` and `/` included.
    let phone = expect(&c.post(&path, &json!({"sender": "+15550001"})), 201);
    assert_eq!(expect(&c.get(&format!("{path}/%2B15550001")), 200), phone);
    assert_eq!(expect(&c.get(&format!("{path}/+15550001")), 200), phone, "`+` in a path is itself");
    let slashed = expect(&c.post(&path, &json!({"sender": "team/bot é"})), 201);
    assert_eq!(expect(&c.get(&format!("{path}/team%2Fbot%20%C3%A9")), 200), slashed);
    assert_error(&c.get(&format!("{path}/%FF")), 404, "not_found");

    for i in 0..4 {
        expect(&c.post(&path, &json!({"sender": format!("user-{i}")})), 201);
    }
    // Pages of 2 by first join, `next_cursor` until the last.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let page = expect(&c.get(&format!("{path}?limit=2{q}")), 200);
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|m| m["sender"].as_str().expect("sender").to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["alice", "+15550001", "team/bot é", "user-0", "user-1", "user-2", "user-3"]);
    assert_error(&c.get(&format!("{path}?cursor=nope")), 400, "invalid_parameter");

    assert_eq!(c.send("DELETE", &format!("{path}/%2B15550001"), &[], None).status, 204);
    assert_error(&c.send("DELETE", &format!("{path}/%2B15550001"), &[], None), 404, "not_found");
    assert_error(&c.get(&format!("{path}/%2B15550001")), 404, "not_found");
    assert_error(&c.send("DELETE", &format!("{path}/nobody"), &[], None), 404, "not_found");

    // Every change is an activity of the log, in order.
    let log: Vec<(String, String)> = f
        .all_activities(server)
        .iter()
        .map(|a| (a["type"].as_str().unwrap_or("").into(), a["sender"].as_str().unwrap_or("").into()))
        .collect();
    let mut expected: Vec<(String, String)> =
        ["alice", "alice", "+15550001", "team/bot é", "user-0", "user-1", "user-2", "user-3"]
            .iter()
            .map(|s| ("member_joined".to_string(), s.to_string()))
            .collect();
    expected.push(("member_left".into(), "+15550001".into()));
    assert_eq!(log, expected);
    let first = &f.all_activities(server)[0];
    assert_eq!(
        first["metadata"],
        json!({"role": "agent", "metadata": {"team": "red"}}),
        "the join carries role and metadata"
    );
    assert!(first.get("reply_count").is_none(), "a member activity is not a message");

    // Another tenant's conversation, an unknown one, a closed one.
    let theirs = Fixture::new(server, "members-other");
    let as_them = theirs.client(server);
    assert_error(&as_them.get(&path), 404, "not_found");
    assert_error(&as_them.get(&format!("{path}/alice")), 404, "not_found");
    assert_error(&as_them.post(&path, &json!({"sender": "mallory"})), 404, "not_found");
    assert_error(&as_them.send("DELETE", &format!("{path}/alice"), &[], None), 404, "not_found");
    let unknown = "/api/v1/conversations/0190f0f0-0000-7000-8000-000000000000/members";
    assert_error(&c.get(unknown), 404, "not_found");
    assert_error(&c.post(unknown, &json!({"sender": "x"})), 404, "not_found");
    expect(&c.post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    assert_error(&c.post(&path, &json!({"sender": "late"})), 409, "conversation_closed");
    assert_error(&c.send("DELETE", &format!("{path}/alice"), &[], None), 409, "conversation_closed");
    assert_eq!(expect(&c.get(&format!("{path}/alice")), 200)["sender"], "alice", "still a member of the closed one");
}

fn member_input_is_validated_with_the_field(server: &TestServer) {
    let f = Fixture::new(server, "membervalid");
    let c = f.client(server);
    let path = members_path(&f);
    for (body, field) in [
        (json!({}), "sender"),
        (json!({"sender": ""}), "sender"),
        (json!({"sender": "  "}), "sender"),
        (json!({"sender": 5}), "sender"),
        (json!({"sender": "x".repeat(257)}), "sender"),
        (json!({"sender": "a", "role": ""}), "role"),
        (json!({"sender": "a", "role": "r".repeat(65)}), "role"),
        (json!({"sender": "a", "metadata": [1]}), "metadata"),
        (json!({"sender": "a", "roles": "x"}), "roles"),
    ] {
        assert_eq!(assert_error(&c.post(&path, &body), 422, "validation_failed")["field"], field, "{body}");
    }
    // No body at all reads as `{}`.
    let empty = c.send("POST", &path, &[("content-type", "application/json")], None);
    assert_eq!(assert_error(&empty, 422, "validation_failed")["field"], "sender");
    assert_eq!(expect(&c.get(&path), 200)["data"], json!([]), "nothing was added");
    assert_eq!(expect(&c.get(&f.activities_path()), 200)["last_seq"], 0, "nothing was logged");
}

fn receipts_move_forward_only(server: &TestServer) {
    let f = Fixture::new(server, "receipts");
    let c = f.client(server);
    let path = members_path(&f);
    expect(&c.post(&path, &json!({"sender": "alice"})), 201); // seq 1
    let mut bobs = Vec::new();
    for i in 0..4 {
        bobs.push(expect(&c.post(&f.activities_path(), &json!({"sender": "bob", "text": format!("b{i}")})), 201));
        // 2..=5
    }
    expect(&c.post(&f.activities_path(), &json!({"sender": "alice", "text": "mine"})), 201); // 6
    let receipts = format!("{path}/alice/receipts");
    assert_eq!(expect(&c.get(&format!("{path}/alice")), 200)["unread_count"], 4, "bob's messages, not her own");
    let m = expect(&c.post(&receipts, &json!({"delivered_seq": 3})), 200);
    assert_eq!((&m["read_seq"], &m["delivered_seq"], &m["unread_count"]), (&json!(0), &json!(3), &json!(4)));
    let m = expect(&c.post(&receipts, &json!({"read_seq": 4})), 200);
    assert_eq!(
        (&m["read_seq"], &m["delivered_seq"], &m["unread_count"]),
        (&json!(4), &json!(4), &json!(1)),
        "read drags delivered"
    );
    let m = expect(&c.post(&receipts, &json!({"read_seq": 2, "delivered_seq": 1})), 200);
    assert_eq!((&m["read_seq"], &m["delivered_seq"]), (&json!(4), &json!(4)), "never back");
    let m = expect(&c.post(&receipts, &json!({"read_seq": 6, "delivered_seq": 6})), 200);
    assert_eq!((&m["read_seq"], &m["unread_count"]), (&json!(6), &json!(0)));
    // The list carries each member's positions and unread count.
    expect(&c.post(&path, &json!({"sender": "carol"})), 201); // 7
    let list = expect(&c.get(&path), 200);
    let positions: Vec<_> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| (m["sender"].clone(), m["read_seq"].clone(), m["unread_count"].clone()))
        .collect();
    assert_eq!(positions, [(json!("alice"), json!(6), json!(0)), (json!("carol"), json!(0), json!(5))]);
    // A deleted message is no longer unread.
    expect(&c.post(&f.activities_path(), &json!({"sender": "bob", "type": "delete", "target_id": bobs[0]["id"]})), 201);
    assert_eq!(expect(&c.get(&format!("{path}/carol")), 200)["unread_count"], 4);

    // Past the last seq: 422 naming the field that is; nothing moves.
    let e = assert_error(&c.post(&receipts, &json!({"read_seq": 99})), 422, "validation_failed");
    assert_eq!(e["field"], "read_seq");
    let e = assert_error(&c.post(&receipts, &json!({"delivered_seq": 99})), 422, "validation_failed");
    assert_eq!(e["field"], "delivered_seq");
    let e = assert_error(&c.post(&receipts, &json!({"read_seq": 7, "delivered_seq": 99})), 422, "validation_failed");
    assert_eq!(e["field"], "delivered_seq");
    assert_eq!(expect(&c.get(&format!("{path}/alice")), 200)["read_seq"], 6);
    for (body, field) in [
        (json!({}), "read_seq"),
        (json!({"read_seq": -1}), "read_seq"),
        (json!({"read_seq": "1"}), "read_seq"),
        (json!({"read_seq": 1.5}), "read_seq"),
        (json!({"delivered_seq": -1}), "delivered_seq"),
        (json!({"read": 1}), "read"),
    ] {
        assert_eq!(assert_error(&c.post(&receipts, &body), 422, "validation_failed")["field"], field, "{body}");
    }
    // Only a member has receipts, whatever seq it names.
    assert_error(&c.post(&format!("{path}/bob/receipts"), &json!({"read_seq": 1})), 403, "not_a_member");
    assert_error(&c.post(&format!("{path}/bob/receipts"), &json!({"read_seq": 99})), 403, "not_a_member");
    let theirs = Fixture::new(server, "receipts-other");
    assert_error(&theirs.client(server).post(&receipts, &json!({"read_seq": 1})), 404, "not_found");
}

fn token_request(f: &Fixture, sender: &str) -> Value {
    json!({"conversation_id": f.conversation_id(), "sender": sender})
}

fn members_only_conversations_issue_tokens_to_members_only(server: &TestServer) {
    let f = Fixture::new(server, "membersonly");
    let c = f.client(server);
    let room =
        expect(&c.post("/api/v1/conversations", &json!({"channel_id": f.channel_id(), "members_only": true})), 201);
    assert_eq!(room["members_only"], true);
    let room = Fixture {
        tenant: converger_e2e::api::Tenant { id: f.tenant.id.clone(), api_key: f.tenant.api_key.clone() },
        channel: f.channel.clone(),
        conversation: room,
    };
    assert_eq!(expect(&c.get(&format!("/api/v1/conversations/{}", room.conversation_id())), 200)["members_only"], true);
    assert_error(&c.post("/api/v1/tokens", &token_request(&room, "alice")), 403, "not_a_member");
    // A channel secret issues tokens on its channel under the same rule.
    let by_secret = Client::bearer(server, f.channel_secret());
    assert_error(&by_secret.post("/api/v1/tokens", &token_request(&room, "alice")), 403, "not_a_member");

    expect(&c.post(&members_path(&room), &json!({"sender": "alice"})), 201);
    let token = expect(&c.post("/api/v1/tokens", &token_request(&room, "alice")), 200)["token"]
        .as_str()
        .expect("token")
        .to_string();
    expect(&by_secret.post("/api/v1/tokens", &token_request(&room, "alice")), 200);
    let refreshed = expect(&Client::bearer(server, &token).post("/api/v1/tokens/refresh", &json!({})), 200);
    assert!(refreshed["token"].is_string());
    // Removed, alice cannot keep the conversation's token alive.
    assert_eq!(c.send("DELETE", &format!("{}/alice", members_path(&room)), &[], None).status, 204);
    assert_error(&Client::bearer(server, &token).post("/api/v1/tokens/refresh", &json!({})), 403, "not_a_member");
    assert_error(&c.post("/api/v1/tokens", &token_request(&room, "alice")), 403, "not_a_member");
    // An open conversation issues tokens to anyone, member or not.
    expect(&c.post("/api/v1/tokens", &token_request(&f, "anyone")), 200);
    expect(
        &c.patch(&format!("/api/v1/conversations/{}", room.conversation_id()), &json!({"members_only": false})),
        200,
    );
    expect(&c.post("/api/v1/tokens", &token_request(&room, "alice")), 200);
    expect(&Client::bearer(server, &token).post("/api/v1/tokens/refresh", &json!({})), 200);
}

fn patch_changes_metadata_and_members_only(server: &TestServer) {
    let f = Fixture::new(server, "patchconv");
    let c = f.client(server);
    let path = format!("/api/v1/conversations/{}", f.conversation_id());
    assert_eq!(f.conversation["members_only"], false, "off by default");
    let patched = expect(&c.patch(&path, &json!({"members_only": true, "metadata": {"topic": "billing"}})), 200);
    assert_eq!((&patched["members_only"], &patched["metadata"]), (&json!(true), &json!({"topic": "billing"})));
    assert_eq!(
        (&patched["id"], &patched["created_at"], &patched["last_seq"]),
        (&f.conversation["id"], &f.conversation["created_at"], &json!(0))
    );
    let only = expect(&c.patch(&path, &json!({"members_only": false})), 200);
    assert_eq!(
        (&only["members_only"], &only["metadata"]),
        (&json!(false), &json!({"topic": "billing"})),
        "metadata kept"
    );
    assert_eq!(expect(&c.get(&path), 200), only);
    for (body, field) in [
        (json!({}), "metadata"),
        (json!({"members_only": "yes"}), "members_only"),
        (json!({"metadata": "x"}), "metadata"),
        (json!({"status": "closed"}), "status"),
    ] {
        assert_eq!(assert_error(&c.patch(&path, &body), 422, "validation_failed")["field"], field, "{body}");
    }
    let theirs = Fixture::new(server, "patchconv-other");
    assert_error(&theirs.client(server).patch(&path, &json!({"members_only": true})), 404, "not_found");
    assert_error(
        &c.patch("/api/v1/conversations/0190f0f0-0000-7000-8000-000000000000", &json!({"members_only": true})),
        404,
        "not_found",
    );
    assert_eq!(expect(&c.get(&path), 200)["members_only"], false, "untouched by the refusals");
}
