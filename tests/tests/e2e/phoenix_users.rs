//! User presence across a tenant's conversations: a user is online while any
//! of their sockets is connected, whichever conversation it follows; the
//! conversations they are a member of hear `user_online` / `user_offline`
//! (debounced: a quick reconnect says nothing), and their members show
//! `last_seen` once they have gone.

use std::time::{Duration, Instant};

use converger_e2e::api::{expect, Fixture};
use converger_e2e::phoenix::{join, socket, topic, until, until_by, with_token};
use converger_e2e::TestServer;
use serde_json::{json, Value};

/// Longer than the server's debounce (5 s), with room for a busy machine.
const PAST_DEBOUNCE: Duration = Duration::from_secs(9);

on_both_backends!(a_user_is_announced_online_once_and_offline_after_the_debounce);

fn a_user_is_announced_online_once_and_offline_after_the_debounce(server: &TestServer) {
    let f = Fixture::new(server, "users");
    let client = f.client(server);
    // A second conversation where alice is a member too: bob watches it.
    let other = expect(&client.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    let other_id = other["id"].as_str().expect("id");
    for (conversation, sender) in [(f.conversation_id(), "alice"), (other_id, "alice"), (other_id, "bob")] {
        let path = format!("/api/v1/conversations/{conversation}/members");
        expect(&client.post(&path, &json!({"sender": sender})), 201);
    }
    let bob_token = expect(&client.post("/api/v1/tokens", &json!({"conversation_id": other_id, "sender": "bob"})), 200);
    let mut bob = with_token(server, bob_token["token"].as_str().expect("token"));
    let other_topic = format!("conversation:{other_id}");
    assert_eq!(join(&mut bob, &other_topic, json!({}))[4]["status"], "ok");
    until(&mut bob, "presence_state");

    // Alice connects on her first conversation: bob hears it on the other one.
    // (Bob's own user_online may reach him too, if it went out after his join.)
    let alice = socket(server, &f, "alice");
    let online = loop {
        let m = until(&mut bob, "user_online");
        if m[4]["sender"] != "bob" {
            break m;
        }
    };
    assert_eq!(online[2], other_topic);
    assert_eq!(online[4], json!({"sender": "alice"}));

    // A second socket, a quick reconnect of the first: nothing is said.
    let second = socket(server, &f, "alice");
    drop(alice);
    let again = socket(server, &f, "alice");
    drop(second);
    let quiet = until_by(&mut bob, "user_offline", Instant::now() + PAST_DEBOUNCE);
    assert!(quiet.is_none(), "a reconnect within the debounce announced: {quiet:?}");

    // Her last socket goes: offline after the debounce, with her last seen.
    drop(again);
    let offline = until_by(&mut bob, "user_offline", Instant::now() + PAST_DEBOUNCE + PAST_DEBOUNCE)
        .expect("user_offline after the debounce");
    assert_eq!(offline[4]["sender"], "alice");
    let last_seen = offline[4]["last_seen"].as_str().expect("last_seen").to_string();
    let member = expect(&client.get(&format!("/api/v1/conversations/{other_id}/members/alice")), 200);
    assert_eq!(member["last_seen"], Value::String(last_seen));
    // Online again on her first conversation: announced on it too, under
    // QuckChat's name to a socket that joined its `chat:` topic.
    let mut watcher = socket(server, &f, "carol");
    let chat_topic = topic(&f).replacen("conversation:", "chat:", 1);
    assert_eq!(join(&mut watcher, &chat_topic, json!({}))[4]["status"], "ok");
    let _alice = socket(server, &f, "alice");
    let online = until(&mut watcher, "user:online");
    assert_eq!(online[4]["sender"], "alice");
}
