//! The Phoenix Channels V2 socket over a real WebSocket: join with a client
//! token, `activity:create` replied with the stored activity and broadcast,
//! REST writes arriving on the socket, resume with `last_seq`, typing and
//! presence across two sockets, and every refusal.

use std::time::{Duration, Instant};

use converger_e2e::api::{expect, Fixture};
use converger_e2e::phoenix::{connect, join, next, send, socket, topic, until, Ws};
use converger_e2e::TestServer;
use serde_json::{json, Value};
use tungstenite::Message;

#[test]
fn join_create_and_receive_activities_from_the_socket_and_from_rest() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "ws");
    let mut ws = socket(&server, &f, "alice");
    let reply = join(&mut ws, &topic(&f), json!({}));
    assert_eq!(reply, json!(["1", "1", topic(&f), "phx_reply", {"status": "ok", "response": {}}]));
    let state = until(&mut ws, "presence_state");
    assert!(state[4]["alice"]["metas"][0]["phx_ref"].is_string(), "{state}");

    send(&mut ws, json!(["1", "2", topic(&f), "activity:create", {"text": "hi from the socket"}]));
    let mut reply = None;
    let mut broadcast = None;
    while reply.is_none() || broadcast.is_none() {
        let m = next(&mut ws);
        match m[3].as_str() {
            Some("phx_reply") => reply = Some(m),
            Some("activity") => broadcast = Some(m),
            _ => {}
        }
    }
    let (reply, broadcast) = (reply.expect("reply"), broadcast.expect("broadcast"));
    assert_eq!(reply[1], "2");
    assert_eq!(reply[4]["status"], "ok");
    assert_eq!(reply[4]["response"]["seq"], 1);
    assert_eq!(reply[4]["response"]["sender"], "alice", "the token's sender");
    assert_eq!(broadcast[0], Value::Null);
    assert_eq!(broadcast[4]["id"], reply[4]["response"]["id"]);

    let rest =
        expect(&f.client(&server).post(&f.activities_path(), &json!({"sender": "bot", "text": "from REST"})), 201);
    let live = until(&mut ws, "activity");
    assert_eq!(live[4]["id"], rest["id"]);
    assert_eq!(live[4]["seq"], 2);
}

#[test]
fn rejoining_with_last_seq_gets_exactly_what_was_missed_then_the_live_stream() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "resume");
    let client = f.client(&server);
    for i in 0..5 {
        expect(&client.post(&f.activities_path(), &json!({"sender": "s", "text": format!("{i}")})), 201);
    }
    let mut ws = socket(&server, &f, "bob");
    assert_eq!(join(&mut ws, &topic(&f), json!({"last_seq": 2}))[4]["status"], "ok");
    let seqs: Vec<i64> = (0..3).map(|_| until(&mut ws, "activity")[4]["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, vec![3, 4, 5], "the backlog after last_seq, in order");
    expect(&client.post(&f.activities_path(), &json!({"sender": "s", "text": "live"})), 201);
    assert_eq!(until(&mut ws, "activity")[4]["seq"], 6, "then the live stream, without a gap or a repeat");
}

#[test]
fn typing_and_presence_reach_the_other_socket() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "presence");
    let mut a = socket(&server, &f, "alice");
    join(&mut a, &topic(&f), json!({}));
    until(&mut a, "presence_state");
    let mut b = socket(&server, &f, "bob");
    join(&mut b, &topic(&f), json!({}));
    let state = until(&mut b, "presence_state");
    assert!(state[4]["alice"].is_object() && state[4]["bob"].is_object(), "{state}");
    // Alice may first see the diff of her own join (Phoenix sends the joiner its own diff too).
    let diff = (0..2).map(|_| until(&mut a, "presence_diff")).find(|d| d[4]["joins"]["bob"].is_object());
    assert!(diff.is_some(), "alice sees bob join");

    send(&mut b, json!(["1", "3", topic(&f), "typing", {"typing": true}]));
    let typing = until(&mut a, "typing");
    assert_eq!(typing[4], json!({"sender": "bob", "typing": true}));

    drop(b);
    let left = until(&mut a, "presence_diff");
    assert!(left[4]["leaves"]["bob"].is_object(), "a closed socket leaves: {left}");
}

#[test]
fn the_admin_consoles_watcher_gets_the_stream_but_is_not_in_presence() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "watched");
    let mut a = socket(&server, &f, "alice");
    join(&mut a, &topic(&f), json!({}));
    until(&mut a, "presence_state");
    let path = format!("/admin/api/conversations/{}/live-token", f.conversation_id());
    let t = expect(&converger_e2e::api::Client::admin(&server).post(&path, &json!({})), 200);
    let query = format!("token={}&vsn=2.0.0", t["token"].as_str().expect("token"));
    let mut watcher = connect(&server, &query).expect("handshake");
    assert_eq!(join(&mut watcher, &topic(&f), json!({}))[4]["status"], "ok");
    expect(&f.client(&server).post(&f.activities_path(), &json!({"sender": "s", "text": "seen"})), 201);
    assert_eq!(until(&mut watcher, "activity")[4]["text"], "seen");
    // Alice's next messages: the activity, with no presence diff for the watcher before it.
    loop {
        let m = next(&mut a);
        assert!(m[3] != "presence_diff" || m[4]["joins"]["admin"].is_null(), "the watcher showed: {m}");
        if m[3] == "activity" {
            break;
        }
    }
    drop(watcher);
    let mut b = socket(&server, &f, "bob");
    join(&mut b, &topic(&f), json!({}));
    let state = until(&mut b, "presence_state");
    assert!(state[4]["admin"].is_null() && state[4]["alice"].is_object(), "{state}");
}

#[test]
fn refusals_are_clear() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "refusals");
    let t = f.token(&server, "alice");
    match connect(&server, &format!("token={t}")) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400, "no vsn=2.0.0"),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    match connect(&server, "token=not-a-token&vsn=2.0.0") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut ws = socket(&server, &f, "alice");
    let other = Fixture::new(&server, "other");
    let reply = join(&mut ws, &topic(&other), json!({}));
    assert_eq!(reply[4]["status"], "error");
    assert!(reply[4]["response"]["reason"].as_str().expect("reason").contains("another conversation"));
    let reply = join(&mut ws, "room:lobby", json!({}));
    assert_eq!(reply[4]["response"]["reason"], "unmatched topic");
    send(&mut ws, json!([null, "9", "phoenix", "heartbeat", {}]));
    assert_eq!(next(&mut ws), json!([null, "9", "phoenix", "phx_reply", {"status": "ok", "response": {}}]));
    // The token's own conversation, in a spelling other than the canonical
    // 8-4-4-4-12 form, names nothing; either case of the hex digits does.
    let id = f.conversation_id();
    for lenient in [id.replace('-', ""), format!("{{{id}}}"), format!("urn:uuid:{id}")] {
        let reply = join(&mut ws, &format!("conversation:{lenient}"), json!({}));
        assert_eq!(reply[4]["response"]["reason"], "unmatched topic", "{lenient}");
    }
    let upper = format!("conversation:{}", id.to_uppercase());
    assert_eq!(join(&mut ws, &upper, json!({}))[4]["status"], "ok");
    let reply = join(&mut ws, &topic(&f), json!({}));
    assert_eq!(reply[4]["response"]["reason"], "already joined", "one conversation, two spellings: {reply}");
    send(&mut ws, json!(["1", "8", upper, "phx_leave", {}]));
    assert_eq!(until(&mut ws, "phx_reply")[4]["status"], "ok");

    expect(&f.client(&server).post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    let reply = join(&mut ws, &topic(&f), json!({}));
    // The same refusal as the binary protocol's Subscribe (docs/api.md, "Following a conversation").
    assert_eq!(reply[4]["response"]["code"], "conversation_closed", "{reply}");
    assert_eq!(reply[4]["response"]["reason"], "conversation is closed");
}

#[test]
fn a_stalled_subscriber_is_closed_as_a_slow_consumer_while_the_others_keep_up() {
    let server = TestServer::embedded_with(&["--ws-send-queue-bytes", "262144"]);
    let f = Fixture::new(&server, "slow");
    let mut stalled = socket(&server, &f, "stalled");
    join(&mut stalled, &topic(&f), json!({}));
    let mut reader = socket(&server, &f, "reader");
    join(&mut reader, &topic(&f), json!({}));
    const N: i64 = 400;
    // The reader keeps reading on its own thread; `stalled` is never read.
    let reading = std::thread::spawn(move || {
        let mut last = 0;
        while last < N {
            last = until(&mut reader, "activity")[4]["seq"].as_i64().expect("seq");
        }
        last
    });
    let text = "x".repeat(60_000);
    let client = f.client(&server);
    for i in 0..N {
        let reply = client.post(&f.activities_path(), &json!({"sender": "pub", "text": format!("{i}{text}")}));
        assert_eq!(reply.status, 201, "the publisher is never held up");
    }
    assert_eq!(reading.join().expect("reader"), N, "the reader got everything, in order");
    // The stalled socket gets what was already on its way, then the end: a 1008
    // close frame if its buffers let one through, else a reset.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the stalled socket was never closed");
        match stalled.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert_eq!(frame.reason.as_str(), "slow consumer");
                break;
            }
            Ok(Message::Close(None)) => panic!("closed without a code"),
            Ok(_) => continue,
            Err(tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake))
            | Err(tungstenite::Error::Io(_)) => break,
            Err(e) => panic!("unexpected end: {e}"),
        }
    }
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("converger_send_queue_overflows_total{transport=\"phoenix\"} 1\n"), "{metrics}");
}

#[test]
fn many_sockets_across_both_shards_each_get_every_activity_in_order() {
    let server = TestServer::embedded(); // two shards: the kernel spreads the sockets over them
    let f = Fixture::new(&server, "many");
    let mut sockets: Vec<Ws> = (0..20).map(|i| socket(&server, &f, &format!("s{i}"))).collect();
    for ws in &mut sockets {
        join(ws, &topic(&f), json!({}));
    }
    let client = f.client(&server);
    for i in 0..50 {
        expect(&client.post(&f.activities_path(), &json!({"sender": "p", "text": format!("{i}")})), 201);
    }
    for ws in &mut sockets {
        let seqs: Vec<i64> = (0..50).map(|_| until(ws, "activity")[4]["seq"].as_i64().expect("seq")).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    }
}

on_both_backends!(reconnecting_with_last_seq_while_another_client_keeps_publishing_has_no_gap_or_duplicate);

fn reconnecting_with_last_seq_while_another_client_keeps_publishing_has_no_gap_or_duplicate(server: &TestServer) {
    let f = Fixture::new(server, "churn");
    const N: i64 = 300;
    let publisher = {
        let (addr, key, path) = (server.http_addr(), f.tenant.api_key.clone(), f.activities_path());
        std::thread::spawn(move || {
            for i in 0..N {
                let body = json!({"sender": "p", "text": format!("{i}")}).to_string();
                let auth = format!("Bearer {key}");
                let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
                let reply = converger_e2e::http::request(addr, "POST", &path, &headers, body.as_bytes()).expect("post");
                assert_eq!(reply.status, 201);
            }
        })
    };
    let mut seen: Vec<i64> = Vec::new();
    let mut last = 0;
    // Reconnect every 40 activities while the publisher goes on.
    while last < N {
        let mut ws = socket(server, &f, "reader");
        assert_eq!(join(&mut ws, &topic(&f), json!({"last_seq": last}))[4]["status"], "ok");
        for _ in 0..40 {
            if last >= N {
                break;
            }
            let seq = until(&mut ws, "activity")[4]["seq"].as_i64().expect("seq");
            seen.push(seq);
            last = seq;
        }
        drop(ws);
    }
    publisher.join().expect("publisher");
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every activity once, in order, across 8 reconnects");
}

#[test]
fn phoenix_binary_push_frames_are_accepted() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "binary");
    let mut ws = socket(&server, &f, "bin");
    join(&mut ws, &topic(&f), json!({}));
    // kind 0 push: join_ref, ref, topic, event (u8 lengths), then the data.
    let (jr, r, t, e) = ("1", "7", topic(&f), "activity:create");
    let data = json!({"text": "sent as a binary push"}).to_string();
    let mut frame = vec![0u8, jr.len() as u8, r.len() as u8, t.len() as u8, e.len() as u8];
    for part in [jr, r, t.as_str(), e, data.as_str()] {
        frame.extend_from_slice(part.as_bytes());
    }
    ws.send(Message::binary(frame)).expect("send");
    let reply = until(&mut ws, "phx_reply");
    assert_eq!(reply[1], "7");
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(reply[4]["response"]["text"], "sent as a binary push");
}

/// The socket checks payloads as REST checks bodies: strict JSON (a raw
/// frame with a repeated key is refused), a sender other than the token's
/// refused rather than silently replaced, a typing flag that is not a boolean
/// refused rather than read as `true`.
#[test]
fn payloads_are_checked_like_rest_bodies_and_the_sender_is_the_tokens() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "strict");
    let mut ws = socket(&server, &f, "alice");
    let t = topic(&f);
    assert_eq!(join(&mut ws, &t, json!({}))[4]["status"], "ok");
    let reply_to = |ws: &mut Ws, r: &str| loop {
        let m = until(ws, "phx_reply");
        if m[1] == r {
            return m[4].clone();
        }
    };

    send(&mut ws, json!(["1", "2", t, "activity:create", {"text": "hi", "sender": "mallory"}]));
    let r = reply_to(&mut ws, "2");
    assert_eq!((r["status"].as_str(), r["response"]["code"].as_str()), (Some("error"), Some("forbidden")), "{r}");

    send(&mut ws, json!(["1", "3", t, "activity:create", {"text": "hi", "sender": "alice"}]));
    let r = reply_to(&mut ws, "3");
    assert_eq!((r["status"].as_str(), r["response"]["sender"].as_str()), (Some("ok"), Some("alice")), "{r}");

    let raw = format!(r#"["1","4","{t}","activity:create",{{"text":"a","text":"b"}}]"#);
    ws.send(Message::text(raw)).expect("send");
    let r = reply_to(&mut ws, "4");
    assert_eq!(r["response"]["code"], "invalid_json", "{r}");
    let raw = format!(r#"["1","5","{t}","activity:create",{{"text":"x","metadata":{{"n":1e999}}}}]"#);
    ws.send(Message::text(raw)).expect("send");
    assert_eq!(reply_to(&mut ws, "5")["response"]["code"], "invalid_json");

    send(&mut ws, json!(["1", "6", t, "typing", {"typing": "yes"}]));
    let r = reply_to(&mut ws, "6");
    assert_eq!(
        (r["response"]["code"].as_str(), r["response"]["field"].as_str()),
        (Some("validation_failed"), Some("typing"))
    );
    send(&mut ws, json!(["1", "7", t, "typing", {"typing": false}]));
    assert_eq!(reply_to(&mut ws, "7")["status"], "ok");

    let page = expect(&f.client(&server).get(&f.activities_path()), 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "only the accepted write is stored: {page}");
}

#[test]
fn a_rate_limited_socket_is_told_then_closed_1008_if_it_keeps_going() {
    let server = TestServer::embedded_with(&["--tenant-activities-per-second", "2"]);
    let f = Fixture::new(&server, "chatty");
    let mut ws = socket(&server, &f, "alice");
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");
    let mut told = false;
    for i in 0..200 {
        let sent = ws
            .send(Message::text(json!(["1", i.to_string(), topic(&f), "activity:create", {"text": "x"}]).to_string()));
        if sent.is_err() {
            break;
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let m: Value = serde_json::from_str(t.as_str()).expect("json");
                if m[3] == "phx_reply" && m[4]["status"] == "error" {
                    assert_eq!(m[4]["response"]["reason"], "rate_limited", "{m}");
                    assert!(m[4]["response"]["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1), "{m}");
                    told = true;
                }
            }
            Ok(Message::Close(frame)) => {
                let frame = frame.expect("a close frame");
                assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "rate limit"));
                assert!(told, "told first, closed after");
                return;
            }
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("a socket that kept going was never closed");
}

#[test]
fn pushes_sent_without_waiting_are_all_answered_in_the_order_sent_with_increasing_seqs() {
    let server = TestServer::embedded_with(&["--ws-messages-per-second", "100000"]);
    let f = Fixture::new(&server, "pipelined");
    let mut ws = socket(&server, &f, "alice");
    assert_eq!(join(&mut ws, &topic(&f), json!({}))[4]["status"], "ok");
    // More than a socket keeps in flight (256): the server stops reading and resumes.
    let n = 600;
    let mut sent = Vec::new();
    for i in 0..n {
        let msg_ref = (i + 2).to_string();
        let m = match i {
            // Answered at once by the server, yet replied in its place.
            100 => json!([null, msg_ref, "phoenix", "heartbeat", {}]),
            300 => json!(["1", msg_ref, topic(&f), "activity:shout", {}]),
            _ => json!(["1", msg_ref, topic(&f), "activity:create", {"text": format!("#{i}")}]),
        };
        send(&mut ws, m);
        sent.push((i + 2).to_string());
    }
    let mut replies = Vec::new();
    while replies.len() < n {
        let m = next(&mut ws);
        if m[3] == "phx_reply" {
            replies.push(m);
        }
    }
    let refs: Vec<&str> = replies.iter().map(|m| m[1].as_str().expect("ref")).collect();
    assert_eq!(refs, sent, "replies in the order the messages were sent");
    assert_eq!(replies[100][4]["status"], "ok", "the heartbeat: {}", replies[100]);
    assert_eq!(replies[300][4]["status"], "error", "the unknown event: {}", replies[300]);
    let writes: Vec<&Value> =
        replies.iter().enumerate().filter(|(i, _)| *i != 100 && *i != 300).map(|(_, m)| m).collect();
    let seqs: Vec<i64> = writes.iter().map(|m| m[4]["response"]["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, (1..=writes.len() as i64).collect::<Vec<_>>(), "seqs in the order pushed, none lost");
    let texts: Vec<&str> = writes.iter().map(|m| m[4]["response"]["text"].as_str().expect("text")).collect();
    let expected: Vec<String> = (0..n).filter(|i| *i != 100 && *i != 300).map(|i| format!("#{i}")).collect();
    assert_eq!(texts, expected);
    // A leave after writes in flight is answered after them, and the socket goes on.
    send(&mut ws, json!(["1", "900", topic(&f), "activity:create", {"text": "last"}]));
    send(&mut ws, json!(["1", "901", topic(&f), "phx_leave", {}]));
    let mut order = Vec::new();
    while order.len() < 2 {
        let m = next(&mut ws);
        if m[3] == "phx_reply" {
            order.push(m[1].as_str().expect("ref").to_string());
        }
    }
    assert_eq!(order, ["900", "901"]);
}
